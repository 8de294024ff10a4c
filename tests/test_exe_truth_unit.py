"""Pure logic of the executable-truth fields (the kernel side is tests/test_exe_truth_kernel.py)."""

from __future__ import annotations

from monitor.events.exe import name_is_exe
from monitor.kernel.records import ExeFile


def _exe(uid: int, gid: int, mode: int) -> ExeFile:
    return ExeFile("/x", 1, 0, 0, uid, gid, mode, 1, False)


def test_writable_by_owner_group_other_and_root() -> None:
    assert _exe(1000, 1000, 0o755).writable_by(1000, 1000)
    assert not _exe(1000, 1000, 0o555).writable_by(1000, 1000)
    assert _exe(0, 1000, 0o775).writable_by(1001, 1000)  # group write
    assert not _exe(0, 1000, 0o755).writable_by(1001, 1000)
    assert _exe(0, 0, 0o757).writable_by(1001, 1001)  # other write
    # The owner's bits decide for the owner, even when others may write.
    assert not _exe(1000, 0, 0o577).writable_by(1000, 0)
    assert _exe(0, 0, 0o555).writable_by(0, 0)  # root: DAC override


def test_name_is_exe_compares_comm_with_the_files_name_cut_to_15() -> None:
    assert name_is_exe("sshd", "/usr/sbin/sshd")
    assert name_is_exe("systemd-journal", "/usr/lib/systemd/systemd-journald")
    assert not name_is_exe("sshd", "/usr/bin/python3.11")  # prctl(PR_SET_NAME)
    assert not name_is_exe("sshd", "")
