//! `hpetctl run`: boot an image in QEMU, read the serial result protocol, and judge the run.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::{self, ImageKind};
use crate::qemu::{self, Accel, Boot, Ending, Firmware, Icount, QemuPlan, SmpSpec};
use crate::transcript::{Cpu, KernelError, Transcript, Verdict};

/// How long QEMU may keep running after the kernel's summary before it is killed.
pub const GRACE: Duration = Duration::from_secs(3);

/// The options of `hpetctl run`, validated.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub image: PathBuf,
    pub smp: SmpSpec,
    pub cpu: String,
    pub accel: Accel,
    pub firmware: Firmware,
    pub timeout: Duration,
    pub append: Option<String>,
    pub memory_mb: Option<u64>,
    pub icount: Icount,
    pub log: Option<PathBuf>,
    pub qemu_log: Option<PathBuf>,
    pub traces: Vec<String>,
    pub qemu_args: Vec<OsString>,
    pub verbose: bool,
}

/// The image that was booted.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub path: String,
    /// `elf` or `iso`.
    pub kind: &'static str,
    /// The GNU build id of an ELF image (hex), if it has one.
    pub build_id: Option<String>,
}

/// The `boot` record.
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    pub via: Option<String>,
    pub cmdline: Option<String>,
    pub exit: Option<String>,
    pub exit_reason: Option<String>,
}

/// How QEMU ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QemuReport {
    /// The command line, binary first.
    pub command: Vec<String>,
    /// QEMU's exit status, when it exited by itself.
    pub exit_status: Option<i32>,
    /// The signal that ended QEMU, if one did (9 when hpetctl killed it).
    pub signal: Option<i32>,
    /// `exited`, `killed-after-summary` or `killed-timeout`; null if QEMU never ran.
    pub ended: Option<&'static str>,
    /// The end of QEMU's own standard error output.
    pub stderr: String,
    /// The `-icount` shift in force, if any.
    pub icount_shift: Option<u8>,
}

/// The JSON document of `hpetctl run --json` (docs/hpetctl.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub result: Verdict,
    pub reason: Option<String>,
    pub image: Option<ImageReport>,
    pub build_id: Option<String>,
    pub kernel_version: Option<String>,
    pub protocol: Option<u64>,
    pub boot: Option<BootReport>,
    pub apic_mode: Option<String>,
    pub apic_reason: Option<String>,
    pub cpus_requested: Option<u64>,
    pub cpus_online: Option<u64>,
    pub cpus_expected: Option<u64>,
    pub cpus: Vec<Cpu>,
    pub tsc_hz: Option<u64>,
    pub smp_all_online_ns: Option<u64>,
    pub exception: Option<Map<String, Value>>,
    pub errors: Vec<KernelError>,
    pub platform: Map<String, Value>,
    pub warnings: Vec<String>,
    pub last_output: Option<String>,
    pub qemu: QemuReport,
    pub accel: Accel,
    pub firmware: Firmware,
    pub duration_ms: u64,
    pub log: Option<String>,
    pub qemu_log: Option<String>,
}

impl Report {
    /// A report for a run that could not start (bad options, bad image, missing tools).
    pub fn setup_error(reason: String, accel: Accel, firmware: Firmware) -> Report {
        Report {
            result: Verdict::Error,
            reason: Some(reason),
            image: None,
            build_id: None,
            kernel_version: None,
            protocol: None,
            boot: None,
            apic_mode: None,
            apic_reason: None,
            cpus_requested: None,
            cpus_online: None,
            cpus_expected: None,
            cpus: Vec::new(),
            tsc_hz: None,
            smp_all_online_ns: None,
            exception: None,
            errors: Vec::new(),
            platform: Map::new(),
            warnings: Vec::new(),
            last_output: None,
            qemu: QemuReport::default(),
            accel,
            firmware,
            duration_ms: 0,
            log: None,
            qemu_log: None,
        }
    }
}

/// The kernel command line for a PVH boot: `exit=qemu` first (so the run ends through
/// `isa-debug-exit`), unless the user's own options choose an exit mode.
pub fn kernel_cmdline(append: Option<&str>) -> String {
    let user = append.unwrap_or("").trim();
    if user.split_whitespace().any(|w| w.starts_with("exit=")) {
        user.to_string()
    } else if user.is_empty() {
        "exit=qemu".to_string()
    } else {
        format!("exit=qemu {user}")
    }
}

/// Everything prepared for one run: the plan and the temporary files it needs.
struct Prepared {
    plan: QemuPlan,
    image: ImageReport,
    /// OVMF's writable variable store, alive for the run.
    _vars: Option<tempfile::NamedTempFile>,
}

/// Check the image and the options, then find QEMU with `find_qemu` (after the image, so a
/// wrong file is reported as such even where QEMU is missing).
fn prepare(opts: &RunOptions, find_qemu: impl FnOnce() -> Result<PathBuf>) -> Result<Prepared> {
    let kind = image::recognise_file(&opts.image)?;
    let path = opts.image.display().to_string();
    let cpu = qemu::cpu_model(&opts.cpu, &opts.smp);
    let icount_shift = match (opts.accel, opts.icount) {
        (Accel::Tcg, Icount::Default) => Some(qemu::DEFAULT_ICOUNT_SHIFT),
        (Accel::Tcg, Icount::Shift(n)) => Some(n),
        (_, Icount::Off) | (Accel::Kvm, Icount::Default) => None,
        (Accel::Kvm, Icount::Shift(_)) => {
            bail!("--icount needs --accel tcg (KVM runs in real time; leave --icount out)")
        }
    };
    let mut vars_copy = None;
    let (boot, image) = match kind {
        ImageKind::Elf(info) => {
            if info.pvh_entry.is_none() {
                let hint = if info.multiboot2 {
                    " It has a multiboot2 header: boot the ISO that `hpetctl build` makes from it."
                } else {
                    ""
                };
                bail!(
                    "{path} is an ELF64 x86_64 file without a PVH note (ELF note type 18, name \"Xen\"), which QEMU's -kernel needs; expected the hpetwd kernel.{hint}"
                );
            }
            if opts.firmware == Firmware::Uefi {
                bail!(
                    "--firmware uefi cannot boot the ELF {path}: QEMU's -kernel PVH boot needs SeaBIOS (--firmware bios). To boot under UEFI, run the ISO that `hpetctl build` makes."
                );
            }
            (
                Boot::Kernel {
                    image: opts.image.clone(),
                    append: kernel_cmdline(opts.append.as_deref()),
                },
                ImageReport {
                    path,
                    kind: "elf",
                    build_id: info.build_id,
                },
            )
        }
        ImageKind::Iso => {
            if opts.append.is_some() {
                bail!(
                    "--append cannot change the command line of an ISO ({path}): it is fixed in the ISO's grub.cfg. Boot the ELF instead (`hpetctl run DIR/hpetwd.elf --append ...`)."
                );
            }
            let uefi = match opts.firmware {
                Firmware::Bios => None,
                Firmware::Uefi => {
                    let ovmf = qemu::find_ovmf()?;
                    let copy = tempfile::Builder::new()
                        .prefix("hpetwd-ovmf-vars-")
                        .suffix(".fd")
                        .tempfile()
                        .context("cannot create a temporary copy of the OVMF variable store")?;
                    std::fs::copy(&ovmf.vars, copy.path()).with_context(|| {
                        format!(
                            "cannot copy {} to {}",
                            ovmf.vars.display(),
                            copy.path().display()
                        )
                    })?;
                    let pair = (ovmf.code, copy.path().to_path_buf());
                    vars_copy = Some(copy);
                    Some(pair)
                }
            };
            (
                Boot::Cdrom {
                    image: opts.image.clone(),
                    uefi,
                },
                ImageReport {
                    path,
                    kind: "iso",
                    build_id: None,
                },
            )
        }
    };
    let qemu_bin = find_qemu()?;
    if opts.accel == Accel::Kvm {
        qemu::check_kvm()?;
    }
    let qemu_log = opts.qemu_log.clone().or_else(|| {
        if opts.traces.is_empty() {
            None
        } else {
            opts.log.as_ref().map(|l| {
                let mut s = l.clone().into_os_string();
                s.push(".qemu");
                PathBuf::from(s)
            })
        }
    });
    let plan = QemuPlan {
        qemu: qemu_bin,
        accel: opts.accel,
        cpu,
        smp: opts.smp.clone(),
        memory_mb: opts
            .memory_mb
            .unwrap_or_else(|| qemu::default_memory_mb(&opts.smp)),
        icount_shift,
        boot,
        traces: opts.traces.clone(),
        qemu_log,
        extra: opts.qemu_args.clone(),
    };
    Ok(Prepared {
        plan,
        image,
        _vars: vars_copy,
    })
}

/// Where the raw serial output goes during the run.
enum SerialLog {
    /// `--log FILE`.
    User(PathBuf, std::fs::File),
    /// A temporary file, kept only if the run does not pass.
    Temp(tempfile::NamedTempFile),
}

/// Run the image. Setup problems (bad image, bad options, missing tools) are errors; a run
/// that started always gives a report.
pub fn run(opts: &RunOptions) -> Result<Report> {
    let prepared = prepare(opts, qemu::find_qemu)?;
    let mut plan = prepared.plan;
    if let Some(p) = &opts.qemu_log {
        check_writable(p, "--qemu-log")?;
    }
    if !plan.traces.is_empty() && plan.qemu_log.is_none() {
        let f = tempfile::Builder::new()
            .prefix("hpetwd-qemu-")
            .suffix(".log")
            .tempfile()
            .context("cannot create a temporary file for QEMU's trace log")?;
        let (_, p) = f.keep().context("cannot keep QEMU's trace log")?;
        plan.qemu_log = Some(p);
    }
    let mut serial = match &opts.log {
        Some(p) => SerialLog::User(
            p.clone(),
            std::fs::File::create(p)
                .with_context(|| format!("cannot create the serial log --log {}", p.display()))?,
        ),
        None => SerialLog::Temp(
            tempfile::Builder::new()
                .prefix("hpetwd-serial-")
                .suffix(".log")
                .tempfile()
                .context("cannot create a temporary file for the serial log")?,
        ),
    };
    let mut transcript = Transcript::default();
    let outcome = {
        let file = match &mut serial {
            SerialLog::User(_, f) => f,
            SerialLog::Temp(t) => t.as_file_mut(),
        };
        qemu::run_captured(
            &plan,
            qemu::Capture {
                timeout: opts.timeout,
                grace: GRACE,
                log: Some(file),
                mirror: opts.verbose,
            },
            |line| transcript.feed(line),
        )?
    };
    if let Some(rest) = &outcome.unterminated {
        transcript.note_unterminated(rest);
    }
    let mut report = judge(
        &transcript,
        &outcome.ending,
        &outcome.stderr,
        &prepared.image,
        opts,
    );
    report.qemu.command = plan.command_line();
    report.qemu.icount_shift = plan.icount_shift;
    report.duration_ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX);
    report.qemu_log = plan.qemu_log.as_ref().map(|p| p.display().to_string());
    report.log = match serial {
        SerialLog::User(p, _) => Some(p.display().to_string()),
        SerialLog::Temp(t) if report.result != Verdict::Pass => {
            let (_, p) = t.keep().context("cannot keep the serial log")?;
            Some(p.display().to_string())
        }
        SerialLog::Temp(_) => None,
    };
    Ok(report)
}

fn describe_status(code: i32) -> String {
    match code {
        0 => "status 0: the guest reset or triple-faulted (QEMU runs with -no-reboot)".into(),
        1 => "status 1: QEMU failed".into(),
        c => match Verdict::from_qemu_status(c) {
            Some(v) => format!(
                "status {c} (the kernel's isa-debug-exit code for {})",
                v.as_str()
            ),
            None => format!("status {c}"),
        },
    }
}

fn first_stderr_line(stderr: &str) -> Option<&str> {
    stderr.lines().map(str::trim).find(|l| !l.is_empty())
}

/// Judge a run from what the kernel said and how QEMU ended.
pub fn judge(
    t: &Transcript,
    ending: &Ending,
    stderr: &str,
    image: &ImageReport,
    opts: &RunOptions,
) -> Report {
    use std::os::unix::process::ExitStatusExt;
    let mut report = Report::setup_error(String::new(), opts.accel, opts.firmware);
    report.reason = None;
    report.image = Some(image.clone());
    report.cpus_requested = Some(opts.smp.cpus);
    if let Some(b) = &t.build {
        report.build_id = b.id.clone();
        report.kernel_version = b.version.clone();
        report.protocol = b.protocol;
    }
    report.boot = t.boot.as_ref().map(|b| BootReport {
        via: b.via.clone(),
        cmdline: b.cmdline.clone(),
        exit: b.exit.clone(),
        exit_reason: b.exit_reason.clone(),
    });
    report.apic_mode = t.apic_mode.clone();
    report.apic_reason = t.apic_reason.clone();
    report.cpus_online = t
        .summary
        .as_ref()
        .and_then(|s| s.cpus_online)
        .or(t.smp_online);
    report.cpus_expected = t
        .summary
        .as_ref()
        .and_then(|s| s.cpus_expected)
        .or(t.smp_expected);
    report.cpus = t.cpus.clone();
    report.tsc_hz = t.tsc_hz;
    report.smp_all_online_ns = t.smp_all_online_ns;
    report.exception = t.exception.clone();
    report.errors = t.errors.clone();
    report.platform = t.platform.clone();
    report.warnings = t.warnings.clone();
    report.last_output = t.last_line.clone();
    report.qemu.stderr = stderr.trim_end().to_string();
    let (exit_code, ended) = match ending {
        Ending::Exited(s) => {
            report.qemu.exit_status = s.code();
            report.qemu.signal = s.signal();
            (s.code(), "exited")
        }
        Ending::KilledAfterGrace => (None, "killed-after-summary"),
        Ending::KilledTimeout => (None, "killed-timeout"),
        Ending::KilledGuestStopped => (None, "killed-guest-stopped"),
    };
    report.qemu.ended = Some(ended);
    if let (Some(img), Some(kernel)) = (&image.build_id, &report.build_id) {
        if !img.eq_ignore_ascii_case(kernel) {
            report.warnings.push(format!(
                "the kernel reports build id {kernel}, but the image's GNU build-id note is {img}"
            ));
        }
    }

    let last_seen = || match &t.last_line {
        Some(l) => format!("last serial output: \"{l}\""),
        None => "no serial output at all".to_string(),
    };
    let qemu_end = || -> String {
        match ending {
            Ending::Exited(s) => match s.code() {
                Some(c) => {
                    let mut m = format!("QEMU exited with {}", describe_status(c));
                    if c == 1 {
                        if let Some(l) = first_stderr_line(stderr) {
                            let _ = write!(m, ": {l}");
                        }
                        if stderr.contains("Bad icount read") {
                            m.push_str(
                                " (under -icount, QEMU 10.0 aborts so when the guest reads the x2APIC timer's current count, MSR 0x839; --icount off avoids it)",
                            );
                        }
                    }
                    m
                }
                None => format!(
                    "QEMU was killed by signal {}",
                    s.signal().map_or("?".to_string(), |n| n.to_string())
                ),
            },
            Ending::KilledTimeout => format!("timeout after {} s", opts.timeout.as_secs()),
            Ending::KilledAfterGrace => "QEMU was killed after the summary".into(),
            Ending::KilledGuestStopped => format!(
                "QEMU stopped the guest for good ({}) and was killed",
                crate::qemu::guest_stopped_line(stderr).unwrap_or("?")
            ),
        }
    };
    let error = |report: &mut Report, reason: String| {
        report.result = Verdict::Error;
        report.reason = Some(reason);
    };

    // Output-level problems first: without a sound transcript nothing else can be judged.
    if t.build.is_none() && t.first_record.is_none() {
        let why = match ending {
            Ending::KilledTimeout => format!("timeout after {} s", opts.timeout.as_secs()),
            _ => qemu_end(),
        };
        error(
            &mut report,
            format!(
                "no protocol output from the kernel (no `HPETWD build` line); {why}; {}",
                last_seen()
            ),
        );
        return report;
    }
    if t.first_record.as_deref() != Some("build") {
        error(
            &mut report,
            format!(
                "the first protocol record is `{}`, not `build`",
                t.first_record.as_deref().unwrap_or("?")
            ),
        );
        return report;
    }
    if let Some(p) = report.protocol {
        if p != crate::protocol::PROTOCOL_VERSION {
            error(
                &mut report,
                format!(
                    "the kernel speaks protocol version {p}; this hpetctl reads version {}",
                    crate::protocol::PROTOCOL_VERSION
                ),
            );
            return report;
        }
    }
    if t.restarted {
        error(
            &mut report,
            "the kernel started twice (a second `build` record): the guest rebooted".into(),
        );
        return report;
    }
    let Some(summary) = &t.summary else {
        let why = match ending {
            Ending::KilledTimeout => format!(
                "timeout after {} s before the summary",
                opts.timeout.as_secs()
            ),
            _ => format!("no summary record; {}", qemu_end()),
        };
        let mut reason = format!("{why}; {}", last_seen());
        if let Some(e) = &t.exception {
            let name = e.get("name").and_then(Value::as_str).unwrap_or("?");
            let _ = write!(reason, "; the kernel reported exception {name}");
        }
        error(&mut report, reason);
        return report;
    };

    // The summary against how QEMU ended.
    let exit_mode = t
        .boot
        .as_ref()
        .and_then(|b| b.exit.clone())
        .unwrap_or_else(|| {
            if image.kind == "elf" {
                "qemu".into()
            } else {
                "unknown".into()
            }
        });
    let verdict = summary.result;
    match (exit_mode.as_str(), ending, exit_code) {
        (_, Ending::Exited(_), Some(c)) if Verdict::from_qemu_status(c).is_some() => {
            let by_exit = Verdict::from_qemu_status(c).unwrap_or(Verdict::Error);
            if by_exit != verdict {
                error(
                    &mut report,
                    format!(
                        "the summary says {} but QEMU exited with {}",
                        verdict.as_str(),
                        describe_status(c)
                    ),
                );
                return report;
            }
        }
        ("qemu", Ending::KilledAfterGrace, _) => {
            error(
                &mut report,
                format!(
                    "the summary says {} but QEMU did not exit within {} s (exit mode qemu: is the isa-debug-exit device missing?)",
                    verdict.as_str(),
                    GRACE.as_secs()
                ),
            );
            return report;
        }
        ("halt" | "unknown", Ending::KilledAfterGrace, _) => {}
        ("reboot", Ending::Exited(_), Some(0)) => {}
        _ => {
            error(
                &mut report,
                format!(
                    "the summary says {} but {} (exit mode {exit_mode})",
                    verdict.as_str(),
                    qemu_end()
                ),
            );
            return report;
        }
    }

    // The summary against the rest of the transcript.
    let mut result = verdict;
    let mut reason = summary.reason.clone();
    if verdict == Verdict::Pass {
        let contradiction = if !t.errors.is_empty() {
            Some(format!(
                "the kernel reported {} error record(s), the first of kind `{}`",
                t.errors.len(),
                t.errors[0].kind
            ))
        } else if t.exception.is_some() {
            Some("the kernel reported an exception".to_string())
        } else if summary.cpus_online.is_none() || summary.cpus_expected.is_none() {
            Some("the summary lacks cpus_online or cpus_expected".to_string())
        } else if summary.cpus_online != summary.cpus_expected {
            Some(format!(
                "cpus_online={} differs from cpus_expected={}",
                summary.cpus_online.unwrap_or(0),
                summary.cpus_expected.unwrap_or(0)
            ))
        } else if let Some(c) = t.cpus.iter().find(|c| {
            c.online != Some(true) || (c.ticks.unwrap_or(0) == 0 && t.settle_ms != Some(0))
        }) {
            Some(format!(
                "the cpu record of CPU {} says online={} ticks={}",
                c.index,
                c.online.map_or("?".into(), |o| u8::from(o).to_string()),
                c.ticks.map_or("?".into(), |n| n.to_string())
            ))
        } else if !t.cpus.is_empty() && Some(t.cpus.len() as u64) != summary.cpus_expected {
            Some(format!(
                "{} cpu records but cpus_expected={}",
                t.cpus.len(),
                summary.cpus_expected.unwrap_or(0)
            ))
        } else {
            None
        };
        if let Some(c) = contradiction {
            error(&mut report, format!("the summary says pass but {c}"));
            return report;
        }
        if summary.cpus_expected != Some(opts.smp.cpus) {
            result = Verdict::Fail;
            reason = Some(format!(
                "the kernel expected {} CPU(s) but QEMU started {} (--smp {})",
                summary.cpus_expected.unwrap_or(0),
                opts.smp.cpus,
                opts.smp.text
            ));
        }
    } else if reason.is_none() {
        reason = Some(format!(
            "the kernel's summary says {} without a reason",
            verdict.as_str()
        ));
    }
    report.result = result;
    report.reason = reason;
    report
}

/// The human-readable summary of a run.
pub fn render_human(r: &Report) -> String {
    let mut s = String::new();
    let verdict = r.result.as_str().to_uppercase();
    let _ = writeln!(s, "result:    {verdict}");
    if let Some(reason) = &r.reason {
        let _ = writeln!(s, "reason:    {reason}");
    }
    if let Some(img) = &r.image {
        let _ = writeln!(s, "image:     {} ({})", img.path, img.kind);
    }
    if let Some(id) = &r.build_id {
        let _ = writeln!(
            s,
            "build:     {id} (version {}, protocol {})",
            r.kernel_version.as_deref().unwrap_or("?"),
            r.protocol.map_or("?".into(), |p| p.to_string())
        );
    }
    if let Some(b) = &r.boot {
        let _ = writeln!(
            s,
            "boot:      via {}, cmdline \"{}\", exit {}",
            b.via.as_deref().unwrap_or("?"),
            b.cmdline.as_deref().unwrap_or(""),
            b.exit.as_deref().unwrap_or("?")
        );
    }
    let count = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    if r.cpus_online.is_some() || r.cpus_expected.is_some() || !r.cpus.is_empty() {
        let _ = writeln!(
            s,
            "cpus:      {}/{} online ({} requested)",
            count(r.cpus_online),
            count(r.cpus_expected),
            count(r.cpus_requested)
        );
    }
    if let Some(mode) = &r.apic_mode {
        let _ = writeln!(
            s,
            "apic:      {mode} ({})",
            r.apic_reason.as_deref().unwrap_or("?")
        );
    }
    if let Some(hz) = r.tsc_hz {
        let _ = writeln!(s, "tsc:       {:.3} MHz", hz as f64 / 1e6);
    }
    if let Some(ns) = r.smp_all_online_ns {
        let _ = writeln!(s, "all up:    {:.3} ms guest time", ns as f64 / 1e6);
    }
    let icount = r
        .qemu
        .icount_shift
        .map_or(String::new(), |n| format!(", icount shift={n}"));
    let status = match (r.qemu.exit_status, r.qemu.ended) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some("exited")) => format!("signal {}", count(r.qemu.signal.map(|n| n as u64))),
        (None, Some(e)) => e.to_string(),
        (None, None) => "not run".to_string(),
    };
    let _ = writeln!(
        s,
        "qemu:      {status}, {} ms wall ({}{icount})",
        r.duration_ms,
        r.accel.as_str()
    );
    if !r.cpus.is_empty() {
        let _ = writeln!(s, "\n  CPU  APIC ID  MADT ID  x2APIC  BSP  online  ticks");
        let flag = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        for c in &r.cpus {
            let _ = writeln!(
                s,
                "{:>5}  {:>7}  {:>7}  {:>6}  {:>3}  {:>6}  {:>5}",
                c.index,
                count(c.apic_id),
                count(c.madt_apic_id),
                flag(c.x2apic),
                flag(c.bsp),
                flag(c.online),
                count(c.ticks)
            );
        }
        s.push('\n');
    }
    if let Some(e) = &r.exception {
        let field = |k: &str| match e.get(k) {
            Some(Value::String(v)) => v.clone(),
            Some(v) => v.to_string(),
            None => "?".into(),
        };
        let _ = writeln!(
            s,
            "exception: {} (vector {}) on CPU {} at rip {}, error code {}",
            field("name"),
            field("vector"),
            field("cpu"),
            field("rip"),
            field("error_code")
        );
    }
    for e in &r.errors {
        let _ = writeln!(
            s,
            "error:     {}{}",
            e.kind,
            e.detail
                .as_ref()
                .map_or(String::new(), |d| format!(": {d}"))
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning:   {w}");
    }
    if r.result != Verdict::Pass {
        if let Some(l) = &r.last_output {
            let _ = writeln!(s, "last line: {l}");
        }
        if let Some(l) = first_stderr_line(&r.qemu.stderr) {
            let _ = writeln!(s, "qemu said: {l}");
        }
    }
    match &r.log {
        Some(p) => {
            let _ = writeln!(s, "log:       {p}");
        }
        None => {
            let _ = writeln!(s, "log:       not kept (use --log FILE)");
        }
    }
    if let Some(p) = &r.qemu_log {
        let _ = writeln!(s, "qemu log:  {p}");
    }
    s
}

/// Check `path` is writable as a log before QEMU starts (used for `--qemu-log`).
pub fn check_writable(path: &Path, option: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .with_context(|| format!("cannot write {option} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn opts(smp: &str) -> RunOptions {
        RunOptions {
            image: "k.elf".into(),
            smp: SmpSpec::parse(smp).unwrap(),
            cpu: "qemu64".into(),
            accel: Accel::Tcg,
            firmware: Firmware::Bios,
            timeout: Duration::from_secs(120),
            append: None,
            memory_mb: None,
            icount: Icount::Default,
            log: None,
            qemu_log: None,
            traces: vec![],
            qemu_args: vec![],
            verbose: false,
        }
    }

    fn elf_image() -> ImageReport {
        ImageReport {
            path: "k.elf".into(),
            kind: "elf",
            build_id: Some("abcd".into()),
        }
    }

    fn exited(code: i32) -> Ending {
        Ending::Exited(ExitStatus::from_raw(code << 8))
    }

    fn log(cpus: u64, summary: &str) -> String {
        let mut s = String::from(
            "HPETWD build id=abcd version=0.1.0 protocol=1\r\n\
             HPETWD boot via=pvh cmdline=\"exit=qemu\" exit=qemu exit_reason=option\r\n",
        );
        for i in 0..cpus {
            s += &format!(
                "HPETWD cpu index={i} apic_id={i} madt_apic_id={i} x2apic=0 bsp={} online=1 ticks=10 online_ns=0\r\n",
                u8::from(i == 0)
            );
        }
        s += summary;
        s += "\r\n";
        s
    }

    fn judge_log(text: &str, ending: Ending, smp: &str) -> Report {
        let t = Transcript::from_bytes(text.as_bytes());
        judge(&t, &ending, "", &elf_image(), &opts(smp))
    }

    const PASS2: &str = "HPETWD summary result=pass cpus_online=2 cpus_expected=2";

    #[test]
    fn pass_needs_matching_exit_status() {
        let r = judge_log(&log(2, PASS2), exited(33), "2");
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        assert_eq!(r.reason, None);
        assert_eq!(r.cpus.len(), 2);
        assert_eq!(r.qemu.exit_status, Some(33));
        let r = judge_log(&log(2, PASS2), exited(35), "2");
        assert_eq!(r.result, Verdict::Error);
        assert!(r
            .reason
            .unwrap()
            .contains("says pass but QEMU exited with status 35"));
        let r = judge_log(&log(2, PASS2), Ending::KilledAfterGrace, "2");
        assert_eq!(r.result, Verdict::Error);
        assert!(r.reason.unwrap().contains("did not exit"));
        let r = judge_log(&log(2, PASS2), exited(0), "2");
        assert_eq!(r.result, Verdict::Error);
        assert!(r.reason.unwrap().contains("triple-faulted"));
    }

    #[test]
    fn fail_and_error_summaries() {
        let r = judge_log(
            &log(2, "HPETWD summary result=fail cpus_online=1 cpus_expected=2 reason=\"CPU 1 never came online\""),
            exited(35),
            "2",
        );
        assert_eq!(r.result, Verdict::Fail);
        assert_eq!(r.reason.as_deref(), Some("CPU 1 never came online"));
        let r = judge_log(
            &log(
                1,
                "HPETWD summary result=error cpus_online=1 cpus_expected=1",
            ),
            exited(37),
            "1",
        );
        assert_eq!(r.result, Verdict::Error);
        assert!(r.reason.unwrap().contains("without a reason"));
    }

    #[test]
    fn missing_output_and_summary() {
        let r = judge_log("SeaBIOS\r\nBooting from ROM..\r\n", exited(0), "1");
        assert_eq!(r.result, Verdict::Error);
        let reason = r.reason.unwrap();
        assert!(reason.contains("no `HPETWD build` line"), "{reason}");
        assert!(reason.contains("triple-faulted"), "{reason}");
        assert!(reason.contains("Booting from ROM.."), "{reason}");

        let r = judge_log(
            "HPETWD build id=abcd protocol=1\nHPETWD cpu index=0\n",
            Ending::KilledTimeout,
            "1",
        );
        let reason = r.reason.unwrap();
        assert!(reason.starts_with("timeout after 120 s"), "{reason}");
        assert!(reason.contains("HPETWD cpu index=0"), "{reason}");

        let r = judge_log("HPETWD build id=abcd protocol=1\n", exited(33), "1");
        let reason = r.reason.unwrap();
        assert!(reason.contains("no summary record"), "{reason}");
        assert!(reason.contains("status 33"), "{reason}");

        let r = judge_log("", Ending::KilledTimeout, "1");
        assert!(r.reason.unwrap().contains("no serial output at all"));
    }

    #[test]
    fn transcript_problems_are_errors() {
        let r = judge_log(
            "HPETWD boot via=pvh\nHPETWD build id=abcd\nHPETWD summary result=pass\n",
            exited(33),
            "1",
        );
        assert!(r
            .reason
            .unwrap()
            .contains("first protocol record is `boot`"));
        let r = judge_log(
            "HPETWD build id=abcd protocol=2\nHPETWD summary result=pass cpus_online=1 cpus_expected=1\n",
            exited(33),
            "1",
        );
        assert!(r.reason.unwrap().contains("protocol version 2"));
    }

    #[test]
    fn pass_contradicted_by_details() {
        let text = log(2, PASS2).replace(
            "index=1 apic_id=1 madt_apic_id=1 x2apic=0 bsp=0 online=1 ticks=10",
            "index=1 apic_id=1 madt_apic_id=1 x2apic=0 bsp=0 online=1 ticks=0",
        );
        let r = judge_log(&text, exited(33), "2");
        assert_eq!(r.result, Verdict::Error);
        assert!(r.reason.unwrap().contains("CPU 1 says online=1 ticks=0"));
        let text = log(1, "HPETWD error kind=bad-acpi detail=\"x\"\r\nHPETWD summary result=pass cpus_online=1 cpus_expected=1");
        let r = judge_log(&text, exited(33), "1");
        assert!(r.reason.unwrap().contains("error record"));
        // The kernel saw fewer CPUs than QEMU started: a failure of the run.
        let r = judge_log(&log(2, PASS2), exited(33), "3");
        assert_eq!(r.result, Verdict::Fail);
        assert!(r
            .reason
            .unwrap()
            .contains("expected 2 CPU(s) but QEMU started 3"));
    }

    #[test]
    fn halting_kernels_are_killed_after_the_summary() {
        let text = log(
            1,
            "HPETWD summary result=pass cpus_online=1 cpus_expected=1",
        )
        .replace(
            "exit=qemu exit_reason=option",
            "exit=halt exit_reason=default",
        );
        let r = judge_log(&text, Ending::KilledAfterGrace, "1");
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        assert_eq!(r.qemu.ended, Some("killed-after-summary"));
    }

    #[test]
    fn cmdline_gets_exit_qemu_unless_given() {
        assert_eq!(kernel_cmdline(None), "exit=qemu");
        assert_eq!(kernel_cmdline(Some("  ")), "exit=qemu");
        assert_eq!(
            kernel_cmdline(Some("tick_us=1000")),
            "exit=qemu tick_us=1000"
        );
        assert_eq!(
            kernel_cmdline(Some("exit=halt tick_us=1000")),
            "exit=halt tick_us=1000"
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let r = judge_log(&log(2, PASS2), exited(33), "2");
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "result",
            "reason",
            "cpus_online",
            "cpus_expected",
            "cpus",
            "apic_mode",
            "build_id",
            "boot",
            "tsc_hz",
            "smp_all_online_ns",
            "exception",
            "errors",
            "qemu",
            "accel",
            "duration_ms",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["result"], "pass");
        assert_eq!(v["accel"], "tcg");
        assert_eq!(v["cpus"][1]["apic_id"], 1);
        assert_eq!(v["cpus"][0]["bsp"], true);
        assert_eq!(v["boot"]["via"], "pvh");
        assert_eq!(v["qemu"]["exit_status"], 33);
        assert!(v["exception"].is_null());
        let human = render_human(&r);
        assert!(human.contains("result:    PASS"), "{human}");
        assert!(human.contains("cpus:      2/2 online"), "{human}");
    }

    fn write_image(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn prepare_rejects_bad_combinations() {
        let dir = tempfile::tempdir().unwrap();
        let q = || Ok(PathBuf::from("/usr/bin/qemu-system-x86_64"));
        let elf = write_image(dir.path(), "k.elf", &crate::image::tests::pvh_kernel());
        let iso = write_image(dir.path(), "k.iso", &crate::image::tests::iso_bytes());
        let nopvh = write_image(
            dir.path(),
            "n.elf",
            &crate::image::tests::make_elf(&[], true),
        );
        let text = write_image(dir.path(), "t.txt", b"hello");

        let mut o = opts("2");
        o.image = elf.clone();
        o.append = Some("tick_us=1000".into());
        let p = prepare(&o, q).unwrap();
        assert!(p
            .plan
            .command_line()
            .contains(&"exit=qemu tick_us=1000".to_string()));
        assert_eq!(p.plan.icount_shift, Some(7));
        assert_eq!(p.image.build_id.as_deref(), Some("deadbeef"));

        let e = |o: &RunOptions| format!("{:#}", prepare(o, q).err().unwrap());
        o.firmware = Firmware::Uefi;
        assert!(e(&o).contains("needs SeaBIOS"));
        o.firmware = Firmware::Bios;
        o.smp = SmpSpec::parse("300").unwrap();
        let p = prepare(&o, q).unwrap();
        assert_eq!(p.plan.cpu, "qemu64,+x2apic");
        assert_eq!(p.plan.icount_shift, Some(7));
        o.icount = Icount::Shift(6);
        assert_eq!(prepare(&o, q).unwrap().plan.icount_shift, Some(6));
        o.smp = SmpSpec::parse("2").unwrap();
        o.icount = Icount::Off;
        assert_eq!(prepare(&o, q).unwrap().plan.icount_shift, None);

        o.image = iso;
        assert!(e(&o).contains("--append cannot change"));
        o.append = None;
        assert!(matches!(
            prepare(&o, q).unwrap().plan.boot,
            Boot::Cdrom { uefi: None, .. }
        ));

        o.image = nopvh;
        let m = e(&o);
        assert!(
            m.contains("without a PVH note") && m.contains("multiboot2"),
            "{m}"
        );
        o.image = text.clone();
        let m = e(&o);
        assert!(
            m.contains(&text.display().to_string()) && m.contains("expected"),
            "{m}"
        );

        o.image = elf;
        o.accel = Accel::Kvm;
        o.icount = Icount::Shift(5);
        assert!(e(&o).contains("--icount needs --accel tcg"));
    }

    #[test]
    fn setup_error_report_is_complete_json() {
        let r = Report::setup_error("bad".into(), Accel::Tcg, Firmware::Bios);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["result"], "error");
        assert_eq!(v["reason"], "bad");
        assert!(v["cpus"].as_array().unwrap().is_empty());
        assert!(v["qemu"]["command"].as_array().unwrap().is_empty());
    }
}
