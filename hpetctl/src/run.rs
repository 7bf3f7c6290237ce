//! `hpetctl run`: boot an image in QEMU, read the serial result protocol, and judge the run.

use anyhow::{bail, Context, Result};
use nmi_watchdog::policy::Policy;
use nmi_watchdog::timing::{MAX_TIMEOUT_NS, MIN_TIMEOUT_NS};
use serde::Serialize;
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::{self, ImageKind};
use crate::qemu::{self, Accel, Boot, Ending, Firmware, Icount, QemuPlan, SmpSpec};
use crate::symbols::Symbols;
use crate::transcript::{Cpu, KernelError, NmiCounts, Transcript, Verdict};

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

/// The watchdog's kernel options given as `hpetctl run` options (`--policy`,
/// `--watchdog-timeout`, `--handler`, `--scenario`), each already validated; they become
/// `policy=`, `timeout=`, `handler=` and `scenario=` words on an ELF's command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchdogOptions {
    pub policy: Option<String>,
    /// T in seconds, as given (fractions allowed).
    pub timeout: Option<String>,
    pub handler: Option<u32>,
    pub scenario: Option<String>,
}

/// The scenario names the kernel knows (the part of `scenario=` before the colon).
pub const SCENARIOS: [&str; 6] = [
    "idle",
    "lockup",
    "lockup-all",
    "deadlock",
    "spurious-nmi",
    "stress",
];

/// The kernel's `policy=` values: `off` and every policy nmi-watchdog knows.
pub fn policy_names() -> impl Iterator<Item = &'static str> {
    core::iter::once("off").chain(Policy::ALL.iter().map(|p| p.name()))
}

/// T as the kernel reads `timeout=` (the shared parser of nmi-watchdog, which owns T).
pub use nmi_watchdog::timing::parse_seconds_ns;

impl WatchdogOptions {
    /// Check every value as the kernel will (the scenario only up to its name: the kernel
    /// checks the rest and reports a bad one in an `error` record).
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.policy {
            if !policy_names().any(|name| name == p) {
                let names: Vec<&str> = policy_names().collect();
                bail!(
                    "invalid --policy `{p}`: expected one of {} (docs/cmdline.md)",
                    names.join(", ")
                );
            }
        }
        if let Some(t) = &self.timeout {
            let ns = parse_seconds_ns(t).with_context(|| {
                format!("invalid --watchdog-timeout `{t}`: expected seconds, e.g. 1 or 0.5 (at most 9 decimals)")
            })?;
            if !(MIN_TIMEOUT_NS..=MAX_TIMEOUT_NS).contains(&ns) {
                bail!("invalid --watchdog-timeout `{t}`: T must be between 0.01 and 600 seconds");
            }
        }
        if let Some(s) = &self.scenario {
            check_scenario(s)?;
        }
        Ok(())
    }

    /// `(option, boot word)` pairs, in a fixed order.
    fn words(&self) -> Vec<(&'static str, String)> {
        let mut w = Vec::new();
        if let Some(p) = &self.policy {
            w.push(("--policy", format!("policy={p}")));
        }
        if let Some(t) = &self.timeout {
            w.push(("--watchdog-timeout", format!("timeout={t}")));
        }
        if let Some(h) = self.handler {
            w.push(("--handler", format!("handler={h}")));
        }
        if let Some(s) = &self.scenario {
            w.push(("--scenario", format!("scenario={s}")));
        }
        w
    }

    /// Whether hpetctl adds `-global hpet.msi=on`: a policy other than `off` was given and
    /// the user's QEMU arguments say nothing about `hpet.msi`.
    fn wants_hpet_msi(&self, qemu_args: &[OsString]) -> bool {
        self.policy.as_deref().is_some_and(|p| p != "off")
            && !qemu_args
                .iter()
                .any(|a| a.to_string_lossy().contains("hpet.msi"))
    }
}

/// The syntactic check of `--scenario`: a known name, optionally `:` and parameters, one word
/// of printable ASCII.
pub fn check_scenario(spec: &str) -> Result<()> {
    let (name, params) = match spec.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (spec, None),
    };
    if !SCENARIOS.contains(&name) {
        bail!(
            "invalid --scenario `{spec}`: the name before the colon must be one of {} (docs/cmdline.md)",
            SCENARIOS.join(", ")
        );
    }
    if params == Some("") {
        bail!("invalid --scenario `{spec}`: nothing after the colon (e.g. lockup:cpu=1,after=1.5)");
    }
    if let Some(c) = spec.chars().find(|c| !c.is_ascii_graphic() || *c == '"') {
        bail!("invalid --scenario `{spec}`: the character {c:?} cannot be part of one boot option word");
    }
    Ok(())
}

/// What a scenario locks, read from its `scenario=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// These logical CPUs (none for `idle`, `spurious-nmi`, `stress`).
    Cpus(std::collections::BTreeSet<u64>),
    /// Every CPU (`lockup-all`).
    All,
}

/// The CPUs a scenario locks: `lockup:cpu=N` (also `kind=nmi-blocked`) locks N,
/// `deadlock:cpus=A+B` locks A and B, `lockup-all` every CPU; anything else none.
pub fn scenario_locks(spec: &str) -> Locked {
    let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
    let param = |key: &str| {
        params
            .split(',')
            .filter_map(|f| f.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    };
    let mut set = std::collections::BTreeSet::new();
    match name {
        "lockup-all" => return Locked::All,
        "lockup" => {
            if let Some(n) = param("cpu").and_then(|v| v.parse().ok()) {
                set.insert(n);
            }
        }
        "deadlock" => {
            if let Some((a, b)) = param("cpus").and_then(|v| v.split_once('+')) {
                set.extend(a.parse::<u64>().ok());
                set.extend(b.parse::<u64>().ok());
            }
        }
        _ => {}
    }
    Locked::Cpus(set)
}

/// The scenario in force on a kernel command line: the last `scenario=` word (the kernel
/// reads left to right), else `idle`.
pub fn scenario_of_cmdline(cmdline: &str) -> String {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("scenario="))
        .next_back()
        .unwrap_or("idle")
        .to_string()
}

/// The `watchdog-route` record.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub kind: Option<String>,
    pub timer: Option<u64>,
    pub width: Option<u64>,
    pub dest_cpu: Option<u64>,
}

/// One reported lockup, in milliseconds from arming the watchdog.
#[derive(Debug, Clone, Serialize)]
pub struct LockupReport {
    pub cpu: u64,
    pub apic_id: Option<u64>,
    pub detected_by: Option<u64>,
    pub injected_at_ms: Option<f64>,
    pub detected_at_ms: Option<f64>,
    pub latency_ms: Option<f64>,
    pub stalled_ms: Option<f64>,
    /// Hex, like `"0x206af2"`.
    pub rip: Option<String>,
    pub rsp: Option<String>,
    /// The function containing `rip`, from the image's ELF symbol table.
    pub symbol: Option<String>,
    /// Whether the scenario locked this CPU (false: a false positive).
    pub injected: bool,
    #[serde(skip)]
    rip_value: Option<u64>,
}

/// NMI counts summed over the CPUs (null where no `nmi-counts` record had the field).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NmiTotals {
    pub total: Option<u64>,
    pub hpet: Option<u64>,
    pub ipi: Option<u64>,
    pub unknown: Option<u64>,
    pub duplicate: Option<u64>,
    pub swallowed: Option<u64>,
}

/// The watchdog run: the `watchdog`, `watchdog-route`, `lockup` and `nmi-counts` records,
/// and what hpetctl makes of them.
#[derive(Debug, Clone, Serialize)]
pub struct WatchdogReport {
    pub policy: Option<String>,
    pub timeout_ms: Option<f64>,
    pub heartbeat_ms: Option<f64>,
    pub check_period_ms: Option<f64>,
    /// Null for a policy without the HPET (`buddy`).
    pub hpet_period_ms: Option<f64>,
    pub window_ms: Option<f64>,
    pub bound_ms: Option<f64>,
    pub earliest_ms: Option<f64>,
    pub handler: Option<u64>,
    /// The scenario on the kernel's command line (`idle` when none).
    pub scenario: String,
    /// The CPUs the scenario locks (every CPU for `lockup-all`).
    pub injected_cpus: Vec<u64>,
    /// Unknown NMIs the kernel expects from the scenario (`spurious-nmi`), if it says.
    pub expected_unknown: Option<u64>,
    pub route: Option<RouteReport>,
    pub lockups: Vec<LockupReport>,
    /// CPUs reported locked that the scenario did not lock.
    pub false_positives: Vec<u64>,
    /// CPUs the scenario locked that were not reported.
    pub missed: Vec<u64>,
    /// Times the HPET NMIs were noticed to have stopped (sum of `stalls`).
    pub watchdog_stalls: u64,
    pub nmis: NmiTotals,
    pub nmis_per_cpu: Vec<NmiCounts>,
}

fn ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e6)
}

/// The watchdog report from a transcript; `None` without a `watchdog` record.
pub fn watchdog_report(t: &Transcript) -> Option<WatchdogReport> {
    let w = t.watchdog.as_ref()?;
    let scenario = t
        .boot
        .as_ref()
        .and_then(|b| b.cmdline.as_deref())
        .map_or_else(|| "idle".to_string(), scenario_of_cmdline);
    let injected: Vec<u64> = match scenario_locks(&scenario) {
        Locked::Cpus(set) => set.into_iter().collect(),
        Locked::All => {
            let n = if t.nmi_counts.is_empty() {
                t.summary
                    .as_ref()
                    .and_then(|s| s.cpus_expected)
                    .or(t.smp_expected)
                    .unwrap_or(0)
            } else {
                t.nmi_counts.iter().map(|c| c.cpu + 1).max().unwrap_or(0)
            };
            (0..n).collect()
        }
    };
    let lockups: Vec<LockupReport> = t
        .lockups
        .iter()
        .map(|l| LockupReport {
            cpu: l.cpu,
            apic_id: l.apic_id,
            detected_by: l.detected_by,
            injected_at_ms: ms(l.injected_at_ns),
            detected_at_ms: ms(l.detected_at_ns),
            latency_ms: ms(l.latency_ns),
            stalled_ms: ms(l.stalled_ns),
            rip: l.rip.map(|v| format!("{v:#x}")),
            rsp: l.rsp.map(|v| format!("{v:#x}")),
            symbol: None,
            injected: injected.contains(&l.cpu),
            rip_value: l.rip,
        })
        .collect();
    let mut false_positives: Vec<u64> = lockups
        .iter()
        .filter(|l| !l.injected)
        .map(|l| l.cpu)
        .collect();
    false_positives.dedup();
    let missed = injected
        .iter()
        .copied()
        .filter(|c| !t.lockups.iter().any(|l| l.cpu == *c))
        .collect();
    let sum = |f: fn(&NmiCounts) -> Option<u64>| -> Option<u64> {
        t.nmi_counts
            .iter()
            .filter_map(f)
            .fold(None, |acc, v| Some(acc.unwrap_or(0) + v))
    };
    Some(WatchdogReport {
        policy: w.policy.clone(),
        timeout_ms: ms(w.timeout_ns),
        heartbeat_ms: ms(w.heartbeat_ns),
        check_period_ms: ms(w.check_period_ns),
        hpet_period_ms: ms(w.hpet_period_ns.filter(|&n| n != 0)),
        window_ms: ms(w.window_ns),
        bound_ms: ms(w.bound_ns),
        earliest_ms: ms(w.earliest_ns),
        handler: w.handler,
        scenario,
        injected_cpus: injected,
        expected_unknown: w.expected_unknown,
        route: t.watchdog_route.as_ref().map(|r| RouteReport {
            kind: r.kind.clone(),
            timer: r.timer,
            width: r.width,
            dest_cpu: r.dest_cpu,
        }),
        lockups,
        false_positives,
        missed,
        watchdog_stalls: sum(|c| c.stalls).unwrap_or(0),
        nmis: NmiTotals {
            total: sum(|c| c.total),
            hpet: sum(|c| c.hpet),
            ipi: sum(|c| c.ipi),
            unknown: sum(|c| c.unknown),
            duplicate: sum(|c| c.duplicate),
            swallowed: sum(|c| c.swallowed),
        },
        nmis_per_cpu: t.nmi_counts.clone(),
    })
}

/// hpetctl's own check of a watchdog run the kernel called a pass: why it is not one.
fn watchdog_contradiction(t: &Transcript, w: &WatchdogReport) -> Option<String> {
    if let Some(cpu) = w.false_positives.first() {
        return Some(format!(
            "CPU {cpu} was reported locked, which scenario `{}` did not lock (a false positive)",
            w.scenario
        ));
    }
    if let Some(cpu) = w.missed.first() {
        return Some(format!(
            "scenario `{}` locked CPU {cpu}, which was never reported",
            w.scenario
        ));
    }
    let wd = t.watchdog.as_ref()?;
    for l in &t.lockups {
        let (Some(lat), Some(lo), Some(hi)) = (l.latency_ns, wd.earliest_ns, wd.bound_ns) else {
            continue;
        };
        if lat < lo || lat > hi {
            return Some(format!(
                "the lockup of CPU {} was detected after {:.3} ms, outside [T - h, bound] = [{:.3}, {:.3}] ms",
                l.cpu,
                lat as f64 / 1e6,
                lo as f64 / 1e6,
                hi as f64 / 1e6
            ));
        }
    }
    if w.watchdog_stalls > 0 {
        return Some(format!(
            "the HPET NMIs stopped {} time(s) during the run (watchdog stalls)",
            w.watchdog_stalls
        ));
    }
    let unknown = w.nmis.unknown.unwrap_or(0);
    match w.expected_unknown {
        Some(e) if unknown != e => Some(format!(
            "{unknown} unknown NMI(s) where the scenario causes {e}"
        )),
        None if unknown > 0 => Some(format!("{unknown} unknown NMI(s) during the run")),
        _ => None,
    }
}

/// Name the function each lockup's RIP is in, from `symbols`.
pub fn resolve_symbols(w: &mut WatchdogReport, symbols: &Symbols) {
    for l in &mut w.lockups {
        l.symbol = l
            .rip_value
            .and_then(|rip| symbols.lookup(rip))
            .map(str::to_string);
    }
}

/// The symbol table of the kernel that ran: the ELF image itself, or for an ISO the kernel
/// embedded in this hpetctl when its build id is the one the kernel reported. `None` when
/// neither is known to be the kernel that ran.
fn kernel_symbols(
    opts: &RunOptions,
    image: &ImageReport,
    kernel_id: Option<&str>,
) -> Option<Symbols> {
    let same = |id: Option<&str>| match (id, kernel_id) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    if image.kind == "elf" {
        if image.build_id.is_some() && kernel_id.is_some() && !same(image.build_id.as_deref()) {
            return None;
        }
        let bytes = std::fs::read(&opts.image).ok()?;
        return Symbols::from_elf(&bytes).ok();
    }
    let embedded = crate::kernel_image::embedded_elf();
    let id = match image::recognise(embedded) {
        Ok(ImageKind::Elf(info)) => info.build_id,
        _ => None,
    };
    if same(id.as_deref()) {
        Symbols::from_elf(embedded).ok()
    } else {
        None
    }
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
    /// The watchdog run, when the kernel printed a `watchdog` record.
    pub watchdog: Option<WatchdogReport>,
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
            watchdog: None,
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

/// The ELF's command line: [`kernel_cmdline`] plus the watchdog options' words. An option
/// given both ways (`--policy` and `policy=` in `--append`) is an error.
pub fn watchdog_cmdline(append: Option<&str>, wd: &WatchdogOptions) -> Result<String> {
    let mut line = kernel_cmdline(append);
    for (option, word) in wd.words() {
        let key = word.split_once('=').map_or(word.as_str(), |(k, _)| k);
        if append
            .unwrap_or("")
            .split_ascii_whitespace()
            .any(|w| w.split_once('=').is_some_and(|(k, _)| k == key))
        {
            bail!("{option} and `{key}=` in --append both set the kernel's `{key}`: give one");
        }
        line.push(' ');
        line.push_str(&word);
    }
    Ok(line)
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
fn prepare(
    opts: &RunOptions,
    wd: &WatchdogOptions,
    find_qemu: impl FnOnce() -> Result<PathBuf>,
) -> Result<Prepared> {
    let kind = image::recognise_file(&opts.image)?;
    wd.validate()?;
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
                    append: watchdog_cmdline(opts.append.as_deref(), wd)?,
                },
                ImageReport {
                    path,
                    kind: "elf",
                    build_id: info.build_id,
                },
            )
        }
        ImageKind::Iso => {
            if let Some((option, _)) = wd.words().first() {
                bail!(
                    "{option} cannot change the command line of an ISO ({path}): it is fixed in the ISO's grub.cfg. Boot the ELF instead (`hpetctl run DIR/hpetwd.elf {option} ...`)."
                );
            }
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
        extra: if wd.wants_hpet_msi(&opts.qemu_args) {
            let mut extra = vec![OsString::from("-global"), OsString::from("hpet.msi=on")];
            extra.extend(opts.qemu_args.iter().cloned());
            extra
        } else {
            opts.qemu_args.clone()
        },
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
    run_with(opts, &WatchdogOptions::default())
}

/// [`run`] with the watchdog's kernel options (`hpetctl run --policy ...`).
pub fn run_with(opts: &RunOptions, wd: &WatchdogOptions) -> Result<Report> {
    let prepared = prepare(opts, wd, qemu::find_qemu)?;
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
    if let Some(w) = &mut report.watchdog {
        if let Some(symbols) = kernel_symbols(opts, &prepared.image, report.build_id.as_deref()) {
            resolve_symbols(w, &symbols);
        }
    }
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
    report.watchdog = watchdog_report(t);
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
        if let Some(c) = report
            .watchdog
            .as_ref()
            .and_then(|w| watchdog_contradiction(t, w))
        {
            result = Verdict::Fail;
            reason = Some(format!("the summary says pass but {c}"));
        } else if summary.cpus_expected != Some(opts.smp.cpus) {
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
    if let Some(w) = &r.watchdog {
        render_watchdog(&mut s, w);
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

/// The watchdog section of the human summary.
fn render_watchdog(s: &mut String, w: &WatchdogReport) {
    let t = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v}"));
    let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let _ = writeln!(
        s,
        "watchdog:  {}, T {} ms, heartbeat {} ms, check {} ms, HPET period {}, window {} ms, handler CPU {}",
        w.policy.as_deref().unwrap_or("?"),
        t(w.timeout_ms),
        t(w.heartbeat_ms),
        t(w.check_period_ms),
        w.hpet_period_ms.map_or("none".to_string(), |v| format!("{v} ms")),
        t(w.window_ms),
        n(w.handler)
    );
    let _ = writeln!(
        s,
        "scenario:  {} (locks {}); detection expected within [{}, {}] ms",
        w.scenario,
        if w.injected_cpus.is_empty() {
            "no CPU".to_string()
        } else {
            format!(
                "CPU {}",
                w.injected_cpus
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        t(w.earliest_ms),
        t(w.bound_ms)
    );
    if let Some(r) = &w.route {
        let _ = writeln!(
            s,
            "route:     {}, HPET timer {}, {}-bit, to CPU {}",
            r.kind.as_deref().unwrap_or("?"),
            n(r.timer),
            n(r.width),
            n(r.dest_cpu)
        );
    }
    let nm = &w.nmis;
    let _ = writeln!(
        s,
        "nmis:      {} total: hpet {}, ipi {}, unknown {}{}, duplicate {}, swallowed {}; stalls {}",
        n(nm.total),
        n(nm.hpet),
        n(nm.ipi),
        n(nm.unknown),
        w.expected_unknown
            .map_or(String::new(), |e| format!(" ({e} expected)")),
        n(nm.duplicate),
        n(nm.swallowed),
        w.watchdog_stalls
    );
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    if !w.false_positives.is_empty() {
        let _ = writeln!(s, "false positives: CPU {}", list(&w.false_positives));
    }
    if !w.missed.is_empty() {
        let _ = writeln!(
            s,
            "missed:    CPU {} (locked, never reported)",
            list(&w.missed)
        );
    }
    let f = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.3}"));
    if w.lockups.is_empty() {
        let _ = writeln!(s, "lockups:   none reported");
    } else {
        let _ = writeln!(
            s,
            "\n  CPU  APIC ID  by   injected ms   detected ms  latency ms  rip                 symbol"
        );
        for l in &w.lockups {
            let _ = writeln!(
                s,
                "{:>5}  {:>7}  {:>3}  {:>12}  {:>12}  {:>10}  {:<18}  {}{}",
                l.cpu,
                n(l.apic_id),
                n(l.detected_by),
                f(l.injected_at_ms),
                f(l.detected_at_ms),
                f(l.latency_ms),
                l.rip.as_deref().unwrap_or("?"),
                l.symbol.as_deref().unwrap_or("?"),
                if l.injected { "" } else { "  (false positive)" }
            );
        }
    }
    if !w.nmis_per_cpu.is_empty() {
        let _ = writeln!(
            s,
            "\n  CPU  total   hpet    ipi  unknown  duplicate  swallowed  stalls"
        );
        for c in &w.nmis_per_cpu {
            let _ = writeln!(
                s,
                "{:>5}  {:>5}  {:>5}  {:>5}  {:>7}  {:>9}  {:>9}  {:>6}",
                c.cpu,
                n(c.total),
                n(c.hpet),
                n(c.ipi),
                n(c.unknown),
                n(c.duplicate),
                n(c.swallowed),
                n(c.stalls)
            );
        }
    }
    s.push('\n');
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
        let p = prepare(&o, &WatchdogOptions::default(), q).unwrap();
        assert!(p
            .plan
            .command_line()
            .contains(&"exit=qemu tick_us=1000".to_string()));
        assert_eq!(p.plan.icount_shift, Some(7));
        assert_eq!(p.image.build_id.as_deref(), Some("deadbeef"));

        let e = |o: &RunOptions| {
            format!(
                "{:#}",
                prepare(o, &WatchdogOptions::default(), q).err().unwrap()
            )
        };
        o.firmware = Firmware::Uefi;
        assert!(e(&o).contains("needs SeaBIOS"));
        o.firmware = Firmware::Bios;
        o.smp = SmpSpec::parse("300").unwrap();
        let p = prepare(&o, &WatchdogOptions::default(), q).unwrap();
        assert_eq!(p.plan.cpu, "qemu64,+x2apic");
        assert_eq!(p.plan.icount_shift, Some(7));
        o.icount = Icount::Shift(6);
        assert_eq!(
            prepare(&o, &WatchdogOptions::default(), q)
                .unwrap()
                .plan
                .icount_shift,
            Some(6)
        );
        o.smp = SmpSpec::parse("2").unwrap();
        o.icount = Icount::Off;
        assert_eq!(
            prepare(&o, &WatchdogOptions::default(), q)
                .unwrap()
                .plan
                .icount_shift,
            None
        );

        o.image = iso;
        assert!(e(&o).contains("--append cannot change"));
        o.append = None;
        assert!(matches!(
            prepare(&o, &WatchdogOptions::default(), q)
                .unwrap()
                .plan
                .boot,
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

    /// A watchdog run's serial output, as the kernel prints it (protocol.md): `cmdline` on
    /// the boot record, then the records in `body`, then `summary`.
    fn wd_log(cmdline: &str, body: &str, summary: &str) -> String {
        format!(
            "HPETWD build id=abcd version=0.1.0 protocol=1\r\n\
             HPETWD boot via=pvh cmdline=\"exit=qemu {cmdline}\" exit=qemu exit_reason=option\r\n\
             HPETWD smp online=4 expected=4 all_online_ns=39857303 init_delay_ns=10000 settle_ms=0\r\n\
             HPETWD watchdog policy=broadcast timeout_ns=1000000000 heartbeat_ns=200000000 check_period_ns=400000000 hpet_period_ns=400000000 window_ns=1600000 bound_ns=1450000000 earliest_ns=800000000 handler=1\r\n\
             HPETWD watchdog-route kind=fsb timer=0 width=64 dest_cpu=1\r\n\
             {body}\
             {summary}\r\n"
        )
    }

    fn counts(cpu: u64, unknown: u64, stalls: u64) -> String {
        format!(
            "HPETWD nmi-counts cpu={cpu} total=8 hpet=0 ipi=8 unknown={unknown} duplicate=0 swallowed=0 stalls={stalls}\r\n"
        )
    }

    fn lockup(cpu: u64, latency_ns: u64) -> String {
        format!(
            "HPETWD lockup cpu={cpu} apic_id={cpu} detected_by=2 injected_at_ns=1395913802 detected_at_ns={} latency_ns={latency_ns} stalled_ns={latency_ns} rip=0x206af2 rsp=0x279f90\r\n",
            1_395_913_802 + latency_ns
        )
    }

    const PASS4: &str = "HPETWD summary result=pass cpus_online=4 cpus_expected=4";
    const LOCK2: &str = "policy=broadcast timeout=1 handler=1 scenario=lockup:cpu=2,after=1.3";

    fn body(lockups: &[(u64, u64)], unknown: u64, stalls: u64) -> String {
        let mut b = String::new();
        for cpu in 0..4 {
            b += &counts(
                cpu,
                if cpu == 3 { unknown } else { 0 },
                if cpu == 1 { stalls } else { 0 },
            );
            for &(c, lat) in lockups {
                if c == cpu {
                    b += &lockup(c, lat);
                }
            }
        }
        b
    }

    #[test]
    fn watchdog_json_fields() {
        let text = wd_log(LOCK2, &body(&[(2, 1_004_334_780)], 0, 0), PASS4);
        let r = judge_log(&text, exited(33), "4");
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        let v = serde_json::to_value(&r).unwrap();
        let w = &v["watchdog"];
        assert_eq!(w["policy"], "broadcast");
        assert_eq!(w["timeout_ms"], 1000.0);
        assert_eq!(w["heartbeat_ms"], 200.0);
        assert_eq!(w["check_period_ms"], 400.0);
        assert_eq!(w["hpet_period_ms"], 400.0);
        assert_eq!(w["window_ms"], 1.6);
        assert_eq!(w["bound_ms"], 1450.0);
        assert_eq!(w["earliest_ms"], 800.0);
        assert_eq!(w["handler"], 1);
        assert_eq!(w["scenario"], "lockup:cpu=2,after=1.3");
        assert_eq!(w["injected_cpus"], serde_json::json!([2]));
        assert_eq!(
            w["route"],
            serde_json::json!({"kind": "fsb", "timer": 0, "width": 64, "dest_cpu": 1})
        );
        let l = &w["lockups"][0];
        assert_eq!(w["lockups"].as_array().unwrap().len(), 1);
        assert_eq!(l["cpu"], 2);
        assert_eq!(l["apic_id"], 2);
        assert_eq!(l["detected_by"], 2);
        assert_eq!(l["injected_at_ms"], 1395.913802);
        assert_eq!(l["detected_at_ms"], 2400.248582);
        assert_eq!(l["latency_ms"], 1004.33478);
        assert_eq!(l["stalled_ms"], 1004.33478);
        assert_eq!(l["rip"], "0x206af2");
        assert_eq!(l["rsp"], "0x279f90");
        assert!(l["symbol"].is_null());
        assert_eq!(l["injected"], true);
        assert_eq!(w["false_positives"], serde_json::json!([]));
        assert_eq!(w["missed"], serde_json::json!([]));
        assert_eq!(w["watchdog_stalls"], 0);
        assert_eq!(
            w["nmis"],
            serde_json::json!({"total": 32, "hpet": 0, "ipi": 32, "unknown": 0, "duplicate": 0, "swallowed": 0})
        );
        assert_eq!(w["nmis_per_cpu"].as_array().unwrap().len(), 4);
        assert_eq!(w["nmis_per_cpu"][3]["cpu"], 3);
        assert!(w["expected_unknown"].is_null());
        let human = render_human(&r);
        assert!(human.contains("watchdog:  broadcast, T 1000 ms"), "{human}");
        assert!(
            human.contains("route:     fsb, HPET timer 0, 64-bit, to CPU 1"),
            "{human}"
        );
        assert!(human.contains("1004.335  0x206af2"), "{human}");
        // Without a watchdog record there is no watchdog object.
        let r = judge_log(&log(2, PASS2), exited(33), "2");
        assert!(serde_json::to_value(&r).unwrap()["watchdog"].is_null());
    }

    #[test]
    fn watchdog_pass_is_checked_independently() {
        let fail = |text: &str| {
            let r = judge_log(text, exited(33), "4");
            assert_eq!(r.result, Verdict::Fail, "{text}");
            r.reason.unwrap()
        };
        // A lockup on a CPU the scenario did not lock.
        let m = fail(&wd_log(
            LOCK2,
            &body(&[(2, 1_000_000_000), (3, 1_000_000_000)], 0, 0),
            PASS4,
        ));
        assert!(m.contains("CPU 3") && m.contains("false positive"), "{m}");
        // An idle run with any lockup.
        let m = fail(&wd_log(
            "policy=chain",
            &body(&[(1, 1_000_000_000)], 0, 0),
            PASS4,
        ));
        assert!(m.contains("scenario `idle`"), "{m}");
        // The injected lockup missing.
        let m = fail(&wd_log(LOCK2, &body(&[], 0, 0), PASS4));
        assert!(m.contains("never reported"), "{m}");
        // Latency outside [T - h, bound].
        let m = fail(&wd_log(LOCK2, &body(&[(2, 1_500_000_000)], 0, 0), PASS4));
        assert!(
            m.contains("1500.000 ms, outside") && m.contains("[800.000, 1450.000]"),
            "{m}"
        );
        let m = fail(&wd_log(LOCK2, &body(&[(2, 700_000_000)], 0, 0), PASS4));
        assert!(m.contains("outside"), "{m}");
        // A stall, an unknown NMI.
        let m = fail(&wd_log(LOCK2, &body(&[(2, 1_000_000_000)], 0, 1), PASS4));
        assert!(m.contains("stopped 1 time"), "{m}");
        let m = fail(&wd_log(LOCK2, &body(&[(2, 1_000_000_000)], 2, 0), PASS4));
        assert!(m.contains("2 unknown NMI"), "{m}");
        // Both CPUs of a deadlock must be reported.
        let dl = "policy=broadcast scenario=deadlock:cpus=1+3,after=1";
        let m = fail(&wd_log(dl, &body(&[(1, 1_000_000_000)], 0, 0), PASS4));
        assert!(m.contains("locked CPU 3"), "{m}");
        let r = judge_log(
            &wd_log(
                dl,
                &body(&[(1, 1_000_000_000), (3, 1_100_000_000)], 0, 0),
                PASS4,
            ),
            exited(33),
            "4",
        );
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        // lockup-all: every CPU.
        let all = "policy=broadcast scenario=lockup-all:after=1";
        let every: Vec<(u64, u64)> = (0..4).map(|c| (c, 1_000_000_000)).collect();
        let r = judge_log(&wd_log(all, &body(&every, 0, 0), PASS4), exited(33), "4");
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        let m = fail(&wd_log(all, &body(&every[1..], 0, 0), PASS4));
        assert!(m.contains("locked CPU 0"), "{m}");
        // nmi-blocked still names its CPU.
        let nb = "policy=remote scenario=lockup:cpu=2,after=1.3,kind=nmi-blocked";
        let r = judge_log(
            &wd_log(nb, &body(&[(2, 1_000_000_000)], 0, 0), PASS4),
            exited(33),
            "4",
        );
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        // spurious-nmi: the kernel's expected count of unknown NMIs is honoured.
        let sp = "policy=broadcast scenario=spurious-nmi:after=1";
        let with_expected =
            |text: String| text.replace("handler=1\r\n", "handler=1 expected_unknown=1\r\n");
        let r = judge_log(
            &with_expected(wd_log(sp, &body(&[], 1, 0), PASS4)),
            exited(33),
            "4",
        );
        assert_eq!(r.result, Verdict::Pass, "{:?}", r.reason);
        assert_eq!(r.watchdog.as_ref().unwrap().expected_unknown, Some(1));
        let m = fail(&with_expected(wd_log(sp, &body(&[], 0, 0), PASS4)));
        assert!(
            m.contains("0 unknown NMI(s) where the scenario causes 1"),
            "{m}"
        );
        let m = fail(&wd_log(sp, &body(&[], 1, 0), PASS4));
        assert!(m.contains("1 unknown NMI"), "{m}");
        // The kernel decides first: its fail stays a fail with its reason.
        let r = judge_log(
            &wd_log(
                LOCK2,
                &body(&[], 0, 0),
                "HPETWD summary result=fail cpus_online=4 cpus_expected=4 reason=\"the injected lockup was not detected\"",
            ),
            exited(35),
            "4",
        );
        assert_eq!(r.result, Verdict::Fail);
        assert_eq!(
            r.reason.as_deref(),
            Some("the injected lockup was not detected")
        );
        assert_eq!(r.watchdog.unwrap().missed, vec![2]);
    }

    #[test]
    fn scenarios_name_their_locked_cpus() {
        use std::collections::BTreeSet;
        let cpus = |v: &[u64]| Locked::Cpus(v.iter().copied().collect::<BTreeSet<_>>());
        assert_eq!(scenario_locks("idle"), cpus(&[]));
        assert_eq!(scenario_locks("lockup:cpu=5,after=2"), cpus(&[5]));
        assert_eq!(
            scenario_locks("lockup:after=2,cpu=1,kind=nmi-blocked"),
            cpus(&[1])
        );
        assert_eq!(scenario_locks("deadlock:cpus=2+7,after=1"), cpus(&[2, 7]));
        assert_eq!(scenario_locks("lockup-all:after=1"), Locked::All);
        assert_eq!(scenario_locks("spurious-nmi:after=1,cpu=2"), cpus(&[]));
        assert_eq!(scenario_locks("stress:fraction=0.7"), cpus(&[]));
        assert_eq!(scenario_of_cmdline("exit=qemu policy=chain"), "idle");
        assert_eq!(
            scenario_of_cmdline("scenario=idle policy=chain scenario=lockup:cpu=1,after=1"),
            "lockup:cpu=1,after=1"
        );
        for ok in [
            "idle",
            "lockup:cpu=1,after=1.5",
            "lockup-all:after=2",
            "stress:x=1",
            "deadlock:cpus=1+2,after=1",
        ] {
            check_scenario(ok).unwrap();
        }
        for bad in [
            "",
            "lockup:",
            "panic:cpu=1",
            "lockup:cpu=1 after=1",
            "Lockup:cpu=1",
            "lockup:cpu=\"1\"",
        ] {
            assert!(check_scenario(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_seconds_ns("1"), Some(1_000_000_000));
        assert_eq!(parse_seconds_ns("0.5"), Some(500_000_000));
        assert_eq!(parse_seconds_ns(".25"), Some(250_000_000));
        assert_eq!(parse_seconds_ns("1.000000001"), Some(1_000_000_001));
        for bad in ["", ".", "1.0000000001", "-1", "1e3", "1.5s"] {
            assert_eq!(parse_seconds_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn watchdog_options_become_boot_words() {
        let wd = WatchdogOptions {
            policy: Some("buddy".into()),
            timeout: Some("0.5".into()),
            handler: Some(2),
            scenario: Some("lockup:cpu=1,after=1".into()),
        };
        assert_eq!(
            watchdog_cmdline(Some("tick_us=1000"), &wd).unwrap(),
            "exit=qemu tick_us=1000 policy=buddy timeout=0.5 handler=2 scenario=lockup:cpu=1,after=1"
        );
        let e = watchdog_cmdline(Some("policy=chain"), &wd).unwrap_err();
        assert!(
            format!("{e}").contains("--policy and `policy=` in --append"),
            "{e}"
        );
        assert_eq!(
            watchdog_cmdline(None, &WatchdogOptions::default()).unwrap(),
            "exit=qemu"
        );

        let dir = tempfile::tempdir().unwrap();
        let q = || Ok(PathBuf::from("/usr/bin/qemu-system-x86_64"));
        let mut o = opts("4");
        o.image = write_image(dir.path(), "k.elf", &crate::image::tests::pvh_kernel());
        let p = prepare(&o, &wd, q).unwrap();
        let cmd = p.plan.command_line();
        assert!(
            cmd.contains(
                &"exit=qemu policy=buddy timeout=0.5 handler=2 scenario=lockup:cpu=1,after=1"
                    .to_string()
            ),
            "{cmd:?}"
        );
        let tail = &cmd[cmd.len() - 2..];
        assert_eq!(tail, ["-global", "hpet.msi=on"], "{cmd:?}");
        // The user's own hpet.msi setting wins; policy=off needs no FSB.
        o.qemu_args = vec!["-global".into(), "hpet.msi=off".into()];
        let cmd = prepare(&o, &wd, q).unwrap().plan.command_line();
        assert_eq!(
            cmd.iter().filter(|a| a.contains("hpet.msi")).count(),
            1,
            "{cmd:?}"
        );
        o.qemu_args.clear();
        let off = WatchdogOptions {
            policy: Some("off".into()),
            ..Default::default()
        };
        let cmd = prepare(&o, &off, q).unwrap().plan.command_line();
        assert!(!cmd.iter().any(|a| a.contains("hpet.msi")), "{cmd:?}");
        // An ISO's command line is fixed.
        o.image = write_image(dir.path(), "k.iso", &crate::image::tests::iso_bytes());
        let only_scenario = WatchdogOptions {
            scenario: Some("idle".into()),
            ..Default::default()
        };
        let e = format!("{:#}", prepare(&o, &only_scenario, q).err().unwrap());
        assert!(
            e.contains("--scenario cannot change the command line of an ISO"),
            "{e}"
        );
    }

    #[test]
    fn lockup_symbols_come_from_the_kernel_elf() {
        let embedded = crate::kernel_image::embedded_elf();
        let syms = Symbols::from_elf(embedded).unwrap();
        let spin = syms.range_of("hpetwd_lockup_spin").unwrap();
        let rip = format!("{:#x}", spin.start + 1);
        let text = wd_log(LOCK2, &body(&[(2, 1_000_000_000)], 0, 0), PASS4)
            .replace("rip=0x206af2", &format!("rip={rip}"));
        let t = Transcript::from_bytes(text.as_bytes());
        let mut w = watchdog_report(&t).unwrap();
        resolve_symbols(&mut w, &syms);
        assert_eq!(w.lockups[0].symbol.as_deref(), Some("hpetwd_lockup_spin"));
        assert_eq!(w.lockups[0].rip.as_deref(), Some(rip.as_str()));

        // The ELF run reads the image; an ISO uses the embedded kernel when the build ids
        // match.
        let dir = tempfile::tempdir().unwrap();
        let elf_path = write_image(dir.path(), "hpetwd.elf", embedded);
        let id = match crate::image::recognise(embedded).unwrap() {
            ImageKind::Elf(info) => info.build_id,
            ImageKind::Iso => None,
        };
        let mut o = opts("4");
        o.image = elf_path;
        let elf = ImageReport {
            path: "hpetwd.elf".into(),
            kind: "elf",
            build_id: id.clone(),
        };
        assert!(kernel_symbols(&o, &elf, id.as_deref()).is_some());
        assert!(kernel_symbols(&o, &elf, Some("0000")).is_none());
        let iso = ImageReport {
            path: "hpetwd.iso".into(),
            kind: "iso",
            build_id: None,
        };
        assert!(kernel_symbols(&o, &iso, id.as_deref()).is_some());
        assert!(kernel_symbols(&o, &iso, Some("0000")).is_none());
        assert!(kernel_symbols(&o, &iso, None).is_none());
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
