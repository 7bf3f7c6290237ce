//! Function names for kernel addresses, from the ELF's symbol table (goblin): the watchdog's
//! `lockup` records carry the locked CPU's RIP, and the report names the function it was in.

use anyhow::{Context, Result};
use goblin::elf::{sym, Elf};

/// The sized function (and object) symbols of one ELF, sorted by address.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    /// `(start, end, name)`, half-open, sorted by `start`.
    ranges: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// Read the symbol table (`.symtab`, else the dynamic one) of an ELF image.
    pub fn from_elf(bytes: &[u8]) -> Result<Symbols> {
        let elf = Elf::parse(bytes).context("cannot parse the kernel ELF for its symbols")?;
        fn add(
            ranges: &mut Vec<(u64, u64, String)>,
            syms: &goblin::elf::Symtab,
            strtab: &goblin::strtab::Strtab,
        ) {
            for s in syms.iter() {
                if s.st_size == 0 || s.st_shndx == 0 || s.st_type() != sym::STT_FUNC {
                    continue;
                }
                let Some(name) = strtab.get_at(s.st_name).filter(|n| !n.is_empty()) else {
                    continue;
                };
                ranges.push((
                    s.st_value,
                    s.st_value.saturating_add(s.st_size),
                    name.to_string(),
                ));
            }
        }
        let mut ranges = Vec::new();
        add(&mut ranges, &elf.syms, &elf.strtab);
        if ranges.is_empty() {
            add(&mut ranges, &elf.dynsyms, &elf.dynstrtab);
        }
        ranges.sort();
        Ok(Symbols { ranges })
    }

    /// The function containing `addr`, if the symbol table has one. Among overlapping
    /// symbols (aliases) the one that starts last, then the first by name, wins.
    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let end = self.ranges.partition_point(|(start, _, _)| *start <= addr);
        self.ranges[..end]
            .iter()
            .rev()
            .find(|(start, stop, _)| (*start..*stop).contains(&addr))
            .map(|(_, _, name)| name.as_str())
    }

    /// The address range of the function `name` (for tests and checks).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn range_of(&self, name: &str) -> Option<std::ops::Range<u64>> {
        self.ranges
            .iter()
            .find(|(_, _, n)| n == name)
            .map(|(s, e, _)| *s..*e)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_addresses_in_the_embedded_kernel() {
        let syms = Symbols::from_elf(crate::kernel_image::embedded_elf()).unwrap();
        assert!(!syms.is_empty());
        let spin = syms
            .range_of("hpetwd_lockup_spin")
            .expect("the kernel has hpetwd_lockup_spin");
        assert!(spin.end > spin.start);
        assert_eq!(syms.lookup(spin.start), Some("hpetwd_lockup_spin"));
        let mid = spin.start + (spin.end - spin.start) / 2;
        assert_eq!(syms.lookup(mid), Some("hpetwd_lockup_spin"));
        assert_ne!(syms.lookup(spin.end), Some("hpetwd_lockup_spin"));
        assert_eq!(syms.lookup(0), None);
        assert_eq!(syms.lookup(u64::MAX), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Symbols::from_elf(b"not an elf").is_err());
        assert!(Symbols::from_elf(&[]).is_err());
    }
}
