#!/usr/bin/env bash
# Builds ringwatch_<version>_all.deb (`make deb`) with dpkg-deb, from this checkout.
#
#   OUT=dist                 where the .deb goes
#   VERSION=<pyproject's>    the package version (tests build a second one to upgrade to)
#
# The package ships the venv, built here: /opt/ringwatch with ringwatch and its pure-Python
# dependencies, on Debian's python3 with system site-packages, so Debian's python3-bpfcc
# (and python3-yaml, used instead of PyPI's compiled PyYAML) are what it imports. Nothing
# in it is compiled, hence Architecture: all; the build fails if a compiled file slips in.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="${OUT:-$here/dist}"
pyver="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml" | head -1)"
VERSION="${VERSION:-$pyver}"
PREFIX=/opt/ringwatch

say() { printf 'build-deb: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
[ -x "$PYTHON" ] || die "$PYTHON not found"
case "$VERSION" in [0-9]*) ;; *) die "VERSION must start with a digit, got '$VERSION'";; esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/root"
src="$work/src"
mkdir -p "$stage" "$src"
cp -r "$here/pyproject.toml" "$here/README.md" "$here/monitor" "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
# The installed distribution says the package's version (ringwatch --version).
sed -i "s/^version = \".*\"/version = \"$VERSION\"/" "$src/pyproject.toml"

venv="$stage$PREFIX"
"$PYTHON" -m venv --system-site-packages --without-pip "$venv"
pip=("$PYTHON" -m pip --python "$venv/bin/python")
if ! "$PYTHON" -m pip --version >/dev/null 2>&1 || ! "${pip[@]}" --version >/dev/null 2>&1; then
    # Older pip has no --python: give the venv its own pip for the build, removed below.
    "$PYTHON" -m venv --system-site-packages --clear "$venv"
    pip=("$venv/bin/pip")
fi
"${pip[@]}" install -q --disable-pip-version-check --no-warn-script-location --no-compile "$src" \
    2> >(grep -v "is ignored: it is neither" >&2)
# Debian's python3-yaml (a dependency) replaces PyPI's PyYAML, which carries a C extension.
"${pip[@]}" uninstall -q -y PyYAML 2> >(grep -v "is ignored: it is neither" >&2)
# orjson (a compiled module, not in Debian) is left out: the outputs then encode with
# Python's json (monitor/sinks/base.py), about ten times slower per record.
"${pip[@]}" uninstall -q -y orjson 2> >(grep -v "is ignored: it is neither" >&2)
"${pip[@]}" uninstall -q -y pip setuptools 2>/dev/null || true
rm -f "$venv"/bin/pip* "$venv"/bin/activate* "$venv"/bin/Activate.ps1
find "$venv" -name __pycache__ -prune -exec rm -rf {} +
compiled="$(find "$venv" -type f \( -name '*.so' -o -name '*.so.*' \) | head -5)"
[ -z "$compiled" ] || die "compiled files in the venv (not Architecture: all): $compiled"
grep -rlIF "$stage$PREFIX" "$venv" 2>/dev/null | while read -r f; do
    sed -i "s#$stage$PREFIX#$PREFIX#g" "$f"
done

share="$venv/share/ringwatch"
mkdir -p "$share" "$venv/share/doc/ringwatch"
cp -r "$here/bpf" "$here/rules" "$share/"
cp "$here/README.md" "$venv/share/doc/ringwatch/README.md"

install -D -m 0644 "$here/packaging/systemd/ringwatch.service" "$stage/lib/systemd/system/ringwatch.service"
install -D -m 0600 "$here/packaging/config.yaml" "$stage/etc/ringwatch/config.yaml"
install -d -m 0755 "$stage/etc/ringwatch/rules.d" "$stage/usr/bin"
ln -s "$PREFIX/bin/ringwatch" "$stage/usr/bin/ringwatch"

mkdir -p "$stage/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$size/" "$here/packaging/debian/control" > "$stage/DEBIAN/control"
echo /etc/ringwatch/config.yaml > "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do
    install -m 0755 "$here/packaging/debian/$s" "$stage/DEBIAN/$s"
done

mkdir -p "$OUT"
deb="$OUT/ringwatch_${VERSION}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
say "built $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"
