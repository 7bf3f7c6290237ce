#!/usr/bin/env bash
# Prepares the Linux guest that hpetctl/tests/probe_linux.rs boots in QEMU to run
# `hpetctl probe --json` inside a real Debian kernel (docs/linux-guest.md):
#
#   target/linux-guest/vmlinuz     the Debian bookworm kernel (flavour below)
#   target/linux-guest/msr.ko      its msr module, uncompressed (for /dev/cpu/N/msr)
#   target/linux-guest/busybox     busybox-static, the initramfs userland
#   target/linux-guest/config      the kernel's /boot/config-*
#   target/linux-guest/MANIFEST    package names and versions; written last, it marks the
#                                  directory as prepared
#   target/linux-guest/debs/       the downloaded .debs (the cache: kept across runs)
#
# Idempotent: a prepared directory is left alone (nothing is downloaded). `--force`
# re-resolves the packages and rebuilds the directory (the .debs already cached are reused).
# The directory is $HPETWD_LINUX_GUEST_DIR, else $CARGO_TARGET_DIR/linux-guest, else
# target/linux-guest; the test looks in the same places.
#
# Needs Debian bookworm (apt). Downloading needs no root, but `apt-get update` (run only
# when a package cannot be found) does.
#
# Flavour: the plain amd64 kernel (linux-image-amd64), not the cloud one. Both have
# CONFIG_DEVMEM, STRICT_DEVMEM, IO_STRICT_DEVMEM, X86_MSR=m, INTEL_IOMMU and IRQ_REMAP, but
# the cloud flavour has CONFIG_AMD_IOMMU unset: a guest given -device amd-iommu would run
# with no AMD-Vi driver (no /sys/class/iommu/ivhd0, no interrupt remapping in use), unlike
# any distribution kernel on a real AMD machine. Override with
# HPETWD_LINUX_FLAVOUR=cloud-amd64 (and a separate HPETWD_LINUX_GUEST_DIR) to compare.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${HPETWD_LINUX_GUEST_DIR:-}" ]; then
    out=$HPETWD_LINUX_GUEST_DIR
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
    out=$CARGO_TARGET_DIR/linux-guest
else
    out=$repo/target/linux-guest
fi
flavour=${HPETWD_LINUX_FLAVOUR:-amd64}
meta=linux-image-$flavour

say() { echo "linux-guest: $*" >&2; }
die() { echo "linux-guest: error: $*" >&2; exit 1; }

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

if [ $force -eq 0 ] && [ -s "$out/MANIFEST" ] &&
    [ -s "$out/vmlinuz" ] && [ -s "$out/msr.ko" ] && [ -x "$out/busybox" ]; then
    say "already prepared: $out ($(tr '\n' ' ' <"$out/MANIFEST"))"
    exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found: this script needs a Debian (bookworm) machine with apt"
done
if ! grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
    say "warning: not Debian bookworm ($(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")); the packages found may differ from docs/linux-guest.md"
fi

updated=0
apt_update() {
    [ $updated -eq 0 ] || return 0
    updated=1
    [ "$(id -u)" -eq 0 ] ||
        die "$1 is not in apt's package lists, and 'apt-get update' needs root: run this script as root (or run 'apt-get update' first)"
    say "'$1' not in apt's package lists: running apt-get update"
    apt-get update -q >&2 ||
        die "apt-get update failed (no network? broken sources in /etc/apt?); see the messages above"
}

# The candidate version of a package, empty when apt does not know it.
candidate() {
    apt-cache policy "$1" 2>/dev/null | sed -n 's/^  Candidate: //p' | grep -v '(none)' || true
}

# `candidate`, running apt-get update once when the package is unknown.
require_candidate() {
    local v
    v=$(candidate "$1")
    if [ -z "$v" ]; then
        apt_update "$1"
        v=$(candidate "$1")
    fi
    [ -n "$v" ] || die "apt knows no package '$1' even after apt-get update (is this Debian bookworm amd64 with the main component enabled?)"
    echo "$v"
}

mkdir -p "$out/debs"

# Downloads PACKAGE=VERSION into debs/ unless cached; prints the .deb's path.
fetch() {
    local pkg=$1 ver=$2 deb
    # .deb names carry the version with ':' as '%3a'.
    deb="$out/debs/${pkg}_${ver//:/%3a}_amd64.deb"
    if [ -s "$deb" ]; then
        say "cached: $(basename "$deb")"
    else
        say "downloading $pkg=$ver"
        # apt-get download writes to the current directory. As root, apt warns that it cannot
        # drop privileges into a directory its _apt user cannot write; harmless.
        (cd "$out/debs" && apt-get download -q "$pkg=$ver" >&2) ||
            die "apt-get download $pkg=$ver failed (no network, or the version left the mirror: try '$0 --force' after 'apt-get update')"
        [ -s "$deb" ] || die "apt-get download $pkg=$ver did not produce $deb"
    fi
    echo "$deb"
}

# 1. The kernel: the versioned package the metapackage depends on.
meta_ver=$(require_candidate "$meta")
kpkg=$(apt-cache show "$meta=$meta_ver" | sed -n 's/^Depends: //p' | head -n1 |
    tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -m1 '^linux-image-' || true)
[ -n "$kpkg" ] || die "cannot find the linux-image-* dependency of $meta $meta_ver (apt-cache show $meta)"
kver=$(require_candidate "$kpkg")
say "kernel: $meta $meta_ver depends on $kpkg $kver"
kdeb=$(fetch "$kpkg" "$kver")

# 2. busybox-static.
bbver=$(require_candidate busybox-static)
bbdeb=$(fetch busybox-static "$bbver")

# Unpack into a scratch directory, then move the pieces into place.
tmp=$(mktemp -d "$out/.unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -f "$out/MANIFEST"
say "unpacking $(basename "$kdeb")"
dpkg -x "$kdeb" "$tmp/kernel" || die "dpkg -x $kdeb failed (corrupt download? delete it and re-run)"
say "unpacking $(basename "$bbdeb")"
dpkg -x "$bbdeb" "$tmp/busybox" || die "dpkg -x $bbdeb failed (corrupt download? delete it and re-run)"

vmlinuz=$(find "$tmp/kernel/boot" -name 'vmlinuz-*' | head -n1)
config=$(find "$tmp/kernel/boot" -name 'config-*' | head -n1)
[ -n "$vmlinuz" ] || die "$kpkg has no /boot/vmlinuz-*"
[ -n "$config" ] || die "$kpkg has no /boot/config-*"
krelease=${vmlinuz##*/vmlinuz-}

# The configuration the probe relies on (docs/linux-guest.md says why each matters).
say "checking $(basename "$config")"
check_config() {
    local opt=$1 want=$2 line
    line=$(grep -E "^(# )?$opt[= ]" "$config" || true)
    say "  ${line:-$opt absent}"
    case "$want" in
        y) grep -q "^$opt=y" "$config" ;;
        m) grep -q "^$opt=m" "$config" ;;
        ym) grep -qE "^$opt=(y|m)" "$config" ;;
        any) true ;;
    esac || die "$kpkg: $opt is not '$want' in $(basename "$config"); the guest cannot serve the probe"
}
check_config CONFIG_DEVMEM y
check_config CONFIG_STRICT_DEVMEM any
check_config CONFIG_IO_STRICT_DEVMEM any
check_config CONFIG_X86_MSR m
check_config CONFIG_HPET_TIMER y
check_config CONFIG_DEVTMPFS y
check_config CONFIG_BLK_DEV_INITRD y
check_config CONFIG_SERIAL_8250_CONSOLE y
check_config CONFIG_ACPI y
check_config CONFIG_IRQ_REMAP y
check_config CONFIG_INTEL_IOMMU y
if [ "$flavour" = amd64 ]; then
    check_config CONFIG_AMD_IOMMU y
else
    check_config CONFIG_AMD_IOMMU any
    grep -q '^CONFIG_AMD_IOMMU=y' "$config" ||
        say "warning: $kpkg has no AMD IOMMU driver: a guest given -device amd-iommu runs without AMD-Vi (no /sys/class/iommu/ivhd*, no interrupt remapping in use)"
fi

msr=$(find "$tmp/kernel/lib/modules" -path '*/arch/x86/kernel/msr.ko*' | head -n1)
[ -n "$msr" ] || die "$kpkg has no arch/x86/kernel/msr.ko*"
case "$msr" in
    *.ko) cp "$msr" "$out/msr.ko" ;;
    # busybox insmod may not decompress: decompress here.
    *.ko.xz) command -v xz >/dev/null || die "msr.ko is xz-compressed and 'xz' is missing (apt-get install xz-utils)"
        xz -dc "$msr" >"$out/msr.ko" ;;
    *.ko.zst) command -v zstd >/dev/null || die "msr.ko is zstd-compressed and 'zstd' is missing (apt-get install zstd)"
        zstd -qdc "$msr" >"$out/msr.ko" ;;
    *.ko.gz) gzip -dc "$msr" >"$out/msr.ko" ;;
    *) die "unexpected module file $msr" ;;
esac
say "msr module: ${msr#"$tmp/kernel"}"

[ -x "$tmp/busybox/bin/busybox" ] || die "busybox-static has no /bin/busybox"
for applet in devmem insmod poweroff mount dmesg; do
    "$tmp/busybox/bin/busybox" --list | grep -qx "$applet" ||
        die "busybox-static $bbver lacks the '$applet' applet"
done

cp "$vmlinuz" "$out/vmlinuz"
cp "$config" "$out/config"
cp "$tmp/busybox/bin/busybox" "$out/busybox"
chmod 0755 "$out/busybox"
cat >"$out/MANIFEST.tmp" <<EOF
kernel_package=$kpkg
kernel_version=$kver
kernel_release=$krelease
metapackage=$meta
busybox_package=busybox-static
busybox_version=$bbver
EOF
mv "$out/MANIFEST.tmp" "$out/MANIFEST"
say "prepared $out:"
sed 's/^/  /' "$out/MANIFEST" >&2
