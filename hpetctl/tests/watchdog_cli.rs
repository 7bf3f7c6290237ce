//! `hpetctl run`'s watchdog options and report, end to end: the kernel embedded in hpetctl
//! is written out by `hpetctl build` and booted in QEMU (TCG, `-icount`) with `--policy`,
//! `--watchdog-timeout`, `--handler` and `--scenario`; the JSON report's `watchdog` object
//! is checked against the scenario and against the ELF's own symbol table.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const HPETCTL: &str = env!("CARGO_BIN_EXE_hpetctl");

/// Builds the images once per test binary.
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("hpetwd-watchdog-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = hpetctl(&["build", "-o", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "hpetctl build failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn elf() -> PathBuf {
    images().join("hpetwd.elf")
}

fn hpetctl(args: &[&str]) -> Output {
    Command::new(HPETCTL)
        .args(args)
        .output()
        .expect("hpetctl runs")
}

/// `hpetctl run IMAGE --json ARGS...`: the exit status and the parsed document.
fn run_json(image: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["run", image.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = hpetctl(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "hpetctl run did not print one JSON document ({e}); status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

const WATCHDOG_4: [&str; 10] = [
    "--smp",
    "4",
    "--cpu",
    "qemu64,+x2apic",
    "--policy",
    "broadcast",
    "--watchdog-timeout",
    "1",
    "--handler",
    "1",
];

#[test]
fn broadcast_reports_the_injected_lockup_with_its_symbol() {
    let mut args = WATCHDOG_4.to_vec();
    args.extend(["--scenario", "lockup:cpu=2,after=1.3"]);
    let (status, r) = run_json(&elf(), &args);
    assert_eq!(r["result"], "pass", "{r:#}");
    assert_eq!(status, Some(0));
    // hpetctl put the options on the command line, and asked QEMU for FSB delivery.
    let cmdline = r["boot"]["cmdline"].as_str().unwrap();
    assert!(
        cmdline.ends_with("policy=broadcast timeout=1 handler=1 scenario=lockup:cpu=2,after=1.3"),
        "{cmdline}"
    );
    let command: Vec<&str> = r["qemu"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["-global", "hpet.msi=on"]),
        "{command:?}"
    );

    let w = &r["watchdog"];
    assert_eq!(w["policy"], "broadcast");
    assert_eq!(w["timeout_ms"], 1000.0);
    assert_eq!(w["heartbeat_ms"], 200.0);
    assert_eq!(w["bound_ms"], 1450.0);
    assert_eq!(w["earliest_ms"], 800.0);
    assert_eq!(w["handler"], 1);
    assert_eq!(w["route"]["kind"], "fsb");
    assert_eq!(w["route"]["dest_cpu"], 1);
    let lockups = w["lockups"].as_array().unwrap();
    assert_eq!(lockups.len(), 1, "{w:#}");
    let l = &lockups[0];
    assert_eq!(l["cpu"], 2);
    assert_eq!(l["symbol"], "hpetwd_lockup_spin", "{l:#}");
    let latency = l["latency_ms"].as_f64().unwrap();
    assert!((800.0..=1450.0).contains(&latency), "latency {latency} ms");
    assert!(l["rip"].as_str().unwrap().starts_with("0x"));
    assert_eq!(w["false_positives"], serde_json::json!([]));
    assert_eq!(w["watchdog_stalls"], 0);
    assert_eq!(w["nmis"]["unknown"], 0);
    assert_eq!(w["nmis_per_cpu"].as_array().unwrap().len(), 4);
    assert!(w["nmis"]["total"].as_u64().unwrap() > 0);
}

#[test]
fn an_idle_watchdog_run_passes_without_lockups() {
    let mut args = WATCHDOG_4.to_vec();
    args.extend(["--scenario", "idle"]);
    let (status, r) = run_json(&elf(), &args);
    assert_eq!(r["result"], "pass", "{r:#}");
    assert_eq!(status, Some(0));
    let w = &r["watchdog"];
    assert_eq!(w["scenario"], "idle");
    assert_eq!(w["lockups"], serde_json::json!([]));
    assert_eq!(w["false_positives"], serde_json::json!([]));
    assert_eq!(w["watchdog_stalls"], 0);
    assert_eq!(w["nmis"]["unknown"], 0);
}

#[test]
fn the_human_summary_has_a_watchdog_section() {
    let elf = elf();
    let mut all = vec!["run", elf.to_str().unwrap()];
    all.extend(WATCHDOG_4);
    all.extend(["--scenario", "lockup:cpu=3,after=1.3"]);
    let out = hpetctl(&all);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("watchdog:  broadcast, T 1000 ms"), "{text}");
    assert!(text.contains("route:     fsb"), "{text}");
    assert!(text.contains("hpetwd_lockup_spin"), "{text}");
}

#[test]
fn bad_watchdog_options_are_clear_errors_before_qemu_starts() {
    let elf = elf();
    let image = elf.to_str().unwrap();
    for (args, says) in [
        (vec!["--policy", "sometimes"], "--policy"),
        (vec!["--watchdog-timeout", "0.001"], "between 0.01 and 600"),
        (vec!["--scenario", "explode:now"], "must be one of"),
        (
            vec!["--policy", "chain", "--append", "policy=buddy"],
            "both set the kernel's `policy`",
        ),
    ] {
        let mut all = vec!["run", image];
        all.extend(&args);
        let out = hpetctl(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let iso = images().join("hpetwd.iso");
    let (status, r) = run_json(&iso, &["--scenario", "idle"]);
    assert_eq!(status, Some(2));
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("--scenario cannot change the command line of an ISO"),
        "{r:#}"
    );
}
