#!/usr/bin/env bash
# The main job, for now: build the kernel (through hpetctl), boot it in QEMU on 4 vCPUs, and
# print what it found. Installs QEMU 10 and the ISO tools first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p hpetctl
out=out
target/release/hpetctl build -o "$out"
echo
target/release/hpetctl run "$out/hpetwd.elf" --smp 4 "$@"
