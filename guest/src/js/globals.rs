//! What the guest adds to a handler's global object: `console`, which writes
//! to the host's log, `Nexus.stats()`, the host's own figures, and a
//! `Math.random` the guest can reseed.

use rquickjs::{convert::Coerced, function::Rest, Ctx, Function, Object, Result, Value};

use crate::nexus::handler::log::{self, Level};
use crate::nexus::handler::stats::{self, CacheStats, RuntimeStats, Tier};

thread_local! {
    /// The generator's state; 0 means "seed me before the next number".
    static RANDOM: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

unsafe extern "C" {
    /// wasi-libc's, over `wasi:random/random`: the host's randomness.
    fn getentropy(buffer: *mut u8, length: usize) -> i32;
}

/// Makes the next `Math.random` seed itself from the host's randomness.
/// Called at the start of every invocation: a pre-initialized snapshot would
/// otherwise hand every instance, in every process, the same sequence. The
/// seed is fetched on first use, so handlers that never ask pay nothing.
pub fn reseed_random() {
    RANDOM.set(0);
}

fn seed() -> u64 {
    let mut seed = [0u8; 8];
    // SAFETY: the buffer is valid for 8 bytes; getentropy takes up to 256.
    let ok = unsafe { getentropy(seed.as_mut_ptr(), seed.len()) } == 0;
    assert!(ok, "the host gave no randomness");
    u64::from_le_bytes(seed) | 1
}

/// xorshift64*, as QuickJS's own `Math.random`, from our reseedable state.
fn random() -> f64 {
    let mut x = RANDOM.get();
    if x == 0 {
        x = seed();
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    RANDOM.set(x);
    let bits = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
    // 52 random mantissa bits in [1, 2), minus 1.
    f64::from_bits((bits >> 12) | 0x3ff0_0000_0000_0000) - 1.0
}

pub fn install<'js>(ctx: &Ctx<'js>) -> Result<()> {
    let math: Object = ctx.globals().get("Math")?;
    math.set(
        "random",
        Function::new(ctx.clone(), random)?.with_name("random")?,
    )?;

    let console = Object::new(ctx.clone())?;
    for (name, level) in [
        ("debug", Level::Debug),
        ("log", Level::Info),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("error", Level::Error),
    ] {
        let f = Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
            log::log(level, &format_args(&ctx, &args.0));
        })?;
        console.set(name, f)?;
    }
    ctx.globals().set("console", console)?;

    let nexus = Object::new(ctx.clone())?;
    nexus.set("stats", Function::new(ctx.clone(), stats_object)?)?;
    ctx.globals().set("Nexus", nexus)?;
    Ok(())
}

/// Joins `console.*` arguments the way Node prints them, close enough for a
/// log line: strings as they are, other values as JSON where they have it.
fn format_args<'js>(ctx: &Ctx<'js>, args: &[Value<'js>]) -> String {
    let mut line = String::new();
    for (i, value) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let text = if let Some(s) = value.as_string() {
            s.to_string().ok()
        } else if value.is_error() || value.is_function() || value.is_symbol() {
            None
        } else {
            ctx.json_stringify(value.clone())
                .ok()
                .flatten()
                .and_then(|s| s.to_string().ok())
        };
        let text = text.or_else(|| value.get::<Coerced<String>>().ok().map(|s| s.0));
        line.push_str(text.as_deref().unwrap_or("<unprintable>"));
    }
    line
}

fn stats_object(ctx: Ctx<'_>) -> Result<Object<'_>> {
    runtime_stats(&ctx, &stats::get())
}

/// The WIT record as a plain object: each field under its WIT name in
/// snake_case (`capacity-bytes` as `capacity_bytes`).
fn runtime_stats<'js>(ctx: &Ctx<'js>, s: &RuntimeStats) -> Result<Object<'js>> {
    let o = Object::new(ctx.clone())?;
    o.set("bytecode", cache_stats(ctx, &s.bytecode)?)?;
    o.set("components", cache_stats(ctx, &s.components)?)?;
    o.set("compiles", s.compiles as f64)?;
    o.set("executions", s.executions as f64)?;
    o.set("failures", s.failures as f64)?;
    o.set("timeouts", s.timeouts as f64)?;
    o.set("host_wide", s.host_wide)?;
    Ok(o)
}

fn cache_stats<'js>(ctx: &Ctx<'js>, s: &CacheStats) -> Result<Object<'js>> {
    let o = Object::new(ctx.clone())?;
    o.set("memory", tier(ctx, &s.memory)?)?;
    o.set("disk", tier(ctx, &s.disk)?)?;
    o.set("hit_rate", s.hit_rate)?;
    Ok(o)
}

fn tier<'js>(ctx: &Ctx<'js>, t: &Tier) -> Result<Object<'js>> {
    let o = Object::new(ctx.clone())?;
    for (key, value) in [
        ("hits", t.hits),
        ("misses", t.misses),
        ("entries", t.entries),
        ("bytes", t.bytes),
        ("capacity_bytes", t.capacity_bytes),
        ("evictions", t.evictions),
    ] {
        // Counters stay far below 2^53, where f64 is exact.
        o.set(key, value as f64)?;
    }
    Ok(o)
}
