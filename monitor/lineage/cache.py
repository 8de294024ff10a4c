"""Process lineage: who is the parent, and the ancestors, of the process behind an event.

The kernel keeps the truth in the pinned LRU map `procs` (bpf/sensor.bpf.c), keyed by
process identity (tgid, start tick), so a reused pid never inherits another process's
ancestry and a reparented orphan keeps its real parent. Userspace keeps a bounded cache
of the same entries, fed by the records themselves, and falls back to the kernel map
on a miss: a lookup in Python costs a syscall, a dict hit does not.
"""

from __future__ import annotations

import ctypes as ct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from monitor.kernel.bpffs import BPF_NOEXIST, PinnedMap
from monitor.kernel.records import (
    PROC_ARGS_LEN,
    PROC_F_BACKFILLED,
    CProc,
    CProcKey,
    ExecRecord,
    ExitRecord,
    ForkRecord,
    Record,
)
from monitor.lineage.process import Key, ProcInfo


@dataclass
class LineageStats:
    cache_hits: int = 0
    kernel_hits: int = 0
    misses: int = 0  # neither cache nor kernel map knew the process
    backfilled: int = 0
    cache_invalidations: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def decode_proc(key: bytes, value: bytes) -> ProcInfo:
    k = CProcKey.from_buffer_copy(key)
    v = CProc.from_buffer_copy(value)
    # Not v.args: ctypes cuts a char array at its first NUL, and argv is NUL-separated.
    start = CProc.args.offset
    args = value[start : start + min(v.args_len, PROC_ARGS_LEN)]
    argv = [_text(a) for a in args.split(b"\0")] if args else []
    if argv and args.endswith(b"\0"):
        argv.pop()
    return ProcInfo(k.tgid, k.start_ticks, v.ppid, v.pstart_ticks, v.uid, _text(v.comm), _text(v.exe),
                    argv, v.exec_ns, v.exit_ns, v.cgroup_id, bool(v.flags & PROC_F_BACKFILLED))


def encode_key(tgid: int, start_ticks: int) -> bytes:
    return bytes(CProcKey(tgid, 0, start_ticks))


def encode_proc(s: ProcInfo) -> bytes:
    args = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in s.argv)[:PROC_ARGS_LEN]
    v = CProc(ppid=s.ppid, uid=s.uid, pstart_ticks=s.pstart_ticks,
              flags=PROC_F_BACKFILLED if s.backfilled else 0, args_len=len(args), exec_ns=s.exec_ns,
              exit_ns=s.exit_ns, cgroup_id=s.cgroup_id)
    v.comm = s.comm.encode("utf-8", "surrogateescape")[:15]
    v.exe = s.exe.encode("utf-8", "surrogateescape")[:255]
    ct.memmove(ct.addressof(v) + CProc.args.offset, args, len(args))
    return bytes(v)


class Lineage:
    def __init__(self, kernel: PinnedMap | None, depth: int, cache_entries: int, ns_per_tick: int,
                 boot_id: str = "") -> None:
        self.kernel = kernel
        self.depth = depth
        self.cache_entries = cache_entries
        self.ns_per_tick = ns_per_tick
        self.boot_id = boot_id[:8]
        self._cache: OrderedDict[Key, ProcInfo] = OrderedDict()
        self.stats = LineageStats()
        # Bumped whenever what ancestors() can return may change (an entry added, replaced,
        # evicted or changed in place, the cache cleared): callers may keep an ancestry
        # computed at one generation until the next.
        self.generation = 0

    def ticks(self, start_ns: int) -> int:
        return start_ns // self.ns_per_tick

    def exec_id(self, info: ProcInfo) -> str:
        return f"{self.boot_id}:{info.tgid}:{info.start_ticks}:{info.exec_ns}"

    def _put(self, info: ProcInfo) -> None:
        self.generation += 1
        self._cache[info.key] = info
        self._cache.move_to_end(info.key)
        if len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    def cached(self) -> int:
        return len(self._cache)

    def invalidate(self) -> None:
        """Records were lost: the cache may be stale; the kernel map is not."""
        self._cache.clear()
        self.generation += 1
        self.stats.cache_invalidations += 1

    def get(self, key: Key) -> ProcInfo | None:
        info = self._cache.get(key)
        if info is not None:
            self.stats.cache_hits += 1
            return info
        if self.kernel is not None:
            raw = self.kernel.lookup(encode_key(*key))
            if raw is not None:
                self.stats.kernel_hits += 1
                info = decode_proc(encode_key(*key), raw)
                self._put(info)
                return info
        self.stats.misses += 1
        return None

    def observe(self, rec: Record) -> ProcInfo | None:
        """Update the cache from a record; the process the record is about."""
        h = rec.h
        key = (h.tgid, self.ticks(h.start_ns))
        if isinstance(rec, ForkRecord):
            forker = self.get((rec.parent_tgid, self.ticks(rec.parent_start_ns)))
            # With CLONE_PARENT the parent is the forker's parent, whose start the record
            # does not carry; the kernel entry for the child has it.
            pstart = (self.ticks(rec.parent_start_ns) if h.ppid == rec.parent_tgid
                      else self._kernel_pstart(key))
            child = ProcInfo(h.tgid, key[1], h.ppid, pstart, h.uid, h.comm,
                             forker.exe if forker else "", list(forker.argv) if forker else [],
                             forker.exec_ns if forker else 0, 0, h.cgroup_id, cgroup1_id=rec.cgroup1_id)
            self._put(child)
            return child
        info = self.get(key)
        if isinstance(rec, ExecRecord):
            if rec.ret == 0:
                if info is None:
                    # The kernel makes an entry at every exec: only a racing eviction gets here.
                    info = ProcInfo(h.tgid, key[1], h.ppid, 0, h.uid, h.comm, "", [])
                # As the kernel's entry has it: the resolved path of what ran.
                exepath = rec.exe.path if rec.exe is not None else None
                info.comm, info.exe, info.argv = h.comm, exepath or rec.filename, rec.argv
                info.exec_ns, info.uid, info.cgroup_id = h.ktime_ns, h.uid, h.cgroup_id
                info.cgroup1_id = rec.task.cgroup1_id if rec.task is not None else 0
                info.backfilled = False
                self._put(info)
            return info
        if isinstance(rec, ExitRecord) and info is not None:
            info.exit_ns = h.ktime_ns
            self.generation += 1
        return info

    def _kernel_pstart(self, key: Key) -> int:
        raw = self.kernel.lookup(encode_key(*key)) if self.kernel is not None else None
        return decode_proc(encode_key(*key), raw).pstart_ticks if raw is not None else 0

    def ancestors(self, info: ProcInfo) -> list[ProcInfo]:
        out: list[ProcInfo] = []
        seen = {info.key}
        cur = info
        while len(out) < self.depth and cur.ppid > 0:
            parent = self.get(cur.parent_key)
            if parent is None or parent.key in seen:
                break
            out.append(parent)
            seen.add(parent.key)
            cur = parent
        return out

    def backfill(self, snapshots: Iterable[ProcInfo]) -> tuple[int, int]:
        """Processes that exist now: (added, refreshed) in the kernel map.

        For parentage the kernel's entry wins: /proc names init as the parent of a
        reparented orphan, the map still has the real one. For the image /proc wins:
        a process that exec'd while ringwatch was stopped has a stale entry.
        """
        added = refreshed = 0
        for s in snapshots:
            key = encode_key(s.tgid, s.start_ticks)
            if self.kernel is None:
                if (s.tgid, s.start_ticks) not in self._cache:
                    added += 1
                self._put(s)
                continue
            raw = self.kernel.lookup(key)
            ppid, pstart = s.ppid, s.pstart_ticks
            if raw is None:
                if self.kernel.update(key, encode_proc(s), BPF_NOEXIST):
                    added += 1
            else:
                known = decode_proc(key, raw)
                ppid, pstart = known.ppid, known.pstart_ticks
                fresh = decode_proc(key, encode_proc(s))
                if (known.comm, known.argv) != (fresh.comm, fresh.argv) and s.argv:
                    self.kernel.update(key, encode_proc(replace(s, ppid=ppid, pstart_ticks=pstart)))
                    refreshed += 1
            # The kernel map holds only the start of argv; the cache gets all of it.
            self._put(replace(s, ppid=ppid, pstart_ticks=pstart))
        self.stats.backfilled += added + refreshed
        return added, refreshed
