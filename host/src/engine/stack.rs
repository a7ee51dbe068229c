//! The native stack that wasm runs on. Wasmtime runs a synchronous call on
//! the calling thread's stack and traps once wasm has used
//! [`WASM_STACK`] of it; QuickJS's own stack check (in the guest) is sized
//! to fire well before that, as a catchable `RangeError`.
//!
//! Invariant: wasm is entered only with at least [`NEEDED`] bytes of stack
//! left, or it could run off the thread's stack, which aborts the process.
//! [`with_stack`] checks, and moves a call from a thread with less (a
//! default 2 MiB Rust thread) to a helper thread of [`THREAD_STACK`].

use std::cell::Cell;

/// What wasm may use of the native stack (wasmtime's `max_wasm_stack`):
/// room for about 10 000 nested JavaScript calls.
pub(crate) const WASM_STACK: usize = 8 << 20;

/// What a thread must have left to enter wasm: the wasm stack, plus the
/// host functions wasm calls and wasmtime's own frames.
const NEEDED: usize = WASM_STACK + (1 << 20);

/// The stack size for threads that invoke handlers: calls from a thread
/// with less stack left than the wasm stack and some room run on a helper
/// thread instead, which costs a thread start per call.
pub const THREAD_STACK: usize = WASM_STACK + (4 << 20);

thread_local! {
    /// The lowest address of this thread's stack, once looked up.
    static STACK_LOW: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The lowest address of the current thread's stack, if the platform says.
fn stack_low() -> Option<usize> {
    if let Some(low) = STACK_LOW.get() {
        return Some(low);
    }
    // SAFETY: `attr` is initialized by pthread_getattr_np before it is read
    // and destroyed once; the out-pointers are valid locals.
    let low = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if got != 0 {
            return None;
        }
        addr as usize
    };
    STACK_LOW.set(Some(low));
    Some(low)
}

/// Bytes of stack left below this frame; 0 if unknown.
fn remaining() -> usize {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    stack_low().map_or(0, |low| sp.saturating_sub(low))
}

/// Runs `f` here if this thread has the stack a wasm call needs, else on a
/// helper thread that has.
pub(crate) fn with_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if remaining() >= NEEDED {
        return f();
    }
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("nexus-call".into())
            .stack_size(THREAD_STACK)
            .spawn_scoped(scope, f)
            .expect("start a thread for a wasm call");
        helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_stack_moves_the_call_to_a_big_one() {
        let small = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                assert!(remaining() < NEEDED);
                with_stack(remaining)
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(small >= NEEDED, "{small}");
        let big = std::thread::Builder::new()
            .name("big".into())
            .stack_size(THREAD_STACK)
            .spawn(|| with_stack(|| std::thread::current().name() == Some("big")))
            .unwrap()
            .join()
            .unwrap();
        assert!(big, "a thread with the stack runs the call itself");
    }
}
