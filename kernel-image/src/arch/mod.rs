//! The thin layer that touches the machine: boot entry, CPU instructions, descriptor
//! tables, interrupt entry, local APIC, HPET, serial port. Everything above it is safe code.

pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod hpet;
pub mod idt;
pub mod ioapic;
pub mod lapic;
pub mod mmio;
pub mod pic;
pub mod serial;
pub mod trampoline;
