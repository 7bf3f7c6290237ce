#!/usr/bin/env bash
# The main job: build the kernel (through hpetctl), boot it in QEMU on 4 vCPUs and print what
# it found; then run the HPET NMI watchdog (broadcast policy, T = 1 s) with CPU 2 locked up
# 1.3 s in, and print the detection report. Installs QEMU 10 and the ISO tools first when
# they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p hpetctl
out=out
target/release/hpetctl build -o "$out"
echo
echo "== boot: every CPU online"
target/release/hpetctl run "$out/hpetwd.elf" --smp 4
echo
echo "== watchdog: CPU 2 spins with interrupts off; the HPET NMI watchdog reports it"
target/release/hpetctl run "$out/hpetwd.elf" --smp 4 --cpu qemu64,+x2apic \
    --policy broadcast --watchdog-timeout 1 --handler 1 --scenario lockup:cpu=2,after=1.3 "$@"
