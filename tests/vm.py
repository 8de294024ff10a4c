"""Boots Debian's kernel under qemu (virtme-ng) and runs one command in it.

BPF LSM cannot load on the host kernel (PLATFORM.md), so enforcement is tested in a
guest. The guest sees the host's root read-only over 9p, so the repository and its
venv are usable as they are; `rwdir` is the one directory writable through to the
host, where the guest command leaves its results. KVM is nested here and hangs, so
the guest runs under TCG: slow, which is why callers put every check behind one boot.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
VNG_BIN = CACHE / "vng" / "bin"
BUSYBOX = CACHE / "busybox-static" / "bin" / "busybox"
SETUP_HINT = "run `scripts/setup.sh --test` (it installs the guest kernel, virtme-ng and busybox)"


class VMError(AssertionError):
    """The guest could not be booted: a missing tool or kernel, or a boot timeout."""


@dataclass(frozen=True, slots=True)
class GuestResult:
    returncode: int
    output: str  # guest console and command output, stdout and stderr together
    kernel: str


def guest_kernel() -> tuple[Path, str]:
    """The newest /boot kernel that has its headers under /lib/modules (bcc needs them)."""
    found = []
    for image in Path("/boot").glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if (Path("/lib/modules") / release / "build" / "include").exists():
            found.append((release, image))
    if not found:
        raise VMError(f"no /boot/vmlinuz-* with matching headers in /lib/modules; {SETUP_HINT}")
    release, image = max(found, key=lambda f: [int(p) if p.isdigit() else 0 for p in
                                               f[0].replace("-", ".").split(".")])
    return image, release


def check_tools() -> None:
    missing = [str(p) for p in (VNG_BIN / "vng", VNG_BIN / "virtme-run", BUSYBOX) if not p.exists()]
    if missing:
        raise VMError(f"missing {', '.join(missing)}; {SETUP_HINT}")
    if not os.access("/usr/bin/qemu-system-x86_64", os.X_OK):
        raise VMError(f"qemu-system-x86_64 missing; {SETUP_HINT}")


def run_in_guest(
    argv: list[str], rwdir: Path, timeout: float = 900, memory: str = "2G"
) -> GuestResult:
    """Run argv as root in a fresh guest (cwd = the repository); return its status."""
    check_tools()
    image, release = guest_kernel()
    rwdir.mkdir(parents=True, exist_ok=True)
    guest_cmd = f"cd {shlex.quote(str(REPO))} && exec {shlex.join(argv)}"
    cmd = [
        str(VNG_BIN / "vng"), "--disable-kvm", "--busybox", str(BUSYBOX),
        "-r", str(image), "-m", memory, "--rwdir", str(rwdir), "--exec", guest_cmd,
    ]
    env = {**os.environ, "PATH": f"{VNG_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    log_path = rwdir / "console.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            # vng leaves qemu in its session: end the whole group, not just vng.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise VMError(
                f"guest did not finish within {timeout}s; console:\n"
                + log_path.read_text(errors="replace")[-4000:]
            ) from exc
    return GuestResult(rc, log_path.read_text(errors="replace"), release)
