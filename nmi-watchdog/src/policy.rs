//! The rotation policies (BRIEF.md, "The rotation policies"): how the check reaches every
//! monitored CPU.

use core::fmt;

/// A rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// HPET NMI to one handling CPU, which sends an all-but-self NMI IPI; every CPU checks
    /// itself (Linux v6/v7).
    Broadcast,
    /// The HPET fires every P/N and targets the next CPU each time; that CPU checks itself
    /// (Linux v1-v4, made safe: no IRTE write from NMI context).
    RoundRobin,
    /// HPET NMI to the first CPU; each CPU checks itself and sends a targeted NMI IPI to the
    /// next monitored CPU (x2APIC only: a single-MSR ICR write).
    Chain,
    /// HPET NMI to one checker CPU, which reads every CPU's heartbeat count from memory; only
    /// CPUs found stuck get a targeted NMI IPI, to capture their registers.
    Remote,
    /// No NMI source: each CPU's timer checks its neighbour's heartbeat (Linux 6.5 baseline).
    Buddy,
}

impl Policy {
    /// Every policy, in the order the documents list them.
    pub const ALL: [Policy; 5] = [
        Policy::Broadcast,
        Policy::RoundRobin,
        Policy::Chain,
        Policy::Remote,
        Policy::Buddy,
    ];

    /// The name used on the command line, in configurations and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Broadcast => "broadcast",
            Policy::RoundRobin => "round-robin",
            Policy::Chain => "chain",
            Policy::Remote => "remote",
            Policy::Buddy => "buddy",
        }
    }

    /// Parses a policy name.
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the policy is driven by HPET NMIs (all but `buddy`).
    pub const fn uses_hpet(self) -> bool {
        !matches!(self, Policy::Buddy)
    }

    /// Whether a CPU decides about itself, from its own heartbeat stamp (its own TSC), as
    /// opposed to another CPU comparing heartbeat counts it sampled itself.
    pub const fn checks_itself(self) -> bool {
        matches!(self, Policy::Broadcast | Policy::RoundRobin | Policy::Chain)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::from_name(p.name()), Some(p));
        }
        assert_eq!(Policy::from_name("roundrobin"), None);
    }
}
