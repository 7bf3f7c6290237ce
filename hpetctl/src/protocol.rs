//! Parser for the serial result protocol (docs/protocol.md).
//!
//! The kernel mixes free-form text with machine-readable lines that start with `HPETWD `.
//! [`parse_line`] turns one line into a [`Record`], returns `None` for lines that are not
//! protocol lines, and returns a [`LineError`] for lines that carry the prefix but break the
//! grammar (garbled or cut-off output). Nothing here panics on any input.
//!
//! [`LineSplitter`] cuts a byte stream into lines; a final line without its line ending is
//! handed out separately as truncated, never as a complete line.

use std::fmt;

/// The fixed prefix of every machine-readable line.
pub const PREFIX: &[u8] = b"HPETWD ";

/// The protocol version this parser understands (the `protocol` field of `build`).
pub const PROTOCOL_VERSION: u64 = 1;

/// One machine-readable line: a record name and its `key=value` fields, in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record name (`build`, `cpu`, `summary`, ...).
    pub name: String,
    /// The fields in the order they appeared; keys are unique within a record.
    pub fields: Vec<(String, String)>,
}

/// Why a line that starts with the prefix is not a valid protocol line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Byte offset in the line where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for LineError {}

/// A typed field that was present but could not be read as the requested type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The record the field belongs to.
    pub record: String,
    /// The field's key.
    pub key: String,
    /// The raw value.
    pub value: String,
    /// The type that was expected.
    pub expected: &'static str,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record `{}`: field `{}={}` is not {}",
            self.record, self.key, self.value, self.expected
        )
    }
}

impl std::error::Error for FieldError {}

impl Record {
    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn field_error(&self, key: &str, value: &str, expected: &'static str) -> FieldError {
        FieldError {
            record: self.name.clone(),
            key: key.to_string(),
            value: value.to_string(),
            expected,
        }
    }

    /// `key` as an unsigned number (decimal, or hexadecimal with `0x`); `Ok(None)` if absent.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_number(v)
                .map(Some)
                .ok_or_else(|| self.field_error(key, v, "a number")),
        }
    }

    /// `key` as a boolean (`0` or `1`); `Ok(None)` if absent.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some("0") => Ok(Some(false)),
            Some("1") => Ok(Some(true)),
            Some(v) => Err(self.field_error(key, v, "a boolean (0 or 1)")),
        }
    }

    /// `key` as a string; `None` if absent.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// Parse a protocol number: decimal, or hexadecimal with a `0x` prefix.
pub fn parse_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// Skip terminal noise a bootloader may leave in front of the kernel's first line on the
/// same physical line (GRUB's ANSI escape sequences, NULs, other control bytes).
fn skip_terminal_noise(line: &[u8]) -> &[u8] {
    let mut rest = line;
    loop {
        match rest {
            [0x1b, b'[', tail @ ..] => {
                // CSI: parameter and intermediate bytes 0x20..=0x3f, then a final byte 0x40..=0x7e.
                let params = tail
                    .iter()
                    .take_while(|&&b| (0x20..=0x3f).contains(&b))
                    .count();
                match tail.get(params) {
                    Some(b) if (0x40..=0x7e).contains(b) => rest = &tail[params + 1..],
                    _ => return rest,
                }
            }
            [0x1b, b, tail @ ..] if (0x40..=0x5f).contains(b) => rest = tail,
            [b, tail @ ..] if b.is_ascii_control() => rest = tail,
            _ => return rest,
        }
    }
}

/// Parse one line (without its line ending; a trailing `\r` is ignored).
///
/// Returns `None` if the line is not a protocol line (no `HPETWD ` prefix at its start,
/// after any terminal control sequences), `Some(Err(_))` if it has the prefix but breaks the
/// grammar, and `Some(Ok(record))` otherwise.
pub fn parse_line(line: &[u8]) -> Option<Result<Record, LineError>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = skip_terminal_noise(line);
    let body = line.strip_prefix(PREFIX)?;
    Some(parse_body(body, PREFIX.len()))
}

fn err(offset: usize, message: impl Into<String>) -> LineError {
    LineError {
        offset,
        message: message.into(),
    }
}

fn parse_body(body: &[u8], base: usize) -> Result<Record, LineError> {
    let mut pos = 0;
    let name_len = body
        .iter()
        .take_while(|&&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        .count();
    if name_len == 0 {
        return Err(err(base, "missing record name"));
    }
    let name = String::from_utf8_lossy(&body[..name_len]).into_owned();
    pos += name_len;
    let mut fields: Vec<(String, String)> = Vec::new();
    loop {
        // Fields are separated by one space; runs of spaces and trailing spaces are tolerated.
        let spaces = body[pos..].iter().take_while(|&&b| b == b' ').count();
        if pos + spaces == body.len() {
            break;
        }
        if spaces == 0 {
            return Err(err(
                base + pos,
                format!("unexpected byte 0x{:02x} (expected a space)", body[pos]),
            ));
        }
        pos += spaces;
        let key_start = pos;
        let key_len = body[pos..]
            .iter()
            .take_while(|&&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            .count();
        if key_len == 0 {
            return Err(err(base + pos, "expected a field key (a-z, 0-9, _)"));
        }
        let key = String::from_utf8_lossy(&body[key_start..key_start + key_len]).into_owned();
        pos += key_len;
        if body.get(pos) != Some(&b'=') {
            return Err(err(base + pos, format!("field `{key}` has no `=`")));
        }
        pos += 1;
        let value = if body.get(pos) == Some(&b'"') {
            pos += 1;
            let mut value = Vec::new();
            loop {
                match body.get(pos) {
                    None => {
                        return Err(err(
                            base + pos,
                            format!("unterminated quoted value of `{key}`"),
                        ))
                    }
                    Some(b'"') => {
                        pos += 1;
                        break;
                    }
                    Some(b'\\') => match body.get(pos + 1) {
                        Some(&c @ (b'"' | b'\\')) => {
                            value.push(c);
                            pos += 2;
                        }
                        Some(c) => {
                            return Err(err(
                                base + pos,
                                format!("bad escape `\\{}` in value of `{key}`", c.escape_ascii()),
                            ))
                        }
                        None => {
                            return Err(err(
                                base + pos,
                                format!("unterminated quoted value of `{key}`"),
                            ))
                        }
                    },
                    Some(&c) => {
                        value.push(c);
                        pos += 1;
                    }
                }
            }
            if let Some(&c) = body.get(pos) {
                if c != b' ' {
                    return Err(err(
                        base + pos,
                        format!("unexpected byte 0x{c:02x} after quoted value of `{key}`"),
                    ));
                }
            }
            value
        } else {
            let len = body[pos..]
                .iter()
                .take_while(|&&b| b != b' ' && b != b'"' && !b.is_ascii_control())
                .count();
            if len == 0 {
                return Err(err(base + pos, format!("field `{key}` has an empty value")));
            }
            let value = body[pos..pos + len].to_vec();
            pos += len;
            if let Some(&c) = body.get(pos) {
                if c != b' ' {
                    return Err(err(
                        base + pos,
                        format!("unexpected byte 0x{c:02x} in value of `{key}`"),
                    ));
                }
            }
            value
        };
        if fields.iter().any(|(k, _)| *k == key) {
            return Err(err(base + key_start, format!("duplicate field `{key}`")));
        }
        fields.push((key, String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(Record { name, fields })
}

/// Splits a byte stream into lines at `\n`. Complete lines are returned without the `\n`
/// (a `\r` before it is kept; [`parse_line`] ignores it). Lines are capped at
/// [`LineSplitter::MAX_LINE`] bytes: a longer run is cut and its remainder dropped, so a
/// guest that never sends a newline cannot exhaust memory.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    overflow: bool,
}

/// One line out of a [`LineSplitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The bytes of the line, without the `\n`.
    pub bytes: Vec<u8>,
    /// The line was longer than [`LineSplitter::MAX_LINE`] and was cut.
    pub overlong: bool,
}

impl LineSplitter {
    /// Longest line kept, in bytes.
    pub const MAX_LINE: usize = 64 * 1024;

    /// Feed bytes; returns the lines completed by them.
    pub fn push(&mut self, data: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        for chunk in data.split_inclusive(|&b| b == b'\n') {
            let (content, complete) = match chunk.strip_suffix(b"\n") {
                Some(c) => (c, true),
                None => (chunk, false),
            };
            let room = Self::MAX_LINE.saturating_sub(self.partial.len());
            if content.len() > room {
                self.overflow = true;
            }
            self.partial
                .extend_from_slice(&content[..content.len().min(room)]);
            if complete {
                out.push(Line {
                    bytes: std::mem::take(&mut self.partial),
                    overlong: std::mem::take(&mut self.overflow),
                });
            }
        }
        out
    }

    /// End of stream: the bytes of an unterminated last line, if any.
    pub fn finish(&mut self) -> Option<Line> {
        if self.partial.is_empty() && !self.overflow {
            return None;
        }
        Some(Line {
            bytes: std::mem::take(&mut self.partial),
            overlong: std::mem::take(&mut self.overflow),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Record {
        match parse_line(line.as_bytes()) {
            Some(Ok(r)) => r,
            other => panic!("{line:?} did not parse: {other:?}"),
        }
    }

    fn bad(line: &str) -> LineError {
        match parse_line(line.as_bytes()) {
            Some(Err(e)) => e,
            other => panic!("{line:?} unexpectedly gave {other:?}"),
        }
    }

    #[test]
    fn parses_the_protocol_example() {
        let r = ok("HPETWD build id=3f1c0d9e version=0.1.0 protocol=1\r");
        assert_eq!(r.name, "build");
        assert_eq!(r.get("id"), Some("3f1c0d9e"));
        assert_eq!(r.get("version"), Some("0.1.0"));
        assert_eq!(r.u64("protocol"), Ok(Some(1)));
        let r = ok("HPETWD cpu index=0 apic_id=0 madt_apic_id=0 x2apic=0 bsp=1 online=1 ticks=10 online_ns=0");
        assert_eq!(r.bool("bsp"), Ok(Some(true)));
        assert_eq!(r.bool("x2apic"), Ok(Some(false)));
        assert_eq!(r.u64("ticks"), Ok(Some(10)));
        assert_eq!(r.u64("absent"), Ok(None));
        let r = ok("HPETWD lapic-timer hz=1000000000 tick_us=10000 initial_count=0x989680");
        assert_eq!(r.name, "lapic-timer");
        assert_eq!(r.u64("initial_count"), Ok(Some(10_000_000)));
    }

    #[test]
    fn quoted_values_and_escapes() {
        let r = ok(r#"HPETWD boot via=pvh cmdline="exit=qemu x2apic=on" exit=qemu"#);
        assert_eq!(r.get("cmdline"), Some("exit=qemu x2apic=on"));
        assert_eq!(r.get("exit"), Some("qemu"));
        let r = ok(r#"HPETWD error kind=bad-acpi detail="say \"hi\" \\ back""#);
        assert_eq!(r.get("detail"), Some(r#"say "hi" \ back"#));
        let r = ok(r#"HPETWD acpi oem="" revision=2"#);
        assert_eq!(r.get("oem"), Some(""));
        assert_eq!(r.u64("revision"), Ok(Some(2)));
        // Non-UTF-8 bytes inside a value are kept (lossily), not rejected.
        let r = parse_line(b"HPETWD acpi oem=\"B\xffCHS\"")
            .unwrap()
            .unwrap();
        assert_eq!(r.get("oem"), Some("B\u{fffd}CHS"));
    }

    #[test]
    fn bad_quoting_is_a_line_error() {
        assert!(bad(r#"HPETWD error detail="unterminated"#)
            .message
            .contains("unterminated"));
        assert!(bad(r#"HPETWD error detail="ends in backslash\"#)
            .message
            .contains("unterminated"));
        assert!(bad(r#"HPETWD error detail="bad \n escape""#)
            .message
            .contains("bad escape"));
        assert!(bad(r#"HPETWD error detail="x"y"#)
            .message
            .contains("after quoted"));
        assert!(bad(r#"HPETWD error detail=a"b"#)
            .message
            .contains("in value"));
    }

    #[test]
    fn garbage_lines_are_not_records() {
        for line in [
            "",
            "hello world",
            "HPETWD",
            "HPETWDbuild id=1",
            " HPETWD build id=1",
            "xHPETWD build id=1",
            "SeaBIOS (version 1.16.3)",
            "Booting from ROM..",
        ] {
            assert_eq!(parse_line(line.as_bytes()), None, "{line:?}");
        }
        assert_eq!(parse_line(b"\xff\xfe\x00garbage"), None);
    }

    #[test]
    fn malformed_protocol_lines_are_errors() {
        assert!(bad("HPETWD ").message.contains("record name"));
        assert!(bad("HPETWD Build id=1").message.contains("record name"));
        assert!(bad("HPETWD build id").message.contains("no `=`"));
        assert!(bad("HPETWD build id=").message.contains("empty value"));
        assert!(bad("HPETWD build =1").message.contains("key"));
        assert!(bad("HPETWD build Id=1").message.contains("key"));
        assert!(bad("HPETWD build id=1 id=2").message.contains("duplicate"));
        assert!(bad("HPETWD build id=1\tx=2").message.contains("0x09"));
        assert!(bad("HPETWD build! id=1")
            .message
            .contains("expected a space"));
    }

    #[test]
    fn truncated_lines_fail_or_lose_fields_visibly() {
        // A line cut inside a quoted value is an error, never a record with a short value.
        bad(r#"HPETWD boot via=pvh cmdline="exit=qe"#);
        // A line cut after `key=` is an error.
        bad("HPETWD summary result=");
        // A line cut between fields parses, but the missing field stays missing.
        let r = ok("HPETWD summary result=pass cpus_online=1");
        assert_eq!(r.u64("cpus_expected"), Ok(None));
    }

    #[test]
    fn tolerates_spacing_and_terminal_noise() {
        let r = ok("HPETWD summary  result=pass   cpus_online=1 ");
        assert_eq!(r.get("result"), Some("pass"));
        assert_eq!(r.u64("cpus_online"), Ok(Some(1)));
        let r = ok("\x1b[2J\x1b[1;1H\x1b[0mHPETWD build id=ab version=0.1.0 protocol=1");
        assert_eq!(r.name, "build");
        let r = ok("\x00\x00HPETWD build id=ab");
        assert_eq!(r.name, "build");
        // Visible text before the prefix means it is not at the start of a line.
        assert_eq!(parse_line(b"\x1b[0mGRUB HPETWD build id=ab"), None);
        // An unfinished escape sequence is left alone.
        assert_eq!(parse_line(b"\x1b[12HPETWD build"), None);
    }

    #[test]
    fn typed_accessors_reject_bad_values() {
        let r = ok("HPETWD cpu index=x1 bsp=2 apic_id=0x online=yes ticks=99999999999999999999999");
        assert!(r.u64("index").is_err());
        assert!(r.bool("bsp").is_err());
        assert!(r.u64("apic_id").is_err());
        assert!(r.bool("online").is_err());
        assert!(r.u64("ticks").is_err());
        let e = r.u64("index").unwrap_err();
        assert_eq!(
            e.to_string(),
            "record `cpu`: field `index=x1` is not a number"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("0x1F"), Some(31));
        assert_eq!(parse_number("0xfed00000"), Some(0xfed0_0000));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_number("18446744073709551616"), None);
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number("+1"), None);
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("1_000"), None);
    }

    #[test]
    fn splitter_handles_chunks_crlf_and_partial_end() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"HPETWD bu").is_empty());
        let lines = s.push(b"ild id=1\r\nnext\nHPETWD sum");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].bytes, b"HPETWD build id=1\r");
        assert_eq!(lines[1].bytes, b"next");
        let last = s.finish().unwrap();
        assert_eq!(last.bytes, b"HPETWD sum");
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splitter_caps_overlong_lines() {
        let mut s = LineSplitter::default();
        let big = vec![b'a'; LineSplitter::MAX_LINE + 10];
        assert!(s.push(&big).is_empty());
        assert!(s.push(&big).is_empty());
        let lines = s.push(b"tail\nok\n");
        assert_eq!(lines.len(), 2);
        assert!(lines[0].overlong);
        assert_eq!(lines[0].bytes.len(), LineSplitter::MAX_LINE);
        assert!(!lines[1].overlong);
        assert_eq!(lines[1].bytes, b"ok");
    }
}
