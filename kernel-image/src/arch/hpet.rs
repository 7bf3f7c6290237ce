//! The HPET (IA-PC HPET specification 1.0a, section 2.3): the main counter, the kernel's
//! reference clock, and the timers that deliver the watchdog's NMIs. Registers are accessed
//! 32 bits at a time (QEMU's HPET accepts nothing else; the specification allows it).

use super::mmio::RegisterBlock;
use acpi_probe::hpet::{regs, GeneralCapabilities, TimerCapabilities};

/// The register block's layout (section 2.3.1, table 3): the offsets `acpi_probe::hpet::regs`
/// names, checked here against the specification's 1 KiB block at compile time. The kernel
/// never reads or writes this struct as a whole; it is the map, the accessors below do the
/// 32-bit reads and writes.
#[repr(C)]
#[allow(dead_code)]
struct RegisterMap {
    capabilities: u64,
    _reserved0: u64,
    configuration: u64,
    _reserved1: u64,
    interrupt_status: u64,
    _reserved2: [u64; 25],
    main_counter: u64,
    _reserved3: u64,
    timers: [TimerMap; MAX_TIMERS as usize],
}

/// Timers reachable in the 1 KiB register block: 0x100 + 24 × 0x20 = 0x400. A capability
/// register announcing up to 32 timers names eight that have no registers.
pub const MAX_TIMERS: u8 = 24;

/// One timer's registers (sections 2.3.8 - 2.3.10).
#[repr(C)]
#[allow(dead_code)]
struct TimerMap {
    config_and_capabilities: u64,
    comparator: u64,
    fsb_route: u64,
    _reserved: u64,
}

const _: () = {
    assert!(core::mem::size_of::<RegisterMap>() == BLOCK_SIZE);
    assert!(core::mem::offset_of!(RegisterMap, configuration) == regs::GENERAL_CONFIGURATION);
    assert!(core::mem::offset_of!(RegisterMap, main_counter) == regs::MAIN_COUNTER);
    assert!(core::mem::offset_of!(RegisterMap, timers) == regs::timer_config(0));
    assert!(core::mem::offset_of!(RegisterMap, timers) + 8 == regs::timer_comparator(0));
    assert!(core::mem::offset_of!(RegisterMap, timers) + 16 == regs::timer_fsb_route(0));
};

/// Where a timer's interrupt goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// FSB (MSI-style) delivery: the HPET writes `data` to `address` (section 2.3.10).
    Fsb { address: u32, data: u32 },
    /// An I/O APIC input (Tn_INT_ROUTE_CNF), edge-triggered.
    IoApic { pin: u8 },
}

/// Counter width a timer runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Bits32,
    Bits64,
}

/// Size of the HPET register block (section 2.3: 1 KiB).
const BLOCK_SIZE: usize = 0x400;
/// General Configuration: ENABLE_CNF (section 2.3.5).
const ENABLE_CNF: u32 = 1 << 0;

/// Points running FSB timer `n` of the HPET at `base` at a new destination from NMI context:
/// one 32-bit write of the FSB route's address half (section 2.3.10), which nothing can tear;
/// no register is read.
pub fn write_fsb_address(base: u64, n: u8, address: u32) {
    // SAFETY: `base` is the HPET register block the watchdog armed (stored before arming).
    let regs = unsafe { RegisterBlock::new(base, BLOCK_SIZE) };
    regs.write32(regs::timer_fsb_route(usize::from(n)) + 4, address);
}

/// Stops timer `n` of the HPET at `base` (a CPU other than the one that armed it may stop it).
pub fn stop_timer(base: u64, n: u8) {
    // SAFETY: `base` is the HPET register block the watchdog armed.
    let regs = unsafe { RegisterBlock::new(base, BLOCK_SIZE) };
    regs.write32(regs::timer_config(usize::from(n)), 0);
}

/// Reads the main counter of the HPET at `base` (outside NMI context: the watchdog's CPUs map
/// the HPET schedule onto their own clocks with one reading each). A 64-bit counter is read
/// high, low, high, as `Hpet::counter` does.
pub fn read_counter(base: u64, counter_64bit: bool) -> u64 {
    // SAFETY: `base` is the HPET register block the watchdog armed (stored before arming).
    let regs = unsafe { RegisterBlock::new(base, BLOCK_SIZE) };
    if !counter_64bit {
        return u64::from(regs.read32(regs::MAIN_COUNTER));
    }
    loop {
        let high = regs.read32(regs::MAIN_COUNTER + 4);
        let low = regs.read32(regs::MAIN_COUNTER);
        if regs.read32(regs::MAIN_COUNTER + 4) == high {
            return u64::from(low) | (u64::from(high) << 32);
        }
    }
}

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

    /// Timer `n`'s configuration and capability register (section 2.3.8).
    pub fn timer(&self, n: u8) -> TimerCapabilities {
        let at = regs::timer_config(usize::from(n));
        let low = self.regs.read32(at);
        let high = self.regs.read32(at + 4);
        TimerCapabilities(u64::from(low) | (u64::from(high) << 32))
    }

    fn write_config(&self, n: u8, config: u32) {
        self.regs
            .write32(regs::timer_config(usize::from(n)), config);
    }

    fn write_comparator(&self, n: u8, value: u64, width: Width) {
        let at = regs::timer_comparator(usize::from(n));
        self.regs.write32(at, value as u32);
        if width == Width::Bits64 {
            self.regs.write32(at + 4, (value >> 32) as u32);
        }
    }

    /// Runs timer `n` periodically: first expiry when the main counter equals `first`, then
    /// every `period` ticks, each delivered by `route`. The hardware adds the period to the
    /// comparator itself, so a late NMI can never leave it behind the counter, and nothing
    /// needs to be read or written per expiry.
    ///
    /// The comparator is written high half first, each half with Tn_VAL_SET_CNF (section
    /// 2.3.9.2.2: it clears after each write); then, without it, the period. QEMU needs this
    /// order: after a low write with VAL_SET its periodic comparator takes further writes as
    /// the period only, and a high half written last would stay at its reset value.
    pub fn start_periodic(&self, n: u8, first: u64, period: u64, width: Width, route: Route) {
        let mut config = (regs::TN_TYPE_CNF) as u32;
        if width == Width::Bits32 {
            config |= regs::TN_32MODE_CNF as u32;
        }
        match route {
            Route::Fsb { address, data } => {
                let at = regs::timer_fsb_route(usize::from(n));
                self.regs.write32(at, data);
                self.regs.write32(at + 4, address);
                config |= regs::TN_FSB_EN_CNF as u32;
            }
            Route::IoApic { pin } => {
                config |= (u32::from(pin) << regs::TN_INT_ROUTE_CNF_SHIFT)
                    & regs::TN_INT_ROUTE_CNF_MASK as u32;
            }
        }
        let at = regs::timer_comparator(usize::from(n));
        self.write_config(n, 0);
        if width == Width::Bits64 {
            self.write_config(n, config | regs::TN_VAL_SET_CNF as u32);
            self.regs.write32(at + 4, (first >> 32) as u32);
        }
        self.write_config(n, config | regs::TN_VAL_SET_CNF as u32);
        self.regs.write32(at, first as u32);
        self.write_comparator(n, period, width);
        self.write_config(n, config | regs::TN_INT_ENB_CNF as u32);
    }

    /// The register block's physical address.
    pub fn base(&self) -> u64 {
        self.regs.base()
    }

    /// Stops timer `n`'s interrupts.
    pub fn stop(&self, n: u8) {
        self.write_config(n, 0);
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
