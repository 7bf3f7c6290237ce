//! Parsers for the Linux files the probe reads (pure functions over text, unit-tested).

/// The boot options from /proc/cmdline that bear on the watchdog, in order, as `key[=value]`.
pub const CMDLINE_KEYS: [&str; 12] = [
    "nmi_watchdog",
    "hpet",
    "intremap",
    "nohz_full",
    "isolcpus",
    "no_ipi_broadcast",
    "intel_iommu",
    "amd_iommu",
    "nox2apic",
    "tsc",
    "clocksource",
    "nohz",
];

/// The relevant options of a kernel command line, as (key, value) with an empty value for
/// a bare flag. Everything after `--` belongs to init and is ignored.
pub fn cmdline_options(cmdline: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for word in cmdline.split_whitespace() {
        if word == "--" {
            break;
        }
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        if CMDLINE_KEYS.contains(&key) {
            out.push((key.to_string(), value.to_string()));
        }
    }
    out
}

/// Whether `hpet=` lists `flag` (hpet=disable, hpet=nomsi, hpet=force, comma-separated).
pub fn hpet_option(options: &[(String, String)], flag: &str) -> bool {
    options
        .iter()
        .any(|(k, v)| k == "hpet" && v.split(',').any(|f| f == flag))
}

/// HPET channel numbers named in /proc/interrupts (action names `hpetN`, chip `HPET-MSI`).
pub fn hpet_channels_in_interrupts(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines() {
        for word in line.split_whitespace() {
            if let Some(n) = word.strip_prefix("hpet").and_then(|n| n.parse::<u8>().ok()) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// Whether /proc/interrupts shows remapped interrupt chips (`IR-IO-APIC`, `IR-PCI-MSI`, ...).
pub fn interrupts_remapped(text: &str) -> bool {
    text.split_whitespace().any(|w| w.starts_with("IR-"))
}

/// HPET channels used as clock event devices per /proc/timer_list ("Clock Event Device:
/// hpet" is channel 0 in legacy mode; "hpetN" is channel N).
pub fn hpet_channels_in_timer_list(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(name) = line.trim().strip_prefix("Clock Event Device:") else {
            continue;
        };
        let name = name.trim();
        let n = if name == "hpet" {
            Some(0)
        } else {
            name.strip_prefix("hpet").and_then(|n| n.parse::<u8>().ok())
        };
        if let Some(n) = n {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The number of CPUs in a Linux CPU list ("0-3,8,10-11"); `None` if malformed.
pub fn cpu_list_count(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    let mut n: u32 = 0;
    for part in text.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        if b < a {
            return None;
        }
        n = n.checked_add(b - a + 1)?;
    }
    Some(n)
}

/// The largest `apicid` in /proc/cpuinfo.
pub fn max_apicid_in_cpuinfo(text: &str) -> Option<u32> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "apicid").then(|| v.trim().parse::<u32>().ok())?
        })
        .max()
}

/// A hexadecimal register value as sysfs prints it (`d2008c40660462`, optionally `0x`).
pub fn parse_hex(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    u64::from_str_radix(t, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        let o = cmdline_options(
            "BOOT_IMAGE=/vmlinuz nmi_watchdog=0 hpet=nomsi,force quiet nohz_full=2-3 no_ipi_broadcast -- hpet=disable",
        );
        assert_eq!(
            o,
            vec![
                ("nmi_watchdog".into(), "0".into()),
                ("hpet".into(), "nomsi,force".into()),
                ("nohz_full".into(), "2-3".into()),
                ("no_ipi_broadcast".into(), "".into()),
            ]
        );
        assert!(hpet_option(&o, "nomsi") && !hpet_option(&o, "disable"));
    }

    #[test]
    fn interrupts() {
        let text = "           CPU0       CPU1\n  0:         33          0   IO-APIC   2-edge      timer\n 24:       1234          0  HPET-MSI   3-edge      hpet3\n 25:          0       999  HPET-MSI   4-edge      hpet4\n 26:          5          0  IR-PCI-MSI 512000-edge  ahci\n";
        assert_eq!(hpet_channels_in_interrupts(text), vec![3, 4]);
        assert!(interrupts_remapped(text));
        assert!(!interrupts_remapped("  0: 1 IO-APIC 2-edge timer\n"));
    }

    #[test]
    fn timer_list() {
        let text = "Tick Device: mode:     1\nBroadcast device\nClock Event Device: hpet\n max_delta_ns: 1\nTick Device: mode: 1\nPer CPU device: 0\nClock Event Device: lapic-deadline\nClock Event Device: hpet2\n";
        assert_eq!(hpet_channels_in_timer_list(text), vec![0, 2]);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list_count("0-3,8,10-11\n"), Some(7));
        assert_eq!(cpu_list_count("0"), Some(1));
        assert_eq!(cpu_list_count(""), Some(0));
        assert_eq!(cpu_list_count("3-1"), None);
        assert_eq!(cpu_list_count("x"), None);
    }

    #[test]
    fn cpuinfo_and_hex() {
        assert_eq!(
            max_apicid_in_cpuinfo("processor\t: 0\napicid\t\t: 0\nprocessor : 1\napicid\t\t: 6\n"),
            Some(6)
        );
        assert_eq!(parse_hex("d2008c40660462\n"), Some(0xd2008c40660462));
        assert_eq!(parse_hex("0xf0"), Some(0xf0));
        assert_eq!(parse_hex("zz"), None);
    }
}
