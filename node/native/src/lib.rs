//! `nexus-runtime`'s native backend: [`nexus_host::Runtime`] as a Node
//! addon. Glue only: settings, caching, limits and errors are the library's.
//!
//! Invariants:
//! - Nothing blocks the JavaScript thread: invocations run on the
//!   addon's call threads ([`threads`]), compiles and preparations on the
//!   blocking threads of its tokio runtime, all made with [`THREAD_STACK`]
//!   (a call from a thread with less stack would run on a helper thread
//!   started for it).
//! - Calls settle through one JavaScript function per runtime
//!   ([`NativeRuntime::settle_with`]), by id; compiles and preparations
//!   through a promise each.
//! - At most `max_instances` calls run at once; the rest wait in the
//!   [`gate`], where [`NativeRuntime::close`] rejects them with kind
//!   `closed`, while calls already running finish.
//! - A failure crosses to JavaScript as a `napi::Error` whose reason is
//!   JSON, `{kind, message, fields}`; `src/native.js` turns it into a
//!   `NexusError`.
//! - Traps are wasmtime's: it installs its signal handlers when the first
//!   engine is made and hands every fault outside its own code to the
//!   handler that was there before (V8's, Node's).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod gate;
mod handler;
mod threads;

use napi::bindgen_prelude::{spawn_blocking, FnArgs, Function, Object, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use nexus_host::{
    call_threads, Config, DeferTeardown, Error, Invocation, Layer, RawValue, Runtime, THREAD_STACK,
};

use gate::Gate;
use handler::NativeHandler;

// The host's allocator, as the `nexus` binary has it (for the Rust side of
// this process only; Node's own allocations are Node's).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// napi-rs's tokio runtime, whose blocking threads compile and prepare
/// (with the stack a guest needs).
#[napi_derive::module_init]
fn init() {
    // Compiles and preparations run on the blocking pool, as many at once
    // as calls (`call_threads`); the rest queue.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("nexus-node")
        .max_blocking_threads(call_threads())
        .thread_stack_size(THREAD_STACK)
        .enable_all()
        .build()
        .expect("a tokio runtime for the addon");
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
}

/// A failure as the JavaScript side reads it: `{kind, message, fields}`.
fn failure(kind: &str, message: String, fields: serde_json::Value) -> napi::Error {
    let body = serde_json::json!({ "kind": kind, "message": message, "fields": fields });
    napi::Error::new(Status::GenericFailure, body.to_string())
}

/// A library error as the JavaScript side reads it.
fn thrown(e: Error) -> napi::Error {
    failure(e.kind(), e.to_string(), e.fields().into())
}

/// `work`'s outcome, a panic in it included (as kind `internal`).
fn catch<T>(work: impl FnOnce() -> Result<T, Error>) -> napi::Result<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(done) => done.map_err(thrown),
        Err(_) => Err(thrown(Error::Internal(
            "the call's thread panicked".to_owned(),
        ))),
    }
}

fn closed() -> napi::Error {
    failure(
        "closed",
        "the runtime was closed before this call started".to_owned(),
        serde_json::json!({}),
    )
}

/// The settings: those given (snake_case names, as text), then the
/// `NEXUS_*` environment, then the defaults; all from the host's table.
fn resolve(given: HashMap<String, String>) -> Result<Config, Error> {
    let mut layer = Layer::default();
    for (name, value) in given {
        layer.set(&name, RawValue::Text(value))?;
    }
    let env = Layer::from_env(|name| std::env::var(name).ok());
    Config::resolve(&[layer, env])
}

/// One call's own timeout, checked against `timeout_ms`'s range.
fn timeout(ms: Option<u32>) -> Result<Option<Duration>, Error> {
    let Some(ms) = ms else { return Ok(None) };
    let mut layer = Layer::default();
    layer.set("timeout_ms", RawValue::Text(ms.to_string()))?;
    Ok(Some(Config::resolve(&[layer])?.timeout))
}

/// The JavaScript function every call of [`NativeRuntime::start`] settles
/// through: one for the runtime, not one per call, so completions that
/// come together wake the JavaScript thread once. Weak: it never keeps
/// Node alive (the package does, while calls are pending).
type Settle = ThreadsafeFunction<Done, (), Done, Status, false, true>;

struct Shared {
    runtime: Runtime,
    gate: Gate,
    settle: OnceLock<Settle>,
}

impl Shared {
    /// `work`, once a slot is free (on this thread: it waits).
    fn admitted<T>(&self, work: impl FnOnce(&Runtime) -> Result<T, Error>) -> napi::Result<T> {
        let _slot = self.gate.enter().map_err(|_| closed())?;
        catch(|| work(&self.runtime))
    }

    /// Runs `work` on one of the addon's threads once a slot is free, and
    /// answers a promise of `done(work's result)`: one hop there, and one
    /// back to settle it.
    fn spawn<'env, T: Send + 'static, V: ToNapiValue + 'static>(
        self: &Arc<Self>,
        env: &'env Env,
        work: impl FnOnce(&Runtime) -> Result<T, Error> + Send + 'static,
        done: fn(T) -> V,
    ) -> napi::Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred()?;
        let shared = self.clone();
        spawn_blocking(move || match shared.admitted(work) {
            Ok(value) => deferred.resolve(move |_| Ok(done(value))),
            Err(e) => deferred.reject(e),
        });
        Ok(promise)
    }
}

/// A runtime: the host's engine, caches and limits.
#[napi]
pub struct NativeRuntime {
    shared: Arc<Shared>,
}

/// How one call of [`NativeRuntime::start`] ended, as the arguments of the
/// function it settles through: `(id, json, path, logs, error)`. On success
/// the result as JSON text, `plain` or `prepared`, and the `[level,
/// message]` pairs (`null` for none); on failure only the error (`{kind,
/// message, fields}` as JSON). Plain values, not an object: napi builds an
/// object property by property, and that was over half of a settle's time
/// on the JavaScript thread (`perf`).
type Done = FnArgs<(
    u32,
    Option<String>,
    Option<&'static str>,
    Option<Vec<Vec<String>>>,
    Option<String>,
)>;

fn done(id: u32, outcome: napi::Result<Invocation>) -> Done {
    match outcome {
        Ok(ran) => {
            let logs = (!ran.logs.is_empty()).then(|| {
                ran.logs
                    .into_iter()
                    .map(|line| vec![line.level.as_str().to_owned(), line.message])
                    .collect()
            });
            (id, Some(ran.output), Some(ran.path.as_str()), logs, None)
        }
        Err(e) => (id, None, None, None, Some(e.reason)),
    }
    .into()
}

/// Opens a runtime with `settings` (the host's names, values as text).
///
/// # Errors
///
/// Kind `config` for a setting the table refuses; `engine` when the guest
/// cannot be set up.
#[napi]
pub async fn open(settings: HashMap<String, String>) -> napi::Result<NativeRuntime> {
    let opened = spawn_blocking(move || Runtime::new(resolve(settings)?)).await;
    let runtime = opened
        .map_err(|e| thrown(Error::Internal(format!("opening the runtime failed: {e}"))))?
        .map_err(thrown)?;
    let gate = Gate::new(runtime.config().max_instances);
    Ok(NativeRuntime {
        shared: Arc::new(Shared {
            runtime,
            gate,
            settle: OnceLock::new(),
        }),
    })
}

#[napi]
impl NativeRuntime {
    /// Compiles `source` under `name`, unless the cache has it.
    #[napi(ts_return_type = "Promise<NativeHandler>")]
    pub fn compile<'env>(
        &self,
        env: &'env Env,
        name: String,
        source: String,
    ) -> napi::Result<Object<'env>> {
        self.shared.spawn(
            env,
            move |runtime| runtime.compile(&name, &source),
            |compiled| NativeHandler {
                compiled,
                prepared: None,
            },
        )
    }

    /// `handler` with its own pre-initialized component.
    #[napi(ts_return_type = "Promise<NativeHandler>")]
    pub fn prepare<'env>(
        &self,
        env: &'env Env,
        handler: &NativeHandler,
    ) -> napi::Result<Object<'env>> {
        let compiled = handler.compiled.clone();
        self.shared.spawn(
            env,
            move |runtime| Ok((runtime.prepare(&compiled)?, compiled)),
            |(prepared, compiled)| NativeHandler {
                compiled,
                prepared: Some(prepared),
            },
        )
    }

    /// The function calls started with [`start`](Self::start) settle
    /// through; given once, right after `open`.
    #[napi]
    pub fn settle_with(&self, settle: Function<'_, Done, ()>) -> napi::Result<()> {
        let settle = settle
            .build_threadsafe_function::<Done>()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?;
        self.shared
            .settle
            .set(settle)
            .map_err(|_| napi::Error::from_reason("settleWith was already called"))
    }

    /// Runs `handler` with `input` (JSON text) in a fresh instance, and
    /// settles call `id` through the `settleWith` function.
    #[napi]
    pub fn start(
        &self,
        id: u32,
        handler: &NativeHandler,
        input: String,
        timeout_ms: Option<u32>,
    ) -> napi::Result<()> {
        let limit = timeout(timeout_ms).map_err(thrown)?;
        if self.shared.settle.get().is_none() {
            return Err(napi::Error::from_reason("start before settleWith"));
        }
        let (compiled, prepared) = (handler.compiled.clone(), handler.prepared.clone());
        let shared = self.shared.clone();
        threads::run(THREAD_STACK, move || {
            // The instance is torn down after the call is handed back.
            let later = DeferTeardown::start();
            let outcome = shared.admitted(|runtime| match &prepared {
                Some(prepared) => runtime.invoke_prepared(prepared, &input, limit),
                None => runtime.invoke_with_timeout(&compiled, &input, limit),
            });
            if let Some(settle) = shared.settle.get() {
                settle.call(done(id, outcome), ThreadsafeFunctionCallMode::NonBlocking);
            }
            drop(later);
        })
        .map_err(|e| thrown(Error::Internal(e.to_string())))
    }

    /// The `runtime-stats` record as JSON, with the WIT's names.
    #[napi]
    pub fn stats(&self) -> napi::Result<String> {
        serde_json::to_string(&self.shared.runtime.stats())
            .map_err(|e| thrown(Error::Internal(e.to_string())))
    }

    /// Refuses new calls, rejects those waiting for a slot, and settles
    /// once the running ones have finished.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred()?;
        // Shut here, not on a blocking thread: those may all be taken by
        // calls waiting for a slot, which must be turned away first.
        self.shared.gate.shut();
        let shared = self.shared.clone();
        spawn_blocking(move || {
            shared.gate.drained();
            deferred.resolve(|_| Ok(()));
        });
        Ok(promise)
    }
}
