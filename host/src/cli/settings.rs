//! The settings every command takes, as flags, resolved with the
//! environment and the config file into a [`Config`].

use std::path::PathBuf;

use clap::Args;
use nexus_host::config::{Layer, SizeValue};
use nexus_host::Config;

use super::{usage, Failure};

/// Settings. A flag beats its environment variable, which beats the config
/// file, which beats the default.
#[derive(Args, Clone)]
pub(crate) struct Settings {
    /// The cache directory [env: NEXUS_CACHE_DIR] [default: .nexus-cache]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Memory cache bound: bytes, or a quantity like 64Mi
    /// [env: NEXUS_MAX_CACHE_SIZE_BYTES] [default: 64Mi]
    #[arg(long, value_name = "SIZE")]
    max_cache_size_bytes: Option<String>,
    /// Disk cache bound: bytes, or a quantity like 96Mi
    /// [env: NEXUS_MAX_DISK_CACHE_BYTES] [default: 96Mi]
    #[arg(long, value_name = "SIZE")]
    max_disk_cache_bytes: Option<String>,
    /// How long one invocation may run, in milliseconds
    /// [env: NEXUS_TIMEOUT_MS] [default: 1000]
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<String>,
    /// Memory one instance may use: bytes, or a quantity like 64Mi
    /// [env: NEXUS_MAX_MEMORY_BYTES] [default: 64Mi]
    #[arg(long, value_name = "SIZE")]
    max_memory_bytes: Option<String>,
    /// Instances alive at once (concurrent invocations)
    /// [env: NEXUS_MAX_INSTANCES] [default: 256]
    #[arg(long, value_name = "N")]
    max_instances: Option<String>,
    /// How long a call waits for a free instance, in milliseconds
    /// [env: NEXUS_QUEUE_TIMEOUT_MS] [default: 5000]
    #[arg(long, value_name = "MS")]
    queue_timeout_ms: Option<String>,
    /// The largest result accepted: bytes, or a quantity like 8Mi
    /// [env: NEXUS_MAX_OUTPUT_BYTES] [default: 8Mi]
    #[arg(long, value_name = "SIZE")]
    max_output_bytes: Option<String>,
    /// Config file (TOML, the settings' snake_case names as keys)
    /// [env: NEXUS_CONFIG] [default: ./nexus.toml if present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Settings {
    pub(crate) fn resolve(self) -> Result<Config, Failure> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file = self
            .config
            .or_else(|| env("NEXUS_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("nexus.toml")).filter(|p| p.exists()));
        let flags = Layer {
            cache_dir: self.cache_dir,
            max_cache_size_bytes: self.max_cache_size_bytes.map(SizeValue::Text),
            max_disk_cache_bytes: self.max_disk_cache_bytes.map(SizeValue::Text),
            timeout_ms: self.timeout_ms.map(SizeValue::Text),
            max_memory_bytes: self.max_memory_bytes.map(SizeValue::Text),
            max_instances: self.max_instances.map(SizeValue::Text),
            queue_timeout_ms: self.queue_timeout_ms.map(SizeValue::Text),
            max_output_bytes: self.max_output_bytes.map(SizeValue::Text),
        };
        let mut layers = vec![flags, Layer::from_env(env)];
        if let Some(path) = file {
            layers.push(Layer::from_file(&path).map_err(usage)?);
        }
        Config::resolve(&layers).map_err(usage)
    }
}
