//! `hpetctl bench boot`: time from kernel entry to every CPU online, measured by the kernel in
//! guest time (its TSC, calibrated against the HPET), at several vCPU counts.
//!
//! Under TCG with `-icount`, guest time is emulated time: it advances with the instructions
//! the vCPUs execute (one per 2^shift ns) and skips idle time, so it measures the kernel's
//! work, not what a real machine would take. docs/bench-boot.md records results and reading.

use crate::qemu::{Accel, Firmware, Icount, SmpSpec};
use crate::run::{self, RunOptions};
use crate::transcript::Verdict;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// One vCPU count's measurements over the runs.
#[derive(Debug, Serialize)]
pub struct BootBench {
    pub vcpus: u32,
    pub runs: u32,
    /// Guest ns from kernel entry to the last CPU online, per run.
    pub all_online_ns: Vec<u64>,
    /// Guest ns from the first application processor online to the last, divided by the
    /// number of application processors after the first (the cost of one more AP), per run.
    pub per_ap_ns: Vec<Option<u64>>,
    /// Wall-clock ms of the whole QEMU run (start-up, firmware, boot, settle), per run.
    pub wall_ms: Vec<u64>,
}

/// The whole benchmark.
#[derive(Debug, Serialize)]
pub struct BootBenchReport {
    pub benchmark: &'static str,
    pub time_base: &'static str,
    pub accel: Accel,
    pub icount_shift: Option<u8>,
    pub build_id: Option<String>,
    pub results: Vec<BootBench>,
}

/// Parameters of `hpetctl bench boot`.
pub struct BootBenchOptions<'a> {
    pub image: &'a Path,
    pub vcpus: &'a [u32],
    pub runs: u32,
    pub accel: Accel,
    pub icount: Icount,
    pub timeout: Duration,
}

fn median(values: &[u64]) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Boots the image at each vCPU count, `runs` times, and collects the kernel's timings.
pub fn boot(
    opts: &BootBenchOptions<'_>,
    mut progress: impl FnMut(&str),
) -> Result<BootBenchReport> {
    let mut report = BootBenchReport {
        benchmark: "boot: kernel entry to all CPUs online",
        time_base: match opts.accel {
            Accel::Tcg => {
                "emulated guest time (TCG -icount): instructions executed, not hardware time"
            }
            Accel::Kvm => "guest TSC time under KVM",
        },
        accel: opts.accel,
        icount_shift: None,
        build_id: None,
        results: Vec::new(),
    };
    for &n in opts.vcpus {
        let smp = SmpSpec::parse(&n.to_string())?;
        let mut bench = BootBench {
            vcpus: n,
            runs: opts.runs,
            all_online_ns: Vec::new(),
            per_ap_ns: Vec::new(),
            wall_ms: Vec::new(),
        };
        for i in 1..=opts.runs {
            progress(&format!("bench boot: {n} vCPUs, run {i}/{}", opts.runs));
            let r = run::run(&RunOptions {
                image: opts.image.to_path_buf(),
                smp: smp.clone(),
                cpu: "qemu64".into(),
                accel: opts.accel,
                firmware: Firmware::Bios,
                timeout: opts.timeout,
                // No settle period: the benchmark ends when every CPU is online.
                append: Some("settle_ms=0".into()),
                memory_mb: None,
                icount: opts.icount,
                log: None,
                qemu_log: None,
                traces: Vec::new(),
                qemu_args: Vec::new(),
                verbose: false,
            })
            .with_context(|| format!("booting {n} vCPUs"))?;
            if r.result != Verdict::Pass {
                bail!(
                    "the {n}-vCPU boot did not pass: {}",
                    r.reason.as_deref().unwrap_or("no reason given")
                );
            }
            let Some(all) = r.smp_all_online_ns else {
                bail!("the {n}-vCPU boot printed no `smp all_online_ns`");
            };
            let mut ap_online: Vec<u64> = r
                .cpus
                .iter()
                .filter(|c| c.bsp != Some(true))
                .filter_map(|c| c.online_ns)
                .collect();
            ap_online.sort_unstable();
            let per_ap = match (ap_online.first(), ap_online.last()) {
                (Some(first), Some(last)) if ap_online.len() > 1 => {
                    Some((last - first) / (ap_online.len() as u64 - 1))
                }
                _ => None,
            };
            bench.all_online_ns.push(all);
            bench.per_ap_ns.push(per_ap);
            bench.wall_ms.push(r.duration_ms);
            report.icount_shift = r.qemu.icount_shift;
            report.build_id = r.build_id.clone();
        }
        report.results.push(bench);
    }
    Ok(report)
}

/// The human table.
pub fn render(report: &BootBenchReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n", report.benchmark));
    s.push_str(&format!(
        "time base: {}{}\n",
        report.time_base,
        report
            .icount_shift
            .map(|n| format!(", shift={n} ({} ns per instruction)", 1u64 << n))
            .unwrap_or_default()
    ));
    if let Some(id) = &report.build_id {
        s.push_str(&format!("kernel build id: {id}\n"));
    }
    s.push_str("\n| vCPUs | entry -> all online (ms, median) | min .. max (ms) | per extra AP (us, median) | QEMU wall (s, median) |\n");
    s.push_str("|---:|---:|---:|---:|---:|\n");
    for b in &report.results {
        let ms = |ns: u64| ns as f64 / 1e6;
        let all = median(&b.all_online_ns).map_or("-".into(), |v| format!("{:.3}", ms(v)));
        let min = b.all_online_ns.iter().min().copied().unwrap_or(0);
        let max = b.all_online_ns.iter().max().copied().unwrap_or(0);
        let per: Vec<u64> = b.per_ap_ns.iter().flatten().copied().collect();
        let per = median(&per).map_or("-".into(), |v| format!("{:.1}", v as f64 / 1e3));
        let wall = median(&b.wall_ms).map_or("-".into(), |v| format!("{:.2}", v as f64 / 1e3));
        s.push_str(&format!(
            "| {} | {all} | {:.3} .. {:.3} | {per} | {wall} |\n",
            b.vcpus,
            ms(min),
            ms(max)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[5, 1, 3]), Some(3));
        assert_eq!(median(&[4, 1, 3, 2]), Some(3));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn table_has_a_row_per_vcpu_count() {
        let report = BootBenchReport {
            benchmark: "boot",
            time_base: "emulated",
            accel: Accel::Tcg,
            icount_shift: Some(7),
            build_id: None,
            results: vec![BootBench {
                vcpus: 8,
                runs: 1,
                all_online_ns: vec![31_914_635],
                per_ap_ns: vec![Some(230_000)],
                wall_ms: vec![500],
            }],
        };
        let table = render(&report);
        assert!(
            table.contains("| 8 | 31.915 | 31.915 .. 31.915 | 230.0 | 0.50 |"),
            "{table}"
        );
        assert!(table.contains("128 ns per instruction"));
    }
}
