//! The readable report (`hpetctl probe` without `--json`).

use super::report::{Report, VerdictOut};

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn counter_width(counter_64bit: bool) -> &'static str {
    if counter_64bit {
        "64-bit"
    } else {
        "32-bit"
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
            counter_width(t.counter_64bit),
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
            counter_width(g.counter_64bit),
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
