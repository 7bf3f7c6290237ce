//! The I/O Virtualization Reporting Structure, signature "IVRS" (AMD I/O Virtualization
//! Technology (IOMMU) Specification, publication 48882, rev 3.x, section 5.2 "IVRS").
//!
//! hpetwd reads it for one fact above all: the device ID (requester ID) the AMD IOMMU sees
//! for the HPET's MSIs. That ID indexes the IOMMU's device table, whose entry for the HPET
//! carries NMIPass (and the interrupt remapping table pointer). The HPET is not a PCI
//! function, so only the IVHD "special device" entry (type 48h, variety 2) names its ID:
//! see [`Ivrs::special_devices`] and [`Ivrs::hpet`].
//!
//! Layout: a 36-byte ACPI header, IVinfo (offset 36), 8 reserved bytes, then blocks from
//! offset 48: IVHD (types 10h, 11h, 40h; section 5.2.2) and IVMD (types 20h to 22h; section
//! 5.2.3), each starting with type (1 byte), flags (1), length (2).

use crate::error::{LengthProblem, ParseError};
use crate::read::Fields;
use crate::sdt::{Table, HEADER_LEN};

const TABLE: &str = "IVRS";
/// Offset of the first IVHD/IVMD block (section 5.2.1, "IVRS header").
pub const BLOCKS_OFFSET: usize = HEADER_LEN + 12;
/// Type, flags and length: the header every block starts with.
const BLOCK_HEADER_LEN: usize = 4;
/// Length of an IVHD type 10h header (section 5.2.2.1); device entries follow it.
pub const IVHD_10H_LEN: usize = 24;
/// Length of an IVHD type 11h or 40h header (section 5.2.2.2); device entries follow it.
pub const IVHD_11H_LEN: usize = 40;
/// Length of an IVMD block (section 5.2.3).
pub const IVMD_LEN: usize = 32;
/// Fixed part of a variable-length (type F0h) device entry, before its UID.
const ACPI_HID_FIXED_LEN: usize = 22;

/// IVinfo, the IVRS's 32-bit "I/O virtualization information" field at offset 36 (section
/// 5.2.1, table "IVRS header", field IVinfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvInfo {
    /// The field as read.
    pub raw: u32,
    /// Bit 0, EFRSup: the IVHD blocks of type 11h/40h carry an image of the IOMMU's
    /// Extended Feature Register.
    pub efr_sup: bool,
    /// Bit 1, DMA remap support: the platform opts in to pre-boot DMA protection (the AMD
    /// counterpart of DMAR's DMA_CTRL_PLATFORM_OPT_IN_FLAG; later spec revisions).
    pub dma_remap: bool,
    /// Bits 7:5, GVAsize: the guest virtual address size, encoded (010b = 48 bits).
    pub gva_size: u8,
    /// Bits 14:8, PAsize: the physical address size in bits.
    pub pa_size: u8,
    /// Bits 21:15, VAsize: the virtual address size in bits.
    pub va_size: u8,
    /// Bit 22, HtAtsResv: the HyperTransport ATS address range (FD_0000_0000h to
    /// FD_FFFF_FFFFh) is reserved and must not be used for translation.
    pub ht_ats_reserved: bool,
}

impl IvInfo {
    /// Splits the raw field into its bits.
    pub fn from_raw(raw: u32) -> Self {
        // Each mask keeps the value within 7 bits, so the casts cannot lose anything.
        Self {
            raw,
            efr_sup: raw & 1 != 0,
            dma_remap: raw & 2 != 0,
            gva_size: ((raw >> 5) & 0x7) as u8,
            pa_size: ((raw >> 8) & 0x7f) as u8,
            va_size: ((raw >> 15) & 0x7f) as u8,
            ht_ats_reserved: raw & (1 << 22) != 0,
        }
    }
}

/// The IVRS table (section 5.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ivrs<'a> {
    /// IVinfo (offset 36).
    pub info: IvInfo,
    table: Table<'a>,
}

impl<'a> Ivrs<'a> {
    /// Parses the fixed part (signature "IVRS", length ≥ 48 and ≤ the bytes given); the
    /// blocks are checked as [`Ivrs::blocks`] walks them.
    pub fn parse(table: &'a [u8]) -> Result<Self, ParseError> {
        let table = Table::expect(table, b"IVRS", TABLE, "\"IVRS\"", BLOCKS_OFFSET)?;
        let fields = table.fields(TABLE);
        Ok(Self {
            info: IvInfo::from_raw(fields.u32(36, "IVinfo")?),
            table,
        })
    }

    /// The underlying table.
    pub fn table(&self) -> &Table<'a> {
        &self.table
    }

    /// The IVHD and IVMD blocks in table order. A malformed block yields one error and
    /// ends the walk; device entries are checked when [`Ivhd::entries`] is iterated.
    pub fn blocks(&self) -> Blocks<'a> {
        Blocks {
            bytes: self.table.bytes().get(BLOCKS_OFFSET..).unwrap_or_default(),
            next: 0,
            failed: false,
        }
    }

    /// The IVHD type an OS that knows types 10h, 11h and 40h uses, chosen the way Linux
    /// does (`get_highest_supported_ivhd_type`): firmware describes each IOMMU once per
    /// IVHD type it supports, and the OS keeps only the blocks of one type. Walking the
    /// blocks until the first malformed one or the first block of a type above 40h, this is
    /// the type of the last IVHD whose IOMMU device ID equals the first IVHD's. `None`
    /// without IVHD blocks.
    pub fn preferred_ivhd_kind(&self) -> Option<u8> {
        let mut first_device = None;
        let mut kind = None;
        for block in self.blocks() {
            let Ok(block) = block else { break };
            let (block_kind, device) = match block {
                IvrsBlock::Ivhd(ivhd) => (ivhd.kind, ivhd.iommu_device_id),
                IvrsBlock::Ivmd(Ivmd { kind, .. }) | IvrsBlock::Other { kind, .. } => {
                    if kind > 0x40 {
                        break;
                    }
                    continue;
                }
            };
            if *first_device.get_or_insert(device) == device {
                kind = Some(block_kind);
            }
        }
        kind
    }

    /// Every special-device entry (type 48h: I/O APICs and HPETs) of every IVHD block, in
    /// table order, with the IOMMU that block describes. Firmware usually repeats them in
    /// each IVHD type (10h, 11h, 40h) for the same IOMMU; [`SpecialDevice::ivhd_kind`]
    /// tells them apart, and [`Ivrs::preferred_ivhd_kind`] says which copy an OS uses. The
    /// first malformed block or device entry yields an error and ends the walk.
    pub fn special_devices(&self) -> SpecialDevices<'a> {
        SpecialDevices {
            blocks: self.blocks(),
            current: None,
            failed: false,
        }
    }

    /// The special-device entry of HPET number `hpet_number` (the HPET table's "HPET
    /// number", section 5.2.2.3: the entry's handle), from the IVHD blocks of the
    /// [preferred type](Ivrs::preferred_ivhd_kind). `None` if there is none; an error if
    /// the walk meets a malformed block or entry first.
    pub fn hpet(&self, hpet_number: u8) -> Option<Result<SpecialDevice, ParseError>> {
        let kind = self.preferred_ivhd_kind()?;
        self.special_devices().find(|device| match device {
            Ok(device) => {
                device.ivhd_kind == kind
                    && device.variety == SpecialVariety::Hpet
                    && device.handle == hpet_number
            }
            Err(_) => true,
        })
    }
}

/// One block of the IVRS (section 5.2, "IVHD" and "IVMD").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvrsBlock<'a> {
    /// Types 10h, 11h, 40h: an I/O Virtualization Hardware Definition (one IOMMU).
    Ivhd(Ivhd<'a>),
    /// Types 20h, 21h, 22h: an I/O Virtualization Memory Definition.
    Ivmd(Ivmd),
    /// Any other type, skipped by its length.
    Other {
        kind: u8,
        flags: u8,
        length: u16,
        /// Offset of the block in the table.
        offset: usize,
    },
}

impl IvrsBlock<'_> {
    /// The block's type byte.
    pub fn kind(&self) -> u8 {
        match *self {
            Self::Ivhd(Ivhd { kind, .. })
            | Self::Ivmd(Ivmd { kind, .. })
            | Self::Other { kind, .. } => kind,
        }
    }

    /// The block's length field (≥ what its type needs, checked).
    pub fn length(&self) -> u16 {
        match *self {
            Self::Ivhd(Ivhd { length, .. })
            | Self::Ivmd(Ivmd { length, .. })
            | Self::Other { length, .. } => length,
        }
    }
}

/// An I/O Virtualization Hardware Definition block: one IOMMU and the devices it covers
/// (section 5.2.2.1 for type 10h, 5.2.2.2 for types 11h and 40h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ivhd<'a> {
    /// 10h, 11h or 40h. Type 40h adds variable-length (F0h) device entries to 11h.
    pub kind: u8,
    /// Offset 1: IVHD flags. For 10h, bit 0 HtTunEn, 1 PassPW, 2 ResPassPW, 3 Isoc,
    /// 4 IotlbSup, 5 Coherent, 6 PreFSup, 7 PPRSup; types 11h/40h keep bits 0 to 5 and
    /// report the rest in the EFR image.
    pub flags: u8,
    /// Offset 2: length of the block, header and device entries.
    pub length: u16,
    /// Offset 4: the IOMMU's own PCI device ID (bus << 8 | device << 3 | function).
    pub iommu_device_id: u16,
    /// Offset 6: offset of the IOMMU's capability block in its PCI configuration space.
    pub capability_offset: u16,
    /// Offset 8: base address of the IOMMU's MMIO registers.
    pub base_address: u64,
    /// Offset 16: PCI segment group.
    pub pci_segment: u16,
    /// Offset 18: IOMMU info: bits 4:0 MSINum, bits 12:8 UnitID.
    pub info: u16,
    /// Offset 20: for type 10h, "IOMMU Feature Reporting" (HATS, GATS, PASmax, ...); for
    /// types 11h and 40h, "IOMMU Attributes" (PNCounters, PNBanks, MSINumPPR, ...).
    pub feature_reporting: u32,
    /// Offset 24, types 11h and 40h only: the Extended Feature Register image (valid when
    /// IVinfo EFRSup is set).
    pub efr: Option<u64>,
    /// Offset 32, types 11h and 40h only: the Extended Feature 2 Register image (reserved,
    /// zero, before rev 3.07).
    pub efr2: Option<u64>,
    /// Offset of the block in the table.
    pub offset: usize,
    /// The device entries (after the header, up to `length`).
    entries: &'a [u8],
    /// Offset of `entries` in the table.
    entries_offset: usize,
}

impl<'a> Ivhd<'a> {
    /// The device entries in order (section 5.2.2.3). A malformed entry yields one error and
    /// ends the walk.
    pub fn entries(&self) -> DeviceEntries<'a> {
        DeviceEntries {
            bytes: self.entries,
            base: self.entries_offset,
            next: 0,
            failed: false,
        }
    }

    /// Bits 4:0 of the IOMMU info field: the MSI vector number the IOMMU's event log
    /// interrupt uses.
    pub fn msi_number(&self) -> u8 {
        (self.info & 0x1f) as u8
    }

    /// Bits 12:8 of the IOMMU info field: the HyperTransport unit ID.
    pub fn unit_id(&self) -> u8 {
        ((self.info >> 8) & 0x1f) as u8
    }
}

/// An I/O Virtualization Memory Definition block (section 5.2.3): memory that the named
/// devices must (or may) reach untranslated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ivmd {
    /// 20h: every peripheral; 21h: the peripheral `device_id`; 22h: the peripherals
    /// `device_id` to `auxiliary_data`.
    pub kind: u8,
    /// Offset 1: bit 0 Unity (identity mapped), 1 IR, 2 IW, 3 ExclusionRange.
    pub flags: u8,
    /// Offset 2 (32 or more).
    pub length: u16,
    /// Offset 4: device ID (type 21h) or first device ID (type 22h); reserved for 20h.
    pub device_id: u16,
    /// Offset 6: the last device ID for type 22h; reserved otherwise.
    pub auxiliary_data: u16,
    /// Offset 16: start of the memory block.
    pub start_address: u64,
    /// Offset 24: length of the memory block in bytes.
    pub memory_length: u64,
    /// Offset of the block in the table.
    pub offset: usize,
}

/// Iterator over the IVRS blocks ([`Ivrs::blocks`]).
#[derive(Debug, Clone)]
pub struct Blocks<'a> {
    /// The table's bytes from offset 48.
    bytes: &'a [u8],
    /// Next block's offset in `bytes`.
    next: usize,
    failed: bool,
}

impl<'a> Blocks<'a> {
    fn block(&self) -> Result<IvrsBlock<'a>, ParseError> {
        let rest = self.bytes.get(self.next..).unwrap_or_default();
        let offset = BLOCKS_OFFSET.saturating_add(self.next);
        let header = Fields {
            table: TABLE,
            bytes: rest,
            base: offset,
        };
        let kind = header.u8(0, "block type")?;
        let flags = header.u8(1, "block flags")?;
        let length = header.u16(2, "block length")?;
        let minimum = match kind {
            0x10 => IVHD_10H_LEN,
            0x11 | 0x40 => IVHD_11H_LEN,
            0x20..=0x22 => IVMD_LEN,
            _ => BLOCK_HEADER_LEN,
        };
        let len = usize::from(length);
        let problem = if len < BLOCK_HEADER_LEN {
            Some(LengthProblem::ShorterThanHeader {
                header: BLOCK_HEADER_LEN,
            })
        } else if len > rest.len() {
            Some(LengthProblem::PastEnd {
                remaining: rest.len(),
            })
        } else if len < minimum {
            Some(LengthProblem::ShorterThanType {
                kind: u16::from(kind),
                minimum,
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ParseError::EntryLength {
                table: TABLE,
                entry: "block",
                offset,
                length: len,
                problem,
            });
        }
        let f = Fields {
            table: TABLE,
            bytes: rest.get(..len).unwrap_or_default(),
            base: offset,
        };
        Ok(match kind {
            0x10 | 0x11 | 0x40 => {
                let wide = kind != 0x10;
                let header_len = if wide { IVHD_11H_LEN } else { IVHD_10H_LEN };
                IvrsBlock::Ivhd(Ivhd {
                    kind,
                    flags,
                    length,
                    iommu_device_id: f.u16(4, "IVHD IOMMU device ID")?,
                    capability_offset: f.u16(6, "IVHD capability offset")?,
                    base_address: f.u64(8, "IVHD IOMMU base address")?,
                    pci_segment: f.u16(16, "IVHD PCI segment group")?,
                    info: f.u16(18, "IVHD IOMMU info")?,
                    feature_reporting: f.u32(20, "IVHD feature reporting")?,
                    efr: if wide {
                        Some(f.u64(24, "IVHD EFR register image")?)
                    } else {
                        None
                    },
                    efr2: if wide {
                        Some(f.u64(32, "IVHD EFR2 register image")?)
                    } else {
                        None
                    },
                    offset,
                    entries: f.rest(header_len, "IVHD device entries")?,
                    entries_offset: offset.saturating_add(header_len),
                })
            }
            0x20..=0x22 => IvrsBlock::Ivmd(Ivmd {
                kind,
                flags,
                length,
                device_id: f.u16(4, "IVMD device ID")?,
                auxiliary_data: f.u16(6, "IVMD auxiliary data")?,
                start_address: f.u64(16, "IVMD start address")?,
                memory_length: f.u64(24, "IVMD memory block length")?,
                offset,
            }),
            _ => IvrsBlock::Other {
                kind,
                flags,
                length,
                offset,
            },
        })
    }
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Result<IvrsBlock<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.bytes.len() {
            return None;
        }
        let block = self.block();
        match &block {
            // A length of at least the 4-byte header (checked) always moves the walk on.
            Ok(block) => self.next = self.next.saturating_add(usize::from(block.length())),
            Err(_) => self.failed = true,
        }
        Some(block)
    }
}

/// What a special-device entry (type 48h) names (section 5.2.2.3, "Variety").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialVariety {
    /// 1: an I/O APIC; the handle is its I/O APIC ID (MADT).
    IoApic,
    /// 2: an HPET; the handle is its HPET number (HPET table).
    Hpet,
    /// Any other (reserved) value.
    Other(u8),
}

impl From<u8> for SpecialVariety {
    fn from(value: u8) -> Self {
        match value {
            1 => Self::IoApic,
            2 => Self::Hpet,
            other => Self::Other(other),
        }
    }
}

impl From<SpecialVariety> for u8 {
    fn from(variety: SpecialVariety) -> u8 {
        match variety {
            SpecialVariety::IoApic => 1,
            SpecialVariety::Hpet => 2,
            SpecialVariety::Other(other) => other,
        }
    }
}

/// One IVHD device entry (section 5.2.2.3, "IVHD device entries"). `dte` is the entry's
/// DTE setting byte: bit 0 INITPass, 1 EIntPass, 2 NMIPass, 5:4 SysMgt, 6 Lint0Pass,
/// 7 Lint1Pass, which firmware asks the OS to set in the device table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEntry<'a> {
    /// 00h: padding (4 bytes).
    Pad,
    /// 01h, "All": every device ID the IOMMU covers.
    All { dte: u8 },
    /// 02h, "Select": one device ID.
    Select { device_id: u16, dte: u8 },
    /// 03h, "Start of range": device IDs from `device_id` to the next 04h entry.
    RangeStart { device_id: u16, dte: u8 },
    /// 04h, "End of range": the last device ID of the range.
    RangeEnd { device_id: u16 },
    /// 42h, "Alias select": `device_id`'s requests carry `source_id`.
    AliasSelect {
        device_id: u16,
        dte: u8,
        source_id: u16,
    },
    /// 43h, "Alias start of range": the range's requests carry `source_id`.
    AliasRangeStart {
        device_id: u16,
        dte: u8,
        source_id: u16,
    },
    /// 46h, "Extended select", with the extended DTE setting (bit 31 AtsDisabled).
    ExtendedSelect {
        device_id: u16,
        dte: u8,
        extended: u32,
    },
    /// 47h, "Extended start of range".
    ExtendedRangeStart {
        device_id: u16,
        dte: u8,
        extended: u32,
    },
    /// 48h, "Special device": an I/O APIC or HPET, which is no PCI function, and the
    /// device ID its interrupt requests carry (bytes 1-2, "Device ID", are reserved).
    Special {
        dte: u8,
        /// Byte 4: I/O APIC ID or HPET number.
        handle: u8,
        /// Bytes 5-6: the device ID (bus << 8 | device << 3 | function) the IOMMU sees,
        /// iasl's "Source Used Device ID". It indexes the device table.
        device_id: u16,
        /// Byte 7.
        variety: SpecialVariety,
    },
    /// F0h, "ACPI HID device" (variable length, IVHD type 40h): a device named by its ACPI
    /// _HID, _CID and _UID.
    AcpiHid {
        device_id: u16,
        dte: u8,
        /// Bytes 4-11: the _HID (ASCII or an EISA ID, not NUL-terminated).
        hid: [u8; 8],
        /// Bytes 12-19: the _CID (zero when none).
        cid: [u8; 8],
        /// Byte 20: 0 no UID, 1 integer, 2 string.
        uid_format: u8,
        /// Bytes 22..: the UID (its length is byte 21).
        uid: &'a [u8],
    },
    /// Any other 4-byte (00h-3Fh) or 8-byte (40h-7Fh) type, skipped by its size.
    Other {
        kind: u8,
        device_id: u16,
        dte: u8,
        /// 4 or 8.
        length: u8,
    },
}

/// Iterator over an IVHD's device entries ([`Ivhd::entries`]).
#[derive(Debug, Clone)]
pub struct DeviceEntries<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes` in the table.
    base: usize,
    /// Next entry's offset in `bytes`.
    next: usize,
    failed: bool,
}

impl<'a> DeviceEntries<'a> {
    /// The next entry and its length.
    fn entry(&self) -> Result<(DeviceEntry<'a>, usize), ParseError> {
        let rest = self.bytes.get(self.next..).unwrap_or_default();
        let offset = self.base.saturating_add(self.next);
        let header = Fields {
            table: TABLE,
            bytes: rest,
            base: offset,
        };
        let kind = header.u8(0, "IVHD device entry type")?;
        // Section 5.2.2.3: bits 7:6 of the type give the size, 00b 4 bytes, 01b 8 bytes;
        // F0h is variable-length, 22 bytes and the UID. Other types from 80h on have no
        // size this parser knows (Linux cannot skip them either).
        let len = match kind {
            0x00..=0x3f => 4,
            0x40..=0x7f => 8,
            0xf0 => ACPI_HID_FIXED_LEN.saturating_add(usize::from(
                header.u8(21, "IVHD ACPI HID device entry UID length")?,
            )),
            _ => {
                return Err(ParseError::InvalidField {
                    table: TABLE,
                    field: "IVHD device entry type",
                    offset,
                    value: u64::from(kind),
                    reason: "a type of unknown length (only 00h-7Fh and F0h are defined)",
                })
            }
        };
        if len > rest.len() {
            return Err(ParseError::EntryLength {
                table: TABLE,
                entry: "IVHD device entry",
                offset,
                length: len,
                problem: LengthProblem::PastEnd {
                    remaining: rest.len(),
                },
            });
        }
        let f = Fields {
            table: TABLE,
            bytes: rest.get(..len).unwrap_or_default(),
            base: offset,
        };
        let device_id = f.u16(1, "IVHD device entry device ID")?;
        let dte = f.u8(3, "IVHD device entry DTE setting")?;
        let source_id = || f.u16(5, "IVHD alias device entry source device ID");
        let extended = || f.u32(4, "IVHD extended device entry setting");
        let entry = match kind {
            0x00 => DeviceEntry::Pad,
            0x01 => DeviceEntry::All { dte },
            0x02 => DeviceEntry::Select { device_id, dte },
            0x03 => DeviceEntry::RangeStart { device_id, dte },
            0x04 => DeviceEntry::RangeEnd { device_id },
            0x42 => DeviceEntry::AliasSelect {
                device_id,
                dte,
                source_id: source_id()?,
            },
            0x43 => DeviceEntry::AliasRangeStart {
                device_id,
                dte,
                source_id: source_id()?,
            },
            0x46 => DeviceEntry::ExtendedSelect {
                device_id,
                dte,
                extended: extended()?,
            },
            0x47 => DeviceEntry::ExtendedRangeStart {
                device_id,
                dte,
                extended: extended()?,
            },
            0x48 => DeviceEntry::Special {
                dte,
                handle: f.u8(4, "IVHD special device handle")?,
                device_id: f.u16(5, "IVHD special device source device ID")?,
                variety: SpecialVariety::from(f.u8(7, "IVHD special device variety")?),
            },
            0xf0 => DeviceEntry::AcpiHid {
                device_id,
                dte,
                hid: f.bytes(4, "IVHD ACPI HID device entry HID")?,
                cid: f.bytes(12, "IVHD ACPI HID device entry CID")?,
                uid_format: f.u8(20, "IVHD ACPI HID device entry UID format")?,
                uid: f.rest(ACPI_HID_FIXED_LEN, "IVHD ACPI HID device entry UID")?,
            },
            kind => DeviceEntry::Other {
                kind,
                device_id,
                dte,
                length: if kind < 0x40 { 4 } else { 8 },
            },
        };
        Ok((entry, len))
    }
}

impl<'a> Iterator for DeviceEntries<'a> {
    type Item = Result<DeviceEntry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.bytes.len() {
            return None;
        }
        Some(match self.entry() {
            // Every length is at least 4, so the walk moves on.
            Ok((entry, len)) => {
                self.next = self.next.saturating_add(len);
                Ok(entry)
            }
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        })
    }
}

/// A special-device entry (IVHD device entry type 48h) with the IOMMU whose IVHD lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialDevice {
    /// I/O APIC or HPET.
    pub variety: SpecialVariety,
    /// I/O APIC ID or HPET number.
    pub handle: u8,
    /// The device ID (requester ID, bus << 8 | device << 3 | function) the IOMMU sees for
    /// the device's interrupts: the index of its device table entry, where NMIPass and the
    /// interrupt remapping table live.
    pub device_id: u16,
    /// The entry's DTE setting byte (bit 2: NMIPass).
    pub dte: u8,
    /// The type of the IVHD block listing it (10h, 11h or 40h).
    pub ivhd_kind: u8,
    /// That IVHD's IOMMU device ID.
    pub iommu_device_id: u16,
    /// That IVHD's IOMMU MMIO base address.
    pub iommu_base: u64,
    /// That IVHD's PCI segment group.
    pub pci_segment: u16,
}

/// Iterator over [`Ivrs::special_devices`].
#[derive(Debug, Clone)]
pub struct SpecialDevices<'a> {
    blocks: Blocks<'a>,
    current: Option<(Ivhd<'a>, DeviceEntries<'a>)>,
    failed: bool,
}

impl Iterator for SpecialDevices<'_> {
    type Item = Result<SpecialDevice, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            if let Some((ivhd, entries)) = &mut self.current {
                match entries.next() {
                    Some(Ok(DeviceEntry::Special {
                        dte,
                        handle,
                        device_id,
                        variety,
                    })) => {
                        return Some(Ok(SpecialDevice {
                            variety,
                            handle,
                            device_id,
                            dte,
                            ivhd_kind: ivhd.kind,
                            iommu_device_id: ivhd.iommu_device_id,
                            iommu_base: ivhd.base_address,
                            pci_segment: ivhd.pci_segment,
                        }))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        self.failed = true;
                        return Some(Err(error));
                    }
                    None => self.current = None,
                }
            }
            match self.blocks.next()? {
                Ok(IvrsBlock::Ivhd(ivhd)) => self.current = Some((ivhd, ivhd.entries())),
                Ok(_) => {}
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::tests::{fix_checksum, set_length, table};
    use std::string::ToString;
    use std::vec::Vec;

    fn ivrs(info: u32, blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut body = info.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 8]);
        for block in blocks {
            body.extend_from_slice(block);
        }
        table(b"IVRS", 2, &body)
    }

    /// An IVHD of `kind` for the IOMMU at 00:00.2, base 0xfeb80000, with `entries`.
    fn ivhd(kind: u8, entries: &[&[u8]]) -> Vec<u8> {
        let header = if kind == 0x10 { 24 } else { 40 };
        let len = header + entries.iter().map(|e| e.len()).sum::<usize>();
        let mut bytes = std::vec![kind, 0xb0];
        bytes.extend_from_slice(&(len as u16).to_le_bytes());
        bytes.extend_from_slice(&0x0002u16.to_le_bytes());
        bytes.extend_from_slice(&0x0040u16.to_le_bytes());
        bytes.extend_from_slice(&0xfeb8_0000u64.to_le_bytes());
        bytes.extend_from_slice(&0x0001u16.to_le_bytes()); // segment
        bytes.extend_from_slice(&0x0304u16.to_le_bytes()); // info: unit 3, MSI 4
        bytes.extend_from_slice(&0x8004_8f6fu32.to_le_bytes());
        if kind != 0x10 {
            bytes.extend_from_slice(&0x058f_77ef_2229_4adeu64.to_le_bytes());
            bytes.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        }
        for entry in entries {
            bytes.extend_from_slice(entry);
        }
        bytes
    }

    fn ivmd(kind: u8, device: u16, aux: u16, start: u64, length: u64) -> Vec<u8> {
        let mut bytes = std::vec![kind, 0x07, 32, 0];
        bytes.extend_from_slice(&device.to_le_bytes());
        bytes.extend_from_slice(&aux.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&start.to_le_bytes());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes
    }

    const HPET0: [u8; 8] = [0x48, 0, 0, 0x04, 0, 0xa0, 0, 2];
    const IOAPIC21: [u8; 8] = [0x48, 0, 0, 0xd7, 0x21, 0xa0, 0, 1];
    const IOAPIC22: [u8; 8] = [0x48, 0, 0, 0, 0x22, 0x01, 0, 1];

    fn acpi_hid(uid: &[u8]) -> Vec<u8> {
        let mut bytes = std::vec![0xf0, 0xa5, 0x00, 0x40];
        bytes.extend_from_slice(b"AMDI0020");
        bytes.extend_from_slice(&[0; 8]);
        bytes.push(2);
        bytes.push(uid.len() as u8);
        bytes.extend_from_slice(uid);
        bytes
    }

    /// Like the AMD desktops in the fixtures: 10h, 11h and 40h for one IOMMU, plus IVMDs.
    fn sample() -> Vec<u8> {
        let common: [&[u8]; 9] = [
            &[0x03, 0x08, 0x00, 0x00],
            &[0x04, 0xfe, 0xff, 0x00],
            &[0x43, 0x00, 0xff, 0x00, 0x00, 0xa4, 0x00, 0x00],
            &[0x04, 0xff, 0xff, 0x00],
            &[0x00, 0x00, 0x00, 0x00],
            &HPET0,
            &IOAPIC21,
            &IOAPIC22,
            &[0x02, 0x10, 0x00, 0x00],
        ];
        let more: [&[u8]; 6] = [
            &[0x01, 0, 0, 0x01],
            &[0x42, 0x08, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00],
            &[0x46, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x80],
            &[0x47, 0x0a, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00],
            &[0x05, 0x0b, 0x01, 0x00],
            &[0x7f, 0x0c, 0x01, 0x00, 0, 0, 0, 0],
        ];
        let uid = acpi_hid(b"\\_SB.FUR0");
        let mut with_hid: Vec<&[u8]> = common.to_vec();
        with_hid.push(&uid);
        ivrs(
            0x0020_3041,
            &[
                ivhd(0x10, &[&common[..], &more[..]].concat()),
                ivmd(0x21, 0x00a0, 0, 0x9d00_0000, 0x10_0000),
                ivhd(0x11, &common),
                ivmd(0x22, 0x0100, 0x01ff, 0x1000, 0x2000),
                ivhd(0x40, &with_hid),
                std::vec![0x50, 0, 8, 0, 1, 2, 3, 4],
            ],
        )
    }

    #[test]
    fn ivinfo_bits() {
        let info = IvInfo::from_raw(0x0020_3041);
        assert_eq!(
            info,
            IvInfo {
                raw: 0x0020_3041,
                efr_sup: true,
                dma_remap: false,
                gva_size: 2,
                pa_size: 48,
                va_size: 64,
                ht_ats_reserved: false,
            }
        );
        let info = IvInfo::from_raw(0x0040_0002);
        assert!(info.dma_remap && info.ht_ats_reserved && !info.efr_sup);
        assert_eq!((info.pa_size, info.va_size, info.gva_size), (0, 0, 0));
        let all = IvInfo::from_raw(u32::MAX);
        assert_eq!((all.gva_size, all.pa_size, all.va_size), (7, 127, 127));
    }

    #[test]
    fn blocks_and_fields() {
        let bytes = sample();
        let ivrs = Ivrs::parse(&bytes).unwrap();
        assert_eq!(ivrs.info.pa_size, 48);
        assert!(ivrs.table().checksum_valid());
        let blocks: Vec<_> = ivrs.blocks().map(Result::unwrap).collect();
        let kinds: Vec<_> = blocks.iter().map(|b| (b.kind(), b.length())).collect();
        assert_eq!(
            kinds,
            [
                (0x10, 24 + 52 + 40),
                (0x21, 32),
                (0x11, 40 + 52),
                (0x22, 32),
                (0x40, 40 + 52 + 31),
                (0x50, 8)
            ]
        );
        let IvrsBlock::Ivhd(first) = blocks[0] else {
            panic!("{:?}", blocks[0])
        };
        assert_eq!(first.offset, 48);
        assert_eq!(first.flags, 0xb0);
        assert_eq!(first.iommu_device_id, 2);
        assert_eq!(first.capability_offset, 0x40);
        assert_eq!(first.base_address, 0xfeb8_0000);
        assert_eq!(first.pci_segment, 1);
        assert_eq!((first.msi_number(), first.unit_id()), (4, 3));
        assert_eq!(first.feature_reporting, 0x8004_8f6f);
        assert_eq!((first.efr, first.efr2), (None, None));
        let IvrsBlock::Ivhd(second) = blocks[2] else {
            panic!("{:?}", blocks[2])
        };
        assert_eq!(second.efr, Some(0x058f_77ef_2229_4ade));
        assert_eq!(second.efr2, Some(0x1122_3344_5566_7788));
        assert_eq!(
            blocks[1],
            IvrsBlock::Ivmd(Ivmd {
                kind: 0x21,
                flags: 7,
                length: 32,
                device_id: 0xa0,
                auxiliary_data: 0,
                start_address: 0x9d00_0000,
                memory_length: 0x10_0000,
                offset: 48 + 116,
            })
        );
        assert!(matches!(
            blocks[3],
            IvrsBlock::Ivmd(Ivmd {
                kind: 0x22,
                device_id: 0x100,
                auxiliary_data: 0x1ff,
                ..
            })
        ));
        assert_eq!(
            blocks[5],
            IvrsBlock::Other {
                kind: 0x50,
                flags: 0,
                length: 8,
                offset: bytes.len() - 8
            }
        );
    }

    #[test]
    fn every_device_entry_type() {
        let bytes = sample();
        let ivrs = Ivrs::parse(&bytes).unwrap();
        let Some(Ok(IvrsBlock::Ivhd(first))) = ivrs.blocks().next() else {
            panic!()
        };
        let entries: Vec<_> = first.entries().map(Result::unwrap).collect();
        use DeviceEntry::*;
        assert_eq!(
            entries,
            [
                RangeStart {
                    device_id: 8,
                    dte: 0
                },
                RangeEnd { device_id: 0xfffe },
                AliasRangeStart {
                    device_id: 0xff00,
                    dte: 0,
                    source_id: 0xa4
                },
                RangeEnd { device_id: 0xffff },
                Pad,
                Special {
                    dte: 4,
                    handle: 0,
                    device_id: 0xa0,
                    variety: SpecialVariety::Hpet
                },
                Special {
                    dte: 0xd7,
                    handle: 0x21,
                    device_id: 0xa0,
                    variety: SpecialVariety::IoApic
                },
                Special {
                    dte: 0,
                    handle: 0x22,
                    device_id: 1,
                    variety: SpecialVariety::IoApic
                },
                Select {
                    device_id: 0x10,
                    dte: 0
                },
                All { dte: 1 },
                AliasSelect {
                    device_id: 0x108,
                    dte: 0,
                    source_id: 0x100
                },
                ExtendedSelect {
                    device_id: 0x109,
                    dte: 0,
                    extended: 0x8000_0000
                },
                ExtendedRangeStart {
                    device_id: 0x10a,
                    dte: 0,
                    extended: 1
                },
                Other {
                    kind: 5,
                    device_id: 0x10b,
                    dte: 0,
                    length: 4
                },
                Other {
                    kind: 0x7f,
                    device_id: 0x10c,
                    dte: 0,
                    length: 8
                },
            ]
        );
        let Some(Ok(IvrsBlock::Ivhd(last))) = ivrs.blocks().nth(4) else {
            panic!()
        };
        assert_eq!(
            last.entries().last().unwrap().unwrap(),
            AcpiHid {
                device_id: 0xa5,
                dte: 0x40,
                hid: *b"AMDI0020",
                cid: [0; 8],
                uid_format: 2,
                uid: b"\\_SB.FUR0"
            }
        );
    }

    #[test]
    fn special_devices_and_the_hpet() {
        let bytes = sample();
        let ivrs = Ivrs::parse(&bytes).unwrap();
        let specials: Vec<_> = ivrs.special_devices().map(Result::unwrap).collect();
        assert_eq!(specials.len(), 9);
        let kinds: Vec<_> = specials.iter().map(|s| s.ivhd_kind).collect();
        assert_eq!(
            kinds,
            [0x10, 0x10, 0x10, 0x11, 0x11, 0x11, 0x40, 0x40, 0x40]
        );
        assert_eq!(ivrs.preferred_ivhd_kind(), Some(0x40));
        let hpet = ivrs.hpet(0).unwrap().unwrap();
        assert_eq!(
            hpet,
            SpecialDevice {
                variety: SpecialVariety::Hpet,
                handle: 0,
                device_id: 0xa0,
                dte: 4,
                ivhd_kind: 0x40,
                iommu_device_id: 2,
                iommu_base: 0xfeb8_0000,
                pci_segment: 1,
            }
        );
        assert!(ivrs.hpet(1).is_none());
        // Without IVHD blocks there is no preferred type and no HPET.
        let empty = ivrs_bytes_without_blocks();
        let empty = Ivrs::parse(&empty).unwrap();
        assert_eq!(empty.preferred_ivhd_kind(), None);
        assert!(empty.hpet(0).is_none());
        assert_eq!(empty.special_devices().count(), 0);
    }

    fn ivrs_bytes_without_blocks() -> Vec<u8> {
        ivrs(0, &[])
    }

    #[test]
    fn preferred_kind_follows_the_first_iommu() {
        // A second IOMMU's 40h block does not count; a block type above 40h ends the search.
        let mut second = ivhd(0x40, &[&HPET0]);
        second[4] = 0x12;
        let bytes = ivrs(0, &[ivhd(0x10, &[&HPET0]), second]);
        assert_eq!(
            Ivrs::parse(&bytes).unwrap().preferred_ivhd_kind(),
            Some(0x10)
        );
        let bytes = ivrs(
            0,
            &[
                ivhd(0x10, &[]),
                std::vec![0x41, 0, 4, 0],
                ivhd(0x11, &[&HPET0]),
            ],
        );
        let ivrs = Ivrs::parse(&bytes).unwrap();
        assert_eq!(ivrs.preferred_ivhd_kind(), Some(0x10));
        assert!(ivrs.hpet(0).is_none());
        assert_eq!(ivrs.special_devices().count(), 1);
    }

    #[test]
    fn variety_round_trips() {
        for value in 0..=255u8 {
            assert_eq!(u8::from(SpecialVariety::from(value)), value);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(Ivrs::parse(&bytes[..len]).is_err(), "{len} bytes");
        }
    }

    fn errors(bytes: &[u8]) -> Vec<ParseError> {
        let ivrs = Ivrs::parse(bytes).unwrap();
        let mut errors = Vec::new();
        for block in ivrs.blocks() {
            match block {
                Ok(IvrsBlock::Ivhd(ivhd)) => errors.extend(ivhd.entries().filter_map(Result::err)),
                Ok(_) => {}
                Err(error) => errors.push(error),
            }
        }
        errors
    }

    fn length_error(bytes: &[u8]) -> (usize, usize, LengthProblem) {
        match errors(bytes)[..] {
            [ParseError::EntryLength {
                table: "IVRS",
                offset,
                length,
                problem,
                ..
            }] => (offset, length, problem),
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_blocks() {
        // Zero length, and lengths 1 to 3: below the 4-byte block header.
        for length in 0..4u8 {
            let bytes = ivrs(0, &[std::vec![0x10, 0, length, 0]]);
            assert_eq!(
                length_error(&bytes),
                (
                    48,
                    usize::from(length),
                    LengthProblem::ShorterThanHeader { header: 4 }
                )
            );
        }
        // An IVHD 10h shorter than its 24-byte header, an 11h/40h shorter than 40 bytes,
        // an IVMD shorter than 32.
        for (kind, minimum) in [(0x10u8, 24), (0x11, 40), (0x40, 40), (0x20, 32), (0x22, 32)] {
            let mut block = std::vec![0; minimum - 1];
            block[0] = kind;
            block[2] = (minimum - 1) as u8;
            let bytes = ivrs(0, &[block]);
            assert_eq!(
                length_error(&bytes),
                (
                    48,
                    minimum - 1,
                    LengthProblem::ShorterThanType {
                        kind: kind.into(),
                        minimum
                    }
                )
            );
        }
        // A block running past the end of the table.
        let mut block = ivhd(0x10, &[&HPET0]);
        block[2] += 1;
        let bytes = ivrs(0, &[block]);
        assert_eq!(
            length_error(&bytes),
            (48, 33, LengthProblem::PastEnd { remaining: 32 })
        );
        // A lone trailing byte: the block header is cut short.
        let mut bytes = ivrs(0, &[ivhd(0x10, &[])]);
        bytes.push(0x10);
        let length = bytes.len() as u32;
        set_length(&mut bytes, length);
        let errors = errors(&bytes);
        assert!(
            matches!(
                errors[..],
                [ParseError::Truncated {
                    table: "IVRS",
                    offset: 73,
                    needed: 1,
                    available: 0,
                    ..
                }]
            ),
            "{errors:?}"
        );
        assert_eq!(
            errors[0].to_string(),
            "IVRS: block flags at offset 0x49 needs 1 bytes, only 0 available"
        );
    }

    #[test]
    fn malformed_device_entries() {
        // An 8-byte entry cut by the end of its IVHD: 4 bytes remain.
        let bytes = ivrs(0, &[ivhd(0x10, &[&HPET0[..4]])]);
        assert_eq!(
            length_error(&bytes),
            (72, 8, LengthProblem::PastEnd { remaining: 4 })
        );
        // A 4-byte entry with 2 bytes left.
        let bytes = ivrs(0, &[ivhd(0x10, &[&[2, 0]])]);
        assert_eq!(
            length_error(&bytes),
            (72, 4, LengthProblem::PastEnd { remaining: 2 })
        );
        // A variable-length entry whose UID runs past the block; one whose UID length byte
        // is missing.
        let mut hid = acpi_hid(b"\\_SB.FUR0");
        hid[21] = 10;
        let bytes = ivrs(0, &[ivhd(0x40, &[&hid])]);
        assert_eq!(
            length_error(&bytes),
            (88, 32, LengthProblem::PastEnd { remaining: 31 })
        );
        let bytes = ivrs(0, &[ivhd(0x40, &[&hid[..21]])]);
        assert!(matches!(
            errors(&bytes)[..],
            [ParseError::Truncated { offset: 109, .. }]
        ));
        // Types from 80h other than F0h have no known length.
        for kind in [0x80u8, 0xbf, 0xc0, 0xef, 0xf1, 0xff] {
            let bytes = ivrs(0, &[ivhd(0x10, &[&[kind, 0, 0, 0]])]);
            let errors = errors(&bytes);
            assert_eq!(
                errors,
                [ParseError::InvalidField {
                    table: "IVRS",
                    field: "IVHD device entry type",
                    offset: 72,
                    value: kind.into(),
                    reason: "a type of unknown length (only 00h-7Fh and F0h are defined)",
                }]
            );
        }
        // The walk stops after the first bad entry; special_devices reports it once.
        let bytes = ivrs(0, &[ivhd(0x10, &[&[0x80, 0, 0, 0], &HPET0])]);
        let ivrs = Ivrs::parse(&bytes).unwrap();
        let results: Vec<_> = ivrs.special_devices().collect();
        assert!(matches!(
            results[..],
            [Err(ParseError::InvalidField { .. })]
        ));
        assert!(matches!(ivrs.hpet(0), Some(Err(_))));
    }

    #[test]
    fn wrong_signature_and_short_table() {
        let mut bytes = sample();
        bytes[0] = b'X';
        fix_checksum(&mut bytes);
        assert!(matches!(
            Ivrs::parse(&bytes),
            Err(ParseError::WrongSignature { table: "IVRS", .. })
        ));
        let mut bytes = ivrs(0, &[]);
        set_length(&mut bytes, 47);
        assert!(matches!(
            Ivrs::parse(&bytes),
            Err(ParseError::TableLength {
                length: 47,
                minimum: 48,
                ..
            })
        ));
        let mut bytes = sample();
        bytes[40] ^= 1;
        assert!(!Ivrs::parse(&bytes).unwrap().table().checksum_valid());
    }

    #[test]
    fn every_length_field_walks_without_panic() {
        // Shrinking the table length cuts the last blocks; changing any block's or entry's
        // length byte walks to at most one error per walk.
        let full = sample();
        for length in 48..full.len() as u32 {
            let mut bytes = full.clone();
            set_length(&mut bytes, length);
            walk(&bytes);
        }
        for index in 48..full.len() {
            for value in [0u8, 1, 3, 4, 0x7f, 0x80, 0xf0, 0xff] {
                let mut bytes = full.clone();
                bytes[index] = value;
                walk(&bytes);
            }
        }
    }

    /// Walks everything; each walk yields results then at most one error, last.
    fn walk(bytes: &[u8]) {
        let ivrs = Ivrs::parse(bytes).unwrap();
        let blocks: Vec<_> = ivrs.blocks().collect();
        assert!(blocks.iter().take_while(|r| r.is_ok()).count() + 1 >= blocks.len());
        for block in blocks.into_iter().flatten() {
            if let IvrsBlock::Ivhd(ivhd) = block {
                let entries: Vec<_> = ivhd.entries().collect();
                assert!(entries.iter().take_while(|r| r.is_ok()).count() + 1 >= entries.len());
            }
        }
        let specials: Vec<_> = ivrs.special_devices().collect();
        assert!(specials.iter().take_while(|r| r.is_ok()).count() + 1 >= specials.len());
        let _ = ivrs.preferred_ivhd_kind();
        let _ = ivrs.hpet(0);
    }
}
