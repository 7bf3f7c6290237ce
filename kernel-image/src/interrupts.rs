//! Interrupt dispatch: CPU exceptions become an exception report and the error status; the
//! LAPIC timer advances the CPU's tick count; the stop IPI halts the CPU.

use crate::arch::idt::InterruptFrame;
use crate::arch::{cpu, lapic};
use crate::exit::{finish, Outcome};
use crate::{
    percpu, println_forced, VECTOR_CALIBRATION, VECTOR_ERROR, VECTOR_SPURIOUS, VECTOR_STOP,
    VECTOR_TIMER,
};
use core::sync::atomic::Ordering;

/// Exception names (Intel SDM Vol. 3A table 7-1).
fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide-error",
        1 => "debug",
        2 => "nmi",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound-range",
        6 => "invalid-opcode",
        7 => "device-not-available",
        8 => "double-fault",
        10 => "invalid-tss",
        11 => "segment-not-present",
        12 => "stack-fault",
        13 => "general-protection",
        14 => "page-fault",
        16 => "x87-floating-point",
        17 => "alignment-check",
        18 => "machine-check",
        19 => "simd-floating-point",
        20 => "virtualization",
        21 => "control-protection",
        28 => "hypervisor-injection",
        29 => "vmm-communication",
        30 => "security",
        _ => "reserved",
    }
}

/// Called by the common interrupt entry (idt.rs) with the saved registers.
#[unsafe(no_mangle)]
extern "C" fn interrupt_dispatch(frame: &mut InterruptFrame) {
    let vector = frame.vector;
    match vector {
        2 => {
            if let Some(me) = percpu::current() {
                crate::nmi_scenario_hook(me.index.load(Ordering::Relaxed) as usize);
                me.nmis.fetch_add(1, Ordering::Relaxed);
                crate::hpet_route::count_nmi(me);
                crate::watchdog::on_nmi(me.index.load(Ordering::Relaxed) as usize, frame);
            }
        }
        0..=31 => exception(frame),
        v if v == u64::from(VECTOR_TIMER) => {
            if let Some(me) = percpu::current() {
                me.ticks.fetch_add(1, Ordering::Relaxed);
                crate::watchdog::on_tick(me.index.load(Ordering::Relaxed) as usize);
            }
            lapic::eoi();
        }
        v if v == u64::from(VECTOR_CALIBRATION) => {
            crate::time::calibration_interrupt();
            lapic::eoi();
        }
        v if v == u64::from(VECTOR_STOP) => cpu::halt_forever(),
        // A spurious interrupt takes no EOI (SDM Vol. 3A section 11.9).
        v if v == u64::from(VECTOR_SPURIOUS) => {}
        v if v == u64::from(VECTOR_ERROR) => {
            lapic::write(lapic::reg::ERROR_STATUS, 0);
            lapic::eoi();
        }
        _ => {
            if let Some(me) = percpu::current() {
                me.unexpected_interrupts.fetch_add(1, Ordering::Relaxed);
            }
            lapic::eoi();
        }
    }
}

/// Reports a CPU exception and ends the run with the error status.
fn exception(frame: &InterruptFrame) -> ! {
    let cpu_index = percpu::current().map_or(-1, |me| me.index.load(Ordering::Relaxed) as i64);
    let apic_id = if crate::exit::APIC_READY.load(Ordering::Relaxed) {
        lapic::id() as i64
    } else {
        -1
    };
    let name = exception_name(frame.vector);
    let f = frame;
    println_forced!(
        "HPETWD exception cpu={cpu_index} apic_id={apic_id} vector={} name={name} error_code={:#x} rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} ss={:#x} cr2={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x} r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} r13={:#x} r14={:#x} r15={:#x}",
        f.vector, f.error_code, f.rip, f.cs, f.rflags, f.rsp, f.ss, cpu::read_cr2(),
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13,
        f.r14, f.r15
    );
    let (online, expected) = crate::cpu_counts();
    let mut reason = ReasonBuf::new();
    let _ = core::fmt::write(
        &mut reason,
        format_args!(
            "exception {name} (vector {}) on CPU {cpu_index} at rip {:#x}",
            f.vector, f.rip
        ),
    );
    finish(Outcome::Error, online, expected, reason.as_str())
}

/// A small fixed buffer for composing a reason string without allocation.
pub struct ReasonBuf {
    bytes: [u8; 160],
    len: usize,
}

impl ReasonBuf {
    pub const fn new() -> Self {
        Self {
            bytes: [0; 160],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Write for ReasonBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}
