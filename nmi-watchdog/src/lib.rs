//! The hardware-independent HPET NMI watchdog: heartbeats, the detection state machine,
//! NMI attribution and the rotation policies. Hardware sits behind traits, so the logic runs
//! on the host against a simulator.
//!
//! This crate is filled in by the watchdog work; the kernel foundation only depends on it
//! being a `no_std` crate that forbids `unsafe`.
#![no_std]
#![forbid(unsafe_code)]
