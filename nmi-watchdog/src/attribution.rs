//! Which NMI was it? x86 has one NMI vector, an edge-triggered FSB interrupt sets no HPET
//! status bit, and the NMI path must not read the HPET. So the watchdog claims only what it
//! can attribute:
//!
//! - **HPET**: the CPU knows on its own clock when its HPET NMIs are due (`first + k·period`)
//!   and claims an NMI within `±window` of a due time it has not claimed yet. An expiry that
//!   fell while the CPU was already inside an NMI handler (NMIs blocked, so the new one was
//!   latched) is claimed by the NMI that arrives right after that handler returned.
//! - **IPI**: senders bump the target's [`IpiMailbox`] before sending the NMI IPI; the target
//!   claims every bump it has not handled yet.
//! - **Merged**: x86 latches one NMI. When one handler claimed two causes, the NMI of the
//!   second may still arrive just after the handler returned; it finds nothing new and is
//!   swallowed, not counted as unknown (Linux's back-to-back NMI rule does the same).
//! - Anything else is **unknown**: counted and reported, never claimed.
//!
//! The bookkeeping advances with time, not with NMIs received, so a lost, merged, delayed or
//! duplicated NMI cannot shift which expiry the next one is matched against.

use core::sync::atomic::{AtomicU64, Ordering};

/// The HPET NMIs one CPU expects: at `first_ns + k * period_ns` on its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirySchedule {
    pub first_ns: u64,
    pub period_ns: u64,
}

impl ExpirySchedule {
    /// The index of the expiry whose `±window_ns` contains `now_ns`.
    pub fn in_window(&self, now_ns: u64, window_ns: u64) -> Option<u64> {
        if self.period_ns == 0 || now_ns.saturating_add(window_ns) < self.first_ns {
            return None;
        }
        let k = (now_ns.saturating_sub(self.first_ns) + self.period_ns / 2) / self.period_ns;
        let due = self.first_ns.checked_add(k.checked_mul(self.period_ns)?)?;
        (now_ns.abs_diff(due) <= window_ns).then_some(k)
    }

    /// When expiry `k` is due.
    pub fn due(&self, k: u64) -> Option<u64> {
        self.first_ns.checked_add(k.checked_mul(self.period_ns)?)
    }

    /// The first expiry index due in `[from_ns, to_ns]`.
    pub fn due_between(&self, from_ns: u64, to_ns: u64) -> Option<u64> {
        if self.period_ns == 0 || to_ns < from_ns || to_ns < self.first_ns {
            return None;
        }
        let k = from_ns
            .saturating_sub(self.first_ns)
            .div_ceil(self.period_ns);
        let due = self.first_ns.checked_add(k.checked_mul(self.period_ns)?)?;
        (due <= to_ns).then_some(k)
    }
}

/// NMI IPIs sent to one CPU: senders add one before sending; only the target reads.
#[derive(Debug, Default)]
pub struct IpiMailbox {
    sent: AtomicU64,
}

impl IpiMailbox {
    /// An empty mailbox.
    pub const fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
        }
    }

    /// Called by a sender just before it sends the NMI IPI.
    pub fn post(&self) {
        self.sent.fetch_add(1, Ordering::Release);
    }

    /// IPIs posted so far.
    pub fn posted(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }
}

/// What one NMI was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The HPET expiry index claimed, if any.
    pub hpet: Option<u64>,
    /// Whether the claimed HPET expiry had fired while the CPU was in a previous NMI handler.
    pub hpet_latched: bool,
    /// IPIs claimed (posted since the last claim; two IPIs can merge into one NMI).
    pub ipis: u64,
}

/// The outcome of attributing one NMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attributed {
    /// The watchdog's own NMI: run the check.
    Claimed(Claim),
    /// The second NMI of two causes the previous handler already claimed.
    Swallowed,
    /// A second NMI within the window of the HPET expiry already claimed: the same expiry
    /// delivered twice (QEMU's periodic HPET does this under -icount, docs/platform.md). A
    /// spurious NMI landing inside a claimed window is counted here too: the two cannot be
    /// told apart, and neither can cause a false lockup.
    Duplicate,
    /// Not the watchdog's: count and report it, never claim it.
    Unknown,
}

/// One CPU's attribution state. Owned by that CPU and used only from its NMI handler
/// (NMIs do not nest), so it needs no atomics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    schedule: Option<ExpirySchedule>,
    /// Half-width of the HPET window; also how soon after a handler a merged follow-up NMI
    /// must arrive to be swallowed.
    window_ns: u64,
    last_hpet: Option<u64>,
    ipis_handled: u64,
    previous: Option<PreviousNmi>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PreviousNmi {
    entry_ns: u64,
    exit_ns: u64,
    causes: u64,
}

impl Attribution {
    /// Attribution for a CPU that gets HPET NMIs on `schedule` (or none) within
    /// `±window_ns`, and NMI IPIs.
    pub const fn new(schedule: Option<ExpirySchedule>, window_ns: u64) -> Self {
        Self {
            schedule,
            window_ns,
            last_hpet: None,
            ipis_handled: 0,
            previous: None,
        }
    }

    /// The HPET schedule this CPU claims against, if it gets HPET NMIs.
    pub fn schedule(&self) -> Option<ExpirySchedule> {
        self.schedule
    }

    /// Attributes an NMI that entered its handler at `now_ns`, with `ipis_posted` read from
    /// the CPU's mailbox.
    pub fn attribute(&mut self, now_ns: u64, ipis_posted: u64) -> Attributed {
        let ipis = ipis_posted.wrapping_sub(self.ipis_handled);
        self.ipis_handled = ipis_posted;
        let (hpet, hpet_latched) = match self.hpet_expiry(now_ns) {
            Some((k, latched)) => {
                self.last_hpet = Some(k);
                (Some(k), latched)
            }
            None => (None, false),
        };
        let causes = ipis + u64::from(hpet.is_some());
        let previous = self.previous.take();
        self.previous = Some(PreviousNmi {
            entry_ns: now_ns,
            exit_ns: now_ns,
            causes,
        });
        if causes > 0 {
            return Attributed::Claimed(Claim {
                hpet,
                hpet_latched,
                ipis,
            });
        }
        match previous {
            Some(p) if p.causes > 1 && now_ns <= p.exit_ns.saturating_add(self.window_ns) => {
                // The record of this NMI has no causes, so only one follow-up is swallowed.
                Attributed::Swallowed
            }
            _ if self.last_hpet.is_some()
                && self
                    .schedule
                    .and_then(|s| s.in_window(now_ns, self.window_ns))
                    == self.last_hpet =>
            {
                Attributed::Duplicate
            }
            _ => Attributed::Unknown,
        }
    }

    /// Records when the handler of the last attributed NMI returns.
    pub fn handler_done(&mut self, now_ns: u64) {
        if let Some(p) = self.previous.as_mut() {
            p.exit_ns = now_ns;
        }
    }

    /// The HPET expiry this NMI stands for, if any, and whether it was latched.
    fn hpet_expiry(&self, now_ns: u64) -> Option<(u64, bool)> {
        let schedule = self.schedule?;
        let unclaimed = |k: u64| self.last_hpet.is_none_or(|last| k > last);
        if let Some(k) = schedule.in_window(now_ns, self.window_ns) {
            if unclaimed(k) {
                return Some((k, false));
            }
        }
        // An expiry that came due while the previous handler ran: its NMI was latched and is
        // delivered as soon as that handler returned.
        let p = self.previous?;
        let latest = p.exit_ns.saturating_add(self.window_ns);
        if now_ns > latest {
            return None;
        }
        // The first expiry due in the handler's span that is not claimed yet (the handler
        // may itself have been the HPET NMI of an earlier expiry in that span).
        let mut k = schedule.due_between(p.entry_ns, latest)?;
        if !unclaimed(k) {
            k = self.last_hpet?.checked_add(1)?;
            if schedule.due(k)? > latest {
                return None;
            }
        }
        Some((k, true))
    }
}

/// HPET NMI arrivals, for the check outside NMI context that notices when they stop (the
/// watchdog must never die silently).
///
/// The NMI handler only counts arrivals; the checking CPU (one CPU, on its timer tick)
/// remembers, on its own clock, when it first saw the current count. Under `round-robin`
/// the HPET NMIs arrive on every CPU in turn, so a time stamped by the receiving CPU must
/// never be compared with the checker's clock (regression found by the simulator with
/// per-CPU clock offsets).
#[derive(Debug, Default)]
pub struct HpetLiveness {
    arrivals: AtomicU64,
    /// The checker's own record: the count it last saw, and its clock when it first saw it
    /// (written by the checking CPU only).
    seen_count: AtomicU64,
    seen_at_ns: AtomicU64,
}

impl HpetLiveness {
    pub const fn new() -> Self {
        Self {
            arrivals: AtomicU64::new(0),
            seen_count: AtomicU64::new(0),
            seen_at_ns: AtomicU64::new(0),
        }
    }

    /// Called from the NMI handler when it claims an HPET NMI (on any CPU; `_now_ns` is that
    /// CPU's clock and is deliberately not kept).
    pub fn arrived(&self, _now_ns: u64) {
        self.arrivals.fetch_add(1, Ordering::Release);
    }

    /// HPET NMIs claimed so far.
    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Acquire)
    }

    /// Called outside NMI context by the one checking CPU, on its own clock: how long no new
    /// HPET NMI has been seen, counted from when it first saw the current count (or from
    /// `armed_ns`, its clock when the watchdog was armed, if none came yet).
    pub fn silence_ns(&self, now_ns: u64, armed_ns: u64) -> u64 {
        let count = self.arrivals();
        if count == 0 {
            return now_ns.saturating_sub(armed_ns);
        }
        if count != self.seen_count.load(Ordering::Relaxed) {
            self.seen_count.store(count, Ordering::Relaxed);
            self.seen_at_ns.store(now_ns, Ordering::Relaxed);
        }
        now_ns.saturating_sub(self.seen_at_ns.load(Ordering::Relaxed).max(armed_ns))
    }

    /// Called outside NMI context by the one checking CPU (see [`HpetLiveness::silence_ns`]):
    /// whether more than two periods went by without a new HPET NMI.
    pub fn stalled(&self, now_ns: u64, armed_ns: u64, period_ns: u64) -> bool {
        self.silence_ns(now_ns, armed_ns) > period_ns.saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: ExpirySchedule = ExpirySchedule {
        first_ns: 1_000,
        period_ns: 1_000,
    };
    const WINDOW: u64 = 10;

    fn claim(hpet: Option<u64>, ipis: u64) -> Attributed {
        Attributed::Claimed(Claim {
            hpet,
            hpet_latched: false,
            ipis,
        })
    }

    #[test]
    fn windows_around_each_expiry() {
        assert_eq!(SCHEDULE.in_window(989, WINDOW), None);
        assert_eq!(SCHEDULE.in_window(990, WINDOW), Some(0));
        assert_eq!(SCHEDULE.in_window(1_010, WINDOW), Some(0));
        assert_eq!(SCHEDULE.in_window(1_011, WINDOW), None);
        assert_eq!(SCHEDULE.in_window(1_500, WINDOW), None);
        assert_eq!(SCHEDULE.in_window(5_003, WINDOW), Some(4));
        assert_eq!(SCHEDULE.in_window(0, WINDOW), None);
        assert_eq!(SCHEDULE.due_between(1_001, 1_999), None);
        assert_eq!(SCHEDULE.due_between(1_001, 2_000), Some(1));
        assert_eq!(SCHEDULE.due_between(0, 500), None);
    }

    #[test]
    fn hpet_nmis_claimed_once_each() {
        let mut a = Attribution::new(Some(SCHEDULE), WINDOW);
        assert_eq!(a.attribute(1_002, 0), claim(Some(0), 0));
        a.handler_done(1_004);
        // A second NMI in the window of the expiry just claimed: a duplicate delivery.
        assert_eq!(a.attribute(1_006, 0), Attributed::Duplicate);
        a.handler_done(1_007);
        assert_eq!(a.attribute(2_000, 0), claim(Some(1), 0));
        a.handler_done(2_001);
        // One expiry lost (never delivered): the next is still matched by time.
        assert_eq!(a.attribute(4_009, 0), claim(Some(3), 0));
    }

    #[test]
    fn out_of_window_nmi_is_unknown() {
        let mut a = Attribution::new(Some(SCHEDULE), WINDOW);
        assert_eq!(a.attribute(1_500, 0), Attributed::Unknown);
        let mut no_hpet = Attribution::new(None, WINDOW);
        assert_eq!(no_hpet.attribute(1_000, 0), Attributed::Unknown);
    }

    #[test]
    fn ipis_are_claimed_from_the_mailbox() {
        let mailbox = IpiMailbox::new();
        let mut a = Attribution::new(None, WINDOW);
        mailbox.post();
        assert_eq!(a.attribute(10, mailbox.posted()), claim(None, 1));
        a.handler_done(11);
        // Two IPIs merged into one NMI.
        mailbox.post();
        mailbox.post();
        assert_eq!(a.attribute(50, mailbox.posted()), claim(None, 2));
    }

    #[test]
    fn merged_causes_swallow_one_follow_up() {
        let mut a = Attribution::new(Some(SCHEDULE), WINDOW);
        // The HPET NMI and an IPI handled together...
        assert_eq!(a.attribute(2_001, 1), claim(Some(1), 1));
        a.handler_done(2_003);
        // ... the IPI's own NMI arrives after the handler returned: swallowed, not unknown.
        assert_eq!(a.attribute(2_005, 1), Attributed::Swallowed);
        a.handler_done(2_006);
        // Only one follow-up is swallowed; a third NMI still inside expiry 1's window counts
        // as a duplicate delivery of it, one outside any window is unknown.
        assert_eq!(a.attribute(2_007, 1), Attributed::Duplicate);
        a.handler_done(2_008);
        assert_eq!(a.attribute(2_050, 1), Attributed::Unknown);
    }

    #[test]
    fn expiry_during_a_long_handler_is_claimed_when_the_latched_nmi_arrives() {
        let mut a = Attribution::new(Some(SCHEDULE), WINDOW);
        // An IPI NMI at 2_500 whose handler runs until 3_200, past the expiry at 3_000.
        assert_eq!(a.attribute(2_500, 1), claim(None, 1));
        a.handler_done(3_200);
        // The latched HPET NMI is delivered at once, far outside its window.
        assert_eq!(
            a.attribute(3_201, 1),
            Attributed::Claimed(Claim {
                hpet: Some(2),
                hpet_latched: true,
                ipis: 0
            })
        );
        a.handler_done(3_202);
        // The next expiry is matched normally.
        assert_eq!(a.attribute(4_000, 1), claim(Some(3), 0));
    }

    #[test]
    fn hpet_handler_running_past_the_next_expiry() {
        let mut a = Attribution::new(Some(SCHEDULE), WINDOW);
        // Expiry 0's NMI arrives early in its window; its handler is held until 2_100.
        assert_eq!(a.attribute(995, 0), claim(Some(0), 0));
        a.handler_done(2_100);
        // Expiry 1 (due 2_000) was latched: claimed as soon as the handler returns.
        assert_eq!(
            a.attribute(2_101, 0),
            Attributed::Claimed(Claim {
                hpet: Some(1),
                hpet_latched: true,
                ipis: 0
            })
        );
        a.handler_done(2_102);
        assert_eq!(a.attribute(3_000, 0), claim(Some(2), 0));
    }

    #[test]
    fn liveness_notices_when_hpet_nmis_stop() {
        let l = HpetLiveness::new();
        assert!(!l.stalled(1_500, 0, 1_000));
        assert!(l.stalled(2_001, 0, 1_000));
        l.arrived(2_000);
        // Seen first at 2_100 on the checker's clock.
        assert!(!l.stalled(2_100, 0, 1_000));
        assert!(!l.stalled(4_100, 0, 1_000));
        assert!(l.stalled(4_101, 0, 1_000));
        assert_eq!(l.silence_ns(4_101, 0), 2_001);
    }

    #[test]
    fn liveness_never_compares_the_receiving_cpus_clock() {
        // Regression: under round-robin another CPU claims the HPET NMI, with a clock far
        // behind (or ahead of) the checker's. Only the count crosses CPUs.
        let l = HpetLiveness::new();
        let checker = 1_000_000;
        assert!(!l.stalled(checker, checker, 1_000));
        l.arrived(5); // a CPU whose clock reads 5
        assert!(!l.stalled(checker + 1_500, checker, 1_000));
        l.arrived(u64::MAX - 3); // and one whose clock is far ahead
        assert!(!l.stalled(checker + 3_000, checker, 1_000));
        assert!(l.stalled(checker + 5_001, checker, 1_000));
    }
}
