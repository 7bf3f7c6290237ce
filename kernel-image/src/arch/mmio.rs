//! Device registers in memory space, read and written 32 bits at a time through volatile
//! accesses (never struct copies, never SSE: some hypervisors cannot emulate SSE MMIO).

use core::ptr::{read_volatile, write_volatile};

/// A block of 32-bit device registers at a fixed, identity-mapped, uncached physical
/// address.
#[derive(Debug, Clone, Copy)]
pub struct RegisterBlock {
    base: usize,
    size: usize,
}

impl RegisterBlock {
    /// A register block of `size` bytes at physical address `base`.
    ///
    /// # Safety
    /// `[base, base + size)` must be device registers inside the kernel's identity map (the
    /// first 4 GiB) that nothing else in the kernel treats as memory.
    pub const unsafe fn new(base: u64, size: usize) -> Self {
        Self {
            base: base as usize,
            size,
        }
    }

    /// The block's physical base address.
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    fn address(&self, offset: usize) -> *mut u32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= self.size,
            "register offset {offset:#x} outside its block"
        );
        (self.base + offset) as *mut u32
    }

    /// Reads the 32-bit register at `offset`.
    #[inline]
    pub fn read32(&self, offset: usize) -> u32 {
        let address = self.address(offset);
        // SAFETY: `new`'s contract makes every aligned offset inside the block a mapped
        // device register; the access is one aligned 32-bit volatile load.
        unsafe { read_volatile(address) }
    }

    /// Writes the 32-bit register at `offset`.
    #[inline]
    pub fn write32(&self, offset: usize, value: u32) {
        let address = self.address(offset);
        // SAFETY: as for `read32`; one aligned 32-bit volatile store.
        unsafe { write_volatile(address, value) }
    }
}
