//! Helpers for the integration tests: the hpetctl binary, QEMU checks, and a tiny fake
//! kernel that prints chosen serial output and ends as told, so that `hpetctl run`'s
//! judgement can be tested against real QEMU independently of the real kernel.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The hpetctl binary under test.
pub fn hpetctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hpetctl"))
}

/// Run hpetctl with `args`.
pub fn run(args: &[&str]) -> Output {
    hpetctl()
        .args(args)
        .output()
        .expect("cannot start the hpetctl binary")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Tests that boot QEMU fail (never skip) when it is missing.
pub fn require_tool(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: these tests need it (Debian package {package})"
    );
}

pub fn require_qemu() {
    require_tool(
        "qemu-system-x86_64",
        "qemu-system-x86 from bookworm-backports",
    );
}

/// How the fake kernel ends after printing its output.
#[derive(Clone, Copy)]
pub enum End {
    /// Write this value to QEMU's isa-debug-exit port (QEMU exits with (v << 1) | 1).
    DebugExit(u32),
    /// Halt forever with interrupts off.
    Halt,
    /// Load an empty IDT and raise #UD: a triple fault (QEMU exits 0 with -no-reboot).
    TripleFault,
}

/// A minimal ELF64 x86_64 kernel, loaded at 1 MiB, with a PVH note and a multiboot2
/// header, whose 32-bit entry writes `serial` to COM1 and then ends as `end` says. PVH and
/// multiboot2 both enter in 32-bit protected mode with flat segments, so one entry serves
/// both.
pub fn fake_kernel(serial: &[u8], end: End) -> Vec<u8> {
    const BASE: u32 = 0x10_0000;
    const CODE_OFF: usize = 0xe0;
    let mut code: Vec<u8> = Vec::new();
    code.push(0xbe); // mov esi, imm32 (message address, patched below)
    let msg_fixup = code.len();
    code.extend_from_slice(&[0; 4]);
    code.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
                                                       // loop: lodsb; test al, al; jz done; out dx, al; jmp loop
    code.extend_from_slice(&[0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8]);
    let mut idt_fixup = None;
    match end {
        End::DebugExit(v) => {
            code.extend_from_slice(&[0x66, 0xba, 0xf4, 0x00]); // mov dx, 0xf4
            code.push(0xb8); // mov eax, imm32
            code.extend_from_slice(&v.to_le_bytes());
            code.push(0xef); // out dx, eax
        }
        End::Halt => {}
        End::TripleFault => {
            code.extend_from_slice(&[0x0f, 0x01, 0x1d]); // lidt [imm32]
            idt_fixup = Some(code.len());
            code.extend_from_slice(&[0; 4]);
            code.extend_from_slice(&[0x0f, 0x0b]); // ud2
        }
    }
    code.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp hlt
    let idt_off = CODE_OFF + code.len();
    code.extend_from_slice(&[0; 8]); // an IDT descriptor with limit 0
    let msg_off = CODE_OFF + code.len();
    code[msg_fixup..msg_fixup + 4].copy_from_slice(&(BASE + msg_off as u32).to_le_bytes());
    if let Some(f) = idt_fixup {
        code[f..f + 4].copy_from_slice(&(BASE + idt_off as u32).to_le_bytes());
    }
    let mut b = vec![0u8; CODE_OFF];
    b.extend_from_slice(&code);
    b.extend_from_slice(serial);
    b.push(0);
    let total = b.len() as u64;
    let entry = u64::from(BASE) + CODE_OFF as u64;

    // ELF header.
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // little endian
    b[6] = 1; // version
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    b[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
    b[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
                                                     // PT_LOAD: the whole file at 1 MiB, RWX.
    let mut ph = Vec::new();
    for v in [1u32, 7] {
        ph.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u64, BASE.into(), BASE.into(), total, total, 0x1000] {
        ph.extend_from_slice(&v.to_le_bytes());
    }
    // PT_NOTE at 0xb0 (24 bytes: the Xen PVH note).
    for v in [4u32, 4] {
        ph.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        0xb0u64,
        u64::from(BASE) + 0xb0,
        u64::from(BASE) + 0xb0,
        24,
        24,
        4,
    ] {
        ph.extend_from_slice(&v.to_le_bytes());
    }
    b[64..64 + ph.len()].copy_from_slice(&ph);
    let mut note = Vec::new();
    for v in [4u32, 8, 18] {
        note.extend_from_slice(&v.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&entry.to_le_bytes());
    b[0xb0..0xc8].copy_from_slice(&note);
    // Multiboot2 header at 0xc8 (8-byte aligned): magic, arch, length, checksum, end tag.
    let (magic, arch, len) = (0xe852_50d6u32, 0u32, 24u32);
    let sum = 0u32.wrapping_sub(magic.wrapping_add(arch).wrapping_add(len));
    let mut mb = Vec::new();
    for v in [magic, arch, len, sum, 0, 8] {
        mb.extend_from_slice(&v.to_le_bytes());
    }
    b[0xc8..0xe0].copy_from_slice(&mb);
    b
}

/// Write a fake kernel into `dir`.
pub fn write_fake(dir: &Path, name: &str, serial: &str, end: End) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, fake_kernel(serial.as_bytes(), end)).expect("write the fake kernel");
    p
}

/// The protocol lines of a healthy one-CPU boot, without the summary.
pub fn healthy_lines(exit: &str) -> String {
    format!(
        "HPETWD build id=abcd version=0.1.0 protocol=1\r\n\
         HPETWD boot via=pvh cmdline=\"exit={exit}\" exit={exit} exit_reason=option\r\n\
         HPETWD apic mode=xapic reason=cpu-lacks-x2apic\r\n\
         HPETWD cpu index=0 apic_id=0 madt_apic_id=0 x2apic=0 bsp=1 online=1 ticks=10 online_ns=0\r\n\
         HPETWD smp online=1 expected=1 all_online_ns=1000\r\n"
    )
}

/// Parse hpetctl's `--json` output.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}
