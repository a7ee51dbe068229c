//! Connections: the accept loop, and what one connection may cost.
//!
//! - At most `max_connections` are open at once; past it the loop stops
//!   accepting, and new ones wait in the kernel's listen backlog.
//! - A connection has `header_timeout_ms` to send a request's headers,
//!   counted from when the server starts waiting for them: when it
//!   connects, and again after each response. So a slow sender and an idle
//!   keep-alive connection are both closed.
//! - An accept that fails (out of descriptors, say) is retried after a
//!   pause that doubles up to a second, logged once a pause: the loop never
//!   spins, and it accepts again as soon as descriptors free up.
//! - A client that closes the connection while its request is in
//!   progress has gone: hyper drops the request's future (which cancels
//!   its call).
//! - On stop, a connection with no request in progress (idle, or still
//!   sending headers) is dropped at once; one with a request finishes it
//!   and closes. [`serve`] returns once every connection is closed, or the
//!   grace period ends.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// What bounds each connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: u32,
    pub header_timeout: Duration,
}

/// How serving ended.
pub(crate) enum Ended {
    /// Every connection closed within the grace period.
    Drained,
    /// The grace period ended with connections still answering.
    CutOff,
}

/// The first pause after a failed accept, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// Accepts and serves connections until `stop` resolves, then drains them
/// for at most `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> Ended {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stopping, stopped) = watch::channel(false);
    let mut stop = pin!(stop);
    let mut backoff = BACKOFF.0;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            // The peer gave up before it was accepted: nothing to wait for.
            Err(e) if peer_gone(&e) => continue,
            Err(e) => {
                tracing::warn!(
                    retry_ms = backoff.as_millis() as u64,
                    "accept error: {e} (descriptors: see max_connections)"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut stop => break,
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        backoff = BACKOFF.0;
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            connection(stream, router, limits, stopped).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let all = slots.clone().acquire_many_owned(limits.max_connections);
    match tokio::time::timeout(grace, all).await {
        Ok(_) => Ended::Drained,
        Err(_) => Ended::CutOff,
    }
}

/// Serves one connection until it closes, or until the server stops and
/// it has no request in progress.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let busy = Arc::new(AtomicUsize::new(0));
    let service = Tracked {
        inner: TowerToHyperService::new(router),
        busy: busy.clone(),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut conn = pin!(http.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!("connection closed: {e}");
            }
        }
        () = async { drop(stopped.wait_for(|stopped| *stopped).await) } => {
            // Idle, or still sending headers: nothing to finish.
            if busy.load(Relaxed) == 0 {
                return;
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Errors that concern only the connection being accepted.
fn peer_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionAborted | ConnectionReset)
}

/// The router, counting the connection's requests in progress (from the
/// headers read to the response built).
struct Tracked {
    inner: TowerToHyperService<Router>,
    busy: Arc<AtomicUsize>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.busy.fetch_add(1, Relaxed);
        let busy = Busy(self.busy.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answered = answer.await;
            drop(busy);
            answered
        })
    }
}

/// One request in progress; dropped when answered, or with its connection.
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Raises the soft limit on open files toward the hard limit, so that
/// `max_connections` fit beside the descriptors the process needs
/// anyway; warns when even the hard limit is too low.
pub(crate) fn fit_descriptors(max_connections: u32) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    // The cache, the listener, the runtime's own: a generous allowance.
    const SPARE: u64 = 64;
    let wanted = u64::from(max_connections) + SPARE;
    let mut limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else { return };
    if current >= wanted {
        return;
    }
    let reachable = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    if reachable > current {
        limit.current = Some(reachable);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit.current = Some(current);
        }
    }
    let now = limit.current.unwrap_or(current);
    if now < wanted {
        tracing::warn!(
            max_connections,
            open_files = now,
            "the open-file limit is below max_connections + {SPARE}: accepts will fail (and back off) before max_connections; raise the limit (ulimit -n) or lower max_connections"
        );
    }
}
