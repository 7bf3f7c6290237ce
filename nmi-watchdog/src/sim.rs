//! A deterministic discrete-event simulator of the machine the watchdog runs on (feature
//! `sim`, host only; the kernel never links it).
//!
//! Modelled, in nanoseconds of simulated time:
//!
//! - **N CPUs**, each with its own clock (sim time plus a per-CPU offset, so that any
//!   comparison of clocks taken on different CPUs shows up as a wrong result), a periodic
//!   LAPIC timer (phase per CPU, period h, optional jitter) whose interrupt calls
//!   [`Watchdog::on_tick`], and interrupt-disabled state: a timer interrupt that comes while
//!   interrupts are off (or while the CPU runs an NMI handler) stays pending, one per vector,
//!   and is taken when interrupts come back on.
//! - **The HPET**: a main counter (64-bit, or 32-bit wrapping at 2^32 ticks, one tick per ns)
//!   and one comparator with equality match. Periodic mode: the hardware adds the period
//!   to the comparator on each match, so expiries come at `first_due + k·period` forever.
//!   One-shot mode: the NMI handler that takes the HPET NMI re-arms it when it returns, by
//!   one of two rules ([`Rearm`]); a comparator written behind the counter matches only after
//!   the counter wraps (32-bit) or never (64-bit). The route ([`Machine::route_hpet_to`])
//!   names the CPU that gets the next expiry's NMI.
//! - **NMI delivery** after a configurable delay (HPET: base + jitter + injected extra; IPI:
//!   base + jitter), and **x86 NMI latching**: while a CPU runs its NMI handler (for a
//!   configurable duration) NMIs are blocked; the first NMI arriving then is latched and
//!   delivered as soon as the handler returns, further ones merge into it.
//! - **Faults**: lockups (interrupts off for good: no more heartbeats, NMIs still taken),
//!   NMI-blocked CPUs (stuck inside an NMI handler: neither), lockup of every CPU, ABBA
//!   deadlocks, interrupt-disabled sections, spurious NMIs (no mailbox posted), extra HPET
//!   delivery delay, dropped HPET NMIs, NMI handlers held for a long time.
//!
//! Not modelled: the duration of the engine's own work (the handler's length is a
//! parameter), caches and memory ordering (the simulation is sequentially consistent: one
//! CPU acts at a time), SMIs, the xAPIC ICR write sequence (the IPIs here are atomic, as
//! x2APIC's single-MSR writes are), interrupt remapping, HPET register access cost (counted,
//! not timed), and the report path out of NMI context (events are recorded at once).
//!
//! Determinism: every random choice comes from a seeded generator ([`Rng`]); events at the
//! same instant are processed in the order they were scheduled.

extern crate std;

use crate::attribution::HpetLiveness;
use crate::detect::CountCheck;
use crate::engine::{CpuIndex, Event, LocalCpu, Machine, SharedCpu, Watchdog};
use crate::policy::Policy;
use crate::timing::{Timing, TimingError};
use core::cell::RefCell;
use core::cmp::Reverse;
use std::collections::BinaryHeap;
use std::vec;
use std::vec::Vec;

/// A small deterministic generator (SplitMix64): same seed, same run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (max + 1)
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.upto(hi.saturating_sub(lo))
    }
}

/// HPET comparator mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpetMode {
    /// The hardware advances the comparator by the period on each match.
    Periodic,
    /// The NMI handler re-arms the comparator when it returns.
    OneShot(Rearm),
}

/// One-shot re-arm rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rearm {
    /// `comparator += period`, no register read: falls behind the counter when the handler
    /// returns after the next due time, and then fires only after a wrap (32-bit) or never.
    FromPrevious,
    /// Reads the main counter and writes the first `previous + k·period` at least
    /// `min_ahead_ns` ahead of it: cannot fall behind, costs one HPET read per expiry.
    CatchUp { min_ahead_ns: u64 },
}

/// Where an NMI came from (as the simulator knows it; the engine must find out itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NmiSource {
    Hpet,
    Ipi,
    Spurious,
}

/// The simulated machine and watchdog configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub policy: Policy,
    pub cpus: u32,
    pub timeout_ns: u64,
    /// The handling/checker/first CPU.
    pub handler: CpuIndex,
    /// Monitored CPUs in rotation order (`None`: all, ascending).
    pub monitored: Option<Vec<CpuIndex>>,
    /// When HPET expiry 0 is due (sim time).
    pub first_due_ns: u64,
    /// Per-CPU phase of the LAPIC timer: the first tick comes at this sim time (default:
    /// spread deterministically over one heartbeat period).
    pub tick_phase_ns: Option<Vec<u64>>,
    /// Each tick comes up to this much late (uniform).
    pub tick_jitter_ns: u64,
    /// Per-CPU clock offsets (a CPU's clock reads sim time + offset).
    pub clock_offset_ns: Option<Vec<u64>>,
    pub hpet_delay_ns: u64,
    pub hpet_jitter_ns: u64,
    pub ipi_delay_ns: u64,
    pub ipi_jitter_ns: u64,
    /// How long an NMI handler runs (blocking NMIs).
    pub nmi_handler_ns: u64,
    pub hpet_mode: HpetMode,
    /// A 32-bit main counter (wraps every 2^32 ns here).
    pub counter_32bit: bool,
    /// The main counter's value at sim time 0.
    pub counter_start: u64,
    /// Run the handling CPU's liveness check on its ticks (HPET policies).
    pub liveness: bool,
    pub seed: u64,
}

impl SimConfig {
    /// Defaults: monitored = all CPUs, expiry 0 at 1 ms, ticks spread over h, 2 µs HPET and
    /// 1 µs IPI delivery, 5 µs NMI handlers, periodic 64-bit HPET, liveness on.
    pub fn new(policy: Policy, cpus: u32, timeout_ns: u64, handler: CpuIndex) -> Self {
        SimConfig {
            policy,
            cpus,
            timeout_ns,
            handler,
            monitored: None,
            first_due_ns: 1_000_000,
            tick_phase_ns: None,
            tick_jitter_ns: 0,
            clock_offset_ns: None,
            hpet_delay_ns: 2_000,
            hpet_jitter_ns: 0,
            ipi_delay_ns: 1_000,
            ipi_jitter_ns: 0,
            nmi_handler_ns: 5_000,
            hpet_mode: HpetMode::Periodic,
            counter_32bit: false,
            counter_start: 0,
            liveness: true,
            seed: 1,
        }
    }
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The CPU spins with interrupts disabled from `at` on (NMIs still taken).
    Lockup { cpu: CpuIndex, at: u64 },
    /// The CPU is stuck with NMIs blocked from `at` on (as inside an NMI handler).
    NmiBlocked { cpu: CpuIndex, at: u64 },
    /// Interrupts off on `cpu` during `[at, at + len)`; a pending tick is taken at the end.
    IrqOff { cpu: CpuIndex, at: u64, len: u64 },
    /// An NMI with no mailbox posted arrives at `cpu` at `at`.
    SpuriousNmi { cpu: CpuIndex, at: u64 },
    /// The next NMI handler `cpu` enters at or after `at` runs for `len`.
    HoldNmi { cpu: CpuIndex, at: u64, len: u64 },
    /// HPET NMIs fired in `[from, to)` arrive `extra` late.
    HpetDelay { from: u64, to: u64, extra: u64 },
    /// HPET NMIs fired in `[from, to)` are lost.
    HpetDrop { from: u64, to: u64 },
    /// Some other CPU posts `cpu`'s mailbox at `at` and sends it an NMI IPI (arriving after
    /// the IPI delay): a watchdog IPI the policy itself would not send, to force merges.
    Ipi { cpu: CpuIndex, at: u64 },
}

/// NMI statistics of one CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NmiCounts {
    /// NMIs that arrived, by source.
    pub hpet: u64,
    pub ipi: u64,
    pub spurious: u64,
    /// Arrivals absorbed into an NMI already latched (x86 keeps one).
    pub merged: u64,
    /// Arrivals still blocked at the end (the CPU is stuck with NMIs blocked).
    pub blocked: u64,
    /// Handler entries, and how the engine classified them.
    pub taken: u64,
    pub claimed: u64,
    pub swallowed: u64,
    pub unknown: u64,
    /// Entries whose NMI had only spurious sources.
    pub taken_spurious_only: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Tick { cpu: CpuIndex },
    HpetFire,
    Arrive { cpu: CpuIndex, src: NmiSource },
    NmiExit { cpu: CpuIndex },
    IrqOn { cpu: CpuIndex },
    Fault { index: usize },
}

/// Sources of one pending/latched NMI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sources {
    hpet: bool,
    ipi: bool,
    spurious: bool,
}

impl Sources {
    fn add(&mut self, src: NmiSource) {
        match src {
            NmiSource::Hpet => self.hpet = true,
            NmiSource::Ipi => self.ipi = true,
            NmiSource::Spurious => self.spurious = true,
        }
    }
    fn only_spurious(&self) -> bool {
        self.spurious && !self.hpet && !self.ipi
    }
}

#[derive(Debug, Clone, Default)]
struct CpuState {
    /// Interrupts off for good (lockup).
    locked: bool,
    /// Stuck with NMIs blocked.
    nmi_blocked: bool,
    /// End of the current interrupt-disabled section.
    irq_off_until: u64,
    tick_pending: bool,
    /// Inside an NMI handler.
    in_nmi: bool,
    latched: Option<Sources>,
    /// The handler being run took an HPET NMI (one-shot re-arm at exit).
    handling_hpet: bool,
    hold: Option<(u64, u64)>,
    ticks: u64,
    /// Index of the last tick scheduled.
    tick_index: u64,
}

/// What the engine asked for during one call.
#[derive(Debug, Clone, Copy)]
enum Action {
    Nmi(CpuIndex),
    AllButSelf,
    Route(CpuIndex),
}

struct SimMachine {
    actions: RefCell<Vec<Action>>,
}

impl Machine for SimMachine {
    fn send_nmi(&self, cpu: CpuIndex) {
        self.actions.borrow_mut().push(Action::Nmi(cpu));
    }
    fn send_nmi_all_but_self(&self) {
        self.actions.borrow_mut().push(Action::AllButSelf);
    }
    fn route_hpet_to(&self, cpu: CpuIndex) {
        self.actions.borrow_mut().push(Action::Route(cpu));
    }
}

/// The simulator.
pub struct Sim {
    pub cfg: SimConfig,
    pub timing: Timing,
    monitored: Vec<CpuIndex>,
    shared: Vec<SharedCpu>,
    local: Vec<LocalCpu>,
    /// The checker's table (`remote`).
    remote_checks: Vec<CountCheck>,
    /// Each CPU's check of its buddy (`buddy`).
    buddy_checks: Vec<CountCheck>,
    liveness: HpetLiveness,
    cpu: Vec<CpuState>,
    offset: Vec<u64>,
    phase: Vec<u64>,
    faults: Vec<Fault>,
    queue: BinaryHeap<Reverse<(u64, u64, Kind)>>,
    seq: u64,
    now: u64,
    rng: Rng,
    // The HPET.
    route: CpuIndex,
    /// Comparator value (counter units) and the sim time it matches next, if ever.
    comparator: u64,
    next_fire: Option<u64>,
    /// Expiries fired so far, and register accesses after arming.
    pub hpet_fires: u64,
    pub hpet_reads: u64,
    pub hpet_writes: u64,
    // Records.
    events: Vec<(u64, Event)>,
    counts: Vec<NmiCounts>,
}

impl Sim {
    /// A machine with the watchdog armed at sim time 0.
    pub fn new(cfg: SimConfig) -> Result<Sim, TimingError> {
        let n = cfg.cpus as usize;
        let monitored = cfg
            .monitored
            .clone()
            .unwrap_or_else(|| (0..cfg.cpus).collect());
        let timing = Timing::derive(cfg.policy, cfg.timeout_ns, monitored.len() as u32)?;
        let h = timing.heartbeat_ns;
        let phase = cfg
            .tick_phase_ns
            .clone()
            .unwrap_or_else(|| (0..n as u64).map(|i| (i * 7919 * h / 97) % h).collect());
        let offset = cfg.clock_offset_ns.clone().unwrap_or_else(|| vec![0; n]);
        let shared: Vec<SharedCpu> = (0..n).map(|_| SharedCpu::new()).collect();
        let local = {
            let w = Watchdog {
                timing,
                monitored: &monitored,
                handler: cfg.handler,
                shared: &shared,
            };
            (0..n)
                .map(|c| w.local_for(c as CpuIndex, cfg.first_due_ns + offset[c]))
                .collect()
        };
        let mut sim = Sim {
            timing,
            monitored,
            shared,
            local,
            remote_checks: vec![CountCheck::new(); n],
            buddy_checks: vec![CountCheck::new(); n],
            liveness: HpetLiveness::new(),
            cpu: vec![CpuState::default(); n],
            offset,
            phase,
            faults: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            rng: Rng::new(cfg.seed),
            route: cfg.handler,
            comparator: 0,
            next_fire: None,
            hpet_fires: 0,
            hpet_reads: 0,
            hpet_writes: 0,
            events: Vec::new(),
            counts: vec![NmiCounts::default(); n],
            cfg,
        };
        for c in 0..n {
            let first = sim.phase[c] + sim.tick_jitter();
            sim.push(first, Kind::Tick { cpu: c as CpuIndex });
        }
        if sim.timing.hpet_period_ns.is_some() {
            // Arming: the comparator is written once (counter units = ns here).
            sim.comparator = sim.counter_at(sim.cfg.first_due_ns);
            sim.next_fire = Some(sim.cfg.first_due_ns);
            sim.push(sim.cfg.first_due_ns, Kind::HpetFire);
        }
        Ok(sim)
    }

    /// Adds a fault (before or during the run; faults in the past take effect at once).
    pub fn inject(&mut self, fault: Fault) {
        let at = match fault {
            Fault::Lockup { at, .. }
            | Fault::NmiBlocked { at, .. }
            | Fault::IrqOff { at, .. }
            | Fault::SpuriousNmi { at, .. }
            | Fault::HoldNmi { at, .. }
            | Fault::Ipi { at, .. } => at,
            Fault::HpetDelay { .. } | Fault::HpetDrop { .. } => 0,
        };
        let index = self.faults.len();
        self.faults.push(fault);
        self.push(at.max(self.now), Kind::Fault { index });
    }

    /// Every CPU locks at `at`.
    pub fn lockup_all(&mut self, at: u64) {
        for c in 0..self.cfg.cpus {
            self.inject(Fault::Lockup { cpu: c, at });
        }
    }

    /// `a` and `b` deadlock (ABBA with interrupts off) at `at`: both spin with interrupts
    /// disabled, still taking NMIs.
    pub fn deadlock(&mut self, a: CpuIndex, b: CpuIndex, at: u64) {
        self.inject(Fault::Lockup { cpu: a, at });
        self.inject(Fault::Lockup { cpu: b, at });
    }

    /// Runs until sim time `end` (inclusive).
    pub fn run_until(&mut self, end: u64) {
        while let Some(&Reverse((t, _, _))) = self.queue.peek() {
            if t > end {
                break;
            }
            let Reverse((t, _, kind)) = self.queue.pop().unwrap();
            self.now = t;
            self.step(kind);
        }
        self.now = self.now.max(end);
    }

    /// Every event the engine reported, with the sim time it was reported at.
    pub fn events(&self) -> &[(u64, Event)] {
        &self.events
    }

    /// Lockup reports: (sim time, cpu, detected_by).
    pub fn lockups(&self) -> Vec<(u64, CpuIndex, CpuIndex)> {
        self.events
            .iter()
            .filter_map(|&(t, e)| match e {
                Event::Lockup {
                    cpu, detected_by, ..
                } => Some((t, cpu, detected_by)),
                _ => None,
            })
            .collect()
    }

    /// NMI statistics of `cpu` (blocked arrivals counted as of now).
    pub fn counts(&self, cpu: CpuIndex) -> NmiCounts {
        self.counts[cpu as usize]
    }

    /// Heartbeats `cpu` has taken.
    pub fn ticks(&self, cpu: CpuIndex) -> u64 {
        self.cpu[cpu as usize].ticks
    }

    /// Whether `cpu` has an NMI latched (blocked, not yet taken).
    pub fn nmi_latched(&self, cpu: CpuIndex) -> bool {
        self.cpu[cpu as usize].latched.is_some()
    }

    /// The current HPET route.
    pub fn route(&self) -> CpuIndex {
        self.route
    }

    fn push(&mut self, t: u64, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, kind)));
    }

    fn clock(&self, cpu: CpuIndex) -> u64 {
        self.now + self.offset[cpu as usize]
    }

    fn tick_jitter(&mut self) -> u64 {
        let j = self.cfg.tick_jitter_ns;
        if j == 0 {
            0
        } else {
            self.rng.upto(j)
        }
    }

    fn counter_mask(&self) -> u64 {
        if self.cfg.counter_32bit {
            u32::MAX as u64
        } else {
            u64::MAX
        }
    }

    fn counter_at(&self, t: u64) -> u64 {
        self.cfg.counter_start.wrapping_add(t) & self.counter_mask()
    }

    /// The first sim time after `after` at which the counter equals `value`.
    fn match_time(&self, value: u64, after: u64) -> Option<u64> {
        let now = self.counter_at(after);
        let ahead = value.wrapping_sub(now) & self.counter_mask();
        if ahead == 0 {
            // Equal right now: the match happened already; next time is after a full wrap.
            if self.cfg.counter_32bit {
                return after.checked_add(1u64 << 32);
            }
            return None;
        }
        after.checked_add(ahead)
    }

    fn step(&mut self, kind: Kind) {
        match kind {
            Kind::Tick { cpu } => self.tick(cpu),
            Kind::HpetFire => self.hpet_fire(),
            Kind::Arrive { cpu, src } => self.arrive(cpu, src),
            Kind::NmiExit { cpu } => self.nmi_exit(cpu),
            Kind::IrqOn { cpu } => {
                let c = &mut self.cpu[cpu as usize];
                if c.irq_off_until <= self.now && c.tick_pending && !c.locked && !c.in_nmi {
                    c.tick_pending = false;
                    self.take_tick(cpu);
                }
            }
            Kind::Fault { index } => self.apply_fault(index),
        }
    }

    fn apply_fault(&mut self, index: usize) {
        match self.faults[index] {
            Fault::Lockup { cpu, .. } => self.cpu[cpu as usize].locked = true,
            Fault::NmiBlocked { cpu, .. } => {
                let c = &mut self.cpu[cpu as usize];
                c.locked = true;
                c.nmi_blocked = true;
            }
            Fault::IrqOff { cpu, at, len } => {
                let c = &mut self.cpu[cpu as usize];
                c.irq_off_until = c.irq_off_until.max(at + len);
                self.push(at + len, Kind::IrqOn { cpu });
            }
            Fault::SpuriousNmi { cpu, .. } => self.arrive(cpu, NmiSource::Spurious),
            Fault::HoldNmi { cpu, at, len } => self.cpu[cpu as usize].hold = Some((at, len)),
            Fault::Ipi { cpu, .. } => {
                self.shared[cpu as usize].mailbox.post();
                self.send_ipi(cpu);
            }
            Fault::HpetDelay { .. } | Fault::HpetDrop { .. } => {}
        }
    }

    fn irq_off(&self, cpu: CpuIndex) -> bool {
        let c = &self.cpu[cpu as usize];
        c.locked || c.in_nmi || c.irq_off_until > self.now
    }

    fn tick(&mut self, cpu: CpuIndex) {
        // The next tick of the periodic LAPIC timer.
        let i = cpu as usize;
        let k = self.cpu[i].ticks_scheduled_next();
        let next = self.phase[i] + k * self.timing.heartbeat_ns + self.tick_jitter();
        self.push(next.max(self.now + 1), Kind::Tick { cpu });
        if self.irq_off(cpu) {
            self.cpu[i].tick_pending = true;
        } else {
            self.take_tick(cpu);
        }
    }

    fn take_tick(&mut self, cpu: CpuIndex) {
        let now = self.clock(cpu);
        self.cpu[cpu as usize].ticks += 1;
        let machine = SimMachine {
            actions: RefCell::new(Vec::new()),
        };
        let mut out = Vec::new();
        {
            let w = Watchdog {
                timing: self.timing,
                monitored: &self.monitored,
                handler: self.cfg.handler,
                shared: &self.shared,
            };
            let buddy =
                (self.cfg.policy == Policy::Buddy).then(|| &mut self.buddy_checks[cpu as usize]);
            w.on_tick(cpu, now, buddy, &machine, &mut |e| out.push(e));
            if self.cfg.liveness && cpu == self.cfg.handler && self.cfg.policy.uses_hpet() {
                // Armed one HPET period before expiry 0, on the handler's clock.
                let period = self.timing.hpet_period_ns.unwrap_or(0);
                let armed =
                    self.cfg.first_due_ns.saturating_sub(period) + self.offset[cpu as usize];
                w.check_liveness(cpu, now, armed, &self.liveness, &mut |e| out.push(e));
            }
        }
        self.record(out);
        self.apply_actions(cpu, machine);
    }

    fn hpet_fire(&mut self) {
        if self.next_fire != Some(self.now) {
            return; // a stale schedule (re-armed since)
        }
        self.hpet_fires += 1;
        let period = self.timing.hpet_period_ns.unwrap_or(0);
        match self.cfg.hpet_mode {
            HpetMode::Periodic => {
                self.comparator = self.comparator.wrapping_add(period) & self.counter_mask();
                let next = self.match_time(self.comparator, self.now);
                self.next_fire = next;
                if let Some(t) = next {
                    self.push(t, Kind::HpetFire);
                }
            }
            HpetMode::OneShot(_) => self.next_fire = None,
        }
        let fired = self.now;
        let mut extra = 0;
        for f in &self.faults {
            match *f {
                Fault::HpetDrop { from, to } if (from..to).contains(&fired) => return,
                Fault::HpetDelay { from, to, extra: e } if (from..to).contains(&fired) => {
                    extra += e
                }
                _ => {}
            }
        }
        let jitter = if self.cfg.hpet_jitter_ns > 0 {
            self.rng.upto(self.cfg.hpet_jitter_ns)
        } else {
            0
        };
        let at = fired + self.cfg.hpet_delay_ns + jitter + extra;
        let cpu = self.route;
        self.push(
            at,
            Kind::Arrive {
                cpu,
                src: NmiSource::Hpet,
            },
        );
    }

    fn arrive(&mut self, cpu: CpuIndex, src: NmiSource) {
        let i = cpu as usize;
        let cnt = &mut self.counts[i];
        match src {
            NmiSource::Hpet => cnt.hpet += 1,
            NmiSource::Ipi => cnt.ipi += 1,
            NmiSource::Spurious => cnt.spurious += 1,
        }
        let c = &mut self.cpu[i];
        if c.in_nmi || c.nmi_blocked {
            match c.latched.as_mut() {
                Some(l) => {
                    l.add(src);
                    cnt.merged += 1;
                }
                None => {
                    let mut l = Sources::default();
                    l.add(src);
                    c.latched = Some(l);
                }
            }
            if c.nmi_blocked {
                cnt.blocked += 1;
            }
            return;
        }
        let mut s = Sources::default();
        s.add(src);
        self.enter_nmi(cpu, s);
    }

    fn enter_nmi(&mut self, cpu: CpuIndex, sources: Sources) {
        let i = cpu as usize;
        let now = self.clock(cpu);
        let mut len = self.cfg.nmi_handler_ns;
        if let Some((at, hold)) = self.cpu[i].hold {
            if self.now >= at {
                len = hold;
                self.cpu[i].hold = None;
            }
        }
        {
            let c = &mut self.cpu[i];
            c.in_nmi = true;
            c.handling_hpet = sources.hpet;
        }
        let machine = SimMachine {
            actions: RefCell::new(Vec::new()),
        };
        let mut out = Vec::new();
        {
            let w = Watchdog {
                timing: self.timing,
                monitored: &self.monitored,
                handler: self.cfg.handler,
                shared: &self.shared,
            };
            let checks = (self.cfg.policy == Policy::Remote).then_some(&mut self.remote_checks[..]);
            w.on_nmi(
                cpu,
                now,
                &mut self.local[i],
                checks,
                Some(&self.liveness),
                &machine,
                &mut |e| out.push(e),
            );
        }
        let cnt = &mut self.counts[i];
        cnt.taken += 1;
        if sources.only_spurious() {
            cnt.taken_spurious_only += 1;
        }
        let mut classified = false;
        for e in &out {
            match e {
                Event::UnknownNmi { cpu: c } if *c == cpu => {
                    cnt.unknown += 1;
                    classified = true;
                }
                Event::SwallowedNmi { cpu: c } if *c == cpu => {
                    cnt.swallowed += 1;
                    classified = true;
                }
                _ => {}
            }
        }
        if !classified {
            cnt.claimed += 1;
        }
        self.record(out);
        self.apply_actions(cpu, machine);
        self.push(self.now + len.max(1), Kind::NmiExit { cpu });
    }

    fn nmi_exit(&mut self, cpu: CpuIndex) {
        let i = cpu as usize;
        if self.cpu[i].nmi_blocked {
            return; // stuck inside: never returns
        }
        let now = self.clock(cpu);
        self.local[i].attribution.handler_done(now);
        self.cpu[i].in_nmi = false;
        if self.cpu[i].handling_hpet {
            self.cpu[i].handling_hpet = false;
            self.rearm_one_shot();
        }
        if let Some(l) = self.cpu[i].latched.take() {
            // The latched NMI is delivered as soon as the handler returns.
            self.enter_nmi(cpu, l);
            return;
        }
        if self.cpu[i].tick_pending && !self.irq_off(cpu) {
            self.cpu[i].tick_pending = false;
            self.take_tick(cpu);
        }
    }

    fn rearm_one_shot(&mut self) {
        let HpetMode::OneShot(rule) = self.cfg.hpet_mode else {
            return;
        };
        let Some(period) = self.timing.hpet_period_ns else {
            return;
        };
        if self.next_fire.is_some() {
            return; // already armed (a merged NMI re-armed it)
        }
        let mask = self.counter_mask();
        let value = match rule {
            Rearm::FromPrevious => self.comparator.wrapping_add(period) & mask,
            Rearm::CatchUp { min_ahead_ns } => {
                self.hpet_reads += 1;
                let counter = self.counter_at(self.now);
                let mut v = self.comparator.wrapping_add(period) & mask;
                // Behind (or too close): skip whole periods, so the schedule stays on
                // `first_due + k·period`.
                while (v.wrapping_sub(counter) & mask) < min_ahead_ns
                    || (v.wrapping_sub(counter) & mask) > (mask / 2)
                {
                    v = v.wrapping_add(period) & mask;
                }
                v
            }
        };
        self.hpet_writes += 1;
        self.comparator = value;
        self.next_fire = self.match_time(value, self.now);
        if let Some(t) = self.next_fire {
            self.push(t, Kind::HpetFire);
        }
    }

    fn apply_actions(&mut self, from: CpuIndex, machine: SimMachine) {
        for a in machine.actions.into_inner() {
            match a {
                Action::Nmi(to) => self.send_ipi(to),
                Action::AllButSelf => {
                    for to in 0..self.cfg.cpus {
                        if to != from {
                            self.send_ipi(to);
                        }
                    }
                }
                Action::Route(to) => self.route = to,
            }
        }
    }

    fn send_ipi(&mut self, to: CpuIndex) {
        let j = if self.cfg.ipi_jitter_ns > 0 {
            self.rng.upto(self.cfg.ipi_jitter_ns)
        } else {
            0
        };
        let at = self.now + self.cfg.ipi_delay_ns + j;
        self.push(
            at,
            Kind::Arrive {
                cpu: to,
                src: NmiSource::Ipi,
            },
        );
    }

    fn record(&mut self, out: Vec<Event>) {
        for e in out {
            self.events.push((self.now, e));
        }
    }
}

impl CpuState {
    /// Index of the next tick to schedule (ticks are scheduled one at a time).
    fn ticks_scheduled_next(&mut self) -> u64 {
        self.tick_index += 1;
        self.tick_index
    }
}
