//! Components through the cache: the pre-initialized guest, and a handler's
//! own prepared component.

use std::time::{Duration, Instant};

use crate::cache::{Artifact, Cache, Key, Origin};
use crate::engine::{self, Component, Engine, Limits, Observed};
use crate::error::Result;
use crate::guest::GUEST_WASM;

/// The pre-initialized guest compiled for `engine`: from memory, from a
/// verified file, or by snapshotting and Cranelift (the expensive steps), in
/// that order.
///
/// # Errors
///
/// [`Error::Engine`](crate::Error::Engine) if pre-initializing or compiling fails.
pub(crate) fn guest(engine: &Engine, cache: &Cache) -> Result<(Component, Origin)> {
    let key = Key::component(GUEST_WASM, &engine.compatibility_hash(), engine::VARIANT);
    // Every start needs it: handler artifacts never push it out.
    cache.pin(Artifact::Component, key);
    cache.get_or_compile(
        Artifact::Component,
        key,
        |payload| deserialize(engine, payload),
        || {
            if let Some(why) = seed_miss(engine, cache) {
                tracing::warn!(target: "nexus::cache", "the seed directory has no guest component for this engine: {why}");
            }
            tracing::info!(
                target: "nexus::cache",
                "compiling the guest for this machine: the first start on this cache takes a few seconds (about 2 s here)"
            );
            instrumented(engine, cache)?;
            let snapshot = engine.pre_initialize()?;
            find_code(engine, cache);
            let start = Instant::now();
            let component = engine.compile(&snapshot)?;
            keep_code(engine, cache, start.elapsed());
            let bytes = engine.serialize(&component)?.into();
            Ok((component, bytes))
        },
    )
}

/// The key of `engine`'s compiled-code store in the cache: the functions
/// the guest's compiles made, which a snapshot's compiles mostly look up
/// rather than compile again.
fn code_key(engine: &Engine) -> Key {
    Key::component(
        GUEST_WASM,
        &engine.compatibility_hash(),
        engine::CODE_VARIANT,
    )
}

/// Gives `engine` the compiled functions the cache directory (or the seed)
/// holds, once per process; if it holds none (or a damaged copy, then
/// removed), the compiles that follow record theirs for [`keep_code`].
fn find_code(engine: &Engine, cache: &Cache) {
    engine.code_once(|| {
        // SAFETY: the entry's checksum has been verified and its key covers
        // the guest and the engine's compatibility hash, as for the guest.
        let load = |blob: &[u8]| unsafe { engine.load_code(blob) };
        match cache.find_on_disk(Artifact::Component, code_key(engine), load) {
            Some(functions) => {
                tracing::debug!(target: "nexus::cache", functions, "compiled functions loaded")
            }
            None => engine.record_code(true),
        }
    });
}

/// Stores what the compiles since [`find_code`] recorded, if they did
/// (`took` them), in the cache directory for the next process.
fn keep_code(engine: &Engine, cache: &Cache, took: Duration) {
    if let Some(blob) = engine.recorded_code() {
        cache.put_on_disk(Artifact::Component, code_key(engine), blob.into(), took);
    }
}

/// Gives `engine`'s snapshots the guest instrumented for Wizer, once per
/// process: from the cache directory (or the seed), else compiled and kept
/// there, so that a new process's first snapshot does not pay for it.
fn instrumented(engine: &Engine, cache: &Cache) -> Result<()> {
    engine.instrument_with(|| {
        let key = Key::component(
            GUEST_WASM,
            &engine.instrumented_compatibility_hash(),
            engine::INSTRUMENTED_VARIANT,
        );
        // SAFETY: the entry's checksum has been verified and its key covers
        // the guest and the engine's compatibility hash, as for the guest.
        let load = |payload: &[u8]| unsafe { engine.load_instrumented(payload) };
        if let Some(found) = cache.find_on_disk(Artifact::Component, key, load) {
            return Ok(found);
        }
        let start = Instant::now();
        let (built, bytes) = engine.compile_instrumented()?;
        cache.put_on_disk(Artifact::Component, key, bytes.into(), start.elapsed());
        Ok(built)
    })
}

/// Whose clock a snapshot's top level may have frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clocks {
    /// Any process's: the snapshot comes from, and goes to, every tier
    /// (the `eager` policy, [`Runtime::prepare`](crate::Runtime::prepare)).
    Shared,
    /// This process's only, as Node's module load: a snapshot whose top
    /// level read a clock is built in this process and kept in its memory,
    /// never taken from, or put in, the cache directory or the seed (the
    /// `auto` policy).
    ThisProcess,
}

/// A handler's snapshot, compiled.
#[derive(Clone)]
pub(crate) struct Snapshotted {
    pub component: Component,
    /// What its top level read.
    pub observed: Observed,
    /// Built by this process, not loaded from a file.
    here: bool,
}

/// A handler's own component: the guest pre-initialized with `bytecode`'s
/// module evaluated, compiled for `engine`, through the cache like the guest
/// itself (as `clocks` allows), with what its top level
/// [observed](Observed). The cache entry is that one byte, then the
/// component.
///
/// # Errors
///
/// The handler's own errors from evaluating its module (`Runtime`,
/// `InvalidModule`, `InvalidBytecode`, the limits' errors);
/// [`Error::Engine`](crate::Error::Engine) if snapshotting or compiling fails.
pub(crate) fn prepared(
    engine: &Engine,
    cache: &Cache,
    name: &str,
    bytecode: &[u8],
    limits: Limits,
    clocks: Clocks,
) -> Result<(Snapshotted, Origin)> {
    let key = Key::prepared(
        GUEST_WASM,
        &engine.compatibility_hash(),
        engine::PREPARED_VARIANT,
        bytecode,
    );
    let build = || -> Result<(Snapshotted, std::sync::Arc<[u8]>)> {
        instrumented(engine, cache)?;
        let (snapshot, observed) = engine.snapshot(name, bytecode, limits)?;
        find_code(engine, cache);
        let start = Instant::now();
        let component = engine.compile(&snapshot)?;
        keep_code(engine, cache, start.elapsed());
        let mut bytes = vec![observed.to_byte()];
        bytes.extend(engine.serialize(&component)?);
        let built = Snapshotted {
            component,
            observed,
            here: true,
        };
        Ok((built, bytes.into()))
    };
    let local_only = |s: &Snapshotted| clocks == Clocks::ThisProcess && s.observed.clock;
    let (found, origin) = cache.get_or_compile_keeping(
        Artifact::Component,
        key,
        |payload| {
            let (&byte, component) = payload.split_first().ok_or("empty")?;
            let observed = Observed::from_byte(byte)
                .ok_or_else(|| format!("unknown observation byte {byte:#04x}"))?;
            Ok(Snapshotted {
                component: deserialize(engine, component)?,
                observed,
                here: false,
            })
        },
        build,
        |built| !local_only(built),
    )?;
    if local_only(&found) && !found.here {
        // Another process froze its own clock in that one: this process
        // builds its own, and keeps it out of every tier.
        let (built, _) = build()?;
        return Ok((built, Origin::Compiled));
    }
    Ok((found, origin))
}

/// Why a seed directory did not have the guest for `engine`, if there is a
/// seed: the components it holds were made for another engine (another CPU,
/// wasmtime or configuration: the key covers the engine's compatibility
/// hash, and wasmtime says what differs) or by another build of Nexus.
fn seed_miss(engine: &Engine, cache: &Cache) -> Option<String> {
    let seed = cache.seed_entries(Artifact::Component)?;
    if seed.keys.is_empty() {
        return Some(
            "it holds no components (make it with `nexus cache warm` and NEXUS_CACHE_DIR set to it)"
                .to_owned(),
        );
    }
    let held = seed.keys.len();
    // The first entry that holds a component says whether this engine can
    // load what the seed holds (entries of compiled functions hold none):
    // one entry read, not the whole seed, whose snapshots may be many.
    for key in &seed.keys {
        let Some(payload) = seed.payload(key) else {
            return Some(format!(
                "it holds {held} component(s), and {} does not verify",
                key.to_hex()
            ));
        };
        // A prepared handler's entry starts with its observation byte. The
        // file is verified and the seed trusted like the cache directory;
        // wasmtime checks the engine's settings before it maps any code.
        let code = native_code(&payload);
        if !Engine::is_native_code(code) {
            continue;
        }
        return Some(match deserialize(engine, code) {
            Ok(_) => format!(
                "its {held} component(s) load on this engine, but none is this build's guest: \
                 was the seed made by another build of `nexus`?"
            ),
            Err(e) => format!(
                "its {held} component(s) were compiled for another engine (another CPU, wasmtime \
                 or configuration): {e}"
            ),
        });
    }
    Some(format!(
        "its {held} component entries hold no component for this build's guest"
    ))
}

/// The serialized component in a component entry: all of a guest's, all
/// but the first (observation) byte of a prepared handler's.
fn native_code(payload: &[u8]) -> &[u8] {
    if Engine::is_native_code(payload) {
        payload
    } else {
        payload.get(1..).unwrap_or_default()
    }
}

fn deserialize(engine: &Engine, payload: &[u8]) -> std::result::Result<Component, String> {
    // SAFETY: the payload passed its header check (magic, kind, this key,
    // length, BLAKE3) in a directory only this user can write, and the key
    // covers the engine's compatibility hash: it is exactly what `serialize`
    // wrote for an engine like this one.
    unsafe { engine.deserialize(payload) }
}
