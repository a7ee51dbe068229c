//! QuickJS's stack check, restored on WASI.
//!
//! QuickJS checks its C stack at every JavaScript call and throws a
//! catchable `RangeError: Maximum call stack size exceeded` past its limit.
//! Built for WASI, it turns that check off (`update_stack_limit` sets no
//! limit under `__wasi__`), so deep recursion ran until the wasm stack
//! trapped, which a handler cannot catch. `JS_UpdateStackTop`, which
//! rquickjs calls on every entry into JavaScript, is what resets the limit;
//! the guest is linked with `--wrap=JS_UpdateStackTop` (guest/build.rs), so
//! those calls come here, and the limit is put back after each.
//!
//! The limit is one fixed address: [`MAX_STACK`] below the stack's top when
//! the runtime was made, whatever the depth of a later re-entry, so it can
//! never point past the shadow stack (`STACK_SIZE` in guest/build.rs).
//!
//! `JSRuntime` is opaque to Rust. The offset of its `stack_size`,
//! `stack_top`, `stack_limit` fields (three `uintptr_t`s in a row) is found
//! once, by setting `stack_size` to two distinctive values through the API
//! and finding the one word that follows them.

use std::cell::Cell;

use rquickjs::qjs;

/// How much of the shadow stack JavaScript may use: about 7 000 nested
/// calls. Each takes about 300 bytes of it and about 700 bytes of the wasm
/// stack, so the host's 8 MiB wasm stack outlasts it.
pub const MAX_STACK: usize = 2 << 20;

thread_local! {
    /// Where the three fields are in `JSRuntime`, and the limit to keep.
    static FIELDS: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

unsafe extern "C" {
    fn __real_JS_UpdateStackTop(rt: *mut qjs::JSRuntime);
}

/// What rquickjs's calls to `JS_UpdateStackTop` reach.
///
/// # Safety
///
/// `rt` is a live runtime, as for `JS_UpdateStackTop`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_JS_UpdateStackTop(rt: *mut qjs::JSRuntime) {
    // SAFETY: as the caller's.
    unsafe { __real_JS_UpdateStackTop(rt) };
    if let Some((offset, limit)) = FIELDS.get() {
        // SAFETY: `offset` was found inside this runtime's struct by
        // `install`, and runtimes of one build share their layout.
        unsafe { write(rt, offset + 2, limit) };
    }
}

const WORD: usize = std::mem::size_of::<usize>();
/// How far into `JSRuntime` the fields are looked for.
const SEARCH: usize = 2048;

unsafe fn read(rt: *mut qjs::JSRuntime, word: usize) -> usize {
    unsafe { (rt as *const usize).add(word).read_volatile() }
}

unsafe fn write(rt: *mut qjs::JSRuntime, word: usize, value: usize) {
    unsafe { (rt as *mut usize).add(word).write_volatile(value) }
}

/// Finds the fields in `rt` and sets its limit [`MAX_STACK`] below its
/// current stack top; from then on every `JS_UpdateStackTop` keeps it.
/// Answers whether the fields were found (if not, the check stays off).
///
/// # Safety
///
/// `rt` is a live runtime, and no JavaScript runs during the call.
pub unsafe fn install(rt: *mut qjs::JSRuntime) -> bool {
    const A: usize = 0x5a17_c0de;
    const B: usize = 0x0bad_f00d;
    // SAFETY: the runtime's own API, then reads within its allocation's
    // neighbourhood in linear memory (always in bounds of the memory).
    unsafe {
        qjs::JS_SetMaxStackSize(rt, A as _);
        let with_a: Vec<usize> = (0..SEARCH / WORD).filter(|&w| read(rt, w) == A).collect();
        qjs::JS_SetMaxStackSize(rt, B as _);
        let found: Vec<usize> = with_a.into_iter().filter(|&w| read(rt, w) == B).collect();
        qjs::JS_SetMaxStackSize(rt, MAX_STACK as _);
        let [size] = found[..] else { return false };
        __real_JS_UpdateStackTop(rt);
        let top = read(rt, size + 1);
        if read(rt, size) != MAX_STACK || top < MAX_STACK || read(rt, size + 2) != 0 {
            return false;
        }
        FIELDS.set(Some((size, top - MAX_STACK)));
        write(rt, size + 2, top - MAX_STACK);
    }
    true
}
