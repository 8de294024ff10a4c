#!/usr/bin/env bash
# Removes what scripts/install.sh put in place (`make uninstall`). Takes the same PREFIX,
# SYSCONFDIR, UNITDIR, BINDIR and DESTDIR. The configuration, the rules in rules.d and the
# service's state and logs stay unless PURGE=1, as with a Debian package's remove/purge.
set -euo pipefail

PREFIX="${PREFIX:-/opt/ringwatch}"
SYSCONFDIR="${SYSCONFDIR:-/etc/ringwatch}"
UNITDIR="${UNITDIR:-/etc/systemd/system}"
BINDIR="${BINDIR-/usr/local/bin}"
DESTDIR="${DESTDIR:-}"
PURGE="${PURGE:-0}"

say() { printf 'uninstall: %s\n' "$*" >&2; }
# Talk to systemd only about units in directories it reads (not a test's temp directory).
systemd_reads() { case "$1" in /etc/systemd/system|/lib/systemd/system|/usr/lib/systemd/system) return 0;; esac; return 1; }
live=0
[ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && systemd_reads "$UNITDIR" && live=1
die() { say "$*"; exit 2; }

unit="$DESTDIR$UNITDIR/ringwatch.service"
if [ "$live" = 1 ] && [ -e "$unit" ]; then
    systemctl disable --now ringwatch.service || say "could not stop ringwatch.service (continuing)"
fi
if [ -e "$unit" ]; then
    rm -f "$unit"
    say "removed $UNITDIR/ringwatch.service"
else
    say "no unit at $UNITDIR/ringwatch.service"
fi

venv="$DESTDIR$PREFIX"
if [ -d "$venv" ]; then
    # Refuse to delete a directory that is not a ringwatch install (PREFIX=/usr by mistake).
    if [ ! -f "$venv/pyvenv.cfg" ] || [ ! -d "$venv/share/ringwatch" ]; then
        die "$venv is not a ringwatch install (no pyvenv.cfg or share/ringwatch); not removing it"
    fi
    rm -rf "$venv"
    say "removed $PREFIX"
else
    say "nothing at $PREFIX"
fi

if [ -n "$BINDIR" ] && [ -L "$DESTDIR$BINDIR/ringwatch" ]; then
    rm -f "$DESTDIR$BINDIR/ringwatch"
    say "removed $BINDIR/ringwatch"
fi

if [ "$PURGE" = 1 ]; then
    rm -rf "$DESTDIR$SYSCONFDIR" "$DESTDIR/var/lib/ringwatch" "$DESTDIR/var/log/ringwatch"
    say "purged $SYSCONFDIR, /var/lib/ringwatch and /var/log/ringwatch"
    if [ "$live" = 1 ] && [ -d /sys/fs/bpf/ringwatch ]; then
        rm -rf /sys/fs/bpf/ringwatch
        say "unpinned /sys/fs/bpf/ringwatch"
    fi
else
    say "kept $SYSCONFDIR (config and rules.d); PURGE=1 removes it and the state"
fi

if [ "$live" = 1 ]; then
    systemctl daemon-reload
fi
