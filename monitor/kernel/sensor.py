"""Loads the kernel programs with bcc, consumes the ring buffers, reads the counters.

The sensor knows nothing of rules or outputs: it hands each decoded record to a
callback. Everything the kernel could not deliver is in `drops`; everything it tried
to deliver is in `produced`; what reached userspace is in `delivered`; what the syscall
lane folded or refused is in `flood_stats`. Two lanes (monitor/kernel/lanes.py): the
process lane is drained first and between every chunk of the syscall lane.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import mmap
import os
import select
import struct
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from monitor import log as logmod
from monitor import paths
from monitor.config import LineageConfig, SensorConfig
from monitor.errors import UserError
from monitor.events.catalog import CATALOGUE
from monitor.events.syscall_args import BPF_CMDS
from monitor.kernel import cgroups, coalesce, iouring, lineage_map, offsets
from monitor.kernel.bpffs import PinnedMap
from monitor.kernel.btf import BTF, BTFError
from monitor.kernel.filters import PROC_MEM, open_prefix_values
from monitor.kernel.lanes import LANES, MAP_NAMES, PROCESS, SYSCALL, LaneCounts, RingManager, lane_counts
from monitor.kernel.records import (
    PATH_LEN,
    RECORD_LOST,
    SC_WIRE_HEAD,
    CCoalKey,
    CCoalVal,
    DecodeError,
    DropReason,
    FloodStat,
    LineageStat,
    Record,
    RecordType,
    decode,
)

BPF_DIR = paths.bpf_dir()
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Each BPF ring-buffer record is preceded by an 8-byte header (length, page offset).
RINGBUF_RECORD_HEADER = 8
# /proc/PID/stat counts process start in USER_HZ ticks; lineage keys use the same unit.
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
SYSCALL_NR_MAX = 512  # RW_NR_MAX in bpf/sensor.bpf.c
BPF_CMD_MAX = 64  # RW_BPF_CMD_MAX in bpf/sensor.bpf.c
# Records handled per poll before the main loop gets a turn.
POLL_BUDGET = 8192
# Syscall records read between two looks at the process lane.
SYSCALL_CHUNK = 512
# Throttled processes listed in stats, most throttled first.
THROTTLED_TOP = 10
# Processes (and cgroups) with a throttling bucket: LRU, so an idle one is forgotten.
THROTTLE_MAX = 16384


class SensorError(UserError):
    pass


def ringbuf_pages(nbytes: int) -> int:
    """Pages for a ring buffer of at least nbytes: the kernel wants a power of two."""
    pages = max(1, -(-nbytes // PAGE_SIZE))
    return 1 << (pages - 1).bit_length()


# A syscall record in the ring is its fixed part and its strings' bytes: an open of a
# 64-byte path carries the path and the file it resolved to. The burst is sized in those;
# records of long paths take up to SC_WIRE_HEAD + 4 * 255 bytes.
TYPICAL_SYSCALL_RECORD = SC_WIRE_HEAD + 2 * 64


def burst_bytes(rate: int, burst: int) -> int:
    """Ring-buffer bytes one process's throttle burst of typical syscall records fills (0:
    no throttling, so no burst to hold)."""
    return burst * (TYPICAL_SYSCALL_RECORD + RINGBUF_RECORD_HEADER) if rate else 0


# What packaging/systemd/ringwatch.service's CapabilityBoundingSet grants, and why
# (tests/test_hostile_outputs.py keeps the two equal).
CAPABILITIES = ("CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH")


def preflight() -> None:
    """Refuse early, with one line, what would otherwise fail deep inside bcc."""
    if os.geteuid() != 0:
        raise SensorError(
            f"ringwatch needs root (the service runs with {', '.join(CAPABILITIES)}) to load BPF programs"
        )
    if not Path("/sys/fs/bpf").is_dir() or not os.path.ismount("/sys/fs/bpf"):
        raise SensorError("bpffs is not mounted on /sys/fs/bpf; run: mount -t bpf bpf /sys/fs/bpf")
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        raise SensorError(
            f"bcc Python module not importable ({exc}); install Debian's python3-bpfcc "
            "and run ringwatch with /usr/bin/python3 or a venv made with --system-site-packages"
        ) from exc


class _Captured:
    def __init__(self) -> None:
        self.text = ""

    def read(self) -> str:
        return self.text


@contextmanager
def _captured_stderr() -> Iterator[_Captured]:
    """What C code (libbcc, clang) writes to fd 2 meanwhile, kept instead of printed."""
    out = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.text = tmp.read().decode(errors="replace")


_POS = struct.Struct("<Q")


class RingPositions:
    """The ring buffer's consumer and producer positions, as libbpf itself reads them.

    A BPF ring buffer map exposes its consumer position on the first mmapped page and
    its producer position on the second; their difference is the exact backlog, read
    without a syscall. (bcc 0.26 cannot call bpf_ringbuf_query in the kernel.)
    """

    def __init__(self, map_fd: int) -> None:
        self._cons = mmap.mmap(map_fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=0)
        self._prod = mmap.mmap(map_fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE_SIZE)

    def fill(self) -> int:
        # Read in place (no slice object): the syscall lane asks once per record.
        backlog: int = _POS.unpack_from(self._prod)[0] - _POS.unpack_from(self._cons)[0]
        return max(0, backlog)

    def close(self) -> None:
        self._cons.close()
        self._prod.close()


def _release_half_built(exc: BaseException) -> None:
    """Close the maps and programs of a BPF object whose constructor raised.

    bcc creates maps and loads programs before it attaches them; when attaching fails
    (LSM on a kernel that refuses it) the exception leaves all of that open, a second
    copy of every map in locked memory. The object is still reachable from the frames
    of the traceback.
    """
    from bcc import BPF

    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, BPF):
            obj.cleanup()
            return
        tb = tb.tb_next


@dataclass
class Counters:
    produced: dict[str, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    decode_errors: int = 0
    flood: dict[str, int] = field(default_factory=dict)
    lanes: dict[str, LaneCounts] = field(default_factory=dict)
    # Count-only records rebuilt from idle coalescing entries, and the repeats they carried.
    coalesce_tails: int = 0
    coalesce_tail_repeats: int = 0
    # Per lane: its ring's size, backlog now and backlog high-water mark, in bytes.
    rings: dict[str, dict[str, int]] = field(default_factory=dict)
    # Records refused, by pid and by cgroup id (read only once something was refused).
    throttled_by: dict[str, Any] = field(default_factory=dict)

    def lost(self) -> int:
        return sum(self.drops.get(r.name.lower(), 0) for r in RECORD_LOST)


class Extension(Protocol):
    """Kernel programs compiled into the sensor's BPF object (enforcement, bpf/lsm.bpf.c)."""

    def source(self) -> str: ...

    def loaded(self, bpf: Any) -> None: ...

    def refused(self, exc: Exception) -> None:
        """The combined object failed to load; raise to stop, return to run without it."""


class Sensor:
    """One bcc program: compiled and attached in start(), detached in close()."""

    def __init__(
        self,
        cfg: SensorConfig,
        on_record: Callable[[Record], None],
        self_tgid: int | None = None,
        log: FilteringBoundLogger | None = None,
        lineage: LineageConfig | None = None,
        extension: Extension | None = None,
    ) -> None:
        self.cfg = cfg
        self.extension = extension
        self.lineage_cfg = lineage or LineageConfig()
        # The pinned lineage map, opened after the programs load (None before).
        self.procs: PinnedMap | None = None
        self._wanted = [False] * SYSCALL_NR_MAX
        self._on_record = on_record
        self._self_tgid = os.getpid() if self_tgid is None else self_tgid
        self._log = log or logmod.get("sensor")
        self._bpf: Any = None
        self.delivered = [0] * (max(RecordType) + 1)
        self.decode_errors = 0
        self.offsets_source = ""
        self.fill_hwm_bytes = 0
        self._positions: dict[str, RingPositions] = {}
        self._budget = POLL_BUDGET
        self._chunk = SYSCALL_CHUNK
        # Process records read, not yet handed on: they wait for the syscall records that
        # happened before them (_syscall_callback).
        self._waiting: deque[Record] = deque()
        # Records read from each lane's ring, decodable or not.
        self.received = {lane: 0 for lane in LANES}
        self.lane_hwm = {lane: 0 for lane in LANES}
        self._measure = {lane: True for lane in LANES}
        self._managers: dict[str, RingManager] = {}
        self._epoll: select.epoll | None = None
        self.coalesce_tails = 0
        self.coalesce_tail_repeats = 0
        self._next_flush_ns = 0
        self._coalesce_table: Any = None
        # io_uring request tracing: compiled in (BTF has the layout), and attached where.
        self._uring_compiled = False
        self.uring_tracepoint = ""
        # The v1 controller exec records name a cgroup of ("" none): the container
        # lookup needs to know which line of /proc/PID/cgroup that is.
        self.cgroup1_controller = ""

    @property
    def lane_bytes(self) -> dict[str, int]:
        """Each lane's real size: the configured one rounded up to 2^n pages."""
        return {
            PROCESS: ringbuf_pages(self.cfg.process_ringbuf_bytes) * PAGE_SIZE,
            SYSCALL: ringbuf_pages(self.cfg.ringbuf_bytes) * PAGE_SIZE,
        }

    @property
    def ringbuf_bytes(self) -> int:
        """Both lanes together."""
        return sum(self.lane_bytes.values())

    def cflags(self) -> list[str]:
        btf = BTF.try_load(Path(self.cfg.btf_path))
        offs, warning = offsets.detect(btf)
        if warning:
            self._log.warning("offsets_from_headers", detail=warning)
        self.offsets_source = offs.source
        return [
            f"-I{BPF_DIR}",
            f"-DRW_RINGBUF_PAGES={ringbuf_pages(self.cfg.process_ringbuf_bytes)}",
            f"-DRW_SYSCALL_RINGBUF_PAGES={ringbuf_pages(self.cfg.ringbuf_bytes)}",
            f"-DRW_SYSCALL_WAKEUP_RECORDS={self.cfg.wakeup_records}",
            f"-DRW_COALESCE_WINDOW_NS={self.cfg.coalesce_window_ms * 1_000_000}ULL",
            f"-DRW_COALESCE_MAX={self.cfg.coalesce_entries}",
            f"-DRW_PROC_RATE={self.cfg.throttle_process_rate}ULL",
            f"-DRW_PROC_BURST={self.cfg.throttle_process_burst}ULL",
            f"-DRW_CG_RATE={self.cfg.throttle_cgroup_rate}ULL",
            f"-DRW_CG_BURST={self.cfg.throttle_cgroup_burst}ULL",
            f"-DRW_THROTTLE_MAX={THROTTLE_MAX}",
            f"-DRW_THROTTLE_NOTICE_NS={self.cfg.throttle_notice_interval_s * 1_000_000_000}ULL",
            f"-DRW_SELF_TGID={self._self_tgid}",
            f"-DRW_PENDING_MAX={self.cfg.pending_exec_max}",
            f"-DRW_CGROUP_FILTER_N={len(self.cfg.cgroups)}",
            f"-DRW_PROCS_MAX={self.lineage_cfg.max_entries}",
            f'-DRW_PROCS_PIN="{Path(self.lineage_cfg.bpffs_dir) / lineage_map.PROCS_PIN_NAME}"',
            f"-DRW_NS_PER_TICK={NS_PER_TICK}",
            *CATALOGUE.kernel_defines(),
            *offs.cflags(),
            *self._uring_cflags(btf),
            *self._cgroup_cflags(btf),
        ]

    def _cgroup_cflags(self, btf: BTF | BTFError) -> tuple[str, ...]:
        found = cgroups.detect(btf)
        self.cgroup1_controller = found.controller
        return found.cflags

    def _uring_cflags(self, btf: BTF | BTFError) -> tuple[str, ...]:
        support = iouring.detect(btf)
        if support.reason:
            self._log.warning("io_uring_not_traced", detail=support.reason)
        self._uring_compiled = bool(support.cflags)
        return support.cflags

    def start(self) -> None:
        preflight()
        from bcc import BPF

        src = (BPF_DIR / "sensor.bpf.c").read_text()
        try:
            migration = lineage_map.prepare(Path(self.lineage_cfg.bpffs_dir), self.lineage_cfg.max_entries)
        except OSError as exc:
            raise SensorError(f"lineage.bpffs_dir {self.lineage_cfg.bpffs_dir}: {exc.strerror}") from exc
        if self.extension is not None:
            # One compile for both. bcc attaches LSM programs while constructing, so a
            # kernel that refuses them fails here; then the sensor is compiled alone.
            try:
                with _captured_stderr() as captured:
                    combined = src + "\n" + self.extension.source()
                    self._bpf = BPF(text=combined.encode(), cflags=self.cflags())
            except Exception as exc:
                _release_half_built(exc)
                # libbcc wrote its own lines on fd 2; they belong in the log, not the terminal.
                self._log.debug("extension_load_output", output=captured.read())
                self.extension.refused(exc)
            else:
                self.extension.loaded(self._bpf)
        if self._bpf is None:
            try:
                self._bpf = BPF(text=src.encode(), cflags=self.cflags())
            except Exception as exc:  # bcc raises bare Exception for compile/load failures
                raise SensorError(f"cannot load BPF programs from {BPF_DIR}: {exc}") from exc
        for i, path in enumerate(self.cfg.cgroups):
            try:
                self._bpf["cgroup_filter"][i] = path
            except Exception as exc:
                raise SensorError(f"sensor.cgroups[{i}]: cannot use cgroup {path}: {exc}") from exc
        self._open_lineage(migration)
        # The environment scan at exec is a program of its own (bpf/sensor.bpf.c).
        iouring.attach_second(self._bpf, "sched_process_exec", "rw_exec_env")
        self._attach_uring()
        fds = {lane: self._bpf[MAP_NAMES[lane]].map_fd for lane in LANES}
        callbacks = {PROCESS: self._process_callback, SYSCALL: self._syscall_callback}
        for lane in LANES:
            self._managers[lane] = RingManager([(fds[lane], callbacks[lane])])
            self._positions[lane] = RingPositions(fds[lane])
        # What a blocking poll waits on: a ring buffer map's fd is readable when it holds a
        # record. (A third libbpf manager over both would map both rings a second time:
        # every ring page counts in RSS once per mapping.)
        self._epoll = select.epoll()
        for lane in LANES:
            self._epoll.register(fds[lane], select.EPOLLIN)
        release_compiler_memory()
        self._log.info(
            "sensor_attached",
            ringbuf_bytes=self.lane_bytes,
            offsets=self.offsets_source,
            cgroup1_controller=self.cgroup1_controller or None,
            coalesce_window_ms=self.cfg.coalesce_window_ms,
            throttle_process_rate=self.cfg.throttle_process_rate,
            throttle_cgroup_rate=self.cfg.throttle_cgroup_rate,
        )
        burst = burst_bytes(self.cfg.throttle_process_rate, self.cfg.throttle_process_burst)
        if burst > self.lane_bytes[SYSCALL]:
            # A flood of distinct records passes the bucket's burst at the flooder's
            # speed, far faster than userspace drains: what the lane cannot hold is lost.
            self._log.warning("syscall_lane_below_burst", ringbuf_bytes=self.lane_bytes[SYSCALL],
                              burst_bytes=burst, burst=self.cfg.throttle_process_burst,
                              detail="a flood of distinct syscall records can lose records in its "
                                     "first burst; raise sensor.ringbuf_bytes or lower "
                                     "sensor.throttle_process_burst")

    def _attach_uring(self) -> None:
        # Compiled in only when the BTF placed io_uring's request structs.
        if not self._uring_compiled:
            return
        self.uring_tracepoint = iouring.attach(self._bpf)
        if not self.uring_tracepoint:
            self._log.warning("io_uring_not_traced", detail="no io_uring submission tracepoint")

    def _open_lineage(self, migration: lineage_map.Migration) -> None:
        if migration.reason:
            restored, lost = lineage_map.restore(migration)
            self._log.warning(
                "lineage_map_migrated", pin=str(migration.pin), change=migration.reason,
                restored=restored, lost_to_size=lost, discarded=migration.discarded,
            )
        self.procs = PinnedMap(migration.pin)
        self._log.info(
            "lineage_map", pin=str(migration.pin), reopened=migration.existed and not migration.reason,
            max_entries=self.procs.info.max_entries,
        )

    def _read(self, lane: str, data: int, size: int) -> Record | None:
        if self._measure[lane]:
            # The first record since a poll began: the backlog is at its largest.
            self._measure[lane] = False
            self.lane_hwm[lane] = max(self.lane_hwm[lane], self._positions[lane].fill())
            self.fill_hwm_bytes = max(self.fill_hwm_bytes, self.lane_hwm[lane])
        self.received[lane] += 1
        self._budget -= 1
        try:
            rec = decode(data, size)
        except (DecodeError, ValueError) as exc:
            self.decode_errors += 1
            self._log.warning("decode_error", error=str(exc))
            return None
        self.delivered[rec.h.type] += 1
        return rec

    def _release(self, until_ns: int | None = None) -> None:
        """Hand on the process records read so far, up to a time (all without one)."""
        waiting = self._waiting
        while waiting and (until_ns is None or waiting[0].h.ktime_ns <= until_ns):
            self._on_record(waiting.popleft())

    # The two lanes are merged by time: a process record is handed on before the first
    # syscall record that happened after it, not before those that happened before it.
    # An exec or fork must reach the lineage before its child's (or its own) next syscall
    # is judged, and a syscall made just before an exec belongs to the old image (seen
    # live both ways: an exec written 30 ms after its child's opens; a PTRACE_TRACEME made
    # before an exec shown with the command line the exec gave).
    #
    # libbpf keeps consuming while records keep coming: under a storm one poll would
    # never return. A negative return ends the consume after this (consumed) record, so
    # the main loop still handles signals, reloads, stats and flushes.
    def _process_callback(self, _ctx: Any, data: int, size: int) -> int:
        rec = self._read(PROCESS, data, size)
        if rec is not None:
            self._waiting.append(rec)
        return -1 if self._budget <= 0 else 0

    def _syscall_callback(self, _ctx: Any, data: int, size: int) -> int:
        process = self._positions.get(PROCESS)
        if process is not None and process.fill():
            # Process records came in meanwhile: read them now (the other lane's own
            # manager), so that those that happened before this syscall go first.
            self._managers[PROCESS].consume()
        rec = self._read(SYSCALL, data, size)
        if rec is not None:
            self._release(rec.h.ktime_ns)
            self._on_record(rec)
        self._chunk -= 1
        # A chunk at a time: then the process lane gets its turn again.
        return -1 if self._budget <= 0 or self._chunk <= 0 else 0

    def fill_bytes(self) -> int:
        """Bytes in both lanes not yet consumed, read from their position pages."""
        return sum(self.lane_fill().values())

    def lane_fill(self) -> dict[str, int]:
        return {lane: pos.fill() for lane, pos in self._positions.items()}

    def _drain_lanes(self) -> int:
        """Process lane, then a chunk of the syscall lane, again and again, up to the budget."""
        start = sum(self.received.values())
        while self._budget > 0:
            before = sum(self.received.values())
            self._managers[PROCESS].consume()
            self._chunk = SYSCALL_CHUNK
            self._managers[SYSCALL].consume()
            if not self._positions[SYSCALL].fill():
                self._release()  # no syscall record waits: nothing can come before them
            if sum(self.received.values()) == before:
                break
        self._release()
        return sum(self.received.values()) - start

    def poll(self, timeout_ms: int | None = None) -> None:
        self._budget = POLL_BUDGET
        self._measure = {lane: True for lane in LANES}
        if not self._drain_lanes():
            self._chunk = SYSCALL_CHUNK
            wait_ms = self.cfg.poll_timeout_ms if timeout_ms is None else timeout_ms
            if self._epoll is not None and self._epoll.poll(wait_ms / 1000):
                self._budget = POLL_BUDGET
                self._drain_lanes()
        self._flush_coalesced_if_due()

    def drain(self) -> None:
        """Consume whatever is in the ring buffers now, without blocking; report idle tails."""
        while True:
            self._budget = POLL_BUDGET
            if not self._drain_lanes():
                break
        self.flush_coalesced(force=True)

    def _flush_coalesced_if_due(self) -> None:
        window_ns = self.cfg.coalesce_window_ms * 1_000_000
        if not window_ns:
            return
        now = time.monotonic_ns()
        if now >= self._next_flush_ns:
            # Once a window (at least every second): each look reads the whole map.
            self._next_flush_ns = now + max(window_ns, 1_000_000_000)
            self.flush_coalesced()

    def flush_coalesced(self, force: bool = False) -> int:
        """Report and delete coalescing entries idle for a window (all, with force)."""
        window_ns = self.cfg.coalesce_window_ms * 1_000_000
        if not window_ns or self._bpf is None:
            return 0
        # Typed here: bcc cannot describe a key whose array size is an expression.
        if self._coalesce_table is None:
            self._coalesce_table = self._bpf.get_table("coalesce", CCoalKey, CCoalVal)
        table = self._coalesce_table
        raw = list(_table_items(table))
        entries = [(k, v) for k, v in raw]
        now = time.monotonic_ns()
        tails, stale = coalesce.idle_tails(entries, (now + 2 * window_ns) if force else now, window_ns)
        stale_bytes = {bytes(k) for k in stale}
        for k, _ in raw:
            if bytes(k) in stale_bytes:
                with contextlib.suppress(KeyError):  # evicted meanwhile
                    del table[k]
        for tail in tails:
            self.coalesce_tails += 1
            self.coalesce_tail_repeats += tail.record.count
            self._on_record(tail.record)
        return len(tails)

    def _percpu_sums(self, name: str, n: int) -> list[int]:
        table = self._bpf[name]
        return [sum(table[ct.c_int(i)]) for i in range(n)]

    def stop_tracing(self) -> None:
        """Detach the tracepoints, keep the maps: the final counts then stand still."""
        for tp in list(self._bpf.raw_tracepoint_fds):
            self._bpf.detach_raw_tracepoint(tp)

    def counters(self) -> Counters:
        # Losses before productions: while tracing goes on, a record counted in one read
        # and not the other can then only make delivered + lost fall short of produced
        # (records still in flight), never exceed it.
        received = dict(self.received)
        drops = self._percpu_sums("drops", max(DropReason) + 1)
        flood_raw = self._percpu_sums("flood_stats", max(FloodStat) + 1)
        produced = self._percpu_sums("produced", max(RecordType) + 1)
        produced_by = {t.name.lower(): produced[t] for t in RecordType}
        drops_by = {r.name.lower(): drops[r] for r in DropReason}
        flood = {f.name.lower(): flood_raw[f] for f in FloodStat}
        fill = self.lane_fill()
        sizes = self.lane_bytes
        rings = {lane: {"bytes": sizes[lane], "fill_bytes": fill.get(lane, 0),
                        "fill_hwm_bytes": self.lane_hwm[lane]} for lane in LANES}
        refused = flood["throttled_process"] + flood["throttled_cgroup"]
        return Counters(
            produced=produced_by,
            drops=drops_by,
            delivered={t.name.lower(): self.delivered[t] for t in RecordType},
            decode_errors=self.decode_errors,
            flood=flood,
            lanes=lane_counts(produced_by, drops_by, received, flood),
            coalesce_tails=self.coalesce_tails,
            coalesce_tail_repeats=self.coalesce_tail_repeats,
            rings=rings,
            throttled_by=self.throttled_processes() if refused else {},
        )

    def throttled_processes(self, top: int = THROTTLED_TOP) -> dict[str, Any]:
        """Records refused by process (tgid) and by cgroup id, most refused first."""
        out: dict[str, Any] = {}
        for name, label in (("throttled_pids", "by_pid"), ("throttled_cgroups", "by_cgroup")):
            rows = [(int(getattr(k, "value", k)), int(getattr(v, "value", v)))
                    for k, v in _table_items(self._bpf[name])]
            rows.sort(key=lambda kv: -kv[1])
            out[label] = {str(k): n for k, n in rows[:top]}
        return out

    def set_wanted_syscalls(self, numbers: set[int]) -> None:
        """The in-kernel filter: only these syscalls (besides exec) produce records."""
        table = self._bpf["syscall_wanted"]
        for nr in range(len(self._wanted)):
            want = nr in numbers
            if want != self._wanted[nr]:
                table[ct.c_int(nr)] = ct.c_uint8(1 if want else 0)
                self._wanted[nr] = want
        names = {nr: name for nr, (name, _) in CATALOGUE.by_number.items()}
        self._log.info("syscall_filter", syscalls=sorted(names.get(n, str(n)) for n in numbers))

    def set_open_prefixes(self, prefixes: frozenset[str] | None,
                          write_prefixes: frozenset[str] = frozenset()) -> None:
        """The kernel's open path filter: None records opens of every path. Below a
        write_prefixes entry only opens that can write are kept."""
        trie = self._bpf["open_prefixes"]
        trie.clear()
        proc_mem = prefixes is not None and PROC_MEM in prefixes
        self._bpf["proc_mem_wanted"][ct.c_int(0)] = ct.c_uint32(1 if proc_mem else 0)
        values = open_prefix_values((prefixes or frozenset()) - {PROC_MEM},
                                    write_prefixes if prefixes is not None else frozenset())
        for prefix, value in sorted(values.items()):
            raw = prefix.encode("utf-8", "surrogateescape")[: PATH_LEN - 1]
            key = trie.Key(len(raw) * 8, raw)
            trie[key] = ct.c_uint8(value)
        self._bpf["open_filter"][ct.c_int(0)] = ct.c_uint32(0 if prefixes is None else 1)
        self._log.info("open_path_filter", prefixes=None if prefixes is None else sorted(prefixes),
                       write_prefixes=sorted(write_prefixes) if prefixes is not None else [])

    def set_bpf_commands(self, commands: frozenset[str] | None) -> None:
        """The kernel's bpf() command filter: None records every command."""
        table = self._bpf["bpf_cmd_wanted"]
        wanted = {BPF_CMDS.index(c) for c in commands or () if c in BPF_CMDS}
        for i in range(BPF_CMD_MAX):
            table[ct.c_int(i)] = ct.c_uint8(1 if i in wanted else 0)
        table[ct.c_int(BPF_CMD_MAX)] = ct.c_uint8(0 if commands is None else 1)
        self._log.info("bpf_command_filter", commands=None if commands is None else sorted(commands))

    def filtered_opens(self) -> int:
        return int(sum(self._bpf["filtered_opens"][ct.c_int(0)]))

    def lineage_counters(self) -> dict[str, int]:
        sums = self._percpu_sums("lineage_stats", max(LineageStat) + 1)
        return {s.name.lower(): sums[s] for s in LineageStat}

    def close(self) -> None:
        if self._bpf is not None and self._managers:
            # The final per-lane accounting: exact once tracing stopped and lanes drained.
            c = self.counters()
            self._log.info("lanes", **{lane: {**n.as_dict(), **c.rings.get(lane, {})}
                                       for lane, n in c.lanes.items()},
                           flood=c.flood, coalesce_tails=c.coalesce_tails,
                           coalesce_tail_repeats=c.coalesce_tail_repeats, throttled_by=c.throttled_by)
        for mgr in self._managers.values():
            mgr.close()
        self._managers = {}
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        for pos in self._positions.values():
            pos.close()
        self._positions = {}
        if self.procs is not None:
            self.procs.close()
            self.procs = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None


def _table_items(table: Any) -> list[tuple[Any, Any]]:
    """A hash map's entries in as few syscalls as the kernel allows."""
    try:
        return list(table.items_lookup_batch())
    except Exception:  # older kernels or bcc: no batch ops on this map type
        return list(table.items())


def release_compiler_memory() -> None:
    """After the compile, give back what only the compile used.

    bcc compiles with clang and LLVM in this process: glibc keeps the tens of MB they
    freed in its arenas (malloc_trim returns them), and their libraries' pages (85 MB
    of libLLVM and libclang-cpp) stay resident though nothing runs them again until a
    new compile, which pages them back in from the file (MADV_PAGEOUT, Linux 5.4)."""
    try:
        libc = ct.CDLL("libc.so.6", use_errno=True)
        libc.malloc_trim(ct.c_size_t(0))
    except (OSError, AttributeError):  # not glibc: nothing to ask
        return
    libc.madvise.argtypes = (ct.c_void_p, ct.c_size_t, ct.c_int)
    for start, end in _mapped_ranges(("libLLVM", "libclang")):
        libc.madvise(ct.c_void_p(start), ct.c_size_t(end - start), MADV_PAGEOUT)  # best effort


MADV_PAGEOUT = 21


def _mapped_ranges(names: tuple[str, ...]) -> list[tuple[int, int]]:
    """This process's mappings of files whose names contain one of `names`."""
    out: list[tuple[int, int]] = []
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and any(n in parts[5].rsplit("/", 1)[-1] for n in names):
            lo, _, hi = parts[0].partition("-")
            out.append((int(lo, 16), int(hi, 16)))
    return out
