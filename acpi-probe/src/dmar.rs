//! The DMA Remapping Reporting table, signature "DMAR" (Intel Virtualization Technology for
//! Directed I/O specification, rev 4.x, chapter 8; the layouts are unchanged since rev 3.x).

use crate::error::{LengthProblem, ParseError};
use crate::read::{Entries, Entry, EntryLayout};
use crate::sdt::{Table, HEADER_LEN};

const TABLE: &str = "DMAR";
/// Offset of the first remapping structure (section 8.1, table 8-1 "DMA Remapping
/// Reporting Structure").
const STRUCTURES_OFFSET: usize = HEADER_LEN + 12;
const STRUCTURE_LAYOUT: EntryLayout = EntryLayout {
    table: TABLE,
    entry: "remapping structure",
    header_field: "remapping structure type and length",
    wide: true,
    header_len: 4,
};
const SCOPE_LAYOUT: EntryLayout = EntryLayout {
    table: TABLE,
    entry: "device scope",
    header_field: "device scope type and length",
    wide: false,
    header_len: 6,
};

/// The DMAR flags byte (section 8.1, offset 37).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmarFlags {
    /// Bit 0, INTR_REMAP: interrupt remapping is supported.
    pub intr_remap: bool,
    /// Bit 1, X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC mode.
    pub x2apic_opt_out: bool,
    /// Bit 2, DMA_CTRL_PLATFORM_OPT_IN_FLAG: the platform supports keeping DMA protection
    /// set up by firmware until the OS takes over.
    pub dma_ctrl_platform_opt_in: bool,
}

impl DmarFlags {
    fn from_byte(byte: u8) -> Self {
        Self {
            intr_remap: byte & 1 != 0,
            x2apic_opt_out: byte & 2 != 0,
            dma_ctrl_platform_opt_in: byte & 4 != 0,
        }
    }
}

/// The DMAR table (section 8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dmar<'a> {
    /// Maximum DMA physical address width: the Host Address Width field (offset 36) plus one.
    /// Saturates at 255 for a (meaningless) field of 255.
    pub host_address_width: u8,
    /// Flags (offset 37).
    pub flags: DmarFlags,
    table: Table<'a>,
}

impl<'a> Dmar<'a> {
    /// Parses the fixed part; the remapping structures are checked as
    /// [`Dmar::structures`] walks them.
    pub fn parse(table: &'a [u8]) -> Result<Self, ParseError> {
        let table = Table::expect(table, b"DMAR", TABLE, "\"DMAR\"", STRUCTURES_OFFSET)?;
        let fields = table.fields(TABLE);
        Ok(Self {
            host_address_width: fields.u8(36, "host address width")?.saturating_add(1),
            flags: DmarFlags::from_byte(fields.u8(37, "flags")?),
            table,
        })
    }

    /// The underlying table.
    pub fn table(&self) -> &Table<'a> {
        &self.table
    }

    /// The remapping structures in table order. A malformed structure yields one error
    /// and ends the walk. Device scopes are checked when iterated.
    pub fn structures(
        &self,
    ) -> impl Iterator<Item = Result<RemappingStructure<'a>, ParseError>> + 'a {
        let bytes = self
            .table
            .bytes()
            .get(STRUCTURES_OFFSET..)
            .unwrap_or_default();
        let mut entries = Entries::new(STRUCTURE_LAYOUT, bytes, STRUCTURES_OFFSET);
        core::iter::from_fn(move || {
            let structure = entries.next()?.and_then(RemappingStructure::decode);
            if structure.is_err() {
                entries.stop();
            }
            Some(structure)
        })
    }
}

/// One remapping structure (section 8.2, table 8-2 "Remapping Structure Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemappingStructure<'a> {
    /// Type 0, DMA Remapping Hardware Unit Definition (section 8.3).
    Drhd {
        /// Bit 0, INCLUDE_PCI_ALL: the unit covers every device of the segment not claimed
        /// by another unit.
        flags: u8,
        /// Size of the register set: 2^(bits 3:0) 4 KiB pages (0 on older firmware).
        size: u8,
        /// PCI segment number.
        segment: u16,
        /// Base address of the unit's remapping registers.
        register_base: u64,
        scopes: DeviceScopes<'a>,
    },
    /// Type 1, Reserved Memory Region Reporting (section 8.4).
    Rmrr {
        segment: u16,
        /// First byte of the region.
        base: u64,
        /// Last byte of the region (inclusive).
        limit: u64,
        scopes: DeviceScopes<'a>,
    },
    /// Type 2, Root Port ATS Capability Reporting (section 8.5).
    Atsr {
        /// Bit 0, ALL_PORTS.
        flags: u8,
        segment: u16,
        scopes: DeviceScopes<'a>,
    },
    /// Type 3, Remapping Hardware Static Affinity (section 8.6).
    Rhsa {
        register_base: u64,
        proximity_domain: u32,
    },
    /// Type 4, ACPI Name-space Device Declaration (section 8.7).
    Andd {
        /// The ACPI device number that device scopes of type 5 name.
        device_number: u8,
        /// The device's ACPI object name, without a trailing NUL.
        name: &'a [u8],
    },
    /// Any other type (SATC, SIDP, ... of later revisions), skipped by its length.
    Other { kind: u16, length: u16 },
}

impl<'a> RemappingStructure<'a> {
    fn decode(entry: Entry<'a>) -> Result<Self, ParseError> {
        let f = entry.fields;
        let minimum = match entry.kind {
            0 => 16,
            1 => 24,
            2 | 4 => 8,
            3 => 20,
            _ => 4,
        };
        entry.require(&STRUCTURE_LAYOUT, minimum)?;
        let scopes = |offset: usize| -> Result<DeviceScopes<'a>, ParseError> {
            Ok(DeviceScopes {
                bytes: f.rest(offset, "device scopes")?,
                base: f.base.saturating_add(offset),
            })
        };
        Ok(match entry.kind {
            0 => Self::Drhd {
                flags: f.u8(4, "DRHD flags")?,
                size: f.u8(5, "DRHD size")?,
                segment: f.u16(6, "segment number")?,
                register_base: f.u64(8, "register base address")?,
                scopes: scopes(16)?,
            },
            1 => Self::Rmrr {
                segment: f.u16(6, "segment number")?,
                base: f.u64(8, "region base address")?,
                limit: f.u64(16, "region limit address")?,
                scopes: scopes(24)?,
            },
            2 => Self::Atsr {
                flags: f.u8(4, "ATSR flags")?,
                segment: f.u16(6, "segment number")?,
                scopes: scopes(8)?,
            },
            3 => Self::Rhsa {
                register_base: f.u64(8, "register base address")?,
                proximity_domain: f.u32(16, "proximity domain")?,
            },
            4 => {
                let name = f.rest(8, "object name")?;
                Self::Andd {
                    device_number: f.u8(7, "ACPI device number")?,
                    name: name.split(|&byte| byte == 0).next().unwrap_or(name),
                }
            }
            kind => Self::Other {
                kind,
                length: u16::try_from(entry.len()).unwrap_or(u16::MAX),
            },
        })
    }

    /// The device scopes of a DRHD, RMRR or ATSR (none for the other types).
    pub fn scopes(&self) -> Option<DeviceScopes<'a>> {
        match *self {
            Self::Drhd { scopes, .. } | Self::Rmrr { scopes, .. } | Self::Atsr { scopes, .. } => {
                Some(scopes)
            }
            _ => None,
        }
    }
}

/// The device scopes at the end of a remapping structure (section 8.3.1). Iterating yields
/// them in order; a malformed one yields an error and ends the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceScopes<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes` in the table.
    base: usize,
}

impl<'a> DeviceScopes<'a> {
    /// An iterator over the scopes.
    pub fn iter(&self) -> DeviceScopeIter<'a> {
        DeviceScopeIter {
            entries: Entries::new(SCOPE_LAYOUT, self.bytes, self.base),
        }
    }
}

impl<'a> IntoIterator for DeviceScopes<'a> {
    type Item = Result<DeviceScope<'a>, ParseError>;
    type IntoIter = DeviceScopeIter<'a>;

    fn into_iter(self) -> DeviceScopeIter<'a> {
        self.iter()
    }
}

/// Iterator over [`DeviceScopes`].
#[derive(Debug, Clone)]
pub struct DeviceScopeIter<'a> {
    entries: Entries<'a>,
}

impl<'a> Iterator for DeviceScopeIter<'a> {
    type Item = Result<DeviceScope<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let scope = self.entries.next()?.and_then(DeviceScope::decode);
        if scope.is_err() {
            self.entries.stop();
        }
        Some(scope)
    }
}

/// Device scope entry types (section 8.3.1, table 8-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceScopeType {
    /// 1: a PCI endpoint device.
    PciEndpoint,
    /// 2: a PCI-PCI bridge and every device below it.
    PciSubHierarchy,
    /// 3: an I/O APIC; the enumeration ID is its I/O APIC ID.
    IoApic,
    /// 4: an MSI-capable HPET; the enumeration ID is its HPET number.
    MsiCapableHpet,
    /// 5: an ACPI name-space device; the enumeration ID is its ANDD device number.
    AcpiNamespaceDevice,
    /// Any other (reserved) value.
    Other(u8),
}

impl From<u8> for DeviceScopeType {
    fn from(kind: u8) -> Self {
        match kind {
            1 => Self::PciEndpoint,
            2 => Self::PciSubHierarchy,
            3 => Self::IoApic,
            4 => Self::MsiCapableHpet,
            5 => Self::AcpiNamespaceDevice,
            other => Self::Other(other),
        }
    }
}

impl From<DeviceScopeType> for u8 {
    fn from(kind: DeviceScopeType) -> u8 {
        match kind {
            DeviceScopeType::PciEndpoint => 1,
            DeviceScopeType::PciSubHierarchy => 2,
            DeviceScopeType::IoApic => 3,
            DeviceScopeType::MsiCapableHpet => 4,
            DeviceScopeType::AcpiNamespaceDevice => 5,
            DeviceScopeType::Other(other) => other,
        }
    }
}

/// One device scope (section 8.3.1, table 8-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceScope<'a> {
    /// Type (offset 0).
    pub kind: DeviceScopeType,
    /// Flags (offset 2; reserved before rev 3.x).
    pub flags: u8,
    /// Enumeration ID (offset 4): I/O APIC ID, HPET number or ANDD device number.
    pub enumeration_id: u8,
    /// Start bus number (offset 5): the bus of the first path element.
    pub start_bus: u8,
    /// Path (offset 6): (device, function) byte pairs from the start bus down.
    pub path: &'a [u8],
}

impl<'a> DeviceScope<'a> {
    fn decode(entry: Entry<'a>) -> Result<Self, ParseError> {
        let f = entry.fields;
        let path = f.rest(6, "device scope path")?;
        if path.len() % 2 != 0 {
            return Err(ParseError::EntryLength {
                table: TABLE,
                entry: SCOPE_LAYOUT.entry,
                offset: f.base,
                length: entry.len(),
                problem: LengthProblem::OddPath,
            });
        }
        Ok(Self {
            kind: DeviceScopeType::from(u8::try_from(entry.kind).unwrap_or(u8::MAX)),
            flags: f.u8(2, "device scope flags")?,
            enumeration_id: f.u8(4, "enumeration ID")?,
            start_bus: f.u8(5, "start bus number")?,
            path,
        })
    }

    /// The path's (device, function) pairs.
    pub fn path_entries(&self) -> impl Iterator<Item = (u8, u8)> + 'a {
        self.path.chunks_exact(2).filter_map(|pair| match *pair {
            [device, function] => Some((device, function)),
            _ => None,
        })
    }

    /// The PCI requester ID (bus << 8 | device << 3 | function) when the path has exactly
    /// one element, as for an HPET or I/O APIC on the root bus. Longer paths need the
    /// bridges' secondary bus numbers, which only PCI configuration space knows. `None` also
    /// when the device (> 31) or function (> 7) cannot be encoded.
    pub fn source_id(&self) -> Option<u16> {
        let mut path = self.path_entries();
        match (path.next(), path.next()) {
            (Some((device, function)), None) if device < 32 && function < 8 => Some(
                (u16::from(self.start_bus) << 8) | (u16::from(device) << 3) | u16::from(function),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::tests::{fix_checksum, set_length, table};
    use std::vec::Vec;

    fn structure(kind: u16, fixed: &[u8], scopes: &[&[u8]]) -> Vec<u8> {
        let len = 4 + fixed.len() + scopes.iter().map(|s| s.len()).sum::<usize>();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(&(len as u16).to_le_bytes());
        bytes.extend_from_slice(fixed);
        for scope in scopes {
            bytes.extend_from_slice(scope);
        }
        bytes
    }

    fn scope(kind: u8, id: u8, bus: u8, path: &[u8]) -> Vec<u8> {
        let mut bytes = std::vec![kind, 6 + path.len() as u8, 0, 0, id, bus];
        bytes.extend_from_slice(path);
        bytes
    }

    fn dmar(width: u8, flags: u8, structures: &[Vec<u8>]) -> Vec<u8> {
        let mut body = std::vec![width, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for structure in structures {
            body.extend_from_slice(structure);
        }
        table(b"DMAR", 1, &body)
    }

    fn drhd_fixed(flags: u8, base: u64) -> Vec<u8> {
        let mut fixed = std::vec![flags, 0, 0, 0];
        fixed.extend_from_slice(&base.to_le_bytes());
        fixed
    }

    /// A DMAR like a client Intel platform's: graphics unit, catch-all unit with an I/O APIC
    /// and an HPET scope, an RMRR, an ATSR, an RHSA, an ANDD and a SATC.
    fn sample() -> Vec<u8> {
        let gfx = structure(0, &drhd_fixed(0, 0xfed9_0000), &[&scope(1, 0, 0, &[2, 0])]);
        let all = structure(
            0,
            &drhd_fixed(1, 0xfed9_1000),
            &[&scope(3, 2, 0xf0, &[0x1f, 0]), &scope(4, 0, 0, &[0x1e, 6])],
        );
        let mut rmrr_fixed = std::vec![0, 0, 0, 0];
        rmrr_fixed.extend_from_slice(&0x7c00_0000u64.to_le_bytes());
        rmrr_fixed.extend_from_slice(&0x7fff_ffffu64.to_le_bytes());
        let rmrr = structure(1, &rmrr_fixed, &[&scope(1, 0, 0, &[0x14, 0])]);
        let atsr = structure(2, &[1, 0, 0, 0], &[&scope(2, 0, 0, &[0x1c, 0, 0, 0])]);
        let mut rhsa_fixed = std::vec![0, 0, 0, 0];
        rhsa_fixed.extend_from_slice(&0xfed9_1000u64.to_le_bytes());
        rhsa_fixed.extend_from_slice(&1u32.to_le_bytes());
        let rhsa = structure(3, &rhsa_fixed, &[]);
        let andd = structure(4, b"\0\0\0\x01\\_SB.PCI0.I2C0\0", &[]);
        let satc = structure(5, &[0; 4], &[]);
        dmar(38, 0b101, &[gfx, all, rmrr, atsr, rhsa, andd, satc])
    }

    #[test]
    fn header_fields() {
        let bytes = sample();
        let dmar = Dmar::parse(&bytes).unwrap();
        assert_eq!(dmar.host_address_width, 39);
        assert_eq!(
            dmar.flags,
            DmarFlags {
                intr_remap: true,
                x2apic_opt_out: false,
                dma_ctrl_platform_opt_in: true
            }
        );
        let other = dmar_with_flags(0b010);
        let flags = Dmar::parse(&other).unwrap().flags;
        assert!(!flags.intr_remap && flags.x2apic_opt_out && !flags.dma_ctrl_platform_opt_in);
    }

    fn dmar_with_flags(flags: u8) -> Vec<u8> {
        dmar(45, flags, &[])
    }

    #[test]
    fn every_structure_type() {
        let bytes = sample();
        let dmar = Dmar::parse(&bytes).unwrap();
        let structures: Vec<_> = dmar.structures().map(Result::unwrap).collect();
        assert_eq!(structures.len(), 7);
        assert!(matches!(
            structures[0],
            RemappingStructure::Drhd {
                flags: 0,
                size: 0,
                segment: 0,
                register_base: 0xfed9_0000,
                ..
            }
        ));
        assert!(matches!(
            structures[1],
            RemappingStructure::Drhd {
                flags: 1,
                register_base: 0xfed9_1000,
                ..
            }
        ));
        assert!(matches!(
            structures[2],
            RemappingStructure::Rmrr {
                segment: 0,
                base: 0x7c00_0000,
                limit: 0x7fff_ffff,
                ..
            }
        ));
        assert!(matches!(
            structures[3],
            RemappingStructure::Atsr {
                flags: 1,
                segment: 0,
                ..
            }
        ));
        assert_eq!(
            structures[4],
            RemappingStructure::Rhsa {
                register_base: 0xfed9_1000,
                proximity_domain: 1
            }
        );
        assert_eq!(
            structures[5],
            RemappingStructure::Andd {
                device_number: 1,
                name: b"\\_SB.PCI0.I2C0"
            }
        );
        assert_eq!(
            structures[6],
            RemappingStructure::Other { kind: 5, length: 8 }
        );
        assert!(structures[4].scopes().is_none());
    }

    #[test]
    fn device_scopes() {
        let bytes = sample();
        let dmar = Dmar::parse(&bytes).unwrap();
        let all = dmar.structures().nth(1).unwrap().unwrap();
        let scopes: Vec<_> = all
            .scopes()
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            scopes,
            [
                DeviceScope {
                    kind: DeviceScopeType::IoApic,
                    flags: 0,
                    enumeration_id: 2,
                    start_bus: 0xf0,
                    path: &[0x1f, 0],
                },
                DeviceScope {
                    kind: DeviceScopeType::MsiCapableHpet,
                    flags: 0,
                    enumeration_id: 0,
                    start_bus: 0,
                    path: &[0x1e, 6],
                },
            ]
        );
        assert_eq!(scopes[0].source_id(), Some(0xf0f8));
        assert_eq!(scopes[1].source_id(), Some(0x00f6));
        assert_eq!(scopes[1].path_entries().collect::<Vec<_>>(), [(0x1e, 6)]);
        let atsr = dmar.structures().nth(3).unwrap().unwrap();
        let bridge = atsr.scopes().unwrap().iter().next().unwrap().unwrap();
        assert_eq!(bridge.kind, DeviceScopeType::PciSubHierarchy);
        assert_eq!(
            bridge.path_entries().collect::<Vec<_>>(),
            [(0x1c, 0), (0, 0)]
        );
        assert_eq!(
            bridge.source_id(),
            None,
            "two-element paths need config space"
        );
    }

    #[test]
    fn source_id_refuses_unencodable_paths() {
        let scope = DeviceScope {
            kind: DeviceScopeType::MsiCapableHpet,
            flags: 0,
            enumeration_id: 0,
            start_bus: 0,
            path: &[32, 0],
        };
        assert_eq!(scope.source_id(), None);
        assert_eq!(
            DeviceScope {
                path: &[31, 8],
                ..scope
            }
            .source_id(),
            None
        );
        assert_eq!(
            DeviceScope {
                path: &[31, 7],
                ..scope
            }
            .source_id(),
            Some(0xff)
        );
        assert_eq!(DeviceScope { path: &[], ..scope }.source_id(), None);
    }

    #[test]
    fn scope_types_round_trip() {
        for byte in 0..=255u8 {
            assert_eq!(u8::from(DeviceScopeType::from(byte)), byte);
        }
        assert_eq!(DeviceScopeType::from(4), DeviceScopeType::MsiCapableHpet);
        assert_eq!(DeviceScopeType::from(9), DeviceScopeType::Other(9));
    }

    #[test]
    fn malformed_scopes() {
        let cases: [(&[u8], LengthProblem); 3] = [
            (
                &[4, 0, 0, 0, 0, 0, 0x1e, 6],
                LengthProblem::ShorterThanHeader { header: 6 },
            ),
            (
                &[4, 10, 0, 0, 0, 0, 0x1e, 6],
                LengthProblem::PastEnd { remaining: 8 },
            ),
            (&[4, 7, 0, 0, 0, 0, 0x1e, 6], LengthProblem::OddPath),
        ];
        for (raw, problem) in cases {
            let bytes = dmar(38, 1, &[structure(0, &drhd_fixed(1, 0xfed9_1000), &[raw])]);
            let dmar = Dmar::parse(&bytes).unwrap();
            let drhd = dmar.structures().next().unwrap().unwrap();
            let results: Vec<_> = drhd.scopes().unwrap().iter().collect();
            assert_eq!(results.len(), 1, "{problem:?}: the walk stops at the error");
            match results[0] {
                Err(ParseError::EntryLength {
                    offset: 0x40,
                    problem: found,
                    ..
                }) => {
                    assert_eq!(found, problem)
                }
                ref other => panic!("{problem:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_structures() {
        let zero = dmar(38, 1, &[std::vec![0, 0, 0, 0]]);
        let error = Dmar::parse(&zero)
            .unwrap()
            .structures()
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            std::format!("{error}"),
            "DMAR remapping structure at offset 0x30: length 0 is shorter than the 4-byte remapping structure header"
        );
        let past = dmar(38, 1, &[std::vec![0, 0, 0x20, 0, 1, 0, 0, 0]]);
        let results: Vec<_> = Dmar::parse(&past).unwrap().structures().collect();
        assert!(matches!(
            results[..],
            [Err(ParseError::EntryLength {
                length: 32,
                problem: LengthProblem::PastEnd { remaining: 8 },
                ..
            })]
        ));
        let short_drhd = dmar(
            38,
            1,
            &[
                structure(0, &[1, 0, 0, 0], &[]),
                structure(3, &[0; 16], &[]),
            ],
        );
        let results: Vec<_> = Dmar::parse(&short_drhd).unwrap().structures().collect();
        assert!(matches!(
            results[..],
            [Err(ParseError::EntryLength {
                problem: LengthProblem::ShorterThanType {
                    kind: 0,
                    minimum: 16
                },
                ..
            })]
        ));
        let three_bytes = dmar(38, 1, &[std::vec![0, 0, 0x10]]);
        let results: Vec<_> = Dmar::parse(&three_bytes).unwrap().structures().collect();
        assert!(matches!(
            results[..],
            [Err(ParseError::Truncated {
                offset: 0x30,
                needed: 4,
                available: 3,
                ..
            })]
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(Dmar::parse(&bytes[..len]).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn every_length_field_walks_without_panic() {
        // Shrinking the table's length field cuts the last structures: the walk yields
        // what fits, then at most one error.
        let full = sample();
        for length in 48..full.len() as u32 {
            let mut bytes = full.clone();
            set_length(&mut bytes, length);
            let dmar = Dmar::parse(&bytes).unwrap();
            let results: Vec<_> = dmar.structures().collect();
            assert!(results.iter().filter(|r| r.is_err()).count() <= 1);
            assert!(results.iter().take_while(|r| r.is_ok()).count() + 1 >= results.len());
            for structure in results.into_iter().flatten() {
                if let Some(scopes) = structure.scopes() {
                    scopes.iter().for_each(drop);
                }
            }
        }
    }

    #[test]
    fn wrong_signature_and_short_table() {
        let mut bytes = sample();
        bytes[0..4].copy_from_slice(b"IVRS");
        fix_checksum(&mut bytes);
        assert!(matches!(
            Dmar::parse(&bytes),
            Err(ParseError::WrongSignature { table: "DMAR", .. })
        ));
        let mut bytes = sample();
        set_length(&mut bytes, 47);
        assert!(matches!(
            Dmar::parse(&bytes),
            Err(ParseError::TableLength { minimum: 48, .. })
        ));
    }

    #[test]
    fn host_address_width_saturates() {
        let bytes = dmar(255, 0, &[]);
        assert_eq!(Dmar::parse(&bytes).unwrap().host_address_width, 255);
    }
}
