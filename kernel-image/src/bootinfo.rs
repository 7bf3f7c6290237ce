//! Boot information from the two boot protocols the kernel accepts.
//!
//! - PVH: `struct hvm_start_info` (Xen public header `arch-x86/hvm/start_info.h`): magic
//!   0x336ec578 at +0, version at +4, cmdline_paddr at +24, rsdp_paddr at +32, and from
//!   version 1 memmap_paddr at +40 and memmap_entries at +48; memory-map entries are 24 bytes
//!   (addr, size, type, reserved) with E820 type numbers.
//! - Multiboot2 (Multiboot2 specification 1.0, section 3.6): total_size, reserved, then tags
//!   (type, size) aligned to 8 bytes: 1 command line, 6 memory map, 14 ACPI old RSDP,
//!   15 ACPI new RSDP, 0 end.
//!
//! Parsers take the bytes the loader handed over and never panic; addresses they return are
//! read by the kernel, which bounds every read.

use core::fmt;

/// `hvm_start_info.magic`.
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Value of `eax` at the multiboot2 entry point.
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// Size of `hvm_start_info` up to and including `memmap_entries` (version 1).
pub const PVH_START_INFO_LEN: usize = 56;
/// Size of one `hvm_memmap_table_entry`.
pub const PVH_MEMMAP_ENTRY_LEN: usize = 24;
/// Largest multiboot2 information structure the kernel accepts.
pub const MULTIBOOT2_MAX_INFO_LEN: usize = 64 * 1024;

/// Why boot information could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The structure is shorter than its fixed part.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// The magic number does not match the protocol.
    BadMagic { what: &'static str, found: u32 },
    /// A multiboot2 tag's size is smaller than its header or runs past the structure.
    BadTag {
        offset: usize,
        tag_type: u32,
        size: u32,
    },
    /// A field carries a value the protocol does not allow.
    BadField { what: &'static str, value: u64 },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { what, need, have } => {
                write!(f, "{what}: {have} bytes, need at least {need}")
            }
            Self::BadMagic { what, found } => write!(f, "{what}: bad magic {found:#x}"),
            Self::BadTag {
                offset,
                tag_type,
                size,
            } => write!(
                f,
                "multiboot2 tag at offset {offset:#x} (type {tag_type}) has bad size {size}"
            ),
            Self::BadField { what, value } => write!(f, "{what}: bad value {value:#x}"),
        }
    }
}

/// What a memory-map region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// RAM the OS may use.
    Available,
    /// ACPI tables; reclaimable once they are read.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Unusable,
    /// Anything else (reserved, firmware, MMIO).
    Reserved(u32),
}

impl MemoryKind {
    /// E820 / PVH / multiboot2 share these numbers: 1 RAM, 3 ACPI, 4 NVS, 5 bad.
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            1 => Self::Available,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Reserved(other),
        }
    }
}

/// One region of the physical memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub base: u64,
    pub length: u64,
    pub kind: MemoryKind,
}

/// Regions kept from the loader's memory map (further ones are counted, not kept).
pub const MAX_MEMORY_REGIONS: usize = 128;

/// The physical memory map, copied out of the loader's memory.
#[derive(Debug, Clone, Copy)]
pub struct MemoryMap {
    regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    len: usize,
    dropped: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        const EMPTY: MemoryRegion = MemoryRegion {
            base: 0,
            length: 0,
            kind: MemoryKind::Reserved(0),
        };
        Self {
            regions: [EMPTY; MAX_MEMORY_REGIONS],
            len: 0,
            dropped: 0,
        }
    }

    /// Adds a region; beyond [`MAX_MEMORY_REGIONS`] it is counted in [`Self::dropped`].
    pub fn push(&mut self, region: MemoryRegion) {
        match self.regions.get_mut(self.len) {
            Some(slot) => {
                *slot = region;
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }

    /// The regions kept, in loader order.
    pub fn regions(&self) -> &[MemoryRegion] {
        self.regions.get(..self.len).unwrap_or(&[])
    }

    /// Regions that did not fit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Whether `[base, base + len)` lies wholly inside one available region.
    pub fn is_available(&self, base: u64, len: u64) -> bool {
        let Some(end) = base.checked_add(len) else {
            return false;
        };
        self.regions().iter().any(|r| {
            r.kind == MemoryKind::Available
                && r.base <= base
                && r.base
                    .checked_add(r.length)
                    .is_some_and(|r_end| end <= r_end)
        })
    }

    /// The lowest 4 KiB page in `[from, below)` that is available RAM (the AP trampoline
    /// must sit below 1 MiB: its real-mode start address is the SIPI vector times 4 KiB).
    pub fn find_low_page(&self, from: u64, below: u64) -> Option<u64> {
        let mut page = from.checked_add(0xfff)? & !0xfff;
        while page.checked_add(0x1000)? <= below {
            if self.is_available(page, 0x1000) {
                return Some(page);
            }
            page += 0x1000;
        }
        None
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let lo = u32_at(bytes, offset)?;
    let hi = u32_at(bytes, offset.checked_add(4)?)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

/// The fields of `hvm_start_info` the kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PvhStartInfo {
    pub version: u32,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
}

/// Parses `hvm_start_info`. Version 0 has no memory map (its fields read as zero).
pub fn parse_pvh_start_info(bytes: &[u8]) -> Result<PvhStartInfo, BootInfoError> {
    let truncated = |need| BootInfoError::Truncated {
        what: "PVH start info",
        need,
        have: bytes.len(),
    };
    let magic = u32_at(bytes, 0).ok_or(truncated(40))?;
    if magic != PVH_MAGIC {
        return Err(BootInfoError::BadMagic {
            what: "PVH start info",
            found: magic,
        });
    }
    let version = u32_at(bytes, 4).ok_or(truncated(40))?;
    let cmdline_paddr = u64_at(bytes, 24).ok_or(truncated(40))?;
    let rsdp_paddr = u64_at(bytes, 32).ok_or(truncated(40))?;
    let (memmap_paddr, memmap_entries) = if version >= 1 {
        let paddr = u64_at(bytes, 40).ok_or(truncated(PVH_START_INFO_LEN))?;
        let entries = u32_at(bytes, 48).ok_or(truncated(PVH_START_INFO_LEN))?;
        (paddr, entries)
    } else {
        (0, 0)
    };
    Ok(PvhStartInfo {
        version,
        cmdline_paddr,
        rsdp_paddr,
        memmap_paddr,
        memmap_entries,
    })
}

/// Parses a PVH memory map (`memmap_entries` entries of 24 bytes) into `map`.
pub fn parse_pvh_memmap(bytes: &[u8], map: &mut MemoryMap) {
    for entry in bytes.chunks_exact(PVH_MEMMAP_ENTRY_LEN) {
        if let (Some(base), Some(length), Some(kind)) =
            (u64_at(entry, 0), u64_at(entry, 8), u32_at(entry, 16))
        {
            map.push(MemoryRegion {
                base,
                length,
                kind: MemoryKind::from_e820(kind),
            });
        }
    }
}

/// The multiboot2 tags the kernel uses, borrowed from the information structure.
#[derive(Debug, Clone, Copy, Default)]
pub struct Multiboot2Info<'a> {
    /// Tag 1, without its terminating NUL.
    pub cmdline: Option<&'a [u8]>,
    /// Tag 15: a copy of the ACPI 2.0+ RSDP.
    pub rsdp_new: Option<&'a [u8]>,
    /// Tag 14: a copy of the ACPI 1.0 RSDP.
    pub rsdp_old: Option<&'a [u8]>,
}

/// Multiboot2 tag types (Multiboot2 specification section 3.6).
mod tag {
    pub const END: u32 = 0;
    pub const CMDLINE: u32 = 1;
    pub const MMAP: u32 = 6;
    pub const ACPI_OLD: u32 = 14;
    pub const ACPI_NEW: u32 = 15;
}

/// Reads `total_size` from the first 8 bytes of a multiboot2 information structure.
pub fn multiboot2_total_size(header: &[u8]) -> Result<usize, BootInfoError> {
    let size = u32_at(header, 0).ok_or(BootInfoError::Truncated {
        what: "multiboot2 information",
        need: 8,
        have: header.len(),
    })?;
    let size = size as usize;
    if !(16..=MULTIBOOT2_MAX_INFO_LEN).contains(&size) {
        return Err(BootInfoError::BadField {
            what: "multiboot2 total_size",
            value: size as u64,
        });
    }
    Ok(size)
}

/// Parses a multiboot2 information structure; the memory map goes into `map`.
pub fn parse_multiboot2<'a>(
    bytes: &'a [u8],
    map: &mut MemoryMap,
) -> Result<Multiboot2Info<'a>, BootInfoError> {
    let total = multiboot2_total_size(bytes)?;
    let bytes = bytes.get(..total).ok_or(BootInfoError::Truncated {
        what: "multiboot2 information",
        need: total,
        have: bytes.len(),
    })?;
    let mut info = Multiboot2Info::default();
    let mut offset = 8usize;
    while offset < total {
        let (Some(tag_type), Some(size)) = (u32_at(bytes, offset), u32_at(bytes, offset + 4))
        else {
            return Err(BootInfoError::BadTag {
                offset,
                tag_type: 0,
                size: 0,
            });
        };
        let end = offset.checked_add(size as usize);
        let body = match end {
            Some(end) if size >= 8 && end <= total => &bytes[offset + 8..end],
            _ => {
                return Err(BootInfoError::BadTag {
                    offset,
                    tag_type,
                    size,
                })
            }
        };
        match tag_type {
            tag::END => return Ok(info),
            tag::CMDLINE => {
                let len = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                info.cmdline = Some(&body[..len]);
            }
            tag::MMAP => parse_multiboot2_mmap(body, map)?,
            tag::ACPI_OLD => info.rsdp_old = Some(body),
            tag::ACPI_NEW => info.rsdp_new = Some(body),
            _ => {}
        }
        // Tags start on 8-byte boundaries.
        offset = match offset.checked_add((size as usize + 7) & !7) {
            Some(next) => next,
            None => break,
        };
    }
    Err(BootInfoError::BadField {
        what: "multiboot2 end tag missing",
        value: total as u64,
    })
}

fn parse_multiboot2_mmap(body: &[u8], map: &mut MemoryMap) -> Result<(), BootInfoError> {
    let entry_size = u32_at(body, 0).ok_or(BootInfoError::Truncated {
        what: "multiboot2 memory map tag",
        need: 8,
        have: body.len(),
    })? as usize;
    if entry_size < 24 {
        return Err(BootInfoError::BadField {
            what: "multiboot2 memory map entry_size",
            value: entry_size as u64,
        });
    }
    for entry in body.get(8..).unwrap_or(&[]).chunks_exact(entry_size) {
        if let (Some(base), Some(length), Some(kind)) =
            (u64_at(entry, 0), u64_at(entry, 8), u32_at(entry, 16))
        {
            map.push(MemoryRegion {
                base,
                length,
                kind: MemoryKind::from_e820(kind),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn pvh(version: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&PVH_MAGIC.to_le_bytes());
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // flags
        b.extend_from_slice(&0u32.to_le_bytes()); // nr_modules
        b.extend_from_slice(&0u64.to_le_bytes()); // modlist_paddr
        b.extend_from_slice(&0x1000u64.to_le_bytes()); // cmdline_paddr
        b.extend_from_slice(&0xf5a40u64.to_le_bytes()); // rsdp_paddr
        b.extend_from_slice(&0x2000u64.to_le_bytes()); // memmap_paddr
        b.extend_from_slice(&3u32.to_le_bytes()); // memmap_entries
        b.extend_from_slice(&0u32.to_le_bytes()); // reserved
        b
    }

    #[test]
    fn pvh_start_info_fields_at_their_offsets() {
        let info = parse_pvh_start_info(&pvh(1)).unwrap();
        assert_eq!(
            info,
            PvhStartInfo {
                version: 1,
                cmdline_paddr: 0x1000,
                rsdp_paddr: 0xf5a40,
                memmap_paddr: 0x2000,
                memmap_entries: 3
            }
        );
        let v0 = parse_pvh_start_info(&pvh(0)[..40]).unwrap();
        assert_eq!((v0.memmap_paddr, v0.memmap_entries), (0, 0));
    }

    #[test]
    fn pvh_start_info_rejects_bad_magic_and_every_truncation() {
        let mut bad = pvh(1);
        bad[0] ^= 1;
        assert!(matches!(
            parse_pvh_start_info(&bad),
            Err(BootInfoError::BadMagic { .. })
        ));
        let good = pvh(1);
        for len in 0..PVH_START_INFO_LEN - 4 {
            assert!(parse_pvh_start_info(&good[..len]).is_err(), "len {len}");
        }
    }

    fn mb2(tags: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = std::vec![0u8; 8];
        for (t, body) in tags {
            let size = 8 + body.len() as u32;
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(body);
            while !b.len().is_multiple_of(8) {
                b.push(0);
            }
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        let total = b.len() as u32;
        b[..4].copy_from_slice(&total.to_le_bytes());
        b
    }

    fn mmap_body(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&24u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for (base, len, kind) in entries {
            b.extend_from_slice(&base.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        b
    }

    #[test]
    fn multiboot2_tags_are_found() {
        let rsdp: Vec<u8> = (0..36).collect();
        let bytes = mb2(&[
            (tag::CMDLINE, b"exit=qemu fault=none\0".to_vec()),
            (
                tag::MMAP,
                mmap_body(&[
                    (0, 0x9fc00, 1),
                    (0x9fc00, 0x400, 2),
                    (0x100000, 0x7ee0000, 1),
                ]),
            ),
            (tag::ACPI_NEW, rsdp.clone()),
            (99, std::vec![1, 2, 3]),
        ]);
        let mut map = MemoryMap::new();
        let info = parse_multiboot2(&bytes, &mut map).unwrap();
        assert_eq!(info.cmdline, Some(&b"exit=qemu fault=none"[..]));
        assert_eq!(info.rsdp_new, Some(&rsdp[..]));
        assert_eq!(info.rsdp_old, None);
        assert_eq!(map.regions().len(), 3);
        assert_eq!(map.regions()[1].kind, MemoryKind::Reserved(2));
        assert_eq!(map.find_low_page(0x1000, 0x100000), Some(0x1000));
        assert!(!map.is_available(0x9f000, 0x1000));
        assert!(map.is_available(0x9e000, 0x1000));
    }

    #[test]
    fn multiboot2_malformed_input_is_an_error() {
        let good = mb2(&[(tag::CMDLINE, b"x\0".to_vec())]);
        let mut map = MemoryMap::new();
        for len in 0..good.len() {
            assert!(
                parse_multiboot2(&good[..len], &mut map).is_err(),
                "len {len}"
            );
        }
        // A tag whose size runs past the end.
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            parse_multiboot2(&bad, &mut map),
            Err(BootInfoError::BadTag { .. })
        ));
        // A tag smaller than its own header.
        let mut bad = good;
        bad[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            parse_multiboot2(&bad, &mut map),
            Err(BootInfoError::BadTag { .. })
        ));
    }

    #[test]
    fn low_page_skips_reserved_memory() {
        let mut map = MemoryMap::new();
        map.push(MemoryRegion {
            base: 0,
            length: 0x8000,
            kind: MemoryKind::Reserved(2),
        });
        map.push(MemoryRegion {
            base: 0x8000,
            length: 0x97000,
            kind: MemoryKind::Available,
        });
        assert_eq!(map.find_low_page(0x1000, 0x100000), Some(0x8000));
        assert_eq!(map.find_low_page(0x1000, 0x8000), None);
    }
}
