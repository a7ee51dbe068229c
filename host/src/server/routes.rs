//! The HTTP API: each route as a function from request to response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nexus_host::{
    check_name, Cancel, Handler, HandlerOptions, Handlers, Isolation, SnapshotPolicy, OTHER,
};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::App;

type Answer = Result<Response, ApiError>;

/// The registered handlers, once the server is ready.
fn ready(app: &App) -> Result<&Arc<Handlers>, ApiError> {
    match app.handlers.get() {
        Some(handlers) => Ok(handlers),
        None => Err(ApiError::not_ready()),
    }
}

/// The `{name}` of a path, checked.
fn name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
    check_name(&name)?;
    Ok(name)
}

/// Runs blocking library work off the async executor, in the request's
/// span (its log lines carry the request's id).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> nexus_host::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    in_span(work).await?.map_err(ApiError::from)
}

/// Runs `work` on a blocking thread, in the current span.
async fn in_span<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(ApiError::worker)
}

fn describe(handlers: &Handlers, handler: &Handler) -> Value {
    let snapshot = handler.snapshot();
    let figures = handler.figures();
    // `ok` always; an error kind once it happened.
    let outcomes: serde_json::Map<String, Value> = figures
        .invocations
        .iter()
        .filter(|(kind, n)| *n > 0 || *kind == "ok")
        .map(|(kind, n)| (kind.to_string(), (*n).into()))
        .collect();
    let console = figures.console;
    let mut described = json!({
        "name": handler.name,
        "key": handler.compiled.key.to_hex(),
        "bytecode_bytes": handler.compiled.bytecode.len(),
        "invocations": handler.invocations(),
        "path": handler.path().as_str(),
        "snapshot": snapshot.as_str(),
        "snapshot_policy": handler.snapshot_policy().as_str(),
        "isolation": handler.isolation().as_str(),
        "outcomes": outcomes,
        "errors": figures.errors(),
        "console_lines": {
            "written": console.lines,
            "suppressed": console.suppressed,
            "dropped": console.dropped,
        },
        "metrics_handler": if handler.has_own_series() { handler.name.as_str() } else { OTHER },
    });
    if let Some(reason) = snapshot.reason() {
        described["snapshot_reason"] = reason.into();
    }
    if let Some(error) = handlers.reload_error(&handler.name) {
        described["reload_error"] = error.into();
    }
    described
}

/// `PUT /handlers/{name}[?snapshot=auto|eager|off][&isolation=per-call|reuse]`:
/// the body is the module's source; `snapshot` and `isolation` are the
/// handler's own policies, in place of the server's.
pub(crate) async fn register(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Answer {
    let name = name(path)?;
    let options = registration(query.as_deref())?;
    let handlers = ready(&app)?.clone();
    // Held until answered, like the source it became.
    let (source, _reserved) = app.bodies.text(body, "source").await?;
    let (handler, replaced) = {
        let name = name.clone();
        // A compile slot, held until the compile ends, even if its client
        // goes.
        let held = app.compiles.slot().await;
        blocking(move || {
            let _held = held;
            handlers.register_with(&name, &source, options)
        })
        .await?
    };
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    tracing::info!(handler = %name, origin = handler.compiled.origin.as_str(), replaced, "registered");
    let body = json!({
        "name": handler.name,
        "key": handler.compiled.key.to_hex(),
        "origin": handler.compiled.origin.as_str(),
        "bytecode_bytes": handler.compiled.bytecode.len(),
    });
    Ok((status, Json(body)).into_response())
}

/// `POST /handlers/{name}/invoke[?timeout_ms=N]`: the body is `ctx`, as
/// JSON; an empty body is `{}`.
pub(crate) async fn invoke(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Answer {
    let name = name(path)?;
    let timeout = timeout(query.as_deref())?;
    let handlers = ready(&app)?.clone();
    let handler = handlers
        .get(&name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    // Held until answered, like the input it became.
    let (mut input, _reserved) = app.bodies.text(body, "input").await?;
    // Stops at the first byte that is not JSON whitespace: a large input is
    // not scanned to its end here, on the async side.
    if input
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        input = "{}".to_owned();
    }
    let start = Instant::now();
    // A client that goes away drops this future: the guard then cancels
    // the call, so it never starts, or stops within milliseconds.
    let cancel = Cancel::new();
    let guard = CancelOnDrop(Some(cancel.clone()));
    let (path, invocation) = app
        .threads
        .call(&name, move || {
            handlers.invoke_reporting_path(&handler, &input, timeout, Some(&cancel))
        })
        .await?;
    guard.disarm();
    let reused = invocation.as_ref().ok().map(|i| i.reused);
    let mut response = match invocation {
        Ok(invocation) => (
            [(header::CONTENT_TYPE, "application/json")],
            invocation.output,
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("x-nexus-path", HeaderValue::from_static(path.as_str()));
    if let Some(reused) = reused {
        let instance = if reused { "reused" } else { "fresh" };
        headers.insert("x-nexus-instance", HeaderValue::from_static(instance));
    }
    let micros = start.elapsed().as_micros().to_string();
    headers.insert(
        "x-nexus-duration-us",
        HeaderValue::from_str(&micros).expect("digits"),
    );
    Ok(response)
}

/// `?snapshot=auto|eager|off&isolation=per-call|reuse`, the queries a
/// registration takes, each at most once.
fn registration(query: Option<&str>) -> Result<HandlerOptions, ApiError> {
    let [snapshot, isolation] = params(query, ["snapshot", "isolation"], "a registration")?;
    let snapshot = snapshot.map(|value| {
        SnapshotPolicy::from_name(&value).ok_or_else(|| {
            ApiError::bad_request(format!("snapshot={value:?}: expected auto, eager or off"))
        })
    });
    let isolation = isolation.map(|value| {
        Isolation::from_name(&value).ok_or_else(|| {
            ApiError::bad_request(format!("isolation={value:?}: expected per-call or reuse"))
        })
    });
    Ok(HandlerOptions {
        snapshot: snapshot.transpose()?,
        isolation: isolation.transpose()?,
    })
}

/// `?timeout_ms=N`, the only query an invocation takes.
fn timeout(query: Option<&str>) -> Result<Option<Duration>, ApiError> {
    only_param(query, "timeout_ms", "an invocation", |value| {
        let ms: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "timeout_ms={value:?}: expected a whole number of milliseconds, at least 1"
            ))
        })?;
        Ok(Duration::from_millis(ms))
    })
}

/// The query's `key`, the only parameter `route` takes, percent-decoded and
/// checked by `parse`.
fn only_param<T>(
    query: Option<&str>,
    key: &str,
    route: &str,
    parse: impl Fn(&str) -> Result<T, ApiError>,
) -> Result<Option<T>, ApiError> {
    let [value] = params(query, [key], route)?;
    value.map(|value| parse(&value)).transpose()
}

/// The query's values of `keys`, the only parameters `route` takes,
/// percent-decoded; one given twice is refused rather than guessed at.
fn params<const N: usize>(
    query: Option<&str>,
    keys: [&str; N],
    route: &str,
) -> Result<[Option<String>; N], ApiError> {
    let mut values = [const { None }; N];
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let Some(at) = keys.iter().position(|key| *key == name) else {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {name:?}: {route} takes only {}",
                keys.join(" and ")
            )));
        };
        if values[at].is_some() {
            return Err(ApiError::bad_request(format!(
                "{name} is given more than once: give it once"
            )));
        }
        values[at] = Some(value.into_owned());
    }
    Ok(values)
}

/// Handlers a page of `GET /handlers` holds by default, and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// `GET /handlers[?limit=N][&after=NAME]`: a page of handlers by name, the
/// first after `after`; `next` is the `after` of the next page, `null` on
/// the last.
pub(crate) async fn list(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Answer {
    let handlers = ready(&app)?;
    let (mut limit, mut after) = (None, None);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if (key == "limit" && limit.is_some()) || (key == "after" && after.is_some()) {
            return Err(ApiError::bad_request(format!(
                "{key} is given more than once: give it once"
            )));
        }
        match &*key {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .map(Some)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit={value:?}: expected a whole number from 1 to {MAX_PAGE}"
                        ))
                    })?;
            }
            "after" => after = Some(value.into_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: a listing takes limit and after"
                )))
            }
        }
    }
    let (page, more) = handlers.page(after.as_deref(), limit.unwrap_or(PAGE));
    let next = match (more, page.last()) {
        (true, Some(last)) => Value::from(last.name.as_str()),
        _ => Value::Null,
    };
    let list: Vec<Value> = page.iter().map(|h| describe(handlers, h)).collect();
    Ok(Json(json!({ "handlers": list, "next": next })).into_response())
}

/// `GET /handlers/{name}`.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let name = name(path)?;
    let handlers = ready(&app)?;
    let handler = handlers
        .get(&name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok(Json(describe(handlers, &handler)).into_response())
}

/// `DELETE /handlers/{name}`.
pub(crate) async fn remove(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let name = name(path)?;
    let handlers = ready(&app)?.clone();
    let removed = {
        let name = name.clone();
        blocking(move || handlers.remove(&name)).await?
    };
    removed.ok_or_else(|| ApiError::not_found(&name))?;
    tracing::info!(handler = %name, "removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /stats`: the `runtime-stats` record, as handlers see it.
pub(crate) async fn stats(State(app): State<Arc<App>>) -> Answer {
    Ok(Json(ready(&app)?.runtime().stats()).into_response())
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: the process serves.
pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 once the guest is loaded and every `--handlers` file
/// registered.
pub(crate) async fn readyz(State(app): State<Arc<App>>) -> Answer {
    ready(&app)?;
    Ok(Json(json!({ "status": "ready" })).into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (see the README's API table)",
    )
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// Lets a request through if its route's access allows it: management
/// (PUT, DELETE) needs an admin token; invocations and reads a caller's
/// (or an admin's) where `invoke_token_file` is set; probes and the scrape
/// are open.
pub(crate) async fn authorize(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let checked = {
        let route = request.extensions().get::<MatchedPath>();
        let method = request.method();
        match route.map(MatchedPath::as_str) {
            Some("/handlers/{name}") if method == "PUT" || method == "DELETE" => {
                app.admin.check(request.headers(), None)
            }
            Some("/handlers" | "/handlers/{name}" | "/handlers/{name}/invoke" | "/stats") => {
                app.callers.check(request.headers(), Some(&app.admin))
            }
            _ => Ok(()),
        }
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// Cancels its call when dropped before [`disarm`](Self::disarm): when the
/// request's future is dropped because its client went away.
struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = &self.0 {
            cancel.cancel();
        }
    }
}
