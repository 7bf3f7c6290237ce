//! `hpetctl probe`: what this machine (or an ACPI dump) offers an HPET NMI watchdog.
//!
//! The decoding and the verdicts are in `acpi-probe` (`cpu`, `verdict`, the table parsers);
//! this module is the host backend: it reads ACPI tables (sysfs, an acpidump file or a
//! directory), HPET and VT-d registers (read-only `/dev/mem`, in [`devmem`]), MSRs
//! (`/dev/cpu/0/msr`), CPUID and Linux state, and renders the report. It writes nothing.
//! See docs/probe.md.
//!
//! - [`sources`]: the machine (paths under a root), what could not be read, the readers.
//! - [`acpi`]: the tables, live or offline.
//! - [`hpet`], [`iommu`], [`cpus`], [`linux_state`]: the facts, each with its report section.
//! - [`report`]: the JSON report (schema hpetwd-probe/1); [`render`]: the readable one.

mod acpi;
mod cpus;
#[allow(unsafe_code)]
mod devmem;
mod hpet;
mod iommu;
pub mod linux;
mod linux_state;
mod render;
mod report;
mod sources;

pub use acpi::TableInput;
pub use render::render;
pub use report::*;

use acpi::Tables;
use acpi_probe::verdict::{self, Inputs};
use anyhow::Result;
use cpus::{Cpu, MadtCpus};
use hpet::Hpet;
use linux_state::LinuxState;
use sources::System;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Options {
    pub tables: TableInput,
    /// The file-system root for live facts (`/`; tests point it at a fake tree).
    pub root: PathBuf,
}

/// Runs the probe. The facts are gathered in a fixed order, which is the order of `unread`.
pub fn probe(opts: &Options) -> Result<Report> {
    let live = matches!(opts.tables, TableInput::Live);
    let mut sys = System::new(&opts.root, live);
    let tables = Tables::load(&opts.tables, &mut sys)?;
    let madt = MadtCpus::read(&mut sys, &tables)?;
    let hpet = Hpet::read(&mut sys, &tables)?;
    let linux = live.then(|| LinuxState::read(&mut sys));
    let (linux_channels, linux_channels_source) = match &linux {
        Some(l) => hpet::linux_channels(l),
        None => (None, Vec::new()),
    };
    let interrupts = linux.as_ref().and_then(|l| l.interrupts.as_deref());
    let (iommu, iommu_out) = iommu::read(&mut sys, &tables, hpet.number(), interrupts)?;
    let cpu = Cpu::read(&mut sys);
    let cpus = cpus::cpus_out(&mut sys, &madt);

    let inputs = Inputs {
        hpet: hpet.facts(linux_channels.as_deref()),
        iommu,
        cpu: cpu.facts.as_ref(),
        apic_mode: cpu.apic_mode,
        max_apic_id: cpus.max_apic_id,
        cpus: Some(cpus.online),
        pmu_usage: cpu.pmu_usage,
        tsx_force_abort: cpu.tsx_force_abort,
        linux: linux.as_ref().map(LinuxState::facts),
    };
    let v = verdict::evaluate(&inputs);

    Ok(Report {
        schema: SCHEMA,
        input: tables.input_out(&opts.tables),
        hpet: hpet.out(linux_channels, linux_channels_source),
        iommu: iommu_out,
        cpus,
        cpu: cpu.out(),
        msr: cpu.msr_out,
        linux: linux.map(|l| l.out),
        verdicts: report::verdicts_out(&v),
        unread: sys.unread,
    })
}
