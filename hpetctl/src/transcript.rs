//! What the kernel said: the protocol records of one boot, collected line by line
//! (docs/protocol.md). Independent of QEMU, so a captured serial log can be read the same way.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::{self, parse_line, Line, Record};

/// The kernel's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }

    /// The `isa-debug-exit` status QEMU exits with for this verdict (protocol.md).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn qemu_status(self) -> i32 {
        match self {
            Verdict::Pass => 33,
            Verdict::Fail => 35,
            Verdict::Error => 37,
        }
    }

    /// The verdict an `isa-debug-exit` status stands for.
    pub fn from_qemu_status(status: i32) -> Option<Verdict> {
        match status {
            33 => Some(Verdict::Pass),
            35 => Some(Verdict::Fail),
            37 => Some(Verdict::Error),
            _ => None,
        }
    }

    /// The exit status of `hpetctl run`.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }
}

/// The `build` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Build {
    pub id: Option<String>,
    pub version: Option<String>,
    pub protocol: Option<u64>,
}

/// The `boot` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Boot {
    pub via: Option<String>,
    pub cmdline: Option<String>,
    pub exit: Option<String>,
    pub exit_reason: Option<String>,
}

/// One `cpu` record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub index: u64,
    pub apic_id: Option<u64>,
    pub madt_apic_id: Option<u64>,
    pub x2apic: Option<bool>,
    pub bsp: Option<bool>,
    pub online: Option<bool>,
    pub ticks: Option<u64>,
    pub online_ns: Option<u64>,
}

/// One `error` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelError {
    pub kind: String,
    pub detail: Option<String>,
}

/// The `summary` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub result: Verdict,
    pub cpus_online: Option<u64>,
    pub cpus_expected: Option<u64>,
    pub reason: Option<String>,
}

/// The `watchdog` record: the policy and its derived periods (docs/protocol.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchdogRecord {
    pub policy: Option<String>,
    pub timeout_ns: Option<u64>,
    pub heartbeat_ns: Option<u64>,
    pub check_period_ns: Option<u64>,
    /// 0 for `buddy`, which uses no HPET.
    pub hpet_period_ns: Option<u64>,
    pub window_ns: Option<u64>,
    pub bound_ns: Option<u64>,
    /// T - h: the earliest a lockup may be reported.
    pub earliest_ns: Option<u64>,
    pub handler: Option<u64>,
    /// Unknown NMIs the scenario itself causes (`spurious-nmi`), when the kernel says.
    pub expected_unknown: Option<u64>,
}

/// The `watchdog-route` record: how the HPET reaches the handling CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchdogRoute {
    pub kind: Option<String>,
    pub timer: Option<u64>,
    pub width: Option<u64>,
    pub dest_cpu: Option<u64>,
}

/// One `nmi-counts` record: the NMIs one CPU took during the watchdog run, by source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmiCounts {
    pub cpu: u64,
    pub total: Option<u64>,
    pub hpet: Option<u64>,
    pub ipi: Option<u64>,
    pub unknown: Option<u64>,
    pub duplicate: Option<u64>,
    pub swallowed: Option<u64>,
    pub stalls: Option<u64>,
}

/// One `lockup` record: a CPU the watchdog reported locked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lockup {
    pub cpu: u64,
    pub apic_id: Option<u64>,
    pub detected_by: Option<u64>,
    pub injected_at_ns: Option<u64>,
    pub detected_at_ns: Option<u64>,
    pub latency_ns: Option<u64>,
    pub stalled_ns: Option<u64>,
    pub rip: Option<u64>,
    pub rsp: Option<u64>,
}

/// Everything read from one boot's serial output.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Protocol records in order (every valid one, including unknown record names).
    pub records: Vec<Record>,
    pub build: Option<Build>,
    /// The name of the first protocol record (must be `build`).
    pub first_record: Option<String>,
    /// A second `build` record: the kernel started again.
    pub restarted: bool,
    pub boot: Option<Boot>,
    pub apic_mode: Option<String>,
    pub apic_reason: Option<String>,
    pub tsc_hz: Option<u64>,
    pub tsc_source: Option<String>,
    pub smp_online: Option<u64>,
    pub smp_expected: Option<u64>,
    pub smp_all_online_ns: Option<u64>,
    /// The settle window the kernel let the timers run (`smp settle_ms`); ticks are only
    /// expected when it is not zero.
    pub settle_ms: Option<u64>,
    pub cpus: Vec<Cpu>,
    pub errors: Vec<KernelError>,
    pub exception: Option<Map<String, Value>>,
    /// Records shown as generic objects: `acpi`, `madt`, `hpet`, `dmar`, `lapic-timer`.
    pub platform: Map<String, Value>,
    pub summary: Option<Summary>,
    /// The `watchdog` record (with `policy`).
    pub watchdog: Option<WatchdogRecord>,
    /// The `watchdog-route` record (HPET policies).
    pub watchdog_route: Option<WatchdogRoute>,
    /// The `nmi-counts` records, in order.
    pub nmi_counts: Vec<NmiCounts>,
    /// The `lockup` records, in order.
    pub lockups: Vec<Lockup>,
    /// Problems with the output itself (malformed lines, bad field values, lines after the
    /// summary).
    pub warnings: Vec<String>,
    /// The last non-empty line of serial output, cleaned for display.
    pub last_line: Option<String>,
    /// Serial lines seen (all, not only protocol lines).
    pub lines: u64,
}

/// Make serial text printable: control bytes dropped, escape sequences removed, cut to
/// `max` characters.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' {
            out.push(' ');
        } else if !c.is_control() {
            out.push(c);
        }
    }
    let trimmed = out.trim();
    if trimmed.chars().count() > max {
        let mut cut: String = trimmed.chars().take(max).collect();
        cut.push_str("...");
        cut
    } else {
        trimmed.to_string()
    }
}

/// A protocol value as JSON: a number when it reads as one, else a string.
fn json_value(v: &str) -> Value {
    match protocol::parse_number(v) {
        Some(n) if !v.starts_with("0x") && !v.starts_with("0X") => Value::from(n),
        _ => Value::from(v),
    }
}

fn record_object(r: &Record) -> Map<String, Value> {
    r.fields
        .iter()
        .map(|(k, v)| (k.clone(), json_value(v)))
        .collect()
}

impl Transcript {
    /// Feed one serial line. Returns true when it was the `summary` record.
    pub fn feed(&mut self, line: &Line) -> bool {
        self.lines += 1;
        let shown = printable(&line.bytes, 200);
        if !shown.is_empty() {
            self.last_line = Some(shown);
        }
        let record = match parse_line(&line.bytes) {
            None => return false,
            Some(Err(e)) => {
                self.warnings.push(format!(
                    "malformed protocol line {} ({e}): {}",
                    self.lines,
                    printable(&line.bytes, 120)
                ));
                return false;
            }
            Some(Ok(r)) => r,
        };
        if line.overlong {
            self.warnings.push(format!(
                "protocol line {} was longer than {} bytes and was ignored",
                self.lines,
                protocol::LineSplitter::MAX_LINE
            ));
            return false;
        }
        if self.summary.is_some() {
            self.warnings.push(format!(
                "protocol record `{}` after the summary (line {})",
                record.name, self.lines
            ));
            return false;
        }
        if self.first_record.is_none() {
            self.first_record = Some(record.name.clone());
        }
        let done = self.apply(&record);
        self.records.push(record);
        done
    }

    fn warn_field<T>(&mut self, r: Result<Option<T>, protocol::FieldError>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.warnings.push(e.to_string());
                None
            }
        }
    }

    fn apply(&mut self, r: &Record) -> bool {
        let s = |k: &str| r.str(k).map(str::to_string);
        match r.name.as_str() {
            "build" => {
                if self.build.is_some() {
                    self.restarted = true;
                    return false;
                }
                let protocol = self.warn_field(r.u64("protocol"));
                self.build = Some(Build {
                    id: s("id"),
                    version: s("version"),
                    protocol,
                });
            }
            "boot" => {
                self.boot = Some(Boot {
                    via: s("via"),
                    cmdline: s("cmdline"),
                    exit: s("exit"),
                    exit_reason: s("exit_reason"),
                })
            }
            "apic" => {
                self.apic_mode = s("mode");
                self.apic_reason = s("reason");
            }
            "tsc" => {
                self.tsc_hz = self.warn_field(r.u64("hz"));
                self.tsc_source = s("source");
                self.platform
                    .insert("tsc".into(), Value::Object(record_object(r)));
            }
            "smp" => {
                self.smp_online = self.warn_field(r.u64("online"));
                self.smp_expected = self.warn_field(r.u64("expected"));
                self.smp_all_online_ns = self.warn_field(r.u64("all_online_ns"));
                self.settle_ms = self.warn_field(r.u64("settle_ms"));
            }
            "cpu" => {
                let Some(index) = self.warn_field(r.u64("index")) else {
                    self.warnings
                        .push("a `cpu` record without a valid `index` was ignored".into());
                    return false;
                };
                let cpu = Cpu {
                    index,
                    apic_id: self.warn_field(r.u64("apic_id")),
                    madt_apic_id: self.warn_field(r.u64("madt_apic_id")),
                    x2apic: self.warn_field(r.bool("x2apic")),
                    bsp: self.warn_field(r.bool("bsp")),
                    online: self.warn_field(r.bool("online")),
                    ticks: self.warn_field(r.u64("ticks")),
                    online_ns: self.warn_field(r.u64("online_ns")),
                };
                self.cpus.push(cpu);
            }
            "watchdog" => {
                let mut n = |k: &str| self.warn_field(r.u64(k));
                let w = WatchdogRecord {
                    policy: None,
                    timeout_ns: n("timeout_ns"),
                    heartbeat_ns: n("heartbeat_ns"),
                    check_period_ns: n("check_period_ns"),
                    hpet_period_ns: n("hpet_period_ns"),
                    window_ns: n("window_ns"),
                    bound_ns: n("bound_ns"),
                    earliest_ns: n("earliest_ns"),
                    handler: n("handler"),
                    expected_unknown: n("expected_unknown"),
                };
                self.watchdog = Some(WatchdogRecord {
                    policy: s("policy"),
                    ..w
                });
            }
            "watchdog-route" => {
                let mut n = |k: &str| self.warn_field(r.u64(k));
                let route = WatchdogRoute {
                    kind: None,
                    timer: n("timer"),
                    width: n("width"),
                    dest_cpu: n("dest_cpu"),
                };
                self.watchdog_route = Some(WatchdogRoute {
                    kind: s("kind"),
                    ..route
                });
            }
            "nmi-counts" => {
                let Some(cpu) = self.warn_field(r.u64("cpu")) else {
                    self.warnings
                        .push("an `nmi-counts` record without a valid `cpu` was ignored".into());
                    return false;
                };
                let mut n = |k: &str| self.warn_field(r.u64(k));
                let counts = NmiCounts {
                    cpu,
                    total: n("total"),
                    hpet: n("hpet"),
                    ipi: n("ipi"),
                    unknown: n("unknown"),
                    duplicate: n("duplicate"),
                    swallowed: n("swallowed"),
                    stalls: n("stalls"),
                };
                self.nmi_counts.push(counts);
            }
            "lockup" => {
                let Some(cpu) = self.warn_field(r.u64("cpu")) else {
                    self.warnings
                        .push("a `lockup` record without a valid `cpu` was ignored".into());
                    return false;
                };
                let mut n = |k: &str| self.warn_field(r.u64(k));
                let lockup = Lockup {
                    cpu,
                    apic_id: n("apic_id"),
                    detected_by: n("detected_by"),
                    injected_at_ns: n("injected_at_ns"),
                    detected_at_ns: n("detected_at_ns"),
                    latency_ns: n("latency_ns"),
                    stalled_ns: n("stalled_ns"),
                    rip: n("rip"),
                    rsp: n("rsp"),
                };
                self.lockups.push(lockup);
            }
            "error" => self.errors.push(KernelError {
                kind: s("kind").unwrap_or_else(|| "unspecified".into()),
                detail: s("detail"),
            }),
            "exception" if self.exception.is_none() => {
                self.exception = Some(record_object(r));
            }
            "acpi" | "madt" | "hpet" | "dmar" | "lapic-timer" => {
                self.platform
                    .insert(r.name.replace('-', "_"), Value::Object(record_object(r)));
            }
            "summary" => {
                let result = match r.str("result") {
                    Some("pass") => Verdict::Pass,
                    Some("fail") => Verdict::Fail,
                    Some("error") => Verdict::Error,
                    other => {
                        self.warnings.push(format!(
                            "the summary record has result={} (expected pass, fail or error)",
                            other.unwrap_or("<missing>")
                        ));
                        // Still the last record: stop reading, the run is an error.
                        self.summary = Some(Summary {
                            result: Verdict::Error,
                            cpus_online: None,
                            cpus_expected: None,
                            reason: Some("malformed summary record".into()),
                        });
                        return true;
                    }
                };
                self.summary = Some(Summary {
                    result,
                    cpus_online: self.warn_field(r.u64("cpus_online")),
                    cpus_expected: self.warn_field(r.u64("cpus_expected")),
                    reason: s("reason"),
                });
                return true;
            }
            _ => {} // Unknown records are ignored (protocol.md: records can grow).
        }
        false
    }

    /// Feed a whole captured log (e.g. for tests or `hpetctl report`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn from_bytes(bytes: &[u8]) -> Transcript {
        let mut t = Transcript::default();
        let mut splitter = protocol::LineSplitter::default();
        for line in splitter.push(bytes) {
            t.feed(&line);
        }
        if let Some(rest) = splitter.finish() {
            t.note_unterminated(&rest);
        }
        t
    }

    /// The stream ended inside a line: it is not a complete record.
    pub fn note_unterminated(&mut self, rest: &Line) {
        let shown = printable(&rest.bytes, 200);
        if shown.is_empty() {
            return;
        }
        if parse_line(&rest.bytes).is_some() {
            self.warnings.push(format!(
                "the output ended inside a protocol line, which was ignored: {shown}"
            ));
        }
        self.last_line = Some(shown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS_LOG: &str = "SeaBIOS (version 1.16)\r\n\
        HPETWD build id=abcd version=0.1.0 protocol=1\r\n\
        HPETWD boot via=pvh cmdline=\"exit=qemu\" exit=qemu exit_reason=option\r\n\
        HPETWD acpi rsdp=0xf5a00 rsdp_source=pvh revision=2 oem=\"BOCHS \" tables=FACP,APIC,HPET\r\n\
        HPETWD apic mode=xapic reason=cpu-lacks-x2apic\r\n\
        HPETWD tsc hz=2000000000 source=hpet\r\n\
        HPETWD cpu index=0 apic_id=0 madt_apic_id=0 x2apic=0 bsp=1 online=1 ticks=10 online_ns=0\r\n\
        HPETWD cpu index=1 apic_id=1 madt_apic_id=1 x2apic=0 bsp=0 online=1 ticks=9 online_ns=5000\r\n\
        HPETWD smp online=2 expected=2 all_online_ns=5000\r\n\
        some free text\r\n\
        HPETWD summary result=pass cpus_online=2 cpus_expected=2\r\n";

    #[test]
    fn reads_a_passing_boot() {
        let t = Transcript::from_bytes(PASS_LOG.as_bytes());
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
        assert_eq!(t.first_record.as_deref(), Some("build"));
        let b = t.build.as_ref().unwrap();
        assert_eq!(b.id.as_deref(), Some("abcd"));
        assert_eq!(b.protocol, Some(1));
        assert_eq!(
            t.boot.as_ref().unwrap().cmdline.as_deref(),
            Some("exit=qemu")
        );
        assert_eq!(t.apic_mode.as_deref(), Some("xapic"));
        assert_eq!(t.tsc_hz, Some(2_000_000_000));
        assert_eq!(t.cpus.len(), 2);
        assert_eq!(t.cpus[1].ticks, Some(9));
        assert_eq!(t.cpus[1].bsp, Some(false));
        assert_eq!(t.smp_all_online_ns, Some(5000));
        let s = t.summary.as_ref().unwrap();
        assert_eq!(s.result, Verdict::Pass);
        assert_eq!((s.cpus_online, s.cpus_expected), (Some(2), Some(2)));
        let acpi = &t.platform["acpi"];
        assert_eq!(acpi["rsdp"], "0xf5a00");
        assert_eq!(acpi["revision"], 2);
        assert_eq!(acpi["oem"], "BOCHS ");
        assert_eq!(
            t.last_line.as_deref(),
            Some("HPETWD summary result=pass cpus_online=2 cpus_expected=2")
        );
    }

    #[test]
    fn records_after_summary_and_malformed_lines_are_warnings() {
        let log = "HPETWD build id=1 protocol=1\n\
                   HPETWD cpu index=zero\n\
                   HPETWD error kind=no-acpi detail=\"no RSDP\n\
                   HPETWD summary result=error cpus_online=1 cpus_expected=1 reason=\"no ACPI\"\n\
                   HPETWD cpu index=3\n";
        let t = Transcript::from_bytes(log.as_bytes());
        assert!(t.cpus.is_empty());
        assert_eq!(t.summary.as_ref().unwrap().result, Verdict::Error);
        assert_eq!(
            t.summary.as_ref().unwrap().reason.as_deref(),
            Some("no ACPI")
        );
        assert_eq!(t.warnings.len(), 4, "{:?}", t.warnings);
        assert!(t.warnings[2].contains("malformed protocol line 3"));
        assert!(t.warnings[3].contains("after the summary"));
    }

    #[test]
    fn a_truncated_summary_is_no_summary() {
        let log = "HPETWD build id=1 protocol=1\r\nHPETWD summary result=pass cpus_on";
        let t = Transcript::from_bytes(log.as_bytes());
        assert!(t.summary.is_none());
        assert!(t.warnings[0].contains("ended inside a protocol line"));
        assert_eq!(
            t.last_line.as_deref(),
            Some("HPETWD summary result=pass cpus_on")
        );
    }

    #[test]
    fn bad_summary_result_is_an_error_summary() {
        let t = Transcript::from_bytes(b"HPETWD build id=1\nHPETWD summary result=ok\n");
        assert_eq!(t.summary.as_ref().unwrap().result, Verdict::Error);
        assert!(t.warnings[0].contains("result=ok"));
    }

    #[test]
    fn second_build_means_restart_and_exceptions_are_kept() {
        let log = "HPETWD build id=1\n\
                   HPETWD exception cpu=0 apic_id=0 vector=14 name=page-fault error_code=0x2 rip=0xffff800000001234 cr2=0x0\n\
                   HPETWD build id=1\n";
        let t = Transcript::from_bytes(log.as_bytes());
        assert!(t.restarted);
        let e = t.exception.as_ref().unwrap();
        assert_eq!(e["vector"], 14);
        assert_eq!(e["name"], "page-fault");
        assert_eq!(e["rip"], "0xffff800000001234");
    }

    #[test]
    fn reads_the_watchdog_records() {
        let log = "HPETWD build id=abcd version=0.1.0 protocol=1\r\n\
            HPETWD watchdog policy=broadcast timeout_ns=1000000000 heartbeat_ns=200000000 check_period_ns=400000000 hpet_period_ns=400000000 window_ns=1600000 bound_ns=1450000000 earliest_ns=800000000 handler=1 future_key=7\r\n\
            HPETWD watchdog-route kind=fsb timer=0 width=64 dest_cpu=1\r\n\
            HPETWD nmi-counts cpu=0 total=8 hpet=0 ipi=8 unknown=0 duplicate=0 swallowed=0 stalls=0\r\n\
            HPETWD nmi-counts cpu=1 total=10 unknown=0 duplicate=2 swallowed=0 stalls=0\r\n\
            HPETWD lockup cpu=2 apic_id=2 detected_by=2 injected_at_ns=1395913802 detected_at_ns=2400248582 latency_ns=1004334780 stalled_ns=1004345147 rip=0x206af2 rsp=0x279f90 rflags=0x2\r\n\
            HPETWD lockup cpu=3 detected_by=x\r\n\
            HPETWD lockup apic_id=1\r\n\
            HPETWD summary result=pass cpus_online=4 cpus_expected=4\r\n";
        let t = Transcript::from_bytes(log.as_bytes());
        let w = t.watchdog.as_ref().unwrap();
        assert_eq!(w.policy.as_deref(), Some("broadcast"));
        assert_eq!(w.timeout_ns, Some(1_000_000_000));
        assert_eq!(w.earliest_ns, Some(800_000_000));
        assert_eq!(w.handler, Some(1));
        assert_eq!(w.expected_unknown, None);
        let r = t.watchdog_route.as_ref().unwrap();
        assert_eq!(r.kind.as_deref(), Some("fsb"));
        assert_eq!((r.timer, r.width, r.dest_cpu), (Some(0), Some(64), Some(1)));
        assert_eq!(t.nmi_counts.len(), 2);
        assert_eq!(t.nmi_counts[0].ipi, Some(8));
        // Fields an older kernel does not print are absent, not zero.
        assert_eq!(t.nmi_counts[1].hpet, None);
        assert_eq!(t.nmi_counts[1].duplicate, Some(2));
        assert_eq!(t.lockups.len(), 2, "{:?}", t.lockups);
        let l = &t.lockups[0];
        assert_eq!((l.cpu, l.apic_id, l.detected_by), (2, Some(2), Some(2)));
        assert_eq!(l.latency_ns, Some(1_004_334_780));
        assert_eq!(l.rip, Some(0x206af2));
        assert_eq!(l.rsp, Some(0x279f90));
        // A bad value is a warning and leaves the field empty; no cpu drops the record.
        assert_eq!(t.lockups[1].cpu, 3);
        assert_eq!(t.lockups[1].detected_by, None);
        assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("detected_by=x"));
        assert!(t.warnings[1].contains("`lockup` record without a valid `cpu`"));
    }

    #[test]
    fn printable_strips_noise() {
        assert_eq!(
            printable(b"\x1b[2J\x1b[HBooting `hpetwd'\r", 100),
            "Booting `hpetwd'"
        );
        assert_eq!(printable(b"abcdef", 3), "abc...");
        assert_eq!(printable(b"\xff\x00ok", 10), "\u{fffd}ok");
    }

    #[test]
    fn verdicts_and_statuses() {
        for v in [Verdict::Pass, Verdict::Fail, Verdict::Error] {
            assert_eq!(Verdict::from_qemu_status(v.qemu_status()), Some(v));
        }
        assert_eq!(Verdict::from_qemu_status(0), None);
        assert_eq!(Verdict::Fail.exit_code(), 1);
    }
}
