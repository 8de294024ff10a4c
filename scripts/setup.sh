#!/usr/bin/env bash
# Idempotent host set-up for ringwatch on Debian 12, as root.
#   scripts/setup.sh            what `make run` needs
#   scripts/setup.sh --test     plus what `make test` needs
# Every step says what it did or that nothing was needed.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf 'setup: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
. "$here/scripts/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    say "must run as root (BPF programs and apt need it)"; exit 2
fi

# python3-crc32c: kafka-python checksums every record batch; without the C module its
# pure-Python CRC32C capped the Kafka output at about 7k records/s (bench/sink_rate.py).
apt_pkgs=(python3-bpfcc bpftool linux-headers-amd64 python3-venv python3-pip python3-crc32c)
if [ "$want_test" = 1 ]; then
    # qemu + static busybox: the LSM enforcement VM; systemd: journald and unit checks;
    # bpfcc-tools: syscount-bpfcc for the benchmark comparison; systemd-container:
    # systemd-nspawn boots the host's root as a container, so the unit runs under a real
    # systemd (tests/systemd_container.py; PID 1 of the test machines is not systemd).
    apt_pkgs+=(qemu-system-x86 bpfcc-tools systemd systemd-container)
fi
install_debs "Debian packages" "${apt_pkgs[@]}"

# bcc compiles against /lib/modules/$(uname -r)/build. Debian splits headers into an arch
# directory (build) and a common one (source); point both at the newest packaged set when
# the running kernel has none of its own. Struct offsets are taken from BTF at run time, so
# mismatched headers only supply type names and macros.
kver="$(uname -r)"
moddir="/lib/modules/$kver"
if [ ! -e "$moddir/build/include" ]; then
    arch_dir="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)"
    common_dir="$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)"
    if [ -z "$arch_dir" ] || [ -z "$common_dir" ]; then
        say "no kernel headers under /usr/src after install"; exit 2
    fi
    mkdir -p "$moddir"
    ln -sfn "$arch_dir" "$moddir/build"
    ln -sfn "$common_dir" "$moddir/source"
    say "linked $moddir/build -> $arch_dir and source -> $common_dir (headers do not match $kver; offsets come from BTF)"
else
    say "kernel headers present at $moddir/build"
fi

if ! mountpoint -q /sys/fs/bpf; then
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf
    say "mounted bpffs on /sys/fs/bpf"
else
    say "bpffs mounted"
fi
if ! mountpoint -q /sys/kernel/security; then
    mount -t securityfs securityfs /sys/kernel/security 2>/dev/null && say "mounted securityfs" || say "securityfs not mountable (LSM status unknown)"
fi

# Debian's bcc module is built for /usr/bin/python3; a venv with system site-packages sees it.
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    say "created $venv"
fi
extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp="$venv/.installed$extras"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$here$extras" 2> >(grep -v "is ignored: it is neither" >&2)
    touch "$stamp"
    say "installed ringwatch$extras into $venv"
else
    say "python packages up to date"
fi

if [ "$want_test" = 1 ]; then
    "$here/scripts/setup-test-extras.sh"
fi
say "done"
