//! QEMU: finding the tools, validating `-smp`, building the command line, and running it
//! with the serial console captured and a wall-clock timeout.

use anyhow::{Context, Result};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::{Line, LineSplitter};

/// The QEMU binary `hpetctl run` uses.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";
/// Hint printed when QEMU is missing.
pub const QEMU_PACKAGE_HINT: &str =
    "install Debian package qemu-system-x86 (QEMU 10 from bookworm-backports: see README)";
/// The largest vCPU count of QEMU 10's q35 machine.
pub const Q35_MAX_CPUS: u64 = 4096;
/// The default `-icount` shift under TCG.
pub const DEFAULT_ICOUNT_SHIFT: u8 = 7;
/// QEMU's largest `-icount` shift.
pub const MAX_ICOUNT_SHIFT: u8 = 10;

/// Find `name` in the directories of `path_var` (a `PATH`-style list). A name that contains
/// a `/` is taken as a path.
pub fn find_in_path(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Find a tool in `$PATH`, or fail with an error naming the Debian package that provides it.
pub fn require_tool(name: &str, package_hint: &str) -> Result<PathBuf> {
    find_in_path(name, std::env::var_os("PATH").as_deref())
        .with_context(|| format!("`{name}` not found in PATH: {package_hint}"))
}

/// Find QEMU.
pub fn find_qemu() -> Result<PathBuf> {
    require_tool(QEMU_BINARY, QEMU_PACKAGE_HINT)
}

/// A validated `-smp` specification: a CPU count or a QEMU topology string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpSpec {
    /// The text passed to QEMU, as given.
    pub text: String,
    /// vCPUs present at boot (the CPUs the kernel must bring online).
    pub cpus: u64,
    /// vCPUs the topology holds (MADT entries).
    pub maxcpus: u64,
    pub sockets: u64,
    pub dies: u64,
    pub modules: u64,
    pub cores: u64,
    pub threads: u64,
}

impl SmpSpec {
    /// Parse and validate an `--smp` value the way QEMU 10 does for q35 (it prefers cores
    /// when a level is left out), so that mistakes get a clear error before QEMU starts and
    /// `hpetctl run` knows how many CPUs to expect.
    pub fn parse(text: &str) -> Result<SmpSpec> {
        let bad = |why: String| -> anyhow::Error {
            anyhow::anyhow!(
                "invalid --smp `{text}`: {why} (expected a CPU count like `4`, or a QEMU topology like `6,sockets=2,cores=3`)"
            )
        };
        if text.is_empty() {
            return Err(bad("empty".into()));
        }
        let mut vals: [Option<u64>; 10] = [None; 10];
        const KEYS: [&str; 10] = [
            "cpus", "maxcpus", "sockets", "dies", "modules", "cores", "threads", "clusters",
            "books", "drawers",
        ];
        for (i, part) in text.split(',').enumerate() {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, v),
                None if i == 0 => ("cpus", part),
                None => return Err(bad(format!("`{part}` is not key=value"))),
            };
            let Some(slot) = KEYS.iter().position(|k| *k == key) else {
                return Err(bad(format!(
                    "unknown key `{key}` (known: cpus, maxcpus, sockets, dies, modules, cores, threads)"
                )));
            };
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!(
                    "`{key}` needs a positive number, not `{value}`"
                )));
            }
            let n: u64 = value
                .parse()
                .map_err(|_| bad(format!("`{key}={value}` is too large")))?;
            if n == 0 {
                return Err(bad(format!("`{key}` must be at least 1")));
            }
            if vals[slot].replace(n).is_some() {
                return Err(bad(format!("`{key}` given twice")));
            }
        }
        for (slot, key) in KEYS.iter().enumerate().skip(7) {
            if vals[slot].is_some_and(|n| n > 1) {
                return Err(bad(format!(
                    "{key} > 1 is not supported by x86 CPU topology"
                )));
            }
        }
        let [cpus, maxcpus, sockets, dies, modules, cores, threads, ..] = vals;
        let dies = dies.unwrap_or(1);
        let modules = modules.unwrap_or(1);
        let mul = |a: u64, b: u64| {
            a.checked_mul(b)
                .ok_or_else(|| bad("numbers too large".into()))
        };
        let (sockets, cores, threads, maxcpus) = if cpus.is_none() && maxcpus.is_none() {
            let (s, c, t) = (
                sockets.unwrap_or(1),
                cores.unwrap_or(1),
                threads.unwrap_or(1),
            );
            let total = mul(mul(mul(mul(s, dies)?, modules)?, c)?, t)?;
            (s, c, t, total)
        } else {
            let maxcpus = maxcpus.or(cpus).unwrap_or(1);
            let s = sockets.unwrap_or(1);
            let t = threads.unwrap_or(1);
            let per_core = mul(mul(mul(s, dies)?, modules)?, t)?;
            let c = match cores {
                Some(c) => c,
                None => (maxcpus / per_core).max(1),
            };
            (s, c, t, maxcpus)
        };
        let product = mul(mul(mul(mul(sockets, dies)?, modules)?, cores)?, threads)?;
        if product != maxcpus {
            return Err(bad(format!(
                "sockets ({sockets}) * dies ({dies}) * modules ({modules}) * cores ({cores}) * threads ({threads}) = {product}, which must equal maxcpus ({maxcpus})"
            )));
        }
        let cpus = cpus.unwrap_or(maxcpus);
        if cpus > maxcpus {
            return Err(bad(format!("cpus ({cpus}) exceeds maxcpus ({maxcpus})")));
        }
        if maxcpus > Q35_MAX_CPUS {
            return Err(bad(format!(
                "QEMU's q35 machine supports at most {Q35_MAX_CPUS} vCPUs"
            )));
        }
        Ok(SmpSpec {
            text: text.to_string(),
            cpus,
            maxcpus,
            sockets,
            dies,
            modules,
            cores,
            threads,
        })
    }

    /// The largest APIC ID QEMU assigns in this topology: every level's field is rounded up
    /// to a power of two, so a topology like `6,sockets=2,cores=3` has IDs 0-2 and 4-6.
    pub fn max_apic_id(&self) -> u64 {
        fn width(n: u64) -> u32 {
            if n <= 1 {
                0
            } else {
                64 - (n - 1).leading_zeros()
            }
        }
        let idx = self.maxcpus - 1;
        let thread = idx % self.threads;
        let core = (idx / self.threads) % self.cores;
        let module = (idx / (self.threads * self.cores)) % self.modules;
        let die = (idx / (self.threads * self.cores * self.modules)) % self.dies;
        let socket = idx / (self.threads * self.cores * self.modules * self.dies);
        let tw = width(self.threads);
        let cw = width(self.cores);
        let mw = width(self.modules);
        let dw = width(self.dies);
        let shl = |v: u64, s: u32| v.checked_shl(s).unwrap_or(u64::MAX);
        thread
            | shl(core, tw)
            | shl(module, tw + cw)
            | shl(die, tw + cw + mw)
            | shl(socket, tw + cw + mw + dw)
    }

    /// APIC IDs above 254 need x2APIC (0xff is the xAPIC broadcast ID).
    pub fn needs_x2apic(&self) -> bool {
        self.max_apic_id() > 254
    }
}

/// Which QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// QEMU's software emulator (deterministic with icount; the default).
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Which firmware boots the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS (QEMU's default): boots a PVH ELF through `-kernel`, or an ISO.
    Bios,
    /// OVMF (UEFI): boots an ISO only.
    Uefi,
}

/// The `-icount` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icount {
    /// TCG's default: `shift=7` (or none under KVM).
    Default,
    Off,
    Shift(u8),
}

impl std::str::FromStr for Icount {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "off" {
            return Ok(Icount::Off);
        }
        match s.parse::<u8>() {
            Ok(n) if n <= MAX_ICOUNT_SHIFT => Ok(Icount::Shift(n)),
            _ => Err(format!(
                "expected `off` or a shift from 0 to {MAX_ICOUNT_SHIFT}, not `{s}`"
            )),
        }
    }
}

/// OVMF firmware files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    /// The read-only code image.
    pub code: PathBuf,
    /// The variable store template (copied to a writable temporary file for each run).
    pub vars: PathBuf,
}

/// Where OVMF is looked for: Debian's 4 MiB build first, then the 2 MiB one (each code
/// image needs the variable store of its own size).
pub const OVMF_CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
];

/// Find OVMF, or fail naming the Debian package.
pub fn find_ovmf() -> Result<Ovmf> {
    OVMF_CANDIDATES
        .iter()
        .map(|(c, v)| Ovmf {
            code: PathBuf::from(c),
            vars: PathBuf::from(v),
        })
        .find(|o| o.code.is_file() && o.vars.is_file())
        .with_context(|| {
            format!(
                "--firmware uefi needs OVMF ({} and {}): install Debian package ovmf",
                OVMF_CANDIDATES[0].0, OVMF_CANDIDATES[0].1
            )
        })
}

/// Check that KVM is usable: /dev/kvm exists and can be opened read-write.
pub fn check_kvm() -> Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .context("--accel kvm needs a usable /dev/kvm (load kvm-intel or kvm-amd, check the permissions of /dev/kvm, or use --accel tcg)")
}

/// How the image reaches the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// QEMU's `-kernel` (PVH, SeaBIOS) with a command line.
    Kernel { image: PathBuf, append: String },
    /// An ISO on a CD-ROM, through SeaBIOS or OVMF (`vars` is the writable copy).
    Cdrom {
        image: PathBuf,
        uefi: Option<(PathBuf, PathBuf)>,
    },
}

/// Everything that goes on QEMU's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuPlan {
    pub qemu: PathBuf,
    pub accel: Accel,
    /// The `-cpu` value, x2APIC already added if needed.
    pub cpu: String,
    pub smp: SmpSpec,
    pub memory_mb: u64,
    /// The `-icount` shift in force, if any.
    pub icount_shift: Option<u8>,
    pub boot: Boot,
    /// `-trace` events.
    pub traces: Vec<String>,
    /// QEMU's own log file (`-D`, where the trace events go).
    pub qemu_log: Option<PathBuf>,
    /// Extra arguments, verbatim, at the end.
    pub extra: Vec<OsString>,
}

/// The `-cpu` value: `model`, plus `,+x2apic` when the topology needs it and the model
/// string does not already say anything about x2apic.
pub fn cpu_model(model: &str, smp: &SmpSpec) -> String {
    if smp.needs_x2apic() && !model.contains("x2apic") {
        format!("{model},+x2apic")
    } else {
        model.to_string()
    }
}

/// The default guest memory: 256 MiB, plus 1 MiB per vCPU beyond 64.
pub fn default_memory_mb(smp: &SmpSpec) -> u64 {
    256 + smp.maxcpus.saturating_sub(64)
}

/// Escape a value for a QEMU option string (`,` is doubled).
fn opt_escape(p: &Path) -> OsString {
    let s = p.as_os_str().to_string_lossy();
    OsString::from(s.replace(',', ",,"))
}

impl QemuPlan {
    /// QEMU's arguments (without the binary).
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(OsString::from(s));
        push("-machine");
        push("q35");
        push("-accel");
        push(self.accel.as_str());
        push("-cpu");
        push(&self.cpu);
        push("-smp");
        push(&self.smp.text);
        push("-m");
        push(&self.memory_mb.to_string());
        if let Some(shift) = self.icount_shift {
            push("-icount");
            push(&format!("shift={shift},sleep=off"));
        }
        for flag in [
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ] {
            push(flag);
        }
        for t in &self.traces {
            push("-trace");
            push(t);
        }
        if let Some(log) = &self.qemu_log {
            a.push("-D".into());
            a.push(log.clone().into_os_string());
        }
        match &self.boot {
            Boot::Kernel { image, append } => {
                a.push("-kernel".into());
                a.push(image.clone().into_os_string());
                a.push("-append".into());
                a.push(append.into());
            }
            Boot::Cdrom { image, uefi } => {
                if let Some((code, vars)) = uefi {
                    let mut c = OsString::from("if=pflash,format=raw,unit=0,readonly=on,file=");
                    c.push(opt_escape(code));
                    let mut v = OsString::from("if=pflash,format=raw,unit=1,file=");
                    v.push(opt_escape(vars));
                    a.extend(["-drive".into(), c, "-drive".into(), v]);
                }
                let mut d =
                    OsString::from("if=ide,index=0,media=cdrom,format=raw,readonly=on,file=");
                d.push(opt_escape(image));
                a.extend(["-drive".into(), d]);
            }
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The full command line (binary first), for reports.
    pub fn command_line(&self) -> Vec<String> {
        std::iter::once(self.qemu.to_string_lossy().into_owned())
            .chain(self.args().iter().map(|s| s.to_string_lossy().into_owned()))
            .collect()
    }
}

/// How a QEMU run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited by itself.
    Exited(ExitStatus),
    /// The guest finished (summary seen) but QEMU was still running after the grace period.
    KilledAfterGrace,
    /// The wall-clock timeout ran out.
    KilledTimeout,
    /// QEMU said the guest stopped for good (a KVM internal or emulation error: QEMU pauses
    /// the VM and waits forever), so it was killed at once.
    KilledGuestStopped,
}

/// QEMU's messages after which the guest never runs again.
const GUEST_STOPPED_MARKERS: [&str; 2] = ["KVM internal error", "emulation failure"];

/// The first line of QEMU's standard error that says the guest stopped for good.
pub fn guest_stopped_line(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .find(|l| GUEST_STOPPED_MARKERS.iter().any(|m| l.contains(m)))
        .map(str::trim)
}

/// What a QEMU run produced besides the serial lines.
#[derive(Debug)]
pub struct Outcome {
    pub ending: Ending,
    /// The last part of QEMU's standard error (its own messages).
    pub stderr: String,
    /// The serial console's last line, if it had no line ending.
    pub unterminated: Option<Line>,
    pub duration: Duration,
}

/// Options for [`run_captured`].
pub struct Capture<'a> {
    pub timeout: Duration,
    /// How long QEMU may keep running after the guest said it is done.
    pub grace: Duration,
    /// Copy of the raw serial output.
    pub log: Option<&'a mut File>,
    /// Mirror the serial output to standard error as it arrives.
    pub mirror: bool,
}

enum Event {
    Data(Vec<u8>),
    Eof,
    ReadError(std::io::Error),
}

/// Keep at most this much of QEMU's standard error.
const STDERR_KEEP: usize = 64 * 1024;

/// Run `plan`, feeding each complete serial line to `on_line`. When `on_line` returns true
/// (the guest's last record), QEMU gets `grace` to exit before it is killed.
pub fn run_captured(
    plan: &QemuPlan,
    mut cap: Capture<'_>,
    mut on_line: impl FnMut(&Line) -> bool,
) -> Result<Outcome> {
    let start = Instant::now();
    let mut child = Command::new(&plan.qemu)
        .args(plan.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", plan.qemu.display()))?;
    let mut stdout = child.stdout.take().context("QEMU's stdout is not a pipe")?;
    let mut stderr = child.stderr.take().context("QEMU's stderr is not a pipe")?;
    let (tx, rx) = mpsc::channel();
    let guest_stopped = Arc::new(AtomicBool::new(false));
    let guest_stopped_seen = Arc::clone(&guest_stopped);
    let out_thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) => {
                    let _ = tx.send(Event::Eof);
                    break;
                }
                Ok(n) => {
                    if tx.send(Event::Data(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Event::ReadError(e));
                    break;
                }
            }
        }
    });
    let err_thread = std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if guest_stopped_line(&String::from_utf8_lossy(&kept)).is_some() {
                        guest_stopped_seen.store(true, Ordering::Relaxed);
                    }
                    if kept.len() > 2 * STDERR_KEEP {
                        kept.drain(..kept.len() - STDERR_KEEP);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if kept.len() > STDERR_KEEP {
            kept.drain(..kept.len() - STDERR_KEEP);
        }
        String::from_utf8_lossy(&kept).into_owned()
    });

    let deadline = start + cap.timeout;
    let mut grace_deadline: Option<Instant> = None;
    let mut splitter = LineSplitter::default();
    let mut eof = false;
    let mut exited: Option<ExitStatus> = None;
    let mut killed: Option<Ending> = None;
    let mut io_error: Option<anyhow::Error> = None;
    let mut stderr_mirror = std::io::stderr();
    loop {
        let now = Instant::now();
        let wait_until = grace_deadline.unwrap_or(deadline);
        if exited.is_none() && killed.is_none() && guest_stopped.load(Ordering::Relaxed) {
            let _ = child.kill();
            killed = Some(Ending::KilledGuestStopped);
        }
        if exited.is_none() && killed.is_none() && now >= wait_until {
            let _ = child.kill();
            killed = Some(if grace_deadline.is_some() {
                Ending::KilledAfterGrace
            } else {
                Ending::KilledTimeout
            });
        }
        if exited.is_none() {
            match child.try_wait() {
                Ok(Some(status)) => exited = Some(status),
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    io_error.get_or_insert(anyhow::Error::new(e).context("waiting for QEMU"));
                    killed.get_or_insert(Ending::KilledTimeout);
                }
            }
        }
        if eof && exited.is_some() {
            break;
        }
        let slice = Duration::from_millis(20);
        match rx.recv_timeout(slice) {
            Ok(Event::Data(data)) => {
                if let Some(log) = cap.log.as_deref_mut() {
                    if let Err(e) = log.write_all(&data) {
                        io_error
                            .get_or_insert(anyhow::Error::new(e).context("writing the serial log"));
                    }
                }
                if cap.mirror {
                    let _ = stderr_mirror.write_all(&data);
                }
                for line in splitter.push(&data) {
                    if on_line(&line) && grace_deadline.is_none() {
                        grace_deadline = Some(Instant::now() + cap.grace);
                    }
                }
            }
            Ok(Event::Eof) => eof = true,
            Ok(Event::ReadError(e)) => {
                eof = true;
                io_error
                    .get_or_insert(anyhow::Error::new(e).context("reading QEMU's serial output"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // QEMU gone but the pipe still open (a grandchild holding it): stop anyway
                // once the deadline passes.
                if exited.is_some() && Instant::now() >= wait_until {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child.wait().context("waiting for QEMU")?,
    };
    let duration = start.elapsed();
    let _ = out_thread.join();
    let stderr_text = err_thread.join().unwrap_or_default();
    if let Some(log) = cap.log.as_deref_mut() {
        let _ = log.flush();
    }
    if let Some(e) = io_error {
        return Err(e);
    }
    Ok(Outcome {
        ending: killed.unwrap_or(Ending::Exited(status)),
        stderr: stderr_text,
        unterminated: splitter.finish(),
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smp(s: &str) -> SmpSpec {
        SmpSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e:#}"))
    }

    fn smp_err(s: &str) -> String {
        format!("{:#}", SmpSpec::parse(s).unwrap_err())
    }

    #[test]
    fn smp_counts_and_topologies() {
        let s = smp("4");
        assert_eq!((s.cpus, s.maxcpus, s.cores, s.sockets), (4, 4, 4, 1));
        let s = smp("6,sockets=2,cores=3");
        assert_eq!(
            (s.cpus, s.maxcpus, s.sockets, s.cores, s.threads),
            (6, 6, 2, 3, 1)
        );
        let s = smp("sockets=2,cores=2,threads=2");
        assert_eq!((s.cpus, s.maxcpus), (8, 8));
        let s = smp("cpus=4");
        assert_eq!(s.cpus, 4);
        let s = smp("2,maxcpus=4");
        assert_eq!((s.cpus, s.maxcpus), (2, 4));
        let s = smp("8,sockets=2");
        assert_eq!(s.cores, 4);
        let s = smp("4,clusters=1");
        assert_eq!(s.cpus, 4);
        let s = smp("16,sockets=2,dies=2,modules=2,cores=2,threads=1");
        assert_eq!(s.maxcpus, 16);
        assert_eq!(smp("4096").cpus, 4096);
    }

    #[test]
    fn smp_errors_are_clear() {
        assert!(smp_err("").contains("empty"));
        assert!(smp_err("0").contains("at least 1"));
        assert!(smp_err("-1").contains("positive number"));
        assert!(smp_err("four").contains("positive number"));
        assert!(smp_err("4,cores").contains("not key=value"));
        assert!(smp_err("4,sockets=2,sockets=2").contains("twice"));
        assert!(smp_err("4,cpus=4").contains("twice"));
        assert!(smp_err("4,widgets=2").contains("unknown key `widgets`"));
        assert!(smp_err("6,sockets=2,cores=2").contains("must equal maxcpus (6)"));
        assert!(smp_err("4,maxcpus=2").contains("exceeds maxcpus"));
        assert!(smp_err("5000").contains("at most 4096"));
        assert!(smp_err("4,books=2").contains("not supported"));
        assert!(smp_err("99999999999999999999999").contains("too large"));
        assert!(
            smp_err("sockets=4294967296,cores=4294967296,threads=4294967296").contains("too large")
        );
        let e = smp_err("4,x");
        assert!(e.contains("invalid --smp `4,x`"), "{e}");
        assert!(e.contains("6,sockets=2,cores=3"), "{e}");
    }

    #[test]
    fn apic_ids_and_x2apic() {
        assert_eq!(smp("1").max_apic_id(), 0);
        assert_eq!(smp("255").max_apic_id(), 254);
        assert!(!smp("255").needs_x2apic());
        assert!(smp("256").needs_x2apic());
        assert_eq!(smp("6,sockets=2,cores=3").max_apic_id(), 6);
        assert_eq!(smp("sockets=2,cores=3,threads=3").max_apic_id(), 0b1_10_10);
        // 130 CPUs in 2 sockets of 65 cores: the socket field starts at bit 7.
        assert_eq!(smp("130,sockets=2,cores=65").max_apic_id(), 128 + 64);
        assert!(smp("195,sockets=3,cores=65").needs_x2apic());
        assert_eq!(cpu_model("qemu64", &smp("4")), "qemu64");
        assert_eq!(cpu_model("qemu64", &smp("300")), "qemu64,+x2apic");
        assert_eq!(cpu_model("max,-x2apic", &smp("300")), "max,-x2apic");
        assert_eq!(default_memory_mb(&smp("4")), 256);
        assert_eq!(default_memory_mb(&smp("512")), 704);
    }

    #[test]
    fn icount_values() {
        assert_eq!("off".parse::<Icount>(), Ok(Icount::Off));
        assert_eq!("7".parse::<Icount>(), Ok(Icount::Shift(7)));
        assert_eq!("0".parse::<Icount>(), Ok(Icount::Shift(0)));
        assert!("11".parse::<Icount>().is_err());
        assert!("auto".parse::<Icount>().is_err());
    }

    fn plan(boot: Boot) -> QemuPlan {
        QemuPlan {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            cpu: "qemu64".into(),
            smp: smp("2"),
            memory_mb: 256,
            icount_shift: Some(7),
            boot,
            traces: vec![],
            qemu_log: None,
            extra: vec![],
        }
    }

    fn joined(p: &QemuPlan) -> String {
        p.command_line().join(" ")
    }

    #[test]
    fn command_for_a_pvh_kernel() {
        let p = plan(Boot::Kernel {
            image: "/tmp/k.elf".into(),
            append: "exit=qemu tick_us=1000".into(),
        });
        let args = p.command_line();
        assert_eq!(
            joined(&p),
            "/usr/bin/qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -smp 2 -m 256 \
             -icount shift=7,sleep=off -nodefaults -display none -monitor none -no-reboot \
             -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /tmp/k.elf -append exit=qemu tick_us=1000"
        );
        // The command line is one argument.
        assert_eq!(args.last().unwrap(), "exit=qemu tick_us=1000");
    }

    #[test]
    fn command_for_an_iso_under_uefi_with_extras() {
        let mut p = plan(Boot::Cdrom {
            image: "/tmp/a,b.iso".into(),
            uefi: Some(("/fw/CODE.fd".into(), "/tmp/vars.fd".into())),
        });
        p.accel = Accel::Kvm;
        p.icount_shift = None;
        p.traces = vec!["hpet_ram_write".into()];
        p.qemu_log = Some("/tmp/q.log".into());
        p.extra = vec!["-global".into(), "hpet.msi=on".into()];
        let j = joined(&p);
        assert!(j.contains("-accel kvm"), "{j}");
        assert!(!j.contains("-icount"), "{j}");
        assert!(j.contains(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd \
             -drive if=pflash,format=raw,unit=1,file=/tmp/vars.fd"
        ));
        assert!(j.contains("file=/tmp/a,,b.iso"), "{j}");
        assert!(j.contains("-trace hpet_ram_write -D /tmp/q.log"), "{j}");
        assert!(j.ends_with("-global hpet.msi=on"), "{j}");
        assert!(!j.contains("-kernel"));
    }

    #[test]
    fn finds_tools_in_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("mytool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            find_in_path("mytool", Some(&path)),
            None,
            "not executable yet"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in_path("mytool", Some(&path)), Some(tool));
        assert_eq!(find_in_path("othertool", Some(&path)), None);
        assert_eq!(find_in_path("mytool", None), None);
    }
}
