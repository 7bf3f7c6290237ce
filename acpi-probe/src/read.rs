//! Bounds-checked little-endian field reads, and the walk over the length-prefixed entries
//! that MADT and DMAR are made of.

use crate::error::{LengthProblem, ParseError};

/// The 8-bit sum of `bytes`; a table whose bytes sum to 0 has a valid checksum.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |sum, byte| sum.wrapping_add(*byte))
}

/// The little-endian value of the first 8 (or fewer) bytes.
pub(crate) fn le_u64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .rev()
        .fold(0, |value, byte| (value << 8) | u64::from(*byte))
}

/// A structure's bytes and where it starts in its table, for reading fields and naming them
/// in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub table: &'static str,
    pub bytes: &'a [u8],
    /// Offset of `bytes` from the start of the table (for error messages only).
    pub base: usize,
}

impl<'a> Fields<'a> {
    pub fn new(table: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            table,
            bytes,
            base: 0,
        }
    }

    /// `len` bytes at `offset`.
    pub fn slice(
        &self,
        offset: usize,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ParseError> {
        self.bytes
            .get(offset..)
            .and_then(|rest| rest.get(..len))
            .ok_or(ParseError::Truncated {
                table: self.table,
                field,
                offset: self.base.saturating_add(offset),
                needed: len,
                available: self.bytes.len().saturating_sub(offset),
            })
    }

    /// The bytes from `offset` to the end (empty when `offset` is the end).
    pub fn rest(&self, offset: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        self.slice(offset, self.bytes.len().saturating_sub(offset), field)
    }

    fn array<const N: usize>(
        &self,
        offset: usize,
        field: &'static str,
    ) -> Result<[u8; N], ParseError> {
        let bytes = self.slice(offset, N, field)?;
        let mut array = [0; N];
        for (slot, byte) in array.iter_mut().zip(bytes) {
            *slot = *byte;
        }
        Ok(array)
    }

    pub fn u8(&self, offset: usize, field: &'static str) -> Result<u8, ParseError> {
        self.array(offset, field).map(u8::from_le_bytes)
    }

    pub fn u16(&self, offset: usize, field: &'static str) -> Result<u16, ParseError> {
        self.array(offset, field).map(u16::from_le_bytes)
    }

    pub fn u32(&self, offset: usize, field: &'static str) -> Result<u32, ParseError> {
        self.array(offset, field).map(u32::from_le_bytes)
    }

    pub fn u64(&self, offset: usize, field: &'static str) -> Result<u64, ParseError> {
        self.array(offset, field).map(u64::from_le_bytes)
    }

    pub fn bytes<const N: usize>(
        &self,
        offset: usize,
        field: &'static str,
    ) -> Result<[u8; N], ParseError> {
        self.array(offset, field)
    }
}

/// How the entries of one kind of table are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryLayout {
    pub table: &'static str,
    /// What an entry is called in messages ("entry", "remapping structure", "device scope").
    pub entry: &'static str,
    pub header_field: &'static str,
    /// Type and length are 16-bit (DMAR remapping structures) rather than 8-bit.
    pub wide: bool,
    /// The smallest length any entry may have: its header.
    pub header_len: usize,
}

/// One entry: its type, its bytes (exactly its length) and its offset in the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub kind: u16,
    pub fields: Fields<'a>,
}

impl Entry<'_> {
    pub fn len(&self) -> usize {
        self.fields.bytes.len()
    }

    /// An error unless the entry holds at least the `minimum` bytes its type needs.
    pub fn require(&self, layout: &EntryLayout, minimum: usize) -> Result<(), ParseError> {
        if self.len() >= minimum {
            return Ok(());
        }
        Err(ParseError::EntryLength {
            table: layout.table,
            entry: layout.entry,
            offset: self.fields.base,
            length: self.len(),
            problem: LengthProblem::ShorterThanType {
                kind: self.kind,
                minimum,
            },
        })
    }
}

/// Walks length-prefixed entries; stops for good after the first malformed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entries<'a> {
    layout: EntryLayout,
    /// The bytes the entries fill.
    bytes: &'a [u8],
    /// Offset of `bytes` in the table.
    base: usize,
    /// Next entry's offset in `bytes`.
    next: usize,
    failed: bool,
}

impl<'a> Entries<'a> {
    pub fn new(layout: EntryLayout, bytes: &'a [u8], base: usize) -> Self {
        Self {
            layout,
            bytes,
            base,
            next: 0,
            failed: false,
        }
    }

    /// Ends the walk (after an entry its table's parser refused).
    pub fn stop(&mut self) {
        self.failed = true;
    }

    fn entry(&self) -> Result<Entry<'a>, ParseError> {
        let layout = &self.layout;
        let rest = self.bytes.get(self.next..).unwrap_or_default();
        let offset = self.base.saturating_add(self.next);
        let fields = Fields {
            table: layout.table,
            bytes: rest,
            base: offset,
        };
        fields.slice(0, if layout.wide { 4 } else { 2 }, layout.header_field)?;
        let (kind, length) = if layout.wide {
            (
                fields.u16(0, layout.header_field)?,
                usize::from(fields.u16(2, layout.header_field)?),
            )
        } else {
            (
                u16::from(fields.u8(0, layout.header_field)?),
                usize::from(fields.u8(1, layout.header_field)?),
            )
        };
        let problem = if length < layout.header_len {
            Some(LengthProblem::ShorterThanHeader {
                header: layout.header_len,
            })
        } else if length > rest.len() {
            Some(LengthProblem::PastEnd {
                remaining: rest.len(),
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ParseError::EntryLength {
                table: layout.table,
                entry: layout.entry,
                offset,
                length,
                problem,
            });
        }
        let bytes = rest.get(..length).unwrap_or_default();
        Ok(Entry {
            kind,
            fields: Fields {
                table: layout.table,
                bytes,
                base: offset,
            },
        })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.bytes.len() {
            return None;
        }
        let entry = self.entry();
        match &entry {
            // A length of at least the header (checked) always moves the walk forward.
            Ok(entry) => self.next = self.next.saturating_add(entry.len()),
            Err(_) => self.failed = true,
        }
        Some(entry)
    }
}
