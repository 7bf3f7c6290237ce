#!/usr/bin/env bash
# The test suite: installs what is missing (scripts/setup.sh), then checks formatting and
# lints, runs the host unit tests and the QEMU boot tests. .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The Debian kernel and busybox the Linux-guest probe tests boot (docs/linux-guest.md).
scripts/linux-guest.sh

echo "== format"
cargo fmt --all -- --check

echo "== clippy (host crates)"
cargo clippy --all-targets -- -D warnings
echo "== clippy (kernel, freestanding)"
cargo clippy -p kernel-image --bins --profile kernel --target x86_64-unknown-linux-gnu -- -D warnings
cargo clippy -p kernel-image --lib --tests -- -D warnings

echo "== clippy (watchdog simulator)"
cargo clippy -p nmi-watchdog --all-targets --all-features -- -D warnings

echo "== watchdog logic against the simulator"
cargo test -p nmi-watchdog --all-features

echo "== kernel library tests (host)"
cargo test -p kernel-image --lib

echo "== workspace tests (unit + QEMU boots)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --exclude kernel-image --no-fail-fast
else
    echo "(cargo-nextest not installed: using cargo test, which prints no per-test times)"
    cargo test --workspace --exclude kernel-image --no-fail-fast -- --nocapture
fi
