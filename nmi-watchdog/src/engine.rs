//! The watchdog engine: what each CPU does on its timer tick and on an NMI, per policy.
//!
//! The engine owns no memory. The kernel (or the simulator) provides:
//!
//! - one [`SharedCpu`] per logical CPU: what other CPUs read (the heartbeat count) or write
//!   (the IPI mailbox, the capture request), all single atomic words;
//! - one [`LocalCpu`] per CPU, touched only by that CPU's own NMI handler (NMIs do not nest),
//!   passed as `&mut`;
//! - the checker's [`CountCheck`] table (`remote`) or each CPU's buddy check (`buddy`);
//! - a [`Machine`]: NMI IPIs and the HPET route, each callable from NMI context.
//!
//! Findings leave through a callback (`FnMut(Event)`), so the NMI path allocates nothing and
//! never waits; the kernel's callback writes them to a lock-free per-CPU ring.

use crate::attribution::{Attributed, Attribution, ExpirySchedule, HpetLiveness, IpiMailbox};
use crate::detect::{CountCheck, Finding, Heartbeat, SelfCheck};
use crate::policy::Policy;
use crate::timing::Timing;
use core::sync::atomic::{AtomicBool, Ordering};

/// A logical CPU index (MADT order).
pub type CpuIndex = u32;

/// What the watchdog asks of the machine. Every method is called from NMI context and must
/// take no lock, allocate nothing, never fault and never wait on the console.
pub trait Machine {
    /// Sends an NMI IPI to `cpu` (its mailbox was posted just before).
    fn send_nmi(&self, cpu: CpuIndex);
    /// Sends an NMI IPI to every CPU but the caller (their mailboxes were posted).
    fn send_nmi_all_but_self(&self);
    /// Points the HPET's NMI route at `cpu` for its next expiry (`round-robin`).
    fn route_hpet_to(&self, cpu: CpuIndex);
}

/// Per-CPU state shared with other CPUs.
#[derive(Debug, Default)]
pub struct SharedCpu {
    pub heartbeat: Heartbeat,
    pub mailbox: IpiMailbox,
    /// Set by a checker that found this CPU locked and wants its registers.
    pub capture_requested: AtomicBool,
}

impl SharedCpu {
    pub const fn new() -> Self {
        Self {
            heartbeat: Heartbeat::new(),
            mailbox: IpiMailbox::new(),
            capture_requested: AtomicBool::new(false),
        }
    }
}

/// Per-CPU state only the CPU's own NMI handler touches.
#[derive(Debug, Clone, Copy)]
pub struct LocalCpu {
    pub attribution: Attribution,
    pub self_check: SelfCheck,
}

/// What the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `cpu`'s heartbeat has not advanced for `stalled_ns`; found by `detected_by`.
    /// When `cpu == detected_by` the detecting CPU is the locked one and its interrupted
    /// registers are the lockup's.
    Lockup {
        cpu: CpuIndex,
        stalled_ns: u64,
        detected_by: CpuIndex,
    },
    /// This CPU was asked for its registers by the checker that found it locked: the
    /// interrupted context of this NMI is the lockup's.
    Capture { cpu: CpuIndex },
    /// An NMI the watchdog claimed: its HPET expiry (if it was one) and the NMI IPIs it
    /// stood for (two can merge into one NMI).
    ClaimedNmi {
        cpu: CpuIndex,
        hpet: bool,
        ipis: u64,
    },
    /// An NMI the watchdog did not claim.
    UnknownNmi { cpu: CpuIndex },
    /// A second NMI of two causes already handled together.
    SwallowedNmi { cpu: CpuIndex },
    /// A second NMI within the window of the HPET expiry already claimed.
    DuplicateNmi { cpu: CpuIndex },
    /// The HPET NMIs stopped arriving (noticed outside NMI context).
    HpetStalled { cpu: CpuIndex, silent_ns: u64 },
}

/// A watchdog configuration over the machine's CPUs.
#[derive(Debug, Clone, Copy)]
pub struct Watchdog<'a> {
    pub timing: Timing,
    /// Monitored CPUs, in rotation order.
    pub monitored: &'a [CpuIndex],
    /// The handling CPU (`broadcast`), checker (`remote`) or first CPU (`chain`,
    /// `round-robin`); ignored by `buddy`.
    pub handler: CpuIndex,
    /// Shared state, indexed by logical CPU.
    pub shared: &'a [SharedCpu],
}

impl<'a> Watchdog<'a> {
    fn position(&self, cpu: CpuIndex) -> Option<usize> {
        self.monitored.iter().position(|&c| c == cpu)
    }

    /// The monitored CPU after `cpu` in rotation order (wrapping).
    pub fn next_after(&self, cpu: CpuIndex) -> Option<CpuIndex> {
        let i = self.position(cpu)?;
        self.monitored.get((i + 1) % self.monitored.len()).copied()
    }

    /// The schedule of HPET NMIs `cpu` receives, for an HPET armed so that expiry 0 is due
    /// at `first_due_ns` on the handling CPU's clock (the kernel arms it so; under every policy
    /// the receiving CPU's clock is compared only with its own schedule).
    pub fn hpet_schedule(&self, cpu: CpuIndex, first_due_ns: u64) -> Option<ExpirySchedule> {
        let hpet_period = self.timing.hpet_period_ns?;
        match self.timing.policy {
            Policy::Broadcast | Policy::Chain | Policy::Remote => {
                (cpu == self.handler).then_some(ExpirySchedule {
                    first_ns: first_due_ns,
                    period_ns: hpet_period,
                })
            }
            Policy::RoundRobin => {
                // The route starts at the handler and moves one CPU per expiry.
                let start = self.position(self.handler)?;
                let me = self.position(cpu)?;
                let n = self.monitored.len();
                let offset = ((me + n - start) % n) as u64;
                Some(ExpirySchedule {
                    first_ns: first_due_ns.checked_add(offset.checked_mul(hpet_period)?)?,
                    period_ns: self.timing.check_period_ns,
                })
            }
            Policy::Buddy => None,
        }
    }

    /// Fresh per-CPU NMI state for `cpu`.
    pub fn local_for(&self, cpu: CpuIndex, first_due_ns: u64) -> LocalCpu {
        LocalCpu {
            attribution: Attribution::new(
                self.hpet_schedule(cpu, first_due_ns),
                self.timing.window_ns,
            ),
            self_check: SelfCheck::new(),
        }
    }

    /// The CPU's timer interrupt: advance its heartbeat. Under `buddy`, also check the next
    /// monitored CPU through `buddy` (this CPU's own count check of it).
    pub fn on_tick(
        &self,
        me: CpuIndex,
        now_ns: u64,
        buddy: Option<&mut CountCheck>,
        machine: &impl Machine,
        events: &mut impl FnMut(Event),
    ) {
        let Some(shared) = self.shared.get(me as usize) else {
            return;
        };
        shared.heartbeat.beat(now_ns);
        if self.timing.policy != Policy::Buddy {
            return;
        }
        let (Some(check), Some(next)) = (buddy, self.next_after(me)) else {
            return;
        };
        if next == me {
            return;
        }
        if let Some(target) = self.shared.get(next as usize) {
            self.count_check(me, next, target, now_ns, check, machine, events);
        }
    }

    /// Outside NMI context on the handling CPU (one CPU only, on its own clock): whether the
    /// HPET NMIs stopped; `silent_ns` is how long no new one was seen.
    pub fn check_liveness(
        &self,
        me: CpuIndex,
        now_ns: u64,
        armed_ns: u64,
        liveness: &HpetLiveness,
        events: &mut impl FnMut(Event),
    ) {
        let Some(period) = self.timing.hpet_period_ns else {
            return;
        };
        let silent_ns = liveness.silence_ns(now_ns, armed_ns);
        if silent_ns > period.saturating_mul(2) {
            events(Event::HpetStalled { cpu: me, silent_ns });
        }
    }

    /// The NMI handler. `checks` is the checker's table (indexed by logical CPU) under
    /// `remote`, `None` otherwise. Returns whether the NMI was the watchdog's (claimed or
    /// swallowed); an unknown NMI must be passed on by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn on_nmi(
        &self,
        me: CpuIndex,
        now_ns: u64,
        local: &mut LocalCpu,
        checks: Option<&mut [CountCheck]>,
        liveness: Option<&HpetLiveness>,
        machine: &impl Machine,
        events: &mut impl FnMut(Event),
    ) -> bool {
        let Some(shared) = self.shared.get(me as usize) else {
            return false;
        };
        let claim = match local.attribution.attribute(now_ns, shared.mailbox.posted()) {
            Attributed::Claimed(claim) => {
                events(Event::ClaimedNmi {
                    cpu: me,
                    hpet: claim.hpet.is_some(),
                    ipis: claim.ipis,
                });
                claim
            }
            Attributed::Swallowed => {
                events(Event::SwallowedNmi { cpu: me });
                return true;
            }
            Attributed::Duplicate => {
                events(Event::DuplicateNmi { cpu: me });
                return true;
            }
            Attributed::Unknown => {
                events(Event::UnknownNmi { cpu: me });
                return false;
            }
        };
        if claim.hpet.is_some() {
            if let Some(l) = liveness {
                l.arrived(now_ns);
            }
        }
        if shared.capture_requested.swap(false, Ordering::AcqRel) {
            events(Event::Capture { cpu: me });
        }
        let timeout = self.timing.timeout_ns;
        match self.timing.policy {
            Policy::Broadcast => {
                if claim.hpet.is_some() {
                    // The all-but-self shorthand reaches every CPU, monitored or not: post
                    // every mailbox so that none of them counts the NMI as unknown.
                    for (cpu, s) in self.shared.iter().enumerate() {
                        if cpu != me as usize {
                            s.mailbox.post();
                        }
                    }
                    machine.send_nmi_all_but_self();
                }
                self.self_check(me, now_ns, shared, local, timeout, events);
            }
            Policy::RoundRobin => {
                if let Some(k) = claim.hpet {
                    if let Some(next) = self.round_robin_next(me, now_ns, k, local) {
                        machine.route_hpet_to(next);
                    }
                }
                self.self_check(me, now_ns, shared, local, timeout, events);
            }
            Policy::Chain => {
                // Check first: a CPU that passes the chain on before checking itself could be
                // the one that is stuck.
                self.self_check(me, now_ns, shared, local, timeout, events);
                // The chain starts at the handler and goes once around the ring.
                if let Some(next) = self.next_after(me).filter(|&next| next != self.handler) {
                    if let Some(s) = self.shared.get(next as usize) {
                        s.mailbox.post();
                        machine.send_nmi(next);
                    }
                }
            }
            Policy::Remote => {
                if claim.hpet.is_some() && me == self.handler {
                    // The checker's own heartbeat: nobody else watches it.
                    self.self_check(me, now_ns, shared, local, timeout, events);
                    if let Some(checks) = checks {
                        for &cpu in self.monitored.iter().filter(|&&c| c != me) {
                            let (Some(target), Some(check)) =
                                (self.shared.get(cpu as usize), checks.get_mut(cpu as usize))
                            else {
                                continue;
                            };
                            self.count_check(me, cpu, target, now_ns, check, machine, events);
                        }
                    }
                }
            }
            Policy::Buddy => {}
        }
        true
    }

    /// Under `round-robin`, the CPU that owns the first expiry due after `now_ns`, for the
    /// CPU `me` that just claimed its expiry `k`. Normally the next monitored CPU; but when
    /// the claim comes late (a latched NMI after a handler held past the next expiries) the
    /// route skips the expiries that already fired, so that route and schedule stay in
    /// phase (regression found by the simulator: routing to the next CPU then sent every
    /// following expiry to a CPU outside its window, reported as unknown for a whole round).
    fn round_robin_next(
        &self,
        me: CpuIndex,
        now_ns: u64,
        k: u64,
        local: &LocalCpu,
    ) -> Option<CpuIndex> {
        let q = self.timing.hpet_period_ns.filter(|&q| q > 0)?;
        let due = local.attribution.schedule()?.due(k)?;
        let steps = now_ns.saturating_sub(due) / q + 1;
        let n = self.monitored.len() as u64;
        let i = (self.position(me)? as u64 + steps % n) % n;
        self.monitored.get(i as usize).copied()
    }

    fn self_check(
        &self,
        me: CpuIndex,
        now_ns: u64,
        shared: &SharedCpu,
        local: &mut LocalCpu,
        timeout: u64,
        events: &mut impl FnMut(Event),
    ) {
        if self.position(me).is_none() {
            return;
        }
        // The count is written after the stamp: a count of 0 means no stamp yet.
        let last_beat_ns = if shared.heartbeat.count() == 0 {
            local.self_check.unbeaten_stamp(now_ns)
        } else {
            shared.heartbeat.stamp_ns()
        };
        if let Finding::Locked { stalled_ns } =
            local.self_check.check(now_ns, last_beat_ns, timeout)
        {
            events(Event::Lockup {
                cpu: me,
                stalled_ns,
                detected_by: me,
            });
        }
    }

    /// A count check of `cpu` by `me`; a newly locked CPU is reported and asked (by an NMI
    /// IPI) for its registers.
    #[allow(clippy::too_many_arguments)]
    fn count_check(
        &self,
        me: CpuIndex,
        cpu: CpuIndex,
        target: &SharedCpu,
        now_ns: u64,
        check: &mut CountCheck,
        machine: &impl Machine,
        events: &mut impl FnMut(Event),
    ) {
        if let Finding::Locked { stalled_ns } =
            check.sample(now_ns, target.heartbeat.count(), self.timing.timeout_ns)
        {
            events(Event::Lockup {
                cpu,
                stalled_ns,
                detected_by: me,
            });
            target.capture_requested.store(true, Ordering::Release);
            target.mailbox.post();
            machine.send_nmi(cpu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::boxed::Box;
    use std::vec::Vec;

    /// Records what the engine asked of the machine.
    #[derive(Default)]
    struct Recorder {
        nmis: RefCell<[u32; 8]>,
        broadcasts: RefCell<u32>,
        route: RefCell<Option<CpuIndex>>,
    }

    impl Machine for Recorder {
        fn send_nmi(&self, cpu: CpuIndex) {
            self.nmis.borrow_mut()[cpu as usize] += 1;
        }
        fn send_nmi_all_but_self(&self) {
            *self.broadcasts.borrow_mut() += 1;
        }
        fn route_hpet_to(&self, cpu: CpuIndex) {
            *self.route.borrow_mut() = Some(cpu);
        }
    }

    const T: u64 = 1_000_000_000;
    static SHARED: [SharedCpu; 4] = [
        SharedCpu::new(),
        SharedCpu::new(),
        SharedCpu::new(),
        SharedCpu::new(),
    ];

    fn watchdog(policy: Policy, shared: &'static [SharedCpu]) -> Watchdog<'static> {
        Watchdog {
            timing: Timing::derive(policy, T, 4).unwrap(),
            monitored: &[0, 1, 2, 3],
            handler: 1,
            shared,
        }
    }

    #[test]
    fn round_robin_schedules_start_at_the_handler() {
        let w = watchdog(Policy::RoundRobin, &SHARED);
        let q = w.timing.hpet_period_ns.unwrap();
        assert_eq!(w.hpet_schedule(1, 1_000).unwrap().first_ns, 1_000);
        assert_eq!(w.hpet_schedule(2, 1_000).unwrap().first_ns, 1_000 + q);
        assert_eq!(w.hpet_schedule(0, 1_000).unwrap().first_ns, 1_000 + 3 * q);
        assert_eq!(w.hpet_schedule(0, 1_000).unwrap().period_ns, 4 * q);
        assert_eq!(w.next_after(3), Some(0));
    }

    #[test]
    fn round_robin_late_claim_routes_to_the_owner_of_the_next_expiry() {
        // Regression (simulator): a claim that comes late, from the latched NMI after a
        // handler held past the next expiries, must not route to the next CPU, whose expiry
        // has already fired.
        let shared: &'static [SharedCpu; 4] = Box::leak(Box::new([
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
        ]));
        let w = watchdog(Policy::RoundRobin, shared);
        let q = w.timing.hpet_period_ns.unwrap();
        let first = 10 * T;
        let local = w.local_for(1, first); // CPU 1 owns expiries first + 4 j q
                                           // On time (early or late within the window): the next CPU.
        assert_eq!(w.round_robin_next(1, first - 3, 0, &local), Some(2));
        assert_eq!(w.round_robin_next(1, first + 3, 0, &local), Some(2));
        // Claimed 2.5 q late: the expiries of CPUs 2 and 3 are gone; CPU 0's is next.
        assert_eq!(
            w.round_robin_next(1, first + 2 * q + q / 2, 0, &local),
            Some(0)
        );
        // 3 q late: CPU 1's own next expiry is next.
        assert_eq!(w.round_robin_next(1, first + 3 * q + 1, 0, &local), Some(1));

        // Through the NMI handler: expiry 0 claimed on time routes to CPU 2.
        let machine = Recorder::default();
        let mut local = w.local_for(1, first);
        assert!(w.on_nmi(1, first, &mut local, None, None, &machine, &mut |_| {}));
        assert_eq!(*machine.route.borrow(), Some(2));
    }

    #[test]
    fn broadcast_handler_posts_and_broadcasts_then_checks_itself() {
        let shared: &'static [SharedCpu; 4] = Box::leak(Box::new([
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
        ]));
        let w = watchdog(Policy::Broadcast, shared);
        let machine = Recorder::default();
        let first = 10 * T;
        let mut local = w.local_for(1, first);
        let mut events = Vec::new();
        // CPU 1's last heartbeat was 2 s before the expiry: locked.
        shared[1].heartbeat.beat(first - 2 * T);
        let claimed = w.on_nmi(1, first, &mut local, None, None, &machine, &mut |e| {
            events.push(e)
        });
        assert_eq!(
            events.remove(0),
            Event::ClaimedNmi {
                cpu: 1,
                hpet: true,
                ipis: 0
            }
        );
        assert!(claimed);
        assert_eq!(*machine.broadcasts.borrow(), 1);
        assert_eq!(shared[0].mailbox.posted(), 1);
        assert_eq!(shared[1].mailbox.posted(), 0);
        assert_eq!(
            events,
            [Event::Lockup {
                cpu: 1,
                stalled_ns: 2 * T,
                detected_by: 1
            }]
        );
        // A non-handling CPU claims the IPI and checks itself: healthy.
        shared[2].heartbeat.beat(first - 1);
        let mut local2 = w.local_for(2, first);
        events.clear();
        assert!(
            w.on_nmi(2, first + 5, &mut local2, None, None, &machine, &mut |e| {
                events.push(e)
            })
        );
        // Only the claim of one IPI: no finding.
        assert_eq!(
            events,
            [Event::ClaimedNmi {
                cpu: 2,
                hpet: false,
                ipis: 1
            }]
        );
    }

    #[test]
    fn chain_goes_once_around_from_the_handler() {
        let shared: &'static [SharedCpu; 4] = Box::leak(Box::new([
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
        ]));
        let w = watchdog(Policy::Chain, shared);
        let machine = Recorder::default();
        let first = 10 * T;
        let mut ignore = |_| {};
        // The handler (CPU 1) gets the HPET NMI; each CPU then passes it on: 1 -> 2 -> 3 -> 0.
        let mut local = w.local_for(1, first);
        assert!(w.on_nmi(1, first, &mut local, None, None, &machine, &mut ignore));
        for cpu in [2u32, 3, 0] {
            let mut local = w.local_for(cpu, first);
            assert!(w.on_nmi(
                cpu,
                first + 10,
                &mut local,
                None,
                None,
                &machine,
                &mut ignore
            ));
        }
        // Each of 2, 3, 0 was sent exactly one NMI; the handler none (the chain stops at 0).
        assert_eq!(*machine.nmis.borrow(), [1, 0, 1, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn remote_checker_reports_and_requests_registers() {
        let shared: &'static [SharedCpu; 4] = Box::leak(Box::new([
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
            SharedCpu::new(),
        ]));
        let w = watchdog(Policy::Remote, shared);
        let machine = Recorder::default();
        let p = w.timing.check_period_ns;
        let first = 10 * T;
        let mut local = w.local_for(1, first);
        let mut checks = [CountCheck::new(); 4];
        let mut events = Vec::new();
        // Every CPU but 3 keeps beating; the checker checks every P.
        for k in 0..12u64 {
            let now = first + k * p;
            for cpu in [0, 1, 2] {
                shared[cpu].heartbeat.beat(now - 1);
            }
            w.on_nmi(
                1,
                now,
                &mut local,
                Some(&mut checks),
                None,
                &machine,
                &mut |e| {
                    if !matches!(e, Event::ClaimedNmi { .. }) {
                        events.push(e)
                    }
                },
            );
        }
        // CPU 3 was first seen (count 0) at `first`; locked once T has passed: at k = 5.
        assert_eq!(
            events,
            [Event::Lockup {
                cpu: 3,
                stalled_ns: 5 * p,
                detected_by: 1
            }]
        );
        assert_eq!(
            machine.nmis.borrow()[3],
            1,
            "one NMI to capture CPU 3's registers"
        );
        assert!(shared[3].capture_requested.load(Ordering::Relaxed));
        // Healthy CPUs are never sent an NMI.
        assert_eq!(&machine.nmis.borrow()[..3], &[0, 0, 0]);
    }
}
