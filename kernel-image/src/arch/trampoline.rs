//! The application-processor start-up trampoline (Intel SDM Vol. 3A section 9.4.4: an AP
//! woken by INIT-SIPI-SIPI starts in real mode at CS = vector << 8, IP = 0).
//!
//! The code is copied to a free page below 1 MiB and patched with that page's address. It
//! enables protected mode, then (like the boot CPU, boot.rs) PAE, SSE, long mode and paging
//! with the boot page tables, and far-jumps into `ap_entry64` in the kernel image, which
//! takes the stack the boot CPU published in `AP_STACK_TOP` and calls `ap_main`.

use core::sync::atomic::AtomicU64;

/// Fixed layout of the trampoline's data, at the start of the page (the real-mode code
/// addresses it with literal offsets from CS).
mod offset {
    pub const GDT: usize = 8;
    pub const GDT_POINTER_BASE: usize = 42;
    pub const CR3: usize = 48;
    pub const ALIVE: usize = 52;
    pub const JUMP32: usize = 56;
    pub const CODE16: usize = 64;
}

core::arch::global_asm!(
    r#"
    .pushsection .rodata.trampoline, "a"
    .balign 16
    .global trampoline_start
trampoline_start:
    .code16
    .byte 0xeb, 62                  /* offset 0: jmp short +62, to offset 64 */
    .skip 6
    /* offset 8: GDT: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18) */
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
    /* offset 40: GDT pointer: limit, base (patched) */
    .short 31
    .long 0
    .skip 2
    /* offset 48: CR3 (patched) */
    .long 0
    /* offset 52: set to 1 by the AP as its first act */
    .byte 0
    .skip 3
    /* offset 56: far pointer to the 32-bit code (offset patched, selector 0x08) */
    .long 0
    .short 0x08
    .skip 2
    /* offset 64 */
    .global trampoline_code16
trampoline_code16:
    cli
    cld
    mov ax, cs
    mov ds, ax
    xor ebx, ebx
    mov bx, ax
    shl ebx, 4
    mov byte ptr [52], 1
    lgdt [40]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    /* jmp far dword [56] (66 FF /5, disp16): into 32-bit protected mode */
    .byte 0x66, 0xff, 0x2e, 56, 0

    .code32
    .global trampoline_code32
trampoline_code32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)
    mov cr4, eax
    mov eax, [ebx + 48]
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, (1 << 8)
    wrmsr
    mov eax, cr0
    and eax, ~((1 << 2) | (1 << 3))
    or eax, (1 << 31) | (1 << 1) | 1
    mov cr0, eax
    /* jmp far 0x18:ap_entry64 (EA ptr16:32): into 64-bit mode in the kernel image */
    .byte 0xea
    .long ap_entry64
    .short 0x18
    .global trampoline_end
trampoline_end:
    .code64
    .popsection

    .pushsection .text.ap_entry, "ax"
    .global ap_entry64
ap_entry64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, qword ptr [rip + AP_STACK_TOP]
    xor ebp, ebp
    call ap_main
2:
    cli
    hlt
    jmp 2b
    .popsection
"#
);

/// The stack top the next application processor switches to in `ap_entry64`. The boot CPU
/// starts one AP at a time and publishes its stack here before the SIPI.
#[unsafe(no_mangle)]
pub static AP_STACK_TOP: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    static trampoline_start: u8;
    static trampoline_code16: u8;
    static trampoline_code32: u8;
    static trampoline_end: u8;
}

/// The trampoline's address in the kernel image, its length, and the offset of its 32-bit
/// code.
fn layout() -> (usize, usize, usize) {
    let start = core::ptr::addr_of!(trampoline_start) as usize;
    let code16 = core::ptr::addr_of!(trampoline_code16) as usize;
    let code32 = core::ptr::addr_of!(trampoline_code32) as usize;
    let end = core::ptr::addr_of!(trampoline_end) as usize;
    assert_eq!(
        code16 - start,
        offset::CODE16,
        "trampoline data layout changed"
    );
    (start, end - start, code32 - start)
}

/// A trampoline installed in a low page.
pub struct Trampoline {
    page: u64,
    alive_offset: usize,
}

impl Trampoline {
    /// Copies the trampoline to `page` and patches it for that address and `cr3`.
    ///
    /// # Safety
    /// `page` must be a 4 KiB-aligned page of free RAM below 1 MiB inside the identity map,
    /// used by nothing else for as long as application processors are being started.
    pub unsafe fn install(page: u64, cr3: u64) -> Self {
        let (start, len, code32) = layout();
        assert!(len <= 4096 && page.is_multiple_of(4096) && page < 0x10_0000 && cr3 < (1 << 32));
        // SAFETY: the source is the trampoline in the kernel image (`len` bytes) and the
        // destination a free low page (caller's contract); they cannot overlap, since the
        // kernel is loaded at 2 MiB.
        unsafe { core::ptr::copy_nonoverlapping(start as *const u8, page as *mut u8, len) };
        let patch = |offset: usize, value: u32| {
            // SAFETY: `offset` is one of the trampoline's 4-byte patch fields inside the page
            // just written; the field may be unaligned, hence write_unaligned.
            unsafe { core::ptr::write_unaligned((page as usize + offset) as *mut u32, value) }
        };
        patch(offset::JUMP32, (page as usize + code32) as u32);
        patch(
            offset::GDT_POINTER_BASE,
            (page as usize + offset::GDT) as u32,
        );
        patch(offset::CR3, cr3 as u32);
        Self {
            page,
            alive_offset: offset::ALIVE,
        }
    }

    /// The SIPI vector: the page number.
    pub fn sipi_vector(&self) -> u8 {
        (self.page >> 12) as u8
    }

    /// Clears the flag an AP sets as its first act in real mode.
    pub fn clear_alive(&self) {
        // SAFETY: the flag is a byte inside the installed page (see `install`).
        unsafe { core::ptr::write_volatile((self.page as usize + self.alive_offset) as *mut u8, 0) }
    }

    /// Whether an AP has started executing the trampoline since `clear_alive`.
    pub fn alive(&self) -> bool {
        // SAFETY: as for `clear_alive`; a volatile read sees the AP's store.
        unsafe {
            core::ptr::read_volatile((self.page as usize + self.alive_offset) as *const u8) != 0
        }
    }
}
