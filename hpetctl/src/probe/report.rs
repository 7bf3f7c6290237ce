//! The JSON report, schema hpetwd-probe/1 (docs/probe.md), and the conversion of the verdicts
//! into it. Every fact module builds its own section; [`verdicts_out`] builds the verdicts.

use acpi_probe::verdict::{self, Answer, HeldCounter, Verdict};
use serde::Serialize;

/// The JSON schema identifier (docs/probe.md).
pub const SCHEMA: &str = "hpetwd-probe/1";

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub input: InputOut,
    pub hpet: HpetOut,
    pub iommu: IommuOut,
    pub cpus: CpusOut,
    pub cpu: Option<CpuOut>,
    pub msr: Option<MsrOut>,
    pub linux: Option<LinuxOut>,
    pub verdicts: VerdictsOut,
    /// Facts that could not be read: what, from where, why, and how to get them.
    pub unread: Vec<Unread>,
}

#[derive(Debug, Serialize)]
pub struct InputOut {
    /// "live", "acpidump" or "tables".
    pub kind: &'static str,
    pub path: Option<String>,
    /// Tables found, in order, as SIGNATURE:length.
    pub tables: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HpetOut {
    pub present: bool,
    pub source: Option<String>,
    /// How many HPET tables (the first is used, as Linux does).
    pub table_count: usize,
    pub table: Option<HpetTableOut>,
    pub registers: Option<HpetRegsOut>,
    /// One object per timer from the MMIO registers (empty when they were not read).
    pub timers: Vec<TimerOut>,
    /// HPET channels Linux uses now (`null` when not known).
    pub linux_channels: Option<Vec<u8>>,
    pub linux_channels_source: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HpetTableOut {
    pub base_address: String,
    pub address_space_id: u8,
    pub hpet_number: u8,
    pub comparator_count: u8,
    pub counter_64bit: bool,
    pub legacy_replacement: bool,
    pub pci_vendor_id: String,
    pub minimum_tick: u16,
}

#[derive(Debug, Serialize)]
pub struct HpetRegsOut {
    pub source: String,
    pub general_capabilities: String,
    pub period_fs: u32,
    pub frequency_hz: Option<u64>,
    pub num_timers: u8,
    pub counter_64bit: bool,
    pub legacy_route_capable: bool,
    pub vendor_id: String,
    pub revision: u8,
    /// Seconds until a 32-bit counter wraps (`null` for a 64-bit counter).
    pub wrap_seconds_32bit: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TimerOut {
    pub index: u8,
    pub fsb_capable: bool,
    pub periodic_capable: bool,
    pub size_64bit: bool,
    /// I/O APIC inputs this timer can be routed to (Tn_INT_ROUTE_CAP).
    pub ioapic_routes: Vec<u8>,
    /// Current configuration (what Linux or firmware left): FSB enabled, interrupt enabled.
    pub fsb_enabled: bool,
    pub interrupt_enabled: bool,
    pub config: String,
    pub used_by_linux: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct IommuOut {
    /// "intel-vtd", "amd-vi" or "none".
    pub kind: &'static str,
    /// The hardware offers interrupt remapping.
    pub interrupt_remapping: bool,
    pub interrupt_remapping_source: String,
    /// VT-d ECAP.EIM on every unit (`null`: not read or not VT-d).
    pub extended_interrupt_mode: Option<bool>,
    pub source: Option<String>,
    /// DMAR flags.
    pub dmar_intr_remap: Option<bool>,
    pub dmar_x2apic_opt_out: Option<bool>,
    pub units: Vec<IommuUnitOut>,
    /// The HPET's DMAR type-4 scope: its source-id (bus:dev.fn) for IRTE validation.
    pub hpet_source_id: Option<String>,
    /// The HPET's IVRS special-device entry.
    pub ivrs_hpet: Option<IvrsHpetOut>,
    /// Linux has interrupt remapping on (/proc/interrupts shows IR- chips).
    pub linux_remapping_enabled: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct IommuUnitOut {
    pub register_base: String,
    pub cap: Option<String>,
    pub ecap: Option<String>,
    pub interrupt_remapping: Option<bool>,
    pub extended_interrupt_mode: Option<bool>,
    pub source: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IvrsHpetOut {
    pub device_id: String,
    pub nmi_pass: bool,
}

#[derive(Debug, Serialize)]
pub struct CpusOut {
    /// CPUs online (live) or enabled in the MADT (offline).
    pub online: u32,
    pub online_source: String,
    pub madt_enabled: Option<u32>,
    pub max_apic_id: Option<u32>,
    pub max_apic_id_source: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CpuOut {
    pub source: &'static str,
    pub vendor: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u8,
    pub x2apic: bool,
    pub invariant_tsc: bool,
    pub arat: bool,
    pub tsc_hz: Option<u64>,
    pub tsc_hz_source: Option<&'static str>,
    pub pmu: PmuOut,
    pub tsx_force_abort_enumerated: bool,
    pub hypervisor: Option<HypervisorOut>,
}

#[derive(Debug, Serialize)]
pub struct PmuOut {
    pub kind: &'static str,
    pub version: u8,
    pub gp_counters: u8,
    pub gp_width: u8,
    pub fixed_counters: u8,
    pub fixed_width: u8,
}

#[derive(Debug, Serialize)]
pub struct HypervisorOut {
    pub signature: String,
    pub kvm_msi_ext_dest_id: bool,
}

#[derive(Debug, Serialize)]
pub struct MsrOut {
    pub source: String,
    /// Each MSR read: index, name, value (hex) or "absent".
    pub values: Vec<MsrValueOut>,
    pub apic_mode: Option<&'static str>,
    pub gp_in_use: Option<Vec<u8>>,
    pub fixed_in_use: Option<Vec<u8>>,
}

#[derive(Debug, Serialize)]
pub struct MsrValueOut {
    pub index: String,
    pub name: String,
    pub value: Option<String>,
    pub absent: bool,
}

#[derive(Debug, Serialize)]
pub struct LinuxOut {
    pub nmi_watchdog: Option<String>,
    pub watchdog_thresh: Option<String>,
    pub watchdog_cpumask: Option<String>,
    pub cmdline: Option<Vec<String>>,
    pub clocksource: Option<String>,
    pub available_clocksources: Option<String>,
    pub broadcast_clockevent: Option<String>,
    /// `hpet=nomsi`: Linux leaves FSB-capable channels alone.
    pub hpet_nomsi: bool,
    /// `hpet=disable`: Linux does not use the HPET at all.
    pub hpet_disable: bool,
}

#[derive(Debug, Serialize)]
pub struct VerdictOut {
    pub answer: &'static str,
    pub reason: &'static str,
}

impl From<Verdict> for VerdictOut {
    fn from(v: Verdict) -> Self {
        Self {
            answer: v.answer.as_str(),
            reason: v.reason,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct VerdictsOut {
    pub watchdog_possible: VerdictOut,
    pub hpet_usable: VerdictOut,
    pub timer: TimerChoiceOut,
    pub routes: RoutesOut,
    pub policies: PoliciesOut,
    pub apic_ids_above_255: VerdictOut,
    pub x2apic: VerdictOut,
    pub tsc_trusted: VerdictOut,
    pub pmu: PmuVerdictOut,
}

#[derive(Debug, Serialize)]
pub struct TimerChoiceOut {
    pub index: Option<u8>,
    pub reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct RoutesOut {
    pub fsb_direct: VerdictOut,
    pub fsb_remapped: VerdictOut,
    pub fsb_remapped_source_id: Option<String>,
    pub ioapic: VerdictOut,
    pub ioapic_inputs: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct PoliciesOut {
    pub broadcast: VerdictOut,
    pub round_robin: VerdictOut,
    pub chain: VerdictOut,
    pub remote: VerdictOut,
    pub buddy: VerdictOut,
}

#[derive(Debug, Serialize)]
pub struct PmuVerdictOut {
    pub held_now: Option<u32>,
    pub would_free: Option<u32>,
    pub held_counter: Option<String>,
    pub gp_usable: Option<u8>,
    pub reason: &'static str,
    pub tsx_force_abort: VerdictOut,
}

#[derive(Debug, Serialize, Clone)]
pub struct Unread {
    pub fact: String,
    pub source: String,
    pub reason: String,
    pub how: String,
}

impl Report {
    /// 0 when an HPET NMI watchdog is possible (or not ruled out), 1 when it is not.
    pub fn exit_code(&self) -> u8 {
        if self.verdicts.watchdog_possible.answer == Answer::No.as_str() {
            1
        } else {
            0
        }
    }
}

/// A PCI source-id as bus:device.function.
pub(super) fn bdf(id: u16) -> String {
    format!("{:02x}:{:02x}.{:x}", id >> 8, (id >> 3) & 0x1f, id & 7)
}

/// The indices of the set bits of `mask`, lowest first.
pub(super) fn bits(mask: u32) -> Vec<u8> {
    (0..32u8).filter(|i| mask & (1 << i) != 0).collect()
}

pub(super) fn verdicts_out(v: &verdict::Verdicts) -> VerdictsOut {
    VerdictsOut {
        watchdog_possible: v.watchdog_possible.into(),
        hpet_usable: v.hpet_usable.into(),
        timer: TimerChoiceOut {
            index: v.timer,
            reason: v.timer_reason,
        },
        routes: RoutesOut {
            fsb_direct: v.routes.fsb_direct.into(),
            fsb_remapped: v.routes.fsb_remapped.into(),
            fsb_remapped_source_id: v.routes.fsb_remapped_source_id.map(bdf),
            ioapic: v.routes.ioapic.into(),
            ioapic_inputs: bits(v.routes.ioapic_inputs),
        },
        policies: PoliciesOut {
            broadcast: v.policies.broadcast.into(),
            round_robin: v.policies.round_robin.into(),
            chain: v.policies.chain.into(),
            remote: v.policies.remote.into(),
            buddy: v.policies.buddy.into(),
        },
        apic_ids_above_255: v.high_apic_ids.into(),
        x2apic: v.x2apic.into(),
        tsc_trusted: v.tsc.into(),
        pmu: PmuVerdictOut {
            held_now: v.pmu.held_now,
            would_free: v.pmu.would_free,
            held_counter: v.pmu.held_counter.map(|h| match h {
                HeldCounter::Fixed(i) => format!("fixed counter {i}"),
                HeldCounter::General(i) => format!("general-purpose counter {i}"),
            }),
            gp_usable: v.pmu.gp_usable,
            reason: v.pmu.reason,
            tsx_force_abort: v.pmu.tsx.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_format() {
        assert_eq!(bdf(0xf0f8), "f0:1f.0");
        assert_eq!(bdf(0x00a0), "00:14.0");
    }

    #[test]
    fn bits_lists_set_bits() {
        assert_eq!(bits(0), Vec::<u8>::new());
        assert_eq!(bits(0x8000_0005), vec![0, 2, 31]);
    }
}
