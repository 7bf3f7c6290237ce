//! `hpetctl probe`: what this machine (or an ACPI dump) offers an HPET NMI watchdog.
//!
//! The decoding and the verdicts are in `acpi-probe` (`cpu`, `verdict`, the table parsers);
//! this module is the host backend: it reads ACPI tables (sysfs, an acpidump file or a
//! directory), HPET and VT-d registers (read-only `/dev/mem`, in [`devmem`]), MSRs
//! (`/dev/cpu/0/msr`), CPUID and Linux state, and renders the report. It writes nothing.
//! See docs/probe.md.

#[allow(unsafe_code)]
mod devmem;
pub mod linux;

use acpi_probe::cpu::{
    self, ApicMode, CpuFacts, CpuidRegs, CpuidSource, MsrRead, MsrSource, PmuKind, PmuUsageError,
    TscFrequencySource, TsxForceAbort,
};
use acpi_probe::dmar::{DeviceScopeType, Dmar, RemappingStructure};
use acpi_probe::hpet::{regs, GeneralCapabilities, HpetTable, TimerCapabilities};
use acpi_probe::ivrs::{Ivrs, SpecialVariety};
use acpi_probe::madt::Madt;
use acpi_probe::sdt::Table;
use acpi_probe::verdict::{
    self, Answer, HeldCounter, HpetFacts, Inputs, IommuFacts, IommuKind, LinuxFacts, Verdict,
};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The JSON schema identifier (docs/probe.md).
pub const SCHEMA: &str = "hpetwd-probe/1";

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

#[derive(Debug, Clone)]
pub struct Options {
    pub tables: TableInput,
    /// The file-system root for live facts (`/`; tests point it at a fake tree).
    pub root: PathBuf,
}

/// One table: its signature, bytes and where it came from.
struct LoadedTable {
    signature: String,
    bytes: Vec<u8>,
    source: String,
}

// ---------------------------------------------------------------------------------------
// The report (JSON schema hpetwd-probe/1)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub input: InputOut,
    pub hpet: HpetOut,
    pub iommu: IommuOut,
    pub cpus: CpusOut,
    pub cpu: Option<CpuOut>,
    pub msr: Option<MsrOut>,
    pub linux: Option<LinuxOut>,
    pub verdicts: VerdictsOut,
    /// Facts that could not be read: what, from where, why, and how to get them.
    pub unread: Vec<Unread>,
}

#[derive(Debug, Serialize)]
pub struct InputOut {
    /// "live", "acpidump" or "tables".
    pub kind: &'static str,
    pub path: Option<String>,
    /// Tables found, in order, as SIGNATURE:length.
    pub tables: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HpetOut {
    pub present: bool,
    pub source: Option<String>,
    /// How many HPET tables (the first is used, as Linux does).
    pub table_count: usize,
    pub table: Option<HpetTableOut>,
    pub registers: Option<HpetRegsOut>,
    /// One object per timer from the MMIO registers (empty when they were not read).
    pub timers: Vec<TimerOut>,
    /// HPET channels Linux uses now (`null` when not known).
    pub linux_channels: Option<Vec<u8>>,
    pub linux_channels_source: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct HpetTableOut {
    pub base_address: String,
    pub address_space_id: u8,
    pub hpet_number: u8,
    pub comparator_count: u8,
    pub counter_64bit: bool,
    pub legacy_replacement: bool,
    pub pci_vendor_id: String,
    pub minimum_tick: u16,
}

#[derive(Debug, Serialize)]
pub struct HpetRegsOut {
    pub source: String,
    pub general_capabilities: String,
    pub period_fs: u32,
    pub frequency_hz: Option<u64>,
    pub num_timers: u8,
    pub counter_64bit: bool,
    pub legacy_route_capable: bool,
    pub vendor_id: String,
    pub revision: u8,
    /// Seconds until a 32-bit counter wraps (`null` for a 64-bit counter).
    pub wrap_seconds_32bit: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct TimerOut {
    pub index: u8,
    pub fsb_capable: bool,
    pub periodic_capable: bool,
    pub size_64bit: bool,
    /// I/O APIC inputs this timer can be routed to (Tn_INT_ROUTE_CAP).
    pub ioapic_routes: Vec<u8>,
    /// Current configuration (what Linux or firmware left): FSB enabled, interrupt enabled.
    pub fsb_enabled: bool,
    pub interrupt_enabled: bool,
    pub config: String,
    pub used_by_linux: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct IommuOut {
    /// "intel-vtd", "amd-vi" or "none".
    pub kind: &'static str,
    /// The hardware offers interrupt remapping.
    pub interrupt_remapping: bool,
    pub interrupt_remapping_source: String,
    /// VT-d ECAP.EIM on every unit (`null`: not read or not VT-d).
    pub extended_interrupt_mode: Option<bool>,
    pub source: Option<String>,
    /// DMAR flags.
    pub dmar_intr_remap: Option<bool>,
    pub dmar_x2apic_opt_out: Option<bool>,
    pub units: Vec<IommuUnitOut>,
    /// The HPET's DMAR type-4 scope: its source-id (bus:dev.fn) for IRTE validation.
    pub hpet_source_id: Option<String>,
    /// The HPET's IVRS special-device entry.
    pub ivrs_hpet: Option<IvrsHpetOut>,
    /// Linux has interrupt remapping on (/proc/interrupts shows IR- chips).
    pub linux_remapping_enabled: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct IommuUnitOut {
    pub register_base: String,
    pub cap: Option<String>,
    pub ecap: Option<String>,
    pub interrupt_remapping: Option<bool>,
    pub extended_interrupt_mode: Option<bool>,
    pub source: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IvrsHpetOut {
    pub device_id: String,
    pub nmi_pass: bool,
}

#[derive(Debug, Serialize)]
pub struct CpusOut {
    /// CPUs online (live) or enabled in the MADT (offline).
    pub online: u32,
    pub online_source: String,
    pub madt_enabled: Option<u32>,
    pub max_apic_id: Option<u32>,
    pub max_apic_id_source: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CpuOut {
    pub source: &'static str,
    pub vendor: String,
    pub family: u32,
    pub model: u32,
    pub stepping: u8,
    pub x2apic: bool,
    pub invariant_tsc: bool,
    pub arat: bool,
    pub tsc_hz: Option<u64>,
    pub tsc_hz_source: Option<&'static str>,
    pub pmu: PmuOut,
    pub tsx_force_abort_enumerated: bool,
    pub hypervisor: Option<HypervisorOut>,
}

#[derive(Debug, Serialize)]
pub struct PmuOut {
    pub kind: &'static str,
    pub version: u8,
    pub gp_counters: u8,
    pub gp_width: u8,
    pub fixed_counters: u8,
    pub fixed_width: u8,
}

#[derive(Debug, Serialize)]
pub struct HypervisorOut {
    pub signature: String,
    pub kvm_msi_ext_dest_id: bool,
}

#[derive(Debug, Serialize)]
pub struct MsrOut {
    pub source: String,
    /// Each MSR read: index, name, value (hex) or "absent".
    pub values: Vec<MsrValueOut>,
    pub apic_mode: Option<&'static str>,
    pub gp_in_use: Option<Vec<u8>>,
    pub fixed_in_use: Option<Vec<u8>>,
}

#[derive(Debug, Serialize)]
pub struct MsrValueOut {
    pub index: String,
    pub name: String,
    pub value: Option<String>,
    pub absent: bool,
}

#[derive(Debug, Serialize)]
pub struct LinuxOut {
    pub nmi_watchdog: Option<String>,
    pub watchdog_thresh: Option<String>,
    pub watchdog_cpumask: Option<String>,
    pub cmdline: Option<Vec<String>>,
    pub clocksource: Option<String>,
    pub available_clocksources: Option<String>,
    pub broadcast_clockevent: Option<String>,
    /// `hpet=nomsi`: Linux leaves FSB-capable channels alone.
    pub hpet_nomsi: bool,
    /// `hpet=disable`: Linux does not use the HPET at all.
    pub hpet_disable: bool,
}

#[derive(Debug, Serialize)]
pub struct VerdictOut {
    pub answer: &'static str,
    pub reason: &'static str,
}

impl From<Verdict> for VerdictOut {
    fn from(v: Verdict) -> Self {
        Self {
            answer: v.answer.as_str(),
            reason: v.reason,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct VerdictsOut {
    pub watchdog_possible: VerdictOut,
    pub hpet_usable: VerdictOut,
    pub timer: TimerChoiceOut,
    pub routes: RoutesOut,
    pub policies: PoliciesOut,
    pub apic_ids_above_255: VerdictOut,
    pub x2apic: VerdictOut,
    pub tsc_trusted: VerdictOut,
    pub pmu: PmuVerdictOut,
}

#[derive(Debug, Serialize)]
pub struct TimerChoiceOut {
    pub index: Option<u8>,
    pub reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct RoutesOut {
    pub fsb_direct: VerdictOut,
    pub fsb_remapped: VerdictOut,
    pub fsb_remapped_source_id: Option<String>,
    pub ioapic: VerdictOut,
    pub ioapic_inputs: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct PoliciesOut {
    pub broadcast: VerdictOut,
    pub round_robin: VerdictOut,
    pub chain: VerdictOut,
    pub remote: VerdictOut,
    pub buddy: VerdictOut,
}

#[derive(Debug, Serialize)]
pub struct PmuVerdictOut {
    pub held_now: Option<u32>,
    pub would_free: Option<u32>,
    pub held_counter: Option<String>,
    pub gp_usable: Option<u8>,
    pub reason: &'static str,
    pub tsx_force_abort: VerdictOut,
}

#[derive(Debug, Serialize, Clone)]
pub struct Unread {
    pub fact: String,
    pub source: String,
    pub reason: String,
    pub how: String,
}

impl Report {
    /// 0 when an HPET NMI watchdog is possible (or not ruled out), 1 when it is not.
    pub fn exit_code(&self) -> u8 {
        if self.verdicts.watchdog_possible.answer == Answer::No.as_str() {
            1
        } else {
            0
        }
    }
}

// ---------------------------------------------------------------------------------------
// Gathering
// ---------------------------------------------------------------------------------------

struct Probe {
    root: PathBuf,
    unread: Vec<Unread>,
}

fn bdf(id: u16) -> String {
    format!("{:02x}:{:02x}.{:x}", id >> 8, (id >> 3) & 0x1f, id & 7)
}

fn bits(mask: u32) -> Vec<u8> {
    (0..32u8).filter(|i| mask & (1 << i) != 0).collect()
}

impl Probe {
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn note(&mut self, fact: &str, source: &str, reason: String, how: &str) {
        self.unread.push(Unread {
            fact: fact.into(),
            source: source.into(),
            reason,
            how: how.into(),
        });
    }

    /// Reads a small text file; a failure is recorded with `how`.
    fn text(&mut self, fact: &str, abs: &str, how: &str) -> Option<String> {
        match std::fs::read_to_string(self.path(abs)) {
            Ok(t) => Some(t),
            Err(e) => {
                let how = if e.kind() == io::ErrorKind::PermissionDenied {
                    "run as root"
                } else {
                    how
                };
                self.note(fact, abs, io_reason(&e), how);
                None
            }
        }
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "does not exist".into(),
        io::ErrorKind::PermissionDenied => format!("permission denied ({e})"),
        _ => e.to_string(),
    }
}

/// Loads the offline tables, or fails with an error naming the file (exit status 2).
fn load_offline(input: &TableInput) -> Result<Vec<LoadedTable>> {
    match input {
        TableInput::Live => Ok(Vec::new()),
        TableInput::Acpidump(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
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
        TableInput::Dir(dir) => {
            let tables = read_table_dir(dir)
                .with_context(|| format!("cannot read the table directory {}", dir.display()))?;
            if tables.is_empty() {
                bail!("{}: no ACPI tables in this directory", dir.display());
            }
            Ok(tables)
        }
    }
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
        let table = Table::new(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not an ACPI table: {e}", path.display()))?;
        out.push(LoadedTable {
            signature: String::from_utf8_lossy(&table.header().signature).into_owned(),
            source: path.display().to_string(),
            bytes,
        });
    }
    Ok(out)
}

/// The live tables from sysfs; unreadable ones are noted (root-only files).
fn load_live(p: &mut Probe) -> Vec<LoadedTable> {
    let abs = "/sys/firmware/acpi/tables";
    let dir = p.path(abs);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            p.note(
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
            Ok(bytes) => match Table::new(&bytes) {
                Ok(t) => out.push(LoadedTable {
                    signature: String::from_utf8_lossy(&t.header().signature).into_owned(),
                    source: format!("{abs}/{name}"),
                    bytes,
                }),
                Err(e) => p.note(
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
                p.note(
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

/// Live CPUID through raw-cpuid.
struct NativeCpuid;

impl CpuidSource for NativeCpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidRegs {
        let r = raw_cpuid::native_cpuid::cpuid_count(leaf, subleaf);
        CpuidRegs {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
}

/// MSRs of CPU 0 through the msr driver (pread at offset = index; EIO means the CPU lacks
/// the MSR).
struct DevMsr {
    file: Option<std::fs::File>,
}

impl MsrSource for DevMsr {
    fn read_msr(&self, index: u32) -> MsrRead {
        let Some(file) = &self.file else {
            return MsrRead::Unread;
        };
        let mut buf = [0u8; 8];
        match file.read_exact_at(&mut buf, u64::from(index)) {
            Ok(()) => MsrRead::Value(u64::from_le_bytes(buf)),
            Err(e) if e.raw_os_error() == Some(5) => MsrRead::Absent,
            Err(_) => MsrRead::Unread,
        }
    }
}

/// Runs the probe.
pub fn probe(opts: &Options) -> Result<Report> {
    let offline = load_offline(&opts.tables)?;
    let live = matches!(opts.tables, TableInput::Live);
    let mut p = Probe {
        root: opts.root.clone(),
        unread: Vec::new(),
    };
    let tables = if live { load_live(&mut p) } else { offline };
    fn find<'t>(
        tables: &'t [LoadedTable],
        sig: &'t str,
    ) -> impl Iterator<Item = &'t LoadedTable> + 't {
        tables.iter().filter(move |t| t.signature == sig)
    }

    // --- MADT
    let mut madt_enabled = None;
    let mut madt_max_apic = None;
    if let Some(t) = find(&tables, "APIC").next() {
        match Madt::parse(&t.bytes) {
            Ok(m) => {
                let mut n = 0u32;
                let mut max = None::<u32>;
                for pr in m.processors() {
                    match pr {
                        Ok(pr) if pr.enabled => {
                            n += 1;
                            max = Some(max.map_or(pr.apic_id, |m: u32| m.max(pr.apic_id)));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if !live {
                                bail!("{}: {e}", t.source);
                            }
                            p.note("MADT processors", &t.source, e.to_string(), "");
                            break;
                        }
                    }
                }
                madt_enabled = Some(n);
                madt_max_apic = max;
            }
            Err(e) if !live => bail!("{}: {e}", t.source),
            Err(e) => p.note("MADT", &t.source, e.to_string(), ""),
        }
    }

    // --- HPET table
    let hpet_tables: Vec<&LoadedTable> = find(&tables, "HPET").collect();
    let mut hpet_table = None;
    if let Some(t) = hpet_tables.first() {
        match HpetTable::parse(&t.bytes) {
            Ok(h) => hpet_table = Some((h, t.source.clone())),
            Err(e) if !live => bail!("{}: {e}", t.source),
            Err(e) => p.note("HPET table", &t.source, e.to_string(), ""),
        }
    }

    // --- HPET registers (live only)
    let mut general = None;
    let mut timer_caps: Vec<TimerCapabilities> = Vec::new();
    let mut regs_source = String::new();
    if let Some((h, _)) = &hpet_table {
        let base = h.base_address.address;
        regs_source = format!("HPET MMIO via /dev/mem @{base:#x}");
        if !live {
            p.note(
                "HPET registers",
                &regs_source,
                "not applicable to an offline input".into(),
                "run hpetctl probe on the machine itself",
            );
        } else {
            read_hpet_regs(&mut p, base, &regs_source, &mut general, &mut timer_caps);
        }
    }

    // --- Linux's use of HPET channels
    let mut linux_channels: Option<Vec<u8>> = None;
    let mut linux_channels_source = Vec::new();
    let mut interrupts_text = None;
    let mut linux_state = None;
    let mut cmdline_opts = Vec::new();
    if live {
        interrupts_text = p.text("interrupt lines", "/proc/interrupts", "mount /proc");
        if let Some(t) = &interrupts_text {
            let mut ch = linux::hpet_channels_in_interrupts(t);
            linux_channels_source.push("/proc/interrupts".to_string());
            if let Some(tl) = p.text(
                "HPET clock event devices",
                "/proc/timer_list",
                "run as root (/proc/timer_list is root-only)",
            ) {
                linux_channels_source.push("/proc/timer_list".to_string());
                for c in linux::hpet_channels_in_timer_list(&tl) {
                    if !ch.contains(&c) {
                        ch.push(c);
                    }
                }
            }
            ch.sort_unstable();
            linux_channels = Some(ch);
        }
        let cmdline = p.text("kernel command line", "/proc/cmdline", "mount /proc");
        if let Some(c) = &cmdline {
            cmdline_opts = linux::cmdline_options(c);
        }
        let read_trim = |p: &mut Probe, fact: &str, abs: &str, how: &str| {
            p.text(fact, abs, how).map(|s| s.trim().to_string())
        };
        let nmi = read_trim(
            &mut p,
            "nmi_watchdog",
            "/proc/sys/kernel/nmi_watchdog",
            "kernel built without CONFIG_LOCKUP_DETECTOR",
        );
        let thresh = read_trim(
            &mut p,
            "watchdog_thresh",
            "/proc/sys/kernel/watchdog_thresh",
            "kernel built without CONFIG_LOCKUP_DETECTOR",
        );
        let mask = read_trim(
            &mut p,
            "watchdog_cpumask",
            "/proc/sys/kernel/watchdog_cpumask",
            "kernel built without CONFIG_LOCKUP_DETECTOR",
        );
        let cs = read_trim(
            &mut p,
            "current clocksource",
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            "mount /sys",
        );
        let avail = read_trim(
            &mut p,
            "available clocksources",
            "/sys/devices/system/clocksource/clocksource0/available_clocksource",
            "mount /sys",
        );
        let bc = std::fs::read_to_string(
            p.path("/sys/devices/system/clockevents/broadcast/current_device"),
        )
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
        if bc.as_deref() == Some("hpet") {
            let ch = linux_channels.get_or_insert_with(Vec::new);
            if !ch.contains(&0) {
                ch.push(0);
                ch.sort_unstable();
            }
            linux_channels_source
                .push("/sys/devices/system/clockevents/broadcast/current_device".into());
        }
        linux_state = Some(LinuxOut {
            nmi_watchdog: nmi,
            watchdog_thresh: thresh,
            watchdog_cpumask: mask,
            cmdline: cmdline.as_ref().map(|_| {
                cmdline_opts
                    .iter()
                    .map(|(k, v)| {
                        if v.is_empty() {
                            k.clone()
                        } else {
                            format!("{k}={v}")
                        }
                    })
                    .collect()
            }),
            clocksource: cs,
            available_clocksources: avail,
            broadcast_clockevent: bc,
            hpet_nomsi: linux::hpet_option(&cmdline_opts, "nomsi"),
            hpet_disable: linux::hpet_option(&cmdline_opts, "disable"),
        });
    }

    // --- IOMMU: DMAR or IVRS
    let mut iommu = IommuFacts::NONE;
    let mut iommu_out = IommuOut {
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
    let hpet_number = hpet_table.as_ref().map(|(h, _)| h.hpet_number);
    if let Some(t) = find(&tables, "DMAR").next() {
        let d = match Dmar::parse(&t.bytes) {
            Ok(d) => Some(d),
            Err(e) if !live => bail!("{}: {e}", t.source),
            Err(e) => {
                p.note("DMAR", &t.source, e.to_string(), "");
                None
            }
        };
        if let Some(d) = d {
            iommu.kind = IommuKind::IntelVtd;
            iommu.x2apic_opt_out = d.flags.x2apic_opt_out;
            iommu_out.kind = "intel-vtd";
            iommu_out.source = Some(t.source.clone());
            iommu_out.dmar_intr_remap = Some(d.flags.intr_remap);
            iommu_out.dmar_x2apic_opt_out = Some(d.flags.x2apic_opt_out);
            for s in d.structures() {
                let s = match s {
                    Ok(s) => s,
                    Err(e) if !live => bail!("{}: {e}", t.source),
                    Err(e) => {
                        p.note("DMAR structures", &t.source, e.to_string(), "");
                        break;
                    }
                };
                if let RemappingStructure::Drhd {
                    register_base,
                    scopes,
                    ..
                } = s
                {
                    iommu_out.units.push(IommuUnitOut {
                        register_base: format!("{register_base:#x}"),
                        cap: None,
                        ecap: None,
                        interrupt_remapping: None,
                        extended_interrupt_mode: None,
                        source: None,
                    });
                    for sc in scopes.iter() {
                        let sc = match sc {
                            Ok(sc) => sc,
                            Err(e) if !live => bail!("{}: {e}", t.source),
                            Err(e) => {
                                p.note("DMAR device scopes", &t.source, e.to_string(), "");
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
            iommu_out.hpet_source_id = iommu.hpet_source_id.map(bdf);
            // CAP/ECAP: sysfs first, then the registers.
            if live {
                read_vtd_caps(&mut p, &mut iommu_out.units);
            } else {
                p.note(
                    "VT-d CAP/ECAP",
                    "DRHD registers",
                    "not applicable to an offline input".into(),
                    "run hpetctl probe on the machine itself",
                );
            }
            let irs: Vec<Option<bool>> = iommu_out
                .units
                .iter()
                .map(|u| u.interrupt_remapping)
                .collect();
            if !irs.is_empty() && irs.iter().all(Option::is_some) {
                iommu.interrupt_remapping = irs.iter().all(|x| *x == Some(true));
                iommu_out.interrupt_remapping_source =
                    "VT-d ECAP.IR (bit 3) of every DRHD unit".into();
                let eims: Vec<Option<bool>> = iommu_out
                    .units
                    .iter()
                    .map(|u| u.extended_interrupt_mode)
                    .collect();
                iommu.extended_interrupt_mode = Some(eims.iter().all(|x| *x == Some(true)));
            } else {
                iommu.interrupt_remapping = d.flags.intr_remap;
                iommu_out.interrupt_remapping_source = "DMAR flags INTR_REMAP (bit 0)".into();
            }
            iommu_out.extended_interrupt_mode = iommu.extended_interrupt_mode;
        }
    } else if let Some(t) = find(&tables, "IVRS").next() {
        let r = match Ivrs::parse(&t.bytes) {
            Ok(r) => Some(r),
            Err(e) if !live => bail!("{}: {e}", t.source),
            Err(e) => {
                p.note("IVRS", &t.source, e.to_string(), "");
                None
            }
        };
        if let Some(r) = r {
            iommu.kind = IommuKind::AmdVi;
            iommu_out.kind = "amd-vi";
            iommu_out.source = Some(t.source.clone());
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
                            && iommu_out.ivrs_hpet.is_none()
                        {
                            iommu_out.ivrs_hpet = Some(IvrsHpetOut {
                                device_id: bdf(sd.device_id),
                                nmi_pass: sd.dte & 4 != 0,
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(e) if !live => bail!("{}: {e}", t.source),
                    Err(e) => {
                        p.note("IVRS device entries", &t.source, e.to_string(), "");
                        break;
                    }
                }
            }
            for b in r.blocks().flatten() {
                if let acpi_probe::ivrs::IvrsBlock::Ivhd(h) = b {
                    if Some(h.kind) == kind {
                        iommu_out.units.push(IommuUnitOut {
                            register_base: format!("{:#x}", h.base_address),
                            cap: None,
                            ecap: None,
                            interrupt_remapping: None,
                            extended_interrupt_mode: None,
                            source: Some(t.source.clone()),
                        });
                    }
                }
            }
            iommu.interrupt_remapping = has_ioapic;
            iommu_out.interrupt_remapping_source = "IVRS: an IVHD special-device entry for an I/O APIC (Linux enables AMD-Vi interrupt remapping only then)".into();
        }
    }
    iommu_out.interrupt_remapping = iommu.interrupt_remapping;
    if let Some(t) = &interrupts_text {
        iommu_out.linux_remapping_enabled = Some(linux::interrupts_remapped(t));
    }

    // --- CPUID and MSRs (live only: they describe this machine)
    let cpu_facts = live.then(|| CpuFacts::decode(&NativeCpuid));
    let mut msr_out = None;
    let mut apic_mode = None;
    let mut pmu_usage = None;
    let mut tfa = None;
    if let Some(c) = &cpu_facts {
        let abs = "/dev/cpu/0/msr";
        let file = match std::fs::File::open(p.path(abs)) {
            Ok(f) => Some(f),
            Err(e) => {
                let how = match e.kind() {
                    io::ErrorKind::NotFound => {
                        "load the msr driver: modprobe msr (kernel needs CONFIG_X86_MSR)"
                    }
                    io::ErrorKind::PermissionDenied => {
                        "run as root (reading MSRs needs CAP_SYS_RAWIO)"
                    }
                    _ => "check the msr driver",
                };
                p.note(
                    "MSRs (APIC mode, PMU counters in use, TSX_FORCE_ABORT)",
                    abs,
                    io_reason(&e),
                    how,
                );
                None
            }
        };
        let src = DevMsr { file };
        if src.file.is_some() {
            let mut values = Vec::new();
            let mut rec = |index: u32, name: String| {
                let r = src.read_msr(index);
                values.push(MsrValueOut {
                    index: format!("{index:#x}"),
                    name,
                    value: r.value().map(|v| format!("{v:#x}")),
                    absent: r == MsrRead::Absent,
                });
                r
            };
            let base = rec(cpu::msr::IA32_APIC_BASE, "IA32_APIC_BASE".into());
            apic_mode = base.value().map(ApicMode::from_apic_base);
            let tf = if c.tsx_force_abort {
                rec(cpu::msr::TSX_FORCE_ABORT, "MSR_TSX_FORCE_ABORT".into())
            } else {
                MsrRead::Absent
            };
            tfa = Some(TsxForceAbort::decode(c, tf));
            match c.pmu.kind {
                PmuKind::IntelArch => {
                    if c.pmu.version >= 2 {
                        rec(
                            cpu::msr::IA32_PERF_GLOBAL_CTRL,
                            "IA32_PERF_GLOBAL_CTRL".into(),
                        );
                        rec(cpu::msr::IA32_FIXED_CTR_CTRL, "IA32_FIXED_CTR_CTRL".into());
                    }
                    for i in 0..u32::from(c.pmu.gp_counters) {
                        rec(
                            cpu::msr::IA32_PERFEVTSEL0 + i,
                            format!("IA32_PERFEVTSEL{i}"),
                        );
                    }
                }
                PmuKind::AmdLegacy => {
                    for i in 0..u32::from(c.pmu.gp_counters) {
                        rec(cpu::msr::AMD_PERF_CTL_LEGACY + i, format!("PERF_CTL{i}"));
                    }
                }
                PmuKind::AmdExtCore | PmuKind::AmdV2 => {
                    for i in 0..u32::from(c.pmu.gp_counters) {
                        rec(cpu::msr::AMD_PERF_CTL_EXT + 2 * i, format!("PERF_CTL{i}"));
                    }
                }
                PmuKind::None => {}
            }
            match cpu::pmu_usage(c, &src) {
                Ok(u) => pmu_usage = Some(u),
                Err(PmuUsageError::NoPmu) => {}
                Err(PmuUsageError::Unread(i)) => p.note(
                    "PMU counters in use",
                    &format!("MSR {i:#x} via {abs}"),
                    "read failed".into(),
                    "run as root with the msr driver loaded",
                ),
            }
            msr_out = Some(MsrOut {
                source: format!("{abs} (CPU 0)"),
                values,
                apic_mode: apic_mode.map(|m| match m {
                    ApicMode::Disabled => "disabled",
                    ApicMode::XApic => "xapic",
                    ApicMode::X2Apic => "x2apic",
                    ApicMode::Invalid => "invalid",
                }),
                gp_in_use: pmu_usage.map(|u| bits(u.gp_in_use)),
                fixed_in_use: pmu_usage.map(|u| bits(u.fixed_in_use)),
            });
        } else if c.tsx_force_abort {
            tfa = Some(TsxForceAbort::Unknown);
        } else {
            tfa = Some(TsxForceAbort::NotEnumerated);
        }
    } else {
        p.note(
            "CPUID and MSRs",
            "CPUID, /dev/cpu/0/msr",
            "not applicable to an offline input (they describe the probing machine)".into(),
            "run hpetctl probe on the machine itself",
        );
    }

    // --- CPUs
    let mut online = None;
    let mut online_source = String::new();
    if live {
        let abs = "/sys/devices/system/cpu/online";
        if let Some(t) = p.text("CPUs online", abs, "mount /sys") {
            online = linux::cpu_list_count(&t);
            online_source = abs.into();
        }
    }
    if online.is_none() {
        if let Some(n) = madt_enabled {
            online = Some(n);
            online_source = "MADT enabled processors".into();
        }
    }
    let online = match online {
        Some(n) => n,
        None => {
            online_source = "none: no CPU list and no MADT".into();
            0
        }
    };
    let (max_apic_id, max_apic_source) = match madt_max_apic {
        Some(m) => (Some(m), Some("MADT".to_string())),
        None if live => {
            let id = p
                .text("APIC IDs", "/proc/cpuinfo", "mount /proc")
                .and_then(|t| linux::max_apicid_in_cpuinfo(&t));
            (id, id.map(|_| "/proc/cpuinfo".to_string()))
        }
        None => (None, None),
    };

    // --- Verdicts
    let linux_uses = linux_channels.as_ref().map_or(0u32, |c| {
        c.iter().filter(|n| **n < 32).fold(0, |m, n| m | 1 << n)
    });
    let linux_facts = linux_state.as_ref().map(|l| LinuxFacts {
        nmi_watchdog: l.nmi_watchdog.as_deref().map(|s| s != "0"),
        clocksource_tsc: l.clocksource.as_deref().map(|s| s == "tsc"),
        tsc_available: l
            .available_clocksources
            .as_deref()
            .map(|s| s.split_whitespace().any(|w| w == "tsc")),
        isolated_cpus: cmdline_opts
            .iter()
            .any(|(k, _)| k == "nohz_full" || k == "isolcpus"),
    });
    let inputs = Inputs {
        hpet: hpet_table.as_ref().map(|_| HpetFacts {
            general,
            timers: &timer_caps,
            linux_uses,
        }),
        iommu,
        cpu: cpu_facts.as_ref(),
        apic_mode,
        max_apic_id,
        cpus: Some(online),
        pmu_usage,
        tsx_force_abort: tfa,
        linux: linux_facts,
    };
    let v = verdict::evaluate(&inputs);

    let timers_out = timer_caps
        .iter()
        .enumerate()
        .map(|(i, t)| TimerOut {
            index: i as u8,
            fsb_capable: t.fsb_delivery_capable(),
            periodic_capable: t.periodic_capable(),
            size_64bit: t.size_64bit(),
            ioapic_routes: bits(t.int_route_cap()),
            fsb_enabled: t.fsb_enabled(),
            interrupt_enabled: t.interrupt_enabled(),
            config: format!("{:#x}", t.0),
            used_by_linux: linux_channels.as_ref().map(|c| c.contains(&(i as u8))),
        })
        .collect();
    let report = Report {
        schema: SCHEMA,
        input: InputOut {
            kind: match &opts.tables {
                TableInput::Live => "live",
                TableInput::Acpidump(_) => "acpidump",
                TableInput::Dir(_) => "tables",
            },
            path: match &opts.tables {
                TableInput::Live => None,
                TableInput::Acpidump(p) | TableInput::Dir(p) => Some(p.display().to_string()),
            },
            tables: tables
                .iter()
                .map(|t| format!("{}:{}", t.signature, t.bytes.len()))
                .collect(),
        },
        hpet: HpetOut {
            present: hpet_table.is_some(),
            source: hpet_table.as_ref().map(|(_, s)| s.clone()),
            table_count: hpet_tables.len(),
            table: hpet_table.as_ref().map(|(h, _)| HpetTableOut {
                base_address: format!("{:#x}", h.base_address.address),
                address_space_id: h.base_address.address_space_id,
                hpet_number: h.hpet_number,
                comparator_count: h.comparator_count,
                counter_64bit: h.counter_64bit,
                legacy_replacement: h.legacy_replacement,
                pci_vendor_id: format!("{:#06x}", h.pci_vendor_id),
                minimum_tick: h.minimum_tick,
            }),
            registers: general.map(|g| HpetRegsOut {
                source: regs_source.clone(),
                general_capabilities: format!("{:#x}", g.0),
                period_fs: g.period_fs(),
                frequency_hz: g.frequency_hz(),
                num_timers: g.num_timers(),
                counter_64bit: g.counter_64bit(),
                legacy_route_capable: g.legacy_route_capable(),
                vendor_id: format!("{:#06x}", g.vendor_id()),
                revision: g.revision_id(),
                wrap_seconds_32bit: (!g.counter_64bit())
                    .then(|| g.frequency_hz().map(|f| 4_294_967_296.0 / f as f64))
                    .flatten(),
            }),
            timers: timers_out,
            linux_channels,
            linux_channels_source,
        },
        iommu: iommu_out,
        cpus: CpusOut {
            online,
            online_source,
            madt_enabled,
            max_apic_id,
            max_apic_id_source: max_apic_source,
        },
        cpu: cpu_facts.as_ref().map(cpu_out),
        msr: msr_out,
        linux: linux_state,
        verdicts: verdicts_out(&v),
        unread: p.unread,
    };
    Ok(report)
}

fn read_hpet_regs(
    p: &mut Probe,
    base: u64,
    source: &str,
    general: &mut Option<GeneralCapabilities>,
    timers: &mut Vec<TimerCapabilities>,
) {
    let dev_mem = p.path("/dev/mem");
    let how_for = |e: &io::Error| {
        match e.kind() {
        io::ErrorKind::NotFound => "the kernel has no /dev/mem (CONFIG_DEVMEM=n): give the HPET facts from another kernel, or boot hpetwd's kernel",
        io::ErrorKind::PermissionDenied => "run as root; if root is refused, STRICT_DEVMEM/IO_STRICT_DEVMEM or kernel lockdown blocks the range (boot with iomem=relaxed, lockdown off)",
        _ => "check /dev/mem",
    }
    };
    let gcap = devmem::read_u32s(&dev_mem, base, &[0, 4]);
    let g = match gcap {
        Ok(v) => GeneralCapabilities(u64::from(v[0]) | u64::from(v[1]) << 32),
        Err(e) => {
            let how = how_for(&e);
            p.note("HPET registers", source, io_reason(&e), how);
            return;
        }
    };
    *general = Some(g);
    if g.0 == u64::MAX || g.validate().is_err() {
        return;
    }
    let n = u32::from(g.num_timers());
    let offsets: Vec<u32> = (0..n)
        .flat_map(|i| {
            let o = regs::timer_config(i as usize) as u32;
            [o, o + 4]
        })
        .collect();
    match devmem::read_u32s(&dev_mem, base, &offsets) {
        Ok(v) => {
            for pair in v.chunks_exact(2) {
                timers.push(TimerCapabilities(
                    u64::from(pair[0]) | u64::from(pair[1]) << 32,
                ));
            }
        }
        Err(e) => {
            let how = how_for(&e);
            p.note("HPET timer registers", source, io_reason(&e), how);
        }
    }
}

/// VT-d CAP and ECAP per DRHD: Linux's sysfs (intel-iommu driver loaded), else the
/// registers at offsets 0x08 and 0x10 (VT-d §11.4.2, §11.4.3) through /dev/mem.
fn read_vtd_caps(p: &mut Probe, units: &mut [IommuUnitOut]) {
    // sysfs: /sys/class/iommu/dmarN/intel-iommu/{address,cap,ecap}
    let mut sysfs: Vec<(u64, u64, u64, String)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(p.path("/sys/class/iommu")) {
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
            match devmem::read_u32s(&p.path("/dev/mem"), base, &[0x08, 0x0c, 0x10, 0x14]) {
                Ok(v) => (
                    u64::from(v[0]) | u64::from(v[1]) << 32,
                    u64::from(v[2]) | u64::from(v[3]) << 32,
                    src,
                ),
                Err(e) => {
                    let how = match e.kind() {
                        io::ErrorKind::NotFound => "load the intel-iommu driver (intel_iommu=on) for /sys/class/iommu, or use a kernel with /dev/mem",
                        _ => "run as root; intel_iommu=on gives the values in /sys/class/iommu without /dev/mem",
                    };
                    p.note("VT-d CAP/ECAP", &src, io_reason(&e), how);
                    continue;
                }
            }
        };
        if ecap == u64::MAX {
            p.note(
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

fn cpu_out(c: &CpuFacts) -> CpuOut {
    CpuOut {
        source: "CPUID (CPU running hpetctl)",
        vendor: String::from_utf8_lossy(c.vendor.as_bytes()).into_owned(),
        family: c.family,
        model: c.model,
        stepping: c.stepping,
        x2apic: c.x2apic,
        invariant_tsc: c.invariant_tsc,
        arat: c.arat,
        tsc_hz: c.tsc_hz,
        tsc_hz_source: c.tsc_hz_source.map(|s| match s {
            TscFrequencySource::Leaf15 => "CPUID.15H",
            TscFrequencySource::Leaf16Base => "CPUID.16H base frequency (approximate)",
        }),
        pmu: PmuOut {
            kind: match c.pmu.kind {
                PmuKind::None => "none",
                PmuKind::IntelArch => "intel-architectural",
                PmuKind::AmdLegacy => "amd-legacy",
                PmuKind::AmdExtCore => "amd-perfctr-ext-core",
                PmuKind::AmdV2 => "amd-perfmon-v2",
            },
            version: c.pmu.version,
            gp_counters: c.pmu.gp_counters,
            gp_width: c.pmu.gp_width,
            fixed_counters: c.pmu.fixed_counters,
            fixed_width: c.pmu.fixed_width,
        },
        tsx_force_abort_enumerated: c.tsx_force_abort,
        hypervisor: c.hypervisor.map(|h| HypervisorOut {
            signature: String::from_utf8_lossy(&h.signature)
                .trim_end_matches('\0')
                .to_string(),
            kvm_msi_ext_dest_id: h.kvm_msi_ext_dest_id,
        }),
    }
}

fn verdicts_out(v: &verdict::Verdicts) -> VerdictsOut {
    VerdictsOut {
        watchdog_possible: v.watchdog_possible.into(),
        hpet_usable: v.hpet_usable.into(),
        timer: TimerChoiceOut {
            index: v.timer,
            reason: v.timer_reason,
        },
        routes: RoutesOut {
            fsb_direct: v.routes.fsb_direct.into(),
            fsb_remapped: v.routes.fsb_remapped.into(),
            fsb_remapped_source_id: v.routes.fsb_remapped_source_id.map(bdf),
            ioapic: v.routes.ioapic.into(),
            ioapic_inputs: bits(v.routes.ioapic_inputs),
        },
        policies: PoliciesOut {
            broadcast: v.policies.broadcast.into(),
            round_robin: v.policies.round_robin.into(),
            chain: v.policies.chain.into(),
            remote: v.policies.remote.into(),
            buddy: v.policies.buddy.into(),
        },
        apic_ids_above_255: v.high_apic_ids.into(),
        x2apic: v.x2apic.into(),
        tsc_trusted: v.tsc.into(),
        pmu: PmuVerdictOut {
            held_now: v.pmu.held_now,
            would_free: v.pmu.would_free,
            held_counter: v.pmu.held_counter.map(|h| match h {
                HeldCounter::Fixed(i) => format!("fixed counter {i}"),
                HeldCounter::General(i) => format!("general-purpose counter {i}"),
            }),
            gp_usable: v.pmu.gp_usable,
            reason: v.pmu.reason,
            tsx_force_abort: v.pmu.tsx.into(),
        },
    }
}

// ---------------------------------------------------------------------------------------
// The readable report
// ---------------------------------------------------------------------------------------

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn line(out: &mut String, label: &str, v: &VerdictOut) {
    out.push_str(&format!("  {label:<22} {:<8} {}\n", v.answer, v.reason));
}

/// Renders the readable report.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let w = &r.verdicts.watchdog_possible;
    o.push_str(&format!(
        "HPET NMI watchdog possible: {} — {}\n",
        w.answer, w.reason
    ));
    o.push_str(&format!(
        "input: {}{}\n\n",
        r.input.kind,
        r.input
            .path
            .as_ref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default()
    ));

    o.push_str("HPET\n");
    if !r.hpet.present {
        o.push_str("  no HPET: the ACPI tables have no HPET table\n");
    }
    if let (Some(t), Some(s)) = (&r.hpet.table, &r.hpet.source) {
        o.push_str(&format!(
            "  table: base {} number {} comparators {} counter {} legacy-route {} vendor {}  [{}]\n",
            t.base_address,
            t.hpet_number,
            t.comparator_count,
            if t.counter_64bit { "64-bit" } else { "32-bit" },
            yn(t.legacy_replacement),
            t.pci_vendor_id,
            s
        ));
        if r.hpet.table_count > 1 {
            o.push_str(&format!(
                "  {} HPET tables: the first is used, as Linux does\n",
                r.hpet.table_count
            ));
        }
    }
    if let Some(g) = &r.hpet.registers {
        o.push_str(&format!(
            "  registers: period {} fs ({} Hz), {} timers, counter {}, legacy route {}, vendor {} rev {}  [{}]\n",
            g.period_fs,
            g.frequency_hz.map_or("?".into(), |f| f.to_string()),
            g.num_timers,
            if g.counter_64bit { "64-bit" } else { "32-bit" },
            yn(g.legacy_route_capable),
            g.vendor_id,
            g.revision,
            g.source
        ));
        if let Some(s) = g.wrap_seconds_32bit {
            o.push_str(&format!("  the 32-bit counter wraps every {s:.0} s\n"));
        }
    }
    for t in &r.hpet.timers {
        o.push_str(&format!(
            "  timer {:>2}: fsb {:<3} periodic {:<3} 64-bit {:<3} ioapic {:?}{}\n",
            t.index,
            yn(t.fsb_capable),
            yn(t.periodic_capable),
            yn(t.size_64bit),
            t.ioapic_routes,
            if t.used_by_linux == Some(true) {
                "  (used by Linux)"
            } else {
                ""
            }
        ));
    }
    if let Some(c) = &r.hpet.linux_channels {
        o.push_str(&format!(
            "  channels Linux uses: {:?}  [{}]\n",
            c,
            r.hpet.linux_channels_source.join(", ")
        ));
    }

    o.push_str("\nIOMMU\n");
    o.push_str(&format!(
        "  kind {}, interrupt remapping {}  [{}]\n",
        r.iommu.kind,
        yn(r.iommu.interrupt_remapping),
        r.iommu.interrupt_remapping_source
    ));
    if let Some(e) = r.iommu.extended_interrupt_mode {
        o.push_str(&format!(
            "  extended interrupt mode (ECAP.EIM): {}\n",
            yn(e)
        ));
    }
    if let Some(x) = r.iommu.dmar_x2apic_opt_out {
        o.push_str(&format!("  DMAR X2APIC_OPT_OUT: {}\n", yn(x)));
    }
    for u in &r.iommu.units {
        o.push_str(&format!(
            "  unit {}: cap {} ecap {}{}\n",
            u.register_base,
            u.cap.as_deref().unwrap_or("?"),
            u.ecap.as_deref().unwrap_or("?"),
            u.source
                .as_ref()
                .map(|s| format!("  [{s}]"))
                .unwrap_or_default()
        ));
    }
    if let Some(s) = &r.iommu.hpet_source_id {
        o.push_str(&format!("  HPET source-id (DMAR scope): {s}\n"));
    }
    if let Some(h) = &r.iommu.ivrs_hpet {
        o.push_str(&format!(
            "  HPET in IVRS: device {} NMIPass {}\n",
            h.device_id,
            yn(h.nmi_pass)
        ));
    }
    if let Some(e) = r.iommu.linux_remapping_enabled {
        o.push_str(&format!(
            "  Linux has remapping on: {}  [/proc/interrupts IR- chips]\n",
            yn(e)
        ));
    }

    o.push_str("\nCPUs\n");
    o.push_str(&format!(
        "  online {}  [{}]\n",
        r.cpus.online, r.cpus.online_source
    ));
    if let Some(m) = r.cpus.max_apic_id {
        o.push_str(&format!(
            "  highest APIC ID {}  [{}]\n",
            m,
            r.cpus.max_apic_id_source.as_deref().unwrap_or("")
        ));
    }
    if let Some(c) = &r.cpu {
        o.push_str(&format!(
            "  {} family {:#x} model {:#x} stepping {}; x2APIC {}, invariant TSC {}, ARAT {}  [{}]\n",
            c.vendor, c.family, c.model, c.stepping, yn(c.x2apic), yn(c.invariant_tsc), yn(c.arat), c.source
        ));
        if let Some(hz) = c.tsc_hz {
            o.push_str(&format!(
                "  TSC {} Hz  [{}]\n",
                hz,
                c.tsc_hz_source.unwrap_or("")
            ));
        }
        o.push_str(&format!(
            "  PMU {} v{}: {} general-purpose × {} bits, {} fixed × {} bits\n",
            c.pmu.kind,
            c.pmu.version,
            c.pmu.gp_counters,
            c.pmu.gp_width,
            c.pmu.fixed_counters,
            c.pmu.fixed_width
        ));
        if let Some(h) = &c.hypervisor {
            o.push_str(&format!(
                "  hypervisor \"{}\", KVM extended destination ID {}\n",
                h.signature,
                yn(h.kvm_msi_ext_dest_id)
            ));
        }
    }
    if let Some(m) = &r.msr {
        o.push_str(&format!("  MSRs  [{}]\n", m.source));
        for v in &m.values {
            o.push_str(&format!(
                "    {} {:<22} {}\n",
                v.index,
                v.name,
                v.value
                    .as_deref()
                    .unwrap_or(if v.absent { "absent" } else { "?" })
            ));
        }
    }
    if let Some(l) = &r.linux {
        o.push_str("\nLinux\n");
        let s = |x: &Option<String>| x.clone().unwrap_or_else(|| "?".into());
        o.push_str(&format!(
            "  nmi_watchdog {}, watchdog_thresh {}, watchdog_cpumask {}\n",
            s(&l.nmi_watchdog),
            s(&l.watchdog_thresh),
            s(&l.watchdog_cpumask)
        ));
        o.push_str(&format!(
            "  clocksource {} (available: {}), broadcast clockevent {}\n",
            s(&l.clocksource),
            s(&l.available_clocksources),
            s(&l.broadcast_clockevent)
        ));
        if let Some(c) = &l.cmdline {
            o.push_str(&format!(
                "  relevant boot options: {}\n",
                if c.is_empty() {
                    "none".into()
                } else {
                    c.join(" ")
                }
            ));
        }
    }

    let v = &r.verdicts;
    o.push_str("\nVerdicts\n");
    line(&mut o, "HPET usable", &v.hpet_usable);
    o.push_str(&format!(
        "  {:<22} {:<8} {}\n",
        "timer",
        v.timer.index.map_or("none".into(), |i| i.to_string()),
        v.timer.reason
    ));
    line(&mut o, "route: FSB direct", &v.routes.fsb_direct);
    line(&mut o, "route: FSB remapped", &v.routes.fsb_remapped);
    if let Some(s) = &v.routes.fsb_remapped_source_id {
        o.push_str(&format!("  {:<22} {}\n", "  HPET source-id", s));
    }
    line(&mut o, "route: I/O APIC", &v.routes.ioapic);
    if !v.routes.ioapic_inputs.is_empty() {
        o.push_str(&format!(
            "  {:<22} {:?}\n",
            "  I/O APIC inputs", v.routes.ioapic_inputs
        ));
    }
    line(&mut o, "policy: broadcast", &v.policies.broadcast);
    line(&mut o, "policy: round-robin", &v.policies.round_robin);
    line(&mut o, "policy: chain", &v.policies.chain);
    line(&mut o, "policy: remote", &v.policies.remote);
    line(&mut o, "policy: buddy", &v.policies.buddy);
    line(&mut o, "APIC IDs > 255", &v.apic_ids_above_255);
    line(&mut o, "x2APIC", &v.x2apic);
    line(&mut o, "TSC for attribution", &v.tsc_trusted);
    let opt = |x: Option<u32>| x.map_or("?".into(), |n| n.to_string());
    o.push_str(&format!(
        "  {:<22} held now {}, would free {}{}: {}\n",
        "PMU counters",
        opt(v.pmu.held_now),
        opt(v.pmu.would_free),
        v.pmu
            .held_counter
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        v.pmu.reason
    ));
    if let Some(g) = v.pmu.gp_usable {
        o.push_str(&format!("  {:<22} {}\n", "  GP counters for perf", g));
    }
    line(&mut o, "TSX takes PMC3", &v.pmu.tsx_force_abort);

    if !r.unread.is_empty() {
        o.push_str("\nNot read\n");
        for u in &r.unread {
            o.push_str(&format!("  {} [{}]: {}", u.fact, u.source, u.reason));
            if !u.how.is_empty() {
                o.push_str(&format!(" — {}", u.how));
            }
            o.push('\n');
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_format() {
        assert_eq!(bdf(0xf0f8), "f0:1f.0");
        assert_eq!(bdf(0x00a0), "00:14.0");
    }
}
