//! Per-CPU data and stacks, indexed by logical CPU number (the CPU's position among the
//! MADT's enabled processors). Each CPU's GS base points at its own `PerCpu`.

use crate::arch::cpu::{self, IA32_GS_BASE};
use crate::arch::gdt::{CpuTables, IstTops};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The most CPUs the kernel brings up.
pub const MAX_CPUS: usize = 512;

/// What a CPU records about itself; others read it.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Logical index.
    pub index: AtomicU32,
    /// APIC ID as the CPU read it from its own local APIC (`u32::MAX` until online).
    pub apic_id: AtomicU32,
    /// IA32_APIC_BASE.EXTD as the CPU read it after enabling its local APIC.
    pub x2apic: AtomicBool,
    /// Set by the CPU once it is fully up (tables loaded, APIC and timer running).
    pub online: AtomicBool,
    /// LAPIC timer interrupts taken.
    pub ticks: AtomicU64,
    /// NMIs taken (the watchdog attributes them; the foundation only counts).
    pub nmis: AtomicU64,
    /// NMIs at least half a route-test period after the previous counted one: distinct HPET
    /// expiries (the `hpet_nmi` self-test).
    pub nmi_expiries: AtomicU64,
    /// NMIs closer than that: a second delivery of the same expiry.
    pub nmi_duplicates: AtomicU64,
    /// TSC of the last counted expiry.
    pub last_expiry_tsc: AtomicU64,
    /// Interrupts on vectors nobody owns.
    pub unexpected_interrupts: AtomicU64,
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            index: AtomicU32::new(u32::MAX),
            apic_id: AtomicU32::new(u32::MAX),
            x2apic: AtomicBool::new(false),
            online: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            nmis: AtomicU64::new(0),
            nmi_expiries: AtomicU64::new(0),
            nmi_duplicates: AtomicU64::new(0),
            last_expiry_tsc: AtomicU64::new(0),
            unexpected_interrupts: AtomicU64::new(0),
        }
    }
}

static PER_CPU: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// The per-CPU data of logical CPU `index`.
pub fn get(index: usize) -> Option<&'static PerCpu> {
    PER_CPU.get(index)
}

/// The calling CPU's data, once it has called [`set_current`].
pub fn current() -> Option<&'static PerCpu> {
    let base = cpu::read_msr(IA32_GS_BASE) as usize;
    let first = PER_CPU.as_ptr() as usize;
    let offset = base.checked_sub(first)?;
    if offset % core::mem::size_of::<PerCpu>() != 0 {
        return None;
    }
    PER_CPU.get(offset / core::mem::size_of::<PerCpu>())
}

/// Makes logical CPU `index`'s data the calling CPU's (GS base).
pub fn set_current(index: usize) {
    let Some(data) = PER_CPU.get(index) else {
        return;
    };
    data.index.store(index as u32, Ordering::Relaxed);
    // SAFETY: IA32_GS_BASE exists on every x86-64 CPU; the kernel only uses GS through
    // `current`, which validates the pointer against the per-CPU array.
    unsafe { cpu::write_msr(IA32_GS_BASE, data as *const PerCpu as u64) }
}

/// Stack sizes.
const KERNEL_STACK: usize = 16 * 1024;
const IST_STACK: usize = 8 * 1024;
const SMALL_IST_STACK: usize = 4 * 1024;

/// One CPU's stacks: the kernel stack and the five IST stacks (gdt.rs `ist`).
#[repr(C, align(4096))]
struct CpuStacks {
    kernel: [u8; KERNEL_STACK],
    exception: [u8; IST_STACK],
    nmi: [u8; IST_STACK],
    double_fault: [u8; SMALL_IST_STACK],
    machine_check: [u8; SMALL_IST_STACK],
    interrupt: [u8; IST_STACK],
}

impl CpuStacks {
    const fn new() -> Self {
        Self {
            kernel: [0; KERNEL_STACK],
            exception: [0; IST_STACK],
            nmi: [0; IST_STACK],
            double_fault: [0; SMALL_IST_STACK],
            machine_check: [0; SMALL_IST_STACK],
            interrupt: [0; IST_STACK],
        }
    }
}

/// A CPU's stacks (all zero bytes, so the array lands in .bss, not in the image file).
struct StackSlot(UnsafeCell<CpuStacks>);
/// A CPU's descriptor tables.
struct TableSlot(UnsafeCell<CpuTables>);

// SAFETY: each slot is handed out once (`take_slot`) to the CPU that uses it; the stacks are
// only ever used through that CPU's stack pointer, the tables only by their owner.
unsafe impl Sync for StackSlot {}
// SAFETY: as above.
unsafe impl Sync for TableSlot {}

/// Slots `0..MAX_CPUS` belong to the logical CPUs started by the boot CPU; the boot CPU
/// itself uses slot `MAX_CPUS` (it needs its tables before it knows its logical index).
static STACKS: [StackSlot; MAX_CPUS + 1] =
    [const { StackSlot(UnsafeCell::new(CpuStacks::new())) }; MAX_CPUS + 1];
static TABLES: [TableSlot; MAX_CPUS + 1] =
    [const { TableSlot(UnsafeCell::new(CpuTables::new())) }; MAX_CPUS + 1];
static SLOT_TAKEN: [AtomicBool; MAX_CPUS + 1] = [const { AtomicBool::new(false) }; MAX_CPUS + 1];

/// Where a CPU's stacks end, and its descriptor tables.
pub struct Slot {
    pub kernel_stack_top: u64,
    pub ist_tops: IstTops,
    pub tables: &'static mut CpuTables,
}

/// The end address of a stack field of the `CpuStacks` at `base`: computed from offsets, so no
/// reference is ever made to memory that the CPU owning it writes through its stack pointer.
macro_rules! stack_top {
    ($base:expr, $field:ident, $size:expr) => {
        $base + core::mem::offset_of!(CpuStacks, $field) as u64 + $size as u64
    };
}

/// Hands out the stacks and tables of logical CPU `index`, or the boot CPU's for `None`.
/// Each slot is handed out at most once.
pub fn take_slot(index: Option<usize>) -> Option<Slot> {
    let slot = match index {
        Some(i) if i < MAX_CPUS => i,
        Some(_) => return None,
        None => MAX_CPUS,
    };
    if SLOT_TAKEN[slot].swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the `taken` flag makes this the one and only reference ever created to this
    // slot's tables.
    let tables = unsafe { &mut *TABLES[slot].0.get() };
    let base = STACKS[slot].0.get() as u64;
    Some(Slot {
        kernel_stack_top: stack_top!(base, kernel, KERNEL_STACK),
        ist_tops: [
            stack_top!(base, exception, IST_STACK),
            stack_top!(base, nmi, IST_STACK),
            stack_top!(base, double_fault, SMALL_IST_STACK),
            stack_top!(base, machine_check, SMALL_IST_STACK),
            stack_top!(base, interrupt, IST_STACK),
        ],
        tables,
    })
}
