//! `nexus serve`: the long-running host over HTTP: axum's router, served by
//! our own accept loop on hyper and tokio (`connections`).
//!
//! It listens first, so `/healthz` answers at once, then loads the guest
//! and registers the `--handlers` files on a blocking thread; `/readyz`
//! answers 200 only after that. SIGTERM or SIGINT stops accepting, closes
//! idle connections and lets requests in progress finish within
//! `grace_period_ms`; what still runs then is cut off as the process exits.
//!
//! Layer: an edge, beside `cli`; it uses only `nexus_host`'s public API.

mod access;
mod auth;
mod body;
mod connections;
mod errors;
pub(crate) mod log_batch;
mod metrics;
mod queue;
mod routes;
mod threads;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use axum::routing::{get, post};
use axum::Router;
use nexus_host::{call_threads, handler_files, Config, Handlers, Runtime};
use tokio::sync::oneshot;

use metrics::Exporter;

/// What every route shares. The server is ready exactly when `handlers`
/// is set: loading sets it once, after every `--handlers` file registered.
pub(crate) struct App {
    handlers: Arc<OnceLock<Arc<Handlers>>>,
    metrics: Exporter,
    /// Requests being answered now (counted by `routes::track`).
    in_flight: AtomicU64,
    /// Compiles waiting for a slot.
    compiles: queue::CompileQueue,
    /// The call threads, and the calls waiting for them.
    threads: threads::CallThreads,
    /// The bytes of request bodies held, and their limits.
    bodies: body::Bodies,
    /// Who may register and remove handlers.
    admin: auth::Access,
    /// Who may invoke and read (admin tokens too).
    callers: auth::Access,
    /// Watches the handlers directory while the server runs.
    watching: OnceLock<nexus_host::DirectoryWatcher>,
}

impl App {
    /// Requests being answered now.
    fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Serves until SIGTERM or SIGINT (then exits cleanly), or until loading
/// fails.
///
/// # Errors
///
/// When the address cannot be bound, or the guest or a `--handlers` file
/// cannot be loaded.
pub(crate) fn serve(config: Config, handlers_dir: Option<PathBuf>) -> Result<()> {
    // Invocations run on the call threads (`threads`), compiles on the
    // blocking pool: one thread per core (and one more) keeps them from
    // thrashing the cores at high concurrency; the rest queue, and
    // admission bounds them anyway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(call_threads())
        .thread_stack_size(nexus_host::THREAD_STACK)
        .thread_name("nexus-http")
        // A worker's access lines are written together when it idles.
        .on_thread_park(log_batch::flush_and_batch)
        .on_thread_stop(log_batch::flush)
        .build()
        .context("starting the async runtime")?;
    let cell = Arc::new(OnceLock::new());
    let served = runtime.block_on(run(config, handlers_dir, cell.clone()));
    // Calls still running past the grace period were cut off: their
    // threads are not waited for (the process ends with them).
    runtime.shutdown_timeout(SHUTDOWN_MARGIN);
    // But what the cache has yet to write is: a restart finds it on disk.
    if let Some(handlers) = cell.get() {
        handlers.runtime().cache().flush();
    }
    served
}

/// After the grace period, how long the server waits for its threads
/// before the process exits anyway.
const SHUTDOWN_MARGIN: std::time::Duration = std::time::Duration::from_millis(200);

/// Serves until stopped; `cell` receives the handlers once loaded.
async fn run(
    config: Config,
    handlers_dir: Option<PathBuf>,
    cell: Arc<OnceLock<Arc<Handlers>>>,
) -> Result<()> {
    if config.max_body_bytes > config.max_body_memory_bytes {
        bail!(
            "max_body_bytes ({}) is larger than max_body_memory_bytes ({}): no such body could be held; raise max_body_memory_bytes or lower max_body_bytes",
            config.max_body_bytes,
            config.max_body_memory_bytes
        );
    }
    connections::fit_descriptors(config.max_connections);
    let (admin, callers) = access(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (the listen setting)", config.listen))?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        handlers: cell.clone(),
        metrics: Exporter::new(cell).context("registering the metrics")?,
        in_flight: AtomicU64::new(0),
        threads: threads::CallThreads::start(
            call_threads(),
            nexus_host::THREAD_STACK,
            config.max_instances_per_handler,
            config.max_queued,
            config.queue_timeout,
        )
        .context("starting the call threads")?,
        compiles: queue::CompileQueue::new(call_threads()),
        bodies: body::Bodies::new(
            config.max_body_bytes,
            config.max_body_memory_bytes,
            config.body_timeout,
        ),
        admin,
        callers,
        watching: OnceLock::new(),
    });

    let example = handlers_dir.as_deref().and_then(first_handler);
    println!("nexus serve: listening on http://{addr}");
    if example.is_none() {
        // Nothing to invoke yet: the first line to paste registers one.
        println!(
            "  curl -s -X PUT http://{addr}/handlers/hello --data-binary \
             'export default (ctx) => ({{ message: \"Hello, \" + ctx.name + \"!\" }})'"
        );
    }
    let example = example.as_deref().unwrap_or("hello");
    println!("  curl -s http://{addr}/handlers/{example}/invoke -d '{{\"name\":\"Nexus\"}}'");

    let (failed, failure) = oneshot::channel();
    let loading = app.clone();
    let grace = config.grace_period;
    let limits = connections::Limits {
        max_connections: config.max_connections,
        header_timeout: config.header_timeout,
    };
    tokio::task::spawn_blocking(move || match load(config, handlers_dir.as_deref()) {
        Ok(handlers) => {
            let count = handlers.list().len();
            let handlers = Arc::new(handlers);
            match handlers.watch() {
                Ok(watching) => {
                    if let Some(watching) = watching {
                        let _ = loading.watching.set(watching);
                    }
                }
                Err(e) => {
                    let _ = failed.send(anyhow::Error::new(e));
                    return;
                }
            }
            let _ = loading.handlers.set(handlers);
            tracing::info!(handlers = count, "ready");
        }
        Err(e) => {
            let _ = failed.send(e);
        }
    });

    let router = Router::new()
        .route("/handlers", get(routes::list))
        .route(
            "/handlers/{name}",
            get(routes::show)
                .put(routes::register)
                .delete(routes::remove),
        )
        .route("/handlers/{name}/invoke", post(routes::invoke))
        .route("/stats", get(routes::stats))
        .route("/metrics", get(routes::metrics))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            routes::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::track,
        ))
        .with_state(app.clone());
    let (fatal_tx, fatal_rx) = oneshot::channel();
    let stop = async move {
        tokio::select! {
            signal = stop_signal() => tracing::info!("{signal}: no new connections; finishing in-flight requests"),
            Ok(e) = failure => {
                let _ = fatal_tx.send(e);
            }
        }
    };
    match connections::serve(listener, router, limits, stop, grace).await {
        connections::Ended::Drained => {}
        connections::Ended::CutOff => match app.in_flight() {
            0 => tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "grace period over; idle connections closed"
            ),
            n => tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                cut_off = n,
                "grace period over; {n} requests still running were cut off"
            ),
        },
    }
    if let Ok(e) = fatal_rx.await {
        return Err(e);
    }
    Ok(())
}

/// Who may manage, and who may invoke and read, as the settings say.
///
/// # Errors
///
/// When a token file cannot be trusted or read.
fn access(config: &Config) -> Result<(auth::Access, auth::Access)> {
    let tokens = |path: &Option<PathBuf>, setting| -> Result<Option<auth::Access>> {
        path.as_deref()
            .map(|path| auth::TokenFile::open(path, setting).map(auth::Access::Tokens))
            .transpose()
    };
    let admin = match tokens(&config.admin_token_file, "admin_token_file")? {
        Some(admin) => admin,
        None if config.listen.ip().is_loopback() => auth::Access::Open,
        None => {
            let why = format!(
                "registering and removing handlers is disabled: nexus serve listens on {}, not a loopback address, and has no admin_token_file; set it (--admin-token-file, NEXUS_ADMIN_TOKEN_FILE) to a file of bearer tokens",
                config.listen
            );
            tracing::warn!("{why}");
            auth::Access::Disabled(why)
        }
    };
    let callers =
        tokens(&config.invoke_token_file, "invoke_token_file")?.unwrap_or(auth::Access::Open);
    Ok((admin, callers))
}

/// The runtime, and the handlers: those of `dir`, which is then the
/// registry, or none, in memory only.
fn load(config: Config, dir: Option<&Path>) -> Result<Handlers> {
    let runtime = Arc::new(Runtime::new(config).context("loading the guest")?);
    match dir {
        Some(dir) => Ok(Handlers::open(runtime, dir)?),
        None => {
            tracing::info!("no --handlers directory: registrations live in this process's memory only, and a restart forgets them");
            Ok(Handlers::new(runtime))
        }
    }
}

/// The name the start-up `curl` line uses: `hello` if registered, else
/// the first.
fn first_handler(dir: &Path) -> Option<String> {
    let names: Vec<String> = handler_files(dir)
        .ok()?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names
        .iter()
        .find(|n| *n == "hello")
        .or(names.first())
        .cloned()
}

/// Waits for SIGTERM or SIGINT; answers which.
async fn stop_signal() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
