"""Podman containers for kernel tests, from images built here (no registry is reachable).

Podman runs with runc (crun refuses this host's hybrid cgroups) and explicit ulimits
(podman's defaults exceed this machine's hard limits). Images are a static busybox from
.cache (scripts/setup-test-extras.sh fetches it), imported with `podman import`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from tests.monitor_proc import REPO

PODMAN = ["podman", "--runtime", "runc"]
RUN = ["run", "-d", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BUSYBOX = REPO / ".cache" / "busybox-static" / "bin" / "busybox"


def import_busybox_image(workdir: Path, tag: str, applets: Iterable[str] = ("sh", "sleep", "cat"),
                         links: dict[str, str] | None = None) -> str:
    """Import a rootfs holding /bin/busybox with APPLETS linked to it (and extra symlinks
    LINKS, name -> target, at the root) as image TAG."""
    assert shutil.which("podman"), "podman missing: scripts/setup-test-extras.sh installs it"
    root = workdir / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in applets:
        os.symlink("busybox", root / "bin" / applet)
    for name, target in (links or {}).items():
        os.symlink(target, root / name)
    tar = workdir / "rootfs.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(root, arcname=".")
    subprocess.run([*PODMAN, "import", str(tar), tag], check=True, capture_output=True, timeout=120)
    return tag


def run_container(name: str, image: str, *flags: str, command: Iterable[str] = ("/bin/sleep", "600")) -> str:
    """Start a detached container; its full id."""
    out = subprocess.run([*PODMAN, *RUN, *flags, "--name", name, image, *command], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return out.strip().splitlines()[-1]


def remove_container(name: str) -> None:
    subprocess.run([*PODMAN, "rm", "-f", "-t", "0", name], capture_output=True, timeout=60, check=False)


def remove_v1_cgroup_dirs(relative: str, timeout: float = 10.0) -> None:
    """Remove what runc made for a --cgroup-parent in each cgroup v1 hierarchy (a hybrid
    host): directories only, deepest first. conmon leaves its own a moment after `podman
    rm` returns, so busy ones are retried for a while; any still busy then stay."""
    with open("/proc/mounts") as fh:
        mounts = [line.split()[1] for line in fh if line.split()[2] == "cgroup"]
    tops = [Path(mnt) / relative.lstrip("/") for mnt in mounts]
    deadline = time.monotonic() + timeout
    while True:
        for top in (t for t in tops if t.is_dir()):
            subdirs = (p for p in top.rglob("*") if p.is_dir())
            for d in sorted(subdirs, key=lambda p: len(p.parts), reverse=True):
                with suppress(OSError):
                    d.rmdir()
            with suppress(OSError):
                top.rmdir()
        if not any(t.is_dir() for t in tops) or time.monotonic() > deadline:
            return
        time.sleep(0.1)
