//! The settings every command takes, as flags made from the library's one
//! table ([`SETTINGS`]), resolved with the environment and the config file
//! into a [`Config`].

use std::path::PathBuf;

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use nexus_host::{Config, Layer, RawValue, SETTINGS};

use super::{usage, Failure};

/// The config file flag and its environment variable.
const CONFIG: &str = "config";
const CONFIG_ENV: &str = "NEXUS_CONFIG";

/// Settings given as flags. A flag beats its environment variable, which
/// beats the config file, which beats the default. `SERVE`: whether the
/// command is `nexus serve`, which also takes the server's own settings.
#[derive(Clone, Default)]
pub(crate) struct Settings<const SERVE: bool = false> {
    flags: Vec<(&'static str, String)>,
    /// Old flag names given (clap answers to them as aliases).
    renamed_flags: Vec<(&'static str, &'static str)>,
    config: Option<PathBuf>,
}

/// The settings `nexus serve` takes: all of them.
pub(crate) type ServeSettings = Settings<true>;

/// The settings a command takes.
fn taken<const SERVE: bool>() -> impl Iterator<Item = &'static nexus_host::Setting> {
    SETTINGS.iter().filter(|s| SERVE || !s.serve_only)
}

impl<const SERVE: bool> Args for Settings<SERVE> {
    fn augment_args(mut cmd: Command) -> Command {
        for setting in taken::<SERVE>() {
            let mut arg = Arg::new(setting.name)
                .long(setting.flag())
                .value_name(setting.value_name)
                .help(setting.long_help())
                .help_heading("Settings");
            if let Some((old, _)) = setting.formerly {
                arg = arg.alias(old.replace('_', "-"));
            }
            cmd = cmd.arg(arg);
        }
        cmd.arg(
            Arg::new(CONFIG)
                .long(CONFIG)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "Config file: TOML, the settings' snake_case names as keys \
                     [env: {CONFIG_ENV}] [default: ./nexus.toml if present]"
                ))
                .help_heading("Settings"),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl<const SERVE: bool> FromArgMatches for Settings<SERVE> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut settings = Settings::default();
        settings.update_from_arg_matches(matches)?;
        Ok(settings)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in taken::<SERVE>() {
            if let Some(value) = matches.get_one::<String>(setting.name) {
                self.flags.retain(|(name, _)| *name != setting.name);
                self.flags.push((setting.name, value.clone()));
                if let Some((old, _)) = setting.formerly {
                    let old_flag = format!("--{}", old.replace('_', "-"));
                    if std::env::args()
                        .any(|a| a == old_flag || a.starts_with(&format!("{old_flag}=")))
                    {
                        self.renamed_flags.push((old, setting.name));
                    }
                }
            }
        }
        if let Some(path) = matches.get_one::<PathBuf>(CONFIG) {
            self.config = Some(path.clone());
        }
        Ok(())
    }
}

impl<const SERVE: bool> Settings<SERVE> {
    /// The settings, resolved; a setting given by its old name is warned
    /// about (in the log, which must already be set up).
    pub(crate) fn resolve(self) -> Result<Config, Failure> {
        let (config, renamed) = self.resolve_noting_renames()?;
        warn_renamed(&renamed);
        Ok(config)
    }

    /// The settings, resolved, and the old names (of renamed settings) that
    /// were used, for [`warn_renamed`] once the log is set up.
    pub(crate) fn resolve_noting_renames(self) -> Result<(Config, Vec<String>), Failure> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file = self
            .config
            .or_else(|| env(CONFIG_ENV).map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("nexus.toml")).filter(|p| p.exists()));
        let mut flags = Layer::default();
        for (name, value) in self.flags {
            flags.set(name, RawValue::Text(value)).map_err(usage)?;
        }
        let mut layers = vec![flags, Layer::from_env(env)];
        if let Some(path) = file {
            layers.push(Layer::from_file(&path).map_err(usage)?);
        }
        let flag = |name: &str| format!("--{}", name.replace('_', "-"));
        let renamed = (self.renamed_flags.iter())
            .map(|(old, new)| (flag(old), flag(new)))
            .chain(
                layers
                    .iter()
                    .flat_map(Layer::renamed)
                    .map(|(old, new)| (old.to_string(), new.to_string())),
            )
            .map(|(old, new)| {
                format!("{old} is the old name of {new}; it is accepted until Nexus 0.3: use {new}")
            })
            .collect();
        Ok((Config::resolve(&layers).map_err(usage)?, renamed))
    }
}

/// Logs each warning about an old setting name.
pub(crate) fn warn_renamed(renamed: &[String]) {
    for warning in renamed {
        tracing::warn!("{warning}");
    }
}
