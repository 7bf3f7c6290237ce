//! Per-CPU global descriptor table and task-state segment (Intel SDM Vol. 3A sections 3.4.5,
//! 8.2.3 and 8.7). The TSS carries the interrupt stack table: every IDT vector runs on an
//! IST stack (idt.rs), so the interrupted code's red zone is never overwritten.

use core::arch::asm;
use core::mem::size_of;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Kernel 64-bit code segment selector.
pub const KERNEL_CODE: u16 = 0x08;
/// Kernel data segment selector.
pub const KERNEL_DATA: u16 = 0x10;
/// The CPU's TSS selector.
pub const TSS_SELECTOR: u16 = 0x18;

/// IST slots (1-based, as the IDT gate stores them).
pub mod ist {
    /// CPU exceptions other than NMI, #DF and #MC.
    pub const EXCEPTION: u8 = 1;
    /// NMI: its own stack, since an NMI can arrive inside any other handler.
    pub const NMI: u8 = 2;
    /// Double fault.
    pub const DOUBLE_FAULT: u8 = 3;
    /// Machine check.
    pub const MACHINE_CHECK: u8 = 4;
    /// External and IPI interrupts (interrupt gates keep IF clear, so they never nest).
    pub const INTERRUPT: u8 = 5;
}

/// A CPU's GDT and TSS. Each CPU builds and loads its own, once, before anything else
/// reads them.
#[repr(C, align(16))]
pub struct CpuTables {
    gdt: [u64; 5],
    tss: TaskStateSegment,
}

impl CpuTables {
    /// Empty tables, for static initialisation.
    pub const fn new() -> Self {
        Self {
            gdt: [0; 5],
            tss: TaskStateSegment::new(),
        }
    }
}

/// The top addresses of a CPU's IST stacks, indexed by `ist::* - 1`.
pub type IstTops = [u64; 5];

/// Fills `tables` for one CPU and loads them: GDT, code and data segments, task register.
///
/// # Safety
/// `tables` must be this CPU's own, never used by another CPU, and must live forever; the
/// IST tops must be the ends of stacks reserved for this CPU.
pub unsafe fn load(tables: &'static mut CpuTables, ist_tops: IstTops) {
    // The TSS is packed: copy the table out, fill it, write it back.
    let mut stack_table = tables.tss.interrupt_stack_table;
    for (slot, top) in stack_table.iter_mut().zip(ist_tops) {
        *slot = VirtAddr::new(top);
    }
    tables.tss.interrupt_stack_table = stack_table;
    tables.tss.iomap_base = size_of::<TaskStateSegment>() as u16;
    let tss_base = core::ptr::addr_of!(tables.tss) as u64;
    let tss_limit = (size_of::<TaskStateSegment>() - 1) as u64;
    // 64-bit TSS descriptor (SDM Vol. 3A figure 8-4): type 9 (available), present.
    let low = (tss_limit & 0xffff)
        | ((tss_base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((tss_limit >> 16) & 0xf) << 48)
        | (((tss_base >> 24) & 0xff) << 56);
    tables.gdt = [
        0,
        0x00af_9a00_0000_ffff, // 64-bit code, DPL 0
        0x00cf_9200_0000_ffff, // data, DPL 0
        low,
        tss_base >> 32,
    ];
    let pointer = DescriptorTablePointer {
        limit: (size_of::<[u64; 5]>() - 1) as u16,
        base: VirtAddr::new(tables.gdt.as_ptr() as u64),
    };
    // SAFETY: the GDT above lives forever (caller's contract) and holds the code, data and
    // TSS descriptors used below; reloading CS through a far return and the data segments
    // with the matching selectors keeps the running code valid.
    unsafe {
        x86_64::instructions::tables::lgdt(&pointer);
        asm!(
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            code = const KERNEL_CODE as u64,
            tmp = out(reg) _,
            data = in(reg) u64::from(KERNEL_DATA),
            tss = in(reg) u64::from(TSS_SELECTOR),
        );
    }
}
