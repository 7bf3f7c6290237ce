//! Link the kernel as a freestanding, statically placed ELF (see docs/build.md).
//!
//! The arguments go to the kernel binary only (`rustc-link-arg-bins`), so build scripts
//! and proc-macros of the same build keep the host's normal linking.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=sha1",
        "-Wl,-z,max-page-size=0x1000",
        "-Wl,--gc-sections",
        "-Wl,-n",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/linker.ld");
}
