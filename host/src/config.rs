//! Settings, and the sources they come from.
//!
//! Precedence: command-line flag > environment variable > config file
//! (`nexus.toml`) > default. Each source is a [`Layer`]; [`Config::resolve`]
//! takes the first layer that sets a value and refuses a bad one with the
//! setting's name, the value and what is accepted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

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

/// Resolved settings for a [`crate::Runtime`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The capability-scoped cache directory.
    pub cache_dir: PathBuf,
    /// Bound of the in-memory cache, all artifacts together.
    pub max_cache_size_bytes: u64,
    /// Bound of the files under `cache_dir`, headers included.
    pub max_disk_cache_bytes: u64,
    /// Bytecode write options.
    pub compile_options: CompileOptions,
    /// How long one invocation may run.
    pub timeout: Duration,
    /// Linear memory one instance may have.
    pub max_memory_bytes: u64,
    /// Instances alive at once: the bound on concurrent invocations.
    pub max_instances: u32,
    /// How long a call waits for a free instance before `Busy`.
    pub queue_timeout: Duration,
    /// The largest result accepted.
    pub max_output_bytes: u64,
}

const MI: u64 = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from(".nexus-cache"),
            max_cache_size_bytes: 64 * MI,
            max_disk_cache_bytes: 96 * MI,
            compile_options: CompileOptions::default(),
            timeout: Duration::from_millis(1000),
            max_memory_bytes: 64 * MI,
            max_instances: 256,
            queue_timeout: Duration::from_millis(5000),
            max_output_bytes: 8 * MI,
        }
    }
}

/// A size as a config file may hold it: an integer or a quantity string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// The settings one source gives; `None` where it is silent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub cache_dir: Option<PathBuf>,
    pub max_cache_size_bytes: Option<SizeValue>,
    pub max_disk_cache_bytes: Option<SizeValue>,
    pub timeout_ms: Option<SizeValue>,
    pub max_memory_bytes: Option<SizeValue>,
    pub max_instances: Option<SizeValue>,
    pub queue_timeout_ms: Option<SizeValue>,
    pub max_output_bytes: Option<SizeValue>,
}

impl Layer {
    /// The `NEXUS_*` variables that `lookup` knows.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Layer {
        Layer {
            cache_dir: lookup("NEXUS_CACHE_DIR").map(PathBuf::from),
            max_cache_size_bytes: lookup("NEXUS_MAX_CACHE_SIZE_BYTES").map(SizeValue::Text),
            max_disk_cache_bytes: lookup("NEXUS_MAX_DISK_CACHE_BYTES").map(SizeValue::Text),
            timeout_ms: lookup("NEXUS_TIMEOUT_MS").map(SizeValue::Text),
            max_memory_bytes: lookup("NEXUS_MAX_MEMORY_BYTES").map(SizeValue::Text),
            max_instances: lookup("NEXUS_MAX_INSTANCES").map(SizeValue::Text),
            queue_timeout_ms: lookup("NEXUS_QUEUE_TIMEOUT_MS").map(SizeValue::Text),
            max_output_bytes: lookup("NEXUS_MAX_OUTPUT_BYTES").map(SizeValue::Text),
        }
    }

    /// A `nexus.toml` file.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file if it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Layer> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            name: "config file",
            value: path.display().to_string(),
            expected: format!("a readable TOML file ({e})"),
        })?;
        toml::from_str(&text).map_err(|e| Error::Config {
            name: "config file",
            value: path.display().to_string(),
            expected: format!(
                "TOML whose keys are settings (cache_dir, max_cache_size_bytes, \
                 max_disk_cache_bytes, timeout_ms, max_memory_bytes, max_instances, \
                 queue_timeout_ms, max_output_bytes): {e}"
            ),
        })
    }
}

impl Config {
    /// The first value each setting has in `layers`, else its default.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a value that does not parse.
    pub fn resolve(layers: &[Layer]) -> Result<Config> {
        let d = Config::default();
        type Parse = fn(&'static str, &SizeValue) -> Result<u64>;
        let pick = |name, get: fn(&Layer) -> Option<&SizeValue>, parse: Parse, default| {
            layers
                .iter()
                .find_map(get)
                .map(|v| parse(name, v))
                .unwrap_or(Ok(default))
        };
        let size = |name, get, default| pick(name, get, size, default);
        let count = |name, get, default| pick(name, get, count, default);
        let millis = |n: u64| Duration::from_millis(n);
        let config = Config {
            cache_dir: layers
                .iter()
                .find_map(|l| l.cache_dir.clone())
                .unwrap_or(d.cache_dir),
            max_cache_size_bytes: size(
                "max_cache_size_bytes",
                |l| l.max_cache_size_bytes.as_ref(),
                d.max_cache_size_bytes,
            )?,
            max_disk_cache_bytes: size(
                "max_disk_cache_bytes",
                |l| l.max_disk_cache_bytes.as_ref(),
                d.max_disk_cache_bytes,
            )?,
            compile_options: d.compile_options,
            timeout: millis(count(
                "timeout_ms",
                |l| l.timeout_ms.as_ref(),
                d.timeout.as_millis() as u64,
            )?),
            max_memory_bytes: size(
                "max_memory_bytes",
                |l| l.max_memory_bytes.as_ref(),
                d.max_memory_bytes,
            )?,
            max_instances: count(
                "max_instances",
                |l| l.max_instances.as_ref(),
                d.max_instances as u64,
            )? as u32,
            queue_timeout: millis(count(
                "queue_timeout_ms",
                |l| l.queue_timeout_ms.as_ref(),
                d.queue_timeout.as_millis() as u64,
            )?),
            max_output_bytes: size(
                "max_output_bytes",
                |l| l.max_output_bytes.as_ref(),
                d.max_output_bytes,
            )?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values no parser can: ranges.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for the first value out of range.
    pub fn validate(&self) -> Result<()> {
        let refuse = |name: &'static str, value: String, expected: &str| {
            Err(Error::Config {
                name,
                value,
                expected: expected.to_owned(),
            })
        };
        if self.timeout.is_zero() {
            return refuse("timeout_ms", "0".into(), "at least 1 millisecond");
        }
        if self.max_instances == 0 || self.max_instances > 10_000 {
            return refuse(
                "max_instances",
                self.max_instances.to_string(),
                "a whole number from 1 to 10000",
            );
        }
        if self.max_memory_bytes < 4 * MI || self.max_memory_bytes > 4096 * MI {
            return refuse(
                "max_memory_bytes",
                self.max_memory_bytes.to_string(),
                "from 4Mi to 4Gi (QuickJS needs a few MiB to start)",
            );
        }
        Ok(())
    }
}

fn count(name: &'static str, value: &SizeValue) -> Result<u64> {
    match value {
        SizeValue::Bytes(n) => Ok(*n),
        SizeValue::Text(text) => text.trim().parse().map_err(|_| Error::Config {
            name,
            value: text.clone(),
            expected: "a whole number".to_owned(),
        }),
    }
}

fn size(name: &'static str, value: &SizeValue) -> Result<u64> {
    match value {
        SizeValue::Bytes(n) => Ok(*n),
        SizeValue::Text(text) => parse_size(text).ok_or_else(|| Error::Config {
            name,
            value: text.clone(),
            expected: "a size in bytes (67108864) or a Kubernetes quantity (64Mi, 128M, 1Gi)"
                .to_owned(),
        }),
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
        let flags = Layer {
            cache_dir: Some("/flag".into()),
            ..Layer::default()
        };
        let env = Layer::from_env(|k| {
            (k == "NEXUS_CACHE_DIR" || k == "NEXUS_MAX_CACHE_SIZE_BYTES").then(|| match k {
                "NEXUS_CACHE_DIR" => "/env".to_owned(),
                _ => "8Mi".to_owned(),
            })
        });
        let file: Layer =
            toml::from_str("max_cache_size_bytes = 1\nmax_disk_cache_bytes = \"1Ki\"").unwrap();
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
}
