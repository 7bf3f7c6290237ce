//! Decoder for the text that ACPICA's `acpidump` prints (feature `alloc`).
//!
//! Each table is a header line, `FACP @ 0x00000000bf7e8000`, followed by hex lines
//! `    0000: 46 41 43 50 F4 00 00 00 04 64 41 4C 41 53 4B 41  FACP.....dALASKA` (an offset,
//! up to 16 bytes, then an ASCII column that is ignored) and a blank line. Lines that
//! ACPICA prints as diagnostics between tables (`Firmware Warning (ACPI): ...`,
//! `ACPI Error: ...`) are skipped. Anything else is an error naming the line.
//!
//! Dumps collected from real machines often lack the RSDP and XSDT and carry zeroed
//! addresses, so tables are found by signature ([`with_signature`]), not by address.

use crate::error::{DumpProblem, ParseError};
use crate::sdt::Table;
use alloc::string::String;
use alloc::vec::Vec;

/// One table from the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedTable {
    /// The four characters before `@` on the header line (for SDTs, the table's signature;
    /// `RSDP` for the RSDP).
    pub signature_from_header: String,
    /// The physical address on the header line (zero in many collected dumps).
    pub address: u64,
    /// The table's bytes, in order.
    pub bytes: Vec<u8>,
}

impl DumpedTable {
    /// The bytes as a table (checking the SDT header and its length field).
    pub fn table(&self) -> Result<Table<'_>, ParseError> {
        Table::new(&self.bytes)
    }
}

/// The tables whose header line names `signature`, in dump order.
pub fn with_signature<'a>(
    tables: &'a [DumpedTable],
    signature: &'a str,
) -> impl Iterator<Item = &'a DumpedTable> + 'a {
    tables
        .iter()
        .filter(move |table| table.signature_from_header == signature)
}

/// Prefixes of the messages ACPICA prints (acoutput.h: ACPI_MSG_ERROR and the others),
/// which `acpidump` interleaves with the tables.
const DIAGNOSTIC_PREFIXES: [&str; 7] = [
    "ACPI: ",
    "ACPI Error",
    "ACPI Exception",
    "ACPI Warning",
    "Firmware Error (ACPI)",
    "Firmware Warning (ACPI)",
    "Could not ",
];

/// A table whose header has been read, with the line it was on.
struct Pending {
    table: DumpedTable,
    header_line: usize,
}

impl Pending {
    fn finish(self, tables: &mut Vec<DumpedTable>) -> Result<(), ParseError> {
        if self.table.bytes.is_empty() {
            return Err(ParseError::Dump {
                line: self.header_line,
                problem: DumpProblem::EmptyTable,
            });
        }
        tables.push(self.table);
        Ok(())
    }
}

/// Decodes `acpidump` text into its tables, in order.
pub fn decode(text: &str) -> Result<Vec<DumpedTable>, ParseError> {
    let mut tables = Vec::new();
    let mut current: Option<Pending> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index.saturating_add(1);
        let error = |problem| ParseError::Dump {
            line: number,
            problem,
        };
        let line = line.trim_end();
        if line.is_empty() {
            if let Some(pending) = current.take() {
                pending.finish(&mut tables)?;
            }
        } else if let Some(header) = header(line) {
            let (signature, address) = header.map_err(error)?;
            if let Some(pending) = current.take() {
                pending.finish(&mut tables)?;
            }
            let table = DumpedTable {
                signature_from_header: signature.into(),
                address,
                bytes: Vec::new(),
            };
            current = Some(Pending {
                table,
                header_line: number,
            });
        } else if let Some((offset, data)) = hex_line(line) {
            let Some(pending) = current.as_mut() else {
                return Err(error(DumpProblem::HexOutsideTable));
            };
            let bytes = &mut pending.table.bytes;
            let expected = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            if offset != expected {
                return Err(error(DumpProblem::BadOffset {
                    found: offset,
                    expected,
                }));
            }
            let column = line.len().saturating_sub(data.len());
            let before = bytes.len();
            hex_bytes(data, column, bytes).map_err(error)?;
            if bytes.len() == before {
                return Err(error(DumpProblem::NoBytes));
            }
        } else if current.is_some() || !DIAGNOSTIC_PREFIXES.iter().any(|p| line.starts_with(p)) {
            return Err(error(DumpProblem::UnexpectedText));
        }
    }
    if let Some(pending) = current.take() {
        pending.finish(&mut tables)?;
    }
    Ok(tables)
}

/// `SIGN @ 0xADDRESS`: `None` when the line is not a header, an error when its address is
/// malformed.
fn header(line: &str) -> Option<Result<(&str, u64), DumpProblem>> {
    let signature = line.get(..4)?;
    let address = line.get(4..)?.strip_prefix(" @ ")?;
    let digits = address
        .strip_prefix("0x")
        .or_else(|| address.strip_prefix("0X"));
    Some(
        digits
            .and_then(hex_number)
            .map(|address| (signature, address))
            .ok_or(DumpProblem::BadAddress),
    )
}

/// `   OFFSET: rest`: the offset and the text after the colon, or `None` when the line does
/// not have that shape.
fn hex_line(line: &str) -> Option<(u64, &str)> {
    let (offset, data) = line.trim_start().split_once(':')?;
    Some((hex_number(offset)?, data))
}

/// 1 to 16 hexadecimal digits and nothing else.
fn hex_number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Appends the bytes of a hex line's data (` 46 41 43 50  FACP`): up to 16 tokens of a
/// space and two hex digits, ended by two spaces (the ASCII column) or the end of the line.
/// `column` is where `data` starts in the line (0-based), for errors.
fn hex_bytes(data: &str, column: usize, bytes: &mut Vec<u8>) -> Result<(), DumpProblem> {
    let mut rest = data.as_bytes();
    for _ in 0..16 {
        match rest {
            [] | [b' '] | [b' ', b' ', ..] => break,
            [b' ', high, low, tail @ ..] if matches!(tail.first(), None | Some(b' ')) => {
                let byte = hex_digit(*high)
                    .zip(hex_digit(*low))
                    .map(|(high, low)| (high << 4) | low);
                let Some(byte) = byte else {
                    return Err(bad_byte(data, rest, column));
                };
                bytes.push(byte);
                rest = tail;
            }
            _ => return Err(bad_byte(data, rest, column)),
        }
    }
    Ok(())
}

/// The 1-based column of the token at `rest`.
fn bad_byte(data: &str, rest: &[u8], column: usize) -> DumpProblem {
    let consumed = data.len().saturating_sub(rest.len());
    // The token starts after its separating space, if it has one.
    let token = if rest.first() == Some(&b' ') { 2 } else { 1 };
    DumpProblem::BadHexByte {
        column: column.saturating_add(consumed).saturating_add(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const HPET_DUMP: &str = "\
HPET @ 0x00000000bf7e8000
    0000: 48 50 45 54 38 00 00 00 01 EB 37 35 31 39 4D 53  HPET8.....7519MS
    0010: 4F 45 4D 48 50 45 54 20 10 02 09 20 4D 53 46 54  OEMHPET ... MSFT
    0020: 97 00 00 00 01 A2 86 80 00 00 00 00 00 00 D0 FE  ................
    0030: 00 00 00 00 00 80 00 00                          ........
";

    #[test]
    fn decodes_a_table() {
        let tables = decode(HPET_DUMP).unwrap();
        assert_eq!(tables.len(), 1);
        let table = &tables[0];
        assert_eq!(table.signature_from_header, "HPET");
        assert_eq!(table.address, 0xbf7e_8000);
        assert_eq!(table.bytes.len(), 0x38);
        assert_eq!(&table.bytes[..4], b"HPET");
        assert_eq!(&table.bytes[0x30..], &[0, 0, 0, 0, 0, 0x80, 0, 0]);
        assert_eq!(table.table().unwrap().header().length, 0x38);
    }

    #[test]
    fn several_tables_diagnostics_and_crlf() {
        let text = "Firmware Warning (ACPI): Incorrect checksum in table [OEMB] - 0x7C, should be 0x66 (20191018/tbprint-341)\r\n\
                    FACP @ 0x0000000000000000\r\n    0000: 46 41  FA\r\n\r\n\
                    ACPI Error: something (20200925/tbxface-1)\n\
                    APIC @ 0x0\n  0000: 41 50 49 43\nHPET @ 0x0\n    0000: 48\n";
        let tables = decode(text).unwrap();
        let summary: Vec<_> = tables
            .iter()
            .map(|t| (t.signature_from_header.as_str(), t.bytes.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("FACP", vec![0x46, 0x41]),
                ("APIC", b"APIC".to_vec()),
                ("HPET", vec![0x48])
            ]
        );
        assert_eq!(with_signature(&tables, "APIC").count(), 1);
        assert_eq!(with_signature(&tables, "DMAR").count(), 0);
    }

    #[test]
    fn ascii_column_that_looks_like_hex_is_ignored() {
        let text = "TEST @ 0x10\n    0000: 41 42  AB CD EF 01 23\n";
        assert_eq!(decode(text).unwrap()[0].bytes, [0x41, 0x42]);
        let full =
            "TEST @ 0x10\n    0000: 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F  AB CD\n";
        assert_eq!(decode(full).unwrap()[0].bytes, (0..16).collect::<Vec<u8>>());
    }

    #[test]
    fn empty_text_has_no_tables() {
        assert_eq!(decode("").unwrap(), []);
        assert_eq!(decode("\n\n").unwrap(), []);
    }

    fn problem(text: &str) -> (usize, DumpProblem) {
        match decode(text) {
            Err(ParseError::Dump { line, problem }) => (line, problem),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        assert_eq!(problem("TEST @ 0xZZ\n"), (1, DumpProblem::BadAddress));
        assert_eq!(problem("TEST @ 12\n"), (1, DumpProblem::BadAddress));
        assert_eq!(
            problem("TEST @ 0x12345678123456789\n"),
            (1, DumpProblem::BadAddress)
        );
        assert_eq!(
            problem("\n    0000: 41\n"),
            (2, DumpProblem::HexOutsideTable)
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000: 41\n\n    0001: 42\n"),
            (4, DumpProblem::HexOutsideTable)
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000: 41\n    0010: 42\n"),
            (
                3,
                DumpProblem::BadOffset {
                    found: 0x10,
                    expected: 1
                }
            )
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000: 41 4G 43\n"),
            (2, DumpProblem::BadHexByte { column: 14 })
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000: 41 423\n"),
            (2, DumpProblem::BadHexByte { column: 14 })
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000: 4\n"),
            (2, DumpProblem::BadHexByte { column: 11 })
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000:41\n"),
            (2, DumpProblem::BadHexByte { column: 10 })
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000:\n"),
            (2, DumpProblem::NoBytes)
        );
        assert_eq!(
            problem("TEST @ 0x0\n    0000:   41\n"),
            (2, DumpProblem::NoBytes)
        );
        assert_eq!(problem("TEST @ 0x0\n\n"), (1, DumpProblem::EmptyTable));
        assert_eq!(
            problem("TEST @ 0x0\nOTHR @ 0x0\n    0000: 41\n"),
            (1, DumpProblem::EmptyTable)
        );
        assert_eq!(problem("TEST @ 0x0"), (1, DumpProblem::EmptyTable));
        assert_eq!(problem("hello\n"), (1, DumpProblem::UnexpectedText));
        assert_eq!(
            problem("TEST @ 0x0\n    0000: 41\nACPI Error: inside a table\n"),
            (3, DumpProblem::UnexpectedText)
        );
        assert_eq!(problem("é @ 0x0\n"), (1, DumpProblem::UnexpectedText));
        let message = std::format!(
            "{}",
            decode("TEST @ 0x0\n    0000: 41\n    0010: 42\n").unwrap_err()
        );
        assert_eq!(
            message,
            "acpidump text, line 3: offset 0x10 does not continue the table (expected 0x1)"
        );
    }

    #[test]
    fn any_text_decodes_or_errs_without_panic() {
        // Every prefix of a real-looking dump, and every single-byte corruption of it.
        let text =
            std::format!("{HPET_DUMP}\nACPI Warning: x\nAPIC @ 0x0\n    0000: 41 50 49 43\n");
        for end in 0..=text.len() {
            if let Some(prefix) = text.get(..end) {
                let _ = decode(prefix);
            }
        }
        for position in 0..text.len() {
            for replacement in [b' ', b'\n', b':', b'@', b'x', b'G', b'0'] {
                let mut bytes = text.clone().into_bytes();
                bytes[position] = replacement;
                if let Ok(corrupt) = std::string::String::from_utf8(bytes) {
                    let _ = decode(&corrupt);
                }
            }
        }
    }
}
