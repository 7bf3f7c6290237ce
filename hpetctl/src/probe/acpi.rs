//! The ACPI tables: live from sysfs, from an acpidump text file, or from a directory of
//! binary tables.

use super::report::InputOut;
use super::sources::{io_reason, System};
use acpi_probe::sdt::Table;
use anyhow::{bail, Context, Result};
use std::io;
use std::path::{Path, PathBuf};

/// Where the ACPI tables come from.
#[derive(Debug, Clone)]
pub enum TableInput {
    /// This machine: `<root>/sys/firmware/acpi/tables`, plus every live fact.
    Live,
    /// An `acpidump` text file.
    Acpidump(PathBuf),
    /// A directory of binary tables (e.g. a copy of /sys/firmware/acpi/tables).
    Dir(PathBuf),
}

/// One table: its signature, bytes and where it came from.
pub(super) struct LoadedTable {
    pub signature: String,
    pub bytes: Vec<u8>,
    pub source: String,
}

impl LoadedTable {
    /// A table whose signature comes from its SDT header.
    fn parse(bytes: Vec<u8>, source: String) -> Result<Self, acpi_probe::ParseError> {
        let signature =
            String::from_utf8_lossy(&Table::new(&bytes)?.header().signature).into_owned();
        Ok(Self {
            signature,
            bytes,
            source,
        })
    }
}

/// The tables, in the order found.
pub(super) struct Tables(Vec<LoadedTable>);

impl Tables {
    /// Loads the tables: offline ones or fails with an error naming the file (exit status
    /// 2); live ones from sysfs, noting those that cannot be read.
    pub fn load(input: &TableInput, sys: &mut System) -> Result<Self> {
        Ok(Self(match input {
            TableInput::Live => load_live(sys),
            TableInput::Acpidump(path) => load_acpidump(path)?,
            TableInput::Dir(dir) => load_dir(dir)?,
        }))
    }

    /// Every table with signature `sig`.
    pub fn all<'t>(&'t self, sig: &'t str) -> impl Iterator<Item = &'t LoadedTable> + 't {
        self.0.iter().filter(move |t| t.signature == sig)
    }

    /// The first table with signature `sig` (the one Linux uses).
    pub fn first(&self, sig: &str) -> Option<&LoadedTable> {
        self.0.iter().find(|t| t.signature == sig)
    }

    /// The report's `input` section.
    pub fn input_out(&self, input: &TableInput) -> InputOut {
        InputOut {
            kind: match input {
                TableInput::Live => "live",
                TableInput::Acpidump(_) => "acpidump",
                TableInput::Dir(_) => "tables",
            },
            path: match input {
                TableInput::Live => None,
                TableInput::Acpidump(p) | TableInput::Dir(p) => Some(p.display().to_string()),
            },
            tables: self
                .0
                .iter()
                .map(|t| format!("{}:{}", t.signature, t.bytes.len()))
                .collect(),
        }
    }
}

/// The tables of an acpidump text file, or an error naming it (exit status 2).
fn load_acpidump(path: &Path) -> Result<Vec<LoadedTable>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not text: {e}", path.display()))?;
    let tables = acpi_probe::acpidump::decode(&text)
        .map_err(|e| anyhow::anyhow!("{}: not an acpidump file: {e}", path.display()))?;
    if tables.is_empty() {
        bail!("{}: no tables in this acpidump file", path.display());
    }
    Ok(tables
        .into_iter()
        .map(|t| LoadedTable {
            source: format!(
                "{} ({} @ {:#x})",
                path.display(),
                t.signature_from_header,
                t.address
            ),
            signature: t.signature_from_header,
            bytes: t.bytes,
        })
        .collect())
}

/// The tables of a directory, or an error naming it or the file (exit status 2).
fn load_dir(dir: &Path) -> Result<Vec<LoadedTable>> {
    let tables = read_table_dir(dir)
        .with_context(|| format!("cannot read the table directory {}", dir.display()))?;
    if tables.is_empty() {
        bail!("{}: no ACPI tables in this directory", dir.display());
    }
    Ok(tables)
}

/// Every regular file of `dir` whose bytes start with an SDT header (sorted by name; the
/// signature comes from the header, not the file name). Subdirectories are skipped; a file
/// that is not a table is an error naming it.
fn read_table_dir(dir: &Path) -> Result<Vec<LoadedTable>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    names.sort();
    let mut out = Vec::new();
    for path in names {
        if path.is_dir() {
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let table = LoadedTable::parse(bytes, path.display().to_string())
            .map_err(|e| anyhow::anyhow!("{}: not an ACPI table: {e}", path.display()))?;
        out.push(table);
    }
    Ok(out)
}

/// The live tables from sysfs; unreadable ones are noted (root-only files).
fn load_live(sys: &mut System) -> Vec<LoadedTable> {
    let abs = "/sys/firmware/acpi/tables";
    let dir = sys.path(abs);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            sys.note(
                "ACPI tables",
                abs,
                io_reason(&e),
                "boot with ACPI, or give --acpidump FILE / --tables DIR",
            );
            return out;
        }
    };
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    for path in names {
        if path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = ["APIC", "HPET", "DMAR", "IVRS"]
            .iter()
            .any(|s| name.starts_with(s));
        match std::fs::read(&path) {
            Ok(bytes) => match LoadedTable::parse(bytes, format!("{abs}/{name}")) {
                Ok(t) => out.push(t),
                Err(e) => sys.note(
                    &format!("ACPI table {name}"),
                    &format!("{abs}/{name}"),
                    format!("malformed: {e}"),
                    "report the firmware bug; try --acpidump with a fresh dump",
                ),
            },
            Err(e) if wanted => {
                let how = if e.kind() == io::ErrorKind::PermissionDenied {
                    "run as root (the tables are readable by root only)"
                } else {
                    "check the file"
                };
                sys.note(
                    &format!("ACPI table {name}"),
                    &format!("{abs}/{name}"),
                    io_reason(&e),
                    how,
                )
            }
            Err(_) => {}
        }
    }
    out
}
