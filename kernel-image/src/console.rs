//! Line-oriented printing to the serial console, one whole line at a time under a spin lock
//! so lines from different CPUs never interleave.

use crate::arch::serial;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

static LOCK: AtomicBool = AtomicBool::new(false);

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                serial::write_byte(b'\r');
            }
            serial::write_byte(byte);
        }
        Ok(())
    }
}

/// Spins for the console; with `bounded`, gives up after a while and prints anyway (the
/// exception and panic paths: the holder may be the very code that faulted).
fn acquire(bounded: bool) -> bool {
    let mut spins: u64 = 0;
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins += 1;
        if bounded && spins > 50_000_000 {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

fn print(args: fmt::Arguments<'_>, bounded: bool) {
    let owned = acquire(bounded);
    let _ = Serial.write_fmt(args);
    let _ = Serial.write_str("\n");
    if owned {
        LOCK.store(false, Ordering::Release);
    }
}

/// Prints one line (a newline is added).
pub fn print_line(args: fmt::Arguments<'_>) {
    print(args, false);
}

/// Prints one line even if the console lock is never released (fatal paths only).
pub fn print_line_forced(args: fmt::Arguments<'_>) {
    print(args, true);
}

/// Prints a line.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}

/// Prints a line from a fatal path.
#[macro_export]
macro_rules! println_forced {
    ($($arg:tt)*) => { $crate::console::print_line_forced(format_args!($($arg)*)) };
}
