//! Settings: one table declares each setting once (its name, type, default,
//! environment variable, range and help); the [`Config`] struct, the config
//! file's keys, the environment layer and the CLI's flags all come from it.
//!
//! Precedence: command-line flag > environment variable > config file
//! (`nexus.toml`) > default. Each source is a [`Layer`]; [`Config::resolve`]
//! takes the first layer that sets a value and refuses a bad one with the
//! setting's name, the value and what is accepted.
//!
//! Layer: a leaf beside `error`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::names;

/// What the bytecode keeps besides code; part of the bytecode cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// Drop functions' source text (`Function.prototype.toString`).
    pub strip_source: bool,
    /// Drop line/column tables (stack traces lose positions).
    pub strip_debug: bool,
}

impl Default for CompileOptions {
    /// Source text stripped, positions kept: about half the size of full
    /// bytecode, and stack traces still name `file:line:column`.
    fn default() -> Self {
        Self {
            strip_source: true,
            strip_debug: false,
        }
    }
}

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

/// One setting, as the table declares it.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The snake_case name: the config file's key; the flag is its
    /// kebab-case form.
    pub name: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The flag's value placeholder in `--help` (`SIZE`, `MS`, `DIR`).
    pub value_name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// The default, as text (`64Mi`, `1000`).
    pub default: fn() -> String,
    /// The accepted range, as text, if the setting has one.
    pub range: Option<(&'static str, &'static str)>,
    /// What the setting's kind accepts, for errors.
    pub accepts: &'static str,
    /// Whether only `nexus serve` takes it.
    pub serve_only: bool,
}

impl Setting {
    /// The command-line flag, without its dashes: `cache-dir`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The text `--help` shows: the help line, then the environment
    /// variable, the range and the default.
    pub fn long_help(&self) -> String {
        let range = match self.range {
            Some((lo, hi)) => format!(" [range: {lo} to {hi}]"),
            None => String::new(),
        };
        let default = Some((self.default)()).filter(|d| !d.is_empty());
        format!(
            "{} [env: {}]{range} [default: {}]",
            self.help.trim(),
            self.env,
            default.as_deref().unwrap_or("none")
        )
    }
}

/// How a kind of setting is written: what it accepts and how it parses.
trait Kind {
    type Value: PartialOrd;
    const ACCEPTS: &'static str;
    fn parse(raw: &RawValue) -> Option<Self::Value>;
}

/// Bytes, or a Kubernetes quantity.
struct Size;
/// A whole number of milliseconds.
struct Millis;
/// A whole number that fits 32 bits.
struct Count;
/// A filesystem path.
struct PathKind;
/// A filesystem path, or nothing (empty).
struct OptionalPath;
/// A socket address.
struct Addr;
/// `NAME=POLICY` pairs: per-handler snapshot policies.
struct HandlerPolicies;

/// How the server writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl Kind for LogFormat {
    type Value = LogFormat;
    const ACCEPTS: &'static str = "`text` or `json`";
    fn parse(raw: &RawValue) -> Option<LogFormat> {
        match raw {
            RawValue::Text(text) if text == "text" => Some(LogFormat::Text),
            RawValue::Text(text) if text == "json" => Some(LogFormat::Json),
            _ => None,
        }
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

impl Kind for SnapshotPolicy {
    type Value = SnapshotPolicy;
    const ACCEPTS: &'static str = "`auto`, `eager` or `off`";
    fn parse(raw: &RawValue) -> Option<SnapshotPolicy> {
        match raw {
            RawValue::Text(text) => SnapshotPolicy::from_name(text),
            RawValue::Integer(_) => None,
        }
    }
}

impl Kind for HandlerPolicies {
    type Value = BTreeMap<String, SnapshotPolicy>;
    const ACCEPTS: &'static str = "NAME=POLICY pairs separated by commas (lodash=eager,stamp=off), \
        each NAME a handler name ([a-z0-9][a-z0-9_-]{0,63}) and each POLICY `auto`, `eager` or `off`";
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
                Some((name.to_owned(), SnapshotPolicy::from_name(policy.trim())?))
            })
            .collect()
    }
}

impl Kind for Addr {
    type Value = SocketAddr;
    const ACCEPTS: &'static str = "an IP address and port (127.0.0.1:8080, [::1]:8080, 0.0.0.0:80)";
    fn parse(raw: &RawValue) -> Option<SocketAddr> {
        match raw {
            RawValue::Text(text) => text.trim().parse().ok(),
            RawValue::Integer(_) => None,
        }
    }
}

impl Kind for Size {
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

impl Kind for Millis {
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

impl Kind for Count {
    type Value = u32;
    const ACCEPTS: &'static str = "a whole number";
    fn parse(raw: &RawValue) -> Option<u32> {
        match raw {
            RawValue::Integer(n) => u32::try_from(*n).ok(),
            RawValue::Text(text) => text.trim().parse().ok(),
        }
    }
}

impl Kind for PathKind {
    type Value = PathBuf;
    const ACCEPTS: &'static str = "a directory path";
    fn parse(raw: &RawValue) -> Option<PathBuf> {
        match raw {
            RawValue::Text(text) if !text.is_empty() => Some(PathBuf::from(text)),
            _ => None,
        }
    }
}

impl Kind for OptionalPath {
    type Value = Option<PathBuf>;
    const ACCEPTS: &'static str = "a directory path, or nothing";
    fn parse(raw: &RawValue) -> Option<Option<PathBuf>> {
        match raw {
            RawValue::Text(text) => Some(Some(PathBuf::from(text)).filter(|_| !text.is_empty())),
            RawValue::Integer(_) => None,
        }
    }
}

/// `raw` as `K`, within `range` (texts `K` parses): else the setting's
/// error.
fn parse<K: Kind>(
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

/// Declares the settings: the [`Config`] struct, its defaults, [`SETTINGS`]
/// and how a value is set, from one list.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $(#[$serve:ident])?
        $name:ident => $field:ident: $ty:ty as $kind:ident = $default:expr,
            env $env:literal, value $value_name:literal
            $(, range $lo:literal to $hi:literal)?;
    )*) => {
        /// Resolved settings for a [`crate::Runtime`]; see [`SETTINGS`] for
        /// each one's environment variable, default and range.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
            /// Bytecode write options.
            pub compile_options: CompileOptions,
        }

        /// Every setting, in the order `--help` lists them.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                name: stringify!($name),
                env: $env,
                value_name: $value_name,
                help: concat!($($doc),+),
                default: || String::from($default),
                range: settings!(@range $($lo, $hi)?),
                accepts: <$kind as Kind>::ACCEPTS,
                serve_only: settings!(@serve $($serve)?),
            },
        )*];

        impl Config {
            /// Sets `name` from `raw`, checked.
            fn set(&mut self, name: &str, raw: &RawValue) -> Result<()> {
                match name {
                    $( stringify!($name) => {
                        self.$field = parse::<$kind>(
                            stringify!($name), raw, settings!(@range $($lo, $hi)?))?;
                    } )*
                    _ => unreachable!("layers hold only known settings"),
                }
                Ok(())
            }

            /// Every setting at its default.
            fn defaults() -> Config {
                Config {
                    $( $field: parse::<$kind>(
                        stringify!($name),
                        &RawValue::Text(String::from($default)),
                        settings!(@range $($lo, $hi)?),
                    ).expect("the table's defaults are valid"), )*
                    compile_options: CompileOptions::default(),
                }
            }
        }
    };
    (@range $lo:literal, $hi:literal) => { Some(($lo, $hi)) };
    (@range) => { None };
    (@serve serve_only) => { true };
    (@serve) => { false };
}

settings! {
    /// The cache directory: only its owner may write it, since it holds native code
    cache_dir => cache_dir: PathBuf as PathKind = default_cache_dir(),
        env "NEXUS_CACHE_DIR", value "DIR";
    /// A read-only cache directory made ahead (`nexus cache warm`, e.g. in an image), looked up after the cache directory; a hit is verified, then copied into the cache directory. Its owner must be this user or root, and nobody else may write it
    seed_dir => seed_dir: Option<PathBuf> as OptionalPath = "",
        env "NEXUS_SEED_DIR", value "DIR";
    /// Memory cache bound, all artifacts together: bytes, or a quantity like 64Mi
    max_cache_size_bytes => max_cache_size_bytes: u64 as Size = "64Mi",
        env "NEXUS_MAX_CACHE_SIZE_BYTES", value "SIZE", range "0" to "1Ti";
    /// Disk cache bound, headers included: bytes, or a quantity like 96Mi
    max_disk_cache_bytes => max_disk_cache_bytes: u64 as Size = "96Mi",
        env "NEXUS_MAX_DISK_CACHE_BYTES", value "SIZE", range "0" to "1Ti";
    /// How long one invocation may run, in milliseconds
    timeout_ms => timeout: Duration as Millis = "1000",
        env "NEXUS_TIMEOUT_MS", value "MS", range "1" to "3600000";
    /// Memory one instance may use: bytes, or a quantity like 64Mi (QuickJS needs a few MiB to start)
    max_memory_bytes => max_memory_bytes: u64 as Size = "64Mi",
        env "NEXUS_MAX_MEMORY_BYTES", value "SIZE", range "4Mi" to "4Gi";
    /// Instances alive at once: the bound on concurrent invocations
    max_instances => max_instances: u32 as Count = "256",
        env "NEXUS_MAX_INSTANCES", value "N", range "1" to "10000";
    /// How long a call waits for a free instance, in milliseconds
    queue_timeout_ms => queue_timeout: Duration as Millis = "5000",
        env "NEXUS_QUEUE_TIMEOUT_MS", value "MS", range "0" to "3600000";
    /// The largest result accepted: bytes, or a quantity like 8Mi
    max_output_bytes => max_output_bytes: u64 as Size = "8Mi",
        env "NEXUS_MAX_OUTPUT_BYTES", value "SIZE", range "1" to "1Gi";
    /// Console lines a second each handler may send to the host's log (the rest are counted, and summed up in one line)
    console_lines_per_second => console_lines_per_second: u32 as Count = "100",
        env "NEXUS_CONSOLE_LINES_PER_SECOND", value "N", range "0" to "1000000";
    /// The address `nexus serve` listens on (port 0: any free port)
    #[serve_only]
    listen => listen: SocketAddr as Addr = "127.0.0.1:8080",
        env "NEXUS_LISTEN", value "ADDR";
    /// The largest HTTP request body `nexus serve` reads (a handler's source, an input)
    #[serve_only]
    max_body_bytes => max_body_bytes: u64 as Size = "16Mi",
        env "NEXUS_MAX_BODY_BYTES", value "SIZE", range "1Ki" to "1Gi";
    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish, in milliseconds
    #[serve_only]
    grace_period_ms => grace_period: Duration as Millis = "20000",
        env "NEXUS_GRACE_PERIOD_MS", value "MS", range "0" to "600000";
    /// When a handler gets its own snapshot (its module evaluated ahead, so calls skip that): `auto` after its first calls unless its top level reads the clock, Math.random or Nexus.stats(); `eager` at registration; `off` never
    #[serve_only]
    snapshot => snapshot: SnapshotPolicy as SnapshotPolicy = "auto",
        env "NEXUS_SNAPSHOT", value "POLICY";
    /// Per-handler snapshot policies, each in place of `snapshot` for the handler it names (a `--handlers` file's stem, a PUT's name): NAME=POLICY pairs separated by commas (`lodash=eager,stamp=off`). A PUT's `?snapshot=` still comes first
    #[serve_only]
    handler_snapshots => handler_snapshots: BTreeMap<String, SnapshotPolicy> as HandlerPolicies = "",
        env "NEXUS_HANDLER_SNAPSHOTS", value "NAME=POLICY,...";
    /// Under `snapshot = auto`, the invocations after which a handler's snapshot is built (in the background)
    #[serve_only]
    snapshot_after => snapshot_after: u32 as Count = "3",
        env "NEXUS_SNAPSHOT_AFTER", value "N", range "1" to "1000000";
    /// Prepared handlers kept loaded at once; past it, the least recently invoked goes back to the plain path (its snapshot stays in the cache)
    #[serve_only]
    max_prepared => max_prepared: u32 as Count = "16",
        env "NEXUS_MAX_PREPARED", value "N", range "0" to "10000";
    /// How `nexus serve` logs: `text` for people, `json` (one object a line) for clusters
    #[serve_only]
    log_format => log_format: LogFormat as LogFormat = "text",
        env "NEXUS_LOG_FORMAT", value "FORMAT";
}

impl Default for Config {
    fn default() -> Self {
        Config::defaults()
    }
}

/// Per user and absolute, never relative to the working directory (a
/// checkout could carry a cache with native code in it):
/// `$XDG_CACHE_HOME/nexus`, else `$HOME/.cache/nexus`, else
/// `<temp dir>/nexus-cache-<uid>`.
fn default_cache_dir() -> String {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let dir = absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|base| base.join("nexus"))
        .unwrap_or_else(|| {
            let uid = rustix::process::geteuid().as_raw();
            std::env::temp_dir().join(format!("nexus-cache-{uid}"))
        });
    dir.display().to_string()
}

/// The settings one source gives; silent on the rest.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    values: BTreeMap<&'static str, RawValue>,
}

fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

fn known_keys() -> String {
    SETTINGS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Layer {
    /// Sets `name` (a setting's snake_case name) to `value`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if no setting has that name.
    pub fn set(&mut self, name: &str, value: RawValue) -> Result<()> {
        let setting = setting(name).ok_or_else(|| Error::Config {
            name: "setting",
            value: name.to_owned(),
            expected: format!("one of {}", known_keys()),
        })?;
        self.values.insert(setting.name, value);
        Ok(())
    }

    /// The setting's value in this layer, if it has one.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.values.get(name)
    }

    /// The `NEXUS_*` variables that `lookup` knows; an empty one counts as
    /// unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Layer {
        let values = SETTINGS
            .iter()
            .filter_map(|s| {
                let value = lookup(s.env).filter(|v| !v.is_empty())?;
                Some((s.name, RawValue::Text(value)))
            })
            .collect();
        Layer { values }
    }

    /// A `nexus.toml` file.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file if it cannot be read or parsed, or
    /// holds a key that is not a setting.
    pub fn from_file(path: &Path) -> Result<Layer> {
        let bad = |expected: String| Error::Config {
            name: "config file",
            value: path.display().to_string(),
            expected,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("a readable TOML file ({e})")))?;
        Layer::from_toml(&text).map_err(|e| match e {
            Error::Config { expected, .. } => bad(expected),
            other => other,
        })
    }

    /// Settings in TOML: each key a setting's name, each value a string or
    /// an integer.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for TOML that does not parse, an unknown key, or a
    /// value of another type.
    pub fn from_toml(text: &str) -> Result<Layer> {
        let expected = |why: String| Error::Config {
            name: "config file",
            value: String::new(),
            expected: format!("TOML whose keys are settings ({}): {why}", known_keys()),
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| expected(e.to_string()))?;
        let mut layer = Layer::default();
        for (key, value) in table {
            let Some(setting) = setting(&key) else {
                return Err(expected(format!("unknown key `{key}`")));
            };
            let raw = match value {
                toml::Value::String(text) => RawValue::Text(text),
                toml::Value::Integer(n) => RawValue::Integer(n),
                other => {
                    return Err(expected(format!(
                        "`{key}` is a {}, not a string or an integer",
                        other.type_str()
                    )))
                }
            };
            layer.values.insert(setting.name, raw);
        }
        Ok(layer)
    }
}

impl Config {
    /// The first value each setting has in `layers`, else its default.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a value that does not parse or is out of
    /// range, naming the setting, the value and what is accepted.
    pub fn resolve(layers: &[Layer]) -> Result<Config> {
        let mut config = Config::defaults();
        for setting in SETTINGS {
            if let Some(raw) = layers.iter().find_map(|l| l.get(setting.name)) {
                config.set(setting.name, raw)?;
            }
        }
        Ok(config)
    }

    /// Checks the ranges of settings made in code rather than resolved
    /// (a `Duration` is checked in whole milliseconds).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for the first value out of range.
    pub fn validate(&self) -> Result<()> {
        let millis = |d: Duration| RawValue::Text(d.as_millis().to_string());
        let size = |n: u64| RawValue::Text(n.to_string());
        let mut check = Config::defaults();
        check.set("timeout_ms", &millis(self.timeout))?;
        check.set("queue_timeout_ms", &millis(self.queue_timeout))?;
        check.set("max_memory_bytes", &size(self.max_memory_bytes))?;
        check.set("max_instances", &size(self.max_instances.into()))?;
        check.set("max_cache_size_bytes", &size(self.max_cache_size_bytes))?;
        check.set("max_disk_cache_bytes", &size(self.max_disk_cache_bytes))?;
        check.set("max_output_bytes", &size(self.max_output_bytes))?;
        check.set("max_body_bytes", &size(self.max_body_bytes))?;
        check.set("grace_period_ms", &millis(self.grace_period))?;
        Ok(())
    }
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

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.to_owned())
    }

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

    #[test]
    fn earlier_layers_win_and_defaults_fill_in() {
        let mut flags = Layer::default();
        flags.set("cache_dir", text("/flag")).unwrap();
        let env = Layer::from_env(|k| {
            (k == "NEXUS_CACHE_DIR" || k == "NEXUS_MAX_CACHE_SIZE_BYTES").then(|| match k {
                "NEXUS_CACHE_DIR" => "/env".to_owned(),
                _ => "8Mi".to_owned(),
            })
        });
        let file =
            Layer::from_toml("max_cache_size_bytes = 1\nmax_disk_cache_bytes = \"1Ki\"").unwrap();
        let config = Config::resolve(&[flags, env, file]).unwrap();
        assert_eq!(config.cache_dir, PathBuf::from("/flag"));
        assert_eq!(config.max_cache_size_bytes, 8 << 20);
        assert_eq!(config.max_disk_cache_bytes, 1024);
        assert_eq!(Config::resolve(&[]).unwrap().max_disk_cache_bytes, 96 << 20);
    }

    #[test]
    fn a_bad_value_names_the_setting_and_what_is_accepted() {
        let env =
            Layer::from_env(|k| (k == "NEXUS_MAX_DISK_CACHE_BYTES").then(|| "lots".to_owned()));
        let message = Config::resolve(&[env]).unwrap_err().to_string();
        assert!(message.contains("max_disk_cache_bytes"), "{message}");
        assert!(message.contains("\"lots\""), "{message}");
        assert!(message.contains("64Mi"), "{message}");
    }

    #[test]
    fn values_out_of_range_or_too_wide_are_refused_with_the_range() {
        for (name, value, says) in [
            ("max_instances", "0", "from 1 to 10000"),
            ("max_instances", "4294967552", "a whole number"),
            ("max_memory_bytes", "1Mi", "from 4Mi to 4Gi"),
            ("timeout_ms", "0", "from 1 to 3600000"),
            ("timeout_ms", "18446744073709551615", "from 1 to 3600000"),
        ] {
            let mut layer = Layer::default();
            layer.set(name, text(value)).unwrap();
            let message = Config::resolve(&[layer]).unwrap_err().to_string();
            assert!(message.contains(name), "{message}");
            assert!(message.contains(says), "{message}");
        }
    }

    #[test]
    fn handler_snapshots_are_name_policy_pairs() {
        let resolve = |value: &str| {
            let mut layer = Layer::default();
            layer.set("handler_snapshots", text(value)).unwrap();
            Config::resolve(&[layer]).map(|c| c.handler_snapshots)
        };
        let policies = resolve(" lodash=eager, stamp = off,,lodash=auto ").unwrap();
        assert_eq!(
            policies.into_iter().collect::<Vec<_>>(),
            [
                ("lodash".to_owned(), SnapshotPolicy::Auto),
                ("stamp".to_owned(), SnapshotPolicy::Off)
            ]
        );
        assert!(resolve("").unwrap().is_empty());
        assert!(Config::default().handler_snapshots.is_empty());
        for bad in ["lodash", "lodash=fast", "Lodash=eager", "a/b=off", "=eager"] {
            let message = resolve(bad).unwrap_err().to_string();
            assert!(message.contains("handler_snapshots"), "{message}");
            assert!(message.contains("NAME=POLICY"), "{message}");
        }
    }

    #[test]
    fn the_table_declares_every_setting_once() {
        let config = Config::default();
        assert_eq!(config.max_memory_bytes, 64 << 20);
        assert_eq!(config.timeout, Duration::from_millis(1000));
        assert_eq!(config.max_instances, 256);
        let mut names: Vec<_> = SETTINGS.iter().map(|s| s.name).collect();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        for s in SETTINGS {
            assert!(s.env.starts_with("NEXUS_"), "{}", s.env);
            assert!(!s.help.trim().is_empty(), "{}", s.name);
        }
        let unknown = Layer::from_toml("cache_size = 1").unwrap_err().to_string();
        assert!(unknown.contains("unknown key `cache_size`"), "{unknown}");
        assert!(unknown.contains("max_cache_size_bytes"), "{unknown}");
    }
}
