//! Making the BIOS + UEFI bootable ISO: GRUB (`grub-mkrescue`) loading the kernel through
//! multiboot2, with its console on COM1.
//!
//! All of ISO creation lives in [`make_iso`], so that making it byte-reproducible later
//! (fixed xorriso dates, a fixed FAT serial) changes one function.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::require_tool;

/// Where the kernel sits on the ISO.
pub const ISO_KERNEL_PATH: &str = "/boot/hpetwd.elf";

/// The GRUB configuration on the ISO. The kernel gets no command-line options: under QEMU's
/// TCG it chooses `exit=qemu` by itself (docs/cmdline.md), on hardware it halts.
pub fn grub_cfg() -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout=0\n\
         menuentry \"hpetwd\" {{\n\
         \x20   multiboot2 {ISO_KERNEL_PATH}\n\
         \x20   boot\n\
         }}\n"
    )
}

/// The GRUB modules put on the ISO (besides those grub-mkrescue always embeds to find the
/// ISO itself): what grub.cfg uses, plus the file systems and partition maps needed to find
/// files when the ISO is written to a USB stick.
pub const GRUB_MODULES: &[&str] = &[
    "normal",
    "multiboot2",
    "serial",
    "terminal",
    "boot",
    "iso9660",
    "part_msdos",
    "part_gpt",
];

/// The GRUB platform directories grub-mkrescue needs, with their Debian packages.
pub const GRUB_PLATFORMS: &[(&str, &str)] = &[
    ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
    ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
];

/// The tools grub-mkrescue runs, with their Debian packages.
pub const ISO_TOOLS: &[(&str, &str)] = &[
    ("grub-mkrescue", "grub-common"),
    ("xorriso", "xorriso"),
    ("mformat", "mtools"),
];

/// Check every tool ISO creation needs; the error lists all that are missing.
pub fn check_tools() -> Result<PathBuf> {
    let mut missing = Vec::new();
    let mut mkrescue = None;
    for (tool, package) in ISO_TOOLS {
        match require_tool(tool, package) {
            Ok(p) => {
                if *tool == "grub-mkrescue" {
                    mkrescue = Some(p);
                }
            }
            Err(_) => missing.push(format!("`{tool}` (Debian package {package})")),
        }
    }
    for (dir, package) in GRUB_PLATFORMS {
        if !Path::new(dir).is_dir() {
            missing.push(format!("{dir} (Debian package {package})"));
        }
    }
    match mkrescue {
        Some(p) if missing.is_empty() => Ok(p),
        _ => bail!(
            "making the ISO needs tools that are not installed: {}",
            missing.join(", ")
        ),
    }
}

/// Write a BIOS + UEFI bootable ISO holding `kernel` to `out`. The ISO is assembled next to
/// `out` and renamed into place, so `out` is never left half-written.
pub fn make_iso(kernel: &[u8], out: &Path) -> Result<()> {
    let mkrescue = check_tools()?;
    let staging = tempfile::tempdir().context("cannot create a temporary directory")?;
    let root = staging.path().join("iso");
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("grub"))
        .with_context(|| format!("cannot create {}", boot.display()))?;
    let kernel_path = root.join(ISO_KERNEL_PATH.trim_start_matches('/'));
    std::fs::write(&kernel_path, kernel)
        .with_context(|| format!("cannot write {}", kernel_path.display()))?;
    let cfg_path = boot.join("grub").join("grub.cfg");
    std::fs::write(&cfg_path, grub_cfg())
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".hpetwd-iso-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let output = Command::new(&mkrescue)
        // No fonts, locales or themes (the console is text on COM1), and only the modules
        // the grub.cfg uses (grub-mkrescue adds their dependencies): about 4 MiB, not 20.
        .args(["--fonts=", "--locales=", "--themes="])
        .arg(format!("--install-modules={}", GRUB_MODULES.join(" ")))
        .arg("-o")
        .arg(tmp.path())
        .arg(&root)
        .output()
        .with_context(|| format!("cannot run {}", mkrescue.display()))?;
    if !output.status.success() {
        bail!(
            "grub-mkrescue failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let size = std::fs::metadata(tmp.path()).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        bail!(
            "grub-mkrescue wrote no ISO (is xorriso installed?): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    set_readable(tmp.path())?;
    tmp.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Give a file made by `tempfile` (mode 0600) the usual 0644.
pub fn set_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_the_kernel_on_serial() {
        let cfg = grub_cfg();
        for line in [
            "serial --unit=0 --speed=115200",
            "terminal_input serial console",
            "terminal_output serial console",
            "set timeout=0",
            "    multiboot2 /boot/hpetwd.elf",
            "    boot",
        ] {
            assert!(cfg.lines().any(|l| l == line), "missing {line:?} in\n{cfg}");
        }
        assert_eq!(cfg.matches("menuentry").count(), 1);
        assert!(!cfg.contains("exit="), "the ISO passes no exit option");
    }
}
