//! `nexus-runtime`'s native backend: [`nexus_host::Runtime`] as a Node
//! addon. Glue only: settings, caching, limits and errors are the library's.
//!
//! Invariants:
//! - Nothing blocks the JavaScript thread: compiles, preparations and
//!   invocations run on the blocking threads of napi-rs's tokio runtime,
//!   and each answers a promise.
//! - At most `max_instances` calls run at once; the rest wait in the gate,
//!   where [`NativeRuntime::close`] rejects them with kind `closed`, while
//!   calls already running finish.
//! - A failure crosses to JavaScript as a `napi::Error` whose reason is
//!   JSON, `{kind, message, fields}`; `src/native.js` turns it into a
//!   `NexusError`.
//! - Traps are wasmtime's: it installs its signal handlers when the first
//!   engine is made and hands every fault outside its own code to the
//!   handler that was there before (V8's, Node's).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::{Env, Status};
use napi_derive::napi;
use nexus_host::{
    CompiledHandler, Config, Error, Invocation, Layer, PreparedHandler, RawValue, Runtime,
};
use tokio::sync::{watch, Semaphore, SemaphorePermit};

/// A library error as the JavaScript side reads it.
fn thrown(e: Error) -> napi::Error {
    let body = serde_json::json!({
        "kind": e.kind(),
        "message": e.to_string(),
        "fields": e.fields(),
    });
    napi::Error::new(Status::GenericFailure, body.to_string())
}

fn closed() -> napi::Error {
    let body = serde_json::json!({
        "kind": "closed",
        "message": "the runtime was closed before this call started",
        "fields": {},
    });
    napi::Error::new(Status::GenericFailure, body.to_string())
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

struct Shared {
    runtime: Arc<Runtime>,
    /// One permit per instance slot.
    gate: Semaphore,
    slots: u32,
    closing: watch::Sender<bool>,
}

impl Shared {
    /// A slot, or `closed` once the runtime closes (before or while this
    /// call waits).
    async fn admit(&self) -> napi::Result<SemaphorePermit<'_>> {
        let mut closing = self.closing.subscribe();
        if *closing.borrow() {
            return Err(closed());
        }
        tokio::select! {
            biased;
            _ = closing.wait_for(|c| *c) => Err(closed()),
            permit = self.gate.acquire() => permit.map_err(|_| closed()),
        }
    }

    /// `work` on a blocking thread, once a slot is free.
    async fn run<T: Send + 'static>(
        self: Arc<Self>,
        work: impl FnOnce(&Runtime) -> Result<T, Error> + Send + 'static,
    ) -> napi::Result<T> {
        let _slot = self.admit().await?;
        let runtime = self.runtime.clone();
        match tokio::task::spawn_blocking(move || work(&runtime)).await {
            Ok(done) => done.map_err(thrown),
            Err(e) => Err(thrown(Error::Internal(format!(
                "the call's thread failed: {e}"
            )))),
        }
    }
}

/// A runtime: the host's engine, caches and limits.
#[napi]
pub struct NativeRuntime {
    shared: Arc<Shared>,
}

/// A compiled handler, and its prepared component once it has one.
#[napi]
pub struct NativeHandler {
    compiled: CompiledHandler,
    prepared: Option<PreparedHandler>,
}

/// What one call answered.
#[napi(object)]
pub struct Answer {
    /// The result as JSON text.
    pub json: String,
    /// `[level, message]` pairs, in order.
    pub logs: Vec<Vec<String>>,
    /// `plain` or `prepared`.
    pub path: String,
}

impl From<Invocation> for Answer {
    fn from(done: Invocation) -> Self {
        Answer {
            json: done.output,
            logs: done
                .logs
                .into_iter()
                .map(|line| vec![line.level.as_str().to_owned(), line.message])
                .collect(),
            path: done.path.as_str().to_owned(),
        }
    }
}

/// Opens a runtime with `settings` (the host's names, values as text).
///
/// # Errors
///
/// Kind `config` for a setting the table refuses; `engine` when the guest
/// cannot be set up.
#[napi]
pub async fn open(settings: HashMap<String, String>) -> napi::Result<NativeRuntime> {
    let opened = tokio::task::spawn_blocking(move || {
        let config = resolve(settings)?;
        Runtime::new(config)
    })
    .await
    .map_err(|e| thrown(Error::Internal(format!("opening failed: {e}"))))?;
    let runtime = Arc::new(opened.map_err(thrown)?);
    let slots = runtime.config().max_instances;
    let (closing, _) = watch::channel(false);
    Ok(NativeRuntime {
        shared: Arc::new(Shared {
            runtime,
            gate: Semaphore::new(slots as usize),
            slots,
            closing,
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
    ) -> napi::Result<PromiseRaw<'env, NativeHandler>> {
        let shared = self.shared.clone();
        env.spawn_future(async move {
            let compiled = shared
                .run(move |runtime| runtime.compile(&name, &source))
                .await?;
            Ok(NativeHandler {
                compiled,
                prepared: None,
            })
        })
    }

    /// `handler` with its own pre-initialized component.
    #[napi(ts_return_type = "Promise<NativeHandler>")]
    pub fn prepare<'env>(
        &self,
        env: &'env Env,
        handler: &NativeHandler,
    ) -> napi::Result<PromiseRaw<'env, NativeHandler>> {
        let (shared, compiled) = (self.shared.clone(), handler.compiled.clone());
        env.spawn_future(async move {
            let source = compiled.clone();
            let prepared = shared.run(move |runtime| runtime.prepare(&source)).await?;
            Ok(NativeHandler {
                compiled,
                prepared: Some(prepared),
            })
        })
    }

    /// Runs `handler` with `input` (JSON text) in a fresh instance.
    #[napi(ts_return_type = "Promise<Answer>")]
    pub fn invoke<'env>(
        &self,
        env: &'env Env,
        handler: &NativeHandler,
        input: String,
        timeout_ms: Option<u32>,
    ) -> napi::Result<PromiseRaw<'env, Answer>> {
        let limit = timeout(timeout_ms).map_err(thrown)?;
        let shared = self.shared.clone();
        let (compiled, prepared) = (handler.compiled.clone(), handler.prepared.clone());
        env.spawn_future(async move {
            let done = shared
                .run(move |runtime| match &prepared {
                    Some(prepared) => runtime.invoke_prepared(prepared, &input, limit),
                    None => runtime.invoke_with_timeout(&compiled, &input, limit),
                })
                .await?;
            Ok(Answer::from(done))
        })
    }

    /// The `runtime-stats` record as JSON, with the WIT's names.
    #[napi]
    pub fn stats(&self) -> napi::Result<String> {
        serde_json::to_string(&self.shared.runtime.stats())
            .map_err(|e| thrown(Error::Internal(e.to_string())))
    }

    /// The settings in force, as JSON (the host's names and units).
    #[napi]
    pub fn settings(&self) -> String {
        let config = self.shared.runtime.config();
        serde_json::json!({
            "cache_dir": config.cache_dir,
            "max_instances": config.max_instances,
            "timeout_ms": config.timeout.as_millis() as u64,
            "max_cache_size_bytes": config.max_cache_size_bytes,
            "max_output_bytes": config.max_output_bytes,
            "max_memory_bytes": config.max_memory_bytes,
        })
        .to_string()
    }

    /// Refuses new calls, rejects those waiting for a slot, and settles
    /// once the running ones have finished.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let shared = self.shared.clone();
        shared.closing.send_replace(true);
        env.spawn_future(async move {
            // Every slot back: nothing is running.
            let _all = shared.gate.acquire_many(shared.slots).await;
            Ok(())
        })
    }
}

#[napi]
impl NativeHandler {
    /// The handler's name, as compiled.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.compiled.name.clone()
    }

    /// The bytecode's cache key, 64 hex digits.
    #[napi(getter)]
    pub fn key(&self) -> String {
        self.compiled.key.to_hex()
    }

    /// Where its artifact came from: `memory`, `disk` or `compiled` (its
    /// component's, once prepared).
    #[napi(getter)]
    pub fn origin(&self) -> String {
        match &self.prepared {
            Some(prepared) => prepared.origin.as_str(),
            None => self.compiled.origin.as_str(),
        }
        .to_owned()
    }

    /// `plain`, or `prepared` once it has its own component.
    #[napi(getter)]
    pub fn path(&self) -> String {
        if self.prepared.is_some() {
            "prepared"
        } else {
            "plain"
        }
        .to_owned()
    }

    /// The QuickJS bytecode (a copy).
    #[napi(getter)]
    pub fn bytecode(&self) -> Buffer {
        Buffer::from(self.compiled.bytecode.to_vec())
    }
}
