//! The local APIC in xAPIC (memory-mapped) and x2APIC (MSR) modes (Intel SDM Vol. 3A
//! chapter 11; register offsets from table 11-1, x2APIC MSRs from table 11-6: MSR
//! 0x800 + offset / 16).

use super::cpu::{self, IA32_APIC_BASE};
use super::mmio::RegisterBlock;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Register offsets in the xAPIC page (SDM Vol. 3A table 11-1).
pub mod reg {
    pub const ID: usize = 0x020;
    pub const TASK_PRIORITY: usize = 0x080;
    pub const EOI: usize = 0x0b0;
    pub const SPURIOUS_VECTOR: usize = 0x0f0;
    pub const ERROR_STATUS: usize = 0x280;
    pub const ICR_LOW: usize = 0x300;
    pub const ICR_HIGH: usize = 0x310;
    pub const LVT_TIMER: usize = 0x320;
    pub const LVT_ERROR: usize = 0x370;
    pub const TIMER_INITIAL_COUNT: usize = 0x380;
    pub const TIMER_DIVIDE: usize = 0x3e0;
}

/// IA32_APIC_BASE bits (SDM Vol. 3A figure 11-26).
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
const APIC_BASE_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// x2APIC ICR as one MSR (SDM Vol. 3A section 11.12.9).
const X2APIC_ICR_MSR: u32 = 0x830;
/// ICR delivery status (xAPIC only): send pending.
const ICR_SEND_PENDING: u32 = 1 << 12;

/// ICR fields (SDM Vol. 3A figure 11-12).
pub mod icr {
    pub const DELIVERY_NMI: u32 = 0b100 << 8;
    pub const DELIVERY_INIT: u32 = 0b101 << 8;
    pub const DELIVERY_STARTUP: u32 = 0b110 << 8;
    pub const LEVEL_ASSERT: u32 = 1 << 14;
    pub const TRIGGER_LEVEL: u32 = 1 << 15;
    pub const SHORTHAND_ALL_BUT_SELF: u32 = 0b11 << 18;
}

/// LVT timer mode: periodic (SDM Vol. 3A figure 11-8).
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// Timer divide configuration value for divide-by-16 (SDM Vol. 3A figure 11-10).
pub const TIMER_DIVIDE_BY_16: u32 = 0b0011;
/// SVR: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;

static X2APIC: AtomicBool = AtomicBool::new(false);
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);

/// Whether the kernel runs the local APICs in x2APIC mode.
pub fn x2apic_mode() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

/// IA32_APIC_BASE.EXTD of the calling CPU, as firmware (or the kernel) left it.
pub fn cpu_in_x2apic_mode() -> bool {
    cpu::read_msr(IA32_APIC_BASE) & (APIC_BASE_EXTD | APIC_BASE_ENABLE)
        == (APIC_BASE_EXTD | APIC_BASE_ENABLE)
}

fn xapic() -> RegisterBlock {
    // SAFETY: the xAPIC page (4 KiB at IA32_APIC_BASE's address) is in the uncached part of
    // the identity map (boot.rs) and is only ever accessed as registers.
    unsafe { RegisterBlock::new(XAPIC_BASE.load(Ordering::Relaxed), 0x1000) }
}

/// Chooses the mode for every CPU; called once by the boot CPU before `enable`.
pub fn set_mode(x2apic: bool) {
    let base = cpu::read_msr(IA32_APIC_BASE) & APIC_BASE_ADDRESS_MASK;
    XAPIC_BASE.store(base, Ordering::Relaxed);
    X2APIC.store(x2apic, Ordering::Relaxed);
}

/// Reads a local APIC register of the calling CPU.
pub fn read(offset: usize) -> u32 {
    if x2apic_mode() {
        cpu::read_msr(0x800 + (offset as u32 >> 4)) as u32
    } else {
        xapic().read32(offset)
    }
}

/// Writes a local APIC register of the calling CPU.
pub fn write(offset: usize, value: u32) {
    if x2apic_mode() {
        // SAFETY: x2APIC registers 0x800.. exist once x2APIC mode is on (`enable`); the
        // callers write architectural values.
        unsafe { cpu::write_msr(0x800 + (offset as u32 >> 4), u64::from(value)) }
    } else {
        xapic().write32(offset, value);
    }
}

/// Puts the calling CPU's local APIC into the chosen mode and software-enables it with the
/// given spurious vector. The task priority is zero, so every vector is accepted.
pub fn enable(spurious_vector: u8) {
    let mut base = cpu::read_msr(IA32_APIC_BASE) | APIC_BASE_ENABLE;
    if x2apic_mode() {
        base |= APIC_BASE_EXTD;
    }
    // SAFETY: setting EN (and EXTD for x2APIC) moves the local APIC from xAPIC to the chosen
    // mode, an allowed transition (SDM Vol. 3A figure 11-27); the base address is kept.
    unsafe { cpu::write_msr(IA32_APIC_BASE, base) }
    write(reg::TASK_PRIORITY, 0);
    write(
        reg::SPURIOUS_VECTOR,
        SVR_ENABLE | u32::from(spurious_vector),
    );
}

/// The calling CPU's APIC ID, read from its own local APIC: bits 31:24 of the ID register in
/// xAPIC mode, the whole 32-bit x2APIC ID in x2APIC mode (SDM Vol. 3A section 11.12.5.1).
pub fn id() -> u32 {
    if x2apic_mode() {
        read(reg::ID)
    } else {
        read(reg::ID) >> 24
    }
}

/// Signals end of interrupt.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// Sends an IPI: `low` holds the vector, delivery mode, level and shorthand bits.
/// In xAPIC mode the ICR is two registers; callers must not be interruptible by code that
/// also sends IPIs (NMI-safe IPIs are the watchdog's concern).
pub fn send_ipi(destination: u32, low: u32) {
    if x2apic_mode() {
        // SAFETY: one write of the x2APIC ICR MSR sends one IPI.
        unsafe {
            cpu::write_msr(
                X2APIC_ICR_MSR,
                (u64::from(destination) << 32) | u64::from(low),
            )
        }
    } else {
        let apic = xapic();
        apic.write32(reg::ICR_HIGH, destination << 24);
        apic.write32(reg::ICR_LOW, low);
        while apic.read32(reg::ICR_LOW) & ICR_SEND_PENDING != 0 {
            cpu::pause();
        }
    }
}

/// Arms the timer once: an interrupt on `vector` after `count` ticks of the divided-by-16
/// clock.
pub fn timer_arm_one_shot(vector: u8, count: u32) {
    write(reg::TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(reg::LVT_TIMER, u32::from(vector));
    write(reg::TIMER_INITIAL_COUNT, count);
}

/// Runs the timer periodically: `initial_count` ticks of the divided clock per interrupt.
pub fn timer_start_periodic(vector: u8, initial_count: u32) {
    write(reg::TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    write(reg::LVT_TIMER, LVT_TIMER_PERIODIC | u32::from(vector));
    write(reg::TIMER_INITIAL_COUNT, initial_count);
}

/// Routes APIC errors to `vector` and clears the error status.
pub fn set_error_vector(vector: u8) {
    write(reg::LVT_ERROR, u32::from(vector));
    write(reg::ERROR_STATUS, 0);
}
