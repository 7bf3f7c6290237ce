//! ACPI discovery in the kernel through `acpi-probe`'s parsers: the RSDP (from the boot
//! loader or the BIOS area scan, ACPI 6.5 section 5.2.5.1), the XSDT or RSDT, and the MADT,
//! HPET and DMAR tables.

use crate::percpu::MAX_CPUS;
use acpi_probe::dmar::Dmar;
use acpi_probe::hpet::HpetTable;
use acpi_probe::madt::Madt;
use acpi_probe::root::RootTable;
use acpi_probe::rsdp::Rsdp;
use acpi_probe::sdt::{SdtHeader, Table, HEADER_LEN};

/// The highest physical address the kernel's identity map covers (boot.rs).
const MAPPED_LIMIT: u64 = 1 << 32;
/// Refuse tables larger than this (no real MADT, HPET or DMAR comes close).
const MAX_TABLE_LEN: usize = 1 << 20;
/// Tables remembered for the protocol's `tables` list.
const MAX_TABLES: usize = 64;

/// A view of identity-mapped physical memory that holds ACPI data, or `None` when the range
/// is not inside the mapped 4 GiB.
fn physical(address: u64, len: usize) -> Option<&'static [u8]> {
    let end = address.checked_add(len as u64)?;
    if address == 0 || end > MAPPED_LIMIT {
        return None;
    }
    // SAFETY: the range lies inside the identity map of the first 4 GiB (checked above).
    // ACPI tables and the RSDP live in memory the firmware reserved for them, which the
    // kernel never writes, so the bytes stay valid and unchanged for the kernel's lifetime.
    Some(unsafe { core::slice::from_raw_parts(address as *const u8, len) })
}

/// Reads a whole table at `address`, trusting its header's length only up to the limit.
fn table_at(address: u64) -> Result<&'static [u8], &'static str> {
    let header = physical(address, HEADER_LEN).ok_or("table outside the mapped 4 GiB")?;
    let length = SdtHeader::parse(header)
        .map_err(|_| "unreadable table header")?
        .length as usize;
    if !(HEADER_LEN..=MAX_TABLE_LEN).contains(&length) {
        return Err("table length out of range");
    }
    physical(address, length).ok_or("table outside the mapped 4 GiB")
}

/// Where the RSDP came from.
#[derive(Clone, Copy)]
pub enum RsdpSource {
    Pvh,
    Multiboot2New,
    Multiboot2Old,
    BiosScan,
}

impl RsdpSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pvh => "pvh",
            Self::Multiboot2New => "multiboot2-new",
            Self::Multiboot2Old => "multiboot2-old",
            Self::BiosScan => "bios-scan",
        }
    }
}

/// One processor from the MADT, in MADT order.
#[derive(Clone, Copy)]
pub struct CpuEntry {
    pub apic_id: u32,
}

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Default)]
pub struct IoApicEntry {
    pub address: u64,
    pub gsi_base: u32,
}

/// What the kernel learnt from ACPI.
pub struct Acpi {
    pub rsdp_address: u64,
    pub rsdp_source: RsdpSource,
    pub revision: u8,
    pub oem_id: [u8; 6],
    pub signatures: [[u8; 4]; MAX_TABLES],
    pub table_count: usize,
    /// Tables whose checksum is wrong (used anyway, as Linux does; reported).
    pub bad_checksums: [[u8; 4]; 8],
    pub bad_checksum_count: usize,
    pub cpus: [CpuEntry; MAX_CPUS],
    pub cpu_count: usize,
    /// Enabled processors beyond `MAX_CPUS`.
    pub cpus_beyond_limit: usize,
    /// Processor entries neither enabled nor online-capable.
    pub cpus_disabled: usize,
    pub max_apic_id: u32,
    pub lapic_address: u64,
    pub ioapic_count: usize,
    /// The first I/O APICs: register base and first GSI.
    pub ioapics: [IoApicEntry; 8],
    /// The MADT walk stopped at a malformed entry.
    pub madt_truncated: bool,
    pub hpet: Option<HpetTable>,
    pub dmar: Option<acpi_probe::dmar::DmarFlags>,
}

/// The RSDP's bytes as found (at least 36 available, or 20 for revision 0).
pub struct RsdpLocation {
    pub address: u64,
    pub bytes: &'static [u8],
    pub source: RsdpSource,
}

/// Locates the RSDP by the BIOS-area scan: the first KiB of the EBDA (segment at 0x40E),
/// then 0xE0000..0xFFFFF (ACPI 6.5 section 5.2.5.1).
pub fn scan_bios_area() -> Option<RsdpLocation> {
    let ebda_segment = physical(0x40e, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))?;
    let ebda = u64::from(ebda_segment) << 4;
    let areas = [(ebda, 1024usize), (0xe0000, 0x20000)];
    for (base, len) in areas {
        if base < 0x400 || base + len as u64 > 0x10_0000 {
            continue;
        }
        let Some(area) = physical(base, len) else {
            continue;
        };
        if let Some(offset) = acpi_probe::rsdp::scan(area) {
            let address = base + offset as u64;
            let bytes = physical(address, Rsdp::LEN_V2.min(len - offset))?;
            return Some(RsdpLocation {
                address,
                bytes,
                source: RsdpSource::BiosScan,
            });
        }
    }
    None
}

/// The RSDP at a physical address given by the boot loader.
pub fn rsdp_at(address: u64, source: RsdpSource) -> Option<RsdpLocation> {
    let bytes = physical(address, Rsdp::LEN_V2)?;
    Some(RsdpLocation {
        address,
        bytes,
        source,
    })
}

/// An RSDP handed over as a copy (multiboot2 ACPI tags).
pub fn rsdp_copy(bytes: &'static [u8], address: u64, source: RsdpSource) -> RsdpLocation {
    RsdpLocation {
        address,
        bytes,
        source,
    }
}

/// Reads the root table and the MADT, HPET and DMAR tables.
pub fn discover(location: RsdpLocation) -> Result<Acpi, &'static str> {
    let rsdp =
        Rsdp::parse(location.bytes).map_err(|_| "RSDP is invalid (signature or checksum)")?;
    let root_address = match rsdp.xsdt_address {
        Some(xsdt) => xsdt,
        None => u64::from(rsdp.rsdt_address),
    };
    let root_bytes = table_at(root_address)?;
    let root = RootTable::parse(root_bytes).map_err(|_| "RSDT/XSDT is invalid")?;
    let mut acpi = Acpi {
        rsdp_address: location.address,
        rsdp_source: location.source,
        revision: rsdp.revision,
        oem_id: rsdp.oem_id,
        signatures: [[0; 4]; MAX_TABLES],
        table_count: 0,
        bad_checksums: [[0; 4]; 8],
        bad_checksum_count: 0,
        cpus: [CpuEntry { apic_id: 0 }; MAX_CPUS],
        cpu_count: 0,
        cpus_beyond_limit: 0,
        cpus_disabled: 0,
        max_apic_id: 0,
        lapic_address: 0xfee0_0000,
        ioapic_count: 0,
        ioapics: [IoApicEntry::default(); 8],
        madt_truncated: false,
        hpet: None,
        dmar: None,
    };
    let mut madt_bytes = None;
    for address in root.entries() {
        let Ok(bytes) = table_at(address) else {
            continue;
        };
        let Ok(table) = Table::new(bytes) else {
            continue;
        };
        let signature = table.header().signature;
        if let Some(slot) = acpi.signatures.get_mut(acpi.table_count) {
            *slot = signature;
            acpi.table_count += 1;
        }
        if !table.checksum_valid() {
            if let Some(slot) = acpi.bad_checksums.get_mut(acpi.bad_checksum_count) {
                *slot = signature;
                acpi.bad_checksum_count += 1;
            }
        }
        match &signature {
            b"APIC" if madt_bytes.is_none() => madt_bytes = Some(table.bytes()),
            // The first HPET table in root-table order is the one used (its HPET number
            // need not be 0; some firmware lists the same block twice); the MMIO
            // capability register, read later, is the truth about its timers.
            b"HPET" if acpi.hpet.is_none() => acpi.hpet = HpetTable::parse(table.bytes()).ok(),
            b"DMAR" if acpi.dmar.is_none() => {
                acpi.dmar = Dmar::parse(table.bytes()).ok().map(|d| d.flags)
            }
            _ => {}
        }
    }
    let madt = Madt::parse(madt_bytes.ok_or("no MADT (APIC table): cannot find the CPUs")?)
        .map_err(|_| "MADT is invalid")?;
    acpi.lapic_address = u64::from(madt.local_apic_address);
    // A malformed entry ends the walk; what came before it is used (as Linux does) and the
    // truncation is reported.
    for entry in madt.entries() {
        let Ok(entry) = entry else {
            acpi.madt_truncated = true;
            break;
        };
        match entry {
            acpi_probe::madt::MadtEntry::IoApic {
                address, gsi_base, ..
            } => {
                if let Some(slot) = acpi.ioapics.get_mut(acpi.ioapic_count) {
                    *slot = IoApicEntry {
                        address: u64::from(address),
                        gsi_base,
                    };
                }
                acpi.ioapic_count += 1;
            }
            acpi_probe::madt::MadtEntry::LocalApicAddressOverride { address } => {
                acpi.lapic_address = address
            }
            _ => {}
        }
    }
    for processor in madt.processors() {
        let Ok(processor) = processor else { break };
        // Only enabled processors are started; online-capable ones are hot-plug slots.
        if !processor.enabled {
            if !processor.online_capable {
                acpi.cpus_disabled += 1;
            }
            continue;
        }
        // A firmware listing the same APIC ID twice (in a type 0 and a type 9 entry) means
        // one CPU.
        if acpi.cpus[..acpi.cpu_count]
            .iter()
            .any(|c| c.apic_id == processor.apic_id)
        {
            continue;
        }
        match acpi.cpus.get_mut(acpi.cpu_count) {
            Some(slot) => {
                *slot = CpuEntry {
                    apic_id: processor.apic_id,
                };
                acpi.cpu_count += 1;
                acpi.max_apic_id = acpi.max_apic_id.max(processor.apic_id);
            }
            None => acpi.cpus_beyond_limit += 1,
        }
    }
    if acpi.cpu_count == 0 {
        return Err("MADT lists no enabled processor");
    }
    Ok(acpi)
}
