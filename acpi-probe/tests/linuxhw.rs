//! Real-machine tables (tests/fixtures/linuxhw, from the linuxhw/ACPI collection) decoded
//! and parsed by acpi-probe, compared with facts that ACPICA's acpixtract and iasl report
//! for the same dumps (tests/fixtures/linuxhw/expected.tsv, written by
//! tests/fixtures/gen-expected.sh).

use acpi_probe::acpidump::{self, DumpedTable};
use acpi_probe::dmar::{DeviceScopeType, Dmar, RemappingStructure};
use acpi_probe::hpet::HpetTable;
use acpi_probe::ivrs::{DeviceEntry, Ivrs, IvrsBlock, SpecialVariety};
use acpi_probe::madt::{Madt, MadtEntry};
use acpi_probe::sdt::Table;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Key -> value facts about one machine.
type Facts = BTreeMap<String, String>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linuxhw")
}

fn dump_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".acpidump") {
            files.insert(name);
        }
    }
    files
}

fn decode(file: &str) -> Vec<DumpedTable> {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    acpidump::decode(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// expected.tsv: `file <TAB> key <TAB> value` lines after a `#` comment and a header.
fn expected() -> BTreeMap<String, Facts> {
    let text = std::fs::read_to_string(fixtures().join("expected.tsv")).unwrap();
    let mut lines = text.lines().filter(|line| !line.starts_with('#'));
    assert_eq!(
        lines.next(),
        Some("file\tkey\tvalue"),
        "expected.tsv header"
    );
    let mut all: BTreeMap<String, Facts> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, key, value] = fields[..] else {
            panic!("expected.tsv: malformed line {line:?}")
        };
        let previous = all
            .entry(file.into())
            .or_default()
            .insert(key.into(), value.into());
        assert!(previous.is_none(), "expected.tsv: {file} has {key} twice");
    }
    all
}

fn hex(value: impl std::fmt::LowerHex) -> String {
    format!("{value:#x}")
}

fn flag(value: bool) -> String {
    u8::from(value).to_string()
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The facts acpi-probe finds in one dump, under the keys gen-expected.sh writes.
fn facts(file: &str, tables: &[DumpedTable]) -> Facts {
    let mut facts = Facts::new();
    let mut put = |key: String, value: String| {
        assert!(
            facts.insert(key.clone(), value).is_none(),
            "{file}: {key} twice"
        );
    };
    put(
        "dump.tables".into(),
        join(
            tables
                .iter()
                .map(|t| format!("{}:{}", t.signature_from_header, t.bytes.len())),
        ),
    );
    put(
        "dump.checksums_valid".into(),
        join(tables.iter().map(|t| {
            let table = t.table().unwrap_or_else(|e| panic!("{file}: {e}"));
            format!(
                "{}:{}",
                t.signature_from_header,
                flag(table.checksum_valid())
            )
        })),
    );

    for dumped in acpidump::with_signature(tables, "APIC") {
        let madt = Madt::parse(&dumped.bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let entries: Vec<MadtEntry> = madt
            .entries()
            .map(|e| e.unwrap_or_else(|e| panic!("{file}: {e}")))
            .collect();
        let processors: Vec<_> = madt.processors().map(Result::unwrap).collect();
        // The walk's type:length pairs: the kind from the variant, the length from the
        // spacing of the entries (the table's bytes are walked again independently here).
        let mut lengths = Vec::new();
        let mut offset = 44;
        while let Some(&length) = dumped.bytes.get(offset + 1) {
            lengths.push(length);
            offset += usize::from(length.max(1));
        }
        assert_eq!(lengths.len(), entries.len(), "{file}: MADT entry count");
        let kinds = entries.iter().zip(&lengths).map(|(entry, length)| {
            let kind = match *entry {
                MadtEntry::LocalApic { .. } => 0,
                MadtEntry::IoApic { .. } => 1,
                MadtEntry::InterruptSourceOverride { .. } => 2,
                MadtEntry::NmiSource { .. } => 3,
                MadtEntry::LocalApicNmi { .. } => 4,
                MadtEntry::LocalApicAddressOverride { .. } => 5,
                MadtEntry::X2Apic { .. } => 9,
                MadtEntry::X2ApicNmi { .. } => 10,
                MadtEntry::Other { kind, .. } => kind,
            };
            format!("{kind}:{}", hex(*length))
        });
        put(
            "madt.local_apic_address".into(),
            hex(madt.local_apic_address),
        );
        put("madt.pcat_compat".into(), flag(madt.pcat_compat()));
        put("madt.entries".into(), join(kinds));
        put(
            "madt.processor_entries".into(),
            processors.len().to_string(),
        );
        put(
            "madt.processors_enabled".into(),
            processors.iter().filter(|p| p.enabled).count().to_string(),
        );
        put(
            "madt.x2apic_entries".into(),
            processors
                .iter()
                .filter(|p| p.x2apic_entry)
                .count()
                .to_string(),
        );
        put(
            "madt.apic_ids".into(),
            join(processors.iter().map(|p| hex(p.apic_id))),
        );
        let mut ioapics = 0;
        for entry in &entries {
            if let MadtEntry::IoApic {
                id,
                address,
                gsi_base,
            } = *entry
            {
                put(
                    format!("madt.ioapic.{ioapics}"),
                    format!(
                        "id={} address={} gsi_base={}",
                        hex(id),
                        hex(address),
                        hex(gsi_base)
                    ),
                );
                ioapics += 1;
            }
        }
        put("madt.ioapic_count".into(), ioapics.to_string());
    }

    for (index, dumped) in acpidump::with_signature(tables, "HPET").enumerate() {
        let hpet = HpetTable::parse(&dumped.bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let key = |name: &str| format!("hpet.{index}.{name}");
        put(key("hardware_rev_id"), hex(hpet.hardware_rev_id));
        put(key("comparator_count"), hpet.comparator_count.to_string());
        put(key("counter_64bit"), flag(hpet.counter_64bit));
        put(key("legacy_replacement"), flag(hpet.legacy_replacement));
        put(key("pci_vendor_id"), hex(hpet.pci_vendor_id));
        put(
            key("address_space_id"),
            hex(hpet.base_address.address_space_id),
        );
        put(key("base_address"), hex(hpet.base_address.address));
        put(key("hpet_number"), hex(hpet.hpet_number));
        put(key("minimum_tick"), hex(hpet.minimum_tick));
        put(key("page_protection"), hex(hpet.page_protection));
    }

    for dumped in acpidump::with_signature(tables, "DMAR") {
        let dmar = Dmar::parse(&dumped.bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        put(
            "dmar.host_address_width".into(),
            dmar.host_address_width.to_string(),
        );
        put("dmar.intr_remap".into(), flag(dmar.flags.intr_remap));
        put(
            "dmar.x2apic_opt_out".into(),
            flag(dmar.flags.x2apic_opt_out),
        );
        put(
            "dmar.dma_ctrl_platform_opt_in".into(),
            flag(dmar.flags.dma_ctrl_platform_opt_in),
        );
        let structures: Vec<RemappingStructure> = dmar
            .structures()
            .map(|s| s.unwrap_or_else(|e| panic!("{file}: {e}")))
            .collect();
        let mut kinds = Vec::new();
        let (mut drhds, mut scope_count, mut hpet_scopes) = (0, 0, 0);
        let mut offset = 48;
        for (index, structure) in structures.iter().enumerate() {
            let kind = match *structure {
                RemappingStructure::Drhd { .. } => 0,
                RemappingStructure::Rmrr { .. } => 1,
                RemappingStructure::Atsr { .. } => 2,
                RemappingStructure::Rhsa { .. } => 3,
                RemappingStructure::Andd { .. } => 4,
                RemappingStructure::Other { kind, .. } => kind,
            };
            let length = u16::from_le_bytes([dumped.bytes[offset + 2], dumped.bytes[offset + 3]]);
            if let RemappingStructure::Other { length: walked, .. } = *structure {
                assert_eq!(walked, length, "{file}: DMAR structure at {offset:#x}");
            }
            offset += usize::from(length);
            kinds.push(format!("{kind}:{}", hex(length)));
            let Some(scopes) = structure.scopes() else {
                continue;
            };
            let scopes: Vec<_> = scopes
                .iter()
                .map(|s| s.unwrap_or_else(|e| panic!("{file}: {e}")))
                .collect();
            scope_count += scopes.len();
            if let RemappingStructure::Drhd {
                flags,
                segment,
                register_base,
                ..
            } = *structure
            {
                put(
                    format!("dmar.drhd.{drhds}"),
                    format!(
                        "flags={} segment={} register_base={} scopes={}",
                        hex(flags),
                        hex(segment),
                        hex(register_base),
                        scopes.len()
                    ),
                );
                drhds += 1;
            }
            for scope in scopes
                .iter()
                .filter(|s| s.kind == DeviceScopeType::MsiCapableHpet)
            {
                let path = join(
                    scope
                        .path_entries()
                        .map(|(d, f)| format!("{d:02x}.{f:02x}")),
                );
                let source_id = scope
                    .source_id()
                    .map_or("none".into(), |id| format!("{id:#06x}"));
                let mut value = String::new();
                write!(
                    value,
                    "structure={index} enumeration_id={} start_bus={} path={path} source_id={source_id}",
                    hex(scope.enumeration_id),
                    hex(scope.start_bus),
                )
                .unwrap();
                put(format!("dmar.hpet_scope.{hpet_scopes}"), value);
                hpet_scopes += 1;
            }
        }
        assert_eq!(
            offset,
            dumped.bytes.len(),
            "{file}: DMAR structures fill the table"
        );
        put("dmar.structures".into(), join(kinds));
        put("dmar.drhd_count".into(), drhds.to_string());
        put("dmar.scope_count".into(), scope_count.to_string());
        put("dmar.hpet_scope_count".into(), hpet_scopes.to_string());
    }

    for dumped in acpidump::with_signature(tables, "IVRS") {
        ivrs_facts(file, &dumped.bytes, &mut put);
    }
    facts
}

/// The IVRS facts, under the keys gen-expected.sh writes.
fn ivrs_facts(file: &str, bytes: &[u8], put: &mut impl FnMut(String, String)) {
    let ivrs = Ivrs::parse(bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    let info = ivrs.info;
    put("ivrs.info".into(), hex(info.raw));
    put("ivrs.efr_sup".into(), flag(info.efr_sup));
    put("ivrs.dma_remap".into(), flag(info.dma_remap));
    put("ivrs.gva_size".into(), info.gva_size.to_string());
    put("ivrs.pa_size".into(), info.pa_size.to_string());
    put("ivrs.va_size".into(), info.va_size.to_string());
    put("ivrs.ht_ats_reserved".into(), flag(info.ht_ats_reserved));
    let mut kinds = Vec::new();
    let mut offset = 48;
    for (index, block) in ivrs.blocks().enumerate() {
        let block = block.unwrap_or_else(|e| panic!("{file}: {e}"));
        // The length from the table's bytes, walked again independently here.
        let length = u16::from_le_bytes([bytes[offset + 2], bytes[offset + 3]]);
        assert_eq!(block.length(), length, "{file}: IVRS block at {offset:#x}");
        assert_eq!(
            block.kind(),
            bytes[offset],
            "{file}: IVRS block at {offset:#x}"
        );
        offset += usize::from(length);
        kinds.push(format!("{}:{}", hex(block.kind()), hex(length)));
        let IvrsBlock::Ivhd(ivhd) = block else {
            continue;
        };
        let mut desc = format!(
            "type={} flags={} length={} device_id={} capability_offset={} base={} segment={} info={} feature_reporting={}",
            hex(ivhd.kind),
            hex(ivhd.flags),
            hex(ivhd.length),
            hex(ivhd.iommu_device_id),
            hex(ivhd.capability_offset),
            hex(ivhd.base_address),
            hex(ivhd.pci_segment),
            hex(ivhd.info),
            hex(ivhd.feature_reporting),
        );
        if let Some(efr) = ivhd.efr {
            write!(desc, " efr={}", hex(efr)).unwrap();
        }
        put(format!("ivrs.block.{index}"), desc);
        let mut entries = Vec::new();
        let mut specials = 0;
        for entry in ivhd.entries() {
            let entry = entry.unwrap_or_else(|e| panic!("{file}: {e}"));
            // Type and the "Device ID" field (bytes 0 and 1-2), as iasl prints them.
            let (kind, device_id) = match entry {
                DeviceEntry::Pad => (0, 0),
                DeviceEntry::All { .. } => (1, 0),
                DeviceEntry::Select { device_id, .. } => (2, device_id),
                DeviceEntry::RangeStart { device_id, .. } => (3, device_id),
                DeviceEntry::RangeEnd { device_id } => (4, device_id),
                DeviceEntry::AliasSelect { device_id, .. } => (0x42, device_id),
                DeviceEntry::AliasRangeStart { device_id, .. } => (0x43, device_id),
                DeviceEntry::ExtendedSelect { device_id, .. } => (0x46, device_id),
                DeviceEntry::ExtendedRangeStart { device_id, .. } => (0x47, device_id),
                // Bytes 1-2 of a special-device entry are reserved: zero in every fixture.
                DeviceEntry::Special { .. } => (0x48, 0),
                DeviceEntry::AcpiHid { device_id, .. } => (0xf0, device_id),
                DeviceEntry::Other {
                    kind, device_id, ..
                } => (kind, device_id),
            };
            entries.push(format!("{}:{}", hex(kind), hex(device_id)));
            if let DeviceEntry::Special {
                dte,
                handle,
                device_id,
                variety,
            } = entry
            {
                put(
                    format!("ivrs.block.{index}.special.{specials}"),
                    format!(
                        "variety={} handle={} device_id={} dte={} iommu_base={}",
                        u8::from(variety),
                        hex(handle),
                        hex(device_id),
                        hex(dte),
                        hex(ivhd.base_address)
                    ),
                );
                specials += 1;
            }
        }
        put(format!("ivrs.block.{index}.entries"), join(entries));
        put(
            format!("ivrs.block.{index}.special_count"),
            specials.to_string(),
        );
    }
    assert_eq!(offset, bytes.len(), "{file}: IVRS blocks fill the table");
    put("ivrs.blocks".into(), join(kinds));
}

/// ACPICA's value `wanted` ends in "..." (it decoded this much and no further): whether
/// acpi-probe's `found` starts with that prefix and goes on.
fn matches_prefix(wanted: &str, found: &str) -> bool {
    wanted.strip_suffix("...").is_some_and(|prefix| {
        (prefix.ends_with(',') || prefix.ends_with(' '))
            && found.len() > prefix.len()
            && found.starts_with(prefix)
    })
}

/// Whether `key` lies under a fact ACPICA decoded only in part (`ivrs.block.2.entries`
/// under `ivrs.block.2` = "type=0x40 ... ..."): ACPICA has nothing to compare it with.
fn under_partial(key: &str, wanted: &Facts) -> bool {
    key.match_indices('.').any(|(at, _)| {
        wanted
            .get(&key[..at])
            .is_some_and(|value| value.ends_with("..."))
    })
}

/// Every fact ACPICA reports is what acpi-probe finds, and acpi-probe finds no fact ACPICA
/// does not report.
#[test]
fn tables_match_acpica() {
    let expected = expected();
    let files = dump_files();
    assert_eq!(files.len(), 35, "fixture dumps");
    assert_eq!(
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        files,
        "expected.tsv covers the dumps"
    );
    let mut mismatches = Vec::new();
    let (mut compared, mut ivrs_compared, mut unchecked) = (0, 0, 0);
    for file in &files {
        let found = facts(file, &decode(file));
        let wanted = &expected[file];
        for key in wanted.keys().chain(found.keys()).collect::<BTreeSet<_>>() {
            match (wanted.get(key), found.get(key)) {
                // Equal, or a prefix: ACPICA decoded this much and no further.
                (Some(w), Some(f)) if w == f || matches_prefix(w, f) => {
                    compared += 1;
                    ivrs_compared += usize::from(key.starts_with("ivrs."));
                }
                (None, Some(_)) if under_partial(key, wanted) => unchecked += 1,
                (w, f) => mismatches.push(format!("{file}: {key}: ACPICA {w:?}, acpi-probe {f:?}")),
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(compared > 1000, "only {compared} facts compared");
    assert!(
        ivrs_compared > 150,
        "only {ivrs_compared} IVRS facts compared"
    );
    // The IVHD 40h blocks this iasl cannot decode: their entry lists, special-device counts
    // and three special devices each, on 6 machines (their fields past the device ID are
    // unchecked too, as the prefix of `ivrs.block.2`).
    assert_eq!(unchecked, 30, "facts under partly decoded blocks");
}

/// On machines with an IVRS and an HPET table, the IOMMU blocks of the type Linux would use
/// list the HPET (by the HPET table's HPET number) as a special device, with the same device
/// ID in every IVHD type. Except on the IdeaPad 5 15ARE05, whose HPET table says HPET number
/// 2 while its IVRS lists the HPET as handle 0: Linux (which matches the handle with the
/// HPET table's number) finds no device ID for that HPET's MSIs under AMD-Vi interrupt
/// remapping; its `ivrs_hpet[2]=00:14.0` parameter exists for such firmware.
#[test]
fn ivrs_names_the_hpet() {
    let mut found = Vec::new();
    for file in dump_files() {
        let tables = decode(&file);
        let Some(ivrs) = acpidump::with_signature(&tables, "IVRS").next() else {
            continue;
        };
        let ivrs = Ivrs::parse(&ivrs.bytes).unwrap();
        let kind = ivrs.preferred_ivhd_kind().unwrap();
        let hpets: Vec<_> = ivrs
            .special_devices()
            .map(Result::unwrap)
            .filter(|s| s.variety == SpecialVariety::Hpet)
            .collect();
        assert!(
            hpets
                .iter()
                .all(|s| (s.handle, s.device_id) == (hpets[0].handle, hpets[0].device_id)),
            "{file}: {hpets:?}"
        );
        for hpet in acpidump::with_signature(&tables, "HPET") {
            let number = HpetTable::parse(&hpet.bytes).unwrap().hpet_number;
            let device = ivrs.hpet(number).map(Result::unwrap);
            if let Some(device) = device {
                assert_eq!(device.ivhd_kind, kind, "{file}");
                assert_eq!(device.device_id, hpets[0].device_id, "{file}");
            }
            found.push((
                file.clone(),
                number,
                hpets[0].handle,
                device.map(|d| d.device_id),
            ));
        }
    }
    let ideapad = "Notebook-Lenovo-IdeaPad-5-15ARE05-81YQ_929BE1EA74BF.acpidump";
    for (file, number, handle, device_id) in &found {
        if file == ideapad {
            assert_eq!((*number, *handle, *device_id), (2, 0, None), "{file}");
        } else {
            assert_eq!((*number, *device_id), (0, Some(0xa0)), "{file}");
        }
    }
    assert_eq!(found.len(), 4, "machines with an IVRS and an HPET table");
}

/// INDEX.tsv's feature tags (chosen when the fixtures were picked) hold for the tables.
#[test]
fn index_features_hold() {
    let index = std::fs::read_to_string(fixtures().join("INDEX.tsv")).unwrap();
    let mut rows = index.lines();
    assert_eq!(
        rows.next(),
        Some("file\tsource path in linuxhw/ACPI\tfeatures")
    );
    let mut listed = BTreeSet::new();
    for row in rows {
        let fields: Vec<&str> = row.split('\t').collect();
        let [file, _, features] = fields[..] else {
            panic!("INDEX.tsv: malformed row {row:?}")
        };
        listed.insert(file.to_string());
        let tables = decode(file);
        let signatures = |s| acpidump::with_signature(&tables, s);
        let hpets: Vec<HpetTable> = signatures("HPET")
            .map(|t| HpetTable::parse(&t.bytes).unwrap())
            .collect();
        let dmar = signatures("DMAR")
            .next()
            .map(|t| Dmar::parse(&t.bytes).unwrap());
        let hpet_scopes = dmar.map_or(0, |dmar| {
            dmar.structures()
                .filter_map(|s| s.unwrap().scopes())
                .flat_map(|scopes| scopes.iter().map(Result::unwrap))
                .filter(|scope| scope.kind == DeviceScopeType::MsiCapableHpet)
                .count()
        });
        let madt = Madt::parse(&signatures("APIC").next().unwrap().bytes).unwrap();
        for feature in features.split(',') {
            let holds = match feature {
                "server" | "plain" => true,
                "nohpet" => hpets.is_empty(),
                "multi_hpet" => hpets.len() >= 2,
                "counter32" => hpets.iter().any(|h| !h.counter_64bit),
                "hpet32timers" => hpets.iter().any(|h| h.comparator_count == 32),
                "oddvendor" => hpets.iter().any(|h| matches!(h.pci_vendor_id, 0 | 0xffff)),
                "x2apic" => madt.processors().any(|p| p.unwrap().x2apic_entry),
                "ivrs" => signatures("IVRS").next().is_some(),
                "dmar_hpetscope" => dmar.is_some() && hpet_scopes > 0,
                "dmar_nohpetscope" => dmar.is_some() && hpet_scopes == 0,
                "dmar_noir" => dmar.is_some_and(|d| !d.flags.intr_remap),
                other => panic!("INDEX.tsv: unknown feature {other:?} for {file}"),
            };
            assert!(holds, "{file}: feature {feature} does not hold");
        }
    }
    assert_eq!(listed, dump_files(), "INDEX.tsv lists the dumps");
}

/// Real tables with any one byte set to 0x00 or 0xFF, or cut short, parse or fail cleanly:
/// no panic, and every walk ends.
#[test]
fn corrupted_real_tables_never_panic() {
    fn walk(bytes: &[u8]) {
        let _ = Table::new(bytes).map(|t| t.checksum_valid());
        let _ = HpetTable::parse(bytes);
        if let Ok(madt) = Madt::parse(bytes) {
            assert!(madt.entries().count() <= bytes.len() / 2);
            madt.processors().for_each(drop);
        }
        if let Ok(dmar) = Dmar::parse(bytes) {
            for structure in dmar.structures().flatten() {
                if let Some(scopes) = structure.scopes() {
                    assert!(scopes.iter().count() <= bytes.len() / 6);
                }
            }
        }
        if let Ok(ivrs) = Ivrs::parse(bytes) {
            for block in ivrs.blocks().flatten() {
                if let IvrsBlock::Ivhd(ivhd) = block {
                    assert!(ivhd.entries().count() <= bytes.len() / 4);
                }
            }
            assert!(ivrs.special_devices().count() <= bytes.len() / 8);
            let _ = ivrs.hpet(0);
        }
    }
    let mut walked = 0;
    for file in dump_files() {
        for dumped in decode(&file) {
            if !matches!(
                dumped.signature_from_header.as_str(),
                "APIC" | "HPET" | "DMAR" | "IVRS"
            ) {
                continue;
            }
            let original = dumped.bytes;
            for len in 0..original.len() {
                walk(&original[..len]);
            }
            for position in 0..original.len() {
                for value in [0x00, 0xff] {
                    let mut bytes = original.clone();
                    bytes[position] = value;
                    walk(&bytes);
                    walked += 1;
                }
            }
        }
    }
    assert!(walked > 10_000, "only {walked} corruptions tried");
}

/// Cutting a dump's text anywhere gives tables or an error, never a panic; cutting inside a
/// hex line's bytes shortens the last table rather than being accepted as whole.
#[test]
fn truncated_dump_text_never_panics() {
    let file = "Notebook-Dell-Latitude-3590_D10A9696B4DB.acpidump";
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let whole = acpidump::decode(&text).unwrap();
    let total: usize = whole.iter().map(|t| t.bytes.len()).sum();
    for end in (0..text.len()).filter(|&end| text.is_char_boundary(end)) {
        if let Ok(tables) = acpidump::decode(&text[..end]) {
            assert!(tables.iter().map(|t| t.bytes.len()).sum::<usize>() <= total);
        }
    }
}
