"""Names and locked memory of BPF maps, as `bpftool -j map show` reports them."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError


@dataclass(frozen=True)
class MapInfo:
    id: int
    name: str
    type: str
    max_entries: int
    bytes_memlock: int


def parse_map_show(text: str) -> dict[int, MapInfo]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(f"bpftool -j map show: not JSON ({exc})") from exc
    if not isinstance(data, list):
        raise BenchError("bpftool -j map show: expected a JSON list")
    out: dict[int, MapInfo] = {}
    for i, m in enumerate(data):
        try:
            out[int(m["id"])] = MapInfo(
                id=int(m["id"]),
                name=str(m.get("name", "")),
                type=str(m.get("type", "")),
                max_entries=int(m.get("max_entries", 0)),
                bytes_memlock=int(m.get("bytes_memlock", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BenchError(f"bpftool -j map show: entry {i}: {exc!r}") from exc
    return out


def map_show() -> dict[int, MapInfo]:
    tool = shutil.which("bpftool")
    if tool is None:
        raise BenchError("bpftool not found: install Debian's bpftool (scripts/setup.sh does)")
    res = subprocess.run([tool, "-j", "map", "show"], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"bpftool -j map show failed: {res.stderr.strip()}")
    return parse_map_show(res.stdout)
