//! Ending the run: the summary line, then QEMU's isa-debug-exit, a halt, or a reset
//! (docs/protocol.md, "Ending the run").

use crate::arch::{cpu, idt, lapic};
use crate::{println_forced, VECTOR_STOP};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use kernel_image::proto::Quoted;

/// The run's outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Error,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Error => "error",
        }
    }

    /// The value written to isa-debug-exit; QEMU exits with `(value << 1) | 1`.
    fn debug_exit_value(self) -> u8 {
        match self {
            Self::Pass => 0x10,
            Self::Fail => 0x11,
            Self::Error => 0x12,
        }
    }
}

/// How the run ends.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitMode {
    Qemu = 0,
    Halt = 1,
    Reboot = 2,
}

impl ExitMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Halt => "halt",
            Self::Reboot => "reboot",
        }
    }
}

/// QEMU's isa-debug-exit port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xf4;

static MODE: AtomicU8 = AtomicU8::new(ExitMode::Halt as u8);
static FINISHING: AtomicBool = AtomicBool::new(false);
/// Set once the boot CPU's local APIC is enabled, so a stop IPI can be sent.
pub static APIC_READY: AtomicBool = AtomicBool::new(false);

/// Sets how the run ends.
pub fn set_mode(mode: ExitMode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

fn mode() -> ExitMode {
    match MODE.load(Ordering::Relaxed) {
        0 => ExitMode::Qemu,
        2 => ExitMode::Reboot,
        _ => ExitMode::Halt,
    }
}

/// Prints the summary line and ends the run. Only the first CPU to get here does so; any
/// other halts.
pub fn finish(outcome: Outcome, cpus_online: usize, cpus_expected: usize, reason: &str) -> ! {
    if FINISHING.swap(true, Ordering::AcqRel) {
        cpu::halt_forever();
    }
    if reason.is_empty() {
        println_forced!(
            "HPETWD summary result={} cpus_online={cpus_online} cpus_expected={cpus_expected}",
            outcome.name()
        );
    } else {
        println_forced!(
            "HPETWD summary result={} cpus_online={cpus_online} cpus_expected={cpus_expected} reason={}",
            outcome.name(),
            Quoted(reason)
        );
    }
    if APIC_READY.load(Ordering::Acquire) {
        lapic::send_ipi(
            0,
            lapic::icr::SHORTHAND_ALL_BUT_SELF | u32::from(VECTOR_STOP),
        );
    }
    match mode() {
        ExitMode::Qemu => {
            // SAFETY: exit mode `qemu` is chosen only when told on the command line or when
            // CPUID says the machine is QEMU's TCG, whose q35 board hpetctl gives an
            // isa-debug-exit device at this port; the write ends the emulator.
            unsafe { cpu::outb(DEBUG_EXIT_PORT, outcome.debug_exit_value()) };
            cpu::halt_forever()
        }
        ExitMode::Halt => cpu::halt_forever(),
        ExitMode::Reboot => {
            // SAFETY: pulsing the keyboard controller's reset line (command 0xFE to port
            // 0x64) resets the machine, which is what was asked for.
            unsafe { cpu::outb(0x64, 0xfe) };
            idt::load_empty();
            // SAFETY: with an empty IDT, INT3 triple-faults, which resets the machine.
            unsafe { core::arch::asm!("int3") };
            cpu::halt_forever()
        }
    }
}
