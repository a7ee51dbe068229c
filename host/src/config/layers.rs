//! Where settings come from: each source (flags, the environment, a
//! `nexus.toml` file) is a [`Layer`] holding the values it sets, checked
//! against the table's names but not yet parsed.

use std::collections::BTreeMap;
use std::path::Path;

use super::kinds::RawValue;
use super::table::SETTINGS;
use crate::error::{Error, Result};

/// The setting named `name`, by its name or the one it had before a rename.
pub(super) fn setting(name: &str) -> Option<&'static super::Setting> {
    SETTINGS
        .iter()
        .find(|s| s.name == name || s.formerly.is_some_and(|(old, _)| old == name))
}

/// The settings one source gives; silent on the rest.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    values: BTreeMap<&'static str, RawValue>,
    /// Old names this source used: (old, new).
    renamed: Vec<(&'static str, &'static str)>,
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
        self.insert(setting, name, value);
        Ok(())
    }

    fn insert(&mut self, setting: &'static super::Setting, given: &str, value: RawValue) {
        if let Some((old, old_env)) = setting.formerly {
            if given == old {
                self.renamed.push((old, setting.name));
            } else if given == old_env {
                self.renamed.push((old_env, setting.env));
            }
        }
        self.values.insert(setting.name, value);
    }

    /// The setting's value in this layer, if it has one.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.values.get(name)
    }

    /// The old names (of settings renamed since) this source used, each
    /// with its new name in the same form (a key, or a variable): accepted
    /// until Nexus 0.3, worth a warning now.
    pub fn renamed(&self) -> &[(&'static str, &'static str)] {
        &self.renamed
    }

    /// The `NEXUS_*` variables that `lookup` knows; an empty one counts as
    /// unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Layer {
        let mut layer = Layer::default();
        for setting in SETTINGS {
            let old = setting.formerly.map(|(_, env)| env);
            let found = std::iter::once(setting.env)
                .chain(old)
                .find_map(|env| Some((env, lookup(env).filter(|v| !v.is_empty())?)));
            if let Some((env, value)) = found {
                layer.insert(setting, env, RawValue::Text(value));
            }
        }
        layer
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
            layer.insert(setting, &key, raw);
        }
        Ok(layer)
    }
}
