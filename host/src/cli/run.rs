//! `nexus run` and `nexus compile`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use nexus_host::{Bytecode, Runtime};

use super::settings::Settings;
use super::{compile_file, handler_name, read_file, usage, Failure};

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The handler: an ES module with a default-export function, or a
    /// bytecode file from `nexus compile`.
    file: PathBuf,
    /// The input, as JSON text. Without --input or --input-file, or empty:
    /// `{}`. Input that is not JSON is a usage error (exit 2).
    #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the input JSON from PATH (`-` for stdin).
    #[arg(long, value_name = "PATH")]
    input_file: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
pub(crate) struct CompileArgs {
    /// The handler: an ES module with a default-export function.
    file: PathBuf,
    /// Where to write the bytecode (conventionally FILE.qjsc).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    #[command(flatten)]
    settings: Settings,
}

pub(crate) fn run(args: RunArgs) -> Result<(), Failure> {
    let file = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(usage)?;
    let input = match (&args.input, &args.input_file) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) => read_file(path).map_err(usage)?,
        (None, None) => String::new(),
    };
    // Nothing at all is `{}`, as an empty body is over HTTP.
    let input = match input.trim() {
        "" => "{}".to_owned(),
        _ => input,
    };
    let runtime = Runtime::new(args.settings.resolve()?)?;
    let answer = if Bytecode::is_file(&file) {
        let bytecode = Bytecode::from_file(&file)?;
        runtime.invoke_bytecode(&bytecode, &input, None)
    } else {
        let source = String::from_utf8(file)
            .with_context(|| {
                format!(
                    "{} is neither UTF-8 JavaScript nor a bytecode file",
                    args.file.display()
                )
            })
            .map_err(usage)?;
        let handler = runtime.compile(&handler_name(&args.file), &source)?;
        runtime.invoke(&handler, &input)
    }?;
    println!("{}", answer.output);
    Ok(())
}

pub(crate) fn compile(args: CompileArgs) -> Result<(), Failure> {
    let (_, handler) = compile_file(&args.file, args.settings)?;
    std::fs::write(&args.output, Bytecode::from(&handler).to_file())
        .with_context(|| format!("cannot write {}", args.output.display()))
        .map_err(usage)?;
    Ok(())
}
