"""What a monitor process costs, read from /proc: CPU time, memory, BPF objects it holds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system CPU seconds since the process started
    rss_bytes: int
    hwm_bytes: int  # peak RSS


def parse_stat_cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of /proc/PID/stat."""
    # comm (field 2) is in parentheses and may hold spaces or ')': split at the last one.
    _, sep, rest = stat.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 13:
        raise BenchError(f"unparsable /proc/PID/stat: {stat[:120]!r}")
    # rest starts at field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def parse_status_kb(status: str, key: str) -> int:
    """A 'Key:  N kB' line of /proc/PID/status, in bytes."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                return int(parts[0]) * 1024
            raise BenchError(f"/proc/PID/status: {key}: unexpected value {value.strip()!r}")
    raise BenchError(f"/proc/PID/status has no {key} line")


def sample(pid: int) -> ProcSample:
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        status = (base / "status").read_text()
    except OSError as exc:
        raise BenchError(f"process {pid} is gone ({exc.strerror})") from exc
    return ProcSample(
        cpu_s=parse_stat_cpu_ticks(stat) / CLK_TCK,
        rss_bytes=parse_status_kb(status, "VmRSS"),
        hwm_bytes=parse_status_kb(status, "VmHWM"),
    )


def rss_by_mapping(pid: int) -> dict[str, int]:
    """Resident bytes per kind of mapping (/proc/PID/smaps): "bpf-map" for BPF maps the
    process has mapped (ring buffers: kernel memory, their data pages mapped twice by
    libbpf for reads across the wrap, so counted twice in RSS), "heap" and "anon" for
    its own memory, "file" for mapped files (libraries)."""
    out = {"bpf-map": 0, "heap": 0, "anon": 0, "file": 0}
    kind = "anon"
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError as exc:
        raise BenchError(f"process {pid} is gone ({exc.strerror})") from exc
    for line in text.splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:
            name = head[5] if len(head) > 5 else ""
            kind = ("bpf-map" if name == "anon_inode:bpf-map" else "heap" if name == "[heap]"
                    else "file" if name.startswith("/") else "anon")
        elif head and head[0] == "Rss:":
            out[kind] += int(head[1]) * 1024
    return out


@dataclass(frozen=True)
class BpfObject:
    kind: str  # "map", "prog" or "link"
    id: int
    memlock: int  # bytes the kernel charges for it (0 for links)
    detail: str  # link: its tracepoint name; map/prog: empty (names come from bpftool)


def parse_fdinfo(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def classify_fdinfo(info: dict[str, str]) -> BpfObject | None:
    """The BPF object behind one descriptor's fdinfo, or None if it is not one."""
    memlock = int(info.get("memlock", "0"))
    if "link_id" in info:
        return BpfObject("link", int(info["link_id"]), 0, info.get("tp_name", info.get("link_type", "")))
    if "map_id" in info:
        return BpfObject("map", int(info["map_id"]), memlock, "")
    if "prog_id" in info:
        return BpfObject("prog", int(info["prog_id"]), memlock, "")
    return None


def bpf_objects(pid: int) -> list[BpfObject]:
    """Maps, programs and links the process holds open, once each.

    Read from /proc/PID/fdinfo because Debian's bpftool is built without the pid
    column (`bpftool map show` lists no owners here).
    """
    fd_dir = Path(f"/proc/{pid}/fd")
    seen: dict[tuple[str, int], BpfObject] = {}
    try:
        fds = list(fd_dir.iterdir())
    except OSError as exc:
        raise BenchError(f"cannot list {fd_dir}: {exc.strerror}") from exc
    for fd in fds:
        try:
            if not os.readlink(fd).startswith("anon_inode:bpf"):
                continue
            info = parse_fdinfo((Path(f"/proc/{pid}/fdinfo") / fd.name).read_text())
        except OSError:
            continue  # closed between listing and reading
        obj = classify_fdinfo(info)
        if obj is not None:
            seen.setdefault((obj.kind, obj.id), obj)
    return sorted(seen.values(), key=lambda o: (o.kind, o.id))
