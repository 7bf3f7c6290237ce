//! What each fuzz target does with its input: parse it, walk every entry, call every
//! accessor and format every value and error (Debug and Display), so a panic anywhere in
//! the parser or its formatting is found. The `acpidump` target feeds each decoded table
//! to all of them.

use acpi_probe::dmar::Dmar;
use acpi_probe::hpet::{GeneralCapabilities, HpetTable, TimerCapabilities};
use acpi_probe::ivrs::{Ivrs, IvrsBlock};
use acpi_probe::madt::Madt;
use acpi_probe::root::RootTable;
use acpi_probe::rsdp::{self, Rsdp};
use acpi_probe::sdt::{SdtHeader, Table};
use acpi_probe::ParseError;
use std::fmt::Write as _;

/// Formats a value both ways, into a reused buffer.
fn show<T: std::fmt::Debug>(value: &T) {
    let mut text = String::new();
    let _ = write!(text, "{value:?}");
}

fn error(error: &ParseError) {
    let mut text = String::new();
    let _ = write!(text, "{error} {error:?}");
}

fn result<T: std::fmt::Debug>(result: &Result<T, ParseError>) {
    match result {
        Ok(value) => show(value),
        Err(e) => error(e),
    }
}

pub fn rsdp(data: &[u8]) {
    result(&Rsdp::parse(data));
    show(&rsdp::scan(data));
}

pub fn sdt(data: &[u8]) {
    result(&SdtHeader::parse(data));
    match Table::new(data) {
        Ok(table) => {
            show(&(table.header(), table.body().len(), table.checksum_valid()));
            assert_eq!(table.bytes().len(), table.header().length as usize);
        }
        Err(e) => error(&e),
    }
}

pub fn root(data: &[u8]) {
    match RootTable::parse(data) {
        Ok(root) => {
            show(&(root.is_xsdt(), root.len(), root.is_empty()));
            assert_eq!(root.entries().count(), root.len());
        }
        Err(e) => error(&e),
    }
}

pub fn madt(data: &[u8]) {
    match Madt::parse(data) {
        Ok(madt) => {
            show(&madt.pcat_compat());
            for entry in madt.entries() {
                result(&entry);
                if let Ok(entry) = entry {
                    show(&entry.processor());
                }
            }
            madt.processors().for_each(|p| result(&p));
        }
        Err(e) => error(&e),
    }
}

pub fn hpet(data: &[u8]) {
    result(&HpetTable::parse(data));
    // The register decoders take any 64-bit value: the first 16 bytes, whatever they are.
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        for (slot, byte) in bytes.iter_mut().zip(data.iter().skip(at)) {
            *slot = *byte;
        }
        u64::from_le_bytes(bytes)
    };
    let general = GeneralCapabilities(word(0));
    show(&(
        general.revision_id(),
        general.num_timers(),
        general.counter_64bit(),
        general.legacy_route_capable(),
        general.vendor_id(),
        general.period_fs(),
        general.frequency_hz(),
    ));
    if let Err(e) = general.validate() {
        error(&e);
    }
    let timer = TimerCapabilities(word(8));
    show(&(
        timer.int_route_cap(),
        timer.fsb_delivery_capable(),
        timer.periodic_capable(),
        timer.size_64bit(),
        timer.level_triggered(),
        timer.interrupt_enabled(),
        timer.periodic(),
        timer.value_set(),
        timer.mode_32bit(),
        timer.int_route(),
        timer.fsb_enabled(),
    ));
    for irq in 0..=255u8 {
        show(&timer.can_route_to(irq));
    }
}

pub fn dmar(data: &[u8]) {
    match Dmar::parse(data) {
        Ok(dmar) => {
            for structure in dmar.structures() {
                result(&structure);
                let Ok(structure) = structure else { continue };
                let Some(scopes) = structure.scopes() else {
                    continue;
                };
                for scope in scopes {
                    result(&scope);
                    if let Ok(scope) = scope {
                        show(&scope.source_id());
                        scope.path_entries().for_each(|e| show(&e));
                    }
                }
            }
        }
        Err(e) => error(&e),
    }
}

pub fn ivrs(data: &[u8]) {
    match Ivrs::parse(data) {
        Ok(ivrs) => {
            for block in ivrs.blocks() {
                result(&block);
                if let Ok(IvrsBlock::Ivhd(ivhd)) = block {
                    show(&(ivhd.msi_number(), ivhd.unit_id()));
                    ivhd.entries().for_each(|e| result(&e));
                }
            }
            ivrs.special_devices().for_each(|s| result(&s));
            show(&ivrs.preferred_ivhd_kind());
            for number in [0, 1, 2, 0xff] {
                if let Some(found) = ivrs.hpet(number) {
                    result(&found);
                }
            }
        }
        Err(e) => error(&e),
    }
}

/// Every parser on the same bytes.
pub fn all(data: &[u8]) {
    rsdp(data);
    sdt(data);
    root(data);
    madt(data);
    hpet(data);
    dmar(data);
    ivrs(data);
}

pub fn acpidump(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match acpi_probe::acpidump::decode(&text) {
        Ok(tables) => {
            for table in &tables {
                result(&table.table());
                all(&table.bytes);
            }
            show(&acpi_probe::acpidump::with_signature(&tables, "APIC").count());
        }
        Err(e) => error(&e),
    }
}
