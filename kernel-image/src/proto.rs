//! Formatting helpers for the serial result protocol (docs/protocol.md).

use core::fmt;

/// The fixed prefix of every machine-readable line.
pub const PREFIX: &str = "HPETWD ";

/// Version of docs/protocol.md this kernel speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A protocol value written as a double-quoted string, with `"` and `\` escaped and
/// control bytes replaced by `?`, so a value can never break the line grammar.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => f.write_str("?")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        f.write_str("\"")
    }
}

/// Bytes shown as lowercase hexadecimal without separators (the build id).
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn quoted_escapes_quotes_backslashes_and_controls() {
        assert_eq!(format!("{}", Quoted("a b")), "\"a b\"");
        assert_eq!(format!("{}", Quoted("x\"y\\z")), "\"x\\\"y\\\\z\"");
        assert_eq!(format!("{}", Quoted("line\nbreak\r")), "\"line?break?\"");
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(format!("{}", Hex(&[0x0a, 0xff, 0x00])), "0aff00");
    }
}
