//! The interrupt descriptor table (Intel SDM Vol. 3A section 7.14.1) and the entry stubs.
//!
//! All 256 vectors have a stub. Each stub pushes a zero error code where the CPU pushes none,
//! then the vector number, and jumps to the common entry, which saves all 15 general-purpose
//! registers and the whole x87/SSE state (FXSAVE64: the precompiled `core` uses SSE), calls
//! `interrupt_dispatch` with a pointer to the saved frame, restores everything and returns
//! with IRETQ. Every gate names an IST stack (gdt.rs): exceptions, NMI, #DF, #MC and
//! interrupts each have their own.

use super::gdt::{ist, KERNEL_CODE};
use core::cell::UnsafeCell;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Bytes between two entry stubs.
const STUB_SIZE: u64 = 16;

core::arch::global_asm!(
    r#"
    .pushsection .text.interrupt_entry, "ax"
    .balign 16
    .global interrupt_stubs
interrupt_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    /* Vectors whose exceptions push an error code (SDM Vol. 3A table 7-1) get none here. */
    .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    push 0
    .endif
    .byte 0x68
    .long vector
    jmp interrupt_common
    .set vector, vector + 1
    .endr

interrupt_common:
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
    cld
    mov rbx, rsp
    and rsp, -16
    sub rsp, 512
    fxsave64 [rsp]
    mov rdi, rbx
    call interrupt_dispatch
    fxrstor64 [rsp]
    mov rsp, rbx
    pop rax
    pop rbx
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop rbp
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    add rsp, 16
    iretq
    .popsection
"#
);

unsafe extern "C" {
    static interrupt_stubs: u8;
}

/// The registers saved on entry, in stack order (lowest address first).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InterruptFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// One 16-byte interrupt gate descriptor (SDM Vol. 3A figure 7-8).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Self = Self {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present, DPL-0, 64-bit interrupt gate (type 0xE: IF cleared on entry).
    fn interrupt(handler: u64, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist,
            type_attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

struct Idt(UnsafeCell<[Gate; 256]>);

// SAFETY: the table is written once by the boot CPU in `init`, before any other CPU starts
// or any CPU loads it; afterwards it is only read, by the hardware.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

/// The IST slot a vector's gate uses.
fn ist_for(vector: u8) -> u8 {
    match vector {
        2 => ist::NMI,
        8 => ist::DOUBLE_FAULT,
        18 => ist::MACHINE_CHECK,
        0..=31 => ist::EXCEPTION,
        _ => ist::INTERRUPT,
    }
}

/// Fills the IDT. Called once by the boot CPU before any CPU loads it.
pub fn init() {
    let stubs = core::ptr::addr_of!(interrupt_stubs) as u64;
    // SAFETY: `init` runs once on the boot CPU before any CPU has loaded the IDT (see the
    // `Sync` impl), so this is the only reference to the table.
    let table = unsafe { &mut *IDT.0.get() };
    for (vector, gate) in table.iter_mut().enumerate() {
        *gate = Gate::interrupt(stubs + vector as u64 * STUB_SIZE, ist_for(vector as u8));
    }
}

/// Loads the IDT on the calling CPU.
pub fn load() {
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(IDT.0.get() as u64),
    };
    // SAFETY: the IDT is a static filled by `init` before any CPU calls `load`, and every
    // gate points at an entry stub with an IST slot that every CPU's TSS fills.
    unsafe { x86_64::instructions::tables::lidt(&pointer) }
}

/// Loads an empty IDT, so that the next exception triple-faults (used to reset).
pub fn load_empty() {
    let pointer = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::new(0),
    };
    // SAFETY: an empty IDT makes any interrupt a triple fault, which is the intent.
    unsafe { x86_64::instructions::tables::lidt(&pointer) }
}
