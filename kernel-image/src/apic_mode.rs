//! Which local APIC mode the kernel runs in (Intel SDM Vol. 3A section 11.12, x2APIC; VT-d
//! specification section 8.1, DMAR flag X2APIC_OPT_OUT).

use crate::cmdline::X2apicOption;

/// The facts the decision rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApicFacts {
    /// CPUID.01H:ECX[21].
    pub cpu_has_x2apic: bool,
    /// IA32_APIC_BASE.EXTD was already set when the kernel started.
    pub firmware_enabled_x2apic: bool,
    /// Largest APIC ID among the MADT's enabled processors.
    pub max_apic_id: u32,
    /// A DMAR table exists and sets X2APIC_OPT_OUT.
    pub dmar_opt_out: bool,
}

/// The mode chosen, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    XApic(&'static str),
    X2Apic(&'static str),
}

impl ApicMode {
    /// Whether this is x2APIC mode.
    pub fn is_x2apic(self) -> bool {
        matches!(self, Self::X2Apic(_))
    }

    /// The protocol's `mode` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::XApic(_) => "xapic",
            Self::X2Apic(_) => "x2apic",
        }
    }

    /// The protocol's `reason` value.
    pub fn reason(self) -> &'static str {
        match self {
            Self::XApic(r) | Self::X2Apic(r) => r,
        }
    }
}

/// x2APIC when the CPU offers it, unless the DMAR asks the OS to opt out and nothing
/// requires x2APIC; always when firmware handed over x2APIC mode (leaving it needs a
/// disable, which loses the APIC state) or an APIC ID exceeds 255 (xAPIC IDs are 8 bits).
pub fn decide(facts: ApicFacts, option: X2apicOption) -> Result<ApicMode, &'static str> {
    let required = if facts.firmware_enabled_x2apic {
        Some("firmware-x2apic")
    } else if facts.max_apic_id > 255 {
        Some("apic-id-above-255")
    } else {
        None
    };
    if required.is_some() && !facts.cpu_has_x2apic {
        return Err("an APIC ID above 255 needs x2APIC, which the CPU does not offer");
    }
    match option {
        X2apicOption::Off => match required {
            Some(_) => Err("x2apic=off, but x2APIC is required (firmware enabled it, or an APIC ID exceeds 255)"),
            None => Ok(ApicMode::XApic("option")),
        },
        X2apicOption::On => {
            if facts.cpu_has_x2apic {
                Ok(ApicMode::X2Apic("option"))
            } else {
                Err("x2apic=on, but the CPU does not offer x2APIC (CPUID.01H:ECX[21])")
            }
        }
        X2apicOption::Auto => Ok(match required {
            Some(reason) => ApicMode::X2Apic(reason),
            None if !facts.cpu_has_x2apic => ApicMode::XApic("cpu-lacks-x2apic"),
            None if facts.dmar_opt_out => ApicMode::XApic("dmar-opt-out"),
            None => ApicMode::X2Apic("cpu-offers-x2apic"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: ApicFacts = ApicFacts {
        cpu_has_x2apic: true,
        firmware_enabled_x2apic: false,
        max_apic_id: 7,
        dmar_opt_out: false,
    };

    #[test]
    fn auto_follows_the_rules() {
        assert_eq!(
            decide(PLAIN, X2apicOption::Auto),
            Ok(ApicMode::X2Apic("cpu-offers-x2apic"))
        );
        let no_x2 = ApicFacts {
            cpu_has_x2apic: false,
            ..PLAIN
        };
        assert_eq!(
            decide(no_x2, X2apicOption::Auto),
            Ok(ApicMode::XApic("cpu-lacks-x2apic"))
        );
        let opt_out = ApicFacts {
            dmar_opt_out: true,
            ..PLAIN
        };
        assert_eq!(
            decide(opt_out, X2apicOption::Auto),
            Ok(ApicMode::XApic("dmar-opt-out"))
        );
        let big = ApicFacts {
            dmar_opt_out: true,
            max_apic_id: 300,
            ..PLAIN
        };
        assert_eq!(
            decide(big, X2apicOption::Auto),
            Ok(ApicMode::X2Apic("apic-id-above-255"))
        );
        let fw = ApicFacts {
            dmar_opt_out: true,
            firmware_enabled_x2apic: true,
            ..PLAIN
        };
        assert_eq!(
            decide(fw, X2apicOption::Auto),
            Ok(ApicMode::X2Apic("firmware-x2apic"))
        );
    }

    #[test]
    fn options_cannot_break_requirements() {
        let big = ApicFacts {
            max_apic_id: 256,
            ..PLAIN
        };
        assert!(decide(big, X2apicOption::Off).is_err());
        assert!(decide(
            ApicFacts {
                cpu_has_x2apic: false,
                ..PLAIN
            },
            X2apicOption::On
        )
        .is_err());
        assert!(decide(
            ApicFacts {
                cpu_has_x2apic: false,
                ..big
            },
            X2apicOption::Auto
        )
        .is_err());
        assert_eq!(
            decide(PLAIN, X2apicOption::Off),
            Ok(ApicMode::XApic("option"))
        );
        assert_eq!(
            decide(PLAIN, X2apicOption::On),
            Ok(ApicMode::X2Apic("option"))
        );
    }
}
