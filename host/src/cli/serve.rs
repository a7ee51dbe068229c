//! `nexus serve`.

use std::path::PathBuf;

use clap::Args;

use super::settings::ServeSettings;
use super::{init_tracing, usage, Failure};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Register every `*.js` file in DIR under its file stem
    /// (`hello.js` as `hello`) before reporting ready.
    #[arg(long, value_name = "DIR")]
    handlers: Option<PathBuf>,
    #[command(flatten)]
    settings: ServeSettings,
}

pub(crate) fn serve(args: ServeArgs) -> Result<(), Failure> {
    let (config, renamed) = args.settings.resolve_noting_renames()?;
    init_tracing(config.log_format, "info");
    super::settings::warn_renamed(&renamed);
    crate::server::serve(config, args.handlers).map_err(usage)
}
