//! `hpetctl probe` end to end on the host: a fake /sys and /proc tree (a machine without
//! HPET, /dev/mem or msr), offline acpidump files from real machines (facts checked against
//! acpi-probe/tests/fixtures/linuxhw/expected.tsv, which ACPICA produced), binary table
//! directories, and bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn hpetctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hpetctl"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = hpetctl().arg("probe").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = run(&a);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(v["schema"], "hpetwd-probe/1");
    (code, v)
}

fn linuxhw(name: &str) -> String {
    format!(
        "{}/../acpi-probe/tests/fixtures/linuxhw/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// An ACPI table with a valid checksum.
fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum
    t.extend_from_slice(b"HPETWD");
    t.extend_from_slice(b"PROBETST");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[9] = 0u8.wrapping_sub(sum);
    t
}

/// A MADT with `n` enabled local APICs (IDs 0..n).
fn madt(n: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
    body.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        body.extend_from_slice(&[0, 8, i, i]);
        body.extend_from_slice(&1u32.to_le_bytes());
    }
    table(b"APIC", &body)
}

/// An HPET table: 3 comparators, 64-bit counter, at 0xFED00000, HPET number 0.
fn hpet_table() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x8086_a201u32.to_le_bytes());
    body.extend_from_slice(&[0, 64, 0, 0]);
    body.extend_from_slice(&0xfed0_0000u64.to_le_bytes());
    body.push(0); // HPET number
    body.extend_from_slice(&0x80u16.to_le_bytes());
    body.push(0);
    table(b"HPET", &body)
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A fake root like this build VM: ACPI tables without HPET, no /dev/mem, no msr driver.
fn fake_root(with_hpet: bool) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "sys/firmware/acpi/tables/APIC", &madt(4));
    write(
        r,
        "sys/firmware/acpi/tables/FACP",
        &table(b"FACP", &[0; 80]),
    );
    if with_hpet {
        write(r, "sys/firmware/acpi/tables/HPET", &hpet_table());
    }
    write(r, "sys/firmware/acpi/tables/data/BERT", b"not a table");
    write(
        r,
        "proc/cmdline",
        b"console=ttyS0 nmi_watchdog=1 hpet=nomsi -- init args\n",
    );
    write(
        r,
        "proc/interrupts",
        b"           CPU0\n  0:   33   IO-APIC   2-edge      timer\n  4:  12  IO-APIC  4-edge  ttyS0\n",
    );
    write(r, "proc/sys/kernel/nmi_watchdog", b"1\n");
    write(r, "proc/sys/kernel/watchdog_thresh", b"10\n");
    write(r, "proc/sys/kernel/watchdog_cpumask", b"0-3\n");
    write(r, "sys/devices/system/cpu/online", b"0-3\n");
    write(
        r,
        "sys/devices/system/clocksource/clocksource0/current_clocksource",
        b"tsc\n",
    );
    write(
        r,
        "sys/devices/system/clocksource/clocksource0/available_clocksource",
        b"tsc acpi_pm\n",
    );
    d
}

fn unread_sources(v: &Value) -> Vec<String> {
    v["unread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["source"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn no_hpet_machine_reports_clearly_and_exits_1() {
    let root = fake_root(false);
    let r = root.path().to_str().unwrap();
    let (code, v) = json(&["--root", r]);
    assert_eq!(code, 1);
    assert_eq!(v["input"]["kind"], "live");
    assert_eq!(v["hpet"]["present"], false);
    assert_eq!(v["hpet"]["timers"], Value::Array(vec![]));
    assert_eq!(v["iommu"]["kind"], "none");
    assert_eq!(v["iommu"]["interrupt_remapping"], false);
    assert_eq!(v["iommu"]["linux_remapping_enabled"], false);
    assert_eq!(v["cpus"]["online"], 4);
    assert_eq!(v["cpus"]["madt_enabled"], 4);
    assert_eq!(v["cpus"]["max_apic_id"], 3);
    assert_eq!(v["verdicts"]["watchdog_possible"]["answer"], "no");
    assert_eq!(v["verdicts"]["policies"]["buddy"]["answer"], "yes");
    assert_eq!(v["linux"]["nmi_watchdog"], "1");
    assert_eq!(v["linux"]["hpet_nomsi"], true);
    assert_eq!(
        v["linux"]["cmdline"],
        serde_json::json!(["nmi_watchdog=1", "hpet=nomsi"])
    );
    let unread = unread_sources(&v);
    assert!(unread.contains(&"/dev/cpu/0/msr".to_string()), "{unread:?}");
    let msr = v["unread"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["source"] == "/dev/cpu/0/msr")
        .unwrap();
    assert!(msr["how"].as_str().unwrap().contains("modprobe msr"));

    let (code, text, err) = run(&["--root", r]);
    assert_eq!(code, 1, "{err}");
    assert!(text.starts_with("HPET NMI watchdog possible: no"), "{text}");
    assert!(text.contains("no HPET"), "{text}");
    assert!(text.contains("Not read"), "{text}");
}

#[test]
fn hpet_without_dev_mem_is_unconfirmed_and_says_why() {
    let root = fake_root(true);
    let (code, v) = json(&["--root", root.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(v["hpet"]["present"], true);
    assert_eq!(v["hpet"]["table"]["base_address"], "0xfed00000");
    assert_eq!(v["hpet"]["timers"], Value::Array(vec![]));
    assert_eq!(v["verdicts"]["watchdog_possible"]["answer"], "unknown");
    let devmem = v["unread"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["source"]
                .as_str()
                .unwrap()
                .contains("/dev/mem @0xfed00000")
        })
        .expect("a /dev/mem entry");
    assert!(devmem["how"].as_str().unwrap().contains("CONFIG_DEVMEM"));
}

#[test]
fn acpidump_with_dmar_hpet_scope() {
    // expected.tsv: HPET at 0xfed00000, 8 comparators, 64-bit; DMAR INTR_REMAP=1, HPET scope
    // enumeration ID 0 with source_id 0xf078 (f0:0f.0); 8 enabled processors.
    let (code, v) = json(&[
        "--acpidump",
        &linuxhw("Server-Fujitsu-PRIMERGY_41B1E7A57925.acpidump"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["input"]["kind"], "acpidump");
    assert_eq!(v["hpet"]["present"], true);
    assert_eq!(v["hpet"]["table"]["comparator_count"], 8);
    assert_eq!(v["hpet"]["table"]["counter_64bit"], true);
    assert_eq!(v["hpet"]["timers"], Value::Array(vec![]));
    assert_eq!(v["iommu"]["kind"], "intel-vtd");
    assert_eq!(v["iommu"]["interrupt_remapping"], true);
    assert_eq!(v["iommu"]["hpet_source_id"], "f0:0f.0");
    assert_eq!(v["cpus"]["online"], 8);
    assert_eq!(v["verdicts"]["routes"]["fsb_remapped"]["answer"], "unknown");
    assert_eq!(v["verdicts"]["routes"]["fsb_remapped_source_id"], "f0:0f.0");
    assert_eq!(v["verdicts"]["watchdog_possible"]["answer"], "unknown");
    assert!(v["cpu"].is_null() && v["msr"].is_null() && v["linux"].is_null());
    assert!(unread_sources(&v).iter().any(|s| s.contains("CPUID")));
}

#[test]
fn acpidump_amd_with_ivrs_and_32bit_counter() {
    // expected.tsv: IVRS present, HPET counter_64bit 0, 32 enabled processors.
    let (code, v) = json(&[
        "--acpidump",
        &linuxhw("Desktop-ASUSTek-Computer-TUF-GAMING-X570-PLUS_FFE351BD703D.acpidump"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["hpet"]["present"], true);
    assert_eq!(v["hpet"]["table"]["counter_64bit"], false);
    assert_eq!(v["iommu"]["kind"], "amd-vi");
    assert_eq!(v["cpus"]["online"], 32);
    assert_eq!(v["verdicts"]["routes"]["fsb_remapped"]["answer"], "no");
    assert!(v["verdicts"]["routes"]["fsb_remapped"]["reason"]
        .as_str()
        .unwrap()
        .contains("NMIPass"));
}

#[test]
fn acpidump_without_hpet_exits_1() {
    // expected.tsv: tables MCFG, APIC, IVRS, FACP (no HPET); 12 enabled processors.
    let (code, v) = json(&[
        "--acpidump",
        &linuxhw(
            "Notebook-ASUSTek-Computer-ASUS-TUF-Gaming-A15-FA506NF-FA506N_23619109C08C.acpidump",
        ),
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["hpet"]["present"], false);
    assert_eq!(v["iommu"]["kind"], "amd-vi");
    assert_eq!(v["cpus"]["online"], 12);
}

#[test]
fn tables_dir() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "APIC", &madt(2));
    write(d.path(), "HPET", &hpet_table());
    std::fs::create_dir(d.path().join("dynamic")).unwrap();
    let (code, v) = json(&["--tables", d.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(v["input"]["kind"], "tables");
    assert_eq!(v["hpet"]["present"], true);
    assert_eq!(v["cpus"]["online"], 2);
    assert_eq!(v["iommu"]["kind"], "none");
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let missing: PathBuf = d.path().join("missing.acpidump");
    let (code, out, err) = run(&["--acpidump", missing.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("missing.acpidump"), "{err}");

    let garbage = d.path().join("garbage.acpidump");
    std::fs::write(&garbage, "HPET @ 0x0\n    0000: 48 50 45 ZZ\n").unwrap();
    let (code, _, err) = run(&["--acpidump", garbage.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("garbage.acpidump") && err.contains("line 2"),
        "{err}"
    );

    // A truncated HPET table inside an otherwise well-formed dump.
    let short = d.path().join("short.acpidump");
    std::fs::write(
        &short,
        "HPET @ 0x0\n    0000: 48 50 45 54 38 00 00 00 01 00 48 50 45 54 57 44  HPETWD\n",
    )
    .unwrap();
    let (code, _, err) = run(&["--acpidump", short.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("short.acpidump"), "{err}");

    let (code, _, err) = run(&["--tables", d.path().join("nodir").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("nodir"), "{err}");

    let td = d.path().join("tables");
    write(&td, "HPET", b"nonsense");
    let (code, _, err) = run(&["--tables", td.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("HPET") && err.contains("not an ACPI table"),
        "{err}"
    );

    let (code, _, _) = run(&["--acpidump", "a", "--tables", "b"]);
    assert_eq!(code, 2);
}
