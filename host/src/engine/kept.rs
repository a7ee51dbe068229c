//! An instance kept for further calls of one handler version: what
//! `isolation = reuse` runs in. Its module is evaluated once, when it is
//! made (a prepared snapshot's instance has it already; on the shared guest,
//! `prepare` evaluates the handler's bytecode first), and each call then
//! only runs `invoke-prepared`.
//!
//! Invariants:
//! - An instance comes back to its caller only from a call that succeeded:
//!   after any error, timeout, trap or out-of-memory its store is dropped
//!   with the call, never used again.
//! - Each call has its own deadline, cancel, console counts and lines; the
//!   memory cap is the store's, for the instance's whole life.
//! - Which handler version an instance belongs to is its keeper's to track
//!   (`runtime::reuse`): this module never mixes instances, as it never
//!   names one.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Instance;
use wasmtime::Store;

use super::exports::Exports;
use super::host::HostState;
use super::sandbox::{Hooks, Ran, Sandbox, Timing};
use super::store::{self, Limits};
use crate::error::Result;

/// An instance whose calls succeeded so far, with its store: its module's
/// state is what those calls left.
pub(crate) struct Kept {
    store: Store<HostState>,
    instance: Instance,
    exports: Arc<Exports>,
    calls: u32,
}

impl Kept {
    /// The calls it has served.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// The largest its memory has grown to, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.store.data().limiter.largest as u64
    }
}

impl Sandbox {
    /// Calls the kept default export with `input` in `kept`, or, without
    /// one, in a new instance of this sandbox's component, in which
    /// `prepare` (a plain handler's bytecode) is evaluated first. A new
    /// instance's making counts against the call's own limits. Answers the
    /// instance back for further calls if, and only if, the call succeeded.
    pub fn run_kept(
        &self,
        handler: &str,
        kept: Option<Kept>,
        prepare: Option<&[u8]>,
        input: &str,
        limits: Limits,
        hooks: Hooks<'_>,
    ) -> (Result<Ran>, Option<Kept>) {
        super::stack::with_stack(|| {
            self.run_kept_here(handler, kept, prepare, input, limits, hooks)
        })
    }

    fn run_kept_here(
        &self,
        handler: &str,
        kept: Option<Kept>,
        prepare: Option<&[u8]>,
        input: &str,
        limits: Limits,
        hooks: Hooks<'_>,
    ) -> (Result<Ran>, Option<Kept>) {
        let start = Instant::now();
        let reused = kept.is_some();
        let (mut store, instance, exports, calls) = match kept {
            Some(kept) => {
                let mut store = kept.store;
                store.data_mut().next_call();
                store::set_deadline(&mut store, Some(limits));
                (store, Some(kept.instance), kept.exports, kept.calls)
            }
            None => (
                self.stores.build(handler, Some(limits)),
                None,
                self.exports.clone(),
                0,
            ),
        };
        if let Some(cancel) = hooks.cancel {
            store::cancel_with(&mut store, cancel);
        }

        let set_up = Instant::now();
        let mut instantiated = set_up;
        let outcome = (|| {
            let instance = match instance {
                Some(instance) => instance,
                None => {
                    let instance = self.pre.instantiate(&mut store)?;
                    if let Some(bytecode) = prepare {
                        if let Err(e) = exports.of(instance).prepare(&mut store, bytecode)? {
                            return Ok(Err(e));
                        }
                    }
                    instantiated = Instant::now();
                    instance
                }
            };
            let output = exports.of(instance).invoke_prepared(&mut store, input)?;
            Ok(output.map(|output| (output, instance)))
        })();
        let called = Instant::now();
        let verdict = store::verdict(&store, limits, outcome);
        if let Some(console) = hooks.console {
            console.count(store.data().console_counts());
        }
        let logs = std::mem::take(&mut store.data_mut().logs);
        let (output, kept) = match verdict {
            Ok((output, instance)) => {
                let kept = Kept {
                    store,
                    instance,
                    exports,
                    calls: calls + 1,
                };
                (Ok(output), Some(kept))
            }
            Err(e) => {
                drop(store);
                (Err(e), None)
            }
        };
        let timing = Timing {
            setup: set_up - start,
            instantiate: instantiated - set_up,
            call: called - instantiated,
            teardown: called.elapsed(),
        };
        let ran = output.map(|output| Ran {
            output,
            logs,
            timing,
            reused,
            teardown: None,
        });
        (ran, kept)
    }
}
