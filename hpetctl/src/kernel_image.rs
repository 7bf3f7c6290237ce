//! The kernel ELF built with this `hpetctl` (see build.rs): an installed `hpetctl` carries
//! its own kernel, so `hpetctl build` needs neither the source tree nor cargo.

/// The bytes of the freestanding kernel ELF (`hpetwd.elf`: PVH note + multiboot2 header).
pub fn embedded_elf() -> &'static [u8] {
    include_bytes!(env!("HPETWD_KERNEL_ELF_PATH"))
}
