//! Entry from the boot loader: the PVH ELF note and the multiboot2 header, the 32-bit entry
//! points, the boot page tables and the switch to long mode.
//!
//! Both protocols enter in 32-bit protected mode with paging off (PVH: Xen's
//! `arch-x86/hvm/start_info.h`, `ebx` = start info; multiboot2 specification section 3.3,
//! `eax` = 0x36d76289, `ebx` = information structure). The code builds an identity map of the
//! first 4 GiB with 2 MiB pages (the last 32 MiB below 4 GiB, where the local APIC, IOAPIC,
//! HPET and VT-d registers live, uncached), enables PAE, SSE (CR0.EM=0, CR0.MP=1,
//! CR4.OSFXSR, CR4.OSXMMEXCPT: the precompiled `core` uses SSE), long mode and paging
//! (Intel SDM Vol. 3A section 10.8.5), then calls `kernel_main(protocol, info)`.

/// `kernel_main`'s first argument when the kernel came in through PVH.
pub const BOOT_VIA_PVH: u32 = 1;
/// `kernel_main`'s first argument when the kernel came in through multiboot2.
pub const BOOT_VIA_MULTIBOOT2: u32 = 2;
/// `kernel_main`'s first argument when the multiboot2 entry saw the wrong magic in `eax`.
pub const BOOT_VIA_UNKNOWN: u32 = 0;

/// Size of the boot CPU's stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

core::arch::global_asm!(
    r#"
    /* ---- PVH: XEN_ELFNOTE_PHYS32_ENTRY (18); QEMU reads an 8-byte value for ELF64 ---- */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_entry32
    .popsection

    /* ---- multiboot2 header (Multiboot2 specification section 3.1) ---- */
    .pushsection .multiboot2, "a"
    .balign 8
mb2_header_start:
    .long 0xE85250D6
    .long 0
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header_start))
    /* entry address tag (type 3): the 32-bit entry point */
    .balign 8
    .short 3
    .short 0
    .long 12
    .long mb2_entry32
    /* end tag */
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:
    .popsection

    .pushsection .boot.text, "ax"
    .code32
    .global pvh_entry32
pvh_entry32:
    cli
    cld
    mov edi, {via_pvh}
    mov esi, ebx
    jmp 2f

    .global mb2_entry32
mb2_entry32:
    cli
    cld
    mov esi, ebx
    mov edi, {via_mb2}
    cmp eax, 0x36d76289
    je 2f
    mov edi, {via_unknown}

2:
    mov esp, offset boot_stack_top

    /* Long mode needs CPUID.80000001H:EDX[29]. */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 9f
    mov eax, 0x80000001
    cpuid
    test edx, (1 << 29)
    jz 9f

    /* PML4[0] -> PDPT; PDPT[0..4] -> the four page directories. */
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov [boot_pml4], eax
    mov eax, offset boot_pd
    or eax, 0x3
    mov [boot_pdpt], eax
    add eax, 0x1000
    mov [boot_pdpt + 8], eax
    add eax, 0x1000
    mov [boot_pdpt + 16], eax
    add eax, 0x1000
    mov [boot_pdpt + 24], eax

    /* 2048 entries of 2 MiB: present, writable, page size. */
    xor ecx, ecx
3:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    cmp ecx, 2032            /* 0xFE000000 and above: MMIO, uncached (PCD|PWT) */
    jb 4f
    or eax, 0x18
4:
    mov [boot_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jne 3b

    /* CR4: PAE (5), OSFXSR (9), OSXMMEXCPT (10). */
    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    /* EFER.LME */
    mov ecx, 0xC0000080
    rdmsr
    or eax, (1 << 8)
    wrmsr
    /* CR0: PG (31), PE (0), MP (1); clear EM (2) and TS (3). */
    mov eax, cr0
    and eax, ~((1 << 2) | (1 << 3))
    or eax, (1 << 31) | (1 << 1) | 1
    mov cr0, eax

    lgdt [boot_gdt_pointer]
    /* jmp far 0x08:long_mode_entry (EA ptr16:32) */
    .byte 0xea
    .long long_mode_entry
    .short 0x08

9:  /* No long mode: say so on COM1 and stop. */
    mov esi, offset no_long_mode_message
10:
    lodsb
    test al, al
    jz 11f
    mov dx, 0x3FD
12:
    in al, dx
    test al, 0x20
    jz 12b
    mov al, [esi - 1]
    mov dx, 0x3F8
    out dx, al
    jmp 10b
11:
    hlt
    jmp 11b

    .code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor ax, ax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    /* The upper halves of registers are undefined after the mode switch. */
    mov edi, edi
    mov esi, esi
    xor ebp, ebp
    call kernel_main
13:
    cli
    hlt
    jmp 13b
    .popsection

    .pushsection .rodata
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_end:
    .balign 8
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
no_long_mode_message:
    .asciz "HPETWD error kind=no-long-mode detail=\"this CPU lacks 64-bit long mode\"\r\n"
    .popsection

    .pushsection .bss
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .balign 16
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    .popsection
"#,
    via_pvh = const BOOT_VIA_PVH,
    via_mb2 = const BOOT_VIA_MULTIBOOT2,
    via_unknown = const BOOT_VIA_UNKNOWN,
    stack_size = const BOOT_STACK_SIZE,
);

unsafe extern "C" {
    /// The boot page tables' root (identity map of the first 4 GiB), shared by every CPU.
    static boot_pml4: u8;
}

/// Physical address of the boot PML4, which the application processors load into CR3.
pub fn page_table_root() -> u64 {
    core::ptr::addr_of!(boot_pml4) as u64
}
