//! Starting the application processors with INIT-SIPI-SIPI (Intel SDM Vol. 3A section 9.4.4,
//! "MP Initialization Example"), one at a time, each on its own stacks.

use crate::arch::cpu;
use crate::arch::lapic::{self, icr};
use crate::arch::trampoline::{Trampoline, AP_STACK_TOP};
use crate::percpu;
use core::sync::atomic::{AtomicU32, Ordering};

/// The logical index of the AP being started; it reads this in `ap_main`.
pub static AP_INDEX: AtomicU32 = AtomicU32::new(u32::MAX);

/// How one AP start went.
pub enum StartResult {
    Online { online_tsc: u64 },
    NoSlot,
    Timeout { reached_trampoline: bool },
}

/// Whether the 10 ms INIT delay of the MP specification can be skipped: CPUs since the
/// Pentium 4 / family 10h and virtual CPUs do not need it (Linux `smp_quirk_init_udelay`).
pub fn init_delay_ns() -> u64 {
    let r = cpu::cpuid(0, 0);
    let vendor_intel = r.ebx == u32::from_le_bytes(*b"Genu");
    let vendor_amd = r.ebx == u32::from_le_bytes(*b"Auth");
    let signature = cpu::cpuid(1, 0).eax;
    let family = {
        let base = (signature >> 8) & 0xf;
        if base == 0xf {
            base + ((signature >> 20) & 0xff)
        } else {
            base
        }
    };
    let hypervisor = cpu::hypervisor_signature().is_some();
    if hypervisor || (vendor_intel && family >= 6) || (vendor_amd && family >= 0x10) {
        10_000
    } else {
        10_000_000
    }
}

/// Starts logical CPU `index` (APIC ID `apic_id`) and waits for it to come online.
pub fn start_ap(
    index: usize,
    apic_id: u32,
    trampoline: &Trampoline,
    tsc_hz: u64,
    init_delay_ns: u64,
    timeout_ms: u64,
) -> StartResult {
    let Some(slot) = percpu::take_slot(Some(index)) else {
        return StartResult::NoSlot;
    };
    let Some(data) = percpu::get(index) else {
        return StartResult::NoSlot;
    };
    // The AP takes its tables from the slot itself (`ap_main`); only the stack goes through
    // the shared variable. Forget the reference handed out here.
    let stack_top = slot.kernel_stack_top;
    PENDING_SLOT.with(slot);
    AP_INDEX.store(index as u32, Ordering::Release);
    AP_STACK_TOP.store(stack_top, Ordering::Release);
    trampoline.clear_alive();

    // INIT (level assert), and in xAPIC mode the de-assert the MP protocol expects.
    lapic::send_ipi(
        apic_id,
        icr::DELIVERY_INIT | icr::LEVEL_ASSERT | icr::TRIGGER_LEVEL,
    );
    if !lapic::x2apic_mode() {
        lapic::send_ipi(apic_id, icr::DELIVERY_INIT | icr::TRIGGER_LEVEL);
    }
    cpu::delay_ns(tsc_hz, init_delay_ns);
    let sipi = icr::DELIVERY_STARTUP | u32::from(trampoline.sipi_vector());
    lapic::send_ipi(apic_id, sipi);
    // A second SIPI only if the AP has not reached the trampoline within 200 µs; the wait
    // ends as soon as it has.
    let sipi_wait = 200_000 * tsc_hz / 1_000_000_000;
    let sent = cpu::rdtsc();
    while !trampoline.alive() && cpu::rdtsc().wrapping_sub(sent) < sipi_wait {
        cpu::pause();
    }
    if !trampoline.alive() {
        lapic::send_ipi(apic_id, sipi);
    }
    let deadline = timeout_ms.saturating_mul(tsc_hz / 1000);
    let start = cpu::rdtsc();
    while !data.online.load(Ordering::Acquire) {
        if cpu::rdtsc().wrapping_sub(start) > deadline {
            // Park it again, so a late start cannot run on stacks meant for another CPU.
            lapic::send_ipi(
                apic_id,
                icr::DELIVERY_INIT | icr::LEVEL_ASSERT | icr::TRIGGER_LEVEL,
            );
            return StartResult::Timeout {
                reached_trampoline: trampoline.alive(),
            };
        }
        cpu::pause();
    }
    StartResult::Online {
        online_tsc: cpu::rdtsc(),
    }
}

/// Hands the slot taken by the boot CPU to the AP being started.
pub struct PendingSlot(core::cell::UnsafeCell<Option<percpu::Slot>>);

// SAFETY: the boot CPU writes the slot before it sends the SIPI (a release store of
// AP_INDEX follows), and only the AP being started takes it, after an acquire load of
// AP_INDEX; one AP is started at a time.
unsafe impl Sync for PendingSlot {}

impl PendingSlot {
    fn with(&self, slot: percpu::Slot) {
        // SAFETY: see the `Sync` impl: no AP is between its SIPI and `take` now.
        unsafe { *self.0.get() = Some(slot) }
    }

    /// Called by the AP being started.
    pub fn take(&self) -> Option<percpu::Slot> {
        // SAFETY: see the `Sync` impl: the boot CPU wrote the slot before the SIPI and waits
        // for this AP to come online before writing again.
        unsafe { (*self.0.get()).take() }
    }
}

/// The slot of the AP being started.
pub static PENDING_SLOT: PendingSlot = PendingSlot(core::cell::UnsafeCell::new(None));
