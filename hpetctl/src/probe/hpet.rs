//! HPET facts: the ACPI HPET table, the registers (read-only `/dev/mem`) and the channels
//! Linux uses.

use super::acpi::Tables;
use super::linux;
use super::linux_state::{LinuxState, BROADCAST_DEVICE};
use super::report::{bits, HpetOut, HpetRegsOut, HpetTableOut, TimerOut};
use super::sources::{io_reason, System};
use acpi_probe::hpet::{regs, GeneralCapabilities, HpetTable, TimerCapabilities};
use acpi_probe::verdict::HpetFacts;
use anyhow::Result;
use std::io;

/// The HPET as the tables and registers describe it.
pub(super) struct Hpet {
    /// The first HPET table (as Linux) and where it came from.
    table: Option<(HpetTable, String)>,
    /// How many HPET tables there are.
    table_count: usize,
    /// The General Capabilities register (`None`: not read).
    general: Option<GeneralCapabilities>,
    /// Timer N Configuration and Capability (empty: not read).
    timers: Vec<TimerCapabilities>,
    regs_source: String,
}

impl Hpet {
    /// Parses the first HPET table and, live, reads its registers.
    pub fn read(sys: &mut System, tables: &Tables) -> Result<Self> {
        let mut hpet = Self {
            table: None,
            table_count: tables.all("HPET").count(),
            general: None,
            timers: Vec::new(),
            regs_source: String::new(),
        };
        if let Some(t) = tables.first("HPET") {
            hpet.table = sys
                .parsed(HpetTable::parse(&t.bytes), "HPET table", &t.source)?
                .map(|h| (h, t.source.clone()));
        }
        if let Some((h, _)) = &hpet.table {
            let base = h.base_address.address;
            hpet.regs_source = format!("HPET MMIO via /dev/mem @{base:#x}");
            if !sys.live {
                sys.note_offline("HPET registers", &hpet.regs_source);
            } else {
                hpet.read_regs(sys, base);
            }
        }
        Ok(hpet)
    }

    /// The HPET number (the DMAR scope's enumeration ID, the IVRS handle).
    pub fn number(&self) -> Option<u8> {
        self.table.as_ref().map(|(h, _)| h.hpet_number)
    }

    fn read_regs(&mut self, sys: &mut System, base: u64) {
        let g = match sys.read_u64s(base, &[regs::GENERAL_CAPABILITIES as u32]) {
            Ok(v) => GeneralCapabilities(v[0]),
            Err(e) => {
                sys.note(
                    "HPET registers",
                    &self.regs_source,
                    io_reason(&e),
                    devmem_how(&e),
                );
                return;
            }
        };
        self.general = Some(g);
        if g.0 == u64::MAX || g.validate().is_err() {
            return;
        }
        let offsets: Vec<u32> = (0..usize::from(g.num_timers()))
            .map(|i| regs::timer_config(i) as u32)
            .collect();
        match sys.read_u64s(base, &offsets) {
            Ok(v) => self.timers = v.into_iter().map(TimerCapabilities).collect(),
            Err(e) => sys.note(
                "HPET timer registers",
                &self.regs_source,
                io_reason(&e),
                devmem_how(&e),
            ),
        }
    }

    /// The facts the verdicts use (`None`: no HPET table).
    pub fn facts(&self, linux_channels: Option<&[u8]>) -> Option<HpetFacts<'_>> {
        self.table.as_ref().map(|_| HpetFacts {
            general: self.general,
            timers: &self.timers,
            linux_uses: linux_channels.map_or(0u32, |c| {
                c.iter().filter(|n| **n < 32).fold(0, |m, n| m | 1 << n)
            }),
        })
    }

    /// The report's `hpet` section.
    pub fn out(
        &self,
        linux_channels: Option<Vec<u8>>,
        linux_channels_source: Vec<String>,
    ) -> HpetOut {
        let timers = self
            .timers
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
        HpetOut {
            present: self.table.is_some(),
            source: self.table.as_ref().map(|(_, s)| s.clone()),
            table_count: self.table_count,
            table: self.table.as_ref().map(|(h, _)| HpetTableOut {
                base_address: format!("{:#x}", h.base_address.address),
                address_space_id: h.base_address.address_space_id,
                hpet_number: h.hpet_number,
                comparator_count: h.comparator_count,
                counter_64bit: h.counter_64bit,
                legacy_replacement: h.legacy_replacement,
                pci_vendor_id: format!("{:#06x}", h.pci_vendor_id),
                minimum_tick: h.minimum_tick,
            }),
            registers: self.general.map(|g| HpetRegsOut {
                source: self.regs_source.clone(),
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
            timers,
            linux_channels,
            linux_channels_source,
        }
    }
}

/// How to get the HPET registers when `/dev/mem` fails with `e`.
fn devmem_how(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "the kernel has no /dev/mem (CONFIG_DEVMEM=n): give the HPET facts from another kernel, or boot hpetwd's kernel",
        io::ErrorKind::PermissionDenied => "run as root; if root is refused, STRICT_DEVMEM/IO_STRICT_DEVMEM or kernel lockdown blocks the range (boot with iomem=relaxed, lockdown off)",
        _ => "check /dev/mem",
    }
}

/// The HPET channels Linux uses (sorted; `None` when not known) and where that was read:
/// `/proc/interrupts` and `/proc/timer_list`, and channel 0 when `hpet` is the broadcast
/// clock event device.
pub(super) fn linux_channels(l: &LinuxState) -> (Option<Vec<u8>>, Vec<String>) {
    let mut channels: Option<Vec<u8>> = None;
    let mut sources = Vec::new();
    if let Some(t) = &l.interrupts {
        let mut ch = linux::hpet_channels_in_interrupts(t);
        sources.push("/proc/interrupts".to_string());
        if let Some(tl) = &l.timer_list {
            sources.push("/proc/timer_list".to_string());
            add_channels(&mut ch, linux::hpet_channels_in_timer_list(tl));
        }
        ch.sort_unstable();
        channels = Some(ch);
    }
    if l.out.broadcast_clockevent.as_deref() == Some("hpet") {
        add_channels(channels.get_or_insert_with(Vec::new), [0]);
        sources.push(BROADCAST_DEVICE.into());
    }
    (channels, sources)
}

/// Adds the channels not yet in `ch`, keeping it sorted.
fn add_channels(ch: &mut Vec<u8>, new: impl IntoIterator<Item = u8>) {
    for c in new {
        if !ch.contains(&c) {
            ch.push(c);
        }
    }
    ch.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::super::report::LinuxOut;
    use super::*;

    fn state(interrupts: Option<&str>, timer_list: Option<&str>, bc: Option<&str>) -> LinuxState {
        LinuxState {
            interrupts: interrupts.map(Into::into),
            timer_list: timer_list.map(Into::into),
            cmdline_opts: Vec::new(),
            out: LinuxOut {
                nmi_watchdog: None,
                watchdog_thresh: None,
                watchdog_cpumask: None,
                cmdline: None,
                clocksource: None,
                available_clocksources: None,
                broadcast_clockevent: bc.map(Into::into),
                hpet_nomsi: false,
                hpet_disable: false,
            },
        }
    }

    #[test]
    fn channels_from_nothing_are_unknown() {
        assert_eq!(linux_channels(&state(None, None, None)), (None, vec![]));
    }

    #[test]
    fn broadcast_hpet_is_channel_0() {
        let (ch, src) = linux_channels(&state(None, None, Some("hpet")));
        assert_eq!(ch, Some(vec![0]));
        assert_eq!(src, vec![BROADCAST_DEVICE.to_string()]);
        let (ch, src) = linux_channels(&state(Some(""), None, Some("lapic")));
        assert_eq!(ch, Some(vec![]));
        assert_eq!(src, vec!["/proc/interrupts".to_string()]);
    }

    #[test]
    fn add_channels_merges_sorted() {
        let mut ch = vec![3, 1];
        add_channels(&mut ch, [2, 3, 0]);
        assert_eq!(ch, vec![0, 1, 2, 3]);
    }
}
