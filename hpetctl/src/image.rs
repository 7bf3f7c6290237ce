//! Recognising a bootable image: an ELF64 x86_64 kernel (with a PVH note for QEMU's
//! `-kernel`, and/or a multiboot2 header for GRUB) or an ISO 9660 image.
//!
//! The ELF reader here is small and bounds-checked on every access, so a malformed file can
//! only produce an error, never a panic.

use anyhow::{bail, Context, Result};
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
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read image {}", path.display()))?;
    if meta.is_dir() {
        bail!(
            "{} is a directory, not a kernel image (expected an ELF64 x86_64 kernel with a PVH note, or an ISO made by `hpetctl build`)",
            path.display()
        );
    }
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("cannot open image {}", path.display()))?;
    let mut head = [0u8; 4];
    let n = read_up_to(&mut file, &mut head)
        .with_context(|| format!("cannot read image {}", path.display()))?;
    let bytes = if n == 4 && head == *b"\x7fELF" {
        // Kernels are a few MiB; refuse to read anything absurd into memory.
        const MAX_ELF: u64 = 512 * 1024 * 1024;
        if meta.len() > MAX_ELF {
            bail!(
                "{} is an ELF file of {} bytes, too large for a kernel image",
                path.display(),
                meta.len()
            );
        }
        std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?
    } else {
        // Only the ISO 9660 identifier matters: read up to it.
        let mut buf = head[..n].to_vec();
        let want = ISO9660_MAGIC_OFFSET as usize + 5;
        let mut rest = vec![0u8; want.saturating_sub(n)];
        let m = read_up_to(&mut file, &mut rest)
            .with_context(|| format!("cannot read image {}", path.display()))?;
        buf.extend_from_slice(&rest[..m]);
        buf
    };
    recognise(&bytes).with_context(|| format!("{} is not a kernel image", path.display()))
}

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Recognise an image from its bytes (an ELF needs the whole file; an ISO the first
/// 0x8006 bytes).
pub fn recognise(bytes: &[u8]) -> Result<ImageKind> {
    const EXPECTED: &str =
        "expected an ELF64 x86_64 kernel (with a PVH note or a multiboot2 header) or an ISO 9660 image";
    if bytes.is_empty() {
        bail!("the file is empty; {EXPECTED}");
    }
    if bytes.starts_with(b"\x7fELF") {
        return parse_elf(bytes).map(ImageKind::Elf);
    }
    let off = ISO9660_MAGIC_OFFSET as usize;
    if bytes.get(off..off + 5) == Some(b"CD001") {
        return Ok(ImageKind::Iso);
    }
    bail!("unrecognised format (neither ELF nor ISO 9660); {EXPECTED}")
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn align4(x: usize) -> Option<usize> {
    x.checked_add(3).map(|v| v & !3)
}

struct Note<'a> {
    name: &'a [u8],
    n_type: u32,
    desc: &'a [u8],
}

/// Iterate the notes of one note area; stops (without error) at the first malformed note.
fn notes(area: &[u8]) -> Vec<Note<'_>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < area.len() {
        let (Some(namesz), Some(descsz), Some(n_type)) = (
            u32_at(area, off),
            u32_at(area, off + 4),
            u32_at(area, off + 8),
        ) else {
            break;
        };
        let name_off = off + 12;
        let Some(name_end) = name_off.checked_add(namesz as usize) else {
            break;
        };
        let Some(desc_off) = align4(name_end) else {
            break;
        };
        let Some(desc_end) = desc_off.checked_add(descsz as usize) else {
            break;
        };
        let (Some(name), Some(desc)) = (area.get(name_off..name_end), area.get(desc_off..desc_end))
        else {
            break;
        };
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        out.push(Note { name, n_type, desc });
        match align4(desc_end) {
            Some(next) => off = next,
            None => break,
        }
    }
    out
}

fn parse_elf(b: &[u8]) -> Result<ElfInfo> {
    const EXPECTED: &str =
        "expected an ELF64 x86_64 kernel executable with a PVH note (ELF note type 18, name \"Xen\") or a multiboot2 header";
    if b.len() < 64 {
        bail!("truncated ELF header ({} bytes); {EXPECTED}", b.len());
    }
    match b[4] {
        2 => {}
        1 => bail!("a 32-bit ELF (ELFCLASS32); {EXPECTED}"),
        c => bail!("ELF with invalid class {c}; {EXPECTED}"),
    }
    if b[5] != 1 {
        bail!(
            "a big-endian or invalid ELF (data encoding {}); {EXPECTED}",
            b[5]
        );
    }
    let machine = u16_at(b, 18).unwrap_or(0);
    if machine != 62 {
        bail!("an ELF64 for machine {machine}, not x86_64 (62); {EXPECTED}");
    }
    let e_type = u16_at(b, 16).unwrap_or(0);
    if e_type != 2 {
        bail!(
            "an ELF64 x86_64 of type {e_type} (a shared object or position-independent executable), not a static executable (ET_EXEC = 2); {EXPECTED}"
        );
    }
    let phoff = u64_at(b, 32).unwrap_or(0);
    let phentsize = u16_at(b, 54).unwrap_or(0) as usize;
    let phnum = u16_at(b, 56).unwrap_or(0) as usize;
    let mut pvh_entry = None;
    let mut build_id = None;
    if phnum > 0 {
        if phentsize < 56 {
            bail!("malformed ELF: program header entry size {phentsize} (< 56)");
        }
        let phoff = usize::try_from(phoff).context("malformed ELF: program header offset")?;
        for i in 0..phnum {
            let ph = i
                .checked_mul(phentsize)
                .and_then(|x| x.checked_add(phoff))
                .context("malformed ELF: program header offset overflows")?;
            let (Some(p_type), Some(p_offset), Some(p_filesz)) = (
                u32_at(b, ph),
                u64_at(b, ph.saturating_add(8)),
                u64_at(b, ph.saturating_add(32)),
            ) else {
                bail!("malformed ELF: program header {i} lies outside the file");
            };
            if p_type != 4 {
                continue; // not PT_NOTE
            }
            let area = usize::try_from(p_offset)
                .ok()
                .zip(usize::try_from(p_filesz).ok())
                .and_then(|(o, s)| b.get(o..o.checked_add(s)?))
                .with_context(|| {
                    format!("malformed ELF: note segment {i} lies outside the file")
                })?;
            for note in notes(area) {
                if note.name == b"Xen" && note.n_type == XEN_ELFNOTE_PHYS32_ENTRY {
                    // QEMU reads the entry as 8 bytes for ELF64, 4 for ELF32.
                    let entry =
                        u64_at(note.desc, 0).or_else(|| u32_at(note.desc, 0).map(u64::from));
                    if let Some(e) = entry {
                        pvh_entry.get_or_insert(e);
                    }
                } else if note.name == b"GNU" && note.n_type == 3 && !note.desc.is_empty() {
                    build_id.get_or_insert_with(|| {
                        note.desc
                            .iter()
                            .map(|x| format!("{x:02x}"))
                            .collect::<String>()
                    });
                }
            }
        }
    }
    Ok(ElfInfo {
        pvh_entry,
        multiboot2: has_multiboot2_header(b),
        build_id,
    })
}

/// A multiboot2 header: magic, architecture 0 (i386), header length, and a checksum making
/// the four words sum to zero, 8-byte aligned within the first 32 KiB.
pub fn has_multiboot2_header(b: &[u8]) -> bool {
    let end = b.len().min(MULTIBOOT2_SEARCH);
    (0..end).step_by(8).any(|off| {
        let (Some(magic), Some(arch), Some(len), Some(sum)) = (
            u32_at(b, off),
            u32_at(b, off + 4),
            u32_at(b, off + 8),
            u32_at(b, off + 12),
        ) else {
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
        assert!(recognise(b"\x7fELF\x02\x01")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn malformed_elves_are_errors_not_panics() {
        let good = pvh_kernel();
        // Every truncation and a few corruptions of every header byte must not panic.
        for len in 0..good.len() {
            let _ = recognise(&good[..len]);
        }
        for i in 0..120 {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = recognise(&b);
            }
        }
        let mut b = good.clone();
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(recognise(&b).is_err());
        let mut b = good.clone();
        b[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes()); // p_filesz
        assert!(recognise(&b).is_err());
        // A note whose sizes run past its segment ends the note walk quietly.
        let mut b = good;
        b[120..124].copy_from_slice(&u32::MAX.to_le_bytes());
        let ImageKind::Elf(info) = recognise(&b).unwrap() else {
            panic!("not an ELF")
        };
        assert_eq!(info.pvh_entry, None);
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
