//! CPUID and MSR facts, decoded from recorded register values.
//!
//! Nothing here executes `cpuid` or reads an MSR: the caller supplies the values through
//! [`CpuidSource`] and [`MsrSource`] (live on the host, from the CPU in the kernel, or from a
//! recording in the tests), so every decision is testable on any machine. References are to
//! the Intel SDM (Vol. 2A "CPUID", Vol. 3B ch. 20 "Performance Monitoring", Vol. 4 "MSRs") and
//! the AMD APM (Vol. 2 §13.2 "Performance Monitoring Counters", Vol. 3 appendix E "CPUID").

/// The four registers one `cpuid` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidRegs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Where CPUID values come from.
pub trait CpuidSource {
    /// The registers for `leaf` (EAX) and `subleaf` (ECX). Leaves the source does not know
    /// read as zeros.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidRegs;
}

/// A recorded set of leaves: `(leaf, subleaf, regs)`; a missing leaf reads as zeros.
#[derive(Debug, Clone, Copy)]
pub struct RecordedCpuid<'a>(pub &'a [(u32, u32, CpuidRegs)]);

impl CpuidSource for RecordedCpuid<'_> {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidRegs {
        self.0
            .iter()
            .find(|(l, s, _)| *l == leaf && *s == subleaf)
            .map(|(_, _, r)| *r)
            .unwrap_or_default()
    }
}

/// One MSR read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrRead {
    /// The value read.
    Value(u64),
    /// The CPU does not implement it (Linux's msr driver returns EIO for the #GP).
    Absent,
    /// It could not be read (no driver, no privilege, offline input); the caller says why.
    Unread,
}

impl MsrRead {
    /// The value, if one was read.
    pub fn value(self) -> Option<u64> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Where MSR values come from.
pub trait MsrSource {
    fn read_msr(&self, index: u32) -> MsrRead;
}

/// A recorded set of MSRs: `(index, value)`. Indices not listed read as [`MsrRead::Absent`].
#[derive(Debug, Clone, Copy)]
pub struct RecordedMsrs<'a>(pub &'a [(u32, u64)]);

impl MsrSource for RecordedMsrs<'_> {
    fn read_msr(&self, index: u32) -> MsrRead {
        self.0
            .iter()
            .find(|(i, _)| *i == index)
            .map_or(MsrRead::Absent, |(_, v)| MsrRead::Value(*v))
    }
}

/// MSR indices (Intel SDM Vol. 4; AMD APM Vol. 2 §13.2).
pub mod msr {
    /// IA32_APIC_BASE: bit 11 xAPIC global enable, bit 10 x2APIC enable (SDM Vol. 3A §11.4.4,
    /// §11.12.1).
    pub const IA32_APIC_BASE: u32 = 0x1B;
    /// MSR_TSX_FORCE_ABORT: bit 0 RTM_FORCE_ABORT (Intel, "Performance Monitoring Impact of
    /// Intel TSX", 2019; enumerated by CPUID.(EAX=7,ECX=0):EDX\[13\]).
    pub const TSX_FORCE_ABORT: u32 = 0x10F;
    /// IA32_PERFEVTSEL0; counter i at +i (SDM Vol. 3B §20.2.1.1).
    pub const IA32_PERFEVTSEL0: u32 = 0x186;
    /// IA32_FIXED_CTR_CTRL: 4 bits per fixed counter (SDM Vol. 3B §20.2.2).
    pub const IA32_FIXED_CTR_CTRL: u32 = 0x38D;
    /// IA32_PERF_GLOBAL_CTRL: bit i GP counter i, bit 32+i fixed counter i (version ≥ 2).
    pub const IA32_PERF_GLOBAL_CTRL: u32 = 0x38F;
    /// AMD legacy PERF_CTL0..3 (APM Vol. 2 §13.2.1).
    pub const AMD_PERF_CTL_LEGACY: u32 = 0xC001_0000;
    /// AMD PERF_CTL0..5 with PerfCtrExtCore, at 0xC0010200 + 2i (APM Vol. 2 §13.2.1).
    pub const AMD_PERF_CTL_EXT: u32 = 0xC001_0200;
    /// AMD PerfCntGlobalCtl (PerfMonV2, APM Vol. 2 §13.2.2).
    pub const AMD_PERF_GLOBAL_CTL: u32 = 0xC000_0301;
}

/// The CPU vendor (CPUID.0: EBX, EDX, ECX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Hygon,
    Other([u8; 12]),
}

impl Vendor {
    /// The 12-character vendor string.
    pub fn as_bytes(&self) -> &[u8; 12] {
        match self {
            Self::Intel => b"GenuineIntel",
            Self::Amd => b"AuthenticAMD",
            Self::Hygon => b"HygonGenuine",
            Self::Other(b) => b,
        }
    }

    /// AMD or Hygon (the same PMU and CPUID extended leaves).
    pub fn is_amd_like(&self) -> bool {
        matches!(self, Self::Amd | Self::Hygon)
    }
}

/// Which performance-monitoring architecture the counters follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmuKind {
    /// No counters enumerated (CPUID.0AH zero, typical in VMs without a virtual PMU).
    None,
    /// Intel architectural performance monitoring, CPUID.0AH (SDM Vol. 3B §20.2).
    IntelArch,
    /// AMD: 4 legacy counters at 0xC0010000 (no PerfCtrExtCore).
    AmdLegacy,
    /// AMD: 6 core counters at 0xC0010200 (CPUID.80000001H:ECX\[23\] PerfCtrExtCore).
    AmdExtCore,
    /// AMD PerfMonV2 (CPUID.80000022H:EAX\[0\]), counts from EBX\[3:0\].
    AmdV2,
}

/// The core PMU as CPUID describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pmu {
    pub kind: PmuKind,
    /// Intel: CPUID.0AH:EAX\[7:0\]; AMD: 2 for PerfMonV2, 1 otherwise; 0 for none.
    pub version: u8,
    /// General-purpose counters per logical processor.
    pub gp_counters: u8,
    /// Their width in bits.
    pub gp_width: u8,
    /// Fixed-function counters (Intel version ≥ 2 only).
    pub fixed_counters: u8,
    pub fixed_width: u8,
}

/// Where the TSC frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscFrequencySource {
    /// CPUID.15H: crystal (ECX) × EBX / EAX (SDM Vol. 3B §19.7.3).
    Leaf15,
    /// CPUID.16H:EAX, the processor base frequency in MHz: an approximation used when
    /// leaf 15H gives the ratio but not the crystal frequency.
    Leaf16Base,
}

/// What a hypervisor announces (CPUID.1:ECX\[31\] and leaves 0x40000000+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hypervisor {
    /// CPUID.40000000H: EBX, ECX, EDX ("KVMKVMKVM\0\0\0", "Microsoft Hv", "TCGTCGTCGTCG", ...).
    pub signature: [u8; 12],
    pub max_leaf: u32,
    /// KVM_FEATURE_MSI_EXT_DEST_ID, CPUID.40000001H:EAX\[15\] under a KVM signature: MSIs carry
    /// 15 destination bits (address bits 11:5 extend the APIC ID), so APIC IDs up to 32767 are
    /// reachable without interrupt remapping (Linux Documentation/virt/kvm/x86/cpuid.rst).
    pub kvm_msi_ext_dest_id: bool,
}

impl Hypervisor {
    /// Whether the signature is KVM's.
    pub fn is_kvm(&self) -> bool {
        &self.signature == b"KVMKVMKVM\0\0\0"
    }
}

/// Everything the probe takes from CPUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFacts {
    pub vendor: Vendor,
    pub max_basic_leaf: u32,
    pub max_extended_leaf: u32,
    /// Display family and model (SDM Vol. 2A CPUID.01H: extended fields folded in).
    pub family: u32,
    pub model: u32,
    pub stepping: u8,
    /// CPUID.01H:ECX\[21\].
    pub x2apic: bool,
    /// CPUID.80000007H:EDX\[8\] InvariantTSC.
    pub invariant_tsc: bool,
    /// CPUID.06H:EAX\[2\] ARAT: the local APIC timer keeps running in deep C-states (without it
    /// Linux takes FSB-capable HPET channels as per-CPU clockevents).
    pub arat: bool,
    /// CPUID.07H.0:EBX\[11\] RTM.
    pub rtm: bool,
    /// CPUID.07H.0:EDX\[13\] TSX_FORCE_ABORT: MSR 0x10F exists and PMC3 is shared with TSX.
    pub tsx_force_abort: bool,
    /// TSC frequency in Hz, when CPUID gives it.
    pub tsc_hz: Option<u64>,
    pub tsc_hz_source: Option<TscFrequencySource>,
    pub pmu: Pmu,
    /// CPUID.01H:ECX\[31\] set.
    pub hypervisor: Option<Hypervisor>,
}

fn field(value: u32, shift: u32, width: u32) -> u32 {
    let mask = 1u32
        .checked_shl(width)
        .map_or(u32::MAX, |m| m.wrapping_sub(1));
    value.checked_shr(shift).unwrap_or(0) & mask
}

fn bit(value: u32, n: u32) -> bool {
    field(value, n, 1) != 0
}

fn to_u8(v: u32) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

fn signature(a: u32, b: u32, c: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (dst, src) in out.iter_mut().zip(
        a.to_le_bytes()
            .into_iter()
            .chain(b.to_le_bytes())
            .chain(c.to_le_bytes()),
    ) {
        *dst = src;
    }
    out
}

impl CpuFacts {
    /// Decodes the leaves the probe needs. Leaves above the advertised maxima are not
    /// consulted.
    pub fn decode(src: &impl CpuidSource) -> Self {
        let l0 = src.cpuid(0, 0);
        let max_basic_leaf = l0.eax;
        let sig = signature(l0.ebx, l0.edx, l0.ecx);
        let vendor = match &sig {
            b"GenuineIntel" => Vendor::Intel,
            b"AuthenticAMD" => Vendor::Amd,
            b"HygonGenuine" => Vendor::Hygon,
            _ => Vendor::Other(sig),
        };
        let basic = |leaf: u32, sub: u32| {
            if leaf <= max_basic_leaf {
                src.cpuid(leaf, sub)
            } else {
                CpuidRegs::default()
            }
        };
        let max_extended_leaf = {
            let e = src.cpuid(0x8000_0000, 0).eax;
            if e >= 0x8000_0000 {
                e
            } else {
                0
            }
        };
        let ext = |leaf: u32| {
            if max_extended_leaf != 0 && leaf <= max_extended_leaf {
                src.cpuid(leaf, 0)
            } else {
                CpuidRegs::default()
            }
        };

        // Family/model/stepping: SDM Vol. 2A, CPUID.01H:EAX; AMD APM Vol. 3 E.3.2 (same rule).
        let l1 = basic(1, 0);
        let base_family = field(l1.eax, 8, 4);
        let base_model = field(l1.eax, 4, 4);
        let family = if base_family == 0xF {
            base_family.saturating_add(field(l1.eax, 20, 8))
        } else {
            base_family
        };
        let model = if base_family == 0xF || base_family == 6 {
            (field(l1.eax, 16, 4) << 4) | base_model
        } else {
            base_model
        };

        let l7 = basic(7, 0);
        let l6 = basic(6, 0);

        // TSC frequency: SDM Vol. 3B §19.7.3 (CPUID.15H), Vol. 2A CPUID.16H.
        let l15 = basic(0x15, 0);
        let l16 = basic(0x16, 0);
        let from_15 = if l15.eax != 0 && l15.ebx != 0 && l15.ecx != 0 {
            u64::from(l15.ecx)
                .checked_mul(u64::from(l15.ebx))
                .and_then(|v| v.checked_div(u64::from(l15.eax)))
        } else {
            None
        };
        let from_16 = match field(l16.eax, 0, 16) {
            0 => None,
            mhz => u64::from(mhz).checked_mul(1_000_000),
        };
        let (tsc_hz, tsc_hz_source) = match (from_15, from_16) {
            (Some(hz), _) => (Some(hz), Some(TscFrequencySource::Leaf15)),
            (None, Some(hz)) => (Some(hz), Some(TscFrequencySource::Leaf16Base)),
            (None, None) => (None, None),
        };

        let pmu = if vendor.is_amd_like() {
            Self::amd_pmu(&ext)
        } else {
            // SDM Vol. 3B §20.2.1 / §20.2.2: CPUID.0AH.
            let la = basic(0xA, 0);
            let version = to_u8(field(la.eax, 0, 8));
            let (fixed_counters, fixed_width) = if version >= 2 {
                (to_u8(field(la.edx, 0, 5)), to_u8(field(la.edx, 5, 8)))
            } else {
                (0, 0)
            };
            Pmu {
                kind: if version == 0 {
                    PmuKind::None
                } else {
                    PmuKind::IntelArch
                },
                version,
                gp_counters: to_u8(field(la.eax, 8, 8)),
                gp_width: to_u8(field(la.eax, 16, 8)),
                fixed_counters,
                fixed_width,
            }
        };

        let hypervisor = if bit(l1.ecx, 31) {
            let h = src.cpuid(0x4000_0000, 0);
            let signature = signature(h.ebx, h.ecx, h.edx);
            let is_kvm = &signature == b"KVMKVMKVM\0\0\0";
            let features = if is_kvm && h.eax >= 0x4000_0001 {
                src.cpuid(0x4000_0001, 0).eax
            } else {
                0
            };
            Some(Hypervisor {
                signature,
                max_leaf: h.eax,
                kvm_msi_ext_dest_id: is_kvm && bit(features, 15),
            })
        } else {
            None
        };

        Self {
            vendor,
            max_basic_leaf,
            max_extended_leaf,
            family,
            model,
            stepping: to_u8(field(l1.eax, 0, 4)),
            x2apic: bit(l1.ecx, 21),
            invariant_tsc: bit(ext(0x8000_0007).edx, 8),
            arat: bit(l6.eax, 2),
            rtm: bit(l7.ebx, 11),
            tsx_force_abort: bit(l7.edx, 13),
            tsc_hz,
            tsc_hz_source,
            pmu,
            hypervisor,
        }
    }

    /// AMD APM Vol. 2 §13.2: 4 legacy counters; 6 with PerfCtrExtCore
    /// (CPUID.80000001H:ECX\[23\]); PerfMonV2 (CPUID.80000022H:EAX\[0\]) gives the count in
    /// EBX\[3:0\]. All are 48 bits wide. There are no fixed counters.
    fn amd_pmu(ext: &impl Fn(u32) -> CpuidRegs) -> Pmu {
        let ext_core = bit(ext(0x8000_0001).ecx, 23);
        let l22 = ext(0x8000_0022);
        let (kind, version, gp) = if bit(l22.eax, 0) {
            (PmuKind::AmdV2, 2, to_u8(field(l22.ebx, 0, 4)))
        } else if ext_core {
            (PmuKind::AmdExtCore, 1, 6)
        } else {
            (PmuKind::AmdLegacy, 1, 4)
        };
        Pmu {
            kind,
            version,
            gp_counters: gp,
            gp_width: 48,
            fixed_counters: 0,
            fixed_width: 0,
        }
    }
}

/// The local APIC mode from IA32_APIC_BASE (SDM Vol. 3A §11.12.1, table 11-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    Disabled,
    XApic,
    X2Apic,
    /// EXTD set without EN: an invalid state.
    Invalid,
}

impl ApicMode {
    pub fn from_apic_base(value: u64) -> Self {
        match (value & (1 << 11) != 0, value & (1 << 10) != 0) {
            (false, false) => Self::Disabled,
            (true, false) => Self::XApic,
            (true, true) => Self::X2Apic,
            (false, true) => Self::Invalid,
        }
    }
}

/// Which core counters are programmed now, as bit masks (bit i = counter i).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PmuUsage {
    /// General-purpose counters enabled (event select EN, and the global enable where there
    /// is one).
    pub gp_in_use: u32,
    /// Of those, the ones counting unhalted core cycles with an overflow interrupt: what the
    /// perf NMI watchdog programs.
    pub gp_cycles_pmi: u32,
    /// Fixed counters enabled (Intel).
    pub fixed_in_use: u32,
    /// Fixed counter 1 (unhalted core cycles) with its PMI bit: the watchdog on Intel.
    pub fixed_cycles_pmi: u32,
    /// General-purpose counters whose control MSR the CPU lacks (read as absent).
    pub gp_absent: u32,
}

impl PmuUsage {
    /// Counters that look like the perf NMI watchdog's (cycles with PMI).
    pub fn watchdog_like(&self) -> u32 {
        self.gp_cycles_pmi
            .count_ones()
            .saturating_add(self.fixed_cycles_pmi.count_ones())
    }
}

/// Why the counter state could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmuUsageError {
    /// CPUID enumerates no counters.
    NoPmu,
    /// This control MSR could not be read.
    Unread(u32),
}

/// Event 0x3C umask 0x00, UnHalted Core Cycles (SDM Vol. 3B §20.2.1.2, table 20-1).
const INTEL_CYCLES: u64 = 0x3C;
/// Event 0x76, "Cycles not in Halt" (AMD PPR for families 17h/19h, PMCx076).
const AMD_CYCLES: u64 = 0x76;
/// PERFEVTSEL / PERF_CTL bit 20 INT, bit 22 EN (SDM fig. 20-6; APM Vol. 2 fig. 13-7).
const EVTSEL_INT: u64 = 1 << 20;
const EVTSEL_EN: u64 = 1 << 22;

/// Decodes which counters are in use from the control MSRs of one CPU.
pub fn pmu_usage(cpu: &CpuFacts, msrs: &impl MsrSource) -> Result<PmuUsage, PmuUsageError> {
    let pmu = cpu.pmu;
    let read = |index: u32| match msrs.read_msr(index) {
        MsrRead::Value(v) => Ok(Some(v)),
        MsrRead::Absent => Ok(None),
        MsrRead::Unread => Err(PmuUsageError::Unread(index)),
    };
    let mut usage = PmuUsage::default();
    let gp = u32::from(pmu.gp_counters).min(32);
    match pmu.kind {
        PmuKind::None => return Err(PmuUsageError::NoPmu),
        PmuKind::IntelArch => {
            // Version 1 has no global control: an event select's EN alone enables it.
            let global = if pmu.version >= 2 {
                read(msr::IA32_PERF_GLOBAL_CTRL)?.unwrap_or(0)
            } else {
                u64::MAX
            };
            for i in 0..gp {
                let index = msr::IA32_PERFEVTSEL0.saturating_add(i);
                let Some(sel) = read(index)? else {
                    usage.gp_absent |= 1 << i;
                    continue;
                };
                let enabled = sel & EVTSEL_EN != 0 && global.checked_shr(i).unwrap_or(0) & 1 != 0;
                if enabled {
                    usage.gp_in_use |= 1 << i;
                    // Event select bits 7:0, umask bits 15:8.
                    if sel & 0xFFFF == INTEL_CYCLES && sel & EVTSEL_INT != 0 {
                        usage.gp_cycles_pmi |= 1 << i;
                    }
                }
            }
            if pmu.fixed_counters > 0 {
                let ctrl = read(msr::IA32_FIXED_CTR_CTRL)?.unwrap_or(0);
                for i in 0..u32::from(pmu.fixed_counters).min(16) {
                    // Four bits per counter: 1:0 enable (OS/USR), bit 3 PMI.
                    let nibble = ctrl.checked_shr(i.saturating_mul(4)).unwrap_or(0) & 0xF;
                    let on = global.checked_shr(i.saturating_add(32)).unwrap_or(0) & 1 != 0;
                    if nibble & 0x3 != 0 && on {
                        usage.fixed_in_use |= 1 << i;
                        // Fixed counter 1 counts CPU_CLK_UNHALTED.THREAD (table 20-2).
                        if i == 1 && nibble & 0x8 != 0 {
                            usage.fixed_cycles_pmi |= 1 << i;
                        }
                    }
                }
            }
        }
        PmuKind::AmdLegacy | PmuKind::AmdExtCore | PmuKind::AmdV2 => {
            let global = if pmu.kind == PmuKind::AmdV2 {
                read(msr::AMD_PERF_GLOBAL_CTL)?.unwrap_or(u64::MAX)
            } else {
                u64::MAX
            };
            for i in 0..gp {
                let index = if pmu.kind == PmuKind::AmdLegacy {
                    msr::AMD_PERF_CTL_LEGACY.saturating_add(i)
                } else {
                    msr::AMD_PERF_CTL_EXT.saturating_add(i.saturating_mul(2))
                };
                let Some(ctl) = read(index)? else {
                    usage.gp_absent |= 1 << i;
                    continue;
                };
                if ctl & EVTSEL_EN != 0 && global.checked_shr(i).unwrap_or(0) & 1 != 0 {
                    usage.gp_in_use |= 1 << i;
                    // EventSelect is bits 7:0 plus 35:32; umask bits 15:8.
                    let event = (ctl & 0xFF) | ((ctl >> 24) & 0xF00);
                    if event == AMD_CYCLES && ctl & 0xFF00 == 0 && ctl & EVTSEL_INT != 0 {
                        usage.gp_cycles_pmi |= 1 << i;
                    }
                }
            }
        }
    }
    Ok(usage)
}

/// The TSX_FORCE_ABORT state (Intel, "Performance Monitoring Impact of Intel TSX", 2019):
/// on parts that enumerate it, PMC3 serves either TSX or perf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsxForceAbort {
    /// CPUID.07H.0:EDX\[13\] clear: no interaction; all GP counters belong to perf.
    NotEnumerated,
    /// RTM_FORCE_ABORT (bit 0) set: RTM transactions abort and perf may use PMC3.
    ForceAbort,
    /// Bit 0 clear: PMC3 is reserved for TSX; perf has one GP counter fewer.
    Pmc3ForTsx,
    /// Enumerated but MSR 0x10F could not be read.
    Unknown,
}

impl TsxForceAbort {
    pub fn decode(cpu: &CpuFacts, msr_10f: MsrRead) -> Self {
        if !cpu.tsx_force_abort {
            return Self::NotEnumerated;
        }
        match msr_10f {
            MsrRead::Value(v) if v & 1 != 0 => Self::ForceAbort,
            MsrRead::Value(_) => Self::Pmc3ForTsx,
            MsrRead::Absent | MsrRead::Unread => Self::Unknown,
        }
    }

    /// GP counters perf can use given `gp` enumerated.
    pub fn usable_gp(&self, gp: u8) -> u8 {
        match self {
            Self::Pmc3ForTsx if gp >= 4 => gp.saturating_sub(1),
            _ => gp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidRegs {
        CpuidRegs { eax, ebx, ecx, edx }
    }

    #[test]
    fn empty_source_decodes_to_nothing() {
        let f = CpuFacts::decode(&RecordedCpuid(&[]));
        assert_eq!(f.vendor, Vendor::Other([0; 12]));
        assert_eq!(f.pmu.kind, PmuKind::None);
        assert!(!f.x2apic && !f.invariant_tsc && f.hypervisor.is_none());
        assert_eq!(f.tsc_hz, None);
    }

    #[test]
    fn leaves_above_the_maximum_are_ignored() {
        // Max basic leaf 1: a stale leaf 0xA in the recording must not be used.
        let leaves = [
            (0, 0, r(1, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)),
            (0xA, 0, r(0x0730_0404, 0, 0, 0x603)),
        ];
        let f = CpuFacts::decode(&RecordedCpuid(&leaves));
        assert_eq!(f.vendor, Vendor::Intel);
        assert_eq!(f.pmu.kind, PmuKind::None);
    }

    #[test]
    fn kvm_extended_destination_id() {
        let leaves = [
            (0, 0, r(0xD, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)),
            (1, 0, r(0x000506e3, 0, 1 << 31 | 1 << 21, 0)),
            (
                0x4000_0000,
                0,
                r(0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
            ),
            (0x4000_0001, 0, r(1 << 15, 0, 0, 0)),
        ];
        let f = CpuFacts::decode(&RecordedCpuid(&leaves));
        let h = f.hypervisor.unwrap();
        assert!(h.is_kvm() && h.kvm_msi_ext_dest_id);
        assert!(f.x2apic);
    }

    #[test]
    fn apic_modes() {
        assert_eq!(ApicMode::from_apic_base(0xfee0_0800), ApicMode::XApic);
        assert_eq!(ApicMode::from_apic_base(0xfee0_0c00), ApicMode::X2Apic);
        assert_eq!(ApicMode::from_apic_base(0xfee0_0000), ApicMode::Disabled);
        assert_eq!(ApicMode::from_apic_base(0x400), ApicMode::Invalid);
    }

    #[test]
    fn unread_msr_is_an_error_absent_is_not() {
        let leaves = [
            (0, 0, r(0xA, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)),
            (0xA, 0, r(0x0730_0402, 0, 0, 0x603)),
        ];
        let f = CpuFacts::decode(&RecordedCpuid(&leaves));
        struct Unreadable;
        impl MsrSource for Unreadable {
            fn read_msr(&self, _: u32) -> MsrRead {
                MsrRead::Unread
            }
        }
        assert_eq!(
            pmu_usage(&f, &Unreadable),
            Err(PmuUsageError::Unread(msr::IA32_PERF_GLOBAL_CTRL))
        );
        let u = pmu_usage(&f, &RecordedMsrs(&[])).unwrap();
        assert_eq!(u.gp_absent, 0b1111);
        assert_eq!(u.gp_in_use, 0);
    }
}
