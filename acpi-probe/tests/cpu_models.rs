//! CPUID/MSR decoding and the PMU, TSX, x2APIC and TSC verdicts against register values
//! recorded on three real CPUs (tests/fixtures/cpuid/, sources in each file). The expected
//! values below were worked out by hand from the vendors' documentation, cited per line.

use acpi_probe::cpu::{
    pmu_usage, ApicMode, CpuFacts, CpuidRegs, MsrRead, PmuKind, RecordedCpuid, RecordedMsrs,
    TscFrequencySource, TsxForceAbort, Vendor,
};
use acpi_probe::verdict::{self, Answer, HeldCounter, Inputs, IommuFacts, LinuxFacts};

struct Fixture {
    cpuid: Vec<(u32, u32, CpuidRegs)>,
    /// "recorded" first, then each scenario.
    msrs: Vec<(String, Vec<(u32, u64)>)>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s}"))
}

fn load(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/cpuid/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut f = Fixture {
        cpuid: Vec::new(),
        msrs: vec![("recorded".into(), Vec::new())],
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap().trim();
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            [] => {}
            ["cpuid", leaf, sub, a, b, c, d] => f.cpuid.push((
                hex(leaf) as u32,
                hex(sub) as u32,
                CpuidRegs {
                    eax: hex(a) as u32,
                    ebx: hex(b) as u32,
                    ecx: hex(c) as u32,
                    edx: hex(d) as u32,
                },
            )),
            ["msr", index, value] => f
                .msrs
                .last_mut()
                .unwrap()
                .1
                .push((hex(index) as u32, hex(value))),
            ["scenario", name] => f.msrs.push((name.to_string(), Vec::new())),
            other => panic!("{path}: bad line {other:?}"),
        }
    }
    f
}

impl Fixture {
    fn facts(&self) -> CpuFacts {
        CpuFacts::decode(&RecordedCpuid(&self.cpuid))
    }
    fn msrs(&self, scenario: &str) -> RecordedMsrs<'_> {
        RecordedMsrs(&self.msrs.iter().find(|(n, _)| n == scenario).unwrap().1)
    }
}

/// The PMU verdict for one CPU and scenario, with nmi_watchdog=1.
fn pmu_verdict(cpu: &CpuFacts, msrs: &RecordedMsrs) -> verdict::PmuVerdict {
    let usage = pmu_usage(cpu, msrs).unwrap();
    let tfa = TsxForceAbort::decode(cpu, acpi_probe::cpu::MsrSource::read_msr(msrs, 0x10F));
    let inputs = Inputs {
        hpet: None,
        iommu: IommuFacts::NONE,
        cpu: Some(cpu),
        apic_mode: None,
        max_apic_id: Some(7),
        cpus: Some(8),
        pmu_usage: Some(usage),
        tsx_force_abort: Some(tfa),
        linux: Some(LinuxFacts {
            nmi_watchdog: Some(true),
            clocksource_tsc: Some(true),
            tsc_available: Some(true),
            isolated_cpus: false,
        }),
    };
    verdict::evaluate(&inputs).pmu
}

#[test]
fn intel_core_i7_6700k() {
    let f = load("intel-core-i7-6700k.txt");
    let c = f.facts();
    assert_eq!(c.vendor, Vendor::Intel);
    // SDM Vol. 2A CPUID.01H:EAX 0x506E3: family 6, model (5 << 4) | 0xE, stepping 3.
    assert_eq!((c.family, c.model, c.stepping), (6, 0x5E, 3));
    // CPUID.01H:ECX = 0x7FFAFBBF, bit 21 (x2APIC) set.
    assert!(c.x2apic);
    // CPUID.80000007H:EDX = 0x100, bit 8 InvariantTSC.
    assert!(c.invariant_tsc);
    // CPUID.06H:EAX = 0x27F7, bit 2 ARAT.
    assert!(c.arat);
    // CPUID.07H.0:EBX = 0x029C6FBF, bit 11 RTM; EDX = 0: no TSX_FORCE_ABORT (pre-2019 microcode).
    assert!(c.rtm && !c.tsx_force_abort);
    // CPUID.0AH: EAX 0x07300404 = version 4, 4 GP counters, 48 bits; EDX 0x603 = 3 fixed
    // counters (bits 4:0) of 48 bits (bits 12:5) (SDM Vol. 3B §20.2.2, §20.2.3).
    assert_eq!(c.pmu.kind, PmuKind::IntelArch);
    assert_eq!(
        (c.pmu.version, c.pmu.gp_counters, c.pmu.gp_width),
        (4, 4, 48)
    );
    assert_eq!((c.pmu.fixed_counters, c.pmu.fixed_width), (3, 48));
    // CPUID.15H: EAX 2, EBX 334, ECX 0: the crystal is not enumerated, so the frequency comes
    // from CPUID.16H:EAX = 4000 MHz (SDM Vol. 3B §19.7.3: ECX = 0 means "not enumerated").
    assert_eq!(c.tsc_hz, Some(4_000_000_000));
    assert_eq!(c.tsc_hz_source, Some(TscFrequencySource::Leaf16Base));
    assert!(c.hypervisor.is_none());

    // Recorded MSRs: IA32_APIC_BASE 0xFEE00800 = EN (bit 11) without EXTD (bit 10): xAPIC.
    let rec = f.msrs("recorded");
    let base = acpi_probe::cpu::MsrSource::read_msr(&rec, 0x1B)
        .value()
        .unwrap();
    assert_eq!(ApicMode::from_apic_base(base), ApicMode::XApic);
    // GLOBAL_CTRL 0xF enables GP 0..3, but no PERFEVTSELx has EN (bit 22): none in use.
    let u = pmu_usage(&c, &rec).unwrap();
    assert_eq!((u.gp_in_use, u.fixed_in_use, u.watchdog_like()), (0, 0, 0));
    let p = pmu_verdict(&c, &rec);
    assert_eq!((p.held_now, p.would_free), (Some(0), Some(0)));
    assert_eq!(p.gp_usable, Some(4));
    assert_eq!(p.tsx.answer, Answer::No);

    // Watchdog on fixed counter 1: FIXED_CTR_CTRL nibble 1 = 1011b (enable OS|USR, PMI) and
    // GLOBAL_CTRL bit 33 (SDM Vol. 3B §20.2.2, fig. 20-2 and 20-3).
    let wd = f.msrs("linux-watchdog");
    let u = pmu_usage(&c, &wd).unwrap();
    assert_eq!(
        (u.fixed_in_use, u.fixed_cycles_pmi, u.gp_in_use),
        (0b10, 0b10, 0)
    );
    let p = pmu_verdict(&c, &wd);
    assert_eq!((p.held_now, p.would_free), (Some(1), Some(1)));
    assert_eq!(p.held_counter, Some(HeldCounter::Fixed(1)));

    // TSX_FORCE_ABORT enumerated (CPUID.07H.0:EDX[13]) and MSR 0x10F bit 0 clear: PMC3 is
    // TSX's, perf has 3 of the 4 GP counters (Intel, "Performance Monitoring Impact of Intel
    // Transactional Synchronization Extensions", 2019).
    let mut cpuid = f.cpuid.clone();
    for (leaf, sub, r) in cpuid.iter_mut() {
        if (*leaf, *sub) == (7, 0) {
            r.edx |= 1 << 13;
        }
    }
    let c2 = CpuFacts::decode(&RecordedCpuid(&cpuid));
    assert!(c2.tsx_force_abort);
    let tfa = f.msrs("tsx-force-abort");
    let p = pmu_verdict(&c2, &tfa);
    assert_eq!(p.tsx.answer, Answer::Yes);
    assert_eq!(p.gp_usable, Some(3));
    assert_eq!(
        TsxForceAbort::decode(&c2, MsrRead::Value(1)),
        TsxForceAbort::ForceAbort
    );
    assert_eq!(
        TsxForceAbort::decode(&c2, MsrRead::Unread),
        TsxForceAbort::Unknown
    );
}

#[test]
fn intel_core_i5_3570() {
    let f = load("intel-core-i5-3570.txt");
    let c = f.facts();
    // CPUID.01H:EAX 0x306A9: family 6, model 0x3A, stepping 9.
    assert_eq!(
        (c.vendor, c.family, c.model, c.stepping),
        (Vendor::Intel, 6, 0x3A, 9)
    );
    // CPUID.01H:ECX 0x7FBAE3FF bit 21 set; CPUID.07H.0:EBX 0x281 bit 11 clear (no RTM).
    assert!(c.x2apic && !c.rtm && !c.tsx_force_abort);
    assert!(c.invariant_tsc && c.arat);
    // CPUID.0AH:EAX 0x07300803: version 3, 8 GP counters (no Hyper-Threading, so the
    // sibling's four are this thread's too), 48 bits; EDX 0x603: 3 fixed × 48.
    assert_eq!(
        (
            c.pmu.version,
            c.pmu.gp_counters,
            c.pmu.gp_width,
            c.pmu.fixed_counters
        ),
        (3, 8, 48, 3)
    );
    // Maximum basic leaf 0xD < 0x15: no TSC frequency from CPUID.
    assert_eq!(c.tsc_hz, None);

    // Recorded under Linux: IA32_APIC_BASE 0xFEE00C00 = EN | EXTD: x2APIC mode.
    let rec = f.msrs("recorded");
    let base = acpi_probe::cpu::MsrSource::read_msr(&rec, 0x1B)
        .value()
        .unwrap();
    assert_eq!(ApicMode::from_apic_base(base), ApicMode::X2Apic);
    assert_eq!(pmu_verdict(&c, &rec).held_now, Some(0));

    // Watchdog on GP counter 0: PERFEVTSEL0 0x53003C = event 0x3C umask 0 (UnHalted Core
    // Cycles, SDM table 20-1), USR (16), OS (17), INT (20), EN (22); GLOBAL_CTRL bit 0.
    let wd = f.msrs("linux-watchdog-gp");
    let u = pmu_usage(&c, &wd).unwrap();
    assert_eq!((u.gp_in_use, u.gp_cycles_pmi), (1, 1));
    let p = pmu_verdict(&c, &wd);
    assert_eq!(p.held_counter, Some(HeldCounter::General(0)));
    assert_eq!(
        (p.held_now, p.would_free, p.gp_usable),
        (Some(1), Some(1), Some(8))
    );
    // The same event select with the global enable clear counts nothing (SDM §20.2.2).
    let off = RecordedMsrs(&[(0x38F, 0), (0x186, 0x53003C), (0x38D, 0)]);
    assert_eq!(pmu_usage(&c, &off).unwrap().gp_in_use, 0);
}

#[test]
fn amd_ryzen_7_1800x() {
    let f = load("amd-ryzen-7-1800x.txt");
    let c = f.facts();
    assert_eq!(c.vendor, Vendor::Amd);
    // APM Vol. 3 E.3.2: base family 0xF + extended family 0x08 = 0x17; model 0x01.
    assert_eq!((c.family, c.model, c.stepping), (0x17, 0x01, 1));
    // CPUID.01H:ECX 0x7ED8320B bit 21 clear: Zen 1 has no x2APIC.
    assert!(!c.x2apic);
    // CPUID.80000007H:EDX 0x6599 bit 8: invariant TSC. CPUID.06H:EAX 4: ARAT.
    assert!(c.invariant_tsc && c.arat);
    // CPUID.80000001H:ECX 0x35C233FF bit 23 PerfCtrExtCore: six core counters at
    // 0xC0010200 + 2i; max extended leaf 0x8000001F < 0x80000022: no PerfMonV2 (APM Vol. 2
    // §13.2.1).
    assert_eq!(c.pmu.kind, PmuKind::AmdExtCore);
    assert_eq!(
        (c.pmu.gp_counters, c.pmu.gp_width, c.pmu.fixed_counters),
        (6, 48, 0)
    );
    assert!(!c.tsx_force_abort);

    let rec = f.msrs("recorded");
    assert_eq!(pmu_verdict(&c, &rec).held_now, Some(0));
    // PERF_CTL0 0x530076: event 0x76 (cycles not in halt), USR, OS, INT, EN (APM fig. 13-7).
    let wd = f.msrs("linux-watchdog");
    let p = pmu_verdict(&c, &wd);
    assert_eq!(p.held_counter, Some(HeldCounter::General(0)));
    assert_eq!(
        (p.held_now, p.would_free, p.gp_usable),
        (Some(1), Some(1), Some(6))
    );

    // Without x2APIC the chain policy is refused, whatever the route.
    let inputs = Inputs {
        hpet: None,
        iommu: IommuFacts::NONE,
        cpu: Some(&c),
        apic_mode: Some(ApicMode::XApic),
        max_apic_id: Some(15),
        cpus: Some(16),
        pmu_usage: None,
        tsx_force_abort: None,
        linux: None,
    };
    let v = verdict::evaluate(&inputs);
    assert_eq!(v.x2apic.answer, Answer::No);
    assert_eq!(v.policies.chain.answer, Answer::No);
    assert_eq!(v.tsc.answer, Answer::Yes);
}
