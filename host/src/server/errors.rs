//! Every error the server answers, as JSON: `{"error": {"kind", "message",
//! …}}`, with the status the README's table documents.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nexus_host::Error;
use serde_json::{json, Map, Value};

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    fields: Map<String, Value>,
    retry_after: Option<u32>,
    /// Whether the connection closes after this response.
    close: bool,
    /// Headers of its own (`WWW-Authenticate`).
    headers: Vec<(HeaderName, HeaderValue)>,
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
            close: false,
            headers: Vec::new(),
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

    /// No call thread for this request: the queue is full, or it waited
    /// its `queue_timeout_ms`.
    pub fn busy(message: String) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message);
        e.retry_after = Some(1);
        e
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

    /// Closes the connection after this response (its request was not
    /// read whole).
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// With `name: value` among its headers.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
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
        for (key, value) in e.fields() {
            api = api.with(&key, value);
        }
        if let Error::Busy { .. } = e {
            api.retry_after = Some(1);
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
        Error::OutOfMemory { .. } | Error::RegistryFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::ReadOnlyRegistry { .. } => StatusCode::CONFLICT,
        // Nobody reads it: the client has gone (nginx's "client closed
        // request" in access logs and metrics).
        Error::Cancelled => StatusCode::from_u16(499).expect("a valid status"),
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
        response.headers_mut().extend(self.headers);
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The error table of docs/http.md, one error of every kind. A new
    /// variant fails to compile in `status` until it has its own status,
    /// and fails here until the table (and this list) has it.
    #[test]
    fn every_error_kind_has_the_status_the_docs_give() {
        let limit = Duration::from_millis(1);
        let table: Vec<(Error, u16)> = vec![
            (Error::InvalidName("A".into(), "uppercase"), 400),
            (Error::InvalidInput("x".into()), 400),
            (
                Error::Compile {
                    message: "m".into(),
                    file: "f.js".into(),
                    line: 1,
                    column: 2,
                },
                422,
            ),
            (
                Error::Runtime {
                    name: "TypeError".into(),
                    message: "m".into(),
                    stack: String::new(),
                },
                500,
            ),
            (Error::InvalidModule("x".into()), 500),
            (Error::InvalidBytecode("x".into()), 500),
            (Error::StackOverflow, 500),
            (Error::Trap("x".into()), 500),
            (Error::InvalidOutput("x".into()), 502),
            (Error::OutputTooLarge { size: 2, limit: 1 }, 502),
            (Error::OutOfMemory { limit: 1 }, 507),
            (Error::Timeout { limit }, 504),
            (
                Error::Busy {
                    max_instances: 1,
                    waited: limit,
                },
                503,
            ),
            (Error::Engine(anyhow::anyhow!("x")), 500),
            (
                Error::Config {
                    name: "timeout_ms",
                    value: "0".into(),
                    expected: "more".into(),
                },
                500,
            ),
            (Error::Internal("x".into()), 500),
            (
                Error::RegistryFull {
                    setting: "max_handlers",
                    detail: "x".into(),
                },
                507,
            ),
            (Error::Cancelled, 499),
            (Error::ReadOnlyRegistry { dir: "/d".into() }, 409),
        ];
        let mut kinds: Vec<&str> = table.iter().map(|(e, _)| e.kind()).collect();
        kinds.sort();
        let mut all = Error::KINDS.to_vec();
        all.sort();
        assert_eq!(kinds, all, "one error of every kind");
        for (error, want) in table {
            let kind = error.kind();
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status().as_u16(), want, "{kind}");
        }
    }
}
