//! Recognising a bootable image: an ELF64 x86_64 kernel (with a PVH note for QEMU's
//! `-kernel`, and/or a multiboot2 header for GRUB) or an ISO 9660 image.
//!
//! ELF parsing is goblin's, which returns an error (not a panic) for a malformed file; every
//! offset taken from a parsed header is bounds-checked here before use. The multiboot2 scan
//! and the ISO check are a few bounds-checked reads.

use anyhow::{anyhow, bail, Context, Result};
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, ELFMAG, EM_X86_64, ET_EXEC};
use goblin::elf::note::{NoteDataIterator, NT_GNU_BUILD_ID};
use goblin::elf::program_header::PT_NOTE;
use goblin::elf::Elf;
use goblin::elf64::{header::SIZEOF_EHDR, program_header::SIZEOF_PHDR};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// ELF note type of the PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Magic of a multiboot2 header.
pub const MULTIBOOT2_MAGIC: u32 = 0xE852_50D6;
/// A multiboot2 header must lie within the first 32 KiB of the image, 8-byte aligned.
pub const MULTIBOOT2_SEARCH: usize = 32 * 1024;
/// Offset of the ISO 9660 primary volume descriptor's standard identifier.
pub const ISO9660_MAGIC_OFFSET: u64 = 0x8001;

/// What an image file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    /// An ELF64 x86_64 kernel.
    Elf(ElfInfo),
    /// An ISO 9660 image (`CD001` at 0x8001).
    Iso,
}

/// Facts about an ELF64 x86_64 kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// Physical entry point from the PVH note (`XEN_ELFNOTE_PHYS32_ENTRY`), if present.
    pub pvh_entry: Option<u64>,
    /// A valid multiboot2 header (magic, architecture 0, checksum) is in the first 32 KiB.
    pub multiboot2: bool,
    /// The GNU build-id note, as lowercase hex.
    pub build_id: Option<String>,
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageKind::Iso => write!(f, "ISO 9660 image"),
            ImageKind::Elf(e) => {
                write!(f, "ELF64 x86_64 kernel")?;
                let mut boots = Vec::new();
                if e.pvh_entry.is_some() {
                    boots.push("PVH note");
                }
                if e.multiboot2 {
                    boots.push("multiboot2 header");
                }
                if boots.is_empty() {
                    write!(f, " (no PVH note, no multiboot2 header)")
                } else {
                    write!(f, " ({})", boots.join(", "))
                }
            }
        }
    }
}

/// Recognise the image at `path`.
pub fn recognise_file(path: &Path) -> Result<ImageKind> {
    let cannot_read = || format!("cannot read image {}", path.display());
    let meta = std::fs::metadata(path).with_context(cannot_read)?;
    if meta.is_dir() {
        bail!(
            "{} is a directory, not a kernel image (expected an ELF64 x86_64 kernel with a PVH note, or an ISO made by `hpetctl build`)",
            path.display()
        );
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?;
    // Only the ISO 9660 identifier matters for a non-ELF: read up to it.
    let mut bytes = Vec::new();
    (&file)
        .take(ISO9660_MAGIC_OFFSET + 5)
        .read_to_end(&mut bytes)
        .with_context(cannot_read)?;
    if bytes.starts_with(ELFMAG) {
        // An ELF needs the whole file. Kernels are a few MiB; refuse anything absurd.
        const MAX_ELF: u64 = 512 * 1024 * 1024;
        if meta.len() > MAX_ELF {
            bail!(
                "{} is an ELF file of {} bytes, too large for a kernel image",
                path.display(),
                meta.len()
            );
        }
        (&file)
            .take(MAX_ELF)
            .read_to_end(&mut bytes)
            .with_context(cannot_read)?;
    }
    recognise(&bytes).with_context(|| format!("{} is not a kernel image", path.display()))
}

/// Recognise an image from its bytes (an ELF needs the whole file; an ISO the first
/// 0x8006 bytes).
pub fn recognise(bytes: &[u8]) -> Result<ImageKind> {
    const EXPECTED: &str =
        "expected an ELF64 x86_64 kernel (with a PVH note or a multiboot2 header) or an ISO 9660 image";
    if bytes.is_empty() {
        bail!("the file is empty; {EXPECTED}");
    }
    if bytes.starts_with(ELFMAG) {
        return parse_elf(bytes).map(ImageKind::Elf);
    }
    let off = ISO9660_MAGIC_OFFSET as usize;
    if bytes.get(off..off + 5) == Some(b"CD001") {
        return Ok(ImageKind::Iso);
    }
    bail!("unrecognised format (neither ELF nor ISO 9660); {EXPECTED}")
}

/// `N` bytes at `off`, if they are all within `b`.
fn bytes_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

fn parse_elf(b: &[u8]) -> Result<ElfInfo> {
    const EXPECTED: &str =
        "expected an ELF64 x86_64 kernel executable with a PVH note (ELF note type 18, name \"Xen\") or a multiboot2 header";
    // The identification bytes first, so that a short 32-bit or big-endian file is named so.
    match b.get(header::EI_CLASS).copied() {
        Some(header::ELFCLASS64) | None => {}
        Some(header::ELFCLASS32) => bail!("a 32-bit ELF (ELFCLASS32); {EXPECTED}"),
        Some(c) => bail!("ELF with invalid class {c}; {EXPECTED}"),
    }
    match b.get(header::EI_DATA).copied() {
        Some(header::ELFDATA2LSB) | None => {}
        Some(d) => bail!("a big-endian or invalid ELF (data encoding {d}); {EXPECTED}"),
    }
    if b.len() < SIZEOF_EHDR {
        bail!(
            "truncated ELF header ({} bytes, an ELF64 header has {SIZEOF_EHDR}); {EXPECTED}",
            b.len()
        );
    }
    let h = Elf::parse_header(b).map_err(|e| anyhow!("malformed ELF header: {e}; {EXPECTED}"))?;
    if h.e_machine != EM_X86_64 {
        bail!(
            "an ELF64 for machine {} ({}), not x86_64 ({EM_X86_64}); {EXPECTED}",
            h.e_machine,
            header::machine_to_str(h.e_machine)
        );
    }
    if h.e_type != ET_EXEC {
        let what = match h.e_type {
            header::ET_REL => "a relocatable object",
            header::ET_DYN => "a shared object or position-independent executable",
            header::ET_CORE => "a core dump",
            _ => "unknown",
        };
        bail!(
            "an ELF64 x86_64 of type {} ({what}), not a static executable (ET_EXEC = {ET_EXEC}); {EXPECTED}",
            h.e_type
        );
    }
    // goblin reads program headers at a fixed stride, whatever e_phentsize says.
    if h.e_phnum > 0 && usize::from(h.e_phentsize) != SIZEOF_PHDR {
        bail!(
            "malformed ELF: program header entry size {} (an ELF64 program header has {SIZEOF_PHDR})",
            h.e_phentsize
        );
    }
    // Parses (and so checks) the program and section headers, symbol and string tables.
    let elf = Elf::parse(b)
        .map_err(|e| anyhow!("malformed or truncated ELF ({} bytes): {e}", b.len()))?;
    let mut info = ElfInfo {
        pvh_entry: None,
        multiboot2: has_multiboot2_header(b),
        build_id: None,
    };
    for (i, ph) in elf.program_headers.iter().enumerate() {
        if ph.p_type != PT_NOTE {
            continue;
        }
        let area = usize::try_from(ph.p_offset)
            .ok()
            .zip(usize::try_from(ph.p_filesz).ok())
            .and_then(|(o, s)| b.get(o..o.checked_add(s)?))
            .with_context(|| {
                format!("malformed ELF: note segment (program header {i}) lies outside the file")
            })?;
        // Walk this segment's notes only (goblin's iter_note_headers would read notes running
        // past the segment's end from the rest of the file). Entries are 8-byte aligned in an
        // 8-aligned note segment, else 4 (goblin refuses other alignments).
        let notes = NoteDataIterator {
            data: area,
            size: area.len(),
            offset: 0,
            ctx: (
                if ph.p_align == 8 { 8 } else { 4 },
                Ctx::new(Container::Big, Endian::Little),
            ),
        };
        // A malformed note is an error, returned again on every later call: end the walk there.
        for note in notes.map_while(Result::ok) {
            match (note.name, note.n_type) {
                ("Xen", XEN_ELFNOTE_PHYS32_ENTRY) => {
                    // QEMU reads the entry as 8 bytes for ELF64, 4 for ELF32.
                    let entry = bytes_at(note.desc, 0).map(u64::from_le_bytes).or_else(|| {
                        bytes_at(note.desc, 0)
                            .map(u32::from_le_bytes)
                            .map(u64::from)
                    });
                    info.pvh_entry = info.pvh_entry.or(entry);
                }
                ("GNU", NT_GNU_BUILD_ID) if !note.desc.is_empty() && info.build_id.is_none() => {
                    info.build_id = Some(note.desc.iter().map(|x| format!("{x:02x}")).collect());
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

/// A multiboot2 header: magic, architecture 0 (i386), header length, and a checksum making
/// the four words sum to zero, 8-byte aligned within the first 32 KiB.
pub fn has_multiboot2_header(b: &[u8]) -> bool {
    let word = |off: usize| bytes_at(b, off).map(u32::from_le_bytes);
    (0..b.len().min(MULTIBOOT2_SEARCH)).step_by(8).any(|off| {
        let (Some(magic), Some(arch), Some(len), Some(sum)) =
            (word(off), word(off + 4), word(off + 8), word(off + 12))
        else {
            return false;
        };
        magic == MULTIBOOT2_MAGIC
            && arch == 0
            && len >= 16
            && magic.wrapping_add(arch).wrapping_add(len).wrapping_add(sum) == 0
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use goblin::elf64::section_header::SIZEOF_SHDR;

    /// A minimal ELF64 x86_64 executable with one PT_NOTE segment holding `notes`, and
    /// optionally a multiboot2 header after it.
    pub(crate) fn make_elf(notes: &[(&[u8], u32, &[u8])], multiboot2: bool) -> Vec<u8> {
        let mut area = Vec::new();
        for (name, ty, desc) in notes {
            let mut name = name.to_vec();
            name.push(0);
            area.extend_from_slice(&(name.len() as u32).to_le_bytes());
            area.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            area.extend_from_slice(&ty.to_le_bytes());
            area.extend_from_slice(&name);
            while area.len() & 3 != 0 {
                area.push(0);
            }
            area.extend_from_slice(desc);
            while area.len() & 3 != 0 {
                area.push(0);
            }
        }
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        b[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(area.len() as u64).to_le_bytes());
        b.extend_from_slice(&area);
        if multiboot2 {
            while b.len() & 7 != 0 {
                b.push(0);
            }
            let (magic, arch, len) = (MULTIBOOT2_MAGIC, 0u32, 24u32);
            let sum = 0u32.wrapping_sub(magic.wrapping_add(arch).wrapping_add(len));
            for w in [magic, arch, len, sum, 0, 8] {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        b
    }

    pub(crate) fn pvh_kernel() -> Vec<u8> {
        make_elf(
            &[
                (b"Xen", 18, &0x10_0000u64.to_le_bytes()),
                (b"GNU", 3, &[0xde, 0xad, 0xbe, 0xef]),
            ],
            true,
        )
    }

    pub(crate) fn iso_bytes() -> Vec<u8> {
        let mut b = vec![0u8; 0x8800];
        b[0x8000] = 1;
        b[0x8001..0x8006].copy_from_slice(b"CD001");
        b
    }

    #[test]
    fn recognises_a_pvh_multiboot2_kernel() {
        let ImageKind::Elf(info) = recognise(&pvh_kernel()).unwrap() else {
            panic!("not an ELF")
        };
        assert_eq!(info.pvh_entry, Some(0x10_0000));
        assert!(info.multiboot2);
        assert_eq!(info.build_id.as_deref(), Some("deadbeef"));
        // A note segment aligned to more than 8 still holds 4-byte aligned notes.
        let mut b = pvh_kernel();
        b[64 + 48..64 + 56].copy_from_slice(&4096u64.to_le_bytes()); // p_align
        assert_eq!(recognise(&b).unwrap(), recognise(&pvh_kernel()).unwrap());
    }

    #[test]
    fn elf_without_pvh_note() {
        let b = make_elf(&[(b"GNU", 3, &[1, 2])], false);
        let ImageKind::Elf(info) = recognise(&b).unwrap() else {
            panic!("not an ELF")
        };
        assert_eq!(info.pvh_entry, None);
        assert!(!info.multiboot2);
        // A note of the right type with the wrong name does not count.
        let b = make_elf(&[(b"Xenx", 18, &[0; 8])], false);
        let ImageKind::Elf(info) = recognise(&b).unwrap() else {
            panic!("not an ELF")
        };
        assert_eq!(info.pvh_entry, None);
    }

    #[test]
    fn rejects_other_elves() {
        let mut b = pvh_kernel();
        b[4] = 1;
        assert!(recognise(&b).unwrap_err().to_string().contains("32-bit"));
        let mut b = pvh_kernel();
        b[18] = 183; // aarch64
        assert!(recognise(&b)
            .unwrap_err()
            .to_string()
            .contains("not x86_64"));
        let mut b = pvh_kernel();
        b[16] = 3; // ET_DYN
        assert!(recognise(&b)
            .unwrap_err()
            .to_string()
            .contains("not a static executable"));
        let mut b = pvh_kernel();
        b[5] = 2; // big-endian
        assert!(recognise(&b)
            .unwrap_err()
            .to_string()
            .contains("big-endian"));
        let mut b = pvh_kernel();
        b[16] = 1; // ET_REL
        assert!(recognise(&b)
            .unwrap_err()
            .to_string()
            .contains("relocatable object"));
        assert!(recognise(b"\x7fELF\x02\x01")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn malformed_elves_are_errors() {
        let good = pvh_kernel();
        let mut b = good.clone();
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        assert!(recognise(&b).is_err());
        let mut b = good.clone();
        b[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes()); // p_filesz
        let e = recognise(&b).unwrap_err().to_string();
        assert!(
            e.contains("note segment") && e.contains("outside the file"),
            "{e}"
        );
        let mut b = good.clone();
        b[64 + 8..64 + 16].copy_from_slice(&(good.len() as u64).to_le_bytes()); // p_offset
        assert!(recognise(&b).is_err());
        let mut b = good.clone();
        b[54..56].copy_from_slice(&64u16.to_le_bytes()); // e_phentsize
        let e = recognise(&b).unwrap_err().to_string();
        assert!(e.contains("program header entry size 64"), "{e}");
        // A note whose sizes run past its segment ends the note walk quietly.
        let mut b = good.clone();
        b[120..124].copy_from_slice(&u32::MAX.to_le_bytes());
        let ImageKind::Elf(info) = recognise(&b).unwrap() else {
            panic!("not an ELF")
        };
        assert_eq!(info.pvh_entry, None);
        // So does one that fits in the file but not in its segment.
        let mut b = good;
        b[64 + 32..64 + 40].copy_from_slice(&20u64.to_le_bytes()); // p_filesz: cuts the Xen note
        let ImageKind::Elf(info) = recognise(&b).unwrap() else {
            panic!("not an ELF")
        };
        assert_eq!(info.pvh_entry, None);
    }

    /// Calls `f` with `good` corrupted in each of many ways within `region`, one at a time:
    /// for each of `widths`, every naturally aligned field of that many bytes set to a few
    /// values (a byte to 0, 1, 0x7f, 0x80, 0xff or one bit flipped; a wider field to
    /// boundary values and values around the file's length).
    fn for_each_corruption(
        good: &[u8],
        region: std::ops::Range<usize>,
        widths: &[usize],
        mut f: impl FnMut(&[u8]),
    ) {
        let mut b = good.to_vec();
        let len = good.len() as u64;
        for &width in widths {
            for i in region.clone().step_by(width) {
                let Some(field) = good.get(i..i + width) else {
                    continue;
                };
                let values: Vec<u64> = if width == 1 {
                    let old = u64::from(field[0]);
                    vec![0, 1, 0x7f, 0x80, 0xff, old ^ 1, old ^ 0x80]
                } else {
                    vec![0, u64::MAX, 1 << 63, 1 << 31, len - 1, len, len + 1]
                };
                for v in values {
                    b[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
                    f(&b);
                }
                b[i..i + width].copy_from_slice(field);
            }
        }
    }

    #[test]
    fn malformed_variants_never_panic() {
        // Whatever `recognise` returns, it must return.
        let check = |b: &[u8]| {
            let _ = recognise(b);
        };
        let small = pvh_kernel();
        let note_end = 120 + 44; // the end of `pvh_kernel`'s note segment
        for len in 0..small.len() {
            let r = recognise(&small[..len]);
            assert_eq!(
                r.is_err(),
                len < note_end,
                "truncated to {len} bytes: {r:?}"
            );
        }
        // The whole file: ELF header, program header, notes and multiboot2 header.
        for_each_corruption(&small, 0..small.len(), &[1, 2, 4, 8], check);
        // Random multi-byte corruption, reproducibly.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        for _ in 0..20_000 {
            let mut b = small.clone();
            for _ in 0..1 + rnd() % 6 {
                let i = rnd() % b.len();
                b[i] = rnd() as u8;
            }
            check(&b);
        }

        // The real kernel: its ELF and program headers, and the offsets, sizes and links in
        // its section headers (goblin follows those too); truncations everywhere in its headers
        // and at a stride through the rest.
        let real = crate::kernel_image::embedded_elf();
        let h = Elf::parse_header(real).unwrap();
        let ph_end = h.e_phoff as usize + usize::from(h.e_phnum) * SIZEOF_PHDR;
        for_each_corruption(real, 0..ph_end, &[1, 2, 4, 8], check);
        let sh = h.e_shoff as usize;
        for_each_corruption(
            real,
            sh..sh + usize::from(h.e_shnum) * SIZEOF_SHDR,
            &[4, 8],
            check,
        );
        for len in 0..real.len() {
            if len < 0x2000 || len % 509 == 0 || len >= sh {
                assert!(recognise(&real[..len]).is_err(), "truncated to {len}");
            }
        }
    }

    #[test]
    fn recognises_the_embedded_kernel() {
        let ImageKind::Elf(info) = recognise(crate::kernel_image::embedded_elf()).unwrap() else {
            panic!("not an ELF")
        };
        assert!(info.pvh_entry.is_some() && info.multiboot2, "{info:?}");
        let id = info.build_id.unwrap();
        assert!(
            id.len() == 40 && id.bytes().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }

    #[test]
    fn recognises_iso_and_rejects_random_and_empty() {
        assert_eq!(recognise(&iso_bytes()).unwrap(), ImageKind::Iso);
        assert!(recognise(&[]).unwrap_err().to_string().contains("empty"));
        let random: Vec<u8> = (0..0x9000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let e = recognise(&random).unwrap_err().to_string();
        assert!(e.contains("neither ELF nor ISO"), "{e}");
        // Short files that cannot reach 0x8001.
        assert!(recognise(b"CD001").is_err());
    }

    #[test]
    fn recognise_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<u8>); 3] = [
            ("empty", vec![]),
            ("random", b"#!/bin/sh\necho hi\n".to_vec()),
            ("nopvh", make_elf(&[], false)),
        ];
        for (name, bytes) in &cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let r = recognise_file(&p);
            if *name == "nopvh" {
                assert!(matches!(
                    r,
                    Ok(ImageKind::Elf(ElfInfo {
                        pvh_entry: None,
                        ..
                    }))
                ));
            } else {
                let e = format!("{:#}", r.unwrap_err());
                assert!(e.contains(&p.display().to_string()), "{e}");
                assert!(e.contains("expected"), "{e}");
            }
        }
        let p = dir.path().join("cd.iso");
        std::fs::write(&p, iso_bytes()).unwrap();
        assert_eq!(recognise_file(&p).unwrap(), ImageKind::Iso);
        let e = format!(
            "{:#}",
            recognise_file(&dir.path().join("missing")).unwrap_err()
        );
        assert!(e.contains("missing"), "{e}");
        let e = format!("{:#}", recognise_file(dir.path()).unwrap_err());
        assert!(e.contains("directory"), "{e}");
    }
}
