//! Compiling and running handler modules on one QuickJS runtime and context.
//!
//! The runtime and context are created once per instance, lazily, and kept in
//! a thread-local: a pre-initialized snapshot can then hold them ready. A
//! per-handler snapshot also holds the handler's evaluated default export
//! (`prepare`), so `invoke_prepared` only parses, calls and serializes.

mod errors;
mod globals;
mod stack;

use std::cell::{OnceCell, RefCell};

use rquickjs::{
    Context, Ctx, Error, Function, Module, Persistent, Promise, Runtime, Value, WriteOptions,
};

use crate::exports::nexus::handler::compiler::CompileOptions;
use crate::nexus::handler::types::HandlerError;

struct Js {
    // Field order matters: the context must drop before its runtime.
    context: Context,
    _runtime: Runtime,
}

thread_local! {
    static JS: OnceCell<Js> = const { OnceCell::new() };
    // The default export `prepare` kept; a per-handler snapshot holds it.
    static PREPARED: RefCell<Option<Persistent<Function<'static>>>> = const { RefCell::new(None) };
}

fn with_ctx<R>(f: impl FnOnce(Ctx<'_>) -> R) -> R {
    JS.with(|cell| {
        let js = cell.get_or_init(|| {
            let runtime = Runtime::new().expect("QuickJS runtime");
            let context = Context::full(&runtime).expect("QuickJS context");
            context.with(|ctx| {
                // Deep recursion is then a catchable `RangeError`, well
                // before the wasm stack would trap.
                // SAFETY: this context's live runtime; no JavaScript runs.
                let limited =
                    unsafe { stack::install(rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr())) };
                assert!(
                    limited,
                    "QuickJS's stack fields were not found: the stack check is off"
                );
                globals::install(&ctx).expect("install globals")
            });
            Js {
                context,
                _runtime: runtime,
            }
        });
        js.context.with(f)
    })
}

/// Creates the runtime and context now (for a pre-initialized snapshot).
pub fn initialize() {
    with_ctx(|ctx| pin_arenas(&ctx));
}

/// Keeps one block of every small size class allocated for good. QuickJS
/// frees a 4 KiB arena when its last block goes and writes a new one on the
/// next allocation of that size; in a fresh instance of a snapshot, that
/// happened on every call. A pinned block keeps each arena, and its free
/// blocks, in the snapshot.
fn pin_arenas(ctx: &Ctx<'_>) {
    // Every size up to QuickJS's largest arena block (512 bytes with its
    // 8-byte header), one per 8-byte step: each size class at least once.
    const LARGEST: usize = 512 - 8;
    // SAFETY: the context's own runtime; the blocks are never used or freed.
    unsafe {
        let rt = rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr());
        for size in (8..=LARGEST).step_by(8) {
            rquickjs::qjs::js_malloc_rt(rt, size as _);
        }
    }
}

/// Parses `source` as an ES module named `name` and writes its bytecode.
pub fn compile(name: &str, source: &str, options: CompileOptions) -> Result<Vec<u8>, HandlerError> {
    with_ctx(|ctx| {
        let module = Module::declare(ctx.clone(), name, source)
            .map_err(|e| errors::compile_error(&ctx, e, name))?;
        module
            .write(WriteOptions {
                strip_source: options.strip_source,
                strip_debug: options.strip_debug,
                ..WriteOptions::default()
            })
            .map_err(|e| HandlerError::InvalidModule(errors::describe(&ctx, e)))
    })
}

/// Loads `bytecode`, evaluates it, calls its default export with `input`
/// parsed as JSON and answers the result as JSON (`null` for `undefined`).
pub fn invoke(bytecode: &[u8], input: &str) -> Result<String, HandlerError> {
    // A snapshot froze the generator's state: every instance would repeat it.
    globals::reseed_random();
    with_ctx(|ctx| {
        let input = parse_input(&ctx, input)?;
        let function = evaluate(&ctx, bytecode)?;
        call(&ctx, function, input)
    })
}

/// Loads and evaluates `bytecode` and keeps its default export for
/// [`invoke_prepared`]: run once before a per-handler snapshot.
pub fn prepare(bytecode: &[u8]) -> Result<(), HandlerError> {
    with_ctx(|ctx| {
        let function = evaluate(&ctx, bytecode)?;
        PREPARED.with(|prepared| {
            prepared.replace(Some(Persistent::save(&ctx, function)));
        });
        Ok(())
    })
}

/// [`invoke`] for the default export [`prepare`] kept.
pub fn invoke_prepared(input: &str) -> Result<String, HandlerError> {
    globals::reseed_random();
    with_ctx(|ctx| {
        let input = parse_input(&ctx, input)?;
        let function = PREPARED
            .with(|prepared| prepared.borrow().clone())
            .ok_or_else(|| {
                HandlerError::InvalidModule(
                    "no handler was prepared in this instance; call `prepare` first".into(),
                )
            })?
            .restore(&ctx)
            .map_err(|e| errors::runtime(&ctx, e))?;
        call(&ctx, function, input)
    })
}

/// The deepest input accepted. QuickJS's JSON parser recurses in C, where
/// its stack check does not see the wasm stack: far deeper input would trap.
const MAX_INPUT_DEPTH: usize = 10_000;

fn parse_input<'js>(ctx: &Ctx<'js>, input: &str) -> Result<Value<'js>, HandlerError> {
    if let Some(depth) = nesting_over(input, MAX_INPUT_DEPTH) {
        return Err(HandlerError::InvalidInput(format!(
            "the input is nested {depth} levels deep; at most {MAX_INPUT_DEPTH} are accepted"
        )));
    }
    ctx.json_parse(input)
        .map_err(|e| HandlerError::InvalidInput(errors::describe(ctx, e)))
}

/// The depth of `[` and `{` nesting outside strings, if it goes past `max`
/// (what JSON.parse would recurse through).
fn nesting_over(json: &str, max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in json.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _, _) => {}
        }
    }
    None
}

/// Loads and evaluates a module; answers its default export.
fn evaluate<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> Result<Function<'js>, HandlerError> {
    // SAFETY (bounded, not proven): QuickJS trusts bytecode, and nothing
    // here proves these bytes came from this guest's compiler. The host's
    // header checks (this guest build's fingerprint, a BLAKE3 checksum)
    // catch damage and mix-ups, not a crafted file. What crafted bytecode
    // can corrupt is this instance's own linear memory: the instance is a
    // fresh wasm sandbox, discarded after the call, that reaches nothing
    // but its imports (log, stats, clocks, random). That bound is what makes
    // loading it acceptable.
    let module = unsafe { Module::load(ctx.clone(), bytecode) }
        .map_err(|e| HandlerError::InvalidBytecode(errors::describe(ctx, e)))?;
    let (module, evaluated) = module.eval().map_err(|e| errors::runtime(ctx, e))?;
    settle(ctx, evaluated)?;
    // Jobs the top level queued (a `.then` that fills in module state) run
    // now, before the first call and before a snapshot, as in Node.
    while ctx.execute_pending_job() {}

    let export: Value = module.get("default").map_err(|e| errors::runtime(ctx, e))?;
    match export.as_function() {
        Some(function) => Ok(function.clone()),
        None => Err(HandlerError::InvalidModule(format!(
            "the module's default export is {}, not a function; \
             write `export default function (ctx) {{ ... }}`",
            errors::type_name(&export)
        ))),
    }
}

/// Calls the handler with `input` and answers its result as JSON.
fn call<'js>(
    ctx: &Ctx<'js>,
    function: Function<'js>,
    input: Value<'js>,
) -> Result<String, HandlerError> {
    let result: Value = function
        .call((input,))
        .map_err(|e| errors::runtime(ctx, e))?;
    let result = match result.as_promise() {
        Some(promise) => settle(ctx, promise.clone())?,
        None => result,
    };
    // Jobs the handler queued but did not await still run, as in Node.
    while ctx.execute_pending_job() {}

    match ctx.json_stringify(result) {
        Ok(Some(json)) => json
            .to_string()
            .map_err(|e| HandlerError::InvalidOutput(errors::describe(ctx, e))),
        Ok(None) => Ok("null".to_owned()),
        Err(e) => Err(HandlerError::InvalidOutput(errors::describe(ctx, e))),
    }
}

/// Runs QuickJS's job queue until `promise` settles.
fn settle<'js>(ctx: &Ctx<'js>, promise: Promise<'js>) -> Result<Value<'js>, HandlerError> {
    match promise.finish::<Value>() {
        Ok(value) => Ok(value),
        Err(Error::WouldBlock) => Err(errors::never_settled()),
        Err(e) => Err(errors::runtime(ctx, e)),
    }
}
