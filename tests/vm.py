"""Boots Debian's kernel under qemu (virtme-ng) and runs one command in it.

BPF LSM cannot load on the host kernel (PLATFORM.md), so enforcement is tested in a
guest. The guest sees the host's root read-only over 9p, so the repository and its
venv are usable as they are; `rwdir` is the one directory writable through to the
host, where the guest command leaves its results. KVM is nested here and hangs, so
the guest runs under TCG: slow, which is why callers put every check behind one boot.

Under TCG a boot sometimes hangs before the guest's command starts: qemu spins and the
console stays empty until the caller's timeout. The guest command therefore prints
BOOT_MARK first, and a watchdog kills the boot (vng and qemu, one process group) when the
console is still empty after `boot_deadline` seconds and boots once more. Only silence
counts: a boot that has printed anything runs until the caller's timeout.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
VNG_BIN = CACHE / "vng" / "bin"
BUSYBOX = CACHE / "busybox-static" / "bin" / "busybox"
SETUP_HINT = "run `scripts/setup.sh --test` (it installs the guest kernel, virtme-ng and busybox)"
BOOT_MARK = "ringwatch-guest: command started"
# Seconds from starting vng to BOOT_MARK on the console. Measured here (2 cores, TCG): 19 s
# with the machine idle, 55 s with two busy loops taking both cores; a healthy boot never
# came close to this, and a hung one costs this instead of the whole run's timeout.
BOOT_DEADLINE = 120.0
BOOT_ATTEMPTS = 2  # the first boot, and one retry


class VMError(AssertionError):
    """The guest could not be booted: a missing tool or kernel, a silent boot, or a timeout."""


@dataclass(frozen=True, slots=True)
class GuestResult:
    returncode: int
    output: str  # guest console and command output, stdout and stderr together
    kernel: str
    boots: int = 1  # 2: the first boot stayed silent and was killed


@dataclass(frozen=True, slots=True)
class Booted:
    returncode: int
    boots: int  # how many boots it took (the silent ones were killed)


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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # vng leaves qemu in its session: end the whole group, not just vng.
    with contextlib.suppress(ProcessLookupError):  # the group was gone already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _printed_in_time(proc: subprocess.Popen[bytes], log_fd: int, deadline: float, poll: float) -> bool:
    """False if proc is still running and has written nothing to log_fd at `deadline`."""
    while os.fstat(log_fd).st_size == 0:
        if proc.poll() is not None:
            return True  # it ended: not a hang; its status and output tell the rest
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def boot_once(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float,
              boot_deadline: float, poll: float = 0.2) -> int | None:
    """Run cmd in a session of its own, its output to log_path; its exit status, or None if
    it printed nothing within boot_deadline seconds (then its process group is killed)."""
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        try:
            if not _printed_in_time(proc, log.fileno(), start + boot_deadline, poll):
                _kill_group(proc)
                return None
            return proc.wait(max(0.0, start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            raise VMError(f"guest did not finish within {timeout}s; console:\n"
                          + log_path.read_text(errors="replace")[-4000:]) from exc
        except BaseException:
            _kill_group(proc)  # an interrupted test must not leave qemu spinning
            raise


def boot(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float,
         boot_deadline: float = BOOT_DEADLINE, attempts: int = BOOT_ATTEMPTS,
         poll: float = 0.2) -> Booted:
    """boot_once, again after each silent boot, up to `attempts` boots in all."""
    for n in range(1, attempts + 1):
        rc = boot_once(cmd, env, log_path, timeout, boot_deadline, poll)
        if rc is not None:
            return Booted(rc, n)
    times = {1: "once", 2: "twice"}.get(attempts, f"{attempts} times")
    raise VMError(f"guest printed nothing in {boot_deadline:g} s, {times} (qemu killed each time; "
                  f"a TCG boot hang): {shlex.join(cmd)}")


def run_in_guest(
    argv: list[str], rwdir: Path, timeout: float = 900, memory: str = "2G",
    boot_deadline: float = BOOT_DEADLINE,
) -> GuestResult:
    """Run argv as root in a fresh guest (cwd = the repository); return its status.

    timeout bounds each boot; a boot silent for boot_deadline seconds is retried once."""
    check_tools()
    image, release = guest_kernel()
    rwdir.mkdir(parents=True, exist_ok=True)
    guest_cmd = (f"echo {shlex.quote(BOOT_MARK)}; "
                 f"cd {shlex.quote(str(REPO))} && exec {shlex.join(argv)}")
    cmd = [
        str(VNG_BIN / "vng"), "--disable-kvm", "--busybox", str(BUSYBOX),
        "-r", str(image), "-m", memory, "--rwdir", str(rwdir), "--exec", guest_cmd,
    ]
    env = {**os.environ, "PATH": f"{VNG_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    log_path = rwdir / "console.log"
    booted = boot(cmd, env, log_path, timeout, boot_deadline)
    return GuestResult(booted.returncode, log_path.read_text(errors="replace"), release, booted.boots)
