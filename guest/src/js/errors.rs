//! Turning QuickJS exceptions into `handler-error` values.

use rquickjs::{convert::Coerced, Ctx, Error, Object, Value};

use crate::nexus::handler::types::{Diagnostic, HandlerError, JsException};

/// What was thrown, as name, message and stack. A thrown non-error value
/// (`throw "x"`) is named after its type, with its string form as message.
pub fn exception(value: &Value<'_>) -> JsException {
    let property = |object: &Object<'_>, key: &str| {
        object
            .get::<_, Option<Coerced<String>>>(key)
            .ok()
            .flatten()
            .map(|s| s.0)
    };
    match value.as_object() {
        Some(object) if value.is_error() || object.contains_key("message").unwrap_or(false) => {
            JsException {
                name: property(object, "name").unwrap_or_else(|| "Error".to_owned()),
                message: property(object, "message").unwrap_or_default(),
                stack: property(object, "stack").unwrap_or_default(),
            }
        }
        _ => JsException {
            name: format!("thrown {}", type_name(value)),
            message: coerce(value),
            stack: String::new(),
        },
    }
}

/// The pending exception behind `error`, or the Rust-side error itself.
fn caught(ctx: &Ctx<'_>, error: Error) -> JsException {
    match error {
        Error::Exception => exception(&ctx.catch()),
        other => JsException {
            name: "InternalError".to_owned(),
            message: other.to_string(),
            stack: String::new(),
        },
    }
}

pub fn runtime(ctx: &Ctx<'_>, error: Error) -> HandlerError {
    HandlerError::Runtime(caught(ctx, error))
}

/// `error` as one line: `Name: message`.
pub fn describe(ctx: &Ctx<'_>, error: Error) -> String {
    let e = caught(ctx, error);
    if e.message.is_empty() {
        e.name
    } else {
        format!("{}: {}", e.name, e.message)
    }
}

/// A compile failure with its position, read from the first stack frame
/// QuickJS records for a syntax error (`    at file:line:column`).
pub fn compile_error(ctx: &Ctx<'_>, error: Error, file: &str) -> HandlerError {
    let e = caught(ctx, error);
    let (line, column) = position(&e.stack, file).unwrap_or((0, 0));
    let mut message = if e.name == "SyntaxError" {
        e.message
    } else {
        format!("{}: {}", e.name, e.message)
    };
    if message.contains("could not load module") {
        message.push_str(
            " (handlers cannot import modules; bundle dependencies into the handler's one file)",
        );
    }
    HandlerError::Compile(Diagnostic {
        message,
        file: file.to_owned(),
        line,
        column,
    })
}

fn position(stack: &str, file: &str) -> Option<(u32, u32)> {
    stack.lines().find_map(|frame| {
        let rest = frame.trim_start().strip_prefix("at ")?;
        let rest = rest.strip_prefix(file)?.strip_prefix(':')?;
        let (line, column) = rest.split_once(':')?;
        Some((line.parse().ok()?, column.trim_end().parse().ok()?))
    })
}

pub fn never_settled() -> HandlerError {
    HandlerError::Runtime(JsException {
        name: "Error".to_owned(),
        message: "the handler's promise never settled: nothing was left to run".to_owned(),
        stack: String::new(),
    })
}

pub fn type_name(value: &Value<'_>) -> &'static str {
    value.type_name()
}

fn coerce(value: &Value<'_>) -> String {
    value
        .get::<Coerced<String>>()
        .map(|s| s.0)
        .unwrap_or_else(|_| format!("<{}>", type_name(value)))
}
