//! CPU facts: the MADT's processors, CPUs online and the highest APIC ID, CPUID (vendor,
//! x2APIC, TSC, PMU, hypervisor) and the MSRs of CPU 0 (APIC mode, counters in use,
//! TSX_FORCE_ABORT).

use super::acpi::Tables;
use super::linux;
use super::report::{bits, CpuOut, CpusOut, HypervisorOut, MsrOut, MsrValueOut, PmuOut};
use super::sources::{io_reason, DevMsr, NativeCpuid, System, ON_THE_MACHINE};
use acpi_probe::cpu::{
    self, ApicMode, CpuFacts, MsrRead, MsrSource, PmuKind, PmuUsage, PmuUsageError,
    TscFrequencySource, TsxForceAbort,
};
use acpi_probe::madt::Madt;
use anyhow::Result;
use std::io;

/// The MADT's enabled processors.
#[derive(Default)]
pub(super) struct MadtCpus {
    /// How many (`None`: no MADT, or it could not be read).
    pub enabled: Option<u32>,
    /// The highest APIC ID among them.
    pub max_apic_id: Option<u32>,
}

impl MadtCpus {
    pub fn read(sys: &mut System, tables: &Tables) -> Result<Self> {
        let mut out = Self::default();
        let Some(t) = tables.first("APIC") else {
            return Ok(out);
        };
        let Some(m) = sys.parsed(Madt::parse(&t.bytes), "MADT", &t.source)? else {
            return Ok(out);
        };
        let mut n = 0u32;
        let mut max = None::<u32>;
        for pr in m.processors() {
            match pr {
                Ok(pr) if pr.enabled => {
                    n += 1;
                    max = Some(max.map_or(pr.apic_id, |m: u32| m.max(pr.apic_id)));
                }
                Ok(_) => {}
                Err(e) => {
                    sys.malformed("MADT processors", &t.source, e)?;
                    break;
                }
            }
        }
        out.enabled = Some(n);
        out.max_apic_id = max;
        Ok(out)
    }
}

/// CPUs online (live: sysfs, else the MADT) and the highest APIC ID (the MADT, else live
/// `/proc/cpuinfo`).
pub(super) fn cpus_out(sys: &mut System, madt: &MadtCpus) -> CpusOut {
    let mut online = None;
    let mut online_source = String::new();
    if sys.live {
        let abs = "/sys/devices/system/cpu/online";
        if let Some(t) = sys.text("CPUs online", abs, "mount /sys") {
            online = linux::cpu_list_count(&t);
            online_source = abs.into();
        }
    }
    if online.is_none() {
        if let Some(n) = madt.enabled {
            online = Some(n);
            online_source = "MADT enabled processors".into();
        }
    }
    let online = match online {
        Some(n) => n,
        None => {
            online_source = "none: no CPU list and no MADT".into();
            0
        }
    };
    let (max_apic_id, max_apic_id_source) = match madt.max_apic_id {
        Some(m) => (Some(m), Some("MADT".to_string())),
        None if sys.live => {
            let id = sys
                .text("APIC IDs", "/proc/cpuinfo", "mount /proc")
                .and_then(|t| linux::max_apicid_in_cpuinfo(&t));
            (id, id.map(|_| "/proc/cpuinfo".to_string()))
        }
        None => (None, None),
    };
    CpusOut {
        online,
        online_source,
        madt_enabled: madt.enabled,
        max_apic_id,
        max_apic_id_source,
    }
}

/// CPUID and the MSRs of the CPU running hpetctl (live only: they describe this machine).
#[derive(Default)]
pub(super) struct Cpu {
    pub facts: Option<CpuFacts>,
    pub apic_mode: Option<ApicMode>,
    pub pmu_usage: Option<PmuUsage>,
    pub tsx_force_abort: Option<TsxForceAbort>,
    pub msr_out: Option<MsrOut>,
}

impl Cpu {
    pub fn read(sys: &mut System) -> Self {
        let mut cpu = Self::default();
        if !sys.live {
            sys.note(
                "CPUID and MSRs",
                "CPUID, /dev/cpu/0/msr",
                "not applicable to an offline input (they describe the probing machine)".into(),
                ON_THE_MACHINE,
            );
            return cpu;
        }
        let c = CpuFacts::decode(&NativeCpuid);
        let abs = "/dev/cpu/0/msr";
        match DevMsr::open(&sys.path(abs)) {
            Ok(src) => cpu.read_msrs(sys, &c, &src, abs),
            Err(e) => {
                let how = match e.kind() {
                    io::ErrorKind::NotFound => {
                        "load the msr driver: modprobe msr (kernel needs CONFIG_X86_MSR)"
                    }
                    io::ErrorKind::PermissionDenied => {
                        "run as root (reading MSRs needs CAP_SYS_RAWIO)"
                    }
                    _ => "check the msr driver",
                };
                sys.note(
                    "MSRs (APIC mode, PMU counters in use, TSX_FORCE_ABORT)",
                    abs,
                    io_reason(&e),
                    how,
                );
                cpu.tsx_force_abort = Some(if c.tsx_force_abort {
                    TsxForceAbort::Unknown
                } else {
                    TsxForceAbort::NotEnumerated
                });
            }
        }
        cpu.facts = Some(c);
        cpu
    }

    fn read_msrs(&mut self, sys: &mut System, c: &CpuFacts, src: &DevMsr, abs: &str) {
        let mut values = Vec::new();
        let mut rec = |index: u32, name: String| {
            let r = src.read_msr(index);
            values.push(MsrValueOut {
                index: format!("{index:#x}"),
                name,
                value: r.value().map(|v| format!("{v:#x}")),
                absent: r == MsrRead::Absent,
            });
            r
        };
        let base = rec(cpu::msr::IA32_APIC_BASE, "IA32_APIC_BASE".into());
        self.apic_mode = base.value().map(ApicMode::from_apic_base);
        let tf = if c.tsx_force_abort {
            rec(cpu::msr::TSX_FORCE_ABORT, "MSR_TSX_FORCE_ABORT".into())
        } else {
            MsrRead::Absent
        };
        self.tsx_force_abort = Some(TsxForceAbort::decode(c, tf));
        for (index, name) in pmu_msrs(c) {
            rec(index, name);
        }
        match cpu::pmu_usage(c, src) {
            Ok(u) => self.pmu_usage = Some(u),
            Err(PmuUsageError::NoPmu) => {}
            Err(PmuUsageError::Unread(i)) => sys.note(
                "PMU counters in use",
                &format!("MSR {i:#x} via {abs}"),
                "read failed".into(),
                "run as root with the msr driver loaded",
            ),
        }
        self.msr_out = Some(MsrOut {
            source: format!("{abs} (CPU 0)"),
            values,
            apic_mode: self.apic_mode.map(|m| match m {
                ApicMode::Disabled => "disabled",
                ApicMode::XApic => "xapic",
                ApicMode::X2Apic => "x2apic",
                ApicMode::Invalid => "invalid",
            }),
            gp_in_use: self.pmu_usage.map(|u| bits(u.gp_in_use)),
            fixed_in_use: self.pmu_usage.map(|u| bits(u.fixed_in_use)),
        });
    }

    /// The report's `cpu` section.
    pub fn out(&self) -> Option<CpuOut> {
        self.facts.as_ref().map(cpu_out)
    }
}

/// The PMU control MSRs the report lists, in order: index and name.
fn pmu_msrs(c: &CpuFacts) -> Vec<(u32, String)> {
    let gp = 0..u32::from(c.pmu.gp_counters);
    match c.pmu.kind {
        PmuKind::IntelArch => {
            let mut v = Vec::new();
            if c.pmu.version >= 2 {
                v.push((
                    cpu::msr::IA32_PERF_GLOBAL_CTRL,
                    "IA32_PERF_GLOBAL_CTRL".into(),
                ));
                v.push((cpu::msr::IA32_FIXED_CTR_CTRL, "IA32_FIXED_CTR_CTRL".into()));
            }
            v.extend(gp.map(|i| {
                (
                    cpu::msr::IA32_PERFEVTSEL0 + i,
                    format!("IA32_PERFEVTSEL{i}"),
                )
            }));
            v
        }
        PmuKind::AmdLegacy => gp
            .map(|i| (cpu::msr::AMD_PERF_CTL_LEGACY + i, format!("PERF_CTL{i}")))
            .collect(),
        PmuKind::AmdExtCore | PmuKind::AmdV2 => gp
            .map(|i| (cpu::msr::AMD_PERF_CTL_EXT + 2 * i, format!("PERF_CTL{i}")))
            .collect(),
        PmuKind::None => Vec::new(),
    }
}

fn cpu_out(c: &CpuFacts) -> CpuOut {
    CpuOut {
        source: "CPUID (CPU running hpetctl)",
        vendor: String::from_utf8_lossy(c.vendor.as_bytes()).into_owned(),
        family: c.family,
        model: c.model,
        stepping: c.stepping,
        x2apic: c.x2apic,
        invariant_tsc: c.invariant_tsc,
        arat: c.arat,
        tsc_hz: c.tsc_hz,
        tsc_hz_source: c.tsc_hz_source.map(|s| match s {
            TscFrequencySource::Leaf15 => "CPUID.15H",
            TscFrequencySource::Leaf16Base => "CPUID.16H base frequency (approximate)",
        }),
        pmu: PmuOut {
            kind: match c.pmu.kind {
                PmuKind::None => "none",
                PmuKind::IntelArch => "intel-architectural",
                PmuKind::AmdLegacy => "amd-legacy",
                PmuKind::AmdExtCore => "amd-perfctr-ext-core",
                PmuKind::AmdV2 => "amd-perfmon-v2",
            },
            version: c.pmu.version,
            gp_counters: c.pmu.gp_counters,
            gp_width: c.pmu.gp_width,
            fixed_counters: c.pmu.fixed_counters,
            fixed_width: c.pmu.fixed_width,
        },
        tsx_force_abort_enumerated: c.tsx_force_abort,
        hypervisor: c.hypervisor.map(|h| HypervisorOut {
            signature: String::from_utf8_lossy(&h.signature)
                .trim_end_matches('\0')
                .to_string(),
            kvm_msi_ext_dest_id: h.kvm_msi_ext_dest_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acpi_probe::cpu::{CpuidRegs, CpuidSource};

    /// A CPU whose CPUID says nothing (every leaf zero).
    struct Blank;

    impl CpuidSource for Blank {
        fn cpuid(&self, _: u32, _: u32) -> CpuidRegs {
            CpuidRegs {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            }
        }
    }

    fn facts(kind: PmuKind, version: u8, gp: u8) -> CpuFacts {
        let mut c = CpuFacts::decode(&Blank);
        c.pmu.kind = kind;
        c.pmu.version = version;
        c.pmu.gp_counters = gp;
        c
    }

    #[test]
    fn pmu_msrs_per_kind() {
        let names = |c: &CpuFacts| -> Vec<(u32, String)> { pmu_msrs(c) };
        assert_eq!(names(&facts(PmuKind::None, 0, 0)), vec![]);
        let intel = names(&facts(PmuKind::IntelArch, 2, 2));
        assert_eq!(
            intel,
            vec![
                (0x38f, "IA32_PERF_GLOBAL_CTRL".into()),
                (0x38d, "IA32_FIXED_CTR_CTRL".into()),
                (0x186, "IA32_PERFEVTSEL0".into()),
                (0x187, "IA32_PERFEVTSEL1".into()),
            ]
        );
        assert_eq!(names(&facts(PmuKind::IntelArch, 1, 1)).len(), 1);
        assert_eq!(
            names(&facts(PmuKind::AmdLegacy, 0, 2)),
            vec![
                (0xc001_0000, "PERF_CTL0".into()),
                (0xc001_0001, "PERF_CTL1".into())
            ]
        );
        assert_eq!(
            names(&facts(PmuKind::AmdV2, 2, 2)),
            vec![
                (0xc001_0200, "PERF_CTL0".into()),
                (0xc001_0202, "PERF_CTL1".into())
            ]
        );
    }
}
