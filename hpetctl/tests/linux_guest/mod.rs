//! Boots a real Debian Linux kernel in QEMU (q35, TCG) with a busybox initramfs that runs
//! the hpetctl binary under test, and hands back what it printed on the serial console.
//!
//! The kernel, its msr module and busybox come from `scripts/linux-guest.sh`, which prepares
//! `target/linux-guest/` (docs/linux-guest.md). The initramfs (cpio "newc", written here,
//! one temporary file per boot) holds busybox and its applet links, `/init`, `msr.ko`, and
//! `env!("CARGO_BIN_EXE_hpetctl")` with the shared libraries `ldd` lists for it (and the
//! dynamic loader at the path the binary asks for), so no second, static build is needed.
//!
//! `/init` prints diagnostics (what the guest kernel exposes: ACPI tables, /dev/mem, MSRs,
//! IOMMU state), then runs the command under test and prints its stdout and stderr (hex),
//! its exit status and a final `done` as marked lines, all through /dev/kmsg (see
//! `init_script` for why), then powers off.

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HPETCTL: &str = env!("CARGO_BIN_EXE_hpetctl");

/// Wall-clock limit for one boot, unless `$HPETWD_GUEST_TIMEOUT` (seconds) says otherwise.
/// A TCG boot of the Debian kernel takes about 10 s here (docs/linux-guest.md); the margin
/// covers slower CI machines and parallel tests sharing few cores.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn boot_timeout() -> Duration {
    std::env::var("HPETWD_GUEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(BOOT_TIMEOUT, Duration::from_secs)
}

/// The prepared guest directory: `$HPETWD_LINUX_GUEST_DIR`, else
/// `$CARGO_TARGET_DIR/linux-guest`, else the workspace's `target/linux-guest` (the places
/// scripts/linux-guest.sh writes to).
pub fn guest_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HPETWD_LINUX_GUEST_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("linux-guest");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/linux-guest")
        .components()
        .collect()
}

/// The files scripts/linux-guest.sh provides; panics naming the script when any is missing.
struct Guest {
    vmlinuz: PathBuf,
    msr_ko: PathBuf,
    busybox: PathBuf,
    manifest: String,
}

fn guest() -> Guest {
    let dir = guest_dir();
    let missing: Vec<&str> = ["MANIFEST", "vmlinuz", "msr.ko", "busybox"]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the Linux guest is not prepared: {} missing in {}.\n\
         Run scripts/linux-guest.sh (as root on Debian bookworm; it downloads the Debian \
         kernel and busybox-static, see docs/linux-guest.md).",
        missing.join(", "),
        dir.display()
    );
    Guest {
        vmlinuz: dir.join("vmlinuz"),
        msr_ko: dir.join("msr.ko"),
        busybox: dir.join("busybox"),
        manifest: std::fs::read_to_string(dir.join("MANIFEST")).unwrap_or_default(),
    }
}

/// A cpio "newc" archive (the format the kernel unpacks as initramfs), built in memory.
struct Cpio {
    data: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Cpio {
            data: Vec::new(),
            ino: 1,
        }
    }

    fn pad4(&mut self) {
        let len = self.data.len().next_multiple_of(4);
        self.data.resize(len, 0);
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime: fixed, so the archive is reproducible
            u32::try_from(body.len()).expect("initramfs member below 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap(),
            0, // check
        ];
        self.ino += 1;
        self.data.extend_from_slice(b"070701");
        for field in fields {
            self.data
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad4();
        self.data.extend_from_slice(body);
        self.pad4();
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    /// A directory and all its parents, each once.
    fn dirs(&mut self, made: &mut Vec<String>, path: &str) {
        let mut prefix = String::new();
        for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            if !made.contains(&prefix) {
                self.dir(&prefix);
                made.push(prefix.clone());
            }
        }
    }

    fn file(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.entry(name, 0o100000 | mode, (0, 0), body);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }

    fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // The kernel reads the archive in 512-byte blocks; pad like cpio(1) does.
        let len = self.data.len().next_multiple_of(512);
        self.data.resize(len, 0);
        self.data
    }
}

/// The shared libraries and loader `ldd` lists for a binary, as absolute paths. Statically
/// linked binaries give none.
fn shared_libraries(binary: &str) -> Vec<String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd on {binary}: {e} (package libc-bin)"));
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Vec::new();
    }
    assert!(
        out.status.success(),
        "ldd {binary} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2
        // (0x...)", "linux-vdso.so.1 (0x...)" (no file).
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(p.to_string()),
            Some("not") => panic!("ldd {binary}: a library is missing: {line}"),
            _ => {}
        }
    }
    libs
}

/// The busybox applets /init uses, linked into /bin.
const APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "insmod", "cat", "ls", "echo", "dmesg", "devmem", "grep", "head",
    "poweroff", "uname", "nproc", "od", "xxd", "tr", "fold", "true", "dd",
];

/// The marker that starts every line of /init's records in the serial log.
const MARK: &str = "@@hpetwd-guest ";

/// The /init script. `command` runs after the diagnostics; its stdout and stderr (hex, 30
/// bytes a line), its exit status and a final `done` are printed as marked records.
///
/// Everything /init prints goes to /dev/kmsg, i.e. through printk, which writes to the
/// serial console by polling: a tty write would wait for the UART's transmit interrupt,
/// and with QEMU's amd-iommu under TCG no IOAPIC interrupt reaches the CPU (see
/// docs/linux-guest.md), so the guest would hang at its first `echo`. One write to
/// /dev/kmsg is one record of at most ~1000 bytes, hence `lines`, which writes line by line
/// and folds long lines. The kernel command line needs `printk.devkmsg=on` (no rate limit).
fn init_script(command: &str) -> String {
    format!(
        r#"#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp
exec >/dev/kmsg 2>&1
# Copies stdin to stdout one line per write (one kmsg record each), prefixed with $1.
lines() {{
    fold -w 900 | while IFS= read -r line; do echo "$1$line"; done
}}
diag() {{ echo "@@diag $*"; }}
diag "uname: $(uname -r), $(nproc) CPUs online ($(cat /sys/devices/system/cpu/online))"
diag "cmdline: $(cat /proc/cmdline)"
if insmod /lib/modules/msr.ko; then diag "insmod msr.ko: ok"; else diag "insmod msr.ko: FAILED"; fi
diag "/dev/cpu: $(ls /dev/cpu/*/msr 2>&1 | tr '\n' ' ')"
diag "msr 0x1b (IA32_APIC_BASE) on cpu 0: $(dd if=/dev/cpu/0/msr bs=8 count=1 skip=27 iflag=skip_bytes 2>/dev/null | od -An -tx8 | tr -d ' \n')"
diag "acpi tables: $(ls /sys/firmware/acpi/tables | tr '\n' ' ')"
diag "/sys/class/iommu: $(ls /sys/class/iommu 2>&1 | tr '\n' ' ')"
for f in /sys/class/iommu/*/intel-iommu/cap /sys/class/iommu/*/intel-iommu/ecap /sys/class/iommu/*/amd-iommu/features; do
    [ -e "$f" ] && diag "$f: $(cat "$f")"
done
diag "HPET general capabilities (devmem 0xfed00000 32): $(devmem 0xfed00000 32 2>&1)"
diag "HPET timer 0 configuration (devmem 0xfed00100 32): $(devmem 0xfed00100 32 2>&1)"
diag "VT-d ECAP at QEMU's base (devmem 0xfed90010 32): $(devmem 0xfed90010 32 2>&1)"
diag "AMD-Vi EFR at QEMU's base (devmem 0xfed80030 32): $(devmem 0xfed80030 32 2>&1)"
diag "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
diag "/proc/iomem:"
grep -v ' : System RAM\|Kernel \|PCI Bus\|^ *0000' /proc/iomem | lines "@@diag   "
diag "/proc/interrupts:"
lines "@@diag   " </proc/interrupts
diag "end"
{{
{command}
}} >/tmp/stdout 2>/tmp/stderr
status=$?
xxd -p /tmp/stdout | lines "{MARK}out "
xxd -p /tmp/stderr | lines "{MARK}err "
echo "{MARK}status $status"
echo "{MARK}done"
poweroff -f
"#
    )
}

/// The bytes of the hex records `kind` ("out" or "err"), in order.
fn records(log: &str, kind: &str) -> Option<String> {
    let prefix = format!("{MARK}{kind} ");
    let mut hex = String::new();
    for line in log.lines() {
        if let Some(at) = line.find(&prefix) {
            hex.push_str(line[at + prefix.len()..].trim());
        }
    }
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

/// Writes the initramfs for `command` (run by /init after the diagnostics) to a temporary
/// file, deleted when dropped. Each boot gets its own file: QEMU maps it, and rewriting a
/// shared one under a running QEMU kills it with SIGBUS.
fn initramfs(guest: &Guest, command: &str) -> tempfile::NamedTempFile {
    let mut cpio = Cpio::new();
    let mut made = Vec::new();
    for d in [
        "/bin",
        "/dev",
        "/proc",
        "/sys",
        "/tmp",
        "/lib/modules",
        "/etc",
    ] {
        cpio.dirs(&mut made, d);
    }
    cpio.char_dev("/dev/console", 5, 1);
    cpio.char_dev("/dev/null", 1, 3);
    let read =
        |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    cpio.file("/bin/busybox", 0o755, &read(&guest.busybox));
    for applet in APPLETS {
        cpio.symlink(&format!("/bin/{applet}"), "busybox");
    }
    cpio.file("/lib/modules/msr.ko", 0o644, &read(&guest.msr_ko));
    cpio.file("/bin/hpetctl", 0o755, &read(Path::new(HPETCTL)));
    for lib in shared_libraries(HPETCTL) {
        let parent = Path::new(&lib)
            .parent()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        cpio.dirs(&mut made, &parent);
        // Follows symlinks: the file lands at the path the loader looks for.
        cpio.file(&lib, 0o755, &read(Path::new(&lib)));
    }
    cpio.file("/init", 0o755, init_script(command).as_bytes());
    let data = cpio.finish();
    let mut file = tempfile::Builder::new()
        .prefix("hpetwd-initramfs-")
        .suffix(".cpio")
        .tempfile()
        .expect("temporary file for the initramfs");
    file.write_all(&data).expect("write the initramfs");
    file.flush().expect("write the initramfs");
    file
}

/// What one boot gave.
pub struct Boot {
    /// The whole serial log (kernel boot messages, diagnostics, the command's output).
    pub log: String,
    /// The command's stdout, from its hex records (None when /init never finished).
    pub stdout: Option<String>,
    /// The command's stderr.
    pub stderr: Option<String>,
    /// The command's exit status inside the guest.
    pub status: Option<i32>,
    /// QEMU's wall time.
    pub wall: Duration,
    /// The QEMU command line, for messages.
    pub qemu_command: String,
    /// The guest's package versions (scripts/linux-guest.sh's MANIFEST), for messages.
    pub guest: String,
}

impl Boot {
    /// The command's stdout parsed as one JSON document; panics with the whole log when it
    /// is missing or is not JSON.
    pub fn json(&self) -> Value {
        let Some(stdout) = &self.stdout else {
            panic!(
                "the guest never printed the command's output (boot failed or timed out)\n{}",
                self.context()
            );
        };
        serde_json::from_str(stdout).unwrap_or_else(|e| {
            panic!(
                "the command's stdout is not one JSON document ({e}); exit status {:?}\n\
                 stdout:\n{stdout}\nstderr:\n{}\n{}",
                self.status,
                self.stderr.as_deref().unwrap_or(""),
                self.context()
            )
        })
    }

    /// The command line, the guest, the wall time, the command's stderr and exit status and
    /// the whole serial log, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "QEMU: {}\nguest: {}\nwall time: {:.1} s\ncommand exit status in the guest: {:?}\n\
             command stderr:\n{}\n---- serial log ----\n{}\n---- end of serial log ----",
            self.qemu_command,
            self.guest.split_whitespace().collect::<Vec<_>>().join(" "),
            self.wall.as_secs_f64(),
            self.status,
            self.stderr.as_deref().unwrap_or("(none)"),
            self.log
        )
    }
}

/// Boots the guest with `smp` vCPUs, QEMU's extra arguments `extra` (e.g. `["-global",
/// "hpet.msi=on"]`) and extra kernel command line `append`, running `command` in /init
/// (e.g. `/bin/hpetctl probe --json`).
pub fn boot(smp: u32, extra: &[&str], append: &str, command: &str) -> Boot {
    let guest = guest();
    let initrd = initramfs(&guest, command);
    let cmdline = format!("console=ttyS0 panic=-1 printk.devkmsg=on {append}");
    let mut args: Vec<String> = [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "512M",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("-smp".into());
    args.push(smp.to_string());
    args.push("-kernel".into());
    args.push(guest.vmlinuz.display().to_string());
    args.push("-initrd".into());
    args.push(initrd.path().display().to_string());
    args.push("-append".into());
    args.push(cmdline.trim().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let qemu_command = format!(
        "qemu-system-x86_64 {}",
        args.iter()
            .map(|a| if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    );

    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start qemu-system-x86_64: {e} (scripts/setup.sh)"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let timeout = boot_timeout();
    let mut timed_out = false;
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait for QEMU") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = start.elapsed();
    let serial = String::from_utf8_lossy(&out_reader.join().unwrap()).replace('\r', "");
    let qemu_stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    let mut log = serial;
    if timed_out {
        log.push_str(&format!(
            "\n*** QEMU killed after the {} s timeout ***\n",
            timeout.as_secs()
        ));
    } else if let Some(status) = exit {
        log.push_str(&format!("\n*** QEMU exited: {status} ***\n"));
    }
    if !qemu_stderr.trim().is_empty() {
        log.push_str(&format!("*** QEMU stderr:\n{qemu_stderr}\n"));
    }
    let complete = log.lines().any(|l| l.ends_with(&format!("{MARK}done")));
    let (stdout, stderr) = if complete {
        (records(&log, "out"), records(&log, "err"))
    } else {
        (None, None)
    };
    let status = log.lines().find_map(|l| {
        let at = l.find(&format!("{MARK}status "))?;
        l[at + MARK.len() + "status ".len()..]
            .trim()
            .parse::<i32>()
            .ok()
    });
    Boot {
        log,
        stdout,
        stderr,
        status,
        wall,
        qemu_command,
        guest: guest.manifest,
    }
}
