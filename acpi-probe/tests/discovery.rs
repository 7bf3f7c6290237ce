//! The kernel's discovery path through the public API, on a simulated physical memory: BIOS
//! area scan for the RSDP, XSDT, then the MADT, HPET and DMAR found by signature.

use acpi_probe::dmar::{DeviceScopeType, Dmar, RemappingStructure};
use acpi_probe::hpet::{regs, GeneralCapabilities, HpetTable};
use acpi_probe::madt::{Madt, MadtEntry};
use acpi_probe::root::RootTable;
use acpi_probe::rsdp::{self, Rsdp};
use acpi_probe::sdt::{SdtHeader, Table, HEADER_LEN};
use acpi_probe::ParseError;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn sdt(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut bytes = signature.to_vec();
    bytes.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(b"OEMID OEMTABLE");
    bytes.extend_from_slice(&[0; 12]);
    bytes.extend_from_slice(body);
    bytes[9] = 0u8.wrapping_sub(sum(&bytes));
    bytes
}

/// Physical memory from 0 to 1 MiB plus a table area at 0x10_0000.
struct Memory(Vec<u8>);

impl Memory {
    fn put(&mut self, address: usize, bytes: &[u8]) {
        self.0[address..address + bytes.len()].copy_from_slice(bytes);
    }

    fn at(&self, address: u64, len: usize) -> Option<&[u8]> {
        self.0.get(usize::try_from(address).ok()?..)?.get(..len)
    }

    /// Like the kernel's `table_at`: the header's length decides how much to map.
    fn table_at(&self, address: u64) -> Option<&[u8]> {
        let length = SdtHeader::parse(self.at(address, HEADER_LEN)?).ok()?.length as usize;
        self.at(address, length)
    }
}

fn machine() -> Memory {
    let mut memory = Memory(vec![0; 0x11_0000]);
    let madt = {
        let mut body = 0xfee0_0000u32.to_le_bytes().to_vec();
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        body.extend_from_slice(&[0, 8, 1, 1, 1, 0, 0, 0]);
        body.extend_from_slice(&[1, 12, 2, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        body.extend_from_slice(&[9, 16, 0, 0, 0x00, 0x02, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        body.extend_from_slice(&[9, 16, 0, 0, 0x01, 0x02, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        sdt(b"APIC", &body)
    };
    let hpet = {
        let mut body = 0x8086_a201u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 64, 0, 0]);
        body.extend_from_slice(&0xfed0_0000u64.to_le_bytes());
        body.extend_from_slice(&[0, 0x80, 0, 0]);
        sdt(b"HPET", &body)
    };
    let dmar = {
        let mut body = vec![38, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&[0, 0, 32, 0, 1, 0, 0, 0]);
        body.extend_from_slice(&0xfed9_1000u64.to_le_bytes());
        body.extend_from_slice(&[3, 8, 0, 0, 2, 0xf0, 0x1f, 0]);
        body.extend_from_slice(&[4, 8, 0, 0, 0, 0x00, 0x1e, 6]);
        sdt(b"DMAR", &body)
    };
    let (madt_at, hpet_at, dmar_at) = (0x10_0000u64, 0x10_0400u64, 0x10_0800u64);
    let mut body = Vec::new();
    for address in [madt_at, 0, hpet_at, dmar_at] {
        body.extend_from_slice(&address.to_le_bytes());
    }
    let xsdt = sdt(b"XSDT", &body);
    let xsdt_at = 0x10_0c00u64;
    let mut rsdp = b"RSD PTR \0BOCHS \x02".to_vec();
    rsdp.extend_from_slice(&0u32.to_le_bytes());
    rsdp.extend_from_slice(&36u32.to_le_bytes());
    rsdp.extend_from_slice(&xsdt_at.to_le_bytes());
    rsdp.extend_from_slice(&[0; 4]);
    rsdp[8] = 0u8.wrapping_sub(sum(&rsdp[..20]));
    rsdp[32] = 0u8.wrapping_sub(sum(&rsdp));
    // A stray, misaligned "RSD PTR " first, then the real one on a 16-byte boundary.
    memory.put(0xe_0008, b"RSD PTR ");
    memory.put(0xf_5a40, &rsdp);
    memory.put(madt_at as usize, &madt);
    memory.put(hpet_at as usize, &hpet);
    memory.put(dmar_at as usize, &dmar);
    memory.put(xsdt_at as usize, &xsdt);
    memory
}

#[test]
fn discovers_cpus_hpet_and_dmar() {
    let memory = machine();
    let area = memory.at(0xe_0000, 0x2_0000).unwrap();
    let offset = rsdp::scan(area).unwrap();
    assert_eq!(offset, 0x1_5a40);
    let rsdp = Rsdp::parse(&area[offset..offset + Rsdp::LEN_V2]).unwrap();
    assert_eq!(rsdp.revision, 2);
    assert_eq!(rsdp.oem_id, *b"BOCHS ");
    let root = RootTable::parse(memory.table_at(rsdp.xsdt_address.unwrap()).unwrap()).unwrap();
    assert!(root.is_xsdt());
    assert_eq!(root.len(), 4);

    let (mut madt, mut hpet, mut dmar) = (None, None, None);
    let mut signatures = Vec::new();
    for address in root.entries() {
        let Some(bytes) = memory.table_at(address) else {
            continue;
        };
        let Ok(table) = Table::new(bytes) else {
            continue;
        };
        assert!(table.checksum_valid());
        signatures.push(table.header().signature);
        match &table.header().signature {
            b"APIC" => madt = Some(Madt::parse(table.bytes()).unwrap()),
            b"HPET" => hpet = HpetTable::parse(table.bytes()).ok(),
            b"DMAR" => dmar = Dmar::parse(table.bytes()).ok(),
            _ => {}
        }
    }
    assert_eq!(
        signatures,
        [*b"APIC", *b"HPET", *b"DMAR"],
        "the zero entry is skipped"
    );

    let madt = madt.unwrap();
    let ioapics = madt
        .entries()
        .filter(|e| matches!(e, Ok(MadtEntry::IoApic { .. })))
        .count();
    assert_eq!(ioapics, 1);
    let cpus: Vec<(u32, bool)> = madt
        .processors()
        .map(|p| p.unwrap())
        .map(|p| (p.apic_id, p.enabled))
        .collect();
    assert_eq!(cpus, [(0, true), (1, true), (0x200, true), (0x201, false)]);

    let hpet = hpet.unwrap();
    assert_eq!(hpet.base_address.address, 0xfed0_0000);
    assert_eq!(hpet.comparator_count, 3);

    let dmar = dmar.unwrap();
    assert!(dmar.flags.intr_remap);
    let Some(Ok(RemappingStructure::Drhd { scopes, .. })) = dmar.structures().next() else {
        panic!("no DRHD")
    };
    let hpet_scope = scopes
        .iter()
        .map(Result::unwrap)
        .find(|s| s.kind == DeviceScopeType::MsiCapableHpet && s.enumeration_id == hpet.hpet_number)
        .unwrap();
    assert_eq!(hpet_scope.source_id(), Some(0x00f6));
}

#[test]
fn hpet_registers_as_the_kernel_reads_them() {
    // The kernel reads the capabilities register as two 32-bit halves.
    let (low, high) = (0x8086_a201u32, 10_000_000u32);
    let capabilities = GeneralCapabilities(u64::from(low) | (u64::from(high) << 32));
    assert!(capabilities.validate().is_ok());
    assert_eq!(capabilities.num_timers(), 3);
    assert_eq!(regs::GENERAL_CAPABILITIES + 4, 4);
    assert_eq!(regs::MAIN_COUNTER + 4, 0xf4);
}

#[test]
fn errors_read_as_sentences() {
    let mut memory = machine();
    // Break the MADT's third entry: length 0.
    memory.put(0x10_0000 + 44 + 17, &[0]);
    let madt = Madt::parse(memory.table_at(0x10_0000).unwrap()).unwrap();
    let error: ParseError = madt.entries().find_map(Result::err).unwrap();
    assert_eq!(
        error.to_string(),
        "MADT entry at offset 0x3c: length 0 is shorter than the 2-byte entry header"
    );
    let error = Rsdp::parse(b"RSD PTR").unwrap_err();
    assert_eq!(
        error.to_string(),
        "RSDP: signature at offset 0x0 needs 8 bytes, only 7 available"
    );
}
