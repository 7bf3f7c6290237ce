//! The Root System Description Pointer (ACPI 6.5 section 5.2.5.3) and the BIOS-area scan
//! that finds it (section 5.2.5.1).

use crate::error::{ParseError, Signature};
use crate::read::{checksum, Fields};

const TABLE: &str = "RSDP";
const SIGNATURE: &[u8; 8] = b"RSD PTR ";

/// The RSDP (ACPI 6.5 section 5.2.5.3, table 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// Revision (offset 15): 0 for ACPI 1.0 (20-byte structure), 2 for ACPI 2.0 and later.
    pub revision: u8,
    /// OEM ID (offset 9).
    pub oem_id: [u8; 6],
    /// 32-bit physical address of the RSDT (offset 16).
    pub rsdt_address: u32,
    /// 64-bit physical address of the XSDT (offset 24): present only for revision 2 or later
    /// and when nonzero.
    pub xsdt_address: Option<u64>,
    /// Length of the structure (offset 20; revision 2 or later), or 20 for revision 0 and 1.
    pub length: u32,
}

impl Rsdp {
    /// Size of the ACPI 1.0 structure, which the first checksum covers.
    pub const LEN_V1: usize = 20;
    /// Size of the ACPI 2.0+ structure.
    pub const LEN_V2: usize = 36;

    /// Parses an RSDP: signature "RSD PTR ", checksum over the first 20 bytes; for revision 2
    /// or later, a length field in 36..=`bytes.len()` and the extended checksum over that many
    /// bytes.
    pub fn parse(bytes: &[u8]) -> Result<Rsdp, ParseError> {
        let fields = Fields::new(TABLE, bytes);
        let signature = fields.slice(0, SIGNATURE.len(), "signature")?;
        if signature != SIGNATURE {
            return Err(ParseError::WrongSignature {
                table: TABLE,
                expected: "\"RSD PTR \"",
                found: Signature::new(signature),
            });
        }
        let v1 = fields.slice(0, Self::LEN_V1, "ACPI 1.0 structure")?;
        let sum = checksum(v1);
        if sum != 0 {
            return Err(ParseError::BadChecksum {
                table: TABLE,
                covered: Self::LEN_V1,
                sum,
            });
        }
        let revision = fields.u8(15, "revision")?;
        let oem_id = fields.bytes(9, "OEM ID")?;
        let rsdt_address = fields.u32(16, "RSDT address")?;
        if revision < 2 {
            return Ok(Rsdp {
                revision,
                oem_id,
                rsdt_address,
                xsdt_address: None,
                length: Self::LEN_V1 as u32,
            });
        }
        let length = fields.u32(20, "length")?;
        let table_length = usize::try_from(length).unwrap_or(usize::MAX);
        if !(Self::LEN_V2..=bytes.len()).contains(&table_length) {
            return Err(ParseError::TableLength {
                signature: Signature::new(SIGNATURE),
                length: u64::from(length),
                minimum: Self::LEN_V2,
                available: bytes.len(),
            });
        }
        let sum = checksum(fields.slice(0, table_length, "extended structure")?);
        if sum != 0 {
            return Err(ParseError::BadChecksum {
                table: TABLE,
                covered: table_length,
                sum,
            });
        }
        let xsdt = fields.u64(24, "XSDT address")?;
        Ok(Rsdp {
            revision,
            oem_id,
            rsdt_address,
            xsdt_address: (xsdt != 0).then_some(xsdt),
            length,
        })
    }
}

/// Offset of the first valid RSDP on a 16-byte boundary in `area` (the BIOS-area scan of
/// ACPI 6.5 section 5.2.5.1: the first KiB of the EBDA, then 0xE0000..=0xFFFFF).
pub fn scan(area: &[u8]) -> Option<usize> {
    (0..area.len()).step_by(16).find(|&offset| {
        area.get(offset..)
            .is_some_and(|candidate| Rsdp::parse(candidate).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// An RSDP of the given revision with both checksums right.
    pub(crate) fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RSD PTR ");
        bytes.push(0);
        bytes.extend_from_slice(b"HPETWD");
        bytes.push(revision);
        bytes.extend_from_slice(&rsdt.to_le_bytes());
        if revision >= 2 {
            bytes.extend_from_slice(&36u32.to_le_bytes());
            bytes.extend_from_slice(&xsdt.to_le_bytes());
            bytes.extend_from_slice(&[0, 0, 0, 0]);
        }
        bytes[8] = 0u8.wrapping_sub(checksum(&bytes[..20]));
        if revision >= 2 {
            bytes[32] = 0u8.wrapping_sub(checksum(&bytes));
        }
        bytes
    }

    #[test]
    fn parses_revision_0() {
        let bytes = rsdp(0, 0x7fe1_4000, 0);
        let parsed = Rsdp::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            Rsdp {
                revision: 0,
                oem_id: *b"HPETWD",
                rsdt_address: 0x7fe1_4000,
                xsdt_address: None,
                length: 20,
            }
        );
    }

    #[test]
    fn parses_revision_2() {
        let bytes = rsdp(2, 0x7fe1_4000, 0x1_2345_6000);
        let parsed = Rsdp::parse(&bytes).unwrap();
        assert_eq!(parsed.revision, 2);
        assert_eq!(parsed.length, 36);
        assert_eq!(parsed.rsdt_address, 0x7fe1_4000);
        assert_eq!(parsed.xsdt_address, Some(0x1_2345_6000));
    }

    #[test]
    fn zero_xsdt_address_is_none() {
        let bytes = rsdp(2, 0x7fe1_4000, 0);
        assert_eq!(Rsdp::parse(&bytes).unwrap().xsdt_address, None);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for revision in [0, 2] {
            let bytes = rsdp(revision, 0x1000, 0x2000);
            for len in 0..bytes.len() {
                assert!(
                    Rsdp::parse(&bytes[..len]).is_err(),
                    "revision {revision}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn wrong_signature() {
        let mut bytes = rsdp(0, 0x1000, 0);
        bytes[3] = b'X';
        let error = Rsdp::parse(&bytes).unwrap_err();
        assert!(matches!(
            error,
            ParseError::WrongSignature { table: "RSDP", .. }
        ));
        assert_eq!(
            std::format!("{error}"),
            "RSDP: signature is \"RSDXPTR \", expected \"RSD PTR \""
        );
    }

    #[test]
    fn bad_checksums() {
        let mut bytes = rsdp(2, 0x1000, 0x2000);
        bytes[16] ^= 1;
        assert!(matches!(
            Rsdp::parse(&bytes),
            Err(ParseError::BadChecksum { covered: 20, .. })
        ));
        let mut bytes = rsdp(2, 0x1000, 0x2000);
        bytes[24] ^= 1;
        assert!(matches!(
            Rsdp::parse(&bytes),
            Err(ParseError::BadChecksum { covered: 36, .. })
        ));
    }

    #[test]
    fn length_field_out_of_range() {
        for length in [0u32, 35, 37, u32::MAX] {
            let mut bytes = rsdp(2, 0x1000, 0x2000);
            bytes[20..24].copy_from_slice(&length.to_le_bytes());
            bytes[8] = 0;
            bytes[8] = 0u8.wrapping_sub(checksum(&bytes[..20]));
            assert!(
                matches!(Rsdp::parse(&bytes), Err(ParseError::TableLength { .. })),
                "length {length}"
            );
        }
    }

    #[test]
    fn scan_finds_aligned_rsdp_only() {
        let mut area = std::vec![0u8; 256];
        let bytes = rsdp(2, 0x1000, 0x2000);
        // Misaligned copy first: must be skipped.
        area[0x28..0x28 + 36].copy_from_slice(&bytes);
        assert_eq!(scan(&area), None);
        area[0x90..0x90 + 36].copy_from_slice(&bytes);
        assert_eq!(scan(&area), Some(0x90));
        // A revision-2 RSDP cut off by the end of the area does not count.
        let mut tail = std::vec![0u8; 0x30];
        tail[0x20..].copy_from_slice(&bytes[..16]);
        assert_eq!(scan(&tail), None);
        assert_eq!(scan(&[]), None);
    }
}
