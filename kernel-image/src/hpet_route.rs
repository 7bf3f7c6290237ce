//! The HPET NMI route self-test (`hpet_nmi=fsb|ioapic`): one HPET timer, periodic, delivering
//! NMIs to the boot CPU through the FSB route or an I/O APIC input; the NMIs counted over the
//! settle period are reported and compared with the period. It proves, on QEMU or on the
//! machine at hand, the delivery path the watchdog uses.

use crate::acpi::Acpi;
use crate::arch::cpu;
use crate::arch::hpet::{Hpet, Route, Width, MAX_TIMERS};
use crate::arch::ioapic::IoApic;
use crate::percpu::PerCpu;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_image::cmdline::HpetNmiRoute;

/// FSB message address for physical destination `apic_id` (Intel SDM Vol. 3A section
/// 11.11.1): 0xFEE in bits 31:20, the 8-bit destination ID in bits 19:12.
pub fn msi_address(apic_id: u8) -> u32 {
    0xfee0_0000 | (u32::from(apic_id) << 12)
}

/// FSB message data for NMI delivery (section 11.11.2): delivery mode 100b in bits 10:8,
/// edge; the vector field is ignored for NMI (2, as Linux writes).
pub const MSI_DATA_NMI: u32 = 0x402;

/// Half the self-test's period in TSC ticks while it runs, else 0.
static HALF_PERIOD_TSC: AtomicU64 = AtomicU64::new(0);

/// Called on every NMI (no locks, no HPET access): an NMI at least half a period after the
/// previous counted one is a new expiry, a closer one a second delivery of the same expiry
/// (QEMU's periodic HPET fires twice per expiry under -icount; docs/platform.md).
pub fn count_nmi(me: &PerCpu) {
    let half = HALF_PERIOD_TSC.load(Ordering::Relaxed);
    if half == 0 {
        return;
    }
    let now = cpu::rdtsc();
    if now.wrapping_sub(me.last_expiry_tsc.load(Ordering::Relaxed)) >= half {
        me.last_expiry_tsc.store(now, Ordering::Relaxed);
        me.nmi_expiries.fetch_add(1, Ordering::Relaxed);
    } else {
        me.nmi_duplicates.fetch_add(1, Ordering::Relaxed);
    }
}

/// A timer and route chosen for the self-test.
pub struct Armed {
    pub timer: u8,
    pub route: Route,
    pub width: Width,
    pub period_ticks: u64,
    pub ioapic_pin: Option<u32>,
}

/// Chooses a timer for `route`, programs the route to `apic_id` and starts the timer with
/// a period of `period_ns`.
pub fn arm(
    hpet: &Hpet,
    acpi: &Acpi,
    route: HpetNmiRoute,
    apic_id: u32,
    period_ns: u64,
    tsc_hz: u64,
) -> Result<Armed, &'static str> {
    let destination = u8::try_from(apic_id).map_err(|_| {
        "the boot CPU's APIC ID exceeds 255: an 8-bit FSB or I/O APIC destination cannot reach it"
    })?;
    let caps = hpet.capabilities();
    let timers = caps.num_timers().min(MAX_TIMERS);
    let period_ticks =
        u64::try_from(u128::from(period_ns) * 1_000_000 / u128::from(caps.period_fs().max(1)))
            .unwrap_or(u64::MAX);
    let width = if caps.counter_64bit() {
        Width::Bits64
    } else {
        Width::Bits32
    };
    let (timer, hw_route, pin) = match route {
        HpetNmiRoute::Off => return Err("no route asked for"),
        HpetNmiRoute::Fsb => {
            let timer = (0..timers)
                .find(|&n| hpet.timer(n).fsb_delivery_capable() && hpet.timer(n).periodic_capable())
                .ok_or("no periodic HPET timer offers FSB delivery (QEMU: -global hpet.msi=on)")?;
            (
                timer,
                Route::Fsb {
                    address: msi_address(destination),
                    data: MSI_DATA_NMI,
                },
                None,
            )
        }
        HpetNmiRoute::IoApic => {
            let first = acpi
                .ioapics
                .first()
                .filter(|_| acpi.ioapic_count > 0)
                .ok_or("no I/O APIC in the MADT")?;
            // SAFETY: the MADT's first I/O APIC register page, in the uncached MMIO window
            // the boot page tables map; nothing else programs it while this runs.
            let ioapic = unsafe { IoApic::new(first.address) };
            let inputs = ioapic.entries();
            // Prefer the PCI-range inputs 16..23: 0..15 carry ISA interrupts (2 is the PIT).
            let choice = (0..timers)
                .filter(|&n| hpet.timer(n).periodic_capable())
                .find_map(|n| {
                    let cap = hpet.timer(n).int_route_cap();
                    (16..inputs.min(32))
                        .find(|&pin| cap & (1 << pin) != 0)
                        .map(|pin| (n, pin))
                });
            let (timer, pin) =
                choice.ok_or("no periodic HPET timer can reach I/O APIC inputs 16-23")?;
            let gsi = first.gsi_base + pin;
            ioapic.route_nmi(pin, destination);
            (timer, Route::IoApic { pin: pin as u8 }, Some(gsi))
        }
    };
    let half_period_tsc = u64::try_from(u128::from(period_ns) * u128::from(tsc_hz) / 2_000_000_000)
        .unwrap_or(u64::MAX);
    HALF_PERIOD_TSC.store(half_period_tsc.max(1), Ordering::Relaxed);
    let first = hpet.counter().wrapping_add(period_ticks);
    hpet.start_periodic(timer, first, period_ticks, width, hw_route);
    Ok(Armed {
        timer,
        route: hw_route,
        width,
        period_ticks,
        ioapic_pin: pin,
    })
}

/// Stops the self-test's timer (and masks its I/O APIC input).
pub fn disarm(hpet: &Hpet, acpi: &Acpi, armed: &Armed) {
    hpet.stop(armed.timer);
    HALF_PERIOD_TSC.store(0, Ordering::Relaxed);
    if let (Route::IoApic { pin }, Some(first)) = (armed.route, acpi.ioapics.first()) {
        // SAFETY: as in `arm`: the same I/O APIC, programmed only here.
        unsafe { IoApic::new(first.address) }.mask(u32::from(pin));
    }
}
