#!/usr/bin/env bash
# Installs ringwatch as a system service (`make install`). Idempotent; says what it did.
#
#   PREFIX=/opt/ringwatch        venv holding the program, its data in share/ringwatch/
#   SYSCONFDIR=/etc/ringwatch    config.yaml (never overwritten) and rules.d/
#   UNITDIR=/etc/systemd/system  where ringwatch.service goes
#   BINDIR=/usr/local/bin        a `ringwatch` symlink for the CLI (empty: none)
#   DESTDIR=                     staging root: everything lands under it, but paths inside
#                                the files (unit, script shebangs) are the final ones
#   PYTHON=/usr/bin/python3      Debian's python: the one its python3-bpfcc is built for
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/opt/ringwatch}"
SYSCONFDIR="${SYSCONFDIR:-/etc/ringwatch}"
UNITDIR="${UNITDIR:-/etc/systemd/system}"
BINDIR="${BINDIR-/usr/local/bin}"
DESTDIR="${DESTDIR:-}"
PYTHON="${PYTHON:-/usr/bin/python3}"

say() { printf 'install: %s\n' "$*" >&2; }
# Talk to systemd only about units in directories it reads (not a test's temp directory).
systemd_reads() { case "$1" in /etc/systemd/system|/lib/systemd/system|/usr/lib/systemd/system) return 0;; esac; return 1; }
die() { say "$*"; exit 2; }

for v in PREFIX SYSCONFDIR UNITDIR; do
    case "${!v}" in /*) ;; *) die "$v must be an absolute path, got '${!v}'";; esac
done
[ "$PREFIX" != "/" ] && [ "$PREFIX" != "/usr" ] || die "PREFIX=$PREFIX would mix the venv into the system"
[ -x "$PYTHON" ] || die "$PYTHON not found (Debian's python3; bcc's module is built for it)"
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "must run as root to install into the system (or set DESTDIR to stage)"
fi
if ! "$PYTHON" -c 'import bcc' 2>/dev/null; then
    say "warning: $PYTHON cannot import bcc; install Debian's python3-bpfcc (scripts/setup.sh does)"
fi

venv="$DESTDIR$PREFIX"
if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$venv"
    say "created venv $venv (with system site-packages, for Debian's bcc)"
fi

# Build from a copy: pip's in-tree build would leave build/ and *.egg-info in the checkout.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r "$here/pyproject.toml" "$here/README.md" "$here/monitor" "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
"$venv/bin/pip" install -q --disable-pip-version-check --no-warn-script-location "$src" \
    2> >(grep -v "is ignored: it is neither" >&2)
say "installed ringwatch $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("ringwatch"))') into $venv (non-editable)"

# Kernel sources and default rules: monitor/paths.py finds them under sys.prefix.
share="$venv/share/ringwatch"
mkdir -p "$share"
for d in bpf rules; do
    rm -rf "${share:?}/$d"
    if [ -d "$here/$d" ]; then
        cp -r "$here/$d" "$share/$d"
    else
        mkdir -p "$share/$d"
    fi
done
mkdir -p "$venv/share/doc/ringwatch"
cp "$here/README.md" "$venv/share/doc/ringwatch/README.md"
say "copied bpf/ and rules/ to $share"

if [ -n "$DESTDIR" ]; then
    # The venv was built at its staging path; scripts must name the final one.
    grep -rlIF "$DESTDIR$PREFIX" "$venv/bin" "$venv/pyvenv.cfg" 2>/dev/null | while read -r f; do
        sed -i "s#$DESTDIR$PREFIX#$PREFIX#g" "$f"
    done
    say "rewrote staged paths $DESTDIR$PREFIX -> $PREFIX in $venv/bin"
fi

mkdir -p "$DESTDIR$UNITDIR"
sed -e "s#/opt/ringwatch#$PREFIX#g" -e "s#/etc/ringwatch/#$SYSCONFDIR/#g" \
    "$here/packaging/systemd/ringwatch.service" > "$DESTDIR$UNITDIR/ringwatch.service.tmp"
mv "$DESTDIR$UNITDIR/ringwatch.service.tmp" "$DESTDIR$UNITDIR/ringwatch.service"
chmod 0644 "$DESTDIR$UNITDIR/ringwatch.service"
say "installed $UNITDIR/ringwatch.service"

mkdir -p "$DESTDIR$SYSCONFDIR/rules.d"
chmod 0755 "$DESTDIR$SYSCONFDIR" "$DESTDIR$SYSCONFDIR/rules.d"
# Mode 0600: the config may hold Kafka credentials.
if [ -e "$DESTDIR$SYSCONFDIR/config.yaml" ]; then
    install -m 0600 "$here/packaging/config.yaml" "$DESTDIR$SYSCONFDIR/config.yaml.dist"
    say "kept existing $SYSCONFDIR/config.yaml; the shipped one is config.yaml.dist, to compare"
else
    install -m 0600 "$here/packaging/config.yaml" "$DESTDIR$SYSCONFDIR/config.yaml"
    say "installed $SYSCONFDIR/config.yaml"
fi

if [ -n "$BINDIR" ]; then
    mkdir -p "$DESTDIR$BINDIR"
    ln -sfn "$PREFIX/bin/ringwatch" "$DESTDIR$BINDIR/ringwatch"
    say "linked $BINDIR/ringwatch -> $PREFIX/bin/ringwatch"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && systemd_reads "$UNITDIR"; then
    systemctl daemon-reload
    say "systemd reloaded; start with: systemctl enable --now ringwatch"
else
    say "done; under systemd, start with: systemctl daemon-reload && systemctl enable --now ringwatch"
fi
