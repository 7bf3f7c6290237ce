//! The watchdog's periods, derived from the timeout T, and each policy's detection bound.
//!
//! All times are nanoseconds on one CPU's clock (the kernel converts its TSC); nothing here
//! compares clocks of different CPUs.
//!
//! Definitions (BRIEF.md): a CPU is hard-locked when its heartbeat has not advanced for T.
//! The heartbeat advances every h; each CPU is examined every P. Let a lockup start at L, just
//! after the CPU's last heartbeat S, so L - h < S <= L.
//!
//! - **Self-checking policies** (`broadcast`, `round-robin`, `chain`): on each check the CPU
//!   compares its own clock with the stamp its own timer left on its last heartbeat, and is
//!   locked once `now - S >= T`. Checks come every P, so the first check at or after S + T
//!   comes before S + T + P: the latency `c - L` lies in `[T - h, T + P)`, plus the time the
//!   NMI takes to arrive (for `chain` up to one IPI hop per CPU before it). With P = 2T/5 and
//!   a delivery slack of T/20 the bound is 1.45 T.
//! - **Count-sampling policies** (`remote`, `buddy`): another CPU compares heartbeat counts it
//!   sampled itself with its own clock (never another CPU's TSC). It first sees the final
//!   count at some check in `[S, S + P)` and declares the lockup at the first check at least
//!   T after that, before `S + T + 2P`: latency in `[T - h, T + 2P)`. `remote` checks every
//!   P = T/5; `buddy` on every timer tick of the buddy, P = h = T/5. Bound: 1.4 T + slack.
//!
//! Every HPET policy's bound is therefore at most 1.5 T.

use crate::policy::Policy;
use core::fmt;

/// One second in nanoseconds.
pub const NS_PER_SEC: u64 = 1_000_000_000;
/// Shortest timeout accepted: 10 ms.
pub const MIN_TIMEOUT_NS: u64 = 10_000_000;
/// Longest timeout accepted: 600 s.
pub const MAX_TIMEOUT_NS: u64 = 600 * NS_PER_SEC;
/// The HPET NMI is recognised within ±0.4 % of its period around the expected expiry
/// (Linux v7's window) ...
pub const WINDOW_PER_MILLE: u64 = 4;
/// ... but never less than 50 µs, so that NMI delivery jitter on short periods stays inside.
pub const MIN_WINDOW_NS: u64 = 50_000;
/// Shortest HPET period accepted (round-robin divides P by the CPU count): 200 µs, so the
/// attribution windows (at most a quarter of the period) stay disjoint.
pub const MIN_HPET_PERIOD_NS: u64 = 200_000;

/// Parses T as written on the kernel's command line and by `hpetctl`: decimal seconds with up
/// to 9 fractional digits ("1", "0.5", ".25"), in nanoseconds.
pub fn parse_seconds_ns(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.len() > 9 {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction_ns = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u64>().ok()? * 10u64.pow(9 - fraction.len() as u32)
    };
    whole.checked_mul(NS_PER_SEC)?.checked_add(fraction_ns)
}

/// Periods and bounds of one watchdog configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub policy: Policy,
    /// T: a CPU whose heartbeat has not advanced for this long is locked.
    pub timeout_ns: u64,
    /// h: how often each CPU's timer advances its heartbeat.
    pub heartbeat_ns: u64,
    /// P: how often each CPU is examined.
    pub check_period_ns: u64,
    /// The HPET's period machine-wide (P / N for round-robin), or `None` for `buddy`.
    pub hpet_period_ns: Option<u64>,
    /// Half-width of the attribution window around each expected HPET NMI on a CPU.
    pub window_ns: u64,
    /// Allowance for NMI delivery (IPI hops, interrupt latency) in the bound.
    pub slack_ns: u64,
    /// The policy's worst-case detection latency.
    pub bound_ns: u64,
    /// The smallest possible detection latency: T - h.
    pub earliest_ns: u64,
}

/// Why a configuration has no valid timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingError {
    /// T outside [10 ms, 600 s].
    TimeoutOutOfRange { timeout_ns: u64 },
    /// No CPU to monitor.
    NoCpus,
    /// Round-robin over this many CPUs would fire the HPET more often than every 200 µs.
    HpetPeriodTooShort { hpet_period_ns: u64, cpus: u32 },
}

impl fmt::Display for TimingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TimingError::TimeoutOutOfRange { timeout_ns } => write!(
                f,
                "timeout {} ms is outside 10 ms .. 600 s",
                timeout_ns / 1_000_000
            ),
            TimingError::NoCpus => f.write_str("no CPU to monitor"),
            TimingError::HpetPeriodTooShort { hpet_period_ns, cpus } => write!(
                f,
                "round-robin over {cpus} CPUs would fire the HPET every {hpet_period_ns} ns, below the 200 us minimum: raise the timeout or monitor fewer CPUs"
            ),
        }
    }
}

impl Timing {
    /// Derives the periods for `policy` with timeout `timeout_ns` over `cpus` monitored CPUs.
    pub fn derive(policy: Policy, timeout_ns: u64, cpus: u32) -> Result<Timing, TimingError> {
        if !(MIN_TIMEOUT_NS..=MAX_TIMEOUT_NS).contains(&timeout_ns) {
            return Err(TimingError::TimeoutOutOfRange { timeout_ns });
        }
        if cpus == 0 {
            return Err(TimingError::NoCpus);
        }
        let t = timeout_ns;
        let heartbeat_ns = t / 5;
        let slack_ns = t / 20;
        let (check_period_ns, hpet_period_ns) = match policy {
            Policy::Broadcast | Policy::Chain => (t * 2 / 5, Some(t * 2 / 5)),
            Policy::RoundRobin => (t * 2 / 5, Some(t * 2 / 5 / u64::from(cpus))),
            Policy::Remote => (t / 5, Some(t / 5)),
            Policy::Buddy => (heartbeat_ns, None),
        };
        if let Some(period) = hpet_period_ns {
            if period < MIN_HPET_PERIOD_NS {
                return Err(TimingError::HpetPeriodTooShort {
                    hpet_period_ns: period,
                    cpus,
                });
            }
        }
        // A CPU's own NMIs are one check period apart under every HPET policy.
        let window_ns = (check_period_ns * WINDOW_PER_MILLE / 1000).max(MIN_WINDOW_NS);
        let bound_ns = if policy.checks_itself() {
            t + check_period_ns + slack_ns
        } else {
            t + 2 * check_period_ns + slack_ns
        };
        Ok(Timing {
            policy,
            timeout_ns: t,
            heartbeat_ns,
            check_period_ns,
            hpet_period_ns,
            window_ns,
            slack_ns,
            bound_ns,
            earliest_ns: t - heartbeat_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 2 * NS_PER_SEC;

    #[test]
    fn every_hpet_policy_is_bounded_by_one_and_a_half_t() {
        for policy in Policy::ALL {
            let timing = Timing::derive(policy, T, 16).unwrap();
            assert!(timing.bound_ns <= T * 3 / 2, "{policy}: {timing:?}");
            assert!(
                timing.check_period_ns <= T / 2,
                "{policy}: P must be at most T/2"
            );
            assert_eq!(timing.earliest_ns, T - timing.heartbeat_ns);
            // BRIEF: the heartbeat comes every T/10 .. T/5.
            assert!(timing.heartbeat_ns >= T / 10 && timing.heartbeat_ns <= T / 5);
        }
    }

    #[test]
    fn worked_example_for_two_seconds() {
        // Hand calculation, T = 2 s: h = 400 ms; broadcast P = 800 ms, bound = 2 + 0.8 + 0.1;
        // remote P = 400 ms, bound = 2 + 0.8 + 0.1; round-robin over 8 CPUs fires every 100 ms.
        let b = Timing::derive(Policy::Broadcast, T, 8).unwrap();
        assert_eq!(
            (b.heartbeat_ns, b.check_period_ns, b.bound_ns),
            (400_000_000, 800_000_000, 2_900_000_000)
        );
        assert_eq!(b.window_ns, 3_200_000); // 0.4 % of 800 ms
        let r = Timing::derive(Policy::Remote, T, 8).unwrap();
        assert_eq!(
            (r.check_period_ns, r.bound_ns),
            (400_000_000, 2_900_000_000)
        );
        let rr = Timing::derive(Policy::RoundRobin, T, 8).unwrap();
        assert_eq!(rr.hpet_period_ns, Some(100_000_000));
        assert_eq!(
            Timing::derive(Policy::Buddy, T, 8).unwrap().hpet_period_ns,
            None
        );
    }

    #[test]
    fn short_periods_get_the_window_floor() {
        let t = Timing::derive(Policy::Broadcast, MIN_TIMEOUT_NS, 1).unwrap();
        assert_eq!(t.window_ns, MIN_WINDOW_NS);
        assert!(t.window_ns * 4 <= t.check_period_ns);
    }

    #[test]
    fn impossible_configurations_are_refused() {
        assert_eq!(
            Timing::derive(Policy::Broadcast, 1_000_000, 4),
            Err(TimingError::TimeoutOutOfRange {
                timeout_ns: 1_000_000
            })
        );
        assert_eq!(
            Timing::derive(Policy::Remote, T, 0),
            Err(TimingError::NoCpus)
        );
        // 10 ms over 300 CPUs: P = 4 ms, HPET every 13.3 us.
        assert!(matches!(
            Timing::derive(Policy::RoundRobin, MIN_TIMEOUT_NS, 300),
            Err(TimingError::HpetPeriodTooShort { cpus: 300, .. })
        ));
    }
}
