//! Bounds-checked parsers for the ACPI tables hpetwd needs: the RSDP, the RSDT/XSDT, the
//! MADT, the HPET table (and the HPET's register layout) and the DMAR table.
//!
//! Shared by the bare-metal kernel and `hpetctl`: `no_std`, no allocation, no `unsafe`, and
//! no panic on any input. Every parser takes `&[u8]` and returns typed values or a
//! [`ParseError`] that names the table, the field or entry and its offset. With the `alloc`
//! feature, [`acpidump`] decodes the text `acpidump` prints. See docs/acpi.md.

#![no_std]
#![forbid(unsafe_code)]
// The parsers must not panic, whatever the bytes: no indexing, no unchecked arithmetic, no
// unwrap (tests may).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod error;
mod read;

pub mod cpu;
pub mod dmar;
pub mod hpet;
pub mod ivrs;
pub mod madt;
pub mod root;
pub mod rsdp;
pub mod sdt;
pub mod verdict;

#[cfg(feature = "alloc")]
pub mod acpidump;

pub use error::ParseError;
