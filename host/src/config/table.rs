//! The settings table: each setting declared once (its name, type,
//! default, environment variable, range and help). The [`Config`] struct,
//! [`SETTINGS`], the defaults, how a value is set and
//! [`Config::validate`] are all generated from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::kinds::{
    parse, Addr, Count, IsolationPolicies, Millis, OptionalPath, PathKind, Ranged, RawValue, Size,
    SnapshotPolicies, ValueKind,
};
use super::{
    CompileOptions, Eviction, Isolation, LogFormat, SlotReset, SnapshotPolicy, StatsScope,
};
use crate::error::Result;

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
    /// What the docs show as the default, where the default depends on
    /// the machine (`cache_dir`'s is per user).
    pub documented_default: Option<&'static str>,
    /// The name and environment variable it had before it was renamed,
    /// still accepted (with a warning) until Nexus 0.3.
    pub formerly: Option<(&'static str, &'static str)>,
}

impl Setting {
    /// The command-line flag, without its dashes: `cache-dir`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The default as the docs show it: the same on every machine.
    pub fn shown_default(&self) -> String {
        self.documented_default
            .map_or_else(|| (self.default)(), str::to_owned)
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

/// `value`, written back as text, parsed within `range`: what
/// [`Config::validate`] runs for each ranged setting.
fn check_range<K: Ranged>(name: &'static str, value: &K::Value, range: (&str, &str)) -> Result<()> {
    parse::<K>(name, &RawValue::Text(K::render(value)), Some(range)).map(drop)
}

/// Declares the settings: the [`Config`] struct, its defaults, [`SETTINGS`]
/// and how a value is set, from one list.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $(#[$serve:ident])?
        $name:ident => $field:ident: $ty:ty as $kind:ident = $default:expr,
            env $env:literal, value $value_name:literal
            $(, range $lo:literal to $hi:literal)?
            $(, shown $shown:literal)?
            $(, formerly $old:literal, $old_env:literal)?;
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
                accepts: <$kind as ValueKind>::ACCEPTS,
                serve_only: settings!(@serve $($serve)?),
                documented_default: settings!(@option $($shown)?),
                formerly: settings!(@option $(($old, $old_env))?),
            },
        )*];

        impl Config {
            /// Sets `name` from `raw`, checked.
            pub(super) fn set(&mut self, name: &str, raw: &RawValue) -> Result<()> {
                match name {
                    $( stringify!($name) => {
                        self.$field = parse::<$kind>(
                            stringify!($name), raw, settings!(@range $($lo, $hi)?))?;
                    } )*
                    _ => unreachable!("layers hold only known settings"),
                }
                Ok(())
            }

            /// Checks every setting that has a range against it: for a
            /// `Config` made in code rather than resolved (a `Duration` is
            /// checked in whole milliseconds).
            ///
            /// # Errors
            ///
            /// [`Error::Config`](crate::Error::Config) for the first value out
            /// of range.
            pub fn validate(&self) -> Result<()> {
                $( settings!(@check self, $name, $field, $kind $(, $lo, $hi)?); )*
                Ok(())
            }

            /// Sets `name` from `raw`, parsed but not range-checked: how a
            /// test makes a value only [`validate`](Self::validate) refuses.
            #[cfg(test)]
            pub(super) fn set_unchecked(&mut self, name: &str, raw: &RawValue) {
                match name {
                    $( stringify!($name) => {
                        self.$field = parse::<$kind>(stringify!($name), raw, None)
                            .expect("the value parses");
                    } )*
                    _ => unreachable!("a known setting"),
                }
            }

            /// Every setting at its default.
            pub(super) fn defaults() -> Config {
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
    (@check $self:ident, $name:ident, $field:ident, $kind:ident, $lo:literal, $hi:literal) => {
        check_range::<$kind>(stringify!($name), &$self.$field, ($lo, $hi))?;
    };
    (@check $self:ident, $name:ident, $field:ident, $kind:ident) => {};
    (@option $value:expr) => { Some($value) };
    (@option) => { None };
    (@range $lo:literal, $hi:literal) => { Some(($lo, $hi)) };
    (@range) => { None };
    (@serve serve_only) => { true };
    (@serve) => { false };
}

settings! {
    /// The cache directory: only its owner may write it, since it holds native code
    cache_dir => cache_dir: PathBuf as PathKind = default_cache_dir(),
        env "NEXUS_CACHE_DIR", value "DIR",
        shown "per user: `$XDG_CACHE_HOME/nexus`, else `~/.cache/nexus`";
    /// A read-only cache directory made ahead (`nexus cache warm`, e.g. in an image), looked up after the cache directory; a hit is verified, then copied into the cache directory. Its owner must be this user or root, and nobody else may write it
    seed_dir => seed_dir: Option<PathBuf> as OptionalPath = "",
        env "NEXUS_SEED_DIR", value "DIR";
    /// Memory cache bound, all artifacts together: bytes, or a quantity like 64Mi
    max_cache_size_bytes => max_cache_size_bytes: u64 as Size = "64Mi",
        env "NEXUS_MAX_CACHE_SIZE_BYTES", value "SIZE", range "0" to "1Ti";
    /// Disk cache bound, headers included: bytes, or a quantity like 96Mi
    max_disk_cache_bytes => max_disk_cache_bytes: u64 as Size = "96Mi",
        env "NEXUS_MAX_DISK_CACHE_BYTES", value "SIZE", range "0" to "1Ti";
    /// What both cache tiers evict first to make room: `cost` (the entry whose rebuild would cost least per byte it frees, counting its hits: a snapshot that took seconds outlives a bytecode that took milliseconds; a new entry worth less than those it would push out is not kept) or `recency` (the least recently used)
    cache_eviction => cache_eviction: Eviction as Eviction = "cost",
        env "NEXUS_CACHE_EVICTION", value "POLICY";
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
    /// How a pool slot is reset for its next instance: `scan` resets only the pages the last instance dirtied (the kernel's page scan; fastest, but it misses pages swapped out, which the next instance could then read); `full` decommits every page (cannot miss one; the next call faults its pages in again); `auto` is `scan` unless the host has swap
    slot_reset => slot_reset: SlotReset as SlotReset = "auto",
        env "NEXUS_SLOT_RESET", value "MODE";
    /// Whose figures `Nexus.stats()` shows a handler: `handler`, its own (its calls and compiles; the cache records zero, since they are every tenant's); `host`, the whole host's (every handler's calls, and the caches: only where the handlers may see each other's traffic). `GET /stats` is always the host's
    stats_scope => stats_scope: StatsScope as StatsScope = "handler",
        env "NEXUS_STATS_SCOPE", value "SCOPE";
    /// The address `nexus serve` listens on (port 0: any free port)
    #[serve_only]
    listen => listen: SocketAddr as Addr = "127.0.0.1:8080",
        env "NEXUS_LISTEN", value "ADDR";
    /// A file of bearer tokens, one per line, that management (PUT and DELETE of /handlers/NAME) needs (`Authorization: Bearer TOKEN`); re-read when it changes (two lines: a rotation). Without it, management is open on a loopback address and disabled (403) on any other. Only its owner (and the server's own group) may read it
    #[serve_only]
    admin_token_file => admin_token_file: Option<PathBuf> as OptionalPath = "",
        env "NEXUS_ADMIN_TOKEN_FILE", value "FILE";
    /// A file of bearer tokens, as admin_token_file, that invocations and reads (GET /handlers, GET /stats) need too; admin tokens are taken as well. Without it, they are open, as a function endpoint's are (/metrics, /healthz and /readyz always are)
    #[serve_only]
    invoke_token_file => invoke_token_file: Option<PathBuf> as OptionalPath = "",
        env "NEXUS_INVOKE_TOKEN_FILE", value "FILE";
    /// The largest HTTP request body `nexus serve` reads (a handler's source, an input)
    #[serve_only]
    max_body_bytes => max_body_bytes: u64 as Size = "16Mi",
        env "NEXUS_MAX_BODY_BYTES", value "SIZE", range "1Ki" to "1Gi";
    /// Request body bytes `nexus serve` holds at once, all requests together (bodies being read, and the inputs and sources they became, until answered); past it, a request is answered 503 busy at once. At least max_body_bytes
    #[serve_only]
    max_body_memory_bytes => max_body_memory_bytes: u64 as Size = "64Mi",
        env "NEXUS_MAX_BODY_MEMORY_BYTES", value "SIZE", range "1Ki" to "64Gi";
    /// How long `nexus serve` waits for a request's body once its headers arrived, in milliseconds; past it, 408 and the connection is closed
    #[serve_only]
    body_timeout_ms => body_timeout: Duration as Millis = "30000",
        env "NEXUS_BODY_TIMEOUT_MS", value "MS", range "1" to "3600000";
    /// How long `nexus serve` waits for a request's headers, in milliseconds, counted from when it starts waiting: a new connection, or one kept alive after its last response (so this is the keep-alive idle timeout too); past it, the connection is closed
    #[serve_only]
    header_timeout_ms => header_timeout: Duration as Millis = "30000",
        env "NEXUS_HEADER_TIMEOUT_MS", value "MS", range "1" to "3600000";
    /// Connections `nexus serve` holds open at once; past it, new ones wait in the listen backlog until one closes (the open-file limit is raised to fit, where the hard limit allows)
    #[serve_only]
    max_connections => max_connections: u32 as Count = "1024",
        env "NEXUS_MAX_CONNECTIONS", value "N", range "1" to "1000000";
    /// Invocations `nexus serve` lets wait for a call thread at once; past it, a call is answered 503 busy at once (each waits at most queue_timeout_ms)
    #[serve_only]
    max_queued => max_queued: u32 as Count = "1024",
        env "NEXUS_MAX_QUEUED", value "N", range "0" to "1000000";
    /// Calls of one handler `nexus serve` runs at once, so that a flooded handler leaves call threads to the others: 0 is half the call threads (one per core, and one more), rounded up; never more than all of them but one. Past it, the handler's calls wait (within queue_timeout_ms) while other handlers' run
    #[serve_only]
    max_instances_per_handler => max_instances_per_handler: u32 as Count = "0",
        env "NEXUS_MAX_INSTANCES_PER_HANDLER", value "N", range "0" to "10000";
    /// Handlers `nexus serve` holds registered at once; past it, a registration of a new name is refused (registry_full)
    #[serve_only]
    max_handlers => max_handlers: u32 as Count = "10000",
        env "NEXUS_MAX_HANDLERS", value "N", range "1" to "1000000";
    /// Handlers the metrics name, each with its own series (about 25 each); handlers registered past it are counted together under handler="_other", and nexus_handler_series_folded_total counts them
    #[serve_only]
    max_handler_series => max_handler_series: u32 as Count = "500",
        env "NEXUS_MAX_HANDLER_SERIES", value "N", range "0" to "100000";
    /// Bytecode bytes the registered handlers hold together (outside the memory cache's bound); past it, a registration is refused (registry_full)
    #[serve_only]
    max_registry_bytes => max_registry_bytes: u64 as Size = "64Mi",
        env "NEXUS_MAX_REGISTRY_BYTES", value "SIZE", range "1Mi" to "64Gi";
    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish, in milliseconds
    #[serve_only]
    grace_period_ms => grace_period: Duration as Millis = "20000",
        env "NEXUS_GRACE_PERIOD_MS", value "MS", range "0" to "600000";
    /// When a handler gets its own snapshot (its module evaluated ahead, so calls skip that): `auto` after its first calls unless its top level reads Math.random or Nexus.stats() (a clock read there is frozen at this process's time, as Node's module load freezes it); `eager` at registration; `off` never
    #[serve_only]
    snapshot => snapshot: SnapshotPolicy as SnapshotPolicy = "auto",
        env "NEXUS_SNAPSHOT", value "POLICY";
    /// Per-handler snapshot policies, each in place of `snapshot` for the handler it names (a `--handlers` file's stem, a PUT's name): NAME=POLICY pairs separated by commas (`lodash=eager,stamp=off`). A PUT's `?snapshot=` still comes first
    #[serve_only]
    handler_snapshots => handler_snapshots: BTreeMap<String, SnapshotPolicy> as SnapshotPolicies = "",
        env "NEXUS_HANDLER_SNAPSHOTS", value "NAME=POLICY,...";
    /// Under `snapshot = auto`, the invocations after which a handler's snapshot is built (in the background)
    #[serve_only]
    snapshot_after => snapshot_after: u32 as Count = "3",
        env "NEXUS_SNAPSHOT_AFTER", value "N", range "1" to "1000000";
    /// Snapshots kept loaded at once (handlers on the prepared path); past it, the least recently invoked handler goes back to the plain path (its snapshot stays in the cache)
    #[serve_only]
    max_snapshots => max_snapshots: u32 as Count = "16",
        env "NEXUS_MAX_SNAPSHOTS", value "N", range "0" to "10000",
        formerly "max_prepared", "NEXUS_MAX_PREPARED";
    /// Whether a handler's calls each get a fresh instance (`per-call`: nothing a call leaves behind is seen by the next) or may run in an instance an earlier call of the same handler version used (`reuse`: module state persists between calls, as in Node; faster). Only for handlers whose owner trusts them with their own state
    #[serve_only]
    isolation => isolation: Isolation as Isolation = "per-call",
        env "NEXUS_ISOLATION", value "ISOLATION";
    /// Per-handler isolation, each in place of `isolation` for the handler it names: NAME=ISOLATION pairs separated by commas (`counter=reuse`). A PUT's `?isolation=` still comes first
    #[serve_only]
    handler_isolation => handler_isolation: BTreeMap<String, Isolation> as IsolationPolicies = "",
        env "NEXUS_HANDLER_ISOLATION", value "NAME=ISOLATION,...";
    /// Under `reuse`, the calls one instance serves before it is dropped (the next call gets a fresh one)
    #[serve_only]
    reuse_max_calls => reuse_max_calls: u32 as Count = "1000",
        env "NEXUS_REUSE_MAX_CALLS", value "N", range "1" to "1000000";
    /// Under `reuse`, how long a kept instance may sit idle before it is dropped, in milliseconds
    #[serve_only]
    reuse_idle_ms => reuse_idle: Duration as Millis = "30000",
        env "NEXUS_REUSE_IDLE_MS", value "MS", range "1" to "3600000";
    /// Under `reuse`, idle instances kept at once, over all handlers: each holds a pool slot and its memory (at most reuse_max_memory_percent of max_memory_bytes); 0 turns reuse off
    #[serve_only]
    reuse_max_instances => reuse_max_instances: u32 as Count = "16",
        env "NEXUS_REUSE_MAX_INSTANCES", value "N", range "0" to "10000";
    /// Under `reuse`, an instance whose memory has grown past this share of max_memory_bytes, in percent, is dropped after its call rather than kept
    #[serve_only]
    reuse_max_memory_percent => reuse_max_memory_percent: u32 as Count = "50",
        env "NEXUS_REUSE_MAX_MEMORY_PERCENT", value "PERCENT", range "1" to "100";
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
