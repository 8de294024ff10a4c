from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.monitor_proc import SERVICE_PINS, RunningMonitor

REPO = Path(__file__).resolve().parent.parent
_SERVICE_PINS_BEFORE = pytest.StashKey[bool]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SERVICE_PINS_BEFORE] = SERVICE_PINS.exists()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A ringwatch started by a test without a pin directory of its own wrote into the
    service's: the run fails, whatever its tests said (a running service would have had
    its lineage rewritten)."""
    if session.config.stash.get(_SERVICE_PINS_BEFORE, True) or not SERVICE_PINS.exists():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"FAILED: a test's ringwatch pinned maps in {SERVICE_PINS} (the installed "
                            "service's); give it lineage.bpffs_dir of its own", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _unpin_test_monitors() -> Iterator[None]:
    """Pinned lineage maps hold kernel memory until removed: those of test monitors a test
    left running or never stopped go at the end of the session."""
    yield
    for pins in RunningMonitor.created_pins:
        shutil.rmtree(pins, ignore_errors=True)


@pytest.fixture
def root() -> None:
    """Kernel tests run for real: not being root is a failure, not a skip."""
    assert os.geteuid() == 0, "kernel tests need root (CI runs as root)"


@pytest.fixture
def repo_reachable_by_others() -> Iterator[None]:
    """Tests that run ringwatch as an unprivileged user need to reach the checkout and
    its venv; a clone inside a 0700 directory (mktemp -d) hides them. Grant search (not
    read) on such ancestors for the test, and take it back after."""
    changed: list[tuple[Path, int]] = []
    for d in [REPO, *REPO.parents]:
        mode = d.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(d, mode | stat.S_IXOTH)
            changed.append((d, mode))
    try:
        yield
    finally:
        for d, mode in reversed(changed):
            os.chmod(d, stat.S_IMODE(mode))
