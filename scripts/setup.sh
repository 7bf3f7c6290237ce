#!/usr/bin/env bash
# Installs what the build and the tests need on a Debian bookworm machine, when missing:
# QEMU 10 from bookworm-backports (x2APIC, >255 vCPUs and VT-d EIM under TCG need it; see
# docs/testing.md), OVMF, GRUB's BIOS and EFI images, xorriso and mtools for the ISO.
set -euo pipefail

need_qemu_10() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 || return 0
    local major
    major=$(qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p')
    [ "${major:-0}" -lt 10 ]
}

missing=()
need_qemu_10 && missing+=(qemu)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=(ovmf)
[ -d /usr/lib/grub/i386-pc ] || missing+=(grub-pc-bin)
[ -d /usr/lib/grub/x86_64-efi ] || missing+=(grub-efi-amd64-bin)
command -v grub-mkrescue >/dev/null 2>&1 || missing+=(grub-common)
command -v xorriso >/dev/null 2>&1 || missing+=(xorriso)
command -v mformat >/dev/null 2>&1 || missing+=(mtools)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing missing packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" qemu "* ]]; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/*.sources | grep -m1 '/debian$' | awk '{print $2}' || true)
        mirror=${mirror:-http://deb.debian.org/debian}
        echo "deb $mirror bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
    fi
fi
$SUDO apt-get update -q
if [[ " ${missing[*]} " == *" qemu "* ]]; then
    $SUDO apt-get install -y -q -t bookworm-backports qemu-system-x86
fi
others=()
for p in "${missing[@]}"; do [ "$p" = qemu ] || others+=("$p"); done
if [ ${#others[@]} -gt 0 ]; then
    $SUDO apt-get install -y -q "${others[@]}"
fi
need_qemu_10 && { echo "setup: QEMU 10 is still missing after installing from bookworm-backports" >&2; exit 1; }
exit 0
