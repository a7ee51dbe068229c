//! Settings, and the sources they come from.
//!
//! Precedence: command-line flag > environment variable > config file
//! (`nexus.toml`) > default. Each source is a [`Layer`]; [`Config::resolve`]
//! takes the first layer that sets a value and refuses a bad one with the
//! setting's name, the value and what is accepted.

use std::path::{Path, PathBuf};

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
}

const MI: u64 = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from(".nexus-cache"),
            max_cache_size_bytes: 64 * MI,
            max_disk_cache_bytes: 96 * MI,
            compile_options: CompileOptions::default(),
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
}

impl Layer {
    /// The `NEXUS_*` variables that `lookup` knows.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Layer {
        Layer {
            cache_dir: lookup("NEXUS_CACHE_DIR").map(PathBuf::from),
            max_cache_size_bytes: lookup("NEXUS_MAX_CACHE_SIZE_BYTES").map(SizeValue::Text),
            max_disk_cache_bytes: lookup("NEXUS_MAX_DISK_CACHE_BYTES").map(SizeValue::Text),
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
                "TOML with the keys cache_dir, max_cache_size_bytes, max_disk_cache_bytes: {e}"
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
        let defaults = Config::default();
        let first = |f: fn(&Layer) -> Option<&SizeValue>| layers.iter().find_map(f);
        Ok(Config {
            cache_dir: layers
                .iter()
                .find_map(|l| l.cache_dir.clone())
                .unwrap_or(defaults.cache_dir),
            max_cache_size_bytes: first(|l| l.max_cache_size_bytes.as_ref())
                .map(|v| size("max_cache_size_bytes", v))
                .transpose()?
                .unwrap_or(defaults.max_cache_size_bytes),
            max_disk_cache_bytes: first(|l| l.max_disk_cache_bytes.as_ref())
                .map(|v| size("max_disk_cache_bytes", v))
                .transpose()?
                .unwrap_or(defaults.max_disk_cache_bytes),
            compile_options: defaults.compile_options,
        })
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
