//! The detection state machine: a CPU is locked when its heartbeat has not advanced for T.
//!
//! Two ways to decide, matching the two families of policies (timing.rs):
//!
//! - [`SelfCheck`]: the CPU itself, in its NMI handler, compares its own clock with the stamp
//!   its own timer interrupt left on the last heartbeat. One clock, no cross-CPU comparison.
//! - [`CountCheck`]: another CPU (the `remote` checker, or the `buddy`) samples the heartbeat
//!   *count* and remembers, on its own clock, when it first saw the current value. It never
//!   reads a TSC value taken on the other CPU.
//!
//! Both report a lockup once per episode: after a report they stay quiet until the heartbeat
//! advances again (the CPU recovered), so a CPU stuck for minutes is one lockup, not hundreds.

use core::sync::atomic::{AtomicU64, Ordering};

/// A CPU's heartbeat: advanced by its own timer interrupt every h.
///
/// The count is what other CPUs sample; the stamp (the owning CPU's clock at the beat) is
/// read only by the owning CPU. Both are single atomic words, written by one CPU only, so
/// a reader in NMI context never takes a lock and never sees a torn value.
#[derive(Debug, Default)]
pub struct Heartbeat {
    count: AtomicU64,
    stamp_ns: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat that has not beaten yet.
    pub const fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            stamp_ns: AtomicU64::new(0),
        }
    }

    /// Called by the owning CPU's timer interrupt.
    ///
    /// The stamp is written before the count: an NMI landing between the two on the same CPU
    /// sees the new stamp (a healthy CPU), and a remote reader only uses the count.
    pub fn beat(&self, now_ns: u64) {
        self.stamp_ns.store(now_ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    /// Beats so far (for other CPUs).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// The owning CPU's clock at its last beat (for the owning CPU only).
    pub fn stamp_ns(&self) -> u64 {
        self.stamp_ns.load(Ordering::Relaxed)
    }
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// The heartbeat advanced within T.
    Healthy,
    /// Newly locked: the heartbeat has not advanced for `stalled_ns` (at least T).
    Locked { stalled_ns: u64 },
    /// Still locked, already reported.
    StillLocked,
}

/// A CPU's check of itself. Owned by that CPU; used from its NMI handler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelfCheck {
    /// The stamp of the heartbeat that was already reported as stale.
    reported_stamp: Option<u64>,
    /// The CPU's clock at its first check while its heartbeat had not beaten yet.
    unbeaten_since: Option<u64>,
}

impl SelfCheck {
    /// A fresh check.
    pub const fn new() -> Self {
        Self {
            reported_stamp: None,
            unbeaten_since: None,
        }
    }

    /// The stamp to check against while the heartbeat has not beaten yet (its stamp is then
    /// 0, not a time): the clock at the first such check, so that a CPU whose first timer
    /// interrupt has not come yet is given T from then, and one that never beats is still
    /// caught. Pass the result to [`SelfCheck::check`] as `last_beat_ns`.
    pub fn unbeaten_stamp(&mut self, now_ns: u64) -> u64 {
        *self.unbeaten_since.get_or_insert(now_ns)
    }

    /// Compares the CPU's clock `now_ns` with the stamp of its last heartbeat.
    pub fn check(&mut self, now_ns: u64, last_beat_ns: u64, timeout_ns: u64) -> Finding {
        let stalled_ns = now_ns.saturating_sub(last_beat_ns);
        if stalled_ns < timeout_ns {
            self.reported_stamp = None;
            return Finding::Healthy;
        }
        if self.reported_stamp == Some(last_beat_ns) {
            return Finding::StillLocked;
        }
        self.reported_stamp = Some(last_beat_ns);
        Finding::Locked { stalled_ns }
    }
}

/// Another CPU's view of one CPU's heartbeat count. Owned by the checking CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountCheck {
    /// The count last sampled, and the checker's clock when it first saw that value.
    seen: Option<(u64, u64)>,
    reported: bool,
}

impl CountCheck {
    /// A fresh check: the first sample only records.
    pub const fn new() -> Self {
        Self {
            seen: None,
            reported: false,
        }
    }

    /// Samples the heartbeat count `count` at the checker's clock `now_ns`.
    pub fn sample(&mut self, now_ns: u64, count: u64, timeout_ns: u64) -> Finding {
        match self.seen {
            Some((seen_count, first_seen_ns)) if seen_count == count => {
                let stalled_ns = now_ns.saturating_sub(first_seen_ns);
                if stalled_ns < timeout_ns {
                    Finding::Healthy
                } else if self.reported {
                    Finding::StillLocked
                } else {
                    self.reported = true;
                    Finding::Locked { stalled_ns }
                }
            }
            _ => {
                self.seen = Some((count, now_ns));
                self.reported = false;
                Finding::Healthy
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000;

    #[test]
    fn self_check_reports_once_per_episode() {
        let mut c = SelfCheck::new();
        assert_eq!(c.check(500, 0, T), Finding::Healthy);
        assert_eq!(c.check(999, 0, T), Finding::Healthy);
        assert_eq!(c.check(1_000, 0, T), Finding::Locked { stalled_ns: 1_000 });
        assert_eq!(c.check(1_400, 0, T), Finding::StillLocked);
        // Recovered (a new beat), then stuck again: a second episode.
        assert_eq!(c.check(1_500, 1_450, T), Finding::Healthy);
        assert_eq!(
            c.check(2_600, 1_450, T),
            Finding::Locked { stalled_ns: 1_150 }
        );
    }

    #[test]
    fn self_check_tolerates_a_stamp_after_now() {
        // A timer interrupt interrupted by the NMI after writing its stamp: never "stale".
        let mut c = SelfCheck::new();
        assert_eq!(c.check(100, 150, T), Finding::Healthy);
    }

    #[test]
    fn a_heartbeat_that_has_not_beaten_yet_is_timed_from_the_first_check() {
        // Regression (found by the simulator): the kernel's clock is far from 0 at the first
        // check, and a CPU whose first tick had not come yet was reported locked at once.
        let mut c = SelfCheck::new();
        let boot = 50 * T;
        let stamp = c.unbeaten_stamp(boot);
        assert_eq!(c.check(boot, stamp, T), Finding::Healthy);
        assert_eq!(c.unbeaten_stamp(boot + 400), boot);
        let stamp = c.unbeaten_stamp(boot + T);
        assert_eq!(
            c.check(boot + T, stamp, T),
            Finding::Locked { stalled_ns: T }
        );
    }

    #[test]
    fn count_check_uses_only_its_own_clock() {
        let mut c = CountCheck::new();
        assert_eq!(c.sample(0, 7, T), Finding::Healthy); // first sight of 7 at 0
        assert_eq!(c.sample(999, 7, T), Finding::Healthy);
        assert_eq!(c.sample(1_000, 7, T), Finding::Locked { stalled_ns: 1_000 });
        assert_eq!(c.sample(5_000, 7, T), Finding::StillLocked);
        assert_eq!(c.sample(5_100, 8, T), Finding::Healthy); // recovered
        assert_eq!(c.sample(6_099, 8, T), Finding::Healthy);
        assert_eq!(c.sample(6_100, 8, T), Finding::Locked { stalled_ns: 1_000 });
    }

    #[test]
    fn heartbeat_counts_and_stamps() {
        let hb = Heartbeat::new();
        assert_eq!((hb.count(), hb.stamp_ns()), (0, 0));
        hb.beat(40);
        hb.beat(80);
        assert_eq!((hb.count(), hb.stamp_ns()), (2, 80));
    }
}
