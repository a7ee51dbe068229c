//! Every error the server answers, as JSON: `{"error": {"kind", "message",
//! …}}`, with the status the README's table documents.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nexus_host::Error;
use serde_json::{json, Map, Value};

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    fields: Map<String, Value>,
    retry_after: Option<u32>,
}

impl ApiError {
    /// A blocking task that panicked or was cancelled.
    pub fn worker(e: tokio::task::JoinError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the worker failed: {e}"),
        )
    }

    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("kind".into(), json!(kind));
        fields.insert("message".into(), json!(message.into()));
        Self {
            status,
            fields,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no handler is registered as {name:?} (PUT /handlers/{name} registers one)"),
        )
    }

    /// The server is still loading the guest or the `--handlers` files.
    pub fn not_ready() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is starting: the guest or the --handlers files are still loading",
        );
        e.retry_after = Some(1);
        e
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.into(), value);
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let status = status(&e);
        let mut api = ApiError::new(status, e.kind(), message);
        match e {
            Error::Compile {
                message,
                file,
                line,
                column,
            } => {
                api = api
                    .with("message", json!(message))
                    .with("file", json!(file))
                    .with("line", json!(line))
                    .with("column", json!(column));
            }
            Error::Runtime {
                name,
                message,
                stack,
            } => {
                api = api
                    .with("name", json!(name))
                    .with("message", json!(message))
                    .with("stack", json!(stack));
            }
            Error::Timeout { limit } => {
                api = api.with("limit_ms", json!(limit.as_millis() as u64));
            }
            Error::OutOfMemory { limit } => api = api.with("limit_bytes", json!(limit)),
            Error::OutputTooLarge { size, limit } => {
                api = api
                    .with("size_bytes", json!(size))
                    .with("limit_bytes", json!(limit));
            }
            Error::Busy { .. } => api.retry_after = Some(1),
            _ => {}
        }
        api
    }
}

/// The status for each kind of error: exhaustive, so a new variant must
/// be given its own.
fn status(e: &Error) -> StatusCode {
    match e {
        Error::InvalidName(..) | Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        Error::Compile { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::InvalidOutput(_) | Error::OutputTooLarge { .. } => StatusCode::BAD_GATEWAY,
        Error::OutOfMemory { .. } => StatusCode::INSUFFICIENT_STORAGE,
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Runtime { .. }
        | Error::InvalidBytecode(_)
        | Error::InvalidModule(_)
        | Error::StackOverflow
        | Error::Config { .. }
        | Error::Trap(_)
        | Error::Engine(_)
        | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": Value::Object(self.fields) });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
