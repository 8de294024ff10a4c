"""The pinned lineage map across restarts and resizes.

bcc reuses a pinned map as it finds it, whatever size the program declares. So before
compiling, a pinned map whose size differs from the configured one is read out and
unpinned; bcc then creates and pins a map of the new size, and the entries go back in.
Cilium recreates such maps and loses their contents; this keeps them.
"""

from __future__ import annotations

import ctypes as ct
import os
from dataclasses import dataclass, field
from pathlib import Path

from monitor.kernel.bpffs import BPF_NOEXIST, PinnedMap
from monitor.kernel.bpfsys import BPFSyscallError
from monitor.kernel.records import CProc, CProcKey

PROCS_PIN_NAME = "procs"


@dataclass
class Migration:
    """What prepare() found and what restore() must put back."""

    pin: Path
    existed: bool = False
    old_max_entries: int = 0
    entries: list[tuple[bytes, bytes]] = field(default_factory=list)
    discarded: int = 0
    reason: str = ""

    @property
    def needed(self) -> bool:
        return bool(self.entries) or bool(self.reason)


def prepare(bpffs_dir: Path, max_entries: int) -> Migration:
    bpffs_dir.mkdir(parents=True, exist_ok=True)
    pin = bpffs_dir / PROCS_PIN_NAME
    mig = Migration(pin)
    if not pin.exists():
        return mig
    mig.existed = True
    try:
        with PinnedMap(pin) as old:
            info = old.info
            mig.old_max_entries = info.max_entries
            same_layout = (info.key_size, info.value_size) == (ct.sizeof(CProcKey), ct.sizeof(CProc))
            if same_layout and info.max_entries == max_entries:
                return mig
            if same_layout:
                mig.entries = list(old.items())
                mig.reason = f"max_entries {info.max_entries} -> {max_entries}"
            else:
                # A different record layout (another ringwatch version) cannot be read
                # back safely: say how much is dropped rather than misread it.
                mig.discarded = old.count()
                mig.reason = (f"layout changed (key {info.key_size}B value {info.value_size}B, "
                              f"now {ct.sizeof(CProcKey)}B/{ct.sizeof(CProc)}B)")
    except BPFSyscallError as exc:
        mig.reason = f"unreadable ({exc.strerror}); recreated"
    os.unlink(pin)
    return mig


def restore(mig: Migration) -> tuple[int, int]:
    """Put migrated entries into the new map: (restored, lost to the new size)."""
    if not mig.entries:
        return 0, 0
    restored = lost = 0
    with PinnedMap(mig.pin) as new:
        # Newest processes first, so a shrink keeps the live ones; LRU order is not
        # visible from userspace, exec/fork time stands in for it.
        ordered = sorted(mig.entries, key=lambda kv: -CProcKey.from_buffer_copy(kv[0]).start_ticks)
        for k, v in ordered[: new.info.max_entries]:
            if new.update(k, v, BPF_NOEXIST):
                restored += 1
        lost = max(0, len(ordered) - new.info.max_entries)
    return restored, lost
