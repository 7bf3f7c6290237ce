//! The watchdog in the kernel: `nmi-watchdog`'s engine behind the kernel's machine (NMI IPIs
//! through the local APIC, the HPET route), driven by every CPU's LAPIC timer (heartbeat) and
//! NMI handler.
//!
//! NMI context takes no lock, allocates nothing and never touches the console: findings
//! leave it through per-CPU atomic records ([`Findings`]) that the boot CPU reads.
//!
//! Clocks: each CPU's `now` is its own TSC in nanoseconds, and no CPU ever compares it with
//! another CPU's. The boot CPU arms the HPET with expiry 0 at a counter value two heartbeats
//! ahead; on its first tick after that, each CPU (outside NMI context, where an HPET read is
//! allowed) reads the HPET counter and its own clock once, and places the expiries it will
//! receive on its own clock. Its NMI handler takes part only from then on.

use crate::arch::hpet::{self, Route, Width, MAX_TIMERS};
use crate::arch::idt::InterruptFrame;
use crate::arch::{cpu, lapic};
use crate::percpu::{self, MAX_CPUS};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use nmi_watchdog::attribution::HpetLiveness;
use nmi_watchdog::detect::CountCheck;
use nmi_watchdog::engine::{CpuIndex, Event, LocalCpu, Machine, SharedCpu, Watchdog};
use nmi_watchdog::policy::Policy;
use nmi_watchdog::timing::Timing;

/// State owned by one CPU and touched only by it, from one context (its NMI handler, or its
/// timer interrupt), which never nests with itself.
struct Owned<T>(UnsafeCell<T>);

// SAFETY: every `Owned` below is documented with the one CPU and the one context that use
// it; the boot CPU writes them once before `ARMED` is set (release), the owners read them
// only after seeing `ARMED` (acquire).
unsafe impl<T> Sync for Owned<T> {}

impl<T> Owned<T> {
    /// # Safety
    /// The caller is the owner described at the static, in its context, or the boot CPU
    /// before the watchdog is armed; no other reference to the value exists meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller's contract makes this the only reference.
        unsafe { &mut *self.0.get() }
    }
}

/// What other CPUs read or write of each CPU (heartbeat count, IPI mailbox).
static SHARED: [SharedCpu; MAX_CPUS] = [const { SharedCpu::new() }; MAX_CPUS];
/// Each CPU's NMI state: owner CPU, NMI context.
static LOCAL: [Owned<Option<LocalCpu>>; MAX_CPUS] =
    [const { Owned(UnsafeCell::new(None)) }; MAX_CPUS];
/// The remote checker's table: the handling CPU, NMI context.
static CHECKS: Owned<[CountCheck; MAX_CPUS]> =
    Owned(UnsafeCell::new([CountCheck::new(); MAX_CPUS]));
/// Each CPU's check of its buddy: owner CPU, timer interrupt.
static BUDDY: [Owned<CountCheck>; MAX_CPUS] =
    [const { Owned(UnsafeCell::new(CountCheck::new())) }; MAX_CPUS];
/// Monitored CPUs in rotation order, and the configuration: written by the boot CPU before
/// arming, read-only afterwards.
static MONITORED: Owned<[CpuIndex; MAX_CPUS]> = Owned(UnsafeCell::new([0; MAX_CPUS]));
static CONFIG: Owned<Option<Watchdog<'static>>> = Owned(UnsafeCell::new(None));
static LIVENESS: HpetLiveness = HpetLiveness::new();
static ARMED: AtomicBool = AtomicBool::new(false);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point number.
static NS_PER_TSC: AtomicU64 = AtomicU64::new(0);
/// The HPET route the NMI path may retarget (round-robin): register base, timer, kind.
static HPET_BASE: AtomicU64 = AtomicU64::new(0);
static HPET_TIMER: AtomicU8 = AtomicU8::new(0);
static ROUTE_IS_FSB: AtomicBool = AtomicBool::new(false);
/// The HPET's expiry 0 (a main-counter value), period and counter width, for each CPU's own
/// mapping of the schedule onto its clock.
static HPET_FIRST: AtomicU64 = AtomicU64::new(0);
static HPET_PERIOD_FS: AtomicU64 = AtomicU64::new(0);
static HPET_COUNTER_64: AtomicBool = AtomicBool::new(true);
/// Set by each CPU once its NMI state is in place (release); its NMI handler reads LOCAL only
/// after seeing it (acquire).
static READY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// When HPET expiry 0 is due, on each CPU's own clock (the liveness check times silence from
/// there).
static EXPIRY0_NS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// One CPU's findings, written by the CPU that found them, read by the boot CPU.
pub struct Findings {
    /// Detection time on the detecting CPU's clock, 0 while none; written last (release).
    pub detected_at_ns: AtomicU64,
    pub stalled_ns: AtomicU64,
    pub detected_by: AtomicU32,
    /// RIP of the locked CPU's interrupted context, from its own NMI (0 while none).
    pub rip: AtomicU64,
    pub rsp: AtomicU64,
    /// When the scenario made this CPU spin, on its own clock (0 while not).
    pub injected_at_ns: AtomicU64,
    /// NMIs claimed as an HPET expiry.
    pub hpet_nmis: AtomicU64,
    /// NMI IPIs claimed (two merged into one NMI count as two).
    pub ipi_nmis: AtomicU64,
    pub unknown_nmis: AtomicU64,
    pub duplicate_nmis: AtomicU64,
    pub swallowed_nmis: AtomicU64,
    pub stalls: AtomicU64,
}

impl Findings {
    const fn new() -> Self {
        Self {
            detected_at_ns: AtomicU64::new(0),
            stalled_ns: AtomicU64::new(0),
            detected_by: AtomicU32::new(u32::MAX),
            rip: AtomicU64::new(0),
            rsp: AtomicU64::new(0),
            injected_at_ns: AtomicU64::new(0),
            hpet_nmis: AtomicU64::new(0),
            ipi_nmis: AtomicU64::new(0),
            unknown_nmis: AtomicU64::new(0),
            duplicate_nmis: AtomicU64::new(0),
            swallowed_nmis: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
        }
    }
}

/// Findings per logical CPU.
pub static FINDINGS: [Findings; MAX_CPUS] = [const { Findings::new() }; MAX_CPUS];

/// The calling CPU's clock in nanoseconds (its TSC, scaled).
pub fn now_ns() -> u64 {
    ((u128::from(cpu::rdtsc()) * u128::from(NS_PER_TSC.load(Ordering::Relaxed))) >> 32) as u64
}

/// NMI IPIs and the HPET route, callable from NMI context.
struct KernelMachine;

fn apic_id_of(cpu: CpuIndex) -> Option<u32> {
    percpu::get(cpu as usize).map(|c| c.apic_id.load(Ordering::Relaxed))
}

impl Machine for KernelMachine {
    fn send_nmi(&self, cpu: CpuIndex) {
        if let Some(id) = apic_id_of(cpu) {
            lapic::send_ipi(id, lapic::icr::DELIVERY_NMI);
        }
    }

    fn send_nmi_all_but_self(&self) {
        lapic::send_ipi(
            0,
            lapic::icr::DELIVERY_NMI | lapic::icr::SHORTHAND_ALL_BUT_SELF,
        );
    }

    fn route_hpet_to(&self, cpu: CpuIndex) {
        let Some(id) = apic_id_of(cpu).and_then(|id| u8::try_from(id).ok()) else {
            return;
        };
        if ROUTE_IS_FSB.load(Ordering::Relaxed) {
            // One 32-bit write of the FSB route's address half: cannot be torn.
            hpet::write_fsb_address(
                HPET_BASE.load(Ordering::Relaxed),
                HPET_TIMER.load(Ordering::Relaxed),
                crate::hpet_route::msi_address(id),
            );
        }
    }
}

fn record(me: CpuIndex, event: Event, frame: Option<&InterruptFrame>, now: u64) {
    let f = |cpu: CpuIndex| FINDINGS.get(cpu as usize);
    match event {
        Event::Lockup {
            cpu,
            stalled_ns,
            detected_by,
        } => {
            if let Some(found) = f(cpu) {
                if cpu == me {
                    if let Some(frame) = frame {
                        found.rip.store(frame.rip, Ordering::Relaxed);
                        found.rsp.store(frame.rsp, Ordering::Relaxed);
                    }
                }
                found.stalled_ns.store(stalled_ns, Ordering::Relaxed);
                found.detected_by.store(detected_by, Ordering::Relaxed);
                found.detected_at_ns.store(now.max(1), Ordering::Release);
            }
        }
        Event::Capture { cpu } => {
            if let (Some(found), Some(frame)) = (f(cpu), frame) {
                found.rsp.store(frame.rsp, Ordering::Relaxed);
                found.rip.store(frame.rip, Ordering::Release);
            }
        }
        Event::ClaimedNmi { cpu, hpet, ipis } => {
            if let Some(found) = f(cpu) {
                if hpet {
                    found.hpet_nmis.fetch_add(1, Ordering::Relaxed);
                }
                found.ipi_nmis.fetch_add(ipis, Ordering::Relaxed);
            }
        }
        Event::UnknownNmi { cpu } => bump(f(cpu).map(|x| &x.unknown_nmis)),
        Event::DuplicateNmi { cpu } => bump(f(cpu).map(|x| &x.duplicate_nmis)),
        Event::SwallowedNmi { cpu } => bump(f(cpu).map(|x| &x.swallowed_nmis)),
        Event::HpetStalled { cpu, .. } => bump(f(cpu).map(|x| &x.stalls)),
    }
}

fn bump(counter: Option<&AtomicU64>) {
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn config() -> Option<&'static Watchdog<'static>> {
    if !ARMED.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: written once by the boot CPU before ARMED was set; read-only since.
    unsafe { CONFIG.get() }.as_ref()
}

/// The NMI handler's part: returns whether the NMI was the watchdog's.
pub fn on_nmi(me: usize, frame: &InterruptFrame) -> bool {
    let Some(wd) = config() else { return false };
    if !READY.get(me).is_some_and(|r| r.load(Ordering::Acquire)) {
        return false;
    }
    let (Some(slot), Ok(me32)) = (LOCAL.get(me), u32::try_from(me)) else {
        return false;
    };
    // SAFETY: LOCAL[me] belongs to CPU `me`'s NMI handler, which is running now on CPU `me`
    // (NMIs do not nest).
    let Some(local) = (unsafe { slot.get() }).as_mut() else {
        return false;
    };
    let now = now_ns();
    let checks = if wd.timing.policy == Policy::Remote && me32 == wd.handler {
        // SAFETY: the checker's table belongs to the handling CPU's NMI handler: this one.
        Some(&mut unsafe { CHECKS.get() }[..])
    } else {
        None
    };
    let ours = wd.on_nmi(
        me32,
        now,
        local,
        checks,
        Some(&LIVENESS),
        &KernelMachine,
        &mut |e| record(me32, e, Some(frame), now),
    );
    local.attribution.handler_done(now_ns());
    ours
}

/// The timer interrupt's part: the heartbeat, the buddy check, HPET liveness.
pub fn on_tick(me: usize) {
    let Some(wd) = config() else { return };
    let (Some(buddy), Ok(me32)) = (BUDDY.get(me), u32::try_from(me)) else {
        return;
    };
    if !READY[me].load(Ordering::Acquire) {
        prepare_cpu(wd, me, me32);
    }
    let now = now_ns();
    // SAFETY: BUDDY[me] belongs to CPU `me`'s timer interrupt: this one.
    let buddy = unsafe { buddy.get() };
    let mut events = |e| record(me32, e, None, now);
    wd.on_tick(me32, now, Some(buddy), &KernelMachine, &mut events);
    if me32 == wd.handler && wd.timing.policy.uses_hpet() {
        wd.check_liveness(
            me32,
            now,
            EXPIRY0_NS[me].load(Ordering::Relaxed),
            &LIVENESS,
            &mut events,
        );
    }
}

/// Places the HPET expiries CPU `me` receives on its own clock, from one reading of the HPET
/// counter and its own TSC, and makes its NMI handler take part.
fn prepare_cpu(wd: &Watchdog<'static>, me: usize, me32: CpuIndex) {
    let first_due_ns = if wd.timing.hpet_period_ns.is_some() {
        let counter_64 = HPET_COUNTER_64.load(Ordering::Relaxed);
        let counter = hpet::read_counter(HPET_BASE.load(Ordering::Relaxed), counter_64);
        let now = now_ns();
        let first = HPET_FIRST.load(Ordering::Relaxed);
        let ahead = if counter_64 {
            first.wrapping_sub(counter)
        } else {
            u64::from((first as u32).wrapping_sub(counter as u32))
        };
        let ahead_ns =
            u128::from(ahead) * u128::from(HPET_PERIOD_FS.load(Ordering::Relaxed)) / 1_000_000;
        now.saturating_add(ahead_ns as u64)
    } else {
        0
    };
    EXPIRY0_NS[me].store(first_due_ns, Ordering::Relaxed);
    if let Some(slot) = LOCAL.get(me) {
        // SAFETY: LOCAL[me] is written here, by CPU `me` in its timer interrupt, before
        // READY[me] is set; its NMI handler, the owner, reads it only after seeing READY.
        *unsafe { slot.get() } = Some(wd.local_for(me32, first_due_ns));
    }
    READY[me].store(true, Ordering::Release);
}

/// Whether every CPU in `0..cpus` has its NMI state in place.
pub fn all_ready(cpus: usize) -> bool {
    READY
        .iter()
        .take(cpus.min(MAX_CPUS))
        .all(|r| r.load(Ordering::Acquire))
}

/// Everything `start` decided, for the report.
pub struct Started {
    pub handler: u32,
    pub route: Option<(u8, Route, Width)>,
    pub armed_ns: u64,
}

/// Sets the watchdog up over CPUs `0..cpus` and arms it. Called once, by the boot CPU,
/// after every CPU is online and ticking at `timing.heartbeat_ns`.
pub fn start(
    timing: Timing,
    handler: u32,
    cpus: usize,
    tsc_hz: u64,
    hpet: Option<&hpet::Hpet>,
) -> Result<Started, &'static str> {
    let ns_per_tsc = ((1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1))) as u64;
    NS_PER_TSC.store(ns_per_tsc, Ordering::Relaxed);
    // SAFETY: the boot CPU, before ARMED: nothing else reads these yet.
    let monitored = unsafe { MONITORED.get() };
    let n = cpus.min(MAX_CPUS);
    for (i, slot) in monitored.iter_mut().take(n).enumerate() {
        *slot = i as CpuIndex;
    }
    // SAFETY: as above; the slice is never written again, so it may be shared for 'static.
    let monitored: &'static [CpuIndex] = unsafe { &MONITORED.get()[..n] };
    let wd = Watchdog {
        timing,
        monitored,
        handler,
        shared: &SHARED,
    };
    let mut route = None;
    let period_ns = timing.hpet_period_ns;
    let (_, arm) = match (period_ns, hpet) {
        (None, _) => (0, None),
        (Some(_), None) => return Err("the policy needs the HPET, and there is no usable HPET"),
        (Some(period_ns), Some(hpet)) => {
            let caps = hpet.capabilities();
            let period_ticks =
                (u128::from(period_ns) * 1_000_000 / u128::from(caps.period_fs().max(1))) as u64;
            let timers = caps.num_timers().min(MAX_TIMERS);
            let id = apic_id_of(handler)
                .and_then(|id| u8::try_from(id).ok())
                .ok_or("the handling CPU's APIC ID does not fit an 8-bit route")?;
            let timer = (0..timers)
                .find(|&t| hpet.timer(t).fsb_delivery_capable() && hpet.timer(t).periodic_capable())
                .ok_or("no periodic HPET timer with FSB delivery (QEMU: -global hpet.msi=on)")?;
            let width = if caps.counter_64bit() {
                Width::Bits64
            } else {
                Width::Bits32
            };
            let r = Route::Fsb {
                address: crate::hpet_route::msi_address(id),
                data: crate::hpet_route::MSI_DATA_NMI,
            };
            // Expiry 0 two heartbeats ahead: every CPU ticks (and maps the schedule onto its
            // own clock) before the first HPET NMI is due.
            let lead_ticks = (u128::from(2 * timing.heartbeat_ns) * 1_000_000
                / u128::from(caps.period_fs().max(1))) as u64;
            let first = hpet.counter().wrapping_add(lead_ticks);
            HPET_FIRST.store(first, Ordering::Relaxed);
            HPET_PERIOD_FS.store(u64::from(caps.period_fs()), Ordering::Relaxed);
            HPET_COUNTER_64.store(caps.counter_64bit(), Ordering::Relaxed);
            route = Some((timer, r, width));
            (0, Some((timer, first, period_ticks, width, r)))
        }
    };
    // SAFETY: the boot CPU, before ARMED.
    *unsafe { CONFIG.get() } = Some(wd);
    let armed_ns = now_ns();
    if let (Some((timer, _, _, _, _)), Some(hpet)) = (arm, hpet) {
        HPET_BASE.store(hpet.base(), Ordering::Relaxed);
        HPET_TIMER.store(timer, Ordering::Relaxed);
        ROUTE_IS_FSB.store(true, Ordering::Relaxed);
    }
    ARMED.store(true, Ordering::Release);
    if let (Some((timer, first, period_ticks, width, r)), Some(hpet)) = (arm, hpet) {
        hpet.start_periodic(timer, first, period_ticks, width, r);
    }
    Ok(Started {
        handler,
        route,
        armed_ns,
    })
}
