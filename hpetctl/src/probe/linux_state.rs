//! What the running Linux says (live only): interrupt lines, clock event devices, the
//! command line, the watchdog sysctls and the clocksource. The texts are parsed in
//! [`linux`](super::linux).

use super::linux;
use super::report::LinuxOut;
use super::sources::System;
use acpi_probe::verdict::LinuxFacts;

/// `/sys/devices/system/clockevents/broadcast/current_device`.
pub(super) const BROADCAST_DEVICE: &str =
    "/sys/devices/system/clockevents/broadcast/current_device";

const NO_LOCKUP_DETECTOR: &str = "kernel built without CONFIG_LOCKUP_DETECTOR";

/// The Linux state, and the texts other facts are drawn from.
pub(super) struct LinuxState {
    /// `/proc/interrupts`.
    pub interrupts: Option<String>,
    /// `/proc/timer_list` (read only when `/proc/interrupts` was).
    pub timer_list: Option<String>,
    /// The relevant boot options of `/proc/cmdline`.
    pub cmdline_opts: Vec<(String, String)>,
    pub out: LinuxOut,
}

impl LinuxState {
    /// Reads the state; what cannot be read is noted.
    pub fn read(sys: &mut System) -> Self {
        let interrupts = sys.text("interrupt lines", "/proc/interrupts", "mount /proc");
        let timer_list = interrupts.as_ref().and_then(|_| {
            sys.text(
                "HPET clock event devices",
                "/proc/timer_list",
                "run as root (/proc/timer_list is root-only)",
            )
        });
        let cmdline = sys.text("kernel command line", "/proc/cmdline", "mount /proc");
        let cmdline_opts = cmdline
            .as_deref()
            .map(linux::cmdline_options)
            .unwrap_or_default();
        let [nmi, thresh, mask, cs, avail] = [
            (
                "nmi_watchdog",
                "/proc/sys/kernel/nmi_watchdog",
                NO_LOCKUP_DETECTOR,
            ),
            (
                "watchdog_thresh",
                "/proc/sys/kernel/watchdog_thresh",
                NO_LOCKUP_DETECTOR,
            ),
            (
                "watchdog_cpumask",
                "/proc/sys/kernel/watchdog_cpumask",
                NO_LOCKUP_DETECTOR,
            ),
            (
                "current clocksource",
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                "mount /sys",
            ),
            (
                "available clocksources",
                "/sys/devices/system/clocksource/clocksource0/available_clocksource",
                "mount /sys",
            ),
        ]
        .map(|(fact, abs, how)| sys.text(fact, abs, how).map(|s| s.trim().to_string()));
        let bc = std::fs::read_to_string(sys.path(BROADCAST_DEVICE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let out = LinuxOut {
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
        };
        Self {
            interrupts,
            timer_list,
            cmdline_opts,
            out,
        }
    }

    /// The facts the verdicts use.
    pub fn facts(&self) -> LinuxFacts {
        let l = &self.out;
        LinuxFacts {
            nmi_watchdog: l.nmi_watchdog.as_deref().map(|s| s != "0"),
            clocksource_tsc: l.clocksource.as_deref().map(|s| s == "tsc"),
            tsc_available: l
                .available_clocksources
                .as_deref()
                .map(|s| s.split_whitespace().any(|w| w == "tsc")),
            isolated_cpus: self
                .cmdline_opts
                .iter()
                .any(|(k, _)| k == "nohz_full" || k == "isolcpus"),
        }
    }
}
