//! The kernel's boot command line (docs/cmdline.md): space-separated `name=value` words.
//! An unknown option or a bad value is an error, never ignored.

use core::fmt;

/// How the run ends after the summary line (docs/protocol.md, "Ending the run").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOption {
    /// QEMU's isa-debug-exit when CPUID says TCG, else halt.
    Auto,
    Qemu,
    Halt,
    Reboot,
}

/// Local APIC mode request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X2apicOption {
    Auto,
    On,
    Off,
}

/// Where the RSDP comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsdpOption {
    /// From the boot loader, else the BIOS-area scan.
    Auto,
    /// Always the BIOS-area scan (to test it, and for loaders that hand over a bad pointer).
    Scan,
}

/// The HPET NMI route self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpetNmiRoute {
    Off,
    /// FSB (MSI) delivery straight to the boot CPU.
    Fsb,
    /// Through an I/O APIC input with NMI delivery mode.
    IoApic,
}

/// A watchdog rotation policy (nmi-watchdog's `Policy`, by name).
pub use nmi_watchdog::policy::Policy;

/// A lockup scenario (docs/cmdline.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Nothing injected.
    Idle,
    /// Logical CPU `cpu` spins with interrupts disabled from `after_ns` after the watchdog
    /// is armed; with `nmi_blocked`, inside an NMI handler (NMIs blocked too).
    Lockup {
        cpu: u32,
        after_ns: u64,
        nmi_blocked: bool,
    },
    /// CPUs `a` and `b` deadlock on two spin locks taken in opposite orders, interrupts off
    /// (NMIs still taken).
    Deadlock { a: u32, b: u32, after_ns: u64 },
    /// CPU `cpu` (default: the handler) sends itself an NMI with no mailbox post.
    SpuriousNmi { cpu: Option<u32>, after_ns: u64 },
}

/// T's text form, shared with `hpetctl` (nmi-watchdog owns T).
pub use nmi_watchdog::timing::parse_seconds_ns;

fn parse_scenario(value: &str) -> Option<Scenario> {
    if value == "idle" {
        return Some(Scenario::Idle);
    }
    let (name, rest) = value.split_once(':')?;
    let (mut cpu, mut cpus, mut after_ns, mut nmi_blocked) = (None, None, None, false);
    for field in rest.split(',') {
        match field.split_once('=')? {
            ("cpu", n) => cpu = Some(n.parse().ok()?),
            ("cpus", pair) => {
                let (a, b) = pair.split_once('+')?;
                cpus = Some((a.parse().ok()?, b.parse().ok()?));
            }
            ("after", s) => after_ns = Some(parse_seconds_ns(s)?),
            ("kind", "nmi-blocked") => nmi_blocked = true,
            ("kind", "irq-off") => nmi_blocked = false,
            _ => return None,
        }
    }
    let after_ns = after_ns?;
    match name {
        "lockup" if cpus.is_none() => Some(Scenario::Lockup {
            cpu: cpu?,
            after_ns,
            nmi_blocked,
        }),
        "deadlock" if cpu.is_none() && !nmi_blocked => {
            let (a, b) = cpus?;
            (a != b).then_some(Scenario::Deadlock { a, b, after_ns })
        }
        "spurious-nmi" if cpus.is_none() && !nmi_blocked => {
            Some(Scenario::SpuriousNmi { cpu, after_ns })
        }
        _ => None,
    }
}

/// A deliberate exception, raised to prove the exception report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    None,
    PageFault,
    InvalidOpcode,
    GeneralProtection,
    DivideError,
    Breakpoint,
}

/// Every boot option with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub exit: ExitOption,
    pub x2apic: X2apicOption,
    pub tick_us: u32,
    pub settle_ms: u32,
    pub fault: FaultKind,
    pub fault_cpu: u32,
    pub ap_timeout_ms: u32,
    pub rsdp: RsdpOption,
    pub hpet_nmi: HpetNmiRoute,
    pub hpet_nmi_period_us: u32,
    /// The watchdog's policy; `None` leaves the watchdog off.
    pub policy: Option<Policy>,
    /// T, in nanoseconds.
    pub timeout_ns: u64,
    /// The handling / checker / first CPU (logical index).
    pub handler: u32,
    pub scenario: Scenario,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            exit: ExitOption::Auto,
            x2apic: X2apicOption::Auto,
            tick_us: 10_000,
            settle_ms: 100,
            fault: FaultKind::None,
            fault_cpu: 0,
            ap_timeout_ms: 1000,
            rsdp: RsdpOption::Auto,
            hpet_nmi: HpetNmiRoute::Off,
            hpet_nmi_period_us: 10_000,
            policy: None,
            timeout_ns: 1_000_000_000,
            handler: 0,
            scenario: Scenario::Idle,
        }
    }
}

/// A command-line word the kernel cannot accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionError<'a> {
    /// No option has this name.
    Unknown { word: &'a str },
    /// The option exists but the value is not one it takes.
    BadValue {
        name: &'a str,
        value: &'a str,
        expected: &'static str,
    },
}

impl OptionError<'_> {
    /// The `kind` of the protocol's `error` record.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown-option",
            Self::BadValue { .. } => "bad-option-value",
        }
    }
}

impl fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { word } => write!(
                f,
                "unknown boot option '{word}' (known: exit, x2apic, rsdp, tick_us, settle_ms, fault, fault_cpu, ap_timeout_ms, hpet_nmi, hpet_nmi_period_us, policy, timeout, handler, scenario; see docs/cmdline.md)"
            ),
            Self::BadValue { name, value, expected } => {
                write!(f, "boot option {name}: bad value '{value}', expected {expected}")
            }
        }
    }
}

fn number<'a>(
    name: &'a str,
    value: &'a str,
    min: u32,
    max: u32,
    expected: &'static str,
) -> Result<u32, OptionError<'a>> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or(OptionError::BadValue {
            name,
            value,
            expected,
        })
}

/// Parses the whole command line. A first word starting with `/` is a bootloader's kernel
/// path and is skipped.
pub fn parse(cmdline: &str) -> Result<Options, OptionError<'_>> {
    let mut options = Options::default();
    let mut words = cmdline.split_ascii_whitespace().peekable();
    if words.peek().is_some_and(|w| w.starts_with('/')) {
        words.next();
    }
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(OptionError::Unknown { word });
        };
        let bad = |expected| OptionError::BadValue {
            name,
            value,
            expected,
        };
        match name {
            "exit" => {
                options.exit = match value {
                    "auto" => ExitOption::Auto,
                    "qemu" => ExitOption::Qemu,
                    "halt" => ExitOption::Halt,
                    "reboot" => ExitOption::Reboot,
                    _ => return Err(bad("auto, qemu, halt or reboot")),
                }
            }
            "x2apic" => {
                options.x2apic = match value {
                    "auto" => X2apicOption::Auto,
                    "on" => X2apicOption::On,
                    "off" => X2apicOption::Off,
                    _ => return Err(bad("auto, on or off")),
                }
            }
            "fault" => {
                options.fault = match value {
                    "none" => FaultKind::None,
                    "page-fault" => FaultKind::PageFault,
                    "invalid-opcode" => FaultKind::InvalidOpcode,
                    "general-protection" => FaultKind::GeneralProtection,
                    "divide-error" => FaultKind::DivideError,
                    "breakpoint" => FaultKind::Breakpoint,
                    _ => return Err(bad(
                        "none, page-fault, invalid-opcode, general-protection, divide-error or breakpoint",
                    )),
                }
            }
            "rsdp" => {
                options.rsdp = match value {
                    "auto" => RsdpOption::Auto,
                    "scan" => RsdpOption::Scan,
                    _ => return Err(bad("auto or scan")),
                }
            }
            "hpet_nmi" => {
                options.hpet_nmi = match value {
                    "off" => HpetNmiRoute::Off,
                    "fsb" => HpetNmiRoute::Fsb,
                    "ioapic" => HpetNmiRoute::IoApic,
                    _ => return Err(bad("off, fsb or ioapic")),
                }
            }
            "hpet_nmi_period_us" => {
                options.hpet_nmi_period_us = number(name, value, 1_000, 10_000_000, "1000..=10000000")?
            }
            "policy" => {
                options.policy = match value {
                    "off" => None,
                    name => Some(Policy::from_name(name).ok_or(bad(
                        "off, broadcast, round-robin, chain, remote or buddy",
                    ))?),
                }
            }
            "timeout" => {
                options.timeout_ns =
                    parse_seconds_ns(value).ok_or(bad("seconds, e.g. 1 or 0.5"))?
            }
            "handler" => options.handler = number(name, value, 0, u32::MAX, "a CPU index")?,
            "scenario" => {
                options.scenario = parse_scenario(value).ok_or(bad(
                    "idle, lockup:cpu=N,after=S[,kind=nmi-blocked], deadlock:cpus=A+B,after=S or spurious-nmi:after=S[,cpu=N]",
                ))?
            }
            "tick_us" => options.tick_us = number(name, value, 100, 1_000_000, "100..=1000000")?,
            "settle_ms" => options.settle_ms = number(name, value, 0, 60_000, "0..=60000")?,
            "fault_cpu" => options.fault_cpu = number(name, value, 0, u32::MAX, "a CPU index")?,
            "ap_timeout_ms" => {
                options.ap_timeout_ms = number(name, value, 1, 60_000, "1..=60000")?
            }
            _ => return Err(OptionError::Unknown { word }),
        }
    }
    Ok(options)
}

/// The `exit=` option alone, for ending the run as asked even when another word of the
/// command line is bad (so a typo under QEMU still ends with the error status).
pub fn exit_hint(cmdline: &str) -> ExitOption {
    let mut hint = ExitOption::Auto;
    for word in cmdline.split_ascii_whitespace() {
        hint = match word {
            "exit=qemu" => ExitOption::Qemu,
            "exit=halt" => ExitOption::Halt,
            "exit=reboot" => ExitOption::Reboot,
            "exit=auto" => ExitOption::Auto,
            _ => continue,
        };
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_options() {
        let o =
            parse("policy=remote timeout=0.5 handler=2 scenario=lockup:cpu=3,after=1.25").unwrap();
        assert_eq!(o.policy, Some(Policy::Remote));
        assert_eq!((o.timeout_ns, o.handler), (500_000_000, 2));
        assert_eq!(
            o.scenario,
            Scenario::Lockup {
                cpu: 3,
                after_ns: 1_250_000_000,
                nmi_blocked: false
            }
        );
        let s = |text: &'static str| parse(text).map(|o| o.scenario);
        assert_eq!(
            s("scenario=lockup:cpu=1,after=2,kind=nmi-blocked"),
            Ok(Scenario::Lockup {
                cpu: 1,
                after_ns: 2_000_000_000,
                nmi_blocked: true
            })
        );
        assert_eq!(
            s("scenario=deadlock:cpus=1+3,after=0.5"),
            Ok(Scenario::Deadlock {
                a: 1,
                b: 3,
                after_ns: 500_000_000
            })
        );
        assert_eq!(
            s("scenario=spurious-nmi:after=1"),
            Ok(Scenario::SpuriousNmi {
                cpu: None,
                after_ns: 1_000_000_000
            })
        );
        assert!(s("scenario=deadlock:cpus=2+2,after=1").is_err());
        assert!(s("scenario=deadlock:cpu=2,after=1").is_err());
        assert!(parse("policy=sometimes").is_err());
        assert!(parse("scenario=lockup:cpu=1").is_err());
        assert!(parse("timeout=1.2.3").is_err());
        assert_eq!(parse_seconds_ns("2"), Some(2_000_000_000));
        assert_eq!(parse_seconds_ns(".5"), Some(500_000_000));
        assert_eq!(parse_seconds_ns("0.000000001"), Some(1));
        assert_eq!(parse_seconds_ns(""), None);
        assert_eq!(parse_seconds_ns("1e3"), None);
    }

    #[test]
    fn exit_hint_survives_bad_words() {
        assert_eq!(exit_hint("bogus exit=qemu"), ExitOption::Qemu);
        assert_eq!(exit_hint("exit=nonsense"), ExitOption::Auto);
    }

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(parse(""), Ok(Options::default()));
        assert_eq!(parse("  /boot/hpetwd.elf  "), Ok(Options::default()));
    }

    #[test]
    fn every_option_is_read() {
        let o = parse("exit=qemu x2apic=off tick_us=500 settle_ms=250 fault=page-fault fault_cpu=3 ap_timeout_ms=20 rsdp=scan")
            .unwrap();
        assert_eq!(o.rsdp, RsdpOption::Scan);
        let r = parse("hpet_nmi=ioapic hpet_nmi_period_us=5000").unwrap();
        assert_eq!(
            (r.hpet_nmi, r.hpet_nmi_period_us),
            (HpetNmiRoute::IoApic, 5000)
        );
        assert!(parse("hpet_nmi=msi").is_err());
        assert!(parse("hpet_nmi_period_us=999").is_err());
        assert_eq!(o.exit, ExitOption::Qemu);
        assert_eq!(o.x2apic, X2apicOption::Off);
        assert_eq!(
            (o.tick_us, o.settle_ms, o.fault_cpu, o.ap_timeout_ms),
            (500, 250, 3, 20)
        );
        assert_eq!(o.fault, FaultKind::PageFault);
    }

    #[test]
    fn unknown_and_bad_words_are_errors() {
        assert_eq!(
            parse("exit=qemu frobnicate=1"),
            Err(OptionError::Unknown {
                word: "frobnicate=1"
            })
        );
        assert_eq!(parse("quiet"), Err(OptionError::Unknown { word: "quiet" }));
        assert!(matches!(
            parse("tick_us=5"),
            Err(OptionError::BadValue {
                name: "tick_us",
                ..
            })
        ));
        assert!(matches!(
            parse("tick_us=-1"),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            parse("exit=maybe"),
            Err(OptionError::BadValue { name: "exit", .. })
        ));
        assert_eq!(parse("bogus=1").unwrap_err().kind(), "unknown-option");
        assert_eq!(parse("exit=").unwrap_err().kind(), "bad-option-value");
    }
}
