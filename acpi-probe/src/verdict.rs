//! The capability verdicts: can this machine host an HPET NMI watchdog, through which route,
//! with which rotation policies, and what it gives back. Pure functions of plain facts, so
//! the host probe and the tests share them. The rules and their reasons are in docs/probe.md.

use crate::cpu::{ApicMode, CpuFacts, PmuKind, PmuUsage, TsxForceAbort};
use crate::hpet::{GeneralCapabilities, TimerCapabilities};

/// A three-way answer: facts that could not be read leave a verdict `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Unknown,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Unknown => "unknown",
        }
    }
}

/// One verdict and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub answer: Answer,
    pub reason: &'static str,
}

const fn v(answer: Answer, reason: &'static str) -> Verdict {
    Verdict { answer, reason }
}

/// Which IOMMU the ACPI tables describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IommuKind {
    IntelVtd,
    AmdVi,
    None,
}

/// IOMMU facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IommuFacts {
    pub kind: IommuKind,
    /// The hardware offers interrupt remapping (VT-d: ECAP.IR of every unit when read, else
    /// the DMAR INTR_REMAP flag; AMD-Vi: see docs/probe.md).
    pub interrupt_remapping: bool,
    /// VT-d ECAP.EIM of every unit (`None` when ECAP was not read).
    pub extended_interrupt_mode: Option<bool>,
    /// The HPET's source-id from its DMAR type-4 device scope.
    pub hpet_source_id: Option<u16>,
    /// DMAR X2APIC_OPT_OUT.
    pub x2apic_opt_out: bool,
}

impl IommuFacts {
    pub const NONE: Self = Self {
        kind: IommuKind::None,
        interrupt_remapping: false,
        extended_interrupt_mode: None,
        hpet_source_id: None,
        x2apic_opt_out: false,
    };
}

/// HPET facts: the ACPI table says one exists; the registers (if read) say what it can do.
#[derive(Debug, Clone, Copy)]
pub struct HpetFacts<'a> {
    /// Read through the MMIO page; `None` when it could not be read.
    pub general: Option<GeneralCapabilities>,
    /// Per-timer configuration and capability registers (empty when not read).
    pub timers: &'a [TimerCapabilities],
    /// Bit n: Linux uses timer n (clockevents, /proc/interrupts).
    pub linux_uses: u32,
}

/// Linux facts that bear on the verdicts (all optional: offline inputs have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinuxFacts {
    /// /proc/sys/kernel/nmi_watchdog.
    pub nmi_watchdog: Option<bool>,
    /// The current clocksource is "tsc".
    pub clocksource_tsc: Option<bool>,
    /// "tsc" is among the available clocksources (Linux removes it when it finds it unstable).
    pub tsc_available: Option<bool>,
    /// nohz_full= or isolcpus= on the command line.
    pub isolated_cpus: bool,
}

/// Everything the verdicts need.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `None`: no ACPI HPET table.
    pub hpet: Option<HpetFacts<'a>>,
    pub iommu: IommuFacts,
    /// `None` for offline inputs (CPUID describes this machine, not the dump's).
    pub cpu: Option<&'a CpuFacts>,
    pub apic_mode: Option<ApicMode>,
    /// Highest APIC ID of an enabled CPU (MADT or /proc/cpuinfo).
    pub max_apic_id: Option<u32>,
    pub cpus: Option<u32>,
    /// Counter state on one CPU (`None` when the MSRs were not read).
    pub pmu_usage: Option<PmuUsage>,
    pub tsx_force_abort: Option<TsxForceAbort>,
    pub linux: Option<LinuxFacts>,
}

/// The delivery routes (docs/probe.md "Routes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    pub fsb_direct: Verdict,
    pub fsb_remapped: Verdict,
    /// The source-id an IRTE validates for the remapped FSB route.
    pub fsb_remapped_source_id: Option<u16>,
    pub ioapic: Verdict,
    /// The I/O APIC inputs the chosen timer can be routed to (Tn_INT_ROUTE_CAP).
    pub ioapic_inputs: u32,
}

/// The rotation policies (BRIEF "The rotation policies").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub broadcast: Verdict,
    pub round_robin: Verdict,
    pub chain: Verdict,
    pub remote: Verdict,
    pub buddy: Verdict,
}

/// The PMU verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmuVerdict {
    /// Counters the Linux NMI watchdog holds per CPU now (`None` when unknown).
    pub held_now: Option<u32>,
    /// Counters per CPU that replacing it would give back.
    pub would_free: Option<u32>,
    /// Which: "fixed counter 1", "general-purpose counter N", ...
    pub held_counter: Option<HeldCounter>,
    /// General-purpose counters perf can use now (after TSX_FORCE_ABORT).
    pub gp_usable: Option<u8>,
    pub reason: &'static str,
    pub tsx: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldCounter {
    Fixed(u8),
    General(u8),
}

/// All verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdicts {
    pub hpet_usable: Verdict,
    /// The timer to use (`None` when none or unknown).
    pub timer: Option<u8>,
    pub timer_reason: &'static str,
    pub routes: Routes,
    pub policies: Policies,
    pub high_apic_ids: Verdict,
    pub x2apic: Verdict,
    pub tsc: Verdict,
    pub pmu: PmuVerdict,
    /// The bottom line; the exit status follows it.
    pub watchdog_possible: Verdict,
}

/// A sane HPET: period within the specification and a nonzero revision (an HPET decoded
/// away by the chipset reads all ones, failing both).
fn hpet_usable(inputs: &Inputs) -> Verdict {
    let Some(h) = inputs.hpet else {
        return v(Answer::No, "the ACPI tables describe no HPET");
    };
    match h.general {
        None => v(
            Answer::Unknown,
            "an ACPI HPET table exists but its registers were not read",
        ),
        Some(g) if g.0 == u64::MAX => v(
            Answer::No,
            "the HPET registers read as all ones: the block is disabled or not decoded",
        ),
        Some(g) if g.validate().is_err() => v(
            Answer::No,
            "the HPET capability register is invalid (zero or out-of-range period, or revision 0)",
        ),
        Some(_) => v(
            Answer::Yes,
            "the HPET registers are readable and the counter period is valid",
        ),
    }
}

/// Picks a timer: prefer FSB-capable, then a free one (Linux does not use it), then index ≥ 2
/// (timers 0 and 1 carry the legacy replacement route), lowest index first. Without FSB, a
/// timer with an I/O APIC route.
fn choose_timer(h: &HpetFacts) -> (Option<u8>, &'static str) {
    if h.timers.is_empty() {
        return (None, "the timer registers were not read");
    }
    let score = |(i, t): (usize, &TimerCapabilities)| -> Option<(u32, usize)> {
        let fsb = t.fsb_delivery_capable();
        if !fsb && t.int_route_cap() == 0 {
            return None;
        }
        let used = u32::try_from(i)
            .ok()
            .and_then(|n| h.linux_uses.checked_shr(n))
            .is_some_and(|b| b & 1 != 0);
        let s = (if fsb { 0 } else { 4 }) | (if used { 2 } else { 0 }) | u32::from(i < 2);
        Some((s, i))
    };
    match h.timers.iter().enumerate().filter_map(score).min() {
        None => (
            None,
            "no timer offers FSB delivery or any I/O APIC route",
        ),
        Some((s, i)) => (
            u8::try_from(i).ok(),
            match s {
                0 => "FSB-capable, not used by Linux, not a legacy-route timer",
                1 => "FSB-capable and not used by Linux (a legacy-route timer)",
                2 | 3 => "FSB-capable but used by Linux: hpetwd's kernel owns the HPET, a Linux implementation would have to take it",
                _ => "no FSB-capable timer: one with an I/O APIC route",
            },
        ),
    }
}

fn routes(inputs: &Inputs, timer: Option<u8>) -> Routes {
    let h = inputs.hpet;
    let t = h.zip(timer).and_then(|(h, i)| h.timers.get(usize::from(i)));
    let unknown = Routes {
        fsb_direct: v(Answer::Unknown, "the timer capabilities were not read"),
        fsb_remapped: v(Answer::Unknown, "the timer capabilities were not read"),
        fsb_remapped_source_id: inputs.iommu.hpet_source_id,
        ioapic: v(Answer::Unknown, "the timer capabilities were not read"),
        ioapic_inputs: 0,
    };
    let none = v(Answer::No, "no usable HPET");
    if h.is_none() {
        return Routes {
            fsb_direct: none,
            fsb_remapped: none,
            fsb_remapped_source_id: None,
            ioapic: none,
            ioapic_inputs: 0,
        };
    }
    let (fsb, inputs_cap) = match (h.map(|h| h.timers.is_empty()), t) {
        (Some(true), _) => {
            // Registers unread: remapping can still be judged from the tables.
            let mut r = unknown;
            r.fsb_remapped = remapped(inputs, None);
            return r;
        }
        (_, Some(t)) => (t.fsb_delivery_capable(), t.int_route_cap()),
        (_, None) => (false, 0),
    };
    let fsb_direct = if fsb {
        v(
            Answer::Yes,
            "the timer has Tn_FSB_INT_DEL_CAP: it writes a compatibility-format MSI (NMI delivery, 8-bit destination)",
        )
    } else {
        v(
            Answer::No,
            "no timer has Tn_FSB_INT_DEL_CAP (FSB/MSI delivery)",
        )
    };
    let ioapic = if inputs_cap != 0 {
        v(
            Answer::Yes,
            "Tn_INT_ROUTE_CAP lists I/O APIC inputs; the redirection entry (or its IRTE) sets NMI delivery",
        )
    } else {
        v(Answer::No, "Tn_INT_ROUTE_CAP is empty")
    };
    Routes {
        fsb_direct,
        fsb_remapped: remapped(inputs, Some(fsb)),
        fsb_remapped_source_id: inputs.iommu.hpet_source_id,
        ioapic,
        ioapic_inputs: inputs_cap,
    }
}

fn remapped(inputs: &Inputs, fsb: Option<bool>) -> Verdict {
    let io = inputs.iommu;
    match io.kind {
        IommuKind::None => v(Answer::No, "no IOMMU (no DMAR or IVRS table)"),
        IommuKind::AmdVi => v(
            Answer::No,
            "AMD-Vi passes NMIs unremapped (NMIPass), so a remapped HPET NMI is not available",
        ),
        IommuKind::IntelVtd if !io.interrupt_remapping => v(
            Answer::No,
            "the VT-d hardware does not offer interrupt remapping",
        ),
        IommuKind::IntelVtd if io.hpet_source_id.is_none() => v(
            Answer::No,
            "the DMAR lists no MSI-capable HPET scope (type 4) for this HPET: no source-id for the IRTE",
        ),
        IommuKind::IntelVtd => match fsb {
            Some(true) => v(
                Answer::Yes,
                "VT-d interrupt remapping with the HPET's DMAR source-id, and the timer is FSB-capable",
            ),
            Some(false) => v(Answer::No, "no timer has Tn_FSB_INT_DEL_CAP"),
            None => v(
                Answer::Unknown,
                "VT-d remapping and an HPET scope exist; FSB capability was not read",
            ),
        },
    }
}

fn any_route(r: &Routes) -> Answer {
    let all = [r.fsb_direct.answer, r.fsb_remapped.answer, r.ioapic.answer];
    if all.contains(&Answer::Yes) {
        Answer::Yes
    } else if all.contains(&Answer::Unknown) {
        Answer::Unknown
    } else {
        Answer::No
    }
}

fn policies(inputs: &Inputs, r: &Routes, high_ids: bool) -> Policies {
    let route = any_route(r);
    let needs_route = |yes: &'static str| match route {
        Answer::Yes => v(Answer::Yes, yes),
        Answer::No => v(Answer::No, "no HPET NMI route"),
        Answer::Unknown => v(
            Answer::Unknown,
            "whether an HPET NMI route exists is unknown",
        ),
    };
    let broadcast = needs_route(
        "one HPET route to one CPU, then an all-but-self NMI IPI: works in xAPIC and x2APIC mode (it disturbs idle and isolated CPUs every period)",
    );
    let remote = needs_route(
        "one HPET route to one checker CPU; targeted NMI IPIs only to CPUs found stuck",
    );
    let x2apic = inputs.cpu.map(|c| c.x2apic);
    let chain = match (route, x2apic) {
        (Answer::No, _) => v(Answer::No, "no HPET NMI route"),
        (_, Some(false)) => v(
            Answer::No,
            "chain sends NMI IPIs from NMI context, which is only safe with x2APIC's single-MSR ICR write; this CPU has no x2APIC",
        ),
        (_, None) => v(Answer::Unknown, "x2APIC support unknown (offline input)"),
        (Answer::Unknown, Some(true)) => {
            v(Answer::Unknown, "x2APIC present; the HPET route is unknown")
        }
        (Answer::Yes, Some(true)) => v(
            Answer::Yes,
            "x2APIC present (single-MSR ICR writes) and an HPET NMI route exists",
        ),
    };
    // Round-robin sends the HPET's own NMI to each CPU in turn, so the route must reach
    // every APIC ID: above 255 only IRTEs in VT-d extended interrupt mode do.
    let io = inputs.iommu;
    let vtd_remapping = io.kind == IommuKind::IntelVtd && io.interrupt_remapping;
    let reach = if !high_ids {
        Answer::Yes
    } else if vtd_remapping {
        match io.extended_interrupt_mode {
            Some(true) => Answer::Yes,
            Some(false) => Answer::No,
            None => Answer::Unknown,
        }
    } else {
        Answer::No
    };
    let rr = if route == Answer::No {
        v(Answer::No, "no HPET NMI route")
    } else if reach == Answer::No {
        v(
            Answer::No,
            "round-robin routes the HPET NMI to every CPU in turn; APIC IDs above 255 need IRTEs in VT-d extended interrupt mode, which this machine lacks",
        )
    } else if reach == Answer::Unknown {
        v(
            Answer::Unknown,
            "APIC IDs above 255 need VT-d extended interrupt mode; ECAP.EIM was not read",
        )
    } else if r.fsb_remapped.answer == Answer::Yes {
        v(
            Answer::Yes,
            "remapped FSB route: one IRTE per CPU set up at init; the NMI path only switches the handle",
        )
    } else if r.ioapic.answer == Answer::Yes && (!high_ids || vtd_remapping) {
        v(
            Answer::Yes,
            "I/O APIC route: the NMI path switches the redirection entry to the next CPU (its IRTE handle under remapping, else its destination); one index/data pair on an I/O APIC only the watchdog kernel programs, so no other access interleaves",
        )
    } else if r.fsb_direct.answer == Answer::Yes && !high_ids {
        v(
            Answer::Yes,
            "direct FSB route: the NMI path rewrites the route's destination, one 32-bit write (every APIC ID fits in 8 bits)",
        )
    } else if [r.fsb_remapped.answer, r.ioapic.answer, r.fsb_direct.answer]
        .contains(&Answer::Unknown)
    {
        v(Answer::Unknown, "the HPET's routes were not all read")
    } else {
        v(
            Answer::No,
            "no route can be switched to every CPU: APIC IDs above 255 need a remapped route",
        )
    };
    let buddy = match inputs.cpus {
        Some(n) if n < 2 => v(Answer::No, "buddy needs at least two CPUs"),
        _ => v(
            Answer::Yes,
            "needs no NMI source (each CPU's timer checks its neighbour); cannot detect all CPUs locked at once",
        ),
    };
    Policies {
        broadcast,
        round_robin: rr,
        chain,
        remote,
        buddy,
    }
}

fn high_apic_ids(inputs: &Inputs) -> (Verdict, bool) {
    let Some(max) = inputs.max_apic_id else {
        return (v(Answer::Unknown, "the APIC IDs are unknown"), false);
    };
    if max <= 255 {
        return (
            v(
                Answer::Yes,
                "every APIC ID fits in 8 bits: compatibility-format MSIs reach every CPU",
            ),
            false,
        );
    }
    let io = inputs.iommu;
    let kvm = inputs
        .cpu
        .and_then(|c| c.hypervisor)
        .is_some_and(|h| h.kvm_msi_ext_dest_id);
    let verdict = if kvm {
        v(
            Answer::Yes,
            "APIC IDs above 255: KVM's extended destination ID (KVM_FEATURE_MSI_EXT_DEST_ID) reaches them without remapping",
        )
    } else {
        match io.kind {
            IommuKind::IntelVtd if io.interrupt_remapping => match io.extended_interrupt_mode {
                Some(true) => v(
                    Answer::Yes,
                    "APIC IDs above 255: VT-d interrupt remapping with extended interrupt mode (ECAP.EIM) reaches them",
                ),
                Some(false) => v(
                    Answer::No,
                    "APIC IDs above 255 need VT-d extended interrupt mode, and ECAP.EIM is clear: the HPET can target IDs up to 255 only",
                ),
                None => v(
                    Answer::Unknown,
                    "APIC IDs above 255 need VT-d extended interrupt mode (ECAP.EIM), which was not read",
                ),
            },
            IommuKind::AmdVi => v(
                Answer::No,
                "APIC IDs above 255: AMD-Vi passes NMIs unremapped (8-bit destination), so the HPET NMI can target IDs up to 255 only; IPIs in x2APIC mode still reach the rest",
            ),
            _ => v(
                Answer::No,
                "APIC IDs above 255 need interrupt remapping with extended interrupt mode; the HPET can target IDs up to 255 only",
            ),
        }
    };
    (verdict, verdict.answer != Answer::Yes)
}

fn x2apic(inputs: &Inputs) -> Verdict {
    match (inputs.cpu.map(|c| c.x2apic), inputs.apic_mode) {
        (None, _) => v(Answer::Unknown, "CPUID not read (offline input)"),
        (Some(false), _) => v(Answer::No, "CPUID.01H:ECX[21] clear: no x2APIC"),
        (Some(true), Some(ApicMode::X2Apic)) => v(
            Answer::Yes,
            "x2APIC supported and enabled (IA32_APIC_BASE.EXTD)",
        ),
        (Some(true), Some(_)) => v(
            Answer::Yes,
            "x2APIC supported (CPUID.01H:ECX[21]); Linux runs the APIC in xAPIC mode",
        ),
        (Some(true), None) => v(Answer::Yes, "x2APIC supported (CPUID.01H:ECX[21])"),
    }
}

fn tsc(inputs: &Inputs) -> Verdict {
    let Some(cpu) = inputs.cpu else {
        return v(Answer::Unknown, "CPUID not read (offline input)");
    };
    if !cpu.invariant_tsc {
        return v(
            Answer::No,
            "no invariant TSC (CPUID.80000007H:EDX[8]): its rate may change with P- and C-states",
        );
    }
    let linux = inputs.linux.unwrap_or_default();
    if linux.tsc_available == Some(false) {
        return v(
            Answer::No,
            "Linux removed tsc from the available clocksources: it found the TSC unstable or unsynchronised",
        );
    }
    if cpu.hypervisor.is_some() {
        return v(
            Answer::Unknown,
            "invariant TSC reported, but under a hypervisor: the TSC is what the host presents; trust it only if the host guarantees a stable, synchronised TSC",
        );
    }
    match linux.clocksource_tsc {
        Some(true) => v(
            Answer::Yes,
            "invariant TSC and Linux uses it as its clocksource (synchronised across CPUs)",
        ),
        Some(false) => v(
            Answer::Unknown,
            "invariant TSC, but Linux's current clocksource is not tsc",
        ),
        None => v(
            Answer::Yes,
            "invariant TSC (synchronisation across CPUs not checked)",
        ),
    }
}

fn pmu(inputs: &Inputs) -> PmuVerdict {
    let tsx_state = inputs.tsx_force_abort;
    let tsx = match tsx_state {
        None => v(Answer::Unknown, "CPUID not read"),
        Some(TsxForceAbort::NotEnumerated) => v(
            Answer::No,
            "TSX_FORCE_ABORT not enumerated (CPUID.07H.0:EDX[13]): TSX does not take a counter",
        ),
        Some(TsxForceAbort::ForceAbort) => v(
            Answer::No,
            "MSR 0x10F RTM_FORCE_ABORT=1: RTM aborts, PMC3 belongs to perf",
        ),
        Some(TsxForceAbort::Pmc3ForTsx) => v(
            Answer::Yes,
            "MSR 0x10F RTM_FORCE_ABORT=0: PMC3 is reserved for TSX, perf has one counter fewer",
        ),
        Some(TsxForceAbort::Unknown) => v(
            Answer::Unknown,
            "TSX_FORCE_ABORT enumerated but MSR 0x10F was not read",
        ),
    };
    let mut out = PmuVerdict {
        held_now: None,
        would_free: None,
        held_counter: None,
        gp_usable: None,
        reason: "",
        tsx,
    };
    let Some(cpu) = inputs.cpu else {
        out.reason = "CPUID and MSRs describe the probing machine, not an offline input";
        return out;
    };
    out.gp_usable = Some(
        tsx_state
            .unwrap_or(TsxForceAbort::NotEnumerated)
            .usable_gp(cpu.pmu.gp_counters),
    );
    if cpu.pmu.kind == PmuKind::None {
        out.held_now = Some(0);
        out.would_free = Some(0);
        out.reason = "CPUID enumerates no PMU counters: the perf NMI watchdog cannot run here (Linux uses the buddy detector or none)";
        return out;
    }
    let nmi_watchdog = inputs.linux.and_then(|l| l.nmi_watchdog);
    match (inputs.pmu_usage, nmi_watchdog) {
        (_, Some(false)) => {
            out.held_now = Some(0);
            out.would_free = Some(0);
            out.reason = "nmi_watchdog is 0: the hard-lockup detector is off and holds no counter (and nothing is watching)";
        }
        (Some(u), _) => {
            let n = u.watchdog_like().min(1);
            out.held_now = Some(n);
            out.would_free = Some(n);
            out.held_counter = if u.fixed_cycles_pmi & 2 != 0 {
                Some(HeldCounter::Fixed(1))
            } else {
                (0..32u8)
                    .find(|i| u.gp_cycles_pmi.checked_shr(u32::from(*i)).unwrap_or(0) & 1 != 0)
                    .map(HeldCounter::General)
            };
            out.reason = if n == 0 {
                "no counter counts cycles with an overflow interrupt: the perf NMI watchdog holds none (buddy detector, or off)"
            } else if nmi_watchdog == Some(true) {
                "nmi_watchdog is 1 and a cycles counter with PMI is programmed: the perf NMI watchdog holds it on every CPU"
            } else {
                "a cycles counter with PMI is programmed (probably the perf NMI watchdog)"
            };
        }
        (None, Some(true)) => {
            out.reason = "nmi_watchdog is 1; the counter MSRs were not read, so whether the perf watchdog (one cycles counter per CPU) or the buddy detector (none) runs is unconfirmed";
        }
        (None, None) => {
            out.reason = "neither the watchdog setting nor the counter MSRs were read";
        }
    }
    out
}

/// Computes every verdict.
pub fn evaluate(inputs: &Inputs) -> Verdicts {
    let hpet_usable = hpet_usable(inputs);
    let (timer, timer_reason) = match (hpet_usable.answer, inputs.hpet) {
        (Answer::No, _) | (_, None) => (None, "no usable HPET"),
        (_, Some(h)) => choose_timer(&h),
    };
    let (high_apic_ids, limited) = high_apic_ids(inputs);
    let mut routes = if hpet_usable.answer == Answer::No {
        let none = v(Answer::No, "no usable HPET");
        Routes {
            fsb_direct: none,
            fsb_remapped: none,
            fsb_remapped_source_id: inputs.iommu.hpet_source_id,
            ioapic: none,
            ioapic_inputs: 0,
        }
    } else {
        routes(inputs, timer)
    };
    if timer.is_none() && routes.fsb_direct.answer == Answer::No {
        routes.fsb_remapped_source_id = inputs.iommu.hpet_source_id;
    }
    let policies = policies(inputs, &routes, limited);
    let route = any_route(&routes);
    let watchdog_possible = match (hpet_usable.answer, route) {
        (Answer::No, _) => v(Answer::No, hpet_usable.reason),
        (_, Answer::No) => v(Answer::No, "the HPET has no NMI delivery route"),
        (Answer::Yes, Answer::Yes) => v(
            Answer::Yes,
            "a usable HPET timer with an NMI delivery route",
        ),
        _ => v(
            Answer::Unknown,
            "an HPET is described but its registers were not read: possible, not confirmed",
        ),
    };
    Verdicts {
        hpet_usable,
        timer,
        timer_reason,
        routes,
        policies,
        high_apic_ids,
        x2apic: x2apic(inputs),
        tsc: tsc(inputs),
        pmu: pmu(inputs),
        watchdog_possible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpet::regs;

    const GCAP_OK: u64 = (10_000_000u64 << 32) | 0x8086_a201; // 100 MHz, 3 timers, 64-bit
    fn fsb_timer() -> TimerCapabilities {
        TimerCapabilities(regs::TN_FSB_INT_DEL_CAP | regs::TN_PER_INT_CAP | (0x00f0_0004u64 << 32))
    }
    fn ioapic_timer() -> TimerCapabilities {
        TimerCapabilities(0x00f0_0004u64 << 32)
    }
    fn inputs<'a>(timers: &'a [TimerCapabilities], iommu: IommuFacts, max_id: u32) -> Inputs<'a> {
        Inputs {
            hpet: Some(HpetFacts {
                general: Some(GeneralCapabilities(GCAP_OK)),
                timers,
                linux_uses: 0,
            }),
            iommu,
            cpu: None,
            apic_mode: None,
            max_apic_id: Some(max_id),
            cpus: Some(4),
            pmu_usage: None,
            tsx_force_abort: None,
            linux: None,
        }
    }
    const VTD: IommuFacts = IommuFacts {
        kind: IommuKind::IntelVtd,
        interrupt_remapping: true,
        extended_interrupt_mode: Some(true),
        hpet_source_id: Some(0xf0f8),
        x2apic_opt_out: false,
    };

    #[test]
    fn no_hpet() {
        let mut i = inputs(&[], IommuFacts::NONE, 3);
        i.hpet = None;
        let v = evaluate(&i);
        assert_eq!(v.watchdog_possible.answer, Answer::No);
        assert_eq!(v.policies.round_robin.reason, "no HPET NMI route");
        assert_eq!(v.policies.buddy.answer, Answer::Yes);
    }

    #[test]
    fn all_ones_registers_are_not_usable() {
        let mut i = inputs(&[], IommuFacts::NONE, 3);
        i.hpet = Some(HpetFacts {
            general: Some(GeneralCapabilities(u64::MAX)),
            timers: &[],
            linux_uses: 0,
        });
        assert_eq!(evaluate(&i).watchdog_possible.answer, Answer::No);
    }

    #[test]
    fn fsb_timer_prefers_free_non_legacy() {
        let timers = [
            fsb_timer(),
            fsb_timer(),
            ioapic_timer(),
            fsb_timer(),
            fsb_timer(),
        ];
        let mut i = inputs(&timers, IommuFacts::NONE, 3);
        let v = evaluate(&i);
        assert_eq!(v.timer, Some(3));
        assert_eq!(v.watchdog_possible.answer, Answer::Yes);
        assert_eq!(v.routes.fsb_direct.answer, Answer::Yes);
        assert_eq!(v.routes.fsb_remapped.answer, Answer::No);
        assert_eq!(v.policies.round_robin.answer, Answer::Yes);
        // Linux uses timer 3: take 4.
        i.hpet = Some(HpetFacts {
            general: Some(GeneralCapabilities(GCAP_OK)),
            timers: &timers,
            linux_uses: 1 << 3,
        });
        assert_eq!(evaluate(&i).timer, Some(4));
    }

    #[test]
    fn ioapic_only() {
        let timers = [ioapic_timer(), ioapic_timer(), ioapic_timer()];
        let v = evaluate(&inputs(&timers, VTD, 3));
        assert_eq!(v.timer, Some(2));
        assert_eq!(v.routes.fsb_direct.answer, Answer::No);
        assert_eq!(v.routes.ioapic.answer, Answer::Yes);
        assert_eq!(v.routes.ioapic_inputs, 0x00f0_0004);
        // The I/O APIC route can be switched from NMI context: the kernel owns that I/O APIC.
        assert_eq!(v.policies.round_robin.answer, Answer::Yes);
        assert_eq!(v.policies.broadcast.answer, Answer::Yes);
    }

    #[test]
    fn remapped_route_needs_the_hpet_scope() {
        let timers = [fsb_timer(), fsb_timer(), fsb_timer()];
        let v = evaluate(&inputs(&timers, VTD, 3));
        assert_eq!(v.routes.fsb_remapped.answer, Answer::Yes);
        assert_eq!(v.routes.fsb_remapped_source_id, Some(0xf0f8));
        let mut no_scope = VTD;
        no_scope.hpet_source_id = None;
        assert_eq!(
            evaluate(&inputs(&timers, no_scope, 3))
                .routes
                .fsb_remapped
                .answer,
            Answer::No
        );
    }

    #[test]
    fn apic_ids_above_255() {
        let timers = [fsb_timer(), fsb_timer(), fsb_timer()];
        assert_eq!(
            evaluate(&inputs(&timers, VTD, 300)).high_apic_ids.answer,
            Answer::Yes
        );
        let mut no_eim = VTD;
        no_eim.extended_interrupt_mode = Some(false);
        let v = evaluate(&inputs(&timers, no_eim, 300));
        assert_eq!(v.high_apic_ids.answer, Answer::No);
        // Without EIM an IRTE's destination is 8 bits: CPUs above 255 cannot be reached.
        assert_eq!(v.policies.round_robin.answer, Answer::No);
        let amd = IommuFacts {
            kind: IommuKind::AmdVi,
            interrupt_remapping: true,
            ..IommuFacts::NONE
        };
        let v = evaluate(&inputs(&timers, amd, 300));
        assert_eq!(v.high_apic_ids.answer, Answer::No);
        assert!(v.high_apic_ids.reason.contains("AMD-Vi"));
        assert_eq!(v.policies.round_robin.answer, Answer::No);
        assert_eq!(v.policies.broadcast.answer, Answer::Yes);
    }

    #[test]
    fn unread_registers_are_unknown_not_no() {
        let mut i = inputs(&[], VTD, 3);
        i.hpet = Some(HpetFacts {
            general: None,
            timers: &[],
            linux_uses: 0,
        });
        let v = evaluate(&i);
        assert_eq!(v.watchdog_possible.answer, Answer::Unknown);
        assert_eq!(v.routes.fsb_remapped.answer, Answer::Unknown);
        assert_eq!(v.policies.chain.answer, Answer::Unknown);
    }
}
