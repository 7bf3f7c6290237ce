//! hpetwd: a bare-metal x86_64 kernel that boots every CPU, reports what it found over the
//! serial console (docs/protocol.md) and, later, runs the HPET NMI watchdog.
//!
//! Built for the host target with stable Rust as a freestanding ELF (docs/build.md); boots
//! through PVH (QEMU `-kernel`) and multiboot2 (GRUB).
#![no_std]
#![no_main]

mod acpi;
mod arch;
mod console;
mod exit;
mod hpet_route;
mod interrupts;
mod mem;
mod percpu;
mod smp;
mod time;
mod watchdog;

use arch::{boot, cpu, gdt, hpet::Hpet, idt, lapic, trampoline::Trampoline};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use exit::{finish, ExitMode, Outcome};
use interrupts::ReasonBuf;
use kernel_image::apic_mode::{self, ApicFacts};
use kernel_image::bootinfo::{self, MemoryMap};
use kernel_image::cmdline::{
    self, ExitOption, FaultKind, HpetNmiRoute, Options, RsdpOption, Scenario,
};
use kernel_image::proto::{Hex, Quoted, PROTOCOL_VERSION};
use nmi_watchdog::timing::Timing;

/// Where the (masked) legacy PICs deliver, should a spurious IRQ 7 or 15 still arrive.
pub const VECTOR_LEGACY_PIC_BASE: u8 = 0x20;
/// LAPIC timer vector (the heartbeat source).
pub const VECTOR_TIMER: u8 = 0x40;
/// The one-shot LAPIC timer interrupt used to measure the timer's rate.
pub const VECTOR_CALIBRATION: u8 = 0x41;
/// Halts the receiving CPU (sent to all others when the run ends).
pub const VECTOR_STOP: u8 = 0xf0;
/// LAPIC error interrupt.
pub const VECTOR_ERROR: u8 = 0xfe;
/// LAPIC spurious interrupt.
pub const VECTOR_SPURIOUS: u8 = 0xff;

/// CPUs online and expected, for summary lines printed from any path.
static CPUS_ONLINE: AtomicUsize = AtomicUsize::new(0);
static CPUS_EXPECTED: AtomicUsize = AtomicUsize::new(0);
/// The LAPIC timer's initial count for the configured tick, shared with the APs.
static TIMER_INITIAL_COUNT: AtomicU32 = AtomicU32::new(0);
/// The CPU asked to raise the deliberate fault (`fault_cpu`), and which fault.
static FAULT_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
static FAULT_KIND: AtomicU32 = AtomicU32::new(0);

/// (online, expected) CPU counts so far.
pub fn cpu_counts() -> (usize, usize) {
    (
        CPUS_ONLINE.load(Ordering::Relaxed),
        CPUS_EXPECTED.load(Ordering::Relaxed),
    )
}

/// Ends the run with `Outcome::Error` after an `error` record.
fn fail_with(kind: &str, detail: &str) -> ! {
    println!("HPETWD error kind={kind} detail={}", Quoted(detail));
    let (online, expected) = cpu_counts();
    finish(Outcome::Error, online, expected, detail)
}

unsafe extern "C" {
    static __build_id_note_start: u8;
    static __build_id_note_end: u8;
}

/// The ELF's GNU build-id (the note's descriptor), which `hpetctl` reads from the file too.
fn build_id() -> &'static [u8] {
    // SAFETY: the linker script places the `.note.gnu.build-id` section between these two
    // symbols in the loaded, read-only image; reading it is reading our own rodata.
    let note = unsafe {
        let start = core::ptr::addr_of!(__build_id_note_start);
        let end = core::ptr::addr_of!(__build_id_note_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    };
    // ELF note: namesz, descsz, type, name (padded to 4), descriptor.
    let word = |i: usize| {
        note.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    match (word(0), word(4)) {
        (Some(namesz), Some(descsz)) => {
            let start = 12 + ((namesz as usize + 3) & !3);
            note.get(start..start + descsz as usize).unwrap_or(&[])
        }
        _ => &[],
    }
}

/// Bytes copied out of the loader's memory before anything can overwrite it.
struct BootInfo {
    via: &'static str,
    cmdline: [u8; 1024],
    cmdline_len: usize,
    rsdp: Option<acpi::RsdpLocation>,
    memory: MemoryMap,
}

/// Physical memory handed over by the boot loader (start info, multiboot2 information, the
/// command line), below 4 GiB.
fn loader_memory(address: u64, len: usize) -> Option<&'static [u8]> {
    if address == 0 || address.checked_add(len as u64)? > 1 << 32 {
        return None;
    }
    // SAFETY: the boot loader handed over this range (inside the identity-mapped 4 GiB,
    // checked above); the kernel copies out what it needs before it reuses any low memory.
    Some(unsafe { core::slice::from_raw_parts(address as *const u8, len) })
}

/// A NUL-terminated string at a physical address (at most `max` bytes).
fn c_string(address: u64, max: usize) -> &'static [u8] {
    let bytes = loader_memory(address, max).unwrap_or(&[]);
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..len]
}

/// Copies of multiboot2's RSDP tags (they live in loader memory).
static mut MB2_RSDP: [u8; 64] = [0; 64];

/// Why the boot information could not be read.
enum BootInfoFailure {
    Malformed(bootinfo::BootInfoError),
    NoMultiboot2Magic,
}

impl core::fmt::Display for BootInfoFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "{e}"),
            Self::NoMultiboot2Magic => f.write_str(
                "entered through the multiboot2 entry point without the multiboot2 magic in eax",
            ),
        }
    }
}

fn read_boot_info(via: u32, info: u32) -> Result<BootInfo, BootInfoFailure> {
    let mut out = BootInfo {
        via: "unknown",
        cmdline: [0; 1024],
        cmdline_len: 0,
        rsdp: None,
        memory: MemoryMap::new(),
    };
    let set_cmdline = |out: &mut BootInfo, line: &[u8]| {
        let len = line.len().min(out.cmdline.len());
        out.cmdline[..len].copy_from_slice(&line[..len]);
        out.cmdline_len = len;
    };
    match via {
        boot::BOOT_VIA_PVH => {
            out.via = "pvh";
            let bytes = loader_memory(u64::from(info), bootinfo::PVH_START_INFO_LEN).unwrap_or(&[]);
            let start =
                bootinfo::parse_pvh_start_info(bytes).map_err(BootInfoFailure::Malformed)?;
            set_cmdline(&mut out, c_string(start.cmdline_paddr, 1024));
            let entries = start.memmap_entries.min(1024) as usize;
            if let Some(map) =
                loader_memory(start.memmap_paddr, entries * bootinfo::PVH_MEMMAP_ENTRY_LEN)
            {
                bootinfo::parse_pvh_memmap(map, &mut out.memory);
            }
            if start.rsdp_paddr != 0 {
                out.rsdp = acpi::rsdp_at(start.rsdp_paddr, acpi::RsdpSource::Pvh);
            }
        }
        boot::BOOT_VIA_MULTIBOOT2 => {
            out.via = "multiboot2";
            let header = loader_memory(u64::from(info), 8).unwrap_or(&[]);
            let parsed = bootinfo::multiboot2_total_size(header).and_then(|size| {
                let bytes = loader_memory(u64::from(info), size).unwrap_or(&[]);
                bootinfo::parse_multiboot2(bytes, &mut out.memory)
            });
            let mb2 = parsed.map_err(BootInfoFailure::Malformed)?;
            if let Some(line) = mb2.cmdline {
                set_cmdline(&mut out, line);
            }
            let tag = mb2
                .rsdp_new
                .map(|b| (b, acpi::RsdpSource::Multiboot2New))
                .or(mb2.rsdp_old.map(|b| (b, acpi::RsdpSource::Multiboot2Old)));
            if let Some((bytes, source)) = tag {
                let len = bytes.len().min(64);
                // SAFETY: written once here, on the boot CPU, before any other CPU runs;
                // afterwards only read through the shared reference handed out below.
                let copy: &'static mut [u8; 64] =
                    unsafe { &mut *core::ptr::addr_of_mut!(MB2_RSDP) };
                copy[..len].copy_from_slice(&bytes[..len]);
                let address = bytes.as_ptr() as u64;
                out.rsdp = Some(acpi::rsdp_copy(&copy[..len], address, source));
            }
        }
        _ => return Err(BootInfoFailure::NoMultiboot2Magic),
    }
    Ok(out)
}

/// The boot CPU's entry from boot.rs.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(via: u32, info: u32) -> ! {
    let entry_tsc = cpu::rdtsc();
    arch::serial::init();
    // The boot CPU's own GDT, TSS (IST stacks) and the IDT come first, so any exception from
    // here on is reported instead of triple-faulting.
    let Some(slot) = percpu::take_slot(None) else {
        cpu::halt_forever()
    };
    idt::init();
    // SAFETY: the boot slot is handed out once, to this CPU, and lives forever.
    unsafe { gdt::load(slot.tables, slot.ist_tops) };
    idt::load();
    arch::pic::remap_and_mask(VECTOR_LEGACY_PIC_BASE);

    // An empty line first: a boot loader may leave its cursor mid-line (GRUB leaves
    // terminal escape sequences), and protocol lines must start a line.
    println!();
    println!(
        "HPETWD build id={} version={} protocol={PROTOCOL_VERSION}",
        Hex(build_id()),
        env!("CARGO_PKG_VERSION")
    );
    let tcg = cpu::hypervisor_signature().is_some_and(|s| &s == b"TCGTCGTCGTCG");
    let boot_info = read_boot_info(via, info);
    let (cmdline_copy, cmdline_len) = match &boot_info {
        Ok(b) => (b.cmdline, b.cmdline_len),
        Err(_) => ([0; 1024], 0),
    };
    let cmdline_text = core::str::from_utf8(&cmdline_copy[..cmdline_len]).unwrap_or("");
    let parsed = cmdline::parse(cmdline_text);
    let exit_option = match &parsed {
        Ok(options) => options.exit,
        Err(_) => cmdline::exit_hint(cmdline_text),
    };
    let (exit_mode, exit_reason) = match exit_option {
        ExitOption::Qemu => (ExitMode::Qemu, "option"),
        ExitOption::Halt => (ExitMode::Halt, "option"),
        ExitOption::Reboot => (ExitMode::Reboot, "option"),
        ExitOption::Auto if tcg => (ExitMode::Qemu, "cpuid-tcg"),
        ExitOption::Auto => (ExitMode::Halt, "default"),
    };
    exit::set_mode(exit_mode);
    let boot_info = match boot_info {
        Ok(b) => b,
        Err(failure) => {
            let mut detail = ReasonBuf::new();
            let _ = core::fmt::write(&mut detail, format_args!("{failure}"));
            fail_with("bad-boot-info", detail.as_str())
        }
    };
    println!(
        "HPETWD boot via={} cmdline={} exit={} exit_reason={exit_reason}",
        boot_info.via,
        Quoted(cmdline_text),
        exit_mode.name()
    );
    let options = match parsed {
        Ok(options) => options,
        Err(e) => {
            let mut detail = ReasonBuf::new();
            let _ = core::fmt::write(&mut detail, format_args!("{e}"));
            fail_with(e.kind(), detail.as_str())
        }
    };
    run(boot_info, options, entry_tsc)
}

fn run(boot_info: BootInfo, options: Options, entry_tsc: u64) -> ! {
    // ---- ACPI ----
    let location = match options.rsdp {
        RsdpOption::Auto => boot_info.rsdp.or_else(acpi::scan_bios_area),
        RsdpOption::Scan => acpi::scan_bios_area(),
    };
    let Some(location) = location else {
        fail_with(
            "no-acpi",
            "no RSDP: not from the boot loader and not in the BIOS area",
        )
    };
    let acpi = match acpi::discover(location) {
        Ok(acpi) => acpi,
        Err(reason) => fail_with("bad-acpi", reason),
    };
    let mut tables = ReasonBuf::new();
    for (i, signature) in acpi.signatures[..acpi.table_count].iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = core::fmt::write(
            &mut tables,
            format_args!("{sep}{}", core::str::from_utf8(signature).unwrap_or("????")),
        );
    }
    println!(
        "HPETWD acpi rsdp={:#x} rsdp_source={} revision={} oem={} tables={}",
        acpi.rsdp_address,
        acpi.rsdp_source.name(),
        acpi.revision,
        Quoted(core::str::from_utf8(&acpi.oem_id).unwrap_or("?")),
        tables.as_str()
    );
    for signature in &acpi.bad_checksums[..acpi.bad_checksum_count] {
        println!(
            "HPETWD warning kind=acpi-checksum table={}",
            core::str::from_utf8(signature).unwrap_or("????")
        );
    }
    println!(
        "HPETWD madt cpus={} disabled={} lapic_base={:#x} max_apic_id={} ioapics={}",
        acpi.cpu_count, acpi.cpus_disabled, acpi.lapic_address, acpi.max_apic_id, acpi.ioapic_count
    );
    if acpi.madt_truncated {
        println!(
            "HPETWD warning kind=acpi-madt detail={}",
            Quoted("the MADT has a malformed entry; the entries before it are used")
        );
    }
    if acpi.cpus_beyond_limit > 0 {
        println!(
            "HPETWD warning kind=too-many-cpus detail={}",
            Quoted("the MADT lists more enabled CPUs than the kernel supports (512); the rest stay off")
        );
    }
    CPUS_EXPECTED.store(acpi.cpu_count + acpi.cpus_beyond_limit, Ordering::Relaxed);

    // ---- HPET ----
    let hpet = acpi.hpet.as_ref().and_then(|table| {
        // SAFETY: the address is the ACPI HPET table's register block; `Hpet::new` refuses
        // anything outside the uncached MMIO window.
        match unsafe { Hpet::new(table.base_address.address) } {
            Ok(hpet) => {
                let caps = hpet.capabilities();
                println!(
                    "HPETWD hpet base={:#x} period_fs={} timers={} counter_bits={} vendor={:#06x} table_timers={}",
                    table.base_address.address,
                    caps.period_fs(),
                    caps.num_timers(),
                    if caps.counter_64bit() { 64 } else { 32 },
                    caps.vendor_id(),
                    table.comparator_count
                );
                hpet.enable_counter();
                Some(hpet)
            }
            Err(reason) => {
                println!("HPETWD warning kind=hpet-unusable detail={}", Quoted(reason));
                None
            }
        }
    });
    match acpi.dmar {
        Some(flags) => println!(
            "HPETWD dmar present=1 intr_remap={} x2apic_opt_out={}",
            u8::from(flags.intr_remap),
            u8::from(flags.x2apic_opt_out)
        ),
        None => println!("HPETWD dmar present=0 intr_remap=0 x2apic_opt_out=0"),
    }

    // ---- Local APIC mode ----
    let facts = ApicFacts {
        cpu_has_x2apic: cpu::has_x2apic(),
        firmware_enabled_x2apic: lapic::cpu_in_x2apic_mode(),
        max_apic_id: acpi.max_apic_id,
        dmar_opt_out: acpi.dmar.is_some_and(|f| f.x2apic_opt_out),
    };
    let mode = match apic_mode::decide(facts, options.x2apic) {
        Ok(mode) => mode,
        Err(reason) => fail_with("apic-mode", reason),
    };
    lapic::set_mode(mode.is_x2apic());
    lapic::enable(VECTOR_SPURIOUS);
    lapic::set_error_vector(VECTOR_ERROR);
    exit::APIC_READY.store(true, Ordering::Release);
    println!("HPETWD apic mode={} reason={}", mode.name(), mode.reason());
    let bsp_apic_id = lapic::id();
    let Some(bsp_index) = acpi.cpus[..acpi.cpu_count]
        .iter()
        .position(|c| c.apic_id == bsp_apic_id)
    else {
        fail_with(
            "bad-acpi",
            "the boot CPU's APIC ID is not among the MADT's enabled processors",
        )
    };
    percpu::set_current(bsp_index);
    let Some(bsp) = percpu::get(bsp_index) else {
        fail_with("bad-acpi", "boot CPU index out of range")
    };
    bsp.apic_id.store(bsp_apic_id, Ordering::Relaxed);
    bsp.x2apic
        .store(lapic::cpu_in_x2apic_mode(), Ordering::Relaxed);
    CPUS_ONLINE.store(1, Ordering::Relaxed);

    // ---- Clocks ----
    let Some(tsc) = time::tsc_frequency(hpet.as_ref()) else {
        fail_with(
            "no-timer",
            "no TSC frequency: CPUID leaves 0x15/0x16 are empty and there is no HPET",
        )
    };
    println!("HPETWD tsc hz={} source={}", tsc.hz, tsc.source);
    let Some(lapic_hz) = time::lapic_timer_frequency(tsc.hz) else {
        fail_with(
            "no-timer",
            "the LAPIC timer's one-shot interrupt never arrived",
        )
    };
    // With the watchdog on, every CPU's timer is its heartbeat: one tick every h.
    let timing = match options.policy {
        None => None,
        Some(policy) => match Timing::derive(policy, options.timeout_ns, acpi.cpu_count as u32) {
            Ok(timing) => Some(timing),
            Err(e) => {
                let mut detail = ReasonBuf::new();
                let _ = core::fmt::write(&mut detail, format_args!("{e}"));
                fail_with("bad-option-value", detail.as_str())
            }
        },
    };
    let tick_us = timing.map_or(u64::from(options.tick_us), |t| t.heartbeat_ns / 1000);
    let initial_count = (lapic_hz * tick_us / 1_000_000).clamp(1, u64::from(u32::MAX));
    println!("HPETWD lapic-timer hz={lapic_hz} tick_us={tick_us} initial_count={initial_count}");
    TIMER_INITIAL_COUNT.store(initial_count as u32, Ordering::Relaxed);
    lapic::timer_start_periodic(VECTOR_TIMER, initial_count as u32);
    bsp.online.store(true, Ordering::Release);
    cpu::enable_interrupts();

    // ---- Application processors ----
    let Some(page) = boot_info.memory.find_low_page(0x1000, 0x9f000).or_else(|| {
        // Without a memory map, 0x8000 is free RAM on every PC firmware the kernel targets.
        boot_info.memory.regions().is_empty().then_some(0x8000)
    }) else {
        fail_with(
            "cpu-start",
            "no free page below 1 MiB for the AP trampoline",
        )
    };
    // SAFETY: `page` is available RAM below 1 MiB per the loader's memory map (or the
    // conventional 0x8000 without one); the kernel image is at 2 MiB and the loader's data
    // was copied out above, so nothing else uses it.
    let trampoline = unsafe { Trampoline::install(page, boot::page_table_root()) };
    let init_delay = smp::init_delay_ns();
    let mut online_ns = [0u64; percpu::MAX_CPUS];
    let mut failures = 0usize;
    for (index, cpu_entry) in acpi.cpus[..acpi.cpu_count].iter().enumerate() {
        if index == bsp_index {
            continue;
        }
        match smp::start_ap(
            index,
            cpu_entry.apic_id,
            &trampoline,
            tsc.hz,
            init_delay,
            u64::from(options.ap_timeout_ms),
        ) {
            smp::StartResult::Online { online_tsc } => {
                online_ns[index] = time::tsc_to_ns(tsc.hz, online_tsc.wrapping_sub(entry_tsc));
                CPUS_ONLINE.fetch_add(1, Ordering::Relaxed);
            }
            smp::StartResult::NoSlot => failures += 1,
            smp::StartResult::Timeout { reached_trampoline } => {
                failures += 1;
                println!(
                    "HPETWD error kind=cpu-start detail={}",
                    Quoted(if reached_trampoline {
                        "an application processor reached the trampoline but never came online"
                    } else {
                        "an application processor never answered INIT-SIPI-SIPI"
                    })
                );
            }
        }
    }
    let all_online_ns = time::tsc_to_ns(tsc.hz, cpu::rdtsc().wrapping_sub(entry_tsc));
    if let Some(timing) = timing {
        let (online, expected) = cpu_counts();
        println!(
            "HPETWD smp online={online} expected={expected} all_online_ns={all_online_ns} init_delay_ns={init_delay} settle_ms=0"
        );
        if failures > 0 || online < expected {
            finish(
                Outcome::Fail,
                online,
                expected,
                "not every enabled CPU came online",
            );
        }
        run_watchdog(
            timing,
            &options,
            acpi.cpu_count,
            bsp_index,
            tsc.hz,
            hpet.as_ref(),
        );
    }

    // ---- Settle: let every CPU's timer run, then count ticks ----
    let mut ticks_before = [0u64; percpu::MAX_CPUS];
    for (index, before) in ticks_before[..acpi.cpu_count].iter_mut().enumerate() {
        *before = percpu::get(index).map_or(0, |c| c.ticks.load(Ordering::Relaxed));
    }
    if options.fault != FaultKind::None {
        request_fault(options.fault, options.fault_cpu, bsp_index, acpi.cpu_count);
    }
    let route_test = match (options.hpet_nmi, hpet.as_ref()) {
        (HpetNmiRoute::Off, _) => None,
        (_, None) => fail_with(
            "hpet-nmi",
            "hpet_nmi asks for an HPET route, but there is no usable HPET",
        ),
        (route, Some(hpet)) => {
            let period_ns = u64::from(options.hpet_nmi_period_us) * 1000;
            let before = bsp.nmi_expiries.load(Ordering::Relaxed);
            match hpet_route::arm(hpet, &acpi, route, bsp_apic_id, period_ns, tsc.hz) {
                Ok(armed) => Some((armed, before, period_ns)),
                Err(reason) => fail_with("hpet-nmi", reason),
            }
        }
    };
    cpu::delay_ns(tsc.hz, u64::from(options.settle_ms) * 1_000_000);
    let mut route_failure = None;
    if let (Some((armed, before, period_ns)), Some(hpet)) = (route_test, hpet.as_ref()) {
        hpet_route::disarm(hpet, &acpi, &armed);
        let nmis = bsp
            .nmi_expiries
            .load(Ordering::Relaxed)
            .wrapping_sub(before);
        let duplicates = bsp.nmi_duplicates.load(Ordering::Relaxed);
        let expected = u64::from(options.settle_ms) * 1_000_000 / period_ns;
        let (route, address, data) = match armed.route {
            arch::hpet::Route::Fsb { address, data } => ("fsb", address, data),
            arch::hpet::Route::IoApic { .. } => ("ioapic", 0, 0),
        };
        println!(
            "HPETWD hpet-nmi route={route} timer={} width={} period_ns={period_ns} period_ticks={} fsb_address={address:#x} fsb_data={data:#x} ioapic_gsi={} dest_apic_id={bsp_apic_id} expiries={nmis} duplicates={duplicates} expected={expected}",
            armed.timer,
            if armed.width == arch::hpet::Width::Bits64 { 64 } else { 32 },
            armed.period_ticks,
            armed.ioapic_pin.map_or(-1, i64::from),
        );
        if nmis.abs_diff(expected) > 1 {
            route_failure =
                Some("the count of HPET NMI expiries differs from the period by more than one");
        }
    }

    // Read every count first, then print: printing takes guest time, which would otherwise
    // lengthen the window of the CPUs printed last.
    let mut ticks_during = [0u64; percpu::MAX_CPUS];
    for (index, during) in ticks_during[..acpi.cpu_count].iter_mut().enumerate() {
        let now = percpu::get(index).map_or(0, |c| c.ticks.load(Ordering::Relaxed));
        *during = now.wrapping_sub(ticks_before[index]);
    }
    let mut silent_timers = 0usize;
    for (index, cpu_entry) in acpi.cpus[..acpi.cpu_count].iter().enumerate() {
        let Some(data) = percpu::get(index) else {
            continue;
        };
        let online = data.online.load(Ordering::Acquire);
        let ticks = ticks_during[index];
        if online && ticks == 0 && options.settle_ms > 0 {
            silent_timers += 1;
        }
        if online {
            println!(
                "HPETWD cpu index={index} apic_id={} madt_apic_id={} x2apic={} bsp={} online=1 ticks={ticks} online_ns={}",
                data.apic_id.load(Ordering::Relaxed),
                cpu_entry.apic_id,
                u8::from(data.x2apic.load(Ordering::Relaxed)),
                u8::from(index == bsp_index),
                online_ns[index]
            );
        } else {
            println!(
                "HPETWD cpu index={index} madt_apic_id={} bsp=0 online=0",
                cpu_entry.apic_id
            );
        }
    }
    let (online, expected) = cpu_counts();
    println!(
        "HPETWD smp online={online} expected={expected} all_online_ns={all_online_ns} init_delay_ns={init_delay} settle_ms={}",
        options.settle_ms
    );
    if failures > 0 || online < expected {
        finish(
            Outcome::Fail,
            online,
            expected,
            "not every enabled CPU came online",
        );
    }
    if silent_timers > 0 {
        finish(
            Outcome::Fail,
            online,
            expected,
            "a CPU's LAPIC timer never ticked",
        );
    }
    if let Some(reason) = route_failure {
        finish(Outcome::Fail, online, expected, reason);
    }
    finish(Outcome::Pass, online, expected, "")
}

/// What a CPU does when its clock reaches `SCENARIO_AT_NS` (`scenario=`, docs/cmdline.md).
mod action {
    pub const NONE: u8 = 0;
    /// Spin with interrupts off.
    pub const SPIN: u8 = 1;
    /// Enter an NMI handler and spin there (NMIs blocked too).
    pub const NMI_BLOCKED: u8 = 2;
    /// Take deadlock lock 0, then lock 1 (interrupts off).
    pub const DEADLOCK_FIRST: u8 = 3;
    /// Take deadlock lock 1, then lock 0.
    pub const DEADLOCK_SECOND: u8 = 4;
    /// Send itself an NMI no one posted.
    pub const SPURIOUS_NMI: u8 = 5;
}

static SCENARIO_ACTION: [AtomicU8; percpu::MAX_CPUS] =
    [const { AtomicU8::new(action::NONE) }; percpu::MAX_CPUS];
static SCENARIO_AT_NS: AtomicU64 = AtomicU64::new(u64::MAX);
/// A CPU whose next NMI handler must never return (`kind=nmi-blocked`).
static BLOCK_IN_NMI: [AtomicBool; percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; percpu::MAX_CPUS];
/// The two locks of the `deadlock` scenario.
static DEADLOCK_LOCKS: [AtomicBool; 2] = [const { AtomicBool::new(false) }; 2];

/// Where a CPU spins in the `lockup` scenario: interrupts off, forever. Unmangled, so the
/// lockup report's RIP can be checked against the ELF's symbol table.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hpetwd_lockup_spin() -> ! {
    cpu::disable_interrupts();
    loop {
        core::hint::spin_loop();
    }
}

/// A test-and-set spin lock's acquire loop (the `deadlock` scenario spins here). Unmangled,
/// like `hpetwd_lockup_spin`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn hpetwd_spin_lock(lock: &AtomicBool) {
    while lock.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
}

/// Called first on every NMI: a CPU told to block stays in this NMI handler for good.
pub fn nmi_scenario_hook(index: usize) {
    if BLOCK_IN_NMI
        .get(index)
        .is_some_and(|b| b.load(Ordering::Relaxed))
    {
        hpetwd_lockup_spin();
    }
}

/// Runs this CPU's scenario action once its time has come.
fn scenario_step(index: usize) {
    let Some(slot) = SCENARIO_ACTION.get(index) else {
        return;
    };
    let act = slot.load(Ordering::Acquire);
    if act == action::NONE || watchdog::now_ns() < SCENARIO_AT_NS.load(Ordering::Relaxed) {
        return;
    }
    slot.store(action::NONE, Ordering::Relaxed);
    let injected = || {
        watchdog::FINDINGS[index]
            .injected_at_ns
            .store(watchdog::now_ns(), Ordering::Relaxed)
    };
    let own_apic_id = || percpu::get(index).map_or(0, |c| c.apic_id.load(Ordering::Relaxed));
    match act {
        action::SPIN => {
            injected();
            hpetwd_lockup_spin();
        }
        action::NMI_BLOCKED => {
            injected();
            BLOCK_IN_NMI[index].store(true, Ordering::Relaxed);
            lapic::send_ipi(own_apic_id(), lapic::icr::DELIVERY_NMI);
            hpetwd_lockup_spin();
        }
        action::DEADLOCK_FIRST | action::DEADLOCK_SECOND => {
            cpu::disable_interrupts();
            let (first, second) = if act == action::DEADLOCK_FIRST {
                (0, 1)
            } else {
                (1, 0)
            };
            hpetwd_spin_lock(&DEADLOCK_LOCKS[first]);
            // Both CPUs hold their first lock before either asks for its second: a deadlock
            // for certain, not a race.
            while !DEADLOCK_LOCKS[second].load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            injected();
            hpetwd_spin_lock(&DEADLOCK_LOCKS[second]);
            hpetwd_lockup_spin();
        }
        action::SPURIOUS_NMI => {
            lapic::send_ipi(own_apic_id(), lapic::icr::DELIVERY_NMI);
        }
        _ => {}
    }
}

/// Arms the watchdog, injects the scenario, waits, and reports (ends the run).
fn run_watchdog(
    timing: Timing,
    options: &Options,
    cpus: usize,
    bsp_index: usize,
    tsc_hz: u64,
    hpet: Option<&Hpet>,
) -> ! {
    if options.handler as usize >= cpus {
        fail_with(
            "bad-option-value",
            "handler names a CPU the MADT does not list",
        );
    }
    // (CPU, action) pairs, when, and how many unknown NMIs the scenario itself causes.
    let mut plan: [(u32, u8); 2] = [(u32::MAX, action::NONE); 2];
    let (after_ns, expected_unknown) = match options.scenario {
        Scenario::Idle => (0, 0),
        Scenario::Lockup {
            cpu,
            after_ns,
            nmi_blocked,
        } => {
            plan[0] = (
                cpu,
                if nmi_blocked {
                    action::NMI_BLOCKED
                } else {
                    action::SPIN
                },
            );
            (after_ns, 0)
        }
        Scenario::Deadlock { a, b, after_ns } => {
            plan = [(a, action::DEADLOCK_FIRST), (b, action::DEADLOCK_SECOND)];
            (after_ns, 0)
        }
        Scenario::SpuriousNmi { cpu, after_ns } => {
            plan[0] = (cpu.unwrap_or(options.handler), action::SPURIOUS_NMI);
            (after_ns, 1)
        }
    };
    for &(cpu, _) in plan.iter().filter(|(_, act)| *act != action::NONE) {
        if cpu as usize >= cpus {
            fail_with(
                "bad-option-value",
                "the scenario names a CPU the MADT does not list",
            );
        }
    }
    let locked = |index: usize| {
        plan.iter().any(|&(cpu, act)| {
            cpu as usize == index && act != action::NONE && act != action::SPURIOUS_NMI
        })
    };
    println!(
        "HPETWD watchdog policy={} timeout_ns={} heartbeat_ns={} check_period_ns={} hpet_period_ns={} window_ns={} bound_ns={} earliest_ns={} handler={} expected_unknown={}",
        timing.policy.name(),
        timing.timeout_ns,
        timing.heartbeat_ns,
        timing.check_period_ns,
        timing.hpet_period_ns.unwrap_or(0),
        timing.window_ns,
        timing.bound_ns,
        timing.earliest_ns,
        options.handler,
        expected_unknown
    );
    let started = match watchdog::start(timing, options.handler, cpus, tsc_hz, hpet) {
        Ok(started) => started,
        Err(reason) => fail_with("watchdog", reason),
    };
    if let Some((timer, route, width)) = started.route {
        let kind = match route {
            arch::hpet::Route::Fsb { .. } => "fsb",
            arch::hpet::Route::IoApic { .. } => "ioapic",
        };
        println!(
            "HPETWD watchdog-route kind={kind} timer={timer} width={} dest_cpu={}",
            if width == arch::hpet::Width::Bits64 {
                64
            } else {
                32
            },
            started.handler
        );
    }
    // Every CPU maps the HPET schedule onto its own clock on its first tick after arming.
    while !watchdog::all_ready(cpus) {
        if watchdog::now_ns() > started.armed_ns + 4 * timing.heartbeat_ns {
            fail_with("watchdog", "a CPU never took its first watchdog tick");
        }
        cpu::enable_interrupts_and_halt();
    }
    let armed = started.armed_ns;
    let run_for = if options.scenario == Scenario::Idle {
        3 * timing.timeout_ns
    } else {
        SCENARIO_AT_NS.store(armed + after_ns, Ordering::Relaxed);
        for &(cpu, act) in plan.iter().filter(|(_, act)| *act != action::NONE) {
            SCENARIO_ACTION[cpu as usize].store(act, Ordering::Release);
        }
        after_ns + timing.bound_ns + timing.timeout_ns / 2
    };
    // The reports are collected by a CPU the scenario leaves running: the boot CPU if it
    // can, else the first other one; the boot CPU then idles like the others (and may be the
    // one that locks up).
    let Some(collector) = (0..cpus)
        .find(|&c| c == bsp_index && !locked(c))
        .or_else(|| (0..cpus).find(|&c| !locked(c)))
    else {
        fail_with(
            "bad-option-value",
            "the scenario locks every CPU: no CPU is left to collect the reports",
        )
    };
    let collect_plan = CollectPlan {
        timing,
        cpus,
        plan,
        armed,
        until: armed + run_for,
        expected_unknown,
        hpet: started
            .route
            .zip(hpet.map(|h| h.base()))
            .map(|((timer, _, _), base)| (base, timer)),
    };
    if collector == bsp_index {
        collect(&collect_plan);
    }
    // SAFETY: written once, here, before COLLECTOR is published (release); the collector
    // reads it only after seeing its index there (acquire).
    unsafe { *COLLECT_PLAN.0.get() = Some(collect_plan) };
    COLLECTOR.store(collector as u32, Ordering::Release);
    idle_loop(bsp_index)
}

/// What the collecting CPU needs to wait for the scenario and report.
#[derive(Clone, Copy)]
struct CollectPlan {
    timing: Timing,
    cpus: usize,
    plan: [(u32, u8); 2],
    armed: u64,
    /// When to stop, on the boot CPU's clock.
    until: u64,
    expected_unknown: u64,
    /// The HPET register block and timer to stop.
    hpet: Option<(u64, u8)>,
}

struct PlanSlot(core::cell::UnsafeCell<Option<CollectPlan>>);
// SAFETY: written once by the boot CPU before COLLECTOR is published, read-only afterwards.
unsafe impl Sync for PlanSlot {}
static COLLECT_PLAN: PlanSlot = PlanSlot(core::cell::UnsafeCell::new(None));
/// The CPU that waits for the scenario and reports (`u32::MAX` until chosen).
static COLLECTOR: AtomicU32 = AtomicU32::new(u32::MAX);

/// A CPU with nothing else to do: faults and scenario actions when asked, the collector's
/// job if handed to it, else halt until the next interrupt.
fn idle_loop(index: usize) -> ! {
    loop {
        if FAULT_CPU.load(Ordering::Acquire) == index as u32 {
            raise_fault(fault_kind_from(FAULT_KIND.load(Ordering::Relaxed)));
        }
        scenario_step(index);
        if COLLECTOR.load(Ordering::Acquire) == index as u32 {
            // SAFETY: COLLECTOR names this CPU, so the plan was written before (see above).
            if let Some(plan) = unsafe { *COLLECT_PLAN.0.get() } {
                collect(&plan);
            }
        }
        cpu::enable_interrupts_and_halt();
    }
}

/// Waits until the scenario's end, stops the HPET, reports every CPU and ends the run.
fn collect(p: &CollectPlan) -> ! {
    let (online, expected) = cpu_counts();
    let (timing, cpus, plan, armed, expected_unknown) =
        (p.timing, p.cpus, p.plan, p.armed, p.expected_unknown);
    let locked = |index: usize| {
        plan.iter().any(|&(cpu, act)| {
            cpu as usize == index && act != action::NONE && act != action::SPURIOUS_NMI
        })
    };
    while watchdog::now_ns() < p.until {
        cpu::enable_interrupts_and_halt();
    }
    cpu::disable_interrupts();
    if let Some((base, timer)) = p.hpet {
        arch::hpet::stop_timer(base, timer);
    }
    let mut reason = "";
    let mut unknown_total = 0;
    for index in 0..cpus {
        let found = &watchdog::FINDINGS[index];
        let detected = found.detected_at_ns.load(Ordering::Acquire);
        let injected = found.injected_at_ns.load(Ordering::Relaxed);
        let nmis = percpu::get(index).map_or(0, |c| c.nmis.load(Ordering::Relaxed));
        let unknown = found.unknown_nmis.load(Ordering::Relaxed);
        let stalls = found.stalls.load(Ordering::Relaxed);
        println!(
            "HPETWD nmi-counts cpu={index} total={nmis} hpet={} ipi={} unknown={unknown} duplicate={} swallowed={} stalls={stalls}",
            found.hpet_nmis.load(Ordering::Relaxed),
            found.ipi_nmis.load(Ordering::Relaxed),
            found.duplicate_nmis.load(Ordering::Relaxed),
            found.swallowed_nmis.load(Ordering::Relaxed)
        );
        unknown_total += unknown;
        if stalls > 0 {
            reason = "the HPET NMIs stopped during the run";
        }
        let locked_here = locked(index);
        if detected != 0 {
            let latency = detected.saturating_sub(injected);
            println!(
                "HPETWD lockup cpu={index} apic_id={} detected_by={} injected_at_ns={} detected_at_ns={} latency_ns={latency} stalled_ns={} rip={:#x} rsp={:#x}",
                percpu::get(index).map_or(u32::MAX, |c| c.apic_id.load(Ordering::Relaxed)),
                found.detected_by.load(Ordering::Relaxed),
                injected.saturating_sub(armed),
                detected.saturating_sub(armed),
                found.stalled_ns.load(Ordering::Relaxed),
                found.rip.load(Ordering::Acquire),
                found.rsp.load(Ordering::Relaxed)
            );
            if !locked_here {
                reason = "a lockup was reported on a CPU that was not locked (false positive)";
            } else if latency < timing.earliest_ns || latency > timing.bound_ns {
                reason = "the detection latency is outside [T - h, the policy's bound]";
            }
        } else if locked_here {
            reason = "the injected lockup was not detected";
        }
    }
    if unknown_total != expected_unknown {
        reason = "unknown NMIs other than the scenario's own";
    }
    if !reason.is_empty() {
        finish(Outcome::Fail, online, expected, reason);
    }
    finish(Outcome::Pass, online, expected, "")
}

/// Arranges for `fault_cpu` to raise `kind`: at once on the boot CPU, or from an AP's idle
/// loop.
fn request_fault(kind: FaultKind, fault_cpu: u32, bsp_index: usize, cpu_count: usize) {
    if fault_cpu as usize >= cpu_count {
        fail_with(
            "bad-option-value",
            "fault_cpu names a CPU the MADT does not list",
        );
    }
    if fault_cpu as usize == bsp_index {
        raise_fault(kind);
    }
    FAULT_KIND.store(kind as u32, Ordering::Relaxed);
    FAULT_CPU.store(fault_cpu, Ordering::Release);
}

/// Raises the deliberate exception (`fault=` boot option).
fn raise_fault(kind: FaultKind) {
    match kind {
        FaultKind::None => {}
        // An address above the 4 GiB identity map (PDPT entry 7) is not present.
        // SAFETY: the read faults (#PF) before it can read anything; that is the point.
        FaultKind::PageFault => unsafe {
            core::ptr::read_volatile(0x0000_0001_dead_0000 as *const u64);
        },
        // SAFETY: a non-canonical address raises #GP before any access.
        FaultKind::GeneralProtection => unsafe {
            core::ptr::read_volatile(0x8000_0000_0000_0000 as *const u64);
        },
        // SAFETY: UD2 raises #UD; nothing else happens.
        FaultKind::InvalidOpcode => unsafe { core::arch::asm!("ud2") },
        // SAFETY: dividing by zero raises #DE; the registers are declared clobbered.
        FaultKind::DivideError => unsafe {
            core::arch::asm!("xor edx, edx", "xor ecx, ecx", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
        },
        // SAFETY: INT3 raises #BP; the handler ends the run.
        FaultKind::Breakpoint => unsafe { core::arch::asm!("int3") },
    }
}

fn fault_kind_from(value: u32) -> FaultKind {
    [
        FaultKind::None,
        FaultKind::PageFault,
        FaultKind::InvalidOpcode,
        FaultKind::GeneralProtection,
        FaultKind::DivideError,
        FaultKind::Breakpoint,
    ]
    .into_iter()
    .find(|k| *k as u32 == value)
    .unwrap_or(FaultKind::None)
}

/// An application processor's entry from the trampoline (`ap_entry64`), on its own stack.
#[unsafe(no_mangle)]
extern "C" fn ap_main() -> ! {
    let index = smp::AP_INDEX.load(Ordering::Acquire) as usize;
    let Some(slot) = smp::PENDING_SLOT.take() else {
        cpu::halt_forever()
    };
    // SAFETY: the slot was taken for this CPU alone and lives forever.
    unsafe { gdt::load(slot.tables, slot.ist_tops) };
    idt::load();
    percpu::set_current(index);
    lapic::enable(VECTOR_SPURIOUS);
    lapic::set_error_vector(VECTOR_ERROR);
    let Some(me) = percpu::get(index) else {
        cpu::halt_forever()
    };
    me.apic_id.store(lapic::id(), Ordering::Relaxed);
    me.x2apic
        .store(lapic::cpu_in_x2apic_mode(), Ordering::Relaxed);
    lapic::timer_start_periodic(VECTOR_TIMER, TIMER_INITIAL_COUNT.load(Ordering::Relaxed));
    me.online.store(true, Ordering::Release);
    idle_loop(index)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cpu::disable_interrupts();
    let mut detail = ReasonBuf::new();
    let _ = core::fmt::write(
        &mut detail,
        format_args!("kernel panic: {}", info.message()),
    );
    if let Some(location) = info.location() {
        let _ = core::fmt::write(
            &mut detail,
            format_args!(" at {}:{}", location.file(), location.line()),
        );
    }
    println_forced!("HPETWD error kind=panic detail={}", Quoted(detail.as_str()));
    let (online, expected) = cpu_counts();
    finish(Outcome::Error, online, expected, detail.as_str())
}
