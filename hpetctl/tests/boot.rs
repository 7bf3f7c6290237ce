//! Acceptance tests of the kernel foundation: the kernel is built by this crate's build
//! script, written out by `hpetctl build`, and booted in a real QEMU (TCG, `-icount`, so guest
//! time is deterministic) by `hpetctl run --json`.
//!
//! Expected values come from outside the kernel: APIC IDs from QEMU's topology rules
//! (computed here, see `qemu_apic_ids`), QEMU's exit status from isa-debug-exit, the clock
//! rates QEMU's TCG gives its TSC and local APIC timer under icount, and the tick count from
//! the boot options' own arithmetic.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const HPETCTL: &str = env!("CARGO_BIN_EXE_hpetctl");

/// Builds the images once per test binary.
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hpetwd-boot-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(HPETCTL)
            .arg("build")
            .arg("-o")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hpetctl build failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for file in ["hpetwd.elf", "hpetwd.iso"] {
            let meta = std::fs::metadata(dir.join(file)).unwrap();
            assert!(meta.len() > 0, "{file} is empty");
        }
        dir
    })
}

fn elf() -> PathBuf {
    images().join("hpetwd.elf")
}

fn iso() -> PathBuf {
    images().join("hpetwd.iso")
}

fn hpetctl(args: &[&str]) -> Output {
    Command::new(HPETCTL)
        .args(args)
        .output()
        .expect("hpetctl runs")
}

/// `hpetctl run IMAGE --json ARGS...`, parsed.
fn run_json(image: &Path, args: &[&str]) -> Value {
    let mut all = vec!["run", image.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = hpetctl(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "hpetctl run did not print one JSON document ({e}); status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// QEMU's x86 APIC ID for each logical CPU index, from its topology rules
/// (include/hw/i386/topology.h, `x86_apicid_from_cpu_idx`): each level takes
/// ceil(log2(count)) bits, threads lowest, then cores, modules, dies, sockets.
fn qemu_apic_ids(cpus: u32, dies: u32, modules: u32, cores: u32, threads: u32) -> Vec<u32> {
    let bits = |n: u32| {
        if n <= 1 {
            0
        } else {
            32 - (n - 1).leading_zeros()
        }
    };
    let core_offset = bits(threads);
    let module_offset = core_offset + bits(cores);
    let die_offset = module_offset + bits(modules);
    let pkg_offset = die_offset + bits(dies);
    (0..cpus)
        .map(|idx| {
            let smt = idx % threads;
            let core = (idx / threads) % cores;
            let module = (idx / (threads * cores)) % modules;
            let die = (idx / (threads * cores * modules)) % dies;
            let pkg = idx / (threads * cores * modules * dies);
            (pkg << pkg_offset)
                | (die << die_offset)
                | (module << module_offset)
                | (core << core_offset)
                | smt
        })
        .collect()
}

/// Checks a passing boot: every CPU online with the APIC ID it read itself equal to the
/// expected one, in the expected mode, and with its LAPIC timer ticking at the configured
/// rate.
fn assert_boot(report: &Value, expected_ids: &[u32], x2apic: bool) {
    assert_eq!(report["result"], "pass", "report: {report:#}");
    let n = expected_ids.len() as u64;
    assert_eq!(report["cpus_online"], n);
    assert_eq!(report["cpus_expected"], n);
    assert_eq!(report["apic_mode"], if x2apic { "x2apic" } else { "xapic" });
    let cpus = report["cpus"].as_array().expect("cpus array");
    assert_eq!(cpus.len(), expected_ids.len());
    for (i, (cpu, expected)) in cpus.iter().zip(expected_ids).enumerate() {
        assert_eq!(cpu["index"], i as u64);
        assert_eq!(cpu["online"], true, "cpu {i}");
        assert_eq!(
            cpu["apic_id"],
            u64::from(*expected),
            "cpu {i} read APIC ID {}, QEMU's topology gives {expected}",
            cpu["apic_id"]
        );
        assert_eq!(cpu["x2apic"], x2apic, "cpu {i} mode");
        assert_eq!(cpu["bsp"], i == 0, "cpu {i} bsp flag");
        // settle_ms=100 at tick_us=10000 (the defaults): 10 ticks, ±2 for phase and
        // icount's granularity.
        let ticks = cpu["ticks"].as_u64().expect("ticks");
        assert!(
            (8..=12).contains(&ticks),
            "cpu {i} took {ticks} timer ticks in 100 ms at a 10 ms tick"
        );
    }
}

/// Under TCG with -icount, QEMU's TSC counts virtual nanoseconds (1 GHz) and its local APIC
/// timer input runs at 1 GHz (APIC bus cycle 1 ns), so 62.5 MHz after the divide-by-16.
fn assert_clocks(report: &Value) {
    let tsc = report["tsc_hz"].as_f64().expect("tsc_hz");
    assert!(
        (tsc / 1e9 - 1.0).abs() < 0.01,
        "TSC {tsc} Hz, QEMU's icount TSC is 1 GHz"
    );
}

#[test]
fn pvh_boots_one_cpu() {
    let report = run_json(&elf(), &["--smp", "1"]);
    assert_boot(&report, &[0], false);
    assert_clocks(&report);
    assert_eq!(report["boot"]["via"], "pvh");
    assert_eq!(
        report["qemu"]["exit_status"], 33,
        "isa-debug-exit status for pass"
    );
}

#[test]
fn pvh_boots_two_cpus() {
    assert_boot(
        &run_json(&elf(), &["--smp", "2"]),
        &qemu_apic_ids(2, 1, 1, 2, 1),
        false,
    );
}

#[test]
fn pvh_boots_eight_cpus() {
    assert_boot(
        &run_json(&elf(), &["--smp", "8"]),
        &qemu_apic_ids(8, 1, 1, 8, 1),
        false,
    );
}

#[test]
fn pvh_boots_sixty_four_cpus() {
    assert_boot(
        &run_json(&elf(), &["--smp", "64"]),
        &qemu_apic_ids(64, 1, 1, 64, 1),
        false,
    );
}

#[test]
fn topology_with_apic_id_gaps() {
    // 2 sockets of 3 cores: cores take 2 bits, so the IDs are 0,1,2 and 4,5,6.
    let expected = qemu_apic_ids(6, 1, 1, 3, 1);
    assert_eq!(expected, [0, 1, 2, 4, 5, 6]);
    assert_boot(
        &run_json(&elf(), &["--smp", "6,sockets=2,cores=3"]),
        &expected,
        false,
    );
}

#[test]
fn x2apic_mode_when_the_cpu_offers_it() {
    let report = run_json(&elf(), &["--smp", "4", "--cpu", "qemu64,+x2apic"]);
    assert_boot(&report, &qemu_apic_ids(4, 1, 1, 4, 1), true);
    assert_clocks(&report);
}

#[test]
fn xapic_when_asked_even_if_x2apic_is_offered() {
    let report = run_json(
        &elf(),
        &[
            "--smp",
            "2",
            "--cpu",
            "qemu64,+x2apic",
            "--append",
            "x2apic=off",
        ],
    );
    assert_boot(&report, &[0, 1], false);
}

#[test]
fn three_hundred_cpus_with_apic_ids_above_255() {
    let report = run_json(
        &elf(),
        &[
            "--smp",
            "300",
            "--cpu",
            "qemu64,+x2apic",
            "--timeout",
            "600",
        ],
    );
    let expected = qemu_apic_ids(300, 1, 1, 300, 1);
    assert!(expected.iter().any(|&id| id > 255));
    assert_boot(&report, &expected, true);
}

#[test]
fn iso_boots_under_seabios() {
    let report = run_json(&iso(), &["--smp", "2", "--firmware", "bios"]);
    assert_boot(&report, &[0, 1], false);
    assert_eq!(report["boot"]["via"], "multiboot2");
    assert_eq!(report["qemu"]["exit_status"], 33);
}

#[test]
fn iso_boots_under_ovmf() {
    let report = run_json(
        &iso(),
        &["--smp", "2", "--firmware", "uefi", "--timeout", "300"],
    );
    assert_boot(&report, &[0, 1], false);
    assert_eq!(report["boot"]["via"], "multiboot2");
}

/// A deliberate page fault: the report names vector 14 and the faulting address, and QEMU
/// exits with the error status (isa-debug-exit 0x12 -> 37).
#[test]
fn deliberate_page_fault_is_reported_with_the_error_status() {
    let report = run_json(&elf(), &["--smp", "2", "--append", "fault=page-fault"]);
    assert_eq!(report["result"], "error", "report: {report:#}");
    assert_eq!(report["qemu"]["exit_status"], 37);
    let exception = &report["exception"];
    assert_eq!(exception["vector"], 14, "exception: {exception:#}");
    assert_eq!(exception["name"], "page-fault");
    // docs/cmdline.md: fault=page-fault reads 0x1dead0000, above the 4 GiB identity map.
    assert_eq!(exception["cr2"], "0x1dead0000");
    assert_eq!(exception["cpu"], 0);
}

#[test]
fn deliberate_fault_on_an_application_processor() {
    let report = run_json(
        &elf(),
        &["--smp", "4", "--append", "fault=invalid-opcode fault_cpu=3"],
    );
    assert_eq!(report["result"], "error", "report: {report:#}");
    assert_eq!(report["exception"]["vector"], 6);
    assert_eq!(report["exception"]["cpu"], 3);
    assert_eq!(report["exception"]["apic_id"], 3);
    assert_eq!(report["qemu"]["exit_status"], 37);
}

#[test]
fn unknown_boot_option_is_an_error() {
    let report = run_json(&elf(), &["--smp", "1", "--append", "frobnicate=1"]);
    assert_eq!(report["result"], "error", "report: {report:#}");
    assert_eq!(report["qemu"]["exit_status"], 37);
    let errors = report["errors"].as_array().expect("errors array");
    assert!(
        errors.iter().any(|e| e["kind"] == "unknown-option"
            && e["detail"].as_str().unwrap_or("").contains("frobnicate")),
        "errors: {errors:#?}"
    );
}

#[test]
fn run_refuses_a_file_that_is_not_a_kernel_image() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("notes.txt");
    std::fs::write(&bogus, "just some text, not a kernel\n").unwrap();
    let out = hpetctl(&["run", bogus.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status for an unusable image"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt"),
        "the error names the file: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("not a kernel image") || stderr.contains("ELF"),
        "{stderr}"
    );

    // The host's own /bin/true is an ELF, but not a bootable kernel (no PVH note).
    let out = hpetctl(&["run", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PVH"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--accel kvm` boots where KVM works. Where /dev/kvm is missing, or present but unusable
/// (nested KVM that cannot emulate SSE after an MMIO exit, see docs/testing.md), a canary
/// boot finds out and the test says loudly that it skipped, and why.
#[test]
fn kvm_boot_where_kvm_is_usable() {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("\n*** SKIPPED kvm_boot_where_kvm_is_usable: /dev/kvm does not exist on this machine ***\n");
        return;
    }
    // A working KVM boots this in well under a second; a broken one is either reported by
    // QEMU at once (hpetctl ends the run) or hangs until this timeout.
    let report = run_json(&elf(), &["--smp", "2", "--accel", "kvm", "--timeout", "30"]);
    if report["result"] == "pass" {
        assert_boot(&report, &[0, 1], false);
        return;
    }
    let reason = report["reason"].as_str().unwrap_or("").to_string();
    let stderr = report["qemu"]["stderr"].as_str().unwrap_or("").to_string();
    let unusable = [
        "emulation failure",
        "KVM internal error",
        "failed to set MSR",
        "Could not access KVM",
        "Permission denied",
    ];
    if unusable
        .iter()
        .any(|s| stderr.contains(s) || reason.contains(s))
    {
        eprintln!(
            "\n*** SKIPPED kvm_boot_where_kvm_is_usable: /dev/kvm exists but KVM cannot run the kernel here ***\n*** reason: {reason}\n*** QEMU said: {} ***\n",
            stderr.lines().find(|l| unusable.iter().any(|s| l.contains(s))).unwrap_or("").trim()
        );
        return;
    }
    panic!("KVM boot failed for a reason that is not a known unusable-KVM symptom: {report:#}");
}

/// The BIOS-area scan (ACPI 6.5 section 5.2.5.1) finds the very RSDP that QEMU handed over in
/// the PVH start info.
#[test]
fn bios_area_scan_finds_the_rsdp_qemu_handed_over() {
    let handed = run_json(&elf(), &["--smp", "1"]);
    let scanned = run_json(&elf(), &["--smp", "1", "--append", "rsdp=scan"]);
    assert_eq!(handed["result"], "pass");
    assert_eq!(scanned["result"], "pass", "report: {scanned:#}");
    assert_eq!(handed["platform"]["acpi"]["rsdp_source"], "pvh");
    assert_eq!(scanned["platform"]["acpi"]["rsdp_source"], "bios-scan");
    let address = &handed["platform"]["acpi"]["rsdp"];
    assert!(address.is_string(), "rsdp address: {address}");
    assert_eq!(&scanned["platform"]["acpi"]["rsdp"], address);
}

/// The fields of the kernel's `hpet-nmi` line in a serial log.
fn hpet_nmi_record(log: &Path) -> std::collections::HashMap<String, String> {
    records(log, "hpet-nmi")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no hpet-nmi record in {}", log.display()))
}

/// NMIs QEMU's local APIC delivered to APIC ID 0, from its `apic_deliver_irq` trace events.
fn traced_nmis_to_cpu0(qemu_log: &Path) -> u64 {
    std::fs::read_to_string(qemu_log)
        .expect("QEMU log")
        .lines()
        .filter(|l| {
            l.contains("apic_deliver_irq") && l.contains("dest 0 ") && l.contains("delivery_mode 4")
        })
        .count() as u64
}

/// One periodic HPET timer routed as NMIs to the boot CPU, through `route`: the kernel counts
/// 10 expiries in 100 ms at a 10 ms period, and QEMU's own trace shows every NMI it counted
/// (expiries plus the second delivery QEMU's periodic HPET makes under -icount).
fn hpet_route_delivers_nmis(route: &str, qemu_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let qemu_log = dir.path().join("qemu.log");
    let append = format!("hpet_nmi={route}");
    let mut args = vec![
        "--smp",
        "2",
        "--append",
        append.as_str(),
        "--log",
        log.to_str().unwrap(),
        "--qemu-log",
        qemu_log.to_str().unwrap(),
        "--trace",
        "apic_deliver_irq",
    ];
    for a in qemu_args {
        args.push("--qemu-arg");
        args.push(a);
    }
    let report = run_json(&elf(), &args);
    assert_eq!(report["result"], "pass", "report: {report:#}");
    let r = hpet_nmi_record(&log);
    assert_eq!(r["route"], route);
    let expiries: u64 = r["expiries"].parse().unwrap();
    let duplicates: u64 = r["duplicates"].parse().unwrap();
    assert!((9..=11).contains(&expiries), "{r:?}");
    assert_eq!(
        traced_nmis_to_cpu0(&qemu_log),
        expiries + duplicates,
        "QEMU delivered a different number of NMIs than the kernel counted: {r:?}"
    );
}

#[test]
fn hpet_fsb_route_delivers_nmis() {
    hpet_route_delivers_nmis("fsb", &["-global", "hpet.msi=on"]);
}

#[test]
fn hpet_ioapic_route_delivers_nmis() {
    hpet_route_delivers_nmis("ioapic", &[]);
}

#[test]
fn hpet_fsb_route_needs_the_fsb_capability() {
    // QEMU's HPET offers FSB delivery only with hpet.msi=on.
    let report = run_json(&elf(), &["--smp", "1", "--append", "hpet_nmi=fsb"]);
    assert_eq!(report["result"], "error", "report: {report:#}");
    let errors = report["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["kind"] == "hpet-nmi"),
        "{errors:#?}"
    );
}

/// The address range of a function in the kernel ELF, from its symbol table.
fn symbol_range(elf_path: &Path, name: &str) -> std::ops::Range<u64> {
    let bytes = std::fs::read(elf_path).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let sym = elf
        .syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .unwrap_or_else(|| panic!("no symbol {name} in the kernel ELF"));
    assert!(sym.st_size > 0, "{name} has no size");
    sym.st_value..sym.st_value + sym.st_size
}

/// All protocol records named `record` in a serial log, as key/value maps.
fn records(log: &Path, record: &str) -> Vec<std::collections::HashMap<String, String>> {
    let prefix = format!("HPETWD {record} ");
    std::fs::read_to_string(log)
        .expect("serial log")
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            l.split_whitespace()
                .skip(2)
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Under `policy` at 4 vCPUs with CPU 1 handling, CPU 2 spinning with interrupts off from
/// 1.3 s is reported once, on CPU 2, by the expected CPU, within [T - h, bound], with its RIP
/// inside the spinning function; no other CPU is reported and no NMI is left unknown.
fn watchdog_detects_a_lockup(policy: &str, detector: u64) {
    let (report, dir) = watchdog_run(policy, "lockup:cpu=2,after=1.3");
    assert_eq!(report["result"], "pass", "report: {report:#}");
    let log = dir.path().join("serial.log");
    let timing = &records(&log, "watchdog")[0];
    // The derivation's hand calculation for T = 1 s (nmi-watchdog timing.rs): h = 200 ms,
    // every HPET policy's bound 1.45 s.
    assert_eq!(field(timing, "heartbeat_ns"), 200_000_000);
    assert_eq!(field(timing, "bound_ns"), 1_450_000_000);
    let lockups = records(&log, "lockup");
    assert_eq!(lockups.len(), 1, "{lockups:?}");
    let l = &lockups[0];
    assert_eq!(field(l, "cpu"), 2);
    assert_eq!(field(l, "detected_by"), detector, "{l:?}");
    let latency = field(l, "latency_ns");
    assert!(
        (800_000_000..=1_450_000_000).contains(&latency),
        "latency {latency} ns: {l:?}"
    );
    let rip = field(l, "rip");
    let spin = symbol_range(&elf(), "hpetwd_lockup_spin");
    assert!(
        spin.contains(&rip),
        "RIP {rip:#x} outside hpetwd_lockup_spin {spin:x?}"
    );
    for counts in records(&log, "nmi-counts") {
        assert_eq!(field(&counts, "unknown"), 0, "{counts:?}");
        assert_eq!(field(&counts, "stalls"), 0, "{counts:?}");
    }
}

#[test]
fn watchdog_broadcast_detects_a_lockup() {
    watchdog_detects_a_lockup("broadcast", 2);
}

#[test]
fn watchdog_round_robin_detects_a_lockup() {
    watchdog_detects_a_lockup("round-robin", 2);
}

#[test]
fn watchdog_chain_detects_a_lockup() {
    watchdog_detects_a_lockup("chain", 2);
}

#[test]
fn watchdog_remote_detects_a_lockup() {
    // The checker (CPU 1) compares heartbeat counts; CPU 2's registers come from the NMI
    // the checker sends it.
    watchdog_detects_a_lockup("remote", 1);
}

#[test]
fn watchdog_buddy_detects_a_lockup() {
    // CPU 1's timer checks its neighbour, CPU 2.
    watchdog_detects_a_lockup("buddy", 1);
}

/// Boots 4 vCPUs (x2APIC, FSB-capable HPET) with the watchdog under `policy` (T = 1 s,
/// handler CPU 1) and `scenario`; returns the report and the serial log's records.
fn watchdog_run(policy: &str, scenario: &str) -> (Value, tempfile::TempDir) {
    watchdog_run_on(4, 1, policy, scenario)
}

/// As [`watchdog_run`], on `cpus` vCPUs with `handler` as the handling CPU.
fn watchdog_run_on(
    cpus: u32,
    handler: u32,
    policy: &str,
    scenario: &str,
) -> (Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let append = format!("policy={policy} timeout=1 handler={handler} scenario={scenario}");
    let smp = cpus.to_string();
    let report = run_json(
        &elf(),
        &[
            "--smp",
            &smp,
            "--timeout",
            "300",
            "--cpu",
            "qemu64,+x2apic",
            "--qemu-arg=-global",
            "--qemu-arg=hpet.msi=on",
            "--append",
            &append,
            "--log",
            log.to_str().unwrap(),
        ],
    );
    (report, dir)
}

fn field(m: &std::collections::HashMap<String, String>, k: &str) -> u64 {
    let v = &m[k];
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => v.parse().unwrap_or_else(|_| panic!("{k}={v}")),
    }
}

/// `deadlock:cpus=2+3`: both CPUs spin in the lock acquire loop with interrupts off; every
/// HPET policy reports both, within the bound, with their RIPs in `hpetwd_spin_lock`.
fn deadlock_detected(policy: &str) {
    let (report, dir) = watchdog_run(policy, "deadlock:cpus=2+3,after=1");
    assert_eq!(report["result"], "pass", "{policy}: {report:#}");
    let lockups = records(&dir.path().join("serial.log"), "lockup");
    let cpus: Vec<u64> = lockups.iter().map(|l| field(l, "cpu")).collect();
    assert_eq!(cpus, [2, 3], "{policy}: {lockups:?}");
    let spin = symbol_range(&elf(), "hpetwd_spin_lock");
    for l in &lockups {
        assert!(
            (800_000_000..=1_450_000_000).contains(&field(l, "latency_ns")),
            "{l:?}"
        );
        assert!(
            spin.contains(&field(l, "rip")),
            "RIP outside hpetwd_spin_lock {spin:x?}: {l:?}"
        );
    }
}

#[test]
fn deadlock_is_detected_by_broadcast() {
    deadlock_detected("broadcast");
}

#[test]
fn deadlock_is_detected_by_round_robin() {
    deadlock_detected("round-robin");
}

#[test]
fn deadlock_is_detected_by_chain() {
    deadlock_detected("chain");
}

#[test]
fn deadlock_is_detected_by_remote() {
    deadlock_detected("remote");
}

/// A CPU stuck inside an NMI handler (NMIs blocked): the count-sampling policies see its
/// heartbeat stop; the self-checking ones never get it to check itself (docs/watchdog.md).
#[test]
fn nmi_blocked_is_detected_by_remote_and_buddy_only() {
    for (policy, detector) in [("remote", 1), ("buddy", 1)] {
        let (report, dir) = watchdog_run(policy, "lockup:cpu=2,after=1,kind=nmi-blocked");
        assert_eq!(report["result"], "pass", "{policy}: {report:#}");
        let lockups = records(&dir.path().join("serial.log"), "lockup");
        assert_eq!(lockups.len(), 1, "{policy}: {lockups:?}");
        assert_eq!(field(&lockups[0], "cpu"), 2);
        assert_eq!(field(&lockups[0], "detected_by"), detector);
        // No NMI reaches a CPU that is inside one: no registers.
        assert_eq!(field(&lockups[0], "rip"), 0);
    }
    let (report, dir) = watchdog_run("broadcast", "lockup:cpu=2,after=1,kind=nmi-blocked");
    assert_eq!(report["result"], "fail", "{report:#}");
    assert!(
        report["reason"].as_str().unwrap().contains("not detected"),
        "{report:#}"
    );
    assert!(records(&dir.path().join("serial.log"), "lockup").is_empty());
}

/// A self-NMI nobody posted, outside the HPET window: counted as unknown on that CPU, never
/// claimed, no false positive.
#[test]
fn spurious_nmi_is_counted_as_unknown_and_causes_no_false_positive() {
    for policy in ["broadcast", "remote"] {
        let (report, dir) = watchdog_run(policy, "spurious-nmi:after=1.1");
        assert_eq!(report["result"], "pass", "{policy}: {report:#}");
        let log = dir.path().join("serial.log");
        assert!(records(&log, "lockup").is_empty(), "{policy}");
        let unknown: Vec<(u64, u64)> = records(&log, "nmi-counts")
            .iter()
            .map(|c| (field(c, "cpu"), field(c, "unknown")))
            .filter(|(_, u)| *u > 0)
            .collect();
        assert_eq!(
            unknown,
            [(1, 1)],
            "{policy}: one unknown NMI, on the handler CPU"
        );
    }
}

/// Every policy, with the handling CPU other than 0: a lockup on CPU 0, on the handler, on a
/// middle CPU and on the last CPU is reported once, on that CPU, by the CPU the policy
/// assigns (itself for the self-checking policies; the checker under `remote`, which checks
/// its own heartbeat itself; the previous CPU in the ring under `buddy`), within
/// [T - h, bound], with its RIP in `hpetwd_lockup_spin` (read from the locked CPU's own NMI,
/// or the capture NMI the checker sent it), and no unknown NMI or stall anywhere.
fn lockups_in_every_role(policy: &str, cpus: u32, handler: u32) {
    let spin = symbol_range(&elf(), "hpetwd_lockup_spin");
    for target in [0, handler, cpus / 2, cpus - 1] {
        let scenario = format!("lockup:cpu={target},after=1.3");
        let (report, dir) = watchdog_run_on(cpus, handler, policy, &scenario);
        let what = format!("{policy} at {cpus} vCPUs, handler {handler}, CPU {target} locked");
        assert_eq!(report["result"], "pass", "{what}: {report:#}");
        let log = dir.path().join("serial.log");
        let lockups = records(&log, "lockup");
        assert_eq!(lockups.len(), 1, "{what}: {lockups:?}");
        let l = &lockups[0];
        assert_eq!(field(l, "cpu"), u64::from(target), "{what}");
        let detector = match policy {
            "remote" => handler,
            "buddy" => (target + cpus - 1) % cpus,
            _ => target,
        };
        assert_eq!(
            field(l, "detected_by"),
            u64::from(detector),
            "{what}: {l:?}"
        );
        let latency = field(l, "latency_ns");
        assert!(
            (800_000_000..=1_450_000_000).contains(&latency),
            "{what}: {l:?}"
        );
        assert!(
            spin.contains(&field(l, "rip")),
            "{what}: RIP outside the spin: {l:?}"
        );
        for counts in records(&log, "nmi-counts") {
            assert_eq!(field(&counts, "unknown"), 0, "{what}: {counts:?}");
            assert_eq!(field(&counts, "stalls"), 0, "{what}: {counts:?}");
        }
    }
}

#[test]
fn broadcast_lockups_in_every_role_at_4_cpus() {
    lockups_in_every_role("broadcast", 4, 1);
}

#[test]
fn round_robin_lockups_in_every_role_at_4_cpus() {
    lockups_in_every_role("round-robin", 4, 1);
}

#[test]
fn chain_lockups_in_every_role_at_4_cpus() {
    lockups_in_every_role("chain", 4, 1);
}

#[test]
fn remote_lockups_in_every_role_at_4_cpus() {
    lockups_in_every_role("remote", 4, 1);
}

#[test]
fn buddy_lockups_in_every_role_at_4_cpus() {
    lockups_in_every_role("buddy", 4, 1);
}

#[test]
fn broadcast_lockups_in_every_role_at_16_cpus() {
    lockups_in_every_role("broadcast", 16, 5);
}

#[test]
fn round_robin_lockups_in_every_role_at_16_cpus() {
    lockups_in_every_role("round-robin", 16, 5);
}

#[test]
fn chain_lockups_in_every_role_at_16_cpus() {
    lockups_in_every_role("chain", 16, 5);
}

#[test]
fn remote_lockups_in_every_role_at_16_cpus() {
    lockups_in_every_role("remote", 16, 5);
}

#[test]
fn buddy_lockups_in_every_role_at_16_cpus() {
    lockups_in_every_role("buddy", 16, 5);
}
