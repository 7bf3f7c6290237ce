//! The hardware-independent HPET NMI watchdog: heartbeats, the detection state machine, NMI
//! attribution and the rotation policies. Hardware sits behind traits, so the logic runs on
//! the host against a simulator; the kernel links the same code.
//!
//! - [`timing`]: T, the heartbeat and check periods, the attribution window and each
//!   policy's worst-case detection bound, derived and documented.
//! - [`detect`]: heartbeats and the "not advanced for T" decision, once per lockup episode.
//! - [`attribution`]: which NMI was it (HPET by expected expiry, IPI by mailbox, merged,
//!   unknown), and the liveness check that notices when HPET NMIs stop.
//! - [`policy`]: the five rotation policies.
//! - [`engine`]: what each CPU does on its timer tick and on an NMI under each policy, with
//!   the machine behind the [`engine::Machine`] trait.
//! - `sim` (feature `sim`, host only, uses std): a deterministic simulator of the machine
//!   (HPET, APICs, clocks, NMI latching, faults) the tests run every policy against; the
//!   kernel never enables it. See docs/watchdog.md.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod attribution;
pub mod detect;
pub mod engine;
pub mod policy;
#[cfg(feature = "sim")]
pub mod sim;
pub mod timing;
