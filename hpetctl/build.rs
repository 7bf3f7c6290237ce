//! Builds the freestanding kernel (`kernel-image`, binary `hpetwd`) and hands its path to
//! `hpetctl`, which embeds the ELF with `include_bytes!`. An installed `hpetctl` therefore
//! carries its kernel and needs neither the source tree nor cargo (docs/build.md).
//!
//! The kernel is built by a nested cargo into its own target directory under `OUT_DIR`, with
//! an explicit `--target`, so that the freestanding `RUSTFLAGS` reach the kernel's crates
//! only and never the build scripts or proc-macros. Set `HPETWD_KERNEL_ELF=/path/to/elf` to
//! embed a kernel built elsewhere instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Code generation flags for every crate of the kernel (docs/build.md explains each).
const KERNEL_RUSTFLAGS: &[&str] = &[
    "-Crelocation-model=static",
    "-Cforce-frame-pointers=yes",
    "-Cno-redzone=yes",
];

fn main() {
    println!("cargo:rerun-if-env-changed=HPETWD_KERNEL_ELF");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let elf = match env::var_os("HPETWD_KERNEL_ELF").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            path
        }
        None => build_kernel(&out_dir),
    };
    println!("cargo:rustc-env=HPETWD_KERNEL_ELF_PATH={}", elf.display());
}

fn build_kernel(out_dir: &Path) -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest_dir
        .parent()
        .expect("hpetctl lives in the workspace root");
    for dir in [
        "kernel-image",
        "acpi-probe/src",
        "acpi-probe/Cargo.toml",
        "nmi-watchdog/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let target_dir = out_dir.join("kernel-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--package", "kernel-image", "--bin", "hpetwd"])
        .args(["--profile", "kernel", "--target", HOST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer cargo's settings must not leak into the kernel build: its rustflags (for
    // the host), its jobserver, its wrappers (clippy's driver lints the kernel separately).
    for var in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
        "CARGO_PROFILE_KERNEL_PANIC",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", KERNEL_RUSTFLAGS.join("\x1f"));
    let status = cmd.status().expect("failed to run cargo for the kernel");
    if !status.success() {
        panic!("building the kernel (kernel-image) failed: {status}");
    }
    target_dir.join(HOST_TARGET).join("kernel").join("hpetwd")
}
