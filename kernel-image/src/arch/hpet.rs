//! The HPET's general registers (IA-PC HPET specification 1.0a, section 2.3), accessed 32
//! bits at a time. The kernel foundation uses the main counter as its reference clock; the
//! watchdog adds the timers.

use super::mmio::RegisterBlock;
use acpi_probe::hpet::{regs, GeneralCapabilities};

/// Size of the HPET register block (section 2.3: 1 KiB).
const BLOCK_SIZE: usize = 0x400;
/// General Configuration: ENABLE_CNF (section 2.3.5).
const ENABLE_CNF: u32 = 1 << 0;

/// An HPET event timer block.
pub struct Hpet {
    regs: RegisterBlock,
    capabilities: GeneralCapabilities,
}

impl Hpet {
    /// The HPET at `base`, as the ACPI HPET table gives it.
    ///
    /// # Safety
    /// `base` must be the physical address of an HPET register block inside the uncached
    /// part of the identity map.
    pub unsafe fn new(base: u64) -> Result<Self, &'static str> {
        if !base.is_multiple_of(8) || !(0xfe00_0000..0x1_0000_0000).contains(&base) {
            return Err("HPET base address outside the uncached MMIO window 0xfe000000..4GiB");
        }
        // SAFETY: the caller guarantees an HPET register block at `base`.
        let regs = unsafe { RegisterBlock::new(base, BLOCK_SIZE) };
        let low = regs.read32(regs::GENERAL_CAPABILITIES);
        let high = regs.read32(regs::GENERAL_CAPABILITIES + 4);
        let capabilities = GeneralCapabilities(u64::from(low) | (u64::from(high) << 32));
        if capabilities.validate().is_err() {
            return Err("HPET capability register is invalid (period zero or above 100 ns)");
        }
        Ok(Self { regs, capabilities })
    }

    /// The General Capabilities and ID register.
    pub fn capabilities(&self) -> GeneralCapabilities {
        self.capabilities
    }

    /// Starts the main counter (leaves the legacy route as it is).
    pub fn enable_counter(&self) {
        let config = self.regs.read32(regs::GENERAL_CONFIGURATION);
        if config & ENABLE_CNF == 0 {
            self.regs
                .write32(regs::GENERAL_CONFIGURATION, config | ENABLE_CNF);
        }
    }

    /// Reads the main counter. A 64-bit counter is read as high, low, high and re-read
    /// when the high half moved in between (section 2.4.7 allows split reads).
    pub fn counter(&self) -> u64 {
        if !self.capabilities.counter_64bit() {
            return u64::from(self.regs.read32(regs::MAIN_COUNTER));
        }
        loop {
            let high = self.regs.read32(regs::MAIN_COUNTER + 4);
            let low = self.regs.read32(regs::MAIN_COUNTER);
            if self.regs.read32(regs::MAIN_COUNTER + 4) == high {
                return u64::from(low) | (u64::from(high) << 32);
            }
        }
    }

    /// Counter ticks between two readings, honouring a 32-bit counter's wrap.
    pub fn ticks_between(&self, earlier: u64, later: u64) -> u64 {
        if self.capabilities.counter_64bit() {
            later.wrapping_sub(earlier)
        } else {
            u64::from((later as u32).wrapping_sub(earlier as u32))
        }
    }
}
