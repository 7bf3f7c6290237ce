//! The HPET: its ACPI description table (IA-PC HPET specification 1.0a, section 3.2.4) and
//! the layout and bits of its registers (section 2.3).

use crate::error::ParseError;
use crate::read::Fields;
use crate::sdt::Table;

const TABLE: &str = "HPET";
/// Size of the HPET description table (section 3.2.4, table 3).
const TABLE_LEN: usize = 56;

/// A Generic Address Structure (ACPI 6.5 section 5.2.3.2, table 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericAddress {
    /// Address space ID (offset 0): 0 system memory, 1 system I/O, ...
    pub address_space_id: u8,
    /// Register bit width (offset 1).
    pub bit_width: u8,
    /// Register bit offset (offset 2).
    pub bit_offset: u8,
    /// Access size (offset 3): 0 undefined, 1 byte, 2 word, 3 dword, 4 qword.
    pub access_size: u8,
    /// Address in that space (offset 4).
    pub address: u64,
}

impl GenericAddress {
    /// Size of the structure.
    pub const LEN: usize = 12;
    /// Address space ID of system memory.
    pub const SYSTEM_MEMORY: u8 = 0;

    fn read(fields: &Fields<'_>, offset: usize) -> Result<Self, ParseError> {
        fields.slice(
            offset,
            Self::LEN,
            "base address (Generic Address Structure)",
        )?;
        let at = |delta: usize| offset.saturating_add(delta);
        Ok(Self {
            address_space_id: fields.u8(at(0), "base address space ID")?,
            bit_width: fields.u8(at(1), "base address bit width")?,
            bit_offset: fields.u8(at(2), "base address bit offset")?,
            access_size: fields.u8(at(3), "base address access size")?,
            address: fields.u64(at(4), "base address")?,
        })
    }
}

/// The HPET description table (IA-PC HPET specification 1.0a, section 3.2.4, table 3). A
/// machine may have several (one per timer block, told apart by `hpet_number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpetTable {
    /// Event Timer Block ID bits 7:0, hardware revision ID.
    pub hardware_rev_id: u8,
    /// Number of timers: Event Timer Block ID bits 12:8 plus one. The field holds the index
    /// of the last comparator, like NUM_TIM_CAP in the capabilities register (section
    /// 2.3.4); the `acpi` crate changed its reading of it between versions.
    pub comparator_count: u8,
    /// Event Timer Block ID bit 13, COUNT_SIZE_CAP: the main counter is 64 bits wide.
    pub counter_64bit: bool,
    /// Event Timer Block ID bit 15: LegacyReplacement IRQ routing capable.
    pub legacy_replacement: bool,
    /// Event Timer Block ID bits 31:16, PCI vendor ID of the first timer block. Real
    /// firmware also reports 0x0000 and 0xFFFF here.
    pub pci_vendor_id: u16,
    /// Base address of the timer block's registers (offset 40).
    pub base_address: GenericAddress,
    /// HPET sequence number (offset 52): 0 for the first timer block.
    pub hpet_number: u8,
    /// Main counter minimum clock ticks in periodic mode without lost interrupts (offset 53).
    pub minimum_tick: u16,
    /// Page protection (offset 55, bits 3:0): 0 no guarantee, 1 4 KiB protected, 2 64 KiB.
    pub page_protection: u8,
    /// OEM attribute (offset 55, bits 7:4).
    pub oem_attribute: u8,
}

impl HpetTable {
    /// Parses a table with signature "HPET" and at least 56 bytes.
    pub fn parse(table: &[u8]) -> Result<Self, ParseError> {
        let table = Table::expect(table, b"HPET", TABLE, "\"HPET\"", TABLE_LEN)?;
        let fields = table.fields(TABLE);
        let block_id = fields.u32(36, "event timer block ID")?;
        let protection = fields.u8(55, "page protection and OEM attribute")?;
        let [rev_id, timers, vendor_low, vendor_high] = block_id.to_le_bytes();
        Ok(Self {
            hardware_rev_id: rev_id,
            comparator_count: (timers & 0x1f).saturating_add(1),
            counter_64bit: timers & (1 << 5) != 0,
            legacy_replacement: timers & (1 << 7) != 0,
            pci_vendor_id: u16::from_le_bytes([vendor_low, vendor_high]),
            base_address: GenericAddress::read(&fields, 40)?,
            hpet_number: fields.u8(52, "HPET number")?,
            minimum_tick: fields.u16(53, "main counter minimum clock tick")?,
            page_protection: protection & 0xf,
            oem_attribute: protection >> 4,
        })
    }
}

/// Register offsets in the timer block and their bits (IA-PC HPET specification 1.0a,
/// section 2.3, table 2).
pub mod regs {
    /// General Capabilities and ID register (section 2.3.4).
    pub const GENERAL_CAPABILITIES: usize = 0x000;
    /// General Configuration register (section 2.3.5).
    pub const GENERAL_CONFIGURATION: usize = 0x010;
    /// General Interrupt Status register (section 2.3.6).
    pub const GENERAL_INTERRUPT_STATUS: usize = 0x020;
    /// Main Counter Value register (section 2.3.7).
    pub const MAIN_COUNTER: usize = 0x0F0;

    /// Timer N Configuration and Capability register (section 2.3.8). Only N in 0..=31
    /// exists; larger N saturate and address nothing.
    pub const fn timer_config(n: usize) -> usize {
        timer_register(n, 0x100)
    }

    /// Timer N Comparator Value register (section 2.3.9).
    pub const fn timer_comparator(n: usize) -> usize {
        timer_register(n, 0x108)
    }

    /// Timer N FSB Interrupt Route register (section 2.3.10): bits 63:32 the address and
    /// bits 31:0 the value of the FSB interrupt message.
    pub const fn timer_fsb_route(n: usize) -> usize {
        timer_register(n, 0x110)
    }

    const fn timer_register(n: usize, first: usize) -> usize {
        n.saturating_mul(0x20).saturating_add(first)
    }

    /// General Configuration bit 0: the main counter runs and timer interrupts are allowed.
    pub const ENABLE_CNF: u64 = 1 << 0;
    /// General Configuration bit 1: LegacyReplacement route (timer 0 to IRQ0/IRQ2, timer 1
    /// to IRQ8).
    pub const LEG_RT_CNF: u64 = 1 << 1;

    /// Timer N bit 1: level-triggered (1) or edge-triggered (0) interrupt.
    pub const TN_INT_TYPE_CNF: u64 = 1 << 1;
    /// Timer N bit 2: interrupt enabled.
    pub const TN_INT_ENB_CNF: u64 = 1 << 2;
    /// Timer N bit 3: periodic mode (if Tn_PER_INT_CAP).
    pub const TN_TYPE_CNF: u64 = 1 << 3;
    /// Timer N bit 4 (read-only): periodic mode supported.
    pub const TN_PER_INT_CAP: u64 = 1 << 4;
    /// Timer N bit 5 (read-only): the comparator is 64 bits wide.
    pub const TN_SIZE_CAP: u64 = 1 << 5;
    /// Timer N bit 6: the next comparator write in periodic mode sets the accumulator.
    pub const TN_VAL_SET_CNF: u64 = 1 << 6;
    /// Timer N bit 8: force a 64-bit timer into 32-bit mode.
    pub const TN_32MODE_CNF: u64 = 1 << 8;
    /// Timer N bits 13:9: the I/O APIC input the interrupt is routed to.
    pub const TN_INT_ROUTE_CNF_SHIFT: u32 = 9;
    /// Mask of Tn_INT_ROUTE_CNF in place.
    pub const TN_INT_ROUTE_CNF_MASK: u64 = 0x1f << TN_INT_ROUTE_CNF_SHIFT;
    /// Timer N bit 14: deliver by FSB (MSI) message instead of the I/O APIC.
    pub const TN_FSB_EN_CNF: u64 = 1 << 14;
    /// Timer N bit 15 (read-only): FSB interrupt delivery supported.
    pub const TN_FSB_INT_DEL_CAP: u64 = 1 << 15;
    /// Timer N bits 63:32 (read-only): bit i set when I/O APIC input i is a valid route.
    pub const TN_INT_ROUTE_CAP_SHIFT: u32 = 32;
}

/// The General Capabilities and ID register (section 2.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneralCapabilities(pub u64);

impl GeneralCapabilities {
    /// Largest valid COUNTER_CLK_PERIOD: 10^8 fs = 100 ns (section 2.3.4).
    pub const MAX_PERIOD_FS: u32 = 100_000_000;

    /// REV_ID, bits 7:0 (never 0 on a real HPET).
    pub fn revision_id(&self) -> u8 {
        self.0.to_le_bytes()[0]
    }

    /// Number of timers: NUM_TIM_CAP (bits 12:8, the index of the last timer) plus one.
    pub fn num_timers(&self) -> u8 {
        (self.0.to_le_bytes()[1] & 0x1f).saturating_add(1)
    }

    /// COUNT_SIZE_CAP, bit 13: the main counter is 64 bits wide.
    pub fn counter_64bit(&self) -> bool {
        self.0 & (1 << 13) != 0
    }

    /// LEG_RT_CAP, bit 15: the LegacyReplacement route is supported.
    pub fn legacy_route_capable(&self) -> bool {
        self.0 & (1 << 15) != 0
    }

    /// VENDOR_ID, bits 31:16.
    pub fn vendor_id(&self) -> u16 {
        let bytes = self.0.to_le_bytes();
        u16::from_le_bytes([bytes[2], bytes[3]])
    }

    /// COUNTER_CLK_PERIOD, bits 63:32: the main counter's tick in femtoseconds.
    pub fn period_fs(&self) -> u32 {
        let bytes = self.0.to_le_bytes();
        u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
    }

    /// The main counter's frequency, rounded to the nearest hertz; `None` when the period
    /// is 0.
    pub fn frequency_hz(&self) -> Option<u64> {
        let period = u64::from(self.period_fs());
        const FS_PER_SECOND: u64 = 1_000_000_000_000_000;
        FS_PER_SECOND.checked_add(period / 2)?.checked_div(period)
    }

    /// Checks what section 2.3.4 requires: a period of 1..=10^8 fs and a nonzero REV_ID.
    pub fn validate(&self) -> Result<(), ParseError> {
        let period = self.period_fs();
        if period == 0 || period > Self::MAX_PERIOD_FS {
            return Err(ParseError::InvalidField {
                table: "HPET General Capabilities and ID register",
                field: "COUNTER_CLK_PERIOD",
                offset: 4,
                value: u64::from(period),
                reason: "must be nonzero and at most 100000000 fs (section 2.3.4)",
            });
        }
        if self.revision_id() == 0 {
            return Err(ParseError::InvalidField {
                table: "HPET General Capabilities and ID register",
                field: "REV_ID",
                offset: 0,
                value: 0,
                reason: "must not be 0 (section 2.3.4)",
            });
        }
        Ok(())
    }
}

/// The Timer N Configuration and Capability register (section 2.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerCapabilities(pub u64);

impl TimerCapabilities {
    fn bit(&self, mask: u64) -> bool {
        self.0 & mask != 0
    }

    /// Tn_INT_ROUTE_CAP, bits 63:32: bit i set when I/O APIC input i can be routed to.
    pub fn int_route_cap(&self) -> u32 {
        let bytes = self.0.to_le_bytes();
        u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
    }

    /// Whether I/O APIC input `irq` is in Tn_INT_ROUTE_CAP.
    pub fn can_route_to(&self, irq: u8) -> bool {
        self.int_route_cap()
            .checked_shr(u32::from(irq))
            .is_some_and(|bits| bits & 1 != 0)
    }

    /// Tn_FSB_INT_DEL_CAP, bit 15: FSB (MSI) delivery supported.
    pub fn fsb_delivery_capable(&self) -> bool {
        self.bit(regs::TN_FSB_INT_DEL_CAP)
    }

    /// Tn_PER_INT_CAP, bit 4: periodic mode supported.
    pub fn periodic_capable(&self) -> bool {
        self.bit(regs::TN_PER_INT_CAP)
    }

    /// Tn_SIZE_CAP, bit 5: the comparator is 64 bits wide.
    pub fn size_64bit(&self) -> bool {
        self.bit(regs::TN_SIZE_CAP)
    }

    /// Tn_INT_TYPE_CNF, bit 1: level-triggered.
    pub fn level_triggered(&self) -> bool {
        self.bit(regs::TN_INT_TYPE_CNF)
    }

    /// Tn_INT_ENB_CNF, bit 2: interrupt enabled.
    pub fn interrupt_enabled(&self) -> bool {
        self.bit(regs::TN_INT_ENB_CNF)
    }

    /// Tn_TYPE_CNF, bit 3: periodic mode selected.
    pub fn periodic(&self) -> bool {
        self.bit(regs::TN_TYPE_CNF)
    }

    /// Tn_VAL_SET_CNF, bit 6.
    pub fn value_set(&self) -> bool {
        self.bit(regs::TN_VAL_SET_CNF)
    }

    /// Tn_32MODE_CNF, bit 8: forced to 32-bit mode.
    pub fn mode_32bit(&self) -> bool {
        self.bit(regs::TN_32MODE_CNF)
    }

    /// Tn_INT_ROUTE_CNF, bits 13:9: the I/O APIC input in use.
    pub fn int_route(&self) -> u8 {
        let field = (self.0 & regs::TN_INT_ROUTE_CNF_MASK) >> regs::TN_INT_ROUTE_CNF_SHIFT;
        u8::try_from(field).unwrap_or(0)
    }

    /// Tn_FSB_EN_CNF, bit 14: FSB delivery selected.
    pub fn fsb_enabled(&self) -> bool {
        self.bit(regs::TN_FSB_EN_CNF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::tests::{fix_checksum, set_length, table};
    use std::vec::Vec;

    fn hpet(block_id: u32, address: u64, number: u8, tick: u16, protection: u8) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&block_id.to_le_bytes());
        body.extend_from_slice(&[0, 64, 0, 0]);
        body.extend_from_slice(&address.to_le_bytes());
        body.push(number);
        body.extend_from_slice(&tick.to_le_bytes());
        body.push(protection);
        table(b"HPET", 1, &body)
    }

    #[test]
    fn intel_style_table() {
        // Intel PCH: vendor 8086, legacy capable, 64-bit counter, last comparator index 7.
        let bytes = hpet(0x8086_a701, 0xfed0_0000, 0, 0x80, 0x21);
        assert_eq!(
            HpetTable::parse(&bytes).unwrap(),
            HpetTable {
                hardware_rev_id: 1,
                comparator_count: 8,
                counter_64bit: true,
                legacy_replacement: true,
                pci_vendor_id: 0x8086,
                base_address: GenericAddress {
                    address_space_id: 0,
                    bit_width: 64,
                    bit_offset: 0,
                    access_size: 0,
                    address: 0xfed0_0000,
                },
                hpet_number: 0,
                minimum_tick: 0x80,
                page_protection: 1,
                oem_attribute: 2,
            }
        );
    }

    #[test]
    fn odd_vendors_and_32bit_counter() {
        let table = HpetTable::parse(&hpet(0x0000_8300, 0xfed0_0000, 2, 0, 0)).unwrap();
        assert_eq!(table.pci_vendor_id, 0);
        assert_eq!(table.hardware_rev_id, 0);
        assert_eq!(table.comparator_count, 4);
        assert!(!table.counter_64bit);
        assert!(table.legacy_replacement);
        assert_eq!(table.hpet_number, 2);
        let table = HpetTable::parse(&hpet(0xffff_ffff, 0xfed0_0000, 0, 0, 0)).unwrap();
        assert_eq!(table.pci_vendor_id, 0xffff);
        assert_eq!(table.comparator_count, 32);
        assert!(table.counter_64bit);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = hpet(0x8086_a701, 0xfed0_0000, 0, 0x80, 0);
        for len in 0..bytes.len() {
            assert!(HpetTable::parse(&bytes[..len]).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn short_length_field() {
        let mut bytes = hpet(0x8086_a701, 0xfed0_0000, 0, 0x80, 0);
        set_length(&mut bytes, 52);
        let error = HpetTable::parse(&bytes).unwrap_err();
        assert_eq!(
            std::format!("{error}"),
            "\"HPET\" table: length field 52 is shorter than the 56 bytes this table needs"
        );
    }

    #[test]
    fn wrong_signature() {
        let mut bytes = hpet(0x8086_a701, 0xfed0_0000, 0, 0x80, 0);
        bytes[0] = b'X';
        fix_checksum(&mut bytes);
        assert!(matches!(
            HpetTable::parse(&bytes),
            Err(ParseError::WrongSignature { table: "HPET", .. })
        ));
    }

    #[test]
    fn register_offsets() {
        assert_eq!(regs::timer_config(0), 0x100);
        assert_eq!(regs::timer_comparator(0), 0x108);
        assert_eq!(regs::timer_fsb_route(0), 0x110);
        assert_eq!(regs::timer_config(2), 0x140);
        assert_eq!(regs::timer_comparator(31), 0x4e8);
        assert_eq!(regs::timer_fsb_route(31), 0x4f0);
        assert_eq!(regs::timer_config(usize::MAX), usize::MAX);
        assert_eq!(regs::TN_INT_ROUTE_CNF_MASK, 0x3e00);
    }

    #[test]
    fn qemu_capabilities() {
        // QEMU q35: 100 MHz, 3 timers, 64-bit, legacy capable, vendor 8086, rev 1.
        let caps = GeneralCapabilities(0x0098_9680_8086_a201);
        assert_eq!(caps.revision_id(), 1);
        assert_eq!(caps.num_timers(), 3);
        assert!(caps.counter_64bit());
        assert!(caps.legacy_route_capable());
        assert_eq!(caps.vendor_id(), 0x8086);
        assert_eq!(caps.period_fs(), 10_000_000);
        assert_eq!(caps.frequency_hz(), Some(100_000_000));
        assert_eq!(caps.validate(), Ok(()));
    }

    #[test]
    fn capabilities_validation() {
        // 14.31818 MHz (period 69841279 fs) rounds to the nearest hertz.
        let caps = GeneralCapabilities((69_841_279u64 << 32) | 0x0401);
        assert_eq!(caps.frequency_hz(), Some(14_318_180));
        assert_eq!(caps.num_timers(), 5);
        assert!(!caps.counter_64bit());
        assert_eq!(caps.validate(), Ok(()));
        let zero = GeneralCapabilities(0x8086_a201);
        assert_eq!(zero.frequency_hz(), None);
        assert!(matches!(
            zero.validate(),
            Err(ParseError::InvalidField {
                field: "COUNTER_CLK_PERIOD",
                ..
            })
        ));
        let slow = GeneralCapabilities((100_000_001u64 << 32) | 0x8086_a201);
        assert!(slow.validate().is_err());
        let limit = GeneralCapabilities((100_000_000u64 << 32) | 0x8086_a201);
        assert_eq!(limit.validate(), Ok(()));
        assert_eq!(limit.frequency_hz(), Some(10_000_000));
        let no_rev = GeneralCapabilities((10_000_000u64 << 32) | 0x8086_a200);
        assert!(matches!(
            no_rev.validate(),
            Err(ParseError::InvalidField {
                field: "REV_ID",
                ..
            })
        ));
        assert_eq!(GeneralCapabilities(u64::MAX).frequency_hz(), Some(232_831));
        assert_eq!(GeneralCapabilities(u64::MAX).num_timers(), 32);
    }

    #[test]
    fn timer_capabilities() {
        // QEMU with hpet.msi=on: routes 2, 8, 16..=23, FSB capable, periodic, 64-bit.
        let timer = TimerCapabilities(0x00ff_0104_0000_8030 | (5 << 9) | regs::TN_FSB_EN_CNF);
        assert_eq!(timer.int_route_cap(), 0x00ff_0104);
        assert!(timer.can_route_to(2) && timer.can_route_to(8) && timer.can_route_to(23));
        assert!(!timer.can_route_to(0) && !timer.can_route_to(24) && !timer.can_route_to(255));
        assert!(timer.fsb_delivery_capable());
        assert!(timer.periodic_capable());
        assert!(timer.size_64bit());
        assert!(timer.fsb_enabled());
        assert_eq!(timer.int_route(), 5);
        assert!(!timer.level_triggered() && !timer.interrupt_enabled() && !timer.periodic());
        assert!(!timer.value_set() && !timer.mode_32bit());
        let config = TimerCapabilities(
            regs::TN_INT_TYPE_CNF
                | regs::TN_INT_ENB_CNF
                | regs::TN_TYPE_CNF
                | regs::TN_VAL_SET_CNF
                | regs::TN_32MODE_CNF,
        );
        assert!(config.level_triggered() && config.interrupt_enabled() && config.periodic());
        assert!(config.value_set() && config.mode_32bit());
        assert!(!config.fsb_delivery_capable() && !config.periodic_capable());
        assert!(!config.size_64bit() && !config.fsb_enabled());
        assert_eq!(config.int_route(), 0);
    }
}
