//! The machine being probed: live paths under a root (`/`, or a fake tree in the tests), the
//! facts that could not be read, and the low-level readers: text files, 64-bit registers
//! through [`devmem`](super::devmem), MSRs through the msr driver, CPUID.

use super::devmem;
use super::report::Unread;
use acpi_probe::cpu::{CpuidRegs, CpuidSource, MsrRead, MsrSource};
use anyhow::Result;
use std::fmt::Display;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The `how` of a fact that an offline input cannot give.
pub(super) const ON_THE_MACHINE: &str = "run hpetctl probe on the machine itself";

/// The machine being probed and what could not be read of it.
pub(super) struct System {
    root: PathBuf,
    /// This machine (not an acpidump file or a table directory).
    pub live: bool,
    pub unread: Vec<Unread>,
}

impl System {
    pub fn new(root: &Path, live: bool) -> Self {
        Self {
            root: root.to_path_buf(),
            live,
            unread: Vec::new(),
        }
    }

    /// The live path `abs` under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// Records a fact that could not be read.
    pub fn note(&mut self, fact: &str, source: &str, reason: String, how: &str) {
        self.unread.push(Unread {
            fact: fact.into(),
            source: source.into(),
            reason,
            how: how.into(),
        });
    }

    /// Records a fact an offline input cannot give.
    pub fn note_offline(&mut self, fact: &str, source: &str) {
        self.note(
            fact,
            source,
            "not applicable to an offline input".into(),
            ON_THE_MACHINE,
        );
    }

    /// A malformed table (or part of one) in `source`: offline, an error naming it (exit
    /// status 2); live, noted under `fact` so the probe goes on with what remains.
    pub fn malformed(&mut self, fact: &str, source: &str, e: impl Display) -> Result<()> {
        if !self.live {
            anyhow::bail!("{source}: {e}");
        }
        self.note(fact, source, e.to_string(), "");
        Ok(())
    }

    /// A table parser's result, with an error handled as by [`System::malformed`].
    pub fn parsed<T, E: Display>(
        &mut self,
        r: std::result::Result<T, E>,
        fact: &str,
        source: &str,
    ) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => self.malformed(fact, source, e).map(|()| None),
        }
    }

    /// Reads a small text file; a failure is recorded with `how`.
    pub fn text(&mut self, fact: &str, abs: &str, how: &str) -> Option<String> {
        match std::fs::read_to_string(self.path(abs)) {
            Ok(t) => Some(t),
            Err(e) => {
                let how = if e.kind() == io::ErrorKind::PermissionDenied {
                    "run as root"
                } else {
                    how
                };
                self.note(fact, abs, io_reason(&e), how);
                None
            }
        }
    }

    /// Reads the 64-bit registers at `offsets` from the physical address `base` through
    /// `/dev/mem`, each as two 32-bit loads (low half first).
    pub fn read_u64s(&self, base: u64, offsets: &[u32]) -> io::Result<Vec<u64>> {
        let halves: Vec<u32> = offsets.iter().flat_map(|&o| [o, o + 4]).collect();
        let v = devmem::read_u32s(&self.path("/dev/mem"), base, &halves)?;
        Ok(v.chunks_exact(2)
            .map(|p| u64::from(p[0]) | u64::from(p[1]) << 32)
            .collect())
    }
}

/// An I/O error as a reason in the report.
pub(super) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "does not exist".into(),
        io::ErrorKind::PermissionDenied => format!("permission denied ({e})"),
        _ => e.to_string(),
    }
}

/// Live CPUID through raw-cpuid.
pub(super) struct NativeCpuid;

impl CpuidSource for NativeCpuid {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidRegs {
        let r = raw_cpuid::native_cpuid::cpuid_count(leaf, subleaf);
        CpuidRegs {
            eax: r.eax,
            ebx: r.ebx,
            ecx: r.ecx,
            edx: r.edx,
        }
    }
}

/// MSRs of one CPU through the msr driver (pread at offset = index; EIO means the CPU lacks
/// the MSR).
pub(super) struct DevMsr {
    file: std::fs::File,
}

impl DevMsr {
    pub fn open(path: &Path) -> io::Result<Self> {
        std::fs::File::open(path).map(|file| Self { file })
    }
}

impl MsrSource for DevMsr {
    fn read_msr(&self, index: u32) -> MsrRead {
        let mut buf = [0u8; 8];
        match self.file.read_exact_at(&mut buf, u64::from(index)) {
            Ok(()) => MsrRead::Value(u64::from_le_bytes(buf)),
            Err(e) if e.raw_os_error() == Some(5) => MsrRead::Absent,
            Err(_) => MsrRead::Unread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_is_an_error_offline_and_a_note_live() {
        let mut offline = System::new(Path::new("/"), false);
        let e = offline.parsed::<(), _>(Err("bad length"), "MADT", "f.dat");
        assert_eq!(e.unwrap_err().to_string(), "f.dat: bad length");
        assert!(offline.unread.is_empty());

        let mut live = System::new(Path::new("/"), true);
        assert_eq!(
            live.parsed(Ok::<_, &str>(7), "MADT", "f.dat").unwrap(),
            Some(7)
        );
        assert_eq!(
            live.parsed::<(), _>(Err("bad"), "MADT", "f.dat").unwrap(),
            None
        );
        assert_eq!(live.unread.len(), 1);
        assert_eq!(live.unread[0].reason, "bad");
        assert_eq!(live.unread[0].how, "");
    }

    #[test]
    fn paths_are_under_the_root() {
        let s = System::new(Path::new("/tmp/fake"), true);
        assert_eq!(s.path("/dev/mem"), PathBuf::from("/tmp/fake/dev/mem"));
    }
}
