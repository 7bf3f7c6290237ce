#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| acpi_probe_fuzz::rsdp(data));
