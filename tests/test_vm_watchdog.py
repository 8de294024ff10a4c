"""The boot watchdog of tests/vm.py: a silent boot is killed and retried once, a boot that
prints is left alone however slow it is.

Stand-ins for vng are real child processes (sh with a `sleep` grandchild, as vng has
qemu): the watchdog's own logic costs no VM boot. The last test (marked vm) points the
watchdog at a real guest with a deadline shorter than any boot and checks that both
qemu processes were killed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.vm import BOOT_MARK, VMError, boot, run_in_guest

ENV = dict(os.environ)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has been killed already


def wait_dead(pids: list[int], timeout: float = 30) -> list[int]:
    """The pids still alive after up to `timeout` s (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def pids_in(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_silent_boot_killed_with_its_group_retried_once_then_fails(tmp_path: Path) -> None:
    starts, children = tmp_path / "starts", tmp_path / "children"
    # Like vng: a parent that prints nothing and waits on a child (qemu) in its group.
    cmd = ["sh", "-c", f"echo $$ >> {starts}; sleep 300 & echo $! >> {children}; wait"]
    with pytest.raises(VMError, match=r"guest printed nothing in 0\.5 s, twice"):
        boot(cmd, ENV, tmp_path / "console.log", timeout=600, boot_deadline=0.5, poll=0.05)
    assert len(set(pids_in(starts))) == 2  # the first boot and one retry, no more
    assert len(pids_in(children)) == 2
    assert wait_dead(pids_in(starts) + pids_in(children)) == []
    assert (tmp_path / "console.log").read_bytes() == b""


def test_retry_that_prints_is_the_result(tmp_path: Path) -> None:
    flag, starts = tmp_path / "first-boot-done", tmp_path / "starts"
    cmd = ["sh", "-c", f"echo $$ >> {starts}; if [ -e {flag} ]; then echo booted; exit 7; fi; "
           f"touch {flag}; exec sleep 300"]
    res = boot(cmd, ENV, tmp_path / "console.log", timeout=600, boot_deadline=0.5, poll=0.05)
    assert (res.returncode, res.boots) == (7, 2)
    assert (tmp_path / "console.log").read_text() == "booted\n"
    assert wait_dead(pids_in(starts)) == []


def test_slow_boot_that_printed_is_not_killed(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    # Prints at once, then runs well past the deadline: only silence counts.
    cmd = ["sh", "-c", f"echo $$ >> {starts}; echo booting; sleep 3; echo done"]
    res = boot(cmd, ENV, tmp_path / "console.log", timeout=600, boot_deadline=1, poll=0.05)
    assert (res.returncode, res.boots) == (0, 1)
    assert (tmp_path / "console.log").read_text() == "booting\ndone\n"
    assert len(pids_in(starts)) == 1


def test_silent_exit_is_a_status_not_a_hang(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    cmd = ["sh", "-c", f"echo $$ >> {starts}; exit 3"]
    res = boot(cmd, ENV, tmp_path / "console.log", timeout=600, boot_deadline=60, poll=0.05)
    assert (res.returncode, res.boots) == (3, 1)
    assert len(pids_in(starts)) == 1


def test_run_timeout_still_ends_a_boot_that_printed(tmp_path: Path) -> None:
    children = tmp_path / "children"
    cmd = ["sh", "-c", f"echo up; sleep 300 & echo $! >> {children}; wait"]
    with pytest.raises(VMError, match=r"did not finish within 1s; console:\nup"):
        boot(cmd, ENV, tmp_path / "console.log", timeout=1, boot_deadline=60, poll=0.05)
    assert wait_dead(pids_in(children)) == []


def qemu_pids_for(rwdir: Path) -> set[int]:
    """Live qemu processes whose command line names rwdir (vng shares it over 9p)."""
    found = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(str(rwdir).encode() in a for a in argv):
            found.add(int(d.name))
    return {p for p in found if alive(p)}


@pytest.mark.vm
def test_real_guest_silent_past_a_tiny_deadline_is_killed_twice(tmp_path: Path) -> None:
    # 8 s: qemu is running by then, and no TCG boot here reaches BOOT_MARK that soon (19 s idle).
    rwdir = tmp_path / "rw"
    seen: set[int] = set()
    done = threading.Event()

    def spy() -> None:
        while not done.is_set():
            seen.update(qemu_pids_for(rwdir))
            time.sleep(0.2)

    t = threading.Thread(target=spy, daemon=True)
    t.start()
    try:
        with pytest.raises(VMError, match=r"guest printed nothing in 8 s, twice"):
            run_in_guest(["true"], rwdir, timeout=600, boot_deadline=8)
    finally:
        done.set()
        t.join()
    assert len(seen) == 2, seen  # a qemu per boot, each seen running
    assert wait_dead(sorted(seen)) == []
    assert BOOT_MARK not in (rwdir / "console.log").read_text()
