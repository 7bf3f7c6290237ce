//! The Multiple APIC Description Table, signature "APIC" (ACPI 6.5 section 5.2.12).

use crate::error::ParseError;
use crate::read::{Entries, Entry, EntryLayout};
use crate::sdt::{Table, HEADER_LEN};

const TABLE: &str = "MADT";
/// Offset of the first interrupt controller structure (ACPI 6.5 table 5.19).
const ENTRIES_OFFSET: usize = HEADER_LEN + 8;
const LAYOUT: EntryLayout = EntryLayout {
    table: TABLE,
    entry: "entry",
    header_field: "entry type and length",
    wide: false,
    header_len: 2,
};

/// The MADT's fixed fields and its interrupt controller structures (ACPI 6.5 table 5.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Madt<'a> {
    /// 32-bit physical address of the local APIC (offset 36); a Local APIC Address Override
    /// entry replaces it.
    pub local_apic_address: u32,
    /// Multiple APIC flags (offset 40; ACPI 6.5 table 5.20): bit 0 PCAT_COMPAT.
    pub flags: u32,
    table: Table<'a>,
}

impl<'a> Madt<'a> {
    /// Parses the fixed part; entries are checked as [`Madt::entries`] walks them.
    pub fn parse(table: &'a [u8]) -> Result<Self, ParseError> {
        let table = Table::expect(table, b"APIC", TABLE, "\"APIC\"", ENTRIES_OFFSET)?;
        let fields = table.fields(TABLE);
        Ok(Self {
            local_apic_address: fields.u32(36, "local APIC address")?,
            flags: fields.u32(40, "flags")?,
            table,
        })
    }

    /// The underlying table.
    pub fn table(&self) -> &Table<'a> {
        &self.table
    }

    /// The interrupt controller structures in table order. A malformed entry yields one
    /// error and ends the walk.
    pub fn entries(&self) -> MadtEntries<'a> {
        let bytes = self.table.bytes().get(ENTRIES_OFFSET..).unwrap_or_default();
        MadtEntries {
            entries: Entries::new(LAYOUT, bytes, ENTRIES_OFFSET),
        }
    }

    /// The processor entries (types 0 and 9) in MADT order.
    pub fn processors(&self) -> impl Iterator<Item = Result<Processor, ParseError>> + 'a {
        self.entries().filter_map(|entry| match entry {
            Ok(entry) => entry.processor().map(Ok),
            Err(error) => Some(Err(error)),
        })
    }

    /// PCAT_COMPAT (flags bit 0): the system also has dual 8259 PICs.
    pub fn pcat_compat(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// Iterator over the MADT's entries; see [`Madt::entries`].
#[derive(Debug, Clone)]
pub struct MadtEntries<'a> {
    entries: Entries<'a>,
}

impl Iterator for MadtEntries<'_> {
    type Item = Result<MadtEntry, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next()?.and_then(MadtEntry::decode);
        if entry.is_err() {
            // `Entries` stops after its own errors; this also stops after an entry too
            // short for its type.
            self.entries.stop();
        }
        Some(entry)
    }
}

/// One interrupt controller structure (ACPI 6.5 section 5.2.12, table 5.21). Entries may be
/// longer than listed (later revisions append fields); only the fields below are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadtEntry {
    /// Type 0, Processor Local APIC (section 5.2.12.2, 8 bytes).
    LocalApic {
        processor_uid: u8,
        apic_id: u8,
        flags: u32,
    },
    /// Type 1, I/O APIC (section 5.2.12.3, 12 bytes).
    IoApic { id: u8, address: u32, gsi_base: u32 },
    /// Type 2, Interrupt Source Override (section 5.2.12.5, 10 bytes).
    InterruptSourceOverride {
        bus: u8,
        source: u8,
        gsi: u32,
        flags: u16,
    },
    /// Type 3, Non-Maskable Interrupt Source (section 5.2.12.6, 8 bytes).
    NmiSource { flags: u16, gsi: u32 },
    /// Type 4, Local APIC NMI (section 5.2.12.7, 6 bytes); UID 0xFF means all processors.
    LocalApicNmi {
        processor_uid: u8,
        flags: u16,
        lint: u8,
    },
    /// Type 5, Local APIC Address Override (section 5.2.12.8, 12 bytes).
    LocalApicAddressOverride { address: u64 },
    /// Type 9, Processor Local x2APIC (section 5.2.12.12, 16 bytes).
    X2Apic {
        x2apic_id: u32,
        flags: u32,
        processor_uid: u32,
    },
    /// Type 0xA, Local x2APIC NMI (section 5.2.12.13, 12 bytes); UID 0xFFFFFFFF means all
    /// processors.
    X2ApicNmi {
        flags: u16,
        processor_uid: u32,
        lint: u8,
    },
    /// Any other type, skipped by its length.
    Other { kind: u8, length: u8 },
}

impl MadtEntry {
    fn decode(entry: Entry<'_>) -> Result<Self, ParseError> {
        let f = entry.fields;
        let kind = u8::try_from(entry.kind).unwrap_or(u8::MAX);
        let minimum = match kind {
            0 | 3 => 8,
            1 | 5 | 0xa => 12,
            2 => 10,
            4 => 6,
            9 => 16,
            _ => 2,
        };
        entry.require(&LAYOUT, minimum)?;
        Ok(match kind {
            0 => Self::LocalApic {
                processor_uid: f.u8(2, "ACPI processor UID")?,
                apic_id: f.u8(3, "APIC ID")?,
                flags: f.u32(4, "local APIC flags")?,
            },
            1 => Self::IoApic {
                id: f.u8(2, "I/O APIC ID")?,
                address: f.u32(4, "I/O APIC address")?,
                gsi_base: f.u32(8, "global system interrupt base")?,
            },
            2 => Self::InterruptSourceOverride {
                bus: f.u8(2, "bus")?,
                source: f.u8(3, "source")?,
                gsi: f.u32(4, "global system interrupt")?,
                flags: f.u16(8, "MPS INTI flags")?,
            },
            3 => Self::NmiSource {
                flags: f.u16(2, "MPS INTI flags")?,
                gsi: f.u32(4, "global system interrupt")?,
            },
            4 => Self::LocalApicNmi {
                processor_uid: f.u8(2, "ACPI processor UID")?,
                flags: f.u16(3, "MPS INTI flags")?,
                lint: f.u8(5, "local APIC LINT#")?,
            },
            5 => Self::LocalApicAddressOverride {
                address: f.u64(4, "local APIC address")?,
            },
            9 => Self::X2Apic {
                x2apic_id: f.u32(4, "x2APIC ID")?,
                flags: f.u32(8, "local APIC flags")?,
                processor_uid: f.u32(12, "ACPI processor UID")?,
            },
            0xa => Self::X2ApicNmi {
                flags: f.u16(2, "MPS INTI flags")?,
                processor_uid: f.u32(4, "ACPI processor UID")?,
                lint: f.u8(8, "local x2APIC LINT#")?,
            },
            _ => Self::Other {
                kind,
                length: u8::try_from(entry.len()).unwrap_or(u8::MAX),
            },
        })
    }

    /// The processor this entry describes, for types 0 and 9.
    pub fn processor(&self) -> Option<Processor> {
        match *self {
            Self::LocalApic {
                processor_uid,
                apic_id,
                flags,
            } => Some(Processor::new(
                u32::from(apic_id),
                u32::from(processor_uid),
                flags,
                false,
            )),
            Self::X2Apic {
                x2apic_id,
                flags,
                processor_uid,
            } => Some(Processor::new(x2apic_id, processor_uid, flags, true)),
            _ => None,
        }
    }
}

/// One processor entry (type 0 or 9) in MADT order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processor {
    /// Local APIC ID (type 0) or x2APIC ID (type 9).
    pub apic_id: u32,
    /// ACPI processor UID.
    pub uid: u32,
    /// Local APIC flags bit 0, Enabled (ACPI 6.5 table 5.23): usable at boot.
    pub enabled: bool,
    /// Local APIC flags bit 1, Online Capable (ACPI 6.5 table 5.23): when not enabled, the
    /// processor can be brought online at run time.
    pub online_capable: bool,
    /// Described by a Processor Local x2APIC entry (type 9).
    pub x2apic_entry: bool,
}

impl Processor {
    fn new(apic_id: u32, uid: u32, flags: u32, x2apic_entry: bool) -> Self {
        Self {
            apic_id,
            uid,
            enabled: flags & 1 != 0,
            online_capable: flags & 2 != 0,
            x2apic_entry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LengthProblem;
    use crate::sdt::tests::{set_length, table};
    use std::vec::Vec;

    fn madt(entries: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        for entry in entries {
            body.extend_from_slice(entry);
        }
        table(b"APIC", 5, &body)
    }

    const LAPIC0: &[u8] = &[0, 8, 0, 0, 1, 0, 0, 0];
    const LAPIC1_DISABLED: &[u8] = &[0, 8, 1, 2, 0, 0, 0, 0];
    const LAPIC2_HOTPLUG: &[u8] = &[0, 8, 2, 4, 2, 0, 0, 0];
    const IOAPIC: &[u8] = &[1, 12, 8, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0];
    const ISO: &[u8] = &[2, 10, 0, 0, 2, 0, 0, 0, 5, 0];
    const NMI_SOURCE: &[u8] = &[3, 8, 5, 0, 9, 0, 0, 0];
    const LAPIC_NMI: &[u8] = &[4, 6, 0xff, 5, 0, 1];
    const OVERRIDE: &[u8] = &[5, 12, 0, 0, 0, 0, 0xe0, 0xfe, 1, 0, 0, 0];
    const X2APIC: &[u8] = &[9, 16, 0, 0, 0x00, 0x01, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0];
    const X2APIC_NMI: &[u8] = &[10, 12, 5, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0];
    const GICC_LIKE: &[u8] = &[0x0b, 4, 0, 0];

    fn all_entries() -> Vec<u8> {
        madt(&[
            LAPIC0,
            LAPIC1_DISABLED,
            LAPIC2_HOTPLUG,
            IOAPIC,
            ISO,
            NMI_SOURCE,
            LAPIC_NMI,
            OVERRIDE,
            X2APIC,
            X2APIC_NMI,
            GICC_LIKE,
        ])
    }

    #[test]
    fn every_entry_type() {
        let bytes = all_entries();
        let madt = Madt::parse(&bytes).unwrap();
        assert_eq!(madt.local_apic_address, 0xfee0_0000);
        assert!(madt.pcat_compat());
        let entries: Vec<_> = madt.entries().map(Result::unwrap).collect();
        assert_eq!(
            entries,
            [
                MadtEntry::LocalApic {
                    processor_uid: 0,
                    apic_id: 0,
                    flags: 1
                },
                MadtEntry::LocalApic {
                    processor_uid: 1,
                    apic_id: 2,
                    flags: 0
                },
                MadtEntry::LocalApic {
                    processor_uid: 2,
                    apic_id: 4,
                    flags: 2
                },
                MadtEntry::IoApic {
                    id: 8,
                    address: 0xfec0_0000,
                    gsi_base: 0
                },
                MadtEntry::InterruptSourceOverride {
                    bus: 0,
                    source: 0,
                    gsi: 2,
                    flags: 5
                },
                MadtEntry::NmiSource { flags: 5, gsi: 9 },
                MadtEntry::LocalApicNmi {
                    processor_uid: 0xff,
                    flags: 5,
                    lint: 1
                },
                MadtEntry::LocalApicAddressOverride {
                    address: 0x1_fee0_0000
                },
                MadtEntry::X2Apic {
                    x2apic_id: 0x100,
                    flags: 1,
                    processor_uid: 7
                },
                MadtEntry::X2ApicNmi {
                    flags: 5,
                    processor_uid: u32::MAX,
                    lint: 1
                },
                MadtEntry::Other {
                    kind: 0x0b,
                    length: 4
                },
            ]
        );
    }

    #[test]
    fn processors_in_order() {
        let bytes = all_entries();
        let madt = Madt::parse(&bytes).unwrap();
        let processors: Vec<_> = madt.processors().map(Result::unwrap).collect();
        let summary: Vec<_> = processors
            .iter()
            .map(|p| {
                (
                    p.apic_id,
                    p.uid,
                    p.enabled,
                    p.online_capable,
                    p.x2apic_entry,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, 0, true, false, false),
                (2, 1, false, false, false),
                (4, 2, false, true, false),
                (0x100, 7, true, false, true),
            ]
        );
    }

    #[test]
    fn longer_entries_are_accepted() {
        // A later revision's longer local APIC entry: the extra bytes are skipped.
        let long = [0, 10, 3, 3, 1, 0, 0, 0, 0xaa, 0xbb];
        let bytes = madt(&[&long, LAPIC0]);
        let madt = Madt::parse(&bytes).unwrap();
        let ids: Vec<_> = madt.processors().map(|p| p.unwrap().apic_id).collect();
        assert_eq!(ids, [3, 0]);
    }

    #[test]
    fn zero_length_entry() {
        let bytes = madt(&[LAPIC0, &[0, 0, 0, 0, 0, 0, 0, 0]]);
        let madt = Madt::parse(&bytes).unwrap();
        let mut entries = madt.entries();
        assert!(entries.next().unwrap().is_ok());
        let error = entries.next().unwrap().unwrap_err();
        assert_eq!(
            error,
            ParseError::EntryLength {
                table: "MADT",
                entry: "entry",
                offset: 0x34,
                length: 0,
                problem: LengthProblem::ShorterThanHeader { header: 2 },
            }
        );
        assert_eq!(
            std::format!("{error}"),
            "MADT entry at offset 0x34: length 0 is shorter than the 2-byte entry header"
        );
        assert_eq!(entries.next(), None, "the walk stops after an error");
    }

    #[test]
    fn entry_running_past_the_end() {
        let bytes = madt(&[LAPIC0, &[1, 12, 8, 0, 0, 0, 0xc0, 0xfe]]);
        let madt = Madt::parse(&bytes).unwrap();
        let results: Vec<_> = madt.entries().collect();
        assert_eq!(results.len(), 2);
        assert!(matches!(
            results[1],
            Err(ParseError::EntryLength {
                offset: 0x34,
                length: 12,
                problem: LengthProblem::PastEnd { remaining: 8 },
                ..
            })
        ));
    }

    #[test]
    fn entry_shorter_than_its_type() {
        let bytes = madt(&[&[9, 8, 0, 0, 1, 0, 0, 0], LAPIC0]);
        let madt = Madt::parse(&bytes).unwrap();
        let results: Vec<_> = madt.entries().collect();
        assert_eq!(
            results,
            [Err(ParseError::EntryLength {
                table: "MADT",
                entry: "entry",
                offset: 0x2c,
                length: 8,
                problem: LengthProblem::ShorterThanType {
                    kind: 9,
                    minimum: 16
                },
            })]
        );
        let processors: Vec<_> = madt.processors().collect();
        assert_eq!(processors.len(), 1);
        assert!(processors[0].is_err());
    }

    #[test]
    fn lone_trailing_byte() {
        let bytes = madt(&[LAPIC0, &[0]]);
        let madt = Madt::parse(&bytes).unwrap();
        let results: Vec<_> = madt.entries().collect();
        assert_eq!(
            std::format!("{}", results[1].unwrap_err()),
            "MADT: entry type and length at offset 0x34 needs 2 bytes, only 1 available"
        );
        assert!(matches!(
            results[..],
            [
                Ok(_),
                Err(ParseError::Truncated {
                    offset: 0x34,
                    needed: 2,
                    available: 1,
                    ..
                })
            ]
        ));
    }

    #[test]
    fn wrong_signature() {
        let mut bytes = all_entries();
        bytes[0..4].copy_from_slice(b"APIX");
        crate::sdt::tests::fix_checksum(&mut bytes);
        assert!(matches!(
            Madt::parse(&bytes),
            Err(ParseError::WrongSignature { table: "MADT", .. })
        ));
    }

    #[test]
    fn length_too_short_for_fixed_fields() {
        let mut bytes = madt(&[]);
        set_length(&mut bytes, 40);
        assert!(matches!(
            Madt::parse(&bytes),
            Err(ParseError::TableLength {
                length: 40,
                minimum: 44,
                ..
            })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = all_entries();
        for len in 0..bytes.len() {
            assert!(Madt::parse(&bytes[..len]).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn every_shortened_length_field_parses_or_errs_without_panic() {
        // The length field claims fewer bytes: the walk must end in an error or cleanly.
        let full = all_entries();
        for length in 44..full.len() as u32 {
            let mut bytes = full.clone();
            set_length(&mut bytes, length);
            let madt = Madt::parse(&bytes).unwrap();
            let walked: usize = madt.entries().map(|e| e.map_or(0, |_| 1)).sum();
            assert!(walked <= 11);
        }
    }
}
