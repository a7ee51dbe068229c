//! Every request the router answers: its id, its span, its access line and
//! its metrics.
//!
//! Invariants: every response carries `x-request-id`, errors included: the
//! client's own when it is sane (1 to 128 printable ASCII characters), else
//! a fresh UUID. The request's span carries that id, the method, the route
//! and the handler, so every log line of the request (a handler's console
//! lines, which run on a call thread, included) carries them too. The
//! request's access line, in that span, adds the status, the invocation's
//! path and the duration as its own fields (`target: nexus::access`; at
//! `debug` for probes and scrapes): recorded into the span instead, they
//! would have its fields formatted again. A request whose client went away
//! is counted and logged as 499 when its future is dropped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::App;

/// The header a request's id travels in, both ways.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The longest client-given id kept.
const MAX_ID: usize = 128;

/// The client's id if it is sane, else a fresh one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let sane = |v: &&HeaderValue| {
        let bytes = v.as_bytes();
        (1..=MAX_ID).contains(&bytes.len()) && bytes.iter().all(|b| (0x20..=0x7e).contains(b))
    };
    match headers.get(REQUEST_ID).filter(sane) {
        Some(given) => given.clone(),
        None => {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            HeaderValue::from_str(&id).expect("a UUID is a header value")
        }
    }
}

/// The handler a request to `route` names, if its name is valid.
fn handler<'a>(route: &str, uri: &'a str) -> Option<&'a str> {
    if !route.starts_with("/handlers/{name}") {
        return None;
    }
    let name = uri.strip_prefix("/handlers/")?.split(['/', '?']).next()?;
    nexus_host::check_name(name).ok().map(|()| name)
}

/// The path an invocation took, as the response's `x-nexus-path` says.
fn invocation_path(response: &Response) -> Option<&str> {
    response.headers().get("x-nexus-path")?.to_str().ok()
}

/// Gives the request its id and span, counts it by route and status, times
/// it, and writes its access line.
pub(crate) async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    // A `MatchedPath` clone shares its text; nothing is allocated per request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = request.method().as_str(),
        route,
        handler = handler(route, request.uri().path()),
    );
    let mut answering = Answering::new(&app, route, span.clone());
    let mut response = next.run(request).instrument(span).await;
    answering.answered(&response);
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// A request being answered: counted in flight until dropped. Dropped
/// before its answer (its client went away, and the request's future with
/// it), it is counted and logged as 499.
struct Answering<'a> {
    app: &'a App,
    route: &'a str,
    span: tracing::Span,
    start: Instant,
    done: bool,
}

impl<'a> Answering<'a> {
    fn new(app: &'a App, route: &'a str, span: tracing::Span) -> Self {
        app.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            app,
            route,
            span,
            start: Instant::now(),
            done: false,
        }
    }

    /// Counts, times and logs the request with `response`'s status.
    fn answered(&mut self, response: &Response) {
        self.done = true;
        self.finish(response.status(), invocation_path(response));
    }

    fn finish(&self, status: StatusCode, path: Option<&str>) {
        let took = self.start.elapsed();
        let metrics = &self.app.metrics;
        let route = self.route;
        metrics
            .requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        metrics
            .durations
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
        let status = status.as_u16();
        let duration_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.span.in_scope(|| match (route, status) {
            (_, CLIENT_GONE) => tracing::info!(
                target: "nexus::access",
                status,
                duration_us,
                "the client went away before the answer"
            ),
            // Probes and scrapes come every few seconds and say nothing new.
            ("/healthz" | "/readyz" | "/metrics", _) => {
                tracing::debug!(target: "nexus::access", status, duration_us, path, "answered")
            }
            _ => tracing::info!(target: "nexus::access", status, duration_us, path, "answered"),
        });
    }
}

/// The status of a request whose client went away: nginx's, which no
/// client reads.
const CLIENT_GONE: u16 = 499;

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if !self.done {
            let gone = StatusCode::from_u16(CLIENT_GONE).expect("a valid status");
            self.finish(gone, None);
        }
        self.app.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn a_sane_id_is_kept_and_anything_else_replaced() {
        for kept in [&b"abc-123"[..], b"a b", &[b'~'; MAX_ID]] {
            assert_eq!(request_id(&with(kept)).as_bytes(), kept);
        }
        for replaced in [
            &[b'a'; MAX_ID + 1][..],
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"",
        ] {
            let id = request_id(&with(replaced));
            assert_ne!(id.as_bytes(), replaced);
            assert!(
                uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok(),
                "{id:?}"
            );
        }
        let fresh = [(); 2].map(|()| request_id(&HeaderMap::new()));
        assert_ne!(fresh[0], fresh[1]);
    }

    #[test]
    fn the_span_names_a_valid_handler_of_a_handlers_route_only() {
        let invoke = "/handlers/{name}/invoke";
        assert_eq!(handler(invoke, "/handlers/ada/invoke"), Some("ada"));
        assert_eq!(handler("/handlers/{name}", "/handlers/ada"), Some("ada"));
        assert_eq!(handler(invoke, "/handlers/Bad%20/invoke"), None);
        assert_eq!(handler("/handlers", "/handlers"), None);
        assert_eq!(handler("unmatched", "/handlers/ada/x/y"), None);
    }
}
