//! `nexus component`: the guest component as the host runs it, for jco,
//! `wasm-tools` and other hosts.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use nexus_host::{Runtime, GUEST_FINGERPRINT, GUEST_WASM};

use super::settings::Settings;
use super::{usage, Failure};

#[derive(Args)]
pub(crate) struct ComponentArgs {
    /// Where to write the component.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Write the pre-initialized snapshot (QuickJS's runtime and context
    /// already created, as the host instantiates it) instead of the plain
    /// build. Takes about 2 s: it runs the guest's initializer under Wizer.
    #[arg(long)]
    pre_initialized: bool,
    #[command(flatten)]
    settings: Settings,
}

pub(crate) fn component(args: ComponentArgs) -> Result<(), Failure> {
    let bytes = if args.pre_initialized {
        Runtime::new(args.settings.resolve()?)?.pre_initialized_guest()?
    } else {
        GUEST_WASM.to_vec()
    };
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))
        .map_err(usage)?;
    println!(
        "{}: {} bytes, {} guest {GUEST_FINGERPRINT}",
        args.output.display(),
        bytes.len(),
        if args.pre_initialized {
            "pre-initialized"
        } else {
            "plain"
        }
    );
    Ok(())
}
