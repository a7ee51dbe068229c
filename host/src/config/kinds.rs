//! The kinds of values settings take: how each is written, what it
//! accepts, and how a raw value from a flag, the environment or TOML parses
//! into it (within the setting's range, if it has one).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::names;

/// A value as a source gives it, before it is parsed: text (a flag, an
/// environment variable, a TOML string) or a TOML integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// Text, parsed by the setting's kind.
    Text(String),
    /// A TOML integer.
    Integer(i64),
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Text(text) => f.write_str(text),
            RawValue::Integer(n) => write!(f, "{n}"),
        }
    }
}

/// How a kind of setting is written: what it accepts and how it parses.
pub(super) trait ValueKind {
    type Value: PartialOrd;
    const ACCEPTS: &'static str;
    fn parse(raw: &RawValue) -> Option<Self::Value>;
}

/// Bytes, or a Kubernetes quantity.
pub(super) struct Size;
/// A whole number of milliseconds.
pub(super) struct Millis;
/// A whole number that fits 32 bits.
pub(super) struct Count;
/// A filesystem path.
pub(super) struct PathKind;
/// A filesystem path, or nothing (empty).
pub(super) struct OptionalPath;
/// A socket address.
pub(super) struct Addr;
/// `NAME=POLICY` pairs: a policy per handler name.
pub(super) struct HandlerPolicies<P>(std::marker::PhantomData<P>);
/// Per-handler snapshot policies.
pub(super) type SnapshotPolicies = HandlerPolicies<SnapshotPolicy>;
/// Per-handler isolation policies.
pub(super) type IsolationPolicies = HandlerPolicies<Isolation>;

/// A policy named by one word, set per handler.
pub(super) trait Policy: Copy + PartialOrd + 'static {
    /// What `NAME=POLICY` pairs of this policy accept.
    const PAIRS: &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

/// The value `raw` names among `words`: how a keyword setting parses.
fn keyword<T: Copy>(raw: &RawValue, words: &[(&str, T)]) -> Option<T> {
    match raw {
        RawValue::Text(text) => words.iter().find(|(w, _)| w == text).map(|(_, v)| *v),
        RawValue::Integer(_) => None,
    }
}

/// How the server writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl ValueKind for LogFormat {
    type Value = LogFormat;
    const ACCEPTS: &'static str = "`text` or `json`";
    fn parse(raw: &RawValue) -> Option<LogFormat> {
        keyword(raw, &[("text", LogFormat::Text), ("json", LogFormat::Json)])
    }
}

/// How a pool slot is reset between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub enum SlotReset {
    /// `scan` unless the host has swap, then `full`.
    Auto,
    /// Only the pages the last instance dirtied, found by the kernel's
    /// page scan (it misses pages swapped out).
    Scan,
    /// Every page decommitted: cannot miss one; costs page faults.
    Full,
}

impl ValueKind for SlotReset {
    type Value = SlotReset;
    const ACCEPTS: &'static str = "`auto`, `scan` or `full`";
    fn parse(raw: &RawValue) -> Option<SlotReset> {
        use SlotReset::{Auto, Full, Scan};
        keyword(raw, &[("auto", Auto), ("scan", Scan), ("full", Full)])
    }
}

/// Whose figures `Nexus.stats()` shows a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub enum StatsScope {
    /// Its own: its calls and compiles, counted by name; the cache records
    /// zero (they are every tenant's).
    Handler,
    /// The host's: every handler's calls, and the caches.
    Host,
}

impl ValueKind for StatsScope {
    type Value = StatsScope;
    const ACCEPTS: &'static str = "`handler` or `host`";
    fn parse(raw: &RawValue) -> Option<StatsScope> {
        keyword(
            raw,
            &[("handler", StatsScope::Handler), ("host", StatsScope::Host)],
        )
    }
}

/// What both cache tiers evict first when an entry must make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Default)]
pub enum Eviction {
    /// The entry whose loss costs least: GreedyDual-Size-Frequency, each
    /// entry ranked by its build time times its hits, per byte it holds,
    /// and aged so that what is no longer used goes in the end.
    #[default]
    Cost,
    /// The least recently used entry, whatever rebuilding it would cost.
    Recency,
}

impl Eviction {
    /// `cost` or `recency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Eviction::Cost => "cost",
            Eviction::Recency => "recency",
        }
    }
}

impl ValueKind for Eviction {
    type Value = Eviction;
    const ACCEPTS: &'static str = "`cost` or `recency`";
    fn parse(raw: &RawValue) -> Option<Eviction> {
        keyword(
            raw,
            &[("cost", Eviction::Cost), ("recency", Eviction::Recency)],
        )
    }
}

/// When `nexus serve` gives a handler its own prepared snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub enum SnapshotPolicy {
    /// After its first invocations (`snapshot_after`), in the background,
    /// unless its top level read the clock, randomness or `Nexus.stats()`.
    Auto,
    /// At registration, whatever its top level read.
    Eager,
    /// Never: every call evaluates the module.
    Off,
}

impl SnapshotPolicy {
    /// `auto`, `eager` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotPolicy::Auto => "auto",
            SnapshotPolicy::Eager => "eager",
            SnapshotPolicy::Off => "off",
        }
    }

    /// The policy named `auto`, `eager` or `off`.
    pub fn from_name(name: &str) -> Option<SnapshotPolicy> {
        [
            SnapshotPolicy::Auto,
            SnapshotPolicy::Eager,
            SnapshotPolicy::Off,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

impl ValueKind for SnapshotPolicy {
    type Value = SnapshotPolicy;
    const ACCEPTS: &'static str = "`auto`, `eager` or `off`";
    fn parse(raw: &RawValue) -> Option<SnapshotPolicy> {
        match raw {
            RawValue::Text(text) => SnapshotPolicy::from_name(text),
            RawValue::Integer(_) => None,
        }
    }
}

/// Whether a handler's calls each get a fresh instance, or share kept ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Default)]
pub enum Isolation {
    /// Every call in a fresh instance: nothing one call leaves behind is
    /// seen by the next.
    #[default]
    PerCall,
    /// Calls of one handler version may run in an instance an earlier call
    /// used: module state persists between them, as in Node (within
    /// `reuse_max_calls`, `reuse_idle_ms` and `reuse_max_memory_percent`).
    Reuse,
}

impl Isolation {
    /// `per-call` or `reuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::PerCall => "per-call",
            Isolation::Reuse => "reuse",
        }
    }

    /// The isolation named `per-call` or `reuse`.
    pub fn from_name(name: &str) -> Option<Isolation> {
        [Isolation::PerCall, Isolation::Reuse]
            .into_iter()
            .find(|i| i.as_str() == name)
    }
}

impl ValueKind for Isolation {
    type Value = Isolation;
    const ACCEPTS: &'static str = "`per-call` or `reuse`";
    fn parse(raw: &RawValue) -> Option<Isolation> {
        keyword(
            raw,
            &[
                ("per-call", Isolation::PerCall),
                ("reuse", Isolation::Reuse),
            ],
        )
    }
}

impl Policy for SnapshotPolicy {
    const PAIRS: &'static str = "NAME=POLICY pairs separated by commas (lodash=eager,stamp=off), \
        each NAME a handler name ([a-z0-9][a-z0-9_-]{0,63}) and each POLICY `auto`, `eager` or `off`";
    fn from_name(name: &str) -> Option<Self> {
        SnapshotPolicy::from_name(name)
    }
}

impl Policy for Isolation {
    const PAIRS: &'static str = "NAME=ISOLATION pairs separated by commas (counter=reuse,audit=per-call), \
        each NAME a handler name ([a-z0-9][a-z0-9_-]{0,63}) and each ISOLATION `per-call` or `reuse`";
    fn from_name(name: &str) -> Option<Self> {
        Isolation::from_name(name)
    }
}

impl<P: Policy> ValueKind for HandlerPolicies<P> {
    type Value = BTreeMap<String, P>;
    const ACCEPTS: &'static str = P::PAIRS;
    fn parse(raw: &RawValue) -> Option<Self::Value> {
        let RawValue::Text(text) = raw else {
            return None;
        };
        // A name given twice takes its last policy, as a query's does.
        text.split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, policy) = pair.split_once('=')?;
                let name = name.trim();
                if names::problem(name).is_some() {
                    return None;
                }
                Some((name.to_owned(), P::from_name(policy.trim())?))
            })
            .collect()
    }
}

impl ValueKind for Addr {
    type Value = SocketAddr;
    const ACCEPTS: &'static str = "an IP address and port (127.0.0.1:8080, [::1]:8080, 0.0.0.0:80)";
    fn parse(raw: &RawValue) -> Option<SocketAddr> {
        match raw {
            RawValue::Text(text) => text.trim().parse().ok(),
            RawValue::Integer(_) => None,
        }
    }
}

impl ValueKind for Size {
    type Value = u64;
    const ACCEPTS: &'static str =
        "a size in bytes (67108864) or a Kubernetes quantity (64Mi, 128M, 1Gi)";
    fn parse(raw: &RawValue) -> Option<u64> {
        match raw {
            RawValue::Integer(n) => u64::try_from(*n).ok(),
            RawValue::Text(text) => parse_size(text),
        }
    }
}

impl ValueKind for Millis {
    type Value = Duration;
    const ACCEPTS: &'static str = "a whole number of milliseconds";
    fn parse(raw: &RawValue) -> Option<Duration> {
        let ms = match raw {
            RawValue::Integer(n) => u64::try_from(*n).ok()?,
            RawValue::Text(text) => text.trim().parse().ok()?,
        };
        Some(Duration::from_millis(ms))
    }
}

impl ValueKind for Count {
    type Value = u32;
    const ACCEPTS: &'static str = "a whole number";
    fn parse(raw: &RawValue) -> Option<u32> {
        match raw {
            RawValue::Integer(n) => u32::try_from(*n).ok(),
            RawValue::Text(text) => text.trim().parse().ok(),
        }
    }
}

impl ValueKind for PathKind {
    type Value = PathBuf;
    const ACCEPTS: &'static str = "a directory path";
    fn parse(raw: &RawValue) -> Option<PathBuf> {
        match raw {
            RawValue::Text(text) if !text.is_empty() => Some(PathBuf::from(text)),
            _ => None,
        }
    }
}

impl ValueKind for OptionalPath {
    type Value = Option<PathBuf>;
    const ACCEPTS: &'static str = "a directory path, or nothing";
    fn parse(raw: &RawValue) -> Option<Option<PathBuf>> {
        match raw {
            RawValue::Text(text) => Some(Some(PathBuf::from(text)).filter(|_| !text.is_empty())),
            RawValue::Integer(_) => None,
        }
    }
}

/// A kind whose settings may have a range: its values written back as text,
/// so [`Config::validate`](super::Config::validate) can check a value made in
/// code against the table's range.
pub(super) trait Ranged: ValueKind {
    fn render(value: &Self::Value) -> String;
}

impl Ranged for Size {
    fn render(value: &u64) -> String {
        value.to_string()
    }
}

impl Ranged for Millis {
    fn render(value: &Duration) -> String {
        value.as_millis().to_string()
    }
}

impl Ranged for Count {
    fn render(value: &u32) -> String {
        value.to_string()
    }
}

/// `raw` as `K`, within `range` (texts `K` parses): else the setting's
/// error.
pub(super) fn parse<K: ValueKind>(
    name: &'static str,
    raw: &RawValue,
    range: Option<(&str, &str)>,
) -> Result<K::Value> {
    let refuse = |expected: String| Error::Config {
        name,
        value: raw.to_string(),
        expected,
    };
    let value = K::parse(raw).ok_or_else(|| refuse(K::ACCEPTS.to_owned()))?;
    if let Some((lo, hi)) = range {
        let bound = |text: &str| K::parse(&RawValue::Text(text.to_owned()));
        let (Some(min), Some(max)) = (bound(lo), bound(hi)) else {
            unreachable!("the table's ranges parse");
        };
        if value < min || value > max {
            return Err(refuse(format!("{}, from {lo} to {hi}", K::ACCEPTS)));
        }
    }
    Ok(value)
}

/// Bytes, or a Kubernetes-style quantity: `Ki Mi Gi Ti` (powers of 1024) or
/// `k M G T` (powers of 1000).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_bytes_and_quantities() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("64Mi"), Some(64 << 20));
        assert_eq!(parse_size("128M"), Some(128_000_000));
        assert_eq!(parse_size("1Gi"), Some(1 << 30));
        assert_eq!(parse_size("2k"), Some(2000));
        for bad in [
            "",
            "Mi",
            "64 MB",
            "64mb",
            "-1",
            "1.5Gi",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
