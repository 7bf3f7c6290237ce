//! The root tables that list every other table's physical address: the RSDT (ACPI 6.5
//! section 5.2.7, 32-bit entries) and the XSDT (section 5.2.8, 64-bit entries).

use crate::error::ParseError;
use crate::read::le_u64;
use crate::sdt::{SdtHeader, Table, HEADER_LEN};

/// An RSDT or XSDT. Trailing bytes that do not fill a whole entry are ignored, as ACPICA
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootTable<'a> {
    table: Table<'a>,
    xsdt: bool,
}

impl<'a> RootTable<'a> {
    /// Parses a table with signature "RSDT" or "XSDT".
    pub fn parse(table: &'a [u8]) -> Result<Self, ParseError> {
        let xsdt = SdtHeader::parse(table).is_ok_and(|header| &header.signature == b"XSDT");
        let (signature, name) = if xsdt {
            (b"XSDT", "XSDT")
        } else {
            (b"RSDT", "RSDT")
        };
        let table = Table::expect(table, signature, name, "\"RSDT\" or \"XSDT\"", HEADER_LEN)?;
        Ok(Self { table, xsdt })
    }

    /// The underlying table.
    pub fn table(&self) -> &Table<'a> {
        &self.table
    }

    /// Whether this is the XSDT (64-bit entries) rather than the RSDT (32-bit entries).
    pub fn is_xsdt(&self) -> bool {
        self.xsdt
    }

    fn entry_size(&self) -> usize {
        if self.xsdt {
            8
        } else {
            4
        }
    }

    /// The physical addresses of the other tables, in order (zero entries included).
    pub fn entries(&self) -> impl Iterator<Item = u64> + 'a {
        self.table
            .body()
            .chunks_exact(self.entry_size())
            .map(le_u64)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table
            .body()
            .len()
            .checked_div(self.entry_size())
            .unwrap_or(0)
    }

    /// Whether the table lists no other table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::tests::{fix_checksum, table};
    use std::vec::Vec;

    fn xsdt(addresses: &[u64]) -> Vec<u8> {
        let body: Vec<u8> = addresses.iter().flat_map(|a| a.to_le_bytes()).collect();
        table(b"XSDT", 1, &body)
    }

    fn rsdt(addresses: &[u32]) -> Vec<u8> {
        let body: Vec<u8> = addresses.iter().flat_map(|a| a.to_le_bytes()).collect();
        table(b"RSDT", 1, &body)
    }

    #[test]
    fn xsdt_entries() {
        let bytes = xsdt(&[0x7fe1_5000, 0x1_0000_2000, 0]);
        let root = RootTable::parse(&bytes).unwrap();
        assert!(root.is_xsdt());
        assert_eq!(root.len(), 3);
        assert_eq!(
            root.entries().collect::<Vec<_>>(),
            [0x7fe1_5000, 0x1_0000_2000, 0]
        );
    }

    #[test]
    fn rsdt_entries() {
        let bytes = rsdt(&[0x7fe1_5000, 0xfffe_0000]);
        let root = RootTable::parse(&bytes).unwrap();
        assert!(!root.is_xsdt());
        assert_eq!(root.len(), 2);
        assert_eq!(
            root.entries().collect::<Vec<_>>(),
            [0x7fe1_5000, 0xfffe_0000]
        );
    }

    #[test]
    fn trailing_partial_entry_is_ignored() {
        let mut body = 0x1234_5678u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[1, 2, 3]);
        let bytes = table(b"RSDT", 1, &body);
        let root = RootTable::parse(&bytes).unwrap();
        assert_eq!(root.entries().collect::<Vec<_>>(), [0x1234_5678]);
        assert_eq!(root.len(), 1);
    }

    #[test]
    fn empty_root_table() {
        let bytes = xsdt(&[]);
        let root = RootTable::parse(&bytes).unwrap();
        assert!(root.is_empty());
        assert_eq!(root.entries().count(), 0);
    }

    #[test]
    fn wrong_signature() {
        let mut bytes = xsdt(&[1]);
        bytes[0..4].copy_from_slice(b"FACP");
        fix_checksum(&mut bytes);
        let error = RootTable::parse(&bytes).unwrap_err();
        assert_eq!(
            std::format!("{error}"),
            "RSDT: signature is \"FACP\", expected \"RSDT\" or \"XSDT\""
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = xsdt(&[0x1000, 0x2000]);
        for len in 0..bytes.len() {
            assert!(RootTable::parse(&bytes[..len]).is_err(), "{len} bytes");
        }
    }
}
