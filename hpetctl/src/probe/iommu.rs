//! IOMMU facts: VT-d (the DMAR table, CAP/ECAP from sysfs or the registers) or AMD-Vi (the
//! IVRS table), the HPET's place in them, and whether Linux has remapping on.

use super::acpi::{LoadedTable, Tables};
use super::linux;
use super::report::{bdf, IommuOut, IommuUnitOut, IvrsHpetOut};
use super::sources::{io_reason, System};
use acpi_probe::dmar::{DeviceScopeType, Dmar, RemappingStructure};
use acpi_probe::ivrs::{Ivrs, IvrsBlock, SpecialVariety};
use acpi_probe::verdict::{IommuFacts, IommuKind};
use anyhow::Result;
use std::io;

impl IommuUnitOut {
    /// A unit at `register_base` whose capabilities are not read (yet).
    fn new(register_base: u64, source: Option<String>) -> Self {
        Self {
            register_base: format!("{register_base:#x}"),
            cap: None,
            ecap: None,
            interrupt_remapping: None,
            extended_interrupt_mode: None,
            source,
        }
    }
}

/// The IOMMU facts for the verdicts and the report's `iommu` section: a `DMAR` table makes
/// it VT-d, else an `IVRS` table AMD-Vi. `interrupts` is `/proc/interrupts` (live).
pub(super) fn read(
    sys: &mut System,
    tables: &Tables,
    hpet_number: Option<u8>,
    interrupts: Option<&str>,
) -> Result<(IommuFacts, IommuOut)> {
    let mut iommu = IommuFacts::NONE;
    let mut out = IommuOut {
        kind: "none",
        interrupt_remapping: false,
        interrupt_remapping_source: "no DMAR or IVRS table".into(),
        extended_interrupt_mode: None,
        source: None,
        dmar_intr_remap: None,
        dmar_x2apic_opt_out: None,
        units: Vec::new(),
        hpet_source_id: None,
        ivrs_hpet: None,
        linux_remapping_enabled: None,
    };
    if let Some(t) = tables.first("DMAR") {
        if let Some(d) = sys.parsed(Dmar::parse(&t.bytes), "DMAR", &t.source)? {
            vtd(sys, t, &d, hpet_number, &mut iommu, &mut out)?;
        }
    } else if let Some(t) = tables.first("IVRS") {
        if let Some(r) = sys.parsed(Ivrs::parse(&t.bytes), "IVRS", &t.source)? {
            amd_vi(sys, t, &r, hpet_number, &mut iommu, &mut out)?;
        }
    }
    out.interrupt_remapping = iommu.interrupt_remapping;
    if let Some(t) = interrupts {
        out.linux_remapping_enabled = Some(linux::interrupts_remapped(t));
    }
    Ok((iommu, out))
}

fn vtd(
    sys: &mut System,
    t: &LoadedTable,
    d: &Dmar,
    hpet_number: Option<u8>,
    iommu: &mut IommuFacts,
    out: &mut IommuOut,
) -> Result<()> {
    iommu.kind = IommuKind::IntelVtd;
    iommu.x2apic_opt_out = d.flags.x2apic_opt_out;
    out.kind = "intel-vtd";
    out.source = Some(t.source.clone());
    out.dmar_intr_remap = Some(d.flags.intr_remap);
    out.dmar_x2apic_opt_out = Some(d.flags.x2apic_opt_out);
    for s in d.structures() {
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                sys.malformed("DMAR structures", &t.source, e)?;
                break;
            }
        };
        if let RemappingStructure::Drhd {
            register_base,
            scopes,
            ..
        } = s
        {
            out.units.push(IommuUnitOut::new(register_base, None));
            for sc in scopes.iter() {
                let sc = match sc {
                    Ok(sc) => sc,
                    Err(e) => {
                        sys.malformed("DMAR device scopes", &t.source, e)?;
                        break;
                    }
                };
                if sc.kind == DeviceScopeType::MsiCapableHpet
                    && Some(sc.enumeration_id) == hpet_number
                    && iommu.hpet_source_id.is_none()
                {
                    iommu.hpet_source_id = sc.source_id();
                }
            }
        }
    }
    out.hpet_source_id = iommu.hpet_source_id.map(bdf);
    // CAP/ECAP: sysfs first, then the registers.
    if sys.live {
        read_vtd_caps(sys, &mut out.units);
    } else {
        sys.note_offline("VT-d CAP/ECAP", "DRHD registers");
    }
    let irs: Vec<Option<bool>> = out.units.iter().map(|u| u.interrupt_remapping).collect();
    if !irs.is_empty() && irs.iter().all(Option::is_some) {
        iommu.interrupt_remapping = irs.iter().all(|x| *x == Some(true));
        out.interrupt_remapping_source = "VT-d ECAP.IR (bit 3) of every DRHD unit".into();
        let eims: Vec<Option<bool>> = out
            .units
            .iter()
            .map(|u| u.extended_interrupt_mode)
            .collect();
        iommu.extended_interrupt_mode = Some(eims.iter().all(|x| *x == Some(true)));
    } else {
        iommu.interrupt_remapping = d.flags.intr_remap;
        out.interrupt_remapping_source = "DMAR flags INTR_REMAP (bit 0)".into();
    }
    out.extended_interrupt_mode = iommu.extended_interrupt_mode;
    Ok(())
}

fn amd_vi(
    sys: &mut System,
    t: &LoadedTable,
    r: &Ivrs,
    hpet_number: Option<u8>,
    iommu: &mut IommuFacts,
    out: &mut IommuOut,
) -> Result<()> {
    iommu.kind = IommuKind::AmdVi;
    out.kind = "amd-vi";
    out.source = Some(t.source.clone());
    let kind = r.preferred_ivhd_kind();
    let mut has_ioapic = false;
    for sd in r.special_devices() {
        match sd {
            Ok(sd) if Some(sd.ivhd_kind) == kind => {
                if sd.variety == SpecialVariety::IoApic {
                    has_ioapic = true;
                }
                if sd.variety == SpecialVariety::Hpet
                    && Some(sd.handle) == hpet_number
                    && out.ivrs_hpet.is_none()
                {
                    out.ivrs_hpet = Some(IvrsHpetOut {
                        device_id: bdf(sd.device_id),
                        nmi_pass: sd.dte & 4 != 0,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => {
                sys.malformed("IVRS device entries", &t.source, e)?;
                break;
            }
        }
    }
    for b in r.blocks().flatten() {
        if let IvrsBlock::Ivhd(h) = b {
            if Some(h.kind) == kind {
                out.units
                    .push(IommuUnitOut::new(h.base_address, Some(t.source.clone())));
            }
        }
    }
    iommu.interrupt_remapping = has_ioapic;
    out.interrupt_remapping_source = "IVRS: an IVHD special-device entry for an I/O APIC (Linux enables AMD-Vi interrupt remapping only then)".into();
    Ok(())
}

/// VT-d CAP and ECAP per DRHD: Linux's sysfs (intel-iommu driver loaded), else the
/// registers at offsets 0x08 and 0x10 (VT-d §11.4.2, §11.4.3) through /dev/mem.
fn read_vtd_caps(sys: &mut System, units: &mut [IommuUnitOut]) {
    // sysfs: /sys/class/iommu/dmarN/intel-iommu/{address,cap,ecap}
    let mut sysfs: Vec<(u64, u64, u64, String)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(sys.path("/sys/class/iommu")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = e.path().join("intel-iommu");
            let rd = |f: &str| {
                std::fs::read_to_string(base.join(f))
                    .ok()
                    .and_then(|s| linux::parse_hex(&s))
            };
            if let (Some(a), Some(c), Some(x)) = (rd("address"), rd("cap"), rd("ecap")) {
                sysfs.push((a, c, x, format!("/sys/class/iommu/{name}/intel-iommu")));
            }
        }
    }
    for u in units.iter_mut() {
        let Some(base) = linux::parse_hex(&u.register_base) else {
            continue;
        };
        let (cap, ecap, source) = if let Some((_, c, x, s)) = sysfs.iter().find(|s| s.0 == base) {
            (*c, *x, s.clone())
        } else {
            let src = format!("VT-d registers via /dev/mem @{base:#x}");
            match sys.read_u64s(base, &[0x08, 0x10]) {
                Ok(v) => (v[0], v[1], src),
                Err(e) => {
                    let how = match e.kind() {
                        io::ErrorKind::NotFound => "load the intel-iommu driver (intel_iommu=on) for /sys/class/iommu, or use a kernel with /dev/mem",
                        _ => "run as root; intel_iommu=on gives the values in /sys/class/iommu without /dev/mem",
                    };
                    sys.note("VT-d CAP/ECAP", &src, io_reason(&e), how);
                    continue;
                }
            }
        };
        if ecap == u64::MAX {
            sys.note(
                "VT-d CAP/ECAP",
                &source,
                "registers read as all ones".into(),
                "",
            );
            continue;
        }
        u.cap = Some(format!("{cap:#x}"));
        u.ecap = Some(format!("{ecap:#x}"));
        u.interrupt_remapping = Some(ecap & (1 << 3) != 0);
        u.extended_interrupt_mode = Some(ecap & (1 << 4) != 0);
        u.source = Some(source);
    }
}
