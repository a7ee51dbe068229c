//! Request bodies: how much one may be, how long it may take to arrive,
//! and how many bytes of them the server holds at once.
//!
//! - A body larger than `max_body_bytes` is refused (413) as soon as its
//!   `Content-Length` says so, or as soon as that many bytes arrived.
//! - Its bytes are reserved from `max_body_memory_bytes` before they are
//!   read (all of a declared length at once, a chunked body as it comes);
//!   the reservation is held until the request is answered. A body that
//!   does not fit is refused with 503 `busy` at once, unread.
//! - It must arrive within `body_timeout_ms` of the handler asking for it;
//!   past it, 408, and the connection is closed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::ApiError;

/// Reads chunked bodies' reservations in steps of this much, at most.
const STEP: u64 = 64 * 1024;

pub(crate) struct Bodies {
    memory: Arc<Semaphore>,
    memory_bytes: u64,
    max_body: u64,
    timeout: Duration,
}

/// A body's bytes, reserved until dropped.
pub(crate) struct Reserved(OwnedSemaphorePermit);

impl Bodies {
    pub fn new(max_body: u64, memory_bytes: u64, timeout: Duration) -> Self {
        Self {
            memory: Arc::new(Semaphore::new(memory_bytes as usize)),
            memory_bytes,
            max_body,
            timeout,
        }
    }

    /// The body, read whole as UTF-8 text; `what` names it in errors (`the
    /// input`).
    ///
    /// # Errors
    ///
    /// 413 past `max_body_bytes`; 503 `busy` when its bytes do not fit in
    /// `max_body_memory_bytes` now; 408 past `body_timeout_ms`; 400 when
    /// the connection fails or the body is not UTF-8 (`invalid_input` for
    /// an input).
    pub async fn text(&self, body: Body, what: &str) -> Result<(String, Reserved), ApiError> {
        let declared = body.size_hint().exact();
        if declared.is_some_and(|n| n > self.max_body) {
            return Err(too_large(what));
        }
        let mut reserved = self.reserve(declared.unwrap_or(0), what)?;
        let mut held = declared.unwrap_or(0);
        let mut bytes = Vec::with_capacity(held as usize);
        let mut body = body;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(self.timed_out(what)),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ApiError::bad_request(format!("reading the {what}: {e}")))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let size = (bytes.len() + data.len()) as u64;
            if size > self.max_body {
                return Err(too_large(what));
            }
            if size > held {
                let more = (size - held).max(STEP.min(self.max_body - held));
                reserved.merge(self.reserve(more, what)?.0);
                held += more;
            }
            bytes.extend_from_slice(&data);
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                if what == "input" {
                    "invalid_input"
                } else {
                    "bad_request"
                },
                format!("the {what} is not UTF-8: {e}"),
            )
        })?;
        Ok((text, reserved))
    }

    fn reserve(&self, bytes: u64, what: &str) -> Result<Reserved, ApiError> {
        let permits = u32::try_from(bytes).map_err(|_| too_large(what))?;
        match self.memory.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Ok(Reserved(permit)),
            Err(_) => Err(ApiError::busy(format!(
                "the request bodies held now leave no room for this {what} ({bytes} bytes) within max_body_memory_bytes ({} bytes); retry later",
                self.memory_bytes
            ))
            .closing()),
        }
    }

    fn timed_out(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the {what} did not arrive within body_timeout_ms ({} ms); send it at once, or raise --body-timeout-ms",
                self.timeout.as_millis()
            ),
        )
        .closing()
    }
}

impl Reserved {
    fn merge(&mut self, other: OwnedSemaphorePermit) {
        self.0.merge(other);
    }
}

fn too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the {what} is larger than max_body_bytes (raise it with --max-body-bytes or NEXUS_MAX_BODY_BYTES)"),
    )
    .closing()
}
