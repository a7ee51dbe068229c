//! The library's error type: one variant per thing a caller can act on.
//!
//! Layer: a leaf (the engine maps the guest's own error variants onto it).

use std::fmt;

/// Everything `nexus_host` can fail with.
///
/// The handler variants (`Compile` … `InvalidModule`) are the guest's own
/// verdicts; the rest are the host's (limits, traps, configuration).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source is not a valid ES module. `line` and `column` are 1-based;
    /// 0 where the failure has no position (an unresolvable import).
    #[error("{}", position(file, *line, *column, message))]
    Compile {
        /// QuickJS's message.
        message: String,
        /// The handler's name, as given to compile.
        file: String,
        /// 1-based line, or 0.
        line: u32,
        /// 1-based column, or 0.
        column: u32,
    },
    /// The handler threw, or its promise was rejected.
    #[error("{}", js_exception(name, message, stack))]
    Runtime {
        /// The thrown error's `name` (`TypeError`, …).
        name: String,
        /// Its `message`.
        message: String,
        /// Its `stack`, frames as `at f (file:line:column)`.
        stack: String,
    },
    /// The input is not JSON.
    #[error("the input is not JSON: {0}")]
    InvalidInput(String),
    /// The handler's result cannot be represented as JSON.
    #[error("the handler's result cannot be JSON: {0}")]
    InvalidOutput(String),
    /// Bytecode from another guest build, or damaged.
    #[error("invalid bytecode: {0}")]
    InvalidBytecode(String),
    /// The module does not export a default function.
    #[error("invalid handler module: {0}")]
    InvalidModule(String),
    /// The handler ran past its timeout; its instance was discarded.
    #[error("the handler ran past its {} ms timeout", limit.as_millis())]
    Timeout {
        /// The timeout the call had.
        limit: std::time::Duration,
    },
    /// The handler needed more memory than its instance may have.
    #[error("the handler ran out of memory (limit: {limit} bytes per instance)")]
    OutOfMemory {
        /// The cap, in bytes.
        limit: u64,
    },
    /// Unbounded recursion, or recursion too deep for the handler's stack.
    #[error("the handler overflowed the wasm stack (recursion inside a built-in, too deep for QuickJS to catch)")]
    StackOverflow,
    /// The result is larger than the runtime accepts.
    #[error(
        "the handler's result is {size} bytes, over the {limit}-byte limit (max_output_bytes)"
    )]
    OutputTooLarge {
        /// The result's size, in bytes.
        size: u64,
        /// `max_output_bytes`.
        limit: u64,
    },
    /// Every instance slot stayed busy for as long as a call may wait.
    #[error("all {max_instances} instances are busy; waited {} ms (raise max_instances or retry)", waited.as_millis())]
    Busy {
        /// The bound on concurrent instances.
        max_instances: u32,
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// The call's caller went away (a client that disconnected): it was
    /// stopped, or never started.
    #[error("the call was cancelled: its caller went away")]
    Cancelled,
    /// The registry holds as many handlers, or as many bytes, as it may.
    #[error("the registry is full: {detail} (raise {setting}, or remove handlers)")]
    RegistryFull {
        /// The setting that bounds it: `max_handlers` or `max_registry_bytes`.
        setting: &'static str,
        /// What the registration would have made it hold.
        detail: String,
    },
    /// The handlers directory cannot be written: it is the registry, and
    /// read-only (a mounted ConfigMap, say).
    #[error("the handlers directory {dir} is read-only, so it cannot register or remove handlers: change the handlers there (for a ConfigMap, `kubectl apply -k`)")]
    ReadOnlyRegistry {
        /// The directory.
        dir: String,
    },
    /// A handler name the runtime cannot use.
    #[error("invalid handler name {0:?}: {1}")]
    InvalidName(String, &'static str),
    /// A setting was refused.
    #[error("invalid setting {name} = {value:?}: {expected}")]
    Config {
        /// The setting's name (`timeout_ms`).
        name: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// The guest trapped for a reason that is not one of the above.
    #[error("the handler's instance trapped: {0}")]
    Trap(String),
    /// Setting up the engine or the guest component failed.
    #[error("engine: {0:#}")]
    Engine(#[source] anyhow::Error),
    /// The host itself failed: a worker thread panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

fn position(file: &str, line: u32, column: u32, message: &str) -> String {
    if line == 0 {
        format!("{file}: {message}")
    } else {
        format!("{file}:{line}:{column}: {message}")
    }
}

fn js_exception(name: &str, message: &str, stack: &str) -> impl fmt::Display {
    let mut text = if message.is_empty() {
        name.to_owned()
    } else {
        format!("{name}: {message}")
    };
    if !stack.trim().is_empty() {
        text.push('\n');
        text.push_str(stack.trim_end());
    }
    text
}

impl Error {
    /// Every [`kind`](Self::kind), in a fixed order: the `n`th is the kind
    /// of the variants whose [`index`](Self::index) is `n`.
    pub const KINDS: [&'static str; 19] = [
        "compile_error",
        "runtime_error",
        "invalid_input",
        "invalid_output",
        "invalid_bytecode",
        "invalid_module",
        "invalid_name",
        "timeout",
        "out_of_memory",
        "stack_overflow",
        "output_too_large",
        "busy",
        "config",
        "trap",
        "engine",
        "internal",
        "registry_full",
        "cancelled",
        "read_only_registry",
    ];

    /// This error's position in [`KINDS`](Self::KINDS). The match is
    /// exhaustive, so a new variant cannot be left without a kind.
    pub fn index(&self) -> usize {
        match self {
            Error::Compile { .. } => 0,
            Error::Runtime { .. } => 1,
            Error::InvalidInput(_) => 2,
            Error::InvalidOutput(_) => 3,
            Error::InvalidBytecode(_) => 4,
            Error::InvalidModule(_) => 5,
            Error::InvalidName(..) => 6,
            Error::Timeout { .. } => 7,
            Error::OutOfMemory { .. } => 8,
            Error::StackOverflow => 9,
            Error::OutputTooLarge { .. } => 10,
            Error::Busy { .. } => 11,
            Error::Config { .. } => 12,
            Error::Trap(_) => 13,
            Error::Engine(_) => 14,
            Error::Internal(_) => 15,
            Error::RegistryFull { .. } => 16,
            Error::Cancelled => 17,
            Error::ReadOnlyRegistry { .. } => 18,
        }
    }

    /// A stable, machine-readable name for the kind of failure, as the CLI
    /// prints it (`error[timeout]: …`) and metrics label it.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.index()]
    }

    /// The kind's own fields, named as the HTTP API and the Node package
    /// name them: a compile error's `message`, `file`, `line` and
    /// `column`; an exception's `name`, `message` and `stack`; `limit_ms`,
    /// `limit_bytes`, `size_bytes`; a refused setting's `name`, `value` and
    /// what it would have taken (`expected`).
    /// Neither `kind` nor the whole message is among them.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let pairs: Vec<(&str, serde_json::Value)> = match self {
            Error::Compile {
                message,
                file,
                line,
                column,
            } => vec![
                ("message", json!(message)),
                ("file", json!(file)),
                ("line", json!(line)),
                ("column", json!(column)),
            ],
            Error::Runtime {
                name,
                message,
                stack,
            } => vec![
                ("name", json!(name)),
                ("message", json!(message)),
                ("stack", json!(stack)),
            ],
            Error::Timeout { limit } => vec![("limit_ms", json!(limit.as_millis() as u64))],
            Error::OutOfMemory { limit } => vec![("limit_bytes", json!(limit))],
            Error::OutputTooLarge { size, limit } => {
                vec![("size_bytes", json!(size)), ("limit_bytes", json!(limit))]
            }
            Error::Config {
                name,
                value,
                expected,
            } => vec![
                ("name", json!(name)),
                ("value", json!(value)),
                ("expected", json!(expected)),
            ],
            _ => Vec::new(),
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Whether the handler (its source, input or result) is at fault, as
    /// opposed to the host.
    pub fn is_handler_error(&self) -> bool {
        !matches!(
            self,
            Error::Config { .. }
                | Error::Engine(_)
                | Error::Busy { .. }
                | Error::Internal(_)
                | Error::RegistryFull { .. }
                | Error::Cancelled
                | Error::ReadOnlyRegistry { .. }
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// One error of every variant.
    pub(crate) fn every_variant() -> Vec<Error> {
        vec![
            Error::Compile {
                message: "m".into(),
                file: "f.js".into(),
                line: 1,
                column: 1,
            },
            Error::Runtime {
                name: "TypeError".into(),
                message: "m".into(),
                stack: String::new(),
            },
            Error::InvalidInput("x".into()),
            Error::InvalidOutput("x".into()),
            Error::InvalidBytecode("x".into()),
            Error::InvalidModule("x".into()),
            Error::InvalidName("A".into(), "uppercase"),
            Error::Timeout {
                limit: Duration::from_millis(1),
            },
            Error::OutOfMemory { limit: 1 },
            Error::StackOverflow,
            Error::OutputTooLarge { size: 2, limit: 1 },
            Error::Busy {
                max_instances: 1,
                waited: Duration::ZERO,
            },
            Error::Config {
                name: "timeout_ms",
                value: "0".into(),
                expected: "more".into(),
            },
            Error::Trap("x".into()),
            Error::Engine(anyhow::anyhow!("x")),
            Error::Internal("x".into()),
            Error::RegistryFull {
                setting: "max_handlers",
                detail: "x".into(),
            },
            Error::Cancelled,
            Error::ReadOnlyRegistry { dir: "/d".into() },
        ]
    }

    #[test]
    fn every_variant_has_its_own_kind_in_kinds() {
        let errors = every_variant();
        let mut kinds: Vec<_> = errors.iter().map(Error::kind).collect();
        assert_eq!(kinds, Error::KINDS, "one error per kind, in KINDS' order");
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds.len(),
            Error::KINDS.len(),
            "no two variants share a kind"
        );
    }
}
