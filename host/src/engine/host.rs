//! What a store carries: [`HostState`], with the memory limiter, the
//! handler's console lines, the runtime's figures for `Nexus.stats()`, and a
//! WASI context made only if a call reaches it. Here are the guest's imports
//! as the host implements them: `log`, `stats`, and WASI's clocks and
//! randomness (through `wasmtime-wasi`).
//!
//! Invariant: the WASI context is empty: no preopened directories, no
//! environment, no arguments, no stdio, no sockets. The guest imports only
//! clocks and randomness from WASI (`host/build.rs` turned the rest of what
//! Rust's std links into traps).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{nexus::handler as wit, Level, RuntimeStats};
use super::observe::Watch;

/// Console output a handler may keep per call, in bytes and in lines; past
/// either, lines are dropped and one marker line says so. Each line costs at
/// least [`LINE_COST`], so empty lines cannot grow the host's memory
/// without bound: what a call keeps stays under about 2 MiB.
const MAX_LOG_BYTES: usize = 1 << 20;
const MAX_LOG_LINES: usize = 10_000;
/// What a kept line costs at least: its `LogLine` and allocation overhead.
const LINE_COST: usize = 64;

/// Where the `stats` import reads the runtime's figures, given the calling
/// handler's name.
pub(crate) type StatsSource = Arc<dyn Fn(&str) -> RuntimeStats + Send + Sync>;

/// What every store of one runtime shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// Where `Nexus.stats()` reads.
    pub stats: StatsSource,
    /// The console's rate limit, per handler.
    pub console: Arc<Console>,
}

/// How many console lines a second each handler may send to the host's log
/// (a token bucket per handler name, a second's worth deep); the rest are
/// counted and summed up in one line at the end of their call.
pub(crate) struct Console {
    per_second: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Handler names a console remembers before it starts afresh.
const MAX_BUCKETS: usize = 10_000;

impl Console {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            buckets: Mutex::default(),
        }
    }

    /// Whether `handler` may log a line now.
    fn admit(&self, handler: &str) -> bool {
        if self.per_second == 0 {
            return false;
        }
        let rate = f64::from(self.per_second);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        if !buckets.contains_key(handler) {
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
            let full = Bucket {
                tokens: rate,
                last: now,
            };
            buckets.insert(handler.to_owned(), full);
        }
        let bucket = buckets.get_mut(handler).expect("just inserted");
        let refill = now.duration_since(bucket.last).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How one call's console lines fared, counted when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleCounts {
    /// Lines the handler wrote, whatever became of them.
    pub lines: u64,
    /// Kept out of the host's log by `console_lines_per_second`.
    pub suppressed: u64,
    /// Past one call's cap (lines or bytes): not kept at all.
    pub dropped: u64,
}

/// Where a call's [`ConsoleCounts`] go when it ends, whatever its outcome.
pub(crate) trait ConsoleSink {
    fn count(&self, counts: ConsoleCounts);
}

/// One `console.*` line from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `console.debug` … `console.error` (`console.log` is `info`).
    pub level: Level,
    /// The line, as the handler formatted it.
    pub message: String,
}

/// `StoreLimits`, remembering whether a memory grow was refused: QuickJS
/// turns that into an ordinary exception, which is still out-of-memory.
pub(crate) struct Limiter {
    limits: StoreLimits,
    pub(crate) refused: bool,
    /// The largest memory granted so far, in bytes.
    pub(crate) largest: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        if allowed {
            self.largest = self.largest.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// One store's host state. Made only by [`super::store::StoreBuilder`].
pub(crate) struct HostState {
    // Made on first use: most calls never reach WASI.
    wasi: Option<WasiCtx>,
    pub(crate) limiter: Limiter,
    /// When the call must end, by the clock (see `store::set_deadline`).
    pub(crate) deadline: Option<Instant>,
    /// Set when the call's caller may stop it (see `store::cancel_with`).
    pub(crate) cancel: Option<super::store::Cancel>,
    table: ResourceTable,
    shared: Shared,
    handler: String,
    pub(crate) logs: Vec<LogLine>,
    log_bytes: usize,
    /// Lines the handler wrote.
    written: u64,
    /// Lines the console's rate limit kept out of the host's log.
    suppressed: u64,
    /// Lines past the call's cap (lines or bytes), not kept at all.
    dropped: u64,
    /// Where reads of the clocks, randomness and stats are recorded, while
    /// a handler is prepared.
    watch: Option<Watch>,
}

impl HostState {
    /// A fresh state for `handler`'s call, with a memory cap if given.
    pub(super) fn new(shared: Shared, handler: &str, max_memory_bytes: Option<u64>) -> Self {
        let mut limits = StoreLimitsBuilder::new();
        if let Some(max) = max_memory_bytes {
            limits = limits.memory_size(usize::try_from(max).unwrap_or(usize::MAX));
        }
        HostState {
            wasi: None,
            limiter: Limiter {
                limits: limits.build(),
                refused: false,
                largest: 0,
            },
            table: ResourceTable::new(),
            deadline: None,
            cancel: None,
            shared,
            handler: handler.to_owned(),
            logs: Vec::new(),
            log_bytes: 0,
            written: 0,
            suppressed: 0,
            dropped: 0,
            watch: None,
        }
    }

    /// How the call's console lines fared so far.
    pub(crate) fn console_counts(&self) -> ConsoleCounts {
        ConsoleCounts {
            lines: self.written,
            suppressed: self.suppressed,
            dropped: self.dropped,
        }
    }

    /// From now on, records what the guest reads of the clocks, randomness
    /// and stats (the WASI context is remade to record).
    pub(crate) fn watch(&mut self) -> Watch {
        let watch = Watch::default();
        self.watch = Some(watch.clone());
        self.wasi = None;
        watch
    }
}

impl HostState {
    /// Makes the state ready for another call on the same instance: the
    /// last call's console lines reported and its counts, deadline and
    /// cancel cleared.
    pub(crate) fn next_call(&mut self) {
        self.report_console();
        self.logs.clear();
        self.log_bytes = 0;
        self.written = 0;
        self.suppressed = 0;
        self.dropped = 0;
        self.deadline = None;
        self.cancel = None;
        self.limiter.refused = false;
    }

    /// Warns of the lines the call's console limits kept out.
    fn report_console(&self) {
        let handler = self.handler.as_str();
        if self.suppressed > 0 {
            tracing::warn!(
                target: "nexus::console",
                handler,
                "{} console lines suppressed (over console_lines_per_second = {} for this handler)",
                self.suppressed,
                self.shared.console.per_second
            );
        }
        if self.dropped > 0 {
            tracing::warn!(
                target: "nexus::console",
                handler,
                "{} console lines dropped (over one call's {MAX_LOG_LINES} lines or \
                 {MAX_LOG_BYTES} bytes)",
                self.dropped,
            );
        }
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        self.report_console();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| match &self.watch {
                Some(watch) => watch.wasi(),
                None => WasiCtx::builder().build(),
            }),
            table: &mut self.table,
        }
    }
}

impl wit::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.written += 1;
        let full = |bytes: usize, lines: usize| bytes > MAX_LOG_BYTES || lines > MAX_LOG_LINES;
        if full(self.log_bytes, self.logs.len()) {
            self.dropped += 1;
            return;
        }
        self.log_bytes += message.len().max(LINE_COST);
        let (level, message) = if full(self.log_bytes, self.logs.len() + 1) {
            // This line tips the call over: a marker takes its place.
            self.dropped += 1;
            (
                Level::Warn,
                format!(
                    "console output over {MAX_LOG_LINES} lines or {MAX_LOG_BYTES} bytes; \
                     the rest of this call's is dropped"
                ),
            )
        } else {
            (level, message)
        };
        let handler = self.handler.as_str();
        if !self.shared.console.admit(handler) {
            self.suppressed += 1;
            self.logs.push(LogLine { level, message });
            return;
        }
        match level {
            Level::Debug => tracing::debug!(target: "nexus::console", handler, "{message}"),
            Level::Info => tracing::info!(target: "nexus::console", handler, "{message}"),
            Level::Warn => tracing::warn!(target: "nexus::console", handler, "{message}"),
            Level::Error => tracing::error!(target: "nexus::console", handler, "{message}"),
        }
        self.logs.push(LogLine { level, message });
    }
}

impl wit::stats::Host for HostState {
    fn get(&mut self) -> RuntimeStats {
        if let Some(watch) = &self.watch {
            watch.stats_read();
        }
        (self.shared.stats)(&self.handler)
    }
}

impl wit::types::Host for HostState {}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::log::Host as _;

    fn state() -> HostState {
        let shared = Shared {
            stats: Arc::new(|_| unreachable!("no stats here")),
            console: Arc::new(Console::new(100)),
        };
        HostState::new(shared, "flood.js", None)
    }

    #[test]
    fn empty_lines_are_capped_by_count() {
        let mut host = state();
        for _ in 0..100_000 {
            host.log(Level::Info, String::new());
        }
        assert_eq!(host.logs.len(), MAX_LOG_LINES + 1);
        let marker = host.logs.last().unwrap();
        assert_eq!(marker.level, Level::Warn);
        assert!(marker.message.contains("dropped"), "{}", marker.message);
        assert!(host.log_bytes <= MAX_LOG_BYTES + LINE_COST);
    }

    #[test]
    fn every_line_past_the_cap_or_the_rate_is_counted() {
        let mut host = state();
        for _ in 0..200_000 {
            host.log(Level::Info, "x".into());
        }
        // Kept: the cap's worth of lines, then the marker in place of the
        // next; every other line is counted as dropped.
        assert_eq!(host.logs.len(), MAX_LOG_LINES + 1);
        assert_eq!(host.dropped, 200_000 - MAX_LOG_LINES as u64);
        // Of those kept, all but the rate's worth (a second's, and what the
        // loop's own time refilled) went over the rate.
        assert!(
            host.suppressed >= (MAX_LOG_LINES + 1 - 2_000) as u64,
            "{}",
            host.suppressed
        );
        assert!(host.suppressed <= MAX_LOG_LINES as u64 + 1);
    }

    #[test]
    fn long_lines_are_capped_by_bytes() {
        let mut host = state();
        for _ in 0..10 {
            host.log(Level::Info, "x".repeat(300_000));
        }
        let kept: usize = host.logs.iter().map(|l| l.message.len()).sum();
        assert_eq!(host.logs.len(), 4, "three lines, then the marker");
        assert!(kept < MAX_LOG_BYTES, "{kept}");
        assert_eq!(host.logs[3].level, Level::Warn);
    }
}

#[cfg(test)]
mod console_tests {
    use super::*;

    #[test]
    fn each_handler_has_its_own_bucket_a_second_deep() {
        let console = Console::new(5);
        let admitted = (0..100).filter(|_| console.admit("a")).count();
        assert!((5..=6).contains(&admitted), "{admitted}");
        assert!(console.admit("b"), "another handler is not held back");
        std::thread::sleep(std::time::Duration::from_millis(450));
        assert!(console.admit("a"), "tokens come back with time");
        assert!(!Console::new(0).admit("a"), "0: no console lines at all");
    }
}
