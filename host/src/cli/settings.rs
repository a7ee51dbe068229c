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
            cmd = cmd.arg(
                Arg::new(setting.name)
                    .long(setting.flag())
                    .value_name(setting.value_name)
                    .help(setting.long_help())
                    .help_heading("Settings"),
            );
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
            }
        }
        if let Some(path) = matches.get_one::<PathBuf>(CONFIG) {
            self.config = Some(path.clone());
        }
        Ok(())
    }
}

impl<const SERVE: bool> Settings<SERVE> {
    pub(crate) fn resolve(self) -> Result<Config, Failure> {
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
        Config::resolve(&layers).map_err(usage)
    }
}
