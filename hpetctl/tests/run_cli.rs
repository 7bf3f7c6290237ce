//! `hpetctl build` and `hpetctl run` end to end, against real QEMU. Tests that need QEMU or
//! GRUB fail (they never skip) when it is missing.
//!
//! Most runs boot a tiny fake kernel (tests/common) that prints chosen protocol lines, so
//! every way a run can end is covered whatever the state of the real kernel; the last tests
//! boot the kernel embedded in hpetctl.

mod common;

use common::*;

#[test]
fn a_file_that_is_not_a_kernel_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a kernel\n").unwrap();
    let empty = dir.path().join("empty.elf");
    std::fs::write(&empty, b"").unwrap();
    for (path, what) in [(&text, "neither ELF nor ISO"), (&empty, "empty")] {
        let o = run(&["run", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains(what) && err.contains("expected"), "{err}");
        assert!(stdout(&o).is_empty());
    }
    // With --json the error is also one JSON document on stdout.
    let o = run(&["run", text.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&o);
    assert_eq!(v["result"], "error");
    assert!(v["reason"].as_str().unwrap().contains("notes.txt"));
    // A missing file is named too.
    let missing = dir.path().join("missing.elf");
    let o = run(&["run", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.elf"), "{}", stderr(&o));
}

#[test]
fn an_elf_without_pvh_note_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut elf = fake_kernel(b"x", End::Halt);
    // Turn the PT_NOTE into PT_NULL: no PVH note any more, the multiboot2 header stays.
    elf[64 + 56..64 + 60].copy_from_slice(&0u32.to_le_bytes());
    let p = dir.path().join("mb2-only.elf");
    std::fs::write(&p, elf).unwrap();
    let o = run(&["run", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("without a PVH note") && err.contains("mb2-only.elf"),
        "{err}"
    );
}

#[test]
fn missing_qemu_names_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let k = write_fake(dir.path(), "k.elf", "", End::Halt);
    let o = hpetctl()
        .args(["run", k.to_str().unwrap()])
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("qemu-system-x86_64") && err.contains("qemu-system-x86"),
        "{err}"
    );
}

#[test]
fn bad_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let k = write_fake(dir.path(), "k.elf", "", End::Halt);
    let k = k.to_str().unwrap();
    for (args, what) in [
        (vec!["--smp", "6,sockets=2,cores=2"], "invalid --smp"),
        (vec!["--smp", "0"], "invalid --smp"),
        (vec!["--firmware", "uefi"], "SeaBIOS"),
        (
            vec!["--accel", "kvm", "--icount", "7"],
            "--icount needs --accel tcg",
        ),
    ] {
        let mut all = vec!["run", k];
        all.extend(&args);
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    }
}

fn run_fake(serial: &str, end: End, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let k = write_fake(dir.path(), "k.elf", serial, end);
    let mut args = vec!["run", k.to_str().unwrap(), "--json"];
    args.extend(extra);
    let o = run(&args);
    let v = json(&o);
    (o, v)
}

#[test]
fn fake_pass_through_pvh() {
    let serial =
        healthy_lines("qemu") + "HPETWD summary result=pass cpus_online=1 cpus_expected=1\r\n";
    let (o, v) = run_fake(&serial, End::DebugExit(0x10), &[]);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["result"], "pass");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["qemu"]["exit_status"], 33);
    assert_eq!(v["cpus"][0]["ticks"], 10);
    assert_eq!(v["cpus_online"], 1);
    assert_eq!(v["boot"]["cmdline"], "exit=qemu");
    assert_eq!(v["accel"], "tcg");
    let cmd: Vec<&str> = v["qemu"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        cmd.windows(2).any(|w| w == ["-append", "exit=qemu"]),
        "{cmd:?}"
    );
    assert!(
        cmd.windows(2)
            .any(|w| w == ["-icount", "shift=7,sleep=off"]),
        "{cmd:?}"
    );
}

#[test]
fn fake_fail_and_error_statuses() {
    let serial = healthy_lines("qemu")
        + "HPETWD summary result=fail cpus_online=1 cpus_expected=1 reason=\"CPU 0 \\\"stuck\\\"\"\r\n";
    let (o, v) = run_fake(&serial, End::DebugExit(0x11), &[]);
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert_eq!(v["result"], "fail");
    assert_eq!(v["reason"], "CPU 0 \"stuck\"");

    let serial = healthy_lines("qemu")
        + "HPETWD error kind=bad-option-value detail=\"tick_us=5\"\r\n\
           HPETWD summary result=error cpus_online=1 cpus_expected=1 reason=\"bad option\"\r\n";
    let (o, v) = run_fake(&serial, End::DebugExit(0x12), &[]);
    assert_eq!(o.status.code(), Some(2), "{v}");
    assert_eq!(v["result"], "error");
    assert_eq!(v["errors"][0]["kind"], "bad-option-value");
    assert_eq!(v["errors"][0]["detail"], "tick_us=5");
}

#[test]
fn fake_summary_contradicted_by_exit_status() {
    let serial =
        healthy_lines("qemu") + "HPETWD summary result=pass cpus_online=1 cpus_expected=1\r\n";
    let (o, v) = run_fake(&serial, End::DebugExit(0x11), &[]);
    assert_eq!(o.status.code(), Some(2), "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("says pass but QEMU exited with status 35"),
        "{reason}"
    );
}

#[test]
fn fake_triple_fault_without_summary() {
    let serial = healthy_lines("qemu");
    let (o, v) = run_fake(&serial, End::TripleFault, &[]);
    assert_eq!(o.status.code(), Some(2), "{v}");
    assert_eq!(v["qemu"]["exit_status"], 0);
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("no summary record") && reason.contains("triple-fault"),
        "{reason}"
    );
    // The serial log of a run that did not pass is kept.
    let log = v["log"].as_str().expect("log path");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("HPETWD build"));
    let _ = std::fs::remove_file(log);
}

#[test]
fn fake_hang_times_out() {
    let serial = healthy_lines("qemu") + "still working";
    let (o, v) = run_fake(&serial, End::Halt, &["--timeout", "2"]);
    assert_eq!(o.status.code(), Some(2), "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.starts_with("timeout after 2 s"), "{reason}");
    assert!(reason.contains("still working"), "{reason}");
    assert_eq!(v["qemu"]["ended"], "killed-timeout");
    let _ = std::fs::remove_file(v["log"].as_str().unwrap());
}

#[test]
fn fake_no_protocol_output() {
    let (o, v) = run_fake("garbage \x1b[2J only\r\n", End::DebugExit(0x10), &[]);
    assert_eq!(o.status.code(), Some(2), "{v}");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("no `HPETWD build` line"), "{reason}");
    let _ = std::fs::remove_file(v["log"].as_str().unwrap());
}

#[test]
fn fake_halting_kernel_is_stopped_after_its_summary() {
    let serial =
        healthy_lines("halt") + "HPETWD summary result=pass cpus_online=1 cpus_expected=1\r\n";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let (o, v) = run_fake(
        &serial,
        End::Halt,
        &["--append", "exit=halt", "--log", log.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["qemu"]["ended"], "killed-after-summary");
    assert_eq!(v["log"], log.to_str().unwrap());
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("HPETWD summary"));
    let cmd = v["qemu"]["command"].as_array().unwrap();
    assert_eq!(cmd.last().unwrap(), "exit=halt", "no exit=qemu added");
}

#[test]
fn human_output_summarises_the_run() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let serial =
        healthy_lines("qemu") + "HPETWD summary result=pass cpus_online=1 cpus_expected=1\r\n";
    let k = write_fake(dir.path(), "k.elf", &serial, End::DebugExit(0x10));
    let o = run(&["run", k.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "result:    PASS",
        "build:     abcd",
        "cpus:      1/1 online",
        "apic:      xapic",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
}

fn require_iso_tools() {
    require_tool("grub-mkrescue", "grub-common");
    require_tool("xorriso", "xorriso");
    require_tool("mformat", "mtools");
}

#[test]
fn fake_kernel_iso_boots_under_bios_and_uefi() {
    require_qemu();
    require_iso_tools();
    let dir = tempfile::tempdir().unwrap();
    let serial =
        healthy_lines("qemu") + "HPETWD summary result=pass cpus_online=1 cpus_expected=1\r\n";
    let k = write_fake(dir.path(), "k.elf", &serial, End::DebugExit(0x10));
    let out = dir.path().join("out");
    let o = run(&[
        "build",
        "-o",
        out.to_str().unwrap(),
        "--kernel",
        k.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let iso = out.join("hpetwd.iso");
    let o = run(&["run", iso.to_str().unwrap(), "--json"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["image"]["kind"], "iso");
    // --append cannot reach an ISO's command line.
    let o = run(&["run", iso.to_str().unwrap(), "--append", "tick_us=1000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--append cannot change"),
        "{}",
        stderr(&o)
    );
    // UEFI (OVMF) boots the same ISO.
    assert!(
        std::path::Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file(),
        "OVMF is not installed (Debian package ovmf)"
    );
    let o = run(&["run", iso.to_str().unwrap(), "--firmware", "uefi", "--json"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
}

// The real kernel, embedded in hpetctl (HPETWD_KERNEL_ELF or build.rs).

#[test]
fn build_writes_the_elf_and_the_iso() {
    require_iso_tools();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new-dir");
    let o = run(&["build", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let elf = std::fs::read(out.join("hpetwd.elf")).unwrap();
    assert!(elf.starts_with(b"\x7fELF"));
    let iso = std::fs::read(out.join("hpetwd.iso")).unwrap();
    assert_eq!(iso.get(0x8001..0x8006), Some(&b"CD001"[..]));
}

#[test]
fn real_kernel_boots_one_cpu_through_pvh() {
    require_qemu();
    require_iso_tools();
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["build", "-o", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let elf = dir.path().join("hpetwd.elf");
    let o = run(&["run", elf.to_str().unwrap(), "--json", "--smp", "1"]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["result"], "pass");
    assert_eq!(v["boot"]["via"], "pvh");
    assert_eq!(v["cpus_online"], 1);
    assert_eq!(v["cpus_expected"], 1);
    assert!(v["build_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["build_id"], v["image"]["build_id"]);
}
