//! Settings: one table declares each setting once (its name, type, default,
//! environment variable, range and help); the [`Config`] struct, the config
//! file's keys, the environment layer and the CLI's flags all come from it.
//!
//! Precedence: command-line flag > environment variable > config file
//! (`nexus.toml`) > default. Each source is a [`Layer`]; [`Config::resolve`]
//! takes the first layer that sets a value and refuses a bad one with the
//! setting's name, the value and what is accepted.
//!
//! The module holds four ideas, a file each: [`kinds`] (how a value is
//! written), [`table`] (the settings, declared once), [`layers`] (where
//! values come from) and, here, resolution.
//!
//! Layer: imports only `error` and `names`.

mod kinds;
mod layers;
mod table;

pub use kinds::{
    parse_size, Eviction, Isolation, LogFormat, RawValue, SlotReset, SnapshotPolicy, StatsScope,
};
pub use layers::Layer;
pub use table::{Config, Setting, SETTINGS};

use crate::error::Result;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.to_owned())
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

    /// A value of `setting`'s kind that parses but lies outside its range.
    fn out_of_range(setting: &Setting) -> RawValue {
        ["0", "4294967295", "18446744073709551615"]
            .into_iter()
            .map(text)
            .find(|raw| {
                let mut layer = Layer::default();
                layer.set(setting.name, raw.clone()).unwrap();
                let refused = Config::resolve(&[layer]).err().map(|e| e.to_string());
                refused.is_some_and(|why| why.contains(" from "))
            })
            .unwrap_or_else(|| panic!("no out-of-range value for {}", setting.name))
    }

    #[test]
    fn validate_checks_every_ranged_setting_of_the_table() {
        let ranged: Vec<_> = SETTINGS.iter().filter(|s| s.range.is_some()).collect();
        assert!(ranged.len() >= 12, "{}", ranged.len());
        for setting in ranged {
            let mut config = Config::default();
            config.set_unchecked(setting.name, &out_of_range(setting));
            let message = config.validate().unwrap_err().to_string();
            assert!(
                message.contains(setting.name),
                "{}: {message}",
                setting.name
            );
        }
        Config::default().validate().unwrap();
    }
}
