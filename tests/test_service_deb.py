"""The Debian package: `make deb`'s .deb installed, started, upgraded and purged with apt,
under a real systemd (a systemd-nspawn container of the host's root, booted without
scripts/install.sh). One boot for the module; the tests run in file order."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.monitor_proc import REPO
from tests.systemd_container import SystemdContainer

pytestmark = pytest.mark.kernel

V1 = "0.1.0"
V2 = "0.1.0+upgrade1"
LOCAL_EDIT = "# local edit: must survive the upgrade\n"
APT = ("apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confold")


def build(out: Path, version: str) -> Path:
    res = subprocess.run(["bash", str(REPO / "scripts" / "build-deb.sh")], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "OUT": str(out), "VERSION": version},
                         timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    deb = Path(res.stdout.strip().splitlines()[-1])
    assert deb == out / f"ringwatch_{version}_all.deb" and deb.is_file()
    return deb


class Box:
    def __init__(self, box: SystemdContainer, debs: dict[str, Path]) -> None:
        self.box = box
        self.debs = debs

    def exists(self, path: str) -> bool:
        return (self.box.root / path.lstrip("/")).exists() or (self.box.root / path.lstrip("/")).is_symlink()

    def main_pid(self) -> int:
        return int(self.box.show("ringwatch", "MainPID")["MainPID"])

    def state(self) -> str:
        return self.box.run("systemctl", "is-active", "ringwatch", check=False).stdout.strip()

    def apt_install(self, version: str) -> subprocess.CompletedProcess[str]:
        inside = self.box.put(self.debs[version], f"/root/ringwatch_{version}_all.deb")
        return self.box.run(*APT, "install", inside, check=False, timeout=300)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    out = tmp_path_factory.mktemp("dist")
    debs = {V1: build(out, V1), V2: build(out, V2)}
    box = SystemdContainer(tmp_path_factory.mktemp("nspawn"), install=False)
    try:
        box.boot()
        # The container's /sys/fs/bpf is the host's. The package's service uses the
        # default pin directory and purge removes it: give the container a bpffs instance
        # of its own (a new mount of bpffs is a new, empty instance; it stays in the
        # container's private mount namespace and goes with it).
        box.run("mount", "-t", "bpf", "rw-deb-test", "/sys/fs/bpf")
        marker = f"rw-deb-test-{uuid.uuid4().hex[:8]}"
        box.run("mkdir", f"/sys/fs/bpf/{marker}")
        assert not (Path("/sys/fs/bpf") / marker).exists(), "the container's bpffs is the host's"
        yield Box(box, debs)
    finally:
        box.close()


def test_package_metadata_and_contents(deb: Box, tmp_path: Path) -> None:
    path = deb.debs[V1]
    info = subprocess.run(["dpkg-deb", "-f", str(path), "Package", "Version", "Architecture", "Depends"],
                          capture_output=True, text=True, check=True).stdout
    assert "Package: ringwatch" in info and f"Version: {V1}" in info and "Architecture: all" in info
    for dep in ("python3-bpfcc", "bpftool", "python3-yaml", "linux-headers-amd64"):
        assert dep in info
    listing = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True, check=True).stdout
    for want in ("./lib/systemd/system/ringwatch.service", "./etc/ringwatch/config.yaml",
                 "./etc/ringwatch/rules.d/", "./opt/ringwatch/bin/ringwatch", "./usr/bin/ringwatch ->",
                 "./opt/ringwatch/share/ringwatch/bpf/sensor.bpf.c",
                 "./opt/ringwatch/share/ringwatch/rules/default.yaml"):
        assert want in listing, want
    assert ".so" not in listing  # Architecture: all means nothing compiled inside
    subprocess.run(["dpkg-deb", "-e", str(path), str(tmp_path / "DEBIAN")], check=True)
    assert (tmp_path / "DEBIAN" / "conffiles").read_text().split() == ["/etc/ringwatch/config.yaml"]


def test_install_enables_and_starts_nothing(deb: Box) -> None:
    res = deb.apt_install(V1)
    assert res.returncode == 0, res.stdout + res.stderr
    assert deb.box.run("dpkg-query", "-W", "-f=${Status} ${Version}", "ringwatch").stdout == \
        f"install ok installed {V1}"
    assert deb.box.run("systemctl", "is-enabled", "ringwatch", check=False).stdout.strip() == "disabled"
    assert deb.state() == "inactive"
    assert deb.box.run("ringwatch", "--version").stdout.strip() == f"ringwatch {V1}"
    config = deb.box.root / "etc/ringwatch/config.yaml"
    assert oct(config.stat().st_mode & 0o777) == "0o600"  # may hold Kafka credentials


def test_the_packaged_service_starts(deb: Box) -> None:
    config = deb.box.root / "etc/ringwatch/config.yaml"
    config.write_text(LOCAL_EDIT + config.read_text())
    started = deb.box.run("systemctl", "start", "ringwatch", check=False, timeout=240)
    assert started.returncode == 0, started.stderr + deb.box.run(
        "journalctl", "-u", "ringwatch", "--no-pager", "-n", "30", check=False).stdout
    assert deb.state() == "active"
    stats = json.loads(deb.box.run("ringwatch", "stats", "--json").stdout)
    assert stats["pid"] == deb.main_pid()
    # The default pin, in the container's own bpffs: not the host's.
    show = ("bpftool", "-j", "map", "show", "pinned", "/sys/fs/bpf/ringwatch/procs")
    inside = json.loads(deb.box.run(*show).stdout)
    host = subprocess.run(show, capture_output=True, text=True, check=False)
    assert host.returncode != 0 or json.loads(host.stdout)["id"] != inside["id"]


def test_upgrade_keeps_the_config_and_restarts_the_running_service(deb: Box) -> None:
    before = deb.main_pid()
    res = deb.apt_install(V2)
    assert res.returncode == 0, res.stdout + res.stderr
    assert deb.box.run("dpkg-query", "-W", "-f=${Version}", "ringwatch").stdout == V2
    config = (deb.box.root / "etc/ringwatch/config.yaml").read_text()
    assert config.startswith(LOCAL_EDIT)
    deadline = time.monotonic() + 120
    while deb.state() != "active" or deb.main_pid() in (0, before):
        assert time.monotonic() < deadline, f"not restarted on the new version: {deb.state()}"
        time.sleep(0.5)
    assert deb.box.run("ringwatch", "--version").stdout.strip() == f"ringwatch {V2}"
    # Still not enabled: an upgrade does not decide that either.
    assert deb.box.run("systemctl", "is-enabled", "ringwatch", check=False).stdout.strip() == "disabled"


def test_purge_removes_everything(deb: Box) -> None:
    deb.box.run("mkdir", "-p", "/var/lib/ringwatch/spool", "/var/log/ringwatch")
    res = deb.box.run(*APT, "purge", "ringwatch", check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert deb.state() in ("inactive", "unknown")
    for gone in ("/opt/ringwatch", "/etc/ringwatch", "/lib/systemd/system/ringwatch.service",
                 "/usr/bin/ringwatch", "/var/lib/ringwatch", "/var/log/ringwatch"):
        assert not deb.exists(gone), gone
    assert deb.box.run("test", "-e", "/sys/fs/bpf/ringwatch", check=False).returncode == 1  # the pin too
    assert deb.box.run("dpkg-query", "-W", "ringwatch", check=False).returncode != 0
    assert deb.box.run("systemctl", "cat", "ringwatch", check=False).returncode != 0
