//! The System Description Table header every ACPI table starts with (ACPI 6.5 section
//! 5.2.6), and a whole table bounded by its length field.

use crate::error::{ParseError, Signature};
use crate::read::{checksum, Fields};

/// Size of the SDT header (ACPI 6.5 table 5.4).
pub const HEADER_LEN: usize = 36;

/// The SDT header (ACPI 6.5 section 5.2.6, table 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdtHeader {
    /// Signature (offset 0), e.g. `APIC`, `HPET`, `DMAR`.
    pub signature: [u8; 4],
    /// Length of the whole table in bytes, header included (offset 4).
    pub length: u32,
    /// Revision of the table's structure (offset 8).
    pub revision: u8,
    /// Checksum byte (offset 9): the whole table must sum to zero.
    pub checksum: u8,
    /// OEM ID (offset 10).
    pub oem_id: [u8; 6],
    /// OEM table ID (offset 16).
    pub oem_table_id: [u8; 8],
    /// OEM revision (offset 24).
    pub oem_revision: u32,
    /// Vendor ID of the tool that created the table (offset 28).
    pub creator_id: u32,
    /// Revision of that tool (offset 32).
    pub creator_revision: u32,
}

impl SdtHeader {
    /// Reads the header from the first 36 bytes (more may follow; the length field is not
    /// checked here, see [`Table::new`]).
    pub fn parse(bytes: &[u8]) -> Result<SdtHeader, ParseError> {
        Self::parse_named(bytes, "SDT")
    }

    /// [`SdtHeader::parse`], naming the table `name` in errors.
    fn parse_named(bytes: &[u8], name: &'static str) -> Result<SdtHeader, ParseError> {
        let fields = Fields::new(name, bytes);
        fields.slice(0, HEADER_LEN, "table header")?;
        Ok(SdtHeader {
            signature: fields.bytes(0, "signature")?,
            length: fields.u32(4, "length")?,
            revision: fields.u8(8, "revision")?,
            checksum: fields.u8(9, "checksum")?,
            oem_id: fields.bytes(10, "OEM ID")?,
            oem_table_id: fields.bytes(16, "OEM table ID")?,
            oem_revision: fields.u32(24, "OEM revision")?,
            creator_id: fields.u32(28, "creator ID")?,
            creator_revision: fields.u32(32, "creator revision")?,
        })
    }
}

/// A whole table: its length field is at least the header and at most the bytes given, and
/// [`Table::bytes`] is exactly `length` bytes. The checksum is not enforced (firmware ships
/// wrong ones and Linux uses such tables anyway); see [`Table::checksum_valid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table<'a> {
    header: SdtHeader,
    bytes: &'a [u8],
}

impl<'a> Table<'a> {
    /// A table at the start of `bytes` (which may run on past the table's end).
    pub fn new(bytes: &'a [u8]) -> Result<Self, ParseError> {
        Self::with_minimum(bytes, HEADER_LEN)
    }

    /// A table whose length must be at least `minimum` (its header and fixed fields).
    fn with_minimum(bytes: &'a [u8], minimum: usize) -> Result<Self, ParseError> {
        let header = SdtHeader::parse(bytes)?;
        let length = usize::try_from(header.length).unwrap_or(usize::MAX);
        let table = (length >= minimum).then(|| bytes.get(..length)).flatten();
        let Some(table) = table else {
            return Err(ParseError::TableLength {
                signature: Signature::new(&header.signature),
                length: u64::from(header.length),
                minimum,
                available: bytes.len(),
            });
        };
        Ok(Self {
            header,
            bytes: table,
        })
    }

    /// A table that must carry `signature` and at least `minimum` bytes; `name` is what
    /// error messages call it.
    pub(crate) fn expect(
        bytes: &'a [u8],
        signature: &'static [u8; 4],
        name: &'static str,
        expected: &'static str,
        minimum: usize,
    ) -> Result<Self, ParseError> {
        let header = SdtHeader::parse_named(bytes, name)?;
        if &header.signature != signature {
            return Err(ParseError::WrongSignature {
                table: name,
                expected,
                found: Signature::new(&header.signature),
            });
        }
        Self::with_minimum(bytes, minimum)
    }

    /// The parsed header.
    pub fn header(&self) -> &SdtHeader {
        &self.header
    }

    /// The whole table, header included: exactly `header().length` bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Everything after the 36-byte header.
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// Whether the table's bytes sum to zero (ACPI 6.5 section 5.2.6, "Checksum").
    pub fn checksum_valid(&self) -> bool {
        checksum(self.bytes) == 0
    }

    /// Reads the table's fields for a parser, naming the table `name` in errors.
    pub(crate) fn fields(&self, name: &'static str) -> Fields<'a> {
        Fields::new(name, self.bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    /// A table with a correct header (length and checksum filled in) around `body`.
    pub(crate) fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(signature);
        bytes.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
        bytes.push(revision);
        bytes.push(0);
        bytes.extend_from_slice(b"HPETWD");
        bytes.extend_from_slice(b"TESTTABL");
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(b"HWDT");
        bytes.extend_from_slice(&0x2026_0101u32.to_le_bytes());
        bytes.extend_from_slice(body);
        fix_checksum(&mut bytes);
        bytes
    }

    /// Sets the checksum byte so the table sums to zero.
    pub(crate) fn fix_checksum(bytes: &mut [u8]) {
        bytes[9] = 0;
        bytes[9] = 0u8.wrapping_sub(checksum(bytes));
    }

    /// Overwrites the length field (and fixes the checksum).
    pub(crate) fn set_length(bytes: &mut [u8], length: u32) {
        bytes[4..8].copy_from_slice(&length.to_le_bytes());
        fix_checksum(bytes);
    }

    #[test]
    fn header_fields() {
        let bytes = table(b"TEST", 3, &[1, 2, 3]);
        let header = SdtHeader::parse(&bytes).unwrap();
        assert_eq!(header.signature, *b"TEST");
        assert_eq!(header.length, 39);
        assert_eq!(header.revision, 3);
        assert_eq!(header.oem_id, *b"HPETWD");
        assert_eq!(header.oem_table_id, *b"TESTTABL");
        assert_eq!(header.oem_revision, 7);
        assert_eq!(header.creator_id, u32::from_le_bytes(*b"HWDT"));
        assert_eq!(header.creator_revision, 0x2026_0101);
        assert_eq!(header.checksum, bytes[9]);
    }

    #[test]
    fn table_is_bounded_by_its_length() {
        let mut bytes = table(b"TEST", 1, &[1, 2, 3]);
        bytes.extend_from_slice(&[0xaa; 5]); // what follows the table in memory
        let table = Table::new(&bytes).unwrap();
        assert_eq!(table.bytes().len(), 39);
        assert_eq!(table.body(), &[1, 2, 3]);
        assert!(table.checksum_valid());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = table(b"TEST", 1, &[1, 2, 3, 4]);
        for len in 0..bytes.len() {
            assert!(Table::new(&bytes[..len]).is_err(), "{len} bytes");
        }
        for len in 0..HEADER_LEN {
            assert!(SdtHeader::parse(&bytes[..len]).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn length_shorter_than_header() {
        let mut bytes = table(b"TEST", 1, &[]);
        set_length(&mut bytes, 35);
        let error = Table::new(&bytes).unwrap_err();
        assert_eq!(
            std::format!("{error}"),
            "\"TEST\" table: length field 35 is shorter than the 36 bytes this table needs"
        );
        set_length(&mut bytes, u32::MAX);
        assert!(matches!(
            Table::new(&bytes),
            Err(ParseError::TableLength { .. })
        ));
    }

    #[test]
    fn bad_checksum_is_reported_not_refused() {
        let mut bytes = table(b"TEST", 1, &[1, 2, 3]);
        bytes[37] ^= 0x10;
        let table = Table::new(&bytes).unwrap();
        assert!(!table.checksum_valid());
    }
}
