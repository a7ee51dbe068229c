//! How a pool slot is made clean for its next instance.
//!
//! wasmtime 48 resets a slot with the kernel's PAGEMAP_SCAN where it can
//! (`reset_with_pagemap` in `runtime/vm/sys/unix/pagemap.rs`): it asks for
//! the pages that are WRITTEN *and PRESENT*, resets those, and decommits
//! only what lies past the scan's end. A dirty page the kernel has swapped
//! out is not PRESENT, so it is neither reset nor decommitted, and the next
//! instance in the slot reads the previous one's bytes once it is swapped
//! back in. (The scan also stops after 32 regions, `MAX_REGIONS`; the rest
//! is decommitted, which is safe, but costs the next call page faults.)
//!
//! So on a host with swap the slot is reset in full instead: no scan, and
//! nothing kept resident, so every page is decommitted (`madvise`
//! `MADV_DONTNEED`, which drops swapped-out pages too) and cannot be missed.

use crate::config::SlotReset;

/// How slots are reset, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotResetChoice {
    /// Full: every page decommitted; otherwise the dirty pages the scan
    /// finds (and what it does not reach, decommitted).
    pub full: bool,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl SlotResetChoice {
    /// `scan` or `full`.
    pub fn as_str(&self) -> &'static str {
        if self.full {
            "full"
        } else {
            "scan"
        }
    }
}

/// The choice `setting` makes on a host whose `/proc/swaps` and
/// `/proc/meminfo` read as given (empty when unreadable).
pub(crate) fn choose(setting: SlotReset, swaps: &str, meminfo: &str) -> SlotResetChoice {
    match setting {
        SlotReset::Full => SlotResetChoice {
            full: true,
            reason: "slot_reset = full",
        },
        SlotReset::Scan => SlotResetChoice {
            full: false,
            reason: "slot_reset = scan",
        },
        SlotReset::Auto if has_swap(swaps, meminfo) => SlotResetChoice {
            full: true,
            reason: "the host has swap, and the page scan misses swapped-out pages",
        },
        SlotReset::Auto => SlotResetChoice {
            full: false,
            reason: "the host has no swap",
        },
    }
}

/// The choice `setting` makes on this host.
pub(crate) fn choose_here(setting: SlotReset) -> SlotResetChoice {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    choose(setting, &read("/proc/swaps"), &read("/proc/meminfo"))
}

/// Whether a swap device is listed (below `/proc/swaps`' header line), or
/// `SwapTotal` is above zero.
fn has_swap(swaps: &str, meminfo: &str) -> bool {
    let device = swaps.lines().skip(1).any(|line| !line.trim().is_empty());
    let total = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("SwapTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    device || total > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

    /// A core module with a 2 MiB memory: `write(v)` stores `v` at the
    /// start of every other host page for `REGIONS` pages (that many
    /// disjoint dirty regions), `sum()` adds those bytes up.
    fn dirtier() -> Vec<u8> {
        use wasm_encoder::{
            BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection,
            Instruction as I, MemArg, MemorySection, MemoryType, Module, TypeSection, ValType,
        };
        let at = MemArg {
            offset: 0,
            align: 0,
            memory_index: 0,
        };
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], []);
        types.ty().function([], [ValType::I32]);
        module.section(&types);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        funcs.function(1);
        module.section(&funcs);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 32,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
        let mut exports = ExportSection::new();
        exports.export("write", ExportKind::Func, 0);
        exports.export("sum", ExportKind::Func, 1);
        module.section(&exports);
        let address = [I::LocalGet(1), I::I32Const(STRIDE), I::I32Mul];
        let next = [
            I::LocalGet(1),
            I::I32Const(1),
            I::I32Add,
            I::LocalTee(1),
            I::I32Const(REGIONS),
            I::I32LtU,
            I::BrIf(0),
        ];
        let mut write = Function::new([(1, ValType::I32)]);
        write.instruction(&I::Loop(BlockType::Empty));
        for i in address
            .iter()
            .chain(&[I::LocalGet(0), I::I32Store8(at)])
            .chain(&next)
        {
            write.instruction(i);
        }
        write.instruction(&I::End).instruction(&I::End);
        let mut sum = Function::new([(2, ValType::I32)]);
        sum.instruction(&I::Loop(BlockType::Empty));
        for i in [I::LocalGet(0)]
            .iter()
            .chain(&address)
            .chain(&[I::I32Load8U(at), I::I32Add, I::LocalSet(0)])
            .chain(&next)
        {
            sum.instruction(i);
        }
        sum.instruction(&I::End)
            .instruction(&I::LocalGet(0))
            .instruction(&I::End);
        let mut code = CodeSection::new();
        code.function(&write);
        code.function(&sum);
        module.section(&code);
        module.finish()
    }

    /// Disjoint dirty regions, more than the page scan's 32.
    const REGIONS: i32 = 100;
    /// Two host pages apart: no two written bytes share a region.
    const STRIDE: i32 = 8192;

    /// In the pool's own configuration, in both modes, an instance never
    /// reads what the previous instance in its slot wrote, across more
    /// dirty regions than the scan returns at once.
    #[test]
    fn a_slot_never_shows_the_last_instances_bytes() {
        for full in [false, true] {
            let choice = SlotResetChoice {
                full,
                reason: "test",
            };
            let engine = super::super::pooled(2, 64 << 20, choice, &Default::default()).unwrap();
            let module = wasmtime::Module::new(&engine, dirtier()).unwrap();
            for round in 0..4 {
                let mut store = wasmtime::Store::new(&engine, ());
                store.set_epoch_deadline(u64::MAX / 2);
                let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                let sum = instance
                    .get_typed_func::<(), i32>(&mut store, "sum")
                    .unwrap();
                let write = instance
                    .get_typed_func::<i32, ()>(&mut store, "write")
                    .unwrap();
                assert_eq!(
                    sum.call(&mut store, ()).unwrap(),
                    0,
                    "{} reset, round {round}: the last instance's bytes",
                    choice.as_str()
                );
                write.call(&mut store, 1).unwrap();
                assert_eq!(sum.call(&mut store, ()).unwrap(), REGIONS);
            }
        }
    }

    #[test]
    fn auto_resets_in_full_only_where_the_host_has_swap() {
        let none = "MemTotal: 24000000 kB\nSwapTotal:             0 kB\n";
        let choice = choose(SlotReset::Auto, HEADER, none);
        assert!(!choice.full, "{choice:?}");
        let device = format!("{HEADER}/dev/zram0  partition\t4194300\t0\t100\n");
        assert!(choose(SlotReset::Auto, &device, none).full);
        let counted = "SwapTotal:       2097148 kB\n";
        let choice = choose(SlotReset::Auto, HEADER, counted);
        assert!(choice.full && choice.reason.contains("swap"), "{choice:?}");
        // Unreadable files: no swap seen.
        assert!(!choose(SlotReset::Auto, "", "").full);
        // The setting, when not auto, decides alone.
        assert!(choose(SlotReset::Full, HEADER, none).full);
        assert!(!choose(SlotReset::Scan, &device, counted).full);
    }
}
