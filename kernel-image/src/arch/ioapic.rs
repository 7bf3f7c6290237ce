//! The I/O APIC (Intel 82093AA data sheet, section 3): an index register at offset 0x00 and a
//! data window at 0x10; redirection entry `n` is registers 0x10 + 2n (low) and 0x11 + 2n
//! (high).
//!
//! Every access is an index write followed by a data access, so two CPUs (or an NMI and the
//! code it interrupted) must never interleave on one I/O APIC. The kernel programs I/O APICs
//! only at set-up, on the boot CPU, before the watchdog runs.

use super::mmio::RegisterBlock;

const INDEX: usize = 0x00;
const DATA: usize = 0x10;
const VERSION_REGISTER: u32 = 0x01;

/// Redirection entry fields (data sheet section 3.2.4).
pub mod rte {
    pub const DELIVERY_NMI: u32 = 0b100 << 8;
    pub const MASKED: u32 = 1 << 16;
}

/// One I/O APIC.
pub struct IoApic {
    regs: RegisterBlock,
}

impl IoApic {
    /// The I/O APIC whose registers are at `base` (from the MADT).
    ///
    /// # Safety
    /// `base` must be an I/O APIC's register page inside the uncached part of the identity
    /// map, and no other `IoApic` for the same base may be used at the same time.
    pub unsafe fn new(base: u64) -> Self {
        // SAFETY: the caller's contract: an I/O APIC register page.
        let regs = unsafe { RegisterBlock::new(base, 0x20) };
        Self { regs }
    }

    fn read(&self, register: u32) -> u32 {
        self.regs.write32(INDEX, register);
        self.regs.read32(DATA)
    }

    fn write(&self, register: u32, value: u32) {
        self.regs.write32(INDEX, register);
        self.regs.write32(DATA, value);
    }

    /// Number of redirection entries (version register bits 23:16, plus one).
    pub fn entries(&self) -> u32 {
        ((self.read(VERSION_REGISTER) >> 16) & 0xff) + 1
    }

    /// Programs input `pin` for NMI delivery to the xAPIC ID `destination`, physical mode,
    /// edge-triggered (NMI delivery requires edge), active high, unmasked. The high half
    /// (destination) is written first, while the entry is masked.
    pub fn route_nmi(&self, pin: u32, destination: u8) {
        let low = 0x10 + 2 * pin;
        self.write(low, rte::MASKED);
        self.write(low + 1, u32::from(destination) << 24);
        self.write(low, rte::DELIVERY_NMI);
    }

    /// Masks input `pin`.
    pub fn mask(&self, pin: u32) {
        self.write(0x10 + 2 * pin, rte::MASKED);
    }
}
