//! `hpetctl`: build and boot the hpetwd kernel, and read its serial result protocol.
//! See docs/hpetctl.md.

// `unsafe` only in probe::devmem (read-only /dev/mem mappings), which allows it locally.
#![deny(unsafe_code)]

mod bench;
mod image;
mod iso;
mod kernel_image;
mod probe;
mod protocol;
mod qemu;
mod run;
mod symbols;
mod transcript;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use qemu::{Accel, Firmware, Icount, SmpSpec};

/// Exit status for "could not do the job" (bad input, missing tools, a run that errored).
const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "hpetctl",
    version,
    about = "Build and boot the hpetwd kernel (an HPET-driven NMI watchdog) and read its results"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the kernel ELF and a BIOS+UEFI bootable ISO (GRUB, multiboot2) to a directory.
    Build(BuildArgs),
    /// Boot an image (the ELF through PVH, or the ISO) in QEMU and report the kernel's results.
    ///
    /// Exit status: 0 pass, 1 fail, 2 error.
    Run(Box<RunArgs>),
    /// Benchmarks (tables on stdout, or JSON); results and their reading are in docs/.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Report what this machine (or an ACPI dump) offers an HPET NMI watchdog: HPET, routes,
    /// IOMMU, x2APIC, TSC, PMU counters, and verdicts. Reads only; writes nothing.
    ///
    /// Exit status: 0 possible (or not ruled out), 1 not possible, 2 error (docs/probe.md).
    Probe(ProbeArgs),
}

#[derive(Args, Debug)]
struct ProbeArgs {
    /// Read the ACPI tables from an `acpidump` text file instead of this machine.
    #[arg(long, value_name = "FILE", conflicts_with = "tables")]
    acpidump: Option<PathBuf>,
    /// Read the ACPI tables from a directory of binary tables (e.g. a copy of
    /// /sys/firmware/acpi/tables) instead of this machine.
    #[arg(long, value_name = "DIR")]
    tables: Option<PathBuf>,
    /// Print one JSON document (schema hpetwd-probe/1) instead of the report.
    #[arg(long)]
    json: bool,
    /// Root of the file system the live facts are read from (for tests).
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    root: PathBuf,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time from kernel entry to all CPUs online, in guest time, at several vCPU counts.
    Boot(BenchBootArgs),
}

#[derive(Args, Debug)]
struct BenchBootArgs {
    /// vCPU counts, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,8,64,300",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    smp: Vec<u32>,
    /// Boots per vCPU count.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Accelerator (TCG gives emulated, deterministic time; KVM the guest's own TSC time).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// `-icount shift=N,sleep=off` under TCG (default 7), or `off`.
    #[arg(long, value_name = "SHIFT|off")]
    icount: Option<Icount>,
    /// Wall-clock limit per boot, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// Output directory (created if missing); gets hpetwd.elf and hpetwd.iso.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
    /// Use this kernel ELF instead of the one embedded in hpetctl (it needs a PVH note and
    /// a multiboot2 header).
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The image: hpetwd.elf (PVH, booted with QEMU's -kernel) or hpetwd.iso.
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// vCPUs: a count, or a QEMU topology such as `6,sockets=2,cores=3`.
    #[arg(long, value_name = "N|TOPOLOGY", default_value = "1")]
    smp: String,
    /// QEMU CPU model (`,+x2apic` is added when an APIC ID would exceed 254).
    #[arg(long, value_name = "MODEL", default_value = "qemu64")]
    cpu: String,
    /// Accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Firmware: SeaBIOS (ELF or ISO) or OVMF (ISO only).
    #[arg(long, value_enum, default_value_t = Firmware::Bios)]
    firmware: Firmware,
    /// Wall-clock limit for the whole run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// Kernel options (docs/cmdline.md), for an ELF only; `exit=qemu` is added unless an
    /// `exit=` option is given.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    append: Option<String>,
    /// Guest memory in MiB (default 256, plus 1 per vCPU beyond 64).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(32..=1_048_576))]
    memory: Option<u64>,
    /// Deterministic guest time under TCG: `-icount shift=N,sleep=off` (default 7), or `off`.
    #[arg(long, value_name = "SHIFT|off")]
    icount: Option<Icount>,
    /// Print one JSON document on stdout instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Write the raw serial output to FILE (by default it is kept in a temporary file only
    /// when the run does not pass).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// QEMU's own log (`-D`), where `--trace` output goes (default: FILE.qemu for --log
    /// FILE, else a kept temporary file).
    #[arg(long, value_name = "FILE")]
    qemu_log: Option<PathBuf>,
    /// An extra QEMU argument, passed verbatim at the end (repeatable; one word each:
    /// `--qemu-arg=-global --qemu-arg=hpet.msi=on`).
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    qemu_arg: Vec<OsString>,
    /// Enable a QEMU trace event (`-trace EVENT`; repeatable; `qemu-system-x86_64 -trace help`).
    #[arg(long = "trace", value_name = "EVENT")]
    trace: Vec<String>,
    /// Mirror the serial console to stderr as it arrives.
    #[arg(short, long)]
    verbose: bool,
    /// Run the watchdog with this policy (kernel option `policy=`; ELF only). Adds
    /// `-global hpet.msi=on` (FSB delivery) unless a --qemu-arg mentions hpet.msi.
    #[arg(long, value_name = "POLICY", value_parser = clap::builder::PossibleValuesParser::new(run::policy_names()))]
    policy: Option<String>,
    /// The watchdog's T in seconds, fractions allowed, 0.01..600 (kernel option `timeout=`;
    /// ELF only). Not the wall-clock limit, which is --timeout.
    #[arg(long, value_name = "SECS")]
    watchdog_timeout: Option<String>,
    /// The handling / checker / first CPU (kernel option `handler=`; ELF only).
    #[arg(long, value_name = "N")]
    handler: Option<u32>,
    /// The watchdog scenario (kernel option `scenario=`; ELF only), e.g. `idle`,
    /// `lockup:cpu=2,after=1.3`, `deadlock:cpus=1+2,after=1`, `lockup-all:after=1`.
    #[arg(long, value_name = "SPEC")]
    scenario: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(args) => match build(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                err_line(&format!("hpetctl build: error: {e:#}"));
                ExitCode::from(EXIT_ERROR)
            }
        },
        Command::Run(args) => run_command(&args),
        Command::Probe(args) => probe_command(&args),
        Command::Bench(BenchCommand::Boot(args)) => match bench_boot(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                err_line(&format!("hpetctl bench boot: error: {e:#}"));
                ExitCode::from(EXIT_ERROR)
            }
        },
    }
}

fn probe_command(args: &ProbeArgs) -> ExitCode {
    let tables = match (&args.acpidump, &args.tables) {
        (Some(f), _) => probe::TableInput::Acpidump(f.clone()),
        (None, Some(d)) => probe::TableInput::Dir(d.clone()),
        (None, None) => probe::TableInput::Live,
    };
    let opts = probe::Options {
        tables,
        root: args.root.clone(),
    };
    match probe::probe(&opts) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => out(&format!("{s}\n")),
                    Err(e) => {
                        err_line(&format!("hpetctl probe: error: cannot serialise: {e}"));
                        return ExitCode::from(EXIT_ERROR);
                    }
                }
            } else {
                out(&probe::render(&report));
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            err_line(&format!("hpetctl probe: error: {e:#}"));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn bench_boot(args: &BenchBootArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let elf = dir.path().join("hpetwd.elf");
    std::fs::write(&elf, kernel_image::embedded_elf())
        .with_context(|| format!("cannot write {}", elf.display()))?;
    let report = bench::boot(
        &bench::BootBenchOptions {
            image: &elf,
            vcpus: &args.smp,
            runs: args.runs,
            accel: args.accel,
            icount: args.icount.unwrap_or(Icount::Default),
            timeout: Duration::from_secs(args.timeout),
        },
        err_line,
    )?;
    if args.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
    } else {
        out(&bench::render(&report));
    }
    Ok(())
}

fn run_command(args: &RunArgs) -> ExitCode {
    let result = run_options(args)
        .and_then(|opts| Ok((opts, watchdog_options(args)?)))
        .and_then(|(opts, wd)| run::run_with(&opts, &wd));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("{e:#}");
            err_line(&format!("hpetctl run: error: {reason}"));
            if args.json {
                let r = run::Report::setup_error(reason, args.accel, args.firmware);
                print_json(&r);
            }
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if args.json {
        print_json(&report);
    } else {
        out(&run::render_human(&report));
    }
    // exit_code() is 0, 1 or 2.
    ExitCode::from(report.result.exit_code() as u8)
}

/// Write to stdout; a closed stdout (`hpetctl run --json | head`) is not an error worth a
/// panic.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Write one line to stderr, ignoring a closed stderr.
fn err_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn print_json(r: &run::Report) {
    match serde_json::to_string_pretty(r) {
        Ok(s) => out(&format!("{s}\n")),
        Err(e) => err_line(&format!(
            "hpetctl run: error: cannot serialise the report: {e}"
        )),
    }
}

fn run_options(a: &RunArgs) -> Result<run::RunOptions> {
    let smp = SmpSpec::parse(&a.smp)?;
    if a.cpu.is_empty() || a.cpu.starts_with('-') {
        bail!(
            "invalid --cpu `{}`: expected a QEMU CPU model such as qemu64 or max",
            a.cpu
        );
    }
    for t in &a.trace {
        if t.is_empty() || t.starts_with('-') {
            bail!("invalid --trace `{t}`: expected a QEMU trace event name or pattern");
        }
    }
    Ok(run::RunOptions {
        image: a.image.clone(),
        smp,
        cpu: a.cpu.clone(),
        accel: a.accel,
        firmware: a.firmware,
        timeout: Duration::from_secs(a.timeout),
        append: a.append.clone(),
        memory_mb: a.memory,
        icount: a.icount.unwrap_or(Icount::Default),
        log: a.log.clone(),
        qemu_log: a.qemu_log.clone(),
        traces: a.trace.clone(),
        qemu_args: a.qemu_arg.clone(),
        verbose: a.verbose,
    })
}

fn watchdog_options(a: &RunArgs) -> Result<run::WatchdogOptions> {
    let wd = run::WatchdogOptions {
        policy: a.policy.clone(),
        timeout: a.watchdog_timeout.clone(),
        handler: a.handler,
        scenario: a.scenario.clone(),
    };
    wd.validate()?;
    Ok(wd)
}

fn build(args: &BuildArgs) -> Result<()> {
    let given;
    let (elf, what): (&[u8], String) = match &args.kernel {
        Some(p) => {
            given = std::fs::read(p)
                .with_context(|| format!("cannot read --kernel {}", p.display()))?;
            (&given, format!("--kernel {}", p.display()))
        }
        None => (
            kernel_image::embedded_elf(),
            "the kernel embedded in this hpetctl (was it built with HPETWD_KERNEL_ELF pointing at another file?)"
                .to_string(),
        ),
    };
    match image::recognise(elf) {
        Ok(image::ImageKind::Elf(info)) if info.multiboot2 && info.pvh_entry.is_some() => {}
        Ok(kind) => bail!(
            "{what} is a {kind}, but a kernel for `hpetctl build` needs both a PVH note and a multiboot2 header"
        ),
        Err(e) => return Err(e.context(format!("{what} is not a kernel image"))),
    }
    iso::check_tools()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output directory {}", args.out.display()))?;
    let elf_path = args.out.join("hpetwd.elf");
    write_atomically(&elf_path, elf)?;
    let iso_path = args.out.join("hpetwd.iso");
    iso::make_iso(elf, &iso_path)?;
    let iso_len = std::fs::metadata(&iso_path).map(|m| m.len()).unwrap_or(0);
    out(&format!(
        "{} ({} bytes)\n{} ({iso_len} bytes)\n",
        elf_path.display(),
        elf.len(),
        iso_path.display()
    ));
    Ok(())
}

/// Write `bytes` to `path` through a temporary file in the same directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".hpetwd-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    iso::set_readable(tmp.path())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_options_parse() {
        let cli = Cli::try_parse_from([
            "hpetctl",
            "run",
            "k.elf",
            "--smp",
            "6,sockets=2,cores=3",
            "--icount",
            "off",
            "--qemu-arg",
            "-global",
            "--qemu-arg=hpet.msi=on",
            "--trace",
            "hpet_ram_*",
            "--append",
            "tick_us=1000",
            "--json",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        let o = run_options(&a).unwrap();
        assert_eq!(o.smp.cpus, 6);
        assert_eq!(o.icount, Icount::Off);
        assert_eq!(
            o.qemu_args,
            vec![OsString::from("-global"), "hpet.msi=on".into()]
        );
        assert_eq!(o.traces, vec!["hpet_ram_*".to_string()]);
        assert!(a.json);

        for bad in [
            vec!["hpetctl", "run", "k", "--timeout", "0"],
            vec!["hpetctl", "run", "k", "--icount", "12"],
            vec!["hpetctl", "run", "k", "--accel", "hvf"],
            vec!["hpetctl", "run", "k", "--firmware", "coreboot"],
            vec!["hpetctl", "run", "k", "--memory", "1"],
            vec!["hpetctl", "run"],
            vec!["hpetctl", "build"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from([
            "hpetctl",
            "run",
            "k",
            "--policy",
            "round-robin",
            "--watchdog-timeout",
            "0.5",
            "--handler",
            "3",
            "--scenario",
            "deadlock:cpus=1+2,after=1",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        let wd = watchdog_options(&a).unwrap();
        assert_eq!(wd.policy.as_deref(), Some("round-robin"));
        assert_eq!(wd.timeout.as_deref(), Some("0.5"));
        assert_eq!(wd.handler, Some(3));
        assert_eq!(wd.scenario.as_deref(), Some("deadlock:cpus=1+2,after=1"));
        assert!(Cli::try_parse_from(["hpetctl", "run", "k", "--policy", "nope"]).is_err());
        assert!(Cli::try_parse_from(["hpetctl", "run", "k", "--handler", "-1"]).is_err());
        for (flag, value, says) in [
            ("--watchdog-timeout", "1,5", "expected seconds"),
            ("--watchdog-timeout", "0.001", "between 0.01 and 600"),
            ("--watchdog-timeout", "601", "between 0.01 and 600"),
            ("--scenario", "panic:now", "must be one of"),
            ("--scenario", "lockup:", "nothing after the colon"),
        ] {
            let cli = Cli::try_parse_from(["hpetctl", "run", "k", flag, value]).unwrap();
            let Command::Run(a) = cli.command else {
                panic!("not run")
            };
            let e = format!("{:#}", watchdog_options(&a).unwrap_err());
            assert!(e.contains(flag) && e.contains(says), "{flag} {value}: {e}");
        }
        let cli = Cli::try_parse_from(["hpetctl", "run", "k", "--smp", "0"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run")
        };
        assert!(format!("{:#}", run_options(&a).unwrap_err()).contains("--smp"));
    }
}
