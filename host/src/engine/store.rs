//! The one place a store is made, and a call's outcome judged: the linker
//! for the guest's world, [`StoreBuilder`] (memory cap, epoch deadline,
//! host state), and [`verdict`], which turns traps and refusals into the
//! host's errors. The sandbox and the snapshot both go through here, so what
//! isolation relies on exists once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{HandlerError, HandlerRuntime};
use super::epoch::{self, NEVER};
use super::host::{HostState, Shared};
use crate::error::{Error, Result};

/// What one call may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_memory_bytes: u64,
}

/// How the guest is driven: plainly, or on an async store (Wizer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Sync,
    Async,
}

/// The guest's imports: WASI (of which the guest links only clocks and
/// randomness) and the `nexus:handler` world's `log` and `stats`.
pub(crate) fn linker(engine: &Engine, mode: Mode) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    match mode {
        Mode::Sync => wasmtime_wasi::p2::add_to_linker_sync(&mut linker),
        Mode::Async => wasmtime_wasi::p2::add_to_linker_async(&mut linker),
    }
    .map_err(Error::engine)?;
    HandlerRuntime::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(Error::engine)?;
    Ok(linker)
}

/// Makes every store: each has its host state, a memory limiter and an
/// epoch deadline that traps.
#[derive(Clone)]
pub(crate) struct StoreBuilder {
    engine: Engine,
    shared: Shared,
}

impl StoreBuilder {
    pub fn new(engine: &Engine, shared: Shared) -> Self {
        Self {
            engine: engine.clone(),
            shared,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A store for one call of `handler`, held to `limits`; without limits,
    /// a store for the host's own work (checking exports, the guest's own
    /// initialization), which runs no handler code: no cap, no deadline.
    pub fn build(&self, handler: &str, limits: Option<Limits>) -> Store<HostState> {
        let state = HostState::new(
            self.shared.clone(),
            handler,
            limits.map(|l| l.max_memory_bytes),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        set_deadline(&mut store, limits);
        store.epoch_deadline_callback(|store| {
            let state = store.data();
            Ok(on_deadline(state.deadline, state.cancel.as_ref()))
        });
        store
    }
}

/// How often, in ticks (10 ms), a call that can be cancelled looks at its
/// [`Cancel`]: about the longest it runs on once its caller has gone.
const CANCEL_POLL: u64 = 10;

/// Lets a call be stopped by its caller: a caller that has gone (a client
/// that disconnected) cancels it, and the call ends within about 10 ms, or
/// never starts. Cheap to clone; clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A call not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the calls this token was given to.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Makes `store`'s call stoppable by `cancel`: its deadline is then looked
/// at every [`CANCEL_POLL`] ticks, not only at its end.
pub(crate) fn cancel_with(store: &mut Store<HostState>, cancel: &Cancel) {
    store.data_mut().cancel = Some(cancel.clone());
    let left = store.data().deadline.map_or(NEVER, |at| {
        epoch::ticks(at.saturating_duration_since(Instant::now()))
    });
    store.set_epoch_deadline(left.min(CANCEL_POLL));
}

/// Starts `limits`' deadline from now; without limits, lifts it (for the
/// host's own work on a store that later runs handler code).
pub(crate) fn set_deadline(store: &mut Store<HostState>, limits: Option<Limits>) {
    store.data_mut().deadline = limits.and_then(|l| Instant::now().checked_add(l.timeout));
    store.set_epoch_deadline(limits.map_or(NEVER, |l| epoch::ticks(l.timeout)));
}

/// What to do when a store's epoch deadline comes: the epochs only
/// approximate the clock, so the clock decides. Past the deadline, the call
/// is interrupted (a timeout); before it, it goes on for the time left.
/// A call that can be cancelled is interrupted once it is, and looked at
/// again within [`CANCEL_POLL`] ticks until then.
fn on_deadline(deadline: Option<Instant>, cancel: Option<&Cancel>) -> UpdateDeadline {
    if cancel.is_some_and(Cancel::is_cancelled) {
        return UpdateDeadline::Interrupt;
    }
    let next = match deadline {
        None => NEVER,
        Some(at) => match at.checked_duration_since(Instant::now()) {
            None => return UpdateDeadline::Interrupt,
            Some(left) if left.is_zero() => return UpdateDeadline::Interrupt,
            Some(left) => epoch::ticks(left),
        },
    };
    UpdateDeadline::Continue(match cancel {
        Some(_) => next.min(CANCEL_POLL),
        None => next,
    })
}

/// How a call into the guest ended, as the host's error: a refused memory
/// grow is out-of-memory whatever QuickJS made of it; then the handler's own
/// errors; then traps (the deadline, the wasm stack). Deep JavaScript
/// recursion is QuickJS's catchable `RangeError`, so uncaught it is a
/// runtime error, as in Node; `stack_overflow` is the wasm stack running
/// out, in C recursion QuickJS does not check.
pub(crate) fn verdict<T>(
    store: &Store<HostState>,
    limits: Limits,
    outcome: wasmtime::Result<std::result::Result<T, HandlerError>>,
) -> Result<T> {
    let verdict = judge(outcome, store.data().limiter.refused, limits);
    let cancelled = store
        .data()
        .cancel
        .as_ref()
        .is_some_and(Cancel::is_cancelled);
    match verdict {
        Err(Error::Timeout { .. }) if cancelled => Err(Error::Cancelled),
        verdict => verdict,
    }
}

fn judge<T>(
    outcome: wasmtime::Result<std::result::Result<T, HandlerError>>,
    out_of_memory: bool,
    limits: Limits,
) -> Result<T> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        _ if out_of_memory => Err(Error::OutOfMemory {
            limit: limits.max_memory_bytes,
        }),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Error::Timeout {
                limit: limits.timeout,
            },
            Some(Trap::StackOverflow) => Error::StackOverflow,
            _ => Error::Trap(format!("{e:#}")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bindings::nexus::handler::types::JsException;

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(250),
        max_memory_bytes: 8 << 20,
    };

    fn thrown(name: &str, message: &str) -> HandlerError {
        HandlerError::Runtime(JsException {
            name: name.into(),
            message: message.into(),
            stack: String::new(),
        })
    }

    fn kind(outcome: wasmtime::Result<std::result::Result<(), HandlerError>>, oom: bool) -> String {
        match judge(outcome, oom, LIMITS) {
            Ok(()) => "ok".into(),
            Err(e) => e.kind().into(),
        }
    }

    #[test]
    fn traps_and_refusals_become_the_hosts_errors() {
        assert_eq!(kind(Ok(Ok(())), false), "ok");
        // A refused grow is out of memory, whatever the guest made of it.
        assert_eq!(
            kind(Ok(Err(thrown("InternalError", "out of memory"))), true),
            "out_of_memory"
        );
        assert_eq!(
            kind(Err(Trap::UnreachableCodeReached.into()), true),
            "out_of_memory"
        );
        assert_eq!(
            kind(Ok(Err(thrown("TypeError", "x is not a function"))), false),
            "runtime_error"
        );
        // Thrown, by QuickJS or by the handler: an exception either way.
        assert_eq!(
            kind(
                Ok(Err(thrown(
                    "RangeError",
                    "Maximum call stack size exceeded"
                ))),
                false
            ),
            "runtime_error"
        );
        assert_eq!(
            kind(Ok(Err(HandlerError::InvalidInput("x".into()))), false),
            "invalid_input"
        );
        assert_eq!(kind(Err(Trap::Interrupt.into()), false), "timeout");
        assert_eq!(
            kind(Err(Trap::StackOverflow.into()), false),
            "stack_overflow"
        );
        assert_eq!(
            kind(Err(Trap::UnreachableCodeReached.into()), false),
            "trap"
        );
        assert_eq!(
            kind(Err(wasmtime::format_err!("host failure")), false),
            "trap"
        );
    }

    #[test]
    fn at_an_epoch_deadline_the_clock_decides() {
        assert!(matches!(
            on_deadline(None, None),
            UpdateDeadline::Continue(NEVER)
        ));
        let past = Instant::now() - Duration::from_millis(1);
        assert!(matches!(
            on_deadline(Some(past), None),
            UpdateDeadline::Interrupt
        ));
        // The epochs ran ahead of the clock: the call keeps the time left.
        let ahead = Instant::now() + Duration::from_millis(100);
        match on_deadline(Some(ahead), None) {
            UpdateDeadline::Continue(ticks) => assert!((90..=100).contains(&ticks), "{ticks}"),
            _ => panic!("interrupted 100 ms early"),
        }
        // A call that can be cancelled is looked at often, and stopped once
        // it is cancelled.
        let cancel = Cancel::new();
        assert!(matches!(
            on_deadline(Some(ahead), Some(&cancel)),
            UpdateDeadline::Continue(CANCEL_POLL)
        ));
        cancel.cancel();
        assert!(matches!(
            on_deadline(Some(ahead), Some(&cancel)),
            UpdateDeadline::Interrupt
        ));
    }

    #[test]
    fn a_timeout_and_an_out_of_memory_name_their_limits() {
        let timeout = judge::<()>(Err(Trap::Interrupt.into()), false, LIMITS).unwrap_err();
        assert!(matches!(timeout, Error::Timeout { limit } if limit == LIMITS.timeout));
        let oom = judge::<()>(Err(Trap::UnreachableCodeReached.into()), true, LIMITS).unwrap_err();
        assert!(matches!(oom, Error::OutOfMemory { limit } if limit == 8 << 20));
    }
}
