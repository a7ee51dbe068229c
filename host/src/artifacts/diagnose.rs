//! Compile failures QuickJS reports without a position, or as the limits'
//! errors, made into `compile_error`s with one: a source nested too deeply
//! to parse (QuickJS's own stack check, or the wasm stack running out), an
//! import of a module (handlers have no loader), and a source too large to
//! compile within the compile limits. A handler's author gets 422 and a
//! line to look at, not a 500 or a 504.

use crate::error::Error;

/// `error`, from compiling `source` as `file`, as the author should see it.
pub(crate) fn diagnose(error: Error, file: &str, source: &str) -> Error {
    let compile = |message: String, (line, column): (u32, u32)| Error::Compile {
        message,
        file: file.to_owned(),
        line,
        column,
    };
    match error {
        Error::StackOverflow => compile(
            "the source is nested too deeply to parse (brackets, blocks or calls inside one \
             another); flatten the deepest nesting"
                .to_owned(),
            deepest(source),
        ),
        Error::Compile {
            message, line: 0, ..
        } if message.contains("Maximum call stack size exceeded")
            || message.contains("stack overflow") =>
        {
            compile(
                format!("{message}: the source is nested too deeply to parse; flatten the deepest nesting"),
                deepest(source),
            )
        }
        Error::Compile {
            message, line: 0, ..
        } if message.contains("could not load module") => {
            let at = module_name(&message).and_then(|name| import_of(source, name));
            compile(message, at.unwrap_or((0, 0)))
        }
        Error::Timeout { limit } => compile(
            format!(
                "compiling took longer than {} s: the source is too large or too complex to \
                 compile (split it, or minify it less aggressively into fewer functions)",
                limit.as_secs()
            ),
            (0, 0),
        ),
        Error::OutOfMemory { limit } => compile(
            format!(
                "compiling needs more than {} MiB: the source is too large to compile",
                limit >> 20
            ),
            (0, 0),
        ),
        other => other,
    }
}

/// The module name in QuickJS's "could not load module 'os'".
fn module_name(message: &str) -> Option<&str> {
    let start = message.find("module '")? + "module '".len();
    let len = message[start..].find('\'')?;
    Some(&message[start..start + len])
}

/// Where `source` imports `name`: its quoted specifier, 1-based.
fn import_of(source: &str, name: &str) -> Option<(u32, u32)> {
    ['"', '\''].iter().find_map(|quote| {
        let quoted = format!("{quote}{name}{quote}");
        source.find(&quoted).map(|at| position(source, at))
    })
}

/// Where the nesting of brackets, braces and parentheses is deepest (its
/// first opening at that depth), skipping strings and comments: 1-based.
fn deepest(source: &str) -> (u32, u32) {
    let bytes = source.as_bytes();
    let (mut depth, mut best, mut at) = (0u32, 0u32, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > best {
                    (best, at) = (depth, i);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            quote @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    position(source, at.min(source.len()))
}

/// The 1-based line and column (in characters) of byte `at`.
fn position(source: &str, at: usize) -> (u32, u32) {
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(error: Error, source: &str) -> (String, u32, u32) {
        match diagnose(error, "h.js", source) {
            Error::Compile {
                message,
                line,
                column,
                ..
            } => (message, line, column),
            other => panic!("not a compile error: {other}"),
        }
    }

    #[test]
    fn an_import_is_placed_at_its_specifier() {
        let source = "// a handler\nimport fs from \"fs\";\nexport default () => 1";
        let error = Error::Compile {
            message: "ReferenceError: could not load module 'fs'".into(),
            file: "h.js".into(),
            line: 0,
            column: 0,
        };
        let (message, line, column) = located(error, source);
        assert!(message.contains("'fs'"), "{message}");
        assert_eq!((line, column), (2, 16));
    }

    #[test]
    fn nesting_too_deep_is_placed_at_its_deepest_point() {
        let source = format!(
            "const s = '(((';\nexport default () => {}1{}",
            "[".repeat(50),
            "]".repeat(50)
        );
        let (message, line, column) = located(Error::StackOverflow, &source);
        assert!(message.contains("nested too deeply"), "{message}");
        assert_eq!((line, column), (2, 22 + 49));
    }

    #[test]
    fn limits_while_compiling_are_compile_errors() {
        let timeout = Error::Timeout {
            limit: std::time::Duration::from_secs(30),
        };
        assert!(located(timeout, "x").0.contains("longer than 30 s"));
        let oom = Error::OutOfMemory { limit: 256 << 20 };
        assert!(located(oom, "x").0.contains("more than 256 MiB"));
        let thrown = Error::Trap("other".into());
        assert_eq!(diagnose(thrown, "h.js", "x").kind(), "trap");
    }
}
