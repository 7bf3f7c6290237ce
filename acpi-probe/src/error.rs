//! The one error type of every parser: what was wrong, in which table, at which offset.

use core::fmt;

/// Why a table, entry or dump line was refused. The `Display` text names the table, the
/// field or entry and its offset (from the start of the table), and the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A field lies (partly) beyond the bytes available.
    Truncated {
        table: &'static str,
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// The signature is not the one the parser reads.
    WrongSignature {
        table: &'static str,
        expected: &'static str,
        found: Signature,
    },
    /// The bytes covered by a checksum do not sum to zero (mod 256).
    BadChecksum {
        table: &'static str,
        covered: usize,
        sum: u8,
    },
    /// A table's length field is below the minimum for its kind or beyond the bytes given.
    TableLength {
        signature: Signature,
        length: u64,
        minimum: usize,
        available: usize,
    },
    /// An entry inside a table (MADT entry, DMAR remapping structure, device scope) has a
    /// length field that cannot be right.
    EntryLength {
        table: &'static str,
        entry: &'static str,
        offset: usize,
        length: usize,
        problem: LengthProblem,
    },
    /// A field holds a value the specification rules out.
    InvalidField {
        table: &'static str,
        field: &'static str,
        offset: usize,
        value: u64,
        reason: &'static str,
    },
    /// A line of `acpidump` text is malformed (`line` counts from 1).
    Dump { line: usize, problem: DumpProblem },
}

/// What is wrong with an entry's length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthProblem {
    /// Shorter than the type and length fields every entry of this table starts with.
    ShorterThanHeader { header: usize },
    /// Longer than what is left of the table (or of the enclosing structure).
    PastEnd { remaining: usize },
    /// Shorter than the fixed fields of this entry type.
    ShorterThanType { kind: u16, minimum: usize },
    /// A DMAR device scope whose path is not a whole number of 2-byte elements.
    OddPath,
}

/// What is wrong with a line of `acpidump` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpProblem {
    /// A `SIG @ 0xADDRESS` header whose address is not 1 to 16 hexadecimal digits.
    BadAddress,
    /// A hex line before any table header, or after the blank line that ended a table.
    HexOutsideTable,
    /// A hex line whose offset does not continue the table.
    BadOffset { found: u64, expected: u64 },
    /// Something other than a two-digit hex byte where one belongs.
    BadHexByte { column: usize },
    /// A hex line carrying no bytes.
    NoBytes,
    /// A table header not followed by any hex line.
    EmptyTable,
    /// Neither a table header, a hex line, a blank line nor an ACPICA diagnostic.
    UnexpectedText,
}

/// Up to 8 signature bytes as found, shown quoted with non-printable bytes escaped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    bytes: [u8; 8],
    len: u8,
}

impl Signature {
    /// The first (up to) 8 bytes of `found`.
    pub fn new(found: &[u8]) -> Self {
        let mut bytes = [0; 8];
        for (slot, byte) in bytes.iter_mut().zip(found) {
            *slot = *byte;
        }
        let len = u8::try_from(found.len().min(bytes.len())).unwrap_or(8);
        Self { bytes, len }
    }

    /// The signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &byte in self.as_bytes() {
            if byte.is_ascii_graphic() || byte == b' ' {
                write!(f, "{}", char::from(byte))?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { table, field, offset, needed, available } => write!(
                f,
                "{table}: {field} at offset {offset:#x} needs {needed} bytes, only {available} available"
            ),
            Self::WrongSignature { table, expected, found } => {
                write!(f, "{table}: signature is {found}, expected {expected}")
            }
            Self::BadChecksum { table, covered, sum } => write!(
                f,
                "{table}: checksum over the first {covered} bytes sums to {sum:#04x}, not 0"
            ),
            Self::TableLength { signature, length, minimum, available } => {
                if length < u64::try_from(minimum).unwrap_or(u64::MAX) {
                    write!(
                        f,
                        "{signature} table: length field {length} is shorter than the {minimum} bytes this table needs"
                    )
                } else {
                    write!(
                        f,
                        "{signature} table: length field {length} is longer than the {available} bytes available"
                    )
                }
            }
            Self::EntryLength { table, entry, offset, length, problem } => {
                write!(f, "{table} {entry} at offset {offset:#x}: length {length} ")?;
                match problem {
                    LengthProblem::ShorterThanHeader { header } => {
                        write!(f, "is shorter than the {header}-byte {entry} header")
                    }
                    LengthProblem::PastEnd { remaining } => {
                        write!(f, "runs past the end ({remaining} bytes remain)")
                    }
                    LengthProblem::ShorterThanType { kind, minimum } => write!(
                        f,
                        "is shorter than the {minimum} bytes a type {kind} {entry} needs"
                    ),
                    LengthProblem::OddPath => {
                        f.write_str("leaves a path that is not a whole number of 2-byte elements")
                    }
                }
            }
            Self::InvalidField { table, field, offset, value, reason } => {
                write!(f, "{table}: {field} at offset {offset:#x} is {value:#x}: {reason}")
            }
            Self::Dump { line, problem } => {
                write!(f, "acpidump text, line {line}: ")?;
                match problem {
                    DumpProblem::BadAddress => f.write_str(
                        "table header address is not \"0x\" and 1 to 16 hexadecimal digits",
                    ),
                    DumpProblem::HexOutsideTable => f.write_str(
                        "hex line outside a table (no \"SIG @ 0xADDRESS\" header since the last blank line)",
                    ),
                    DumpProblem::BadOffset { found, expected } => write!(
                        f,
                        "offset {found:#x} does not continue the table (expected {expected:#x})"
                    ),
                    DumpProblem::BadHexByte { column } => {
                        write!(f, "column {column}: expected a two-digit hexadecimal byte")
                    }
                    DumpProblem::NoBytes => f.write_str("hex line carries no bytes"),
                    DumpProblem::EmptyTable => {
                        f.write_str("table header is not followed by any hex line")
                    }
                    DumpProblem::UnexpectedText => f.write_str(
                        "neither a table header, a hex line, a blank line nor an ACPICA diagnostic",
                    ),
                }
            }
        }
    }
}

impl core::error::Error for ParseError {}
