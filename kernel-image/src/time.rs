//! Clocks: the TSC frequency (CPUID leaf 0x15, else measured against the HPET main counter,
//! else CPUID leaf 0x16's nominal frequency) and the LAPIC timer's input frequency (measured
//! against the TSC).

use crate::arch::cpu;
use crate::arch::hpet::Hpet;
use crate::arch::lapic;
use crate::VECTOR_CALIBRATION;
use core::sync::atomic::{AtomicU64, Ordering};

/// How long each calibration measures, in guest nanoseconds.
const CALIBRATION_NS: u64 = 10_000_000;

/// A TSC frequency and where it came from.
#[derive(Clone, Copy)]
pub struct TscFrequency {
    pub hz: u64,
    pub source: &'static str,
}

/// CPUID leaf 0x15 (Intel SDM Vol. 3A section 20.7.3): TSC = crystal × EBX / EAX, when the
/// crystal frequency (ECX) is enumerated.
fn from_cpuid_15h() -> Option<u64> {
    if cpu::max_basic_leaf() < 0x15 {
        return None;
    }
    let r = cpu::cpuid(0x15, 0);
    if r.eax == 0 || r.ebx == 0 || r.ecx == 0 {
        return None;
    }
    Some(u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax))
}

/// CPUID leaf 0x16 EAX: the processor base frequency in MHz (nominal, not measured).
fn from_cpuid_16h() -> Option<u64> {
    if cpu::max_basic_leaf() < 0x16 {
        return None;
    }
    let mhz = cpu::cpuid(0x16, 0).eax & 0xffff;
    (mhz != 0).then_some(u64::from(mhz) * 1_000_000)
}

/// Measures the TSC against the HPET main counter over about 10 ms.
fn against_hpet(hpet: &Hpet) -> Option<u64> {
    let period_fs = u64::from(hpet.capabilities().period_fs());
    let wanted = CALIBRATION_NS * 1_000_000 / period_fs;
    let start_counter = hpet.counter();
    let start_tsc = cpu::rdtsc();
    let mut elapsed;
    let mut spins: u64 = 0;
    loop {
        elapsed = hpet.ticks_between(start_counter, hpet.counter());
        if elapsed >= wanted {
            break;
        }
        spins += 1;
        if spins > 100_000_000 {
            return None; // the counter does not run
        }
    }
    let tsc = cpu::rdtsc().wrapping_sub(start_tsc);
    let femtoseconds = u128::from(elapsed) * u128::from(period_fs);
    Some((u128::from(tsc) * 1_000_000_000_000_000 / femtoseconds) as u64)
}

/// Finds the TSC frequency.
pub fn tsc_frequency(hpet: Option<&Hpet>) -> Option<TscFrequency> {
    if let Some(hz) = from_cpuid_15h() {
        return Some(TscFrequency {
            hz,
            source: "cpuid-15h",
        });
    }
    if let Some(hz) = hpet.and_then(against_hpet) {
        return Some(TscFrequency { hz, source: "hpet" });
    }
    from_cpuid_16h().map(|hz| TscFrequency {
        hz,
        source: "cpuid-16h",
    })
}

/// TSC value stored by the calibration interrupt (`VECTOR_CALIBRATION`), 0 until it fires.
pub static CALIBRATION_TSC: AtomicU64 = AtomicU64::new(0);

/// Called from the calibration interrupt.
pub fn calibration_interrupt() {
    CALIBRATION_TSC.store(cpu::rdtsc(), Ordering::Release);
}

/// TSC ticks from arming a one-shot LAPIC timer of `count` (divide by 16) to its interrupt,
/// or `None` if it never fires within a second.
fn one_shot(tsc_hz: u64, count: u32) -> Option<u64> {
    CALIBRATION_TSC.store(0, Ordering::Relaxed);
    lapic::timer_arm_one_shot(VECTOR_CALIBRATION, count);
    let start = cpu::rdtsc();
    cpu::enable_interrupts();
    let fired = loop {
        let fired = CALIBRATION_TSC.load(Ordering::Acquire);
        if fired != 0 {
            break Some(fired);
        }
        if cpu::rdtsc().wrapping_sub(start) > tsc_hz {
            break None;
        }
        cpu::pause();
    };
    cpu::disable_interrupts();
    fired.map(|t| t.wrapping_sub(start))
}

/// Measures the LAPIC timer's input frequency (after the divide-by-16) against the TSC: a
/// one-shot timer of 2^16 counts gives a first estimate, a second one sized to about 10 ms
/// the result. The count is never read back: QEMU's TCG with -icount aborts on reading the
/// x2APIC timer count through its MSR, and the interrupt is as exact at these lengths.
pub fn lapic_timer_frequency(tsc_hz: u64) -> Option<u64> {
    let first_count = 1u32 << 16;
    let first = one_shot(tsc_hz, first_count)?.max(1);
    let estimate = u128::from(first_count) * u128::from(tsc_hz) / u128::from(first);
    let count = (estimate * u128::from(CALIBRATION_NS) / 1_000_000_000)
        .clamp(1 << 12, u128::from(u32::MAX)) as u32;
    let ticks = one_shot(tsc_hz, count)?.max(1);
    Some((u128::from(count) * u128::from(tsc_hz) / u128::from(ticks)) as u64)
}

/// Nanoseconds in `ticks` TSC ticks.
pub fn tsc_to_ns(tsc_hz: u64, ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz.max(1))) as u64
}
