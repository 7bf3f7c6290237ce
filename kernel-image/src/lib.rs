//! The parts of the hpetwd kernel that are pure logic: boot-information parsing (PVH start
//! info, multiboot2), the boot command line, the local-APIC mode decision, and the serial
//! protocol's value quoting. They live in this library so they are unit-tested on the host;
//! the freestanding binary (`src/main.rs`) links them.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod apic_mode;
pub mod bootinfo;
pub mod cmdline;
pub mod proto;
