//! Read-only MMIO reads through `/dev/mem`: the only `unsafe` code in hpetctl.
//!
//! The page is mapped `PROT_READ`/`MAP_SHARED` from a file opened read-only, so no store can
//! reach the device; registers are read 32 bits at a time with volatile loads, as the HPET
//! and VT-d specifications allow (HPET 1.0a §2.3; VT-d §10.2: 32-bit reads of 64-bit
//! registers are permitted). Nothing here writes. `unsafe` is allowed for this module only,
//! by the `#[allow(unsafe_code)]` on its declaration in probe/mod.rs.

use std::fs::File;
use std::io;
use std::path::Path;

const PAGE: u64 = 4096;

/// Reads the 32-bit registers at `offsets` (each 4-byte aligned) from the physical address
/// `base`, through the `/dev/mem` at `dev_mem`.
pub fn read_u32s(dev_mem: &Path, base: u64, offsets: &[u32]) -> io::Result<Vec<u32>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
    let page = base & !(PAGE - 1);
    let delta = usize::try_from(base - page).map_err(|_| invalid("address"))?;
    let last = offsets.iter().copied().max().unwrap_or(0);
    if offsets.iter().any(|o| !o.is_multiple_of(4)) || !base.is_multiple_of(4) {
        return Err(invalid("unaligned register offset"));
    }
    let end = delta
        .checked_add(usize::try_from(last).map_err(|_| invalid("offset"))?)
        .and_then(|e| e.checked_add(4))
        .ok_or_else(|| invalid("offset"))?;
    let len = end.div_ceil(PAGE as usize) * PAGE as usize;
    let file = File::open(dev_mem)?;
    // SAFETY: a read-only (PROT_READ, MAP_SHARED) mapping of a file opened read-only; the
    // mapping is owned by `map` and lives until the end of this function, and nothing in
    // this process maps or unmaps that range meanwhile. The contents may change under us
    // (device registers), which is why every access below is a volatile read.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(page)
            .len(len)
            .map(&file)?
    };
    let mut out = Vec::with_capacity(offsets.len());
    for &off in offsets {
        let at = delta + off as usize;
        if at + 4 > map.len() {
            return Err(invalid("offset outside the mapping"));
        }
        // SAFETY: `at + 4 <= map.len()` was checked just above, so the 4 bytes are inside the
        // live mapping; `page` is page-aligned and `delta` and `off` are multiples of 4, so the
        // pointer is aligned for u32. A volatile read is a single 32-bit load.
        let value = unsafe { std::ptr::read_volatile(map.as_ptr().add(at).cast::<u32>()) };
        out.push(value);
    }
    Ok(out)
}
