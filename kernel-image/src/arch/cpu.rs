//! Single CPU instructions and registers: port I/O, MSRs, CPUID, TSC, control registers.

use core::arch::asm;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE (Intel SDM Vol. 3A section 11.4.4): base address, EN (bit 11), EXTD (bit 10),
/// BSP (bit 8).
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_GS_BASE: the per-CPU data pointer.
pub const IA32_GS_BASE: u32 = 0xc000_0101;

/// Reads an MSR. Every MSR the kernel names exists on all x86-64 CPUs with a local APIC
/// (IA32_APIC_BASE, IA32_GS_BASE) or is read only after CPUID says it exists.
pub fn read_msr(index: u32) -> u64 {
    // SAFETY: callers pass only architectural MSRs that exist (see above); reading them has
    // no side effects.
    unsafe { Msr::new(index).read() }
}

/// Writes an MSR.
///
/// # Safety
/// The MSR must exist and the value must not break memory safety (e.g. a wrong GS base
/// while per-CPU data is in use).
pub unsafe fn write_msr(index: u32, value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { Msr::new(index).write(value) }
}

/// CPUID with a subleaf.
pub fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

/// Highest basic CPUID leaf.
pub fn max_basic_leaf() -> u32 {
    cpuid(0, 0).eax
}

/// CPUID.01H:ECX[21], x2APIC.
pub fn has_x2apic() -> bool {
    cpuid(1, 0).ecx & (1 << 21) != 0
}

/// The hypervisor vendor signature of CPUID leaf 0x40000000, when CPUID.01H:ECX[31] says a
/// hypervisor is present.
pub fn hypervisor_signature() -> Option<[u8; 12]> {
    if cpuid(1, 0).ecx & (1 << 31) == 0 {
        return None;
    }
    let r = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&r.edx.to_le_bytes());
    Some(sig)
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86-64 CPU (CR4.TSD is clear) and only reads.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device the caller owns, and the write must not break memory
/// safety.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller upholds the contract above.
    unsafe { Port::new(port).write(value) }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As for [`outb`]: reads can have side effects on devices.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller upholds the contract above.
    unsafe { Port::new(port).read() }
}

/// CR2, the faulting address of the last page fault.
pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Enables interrupts.
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Disables interrupts.
pub fn disable_interrupts() {
    x86_64::instructions::interrupts::disable();
}

/// Enables interrupts and halts until the next one, atomically (STI's one-instruction
/// shadow covers HLT, so a wake-up cannot be lost in between).
pub fn enable_interrupts_and_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Halts forever with interrupts off (NMIs still wake the CPU, which halts again).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI; HLT only stops this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// A spin-wait hint.
#[inline]
pub fn pause() {
    core::hint::spin_loop();
}

/// Busy-waits `ns` nanoseconds of TSC time at `tsc_hz`.
pub fn delay_ns(tsc_hz: u64, ns: u64) {
    let ticks = (u128::from(tsc_hz) * u128::from(ns) / 1_000_000_000) as u64;
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        pause();
    }
}
