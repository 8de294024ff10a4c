"""The C workloads: compiled with gcc on first use, run as subprocesses.

Compiled rather than written in Python so that the loop is all syscalls: an
interpreter between syscalls would hide the monitor's cost in its own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

BENCH_DIR = Path(__file__).resolve().parent
SOURCES = {"rw-bench-loop": BENCH_DIR / "c" / "loops.c", "rw-bench-gen": BENCH_DIR / "c" / "gen.c",
           "rw-bench-flood": BENCH_DIR / "c" / "flood.c"}


def build(name: str, build_dir: Path) -> Path:
    """The binary for SOURCES[name], rebuilt when its source changes."""
    src = SOURCES[name]
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    out = build_dir / f"{name}-{digest}"
    if out.exists():
        return out
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BenchError("gcc not found: install Debian's gcc (scripts/setup-test-extras.sh does)")
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    res = subprocess.run(
        [gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp), str(src)],
        capture_output=True, text=True, check=False,
    )
    if res.returncode != 0:
        raise BenchError(f"{src}: gcc failed:\n{res.stderr.strip()}")
    tmp.rename(out)
    return out


def _json_line(cmd: list[str], stdout: str, keys: tuple[str, ...]) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    try:
        data: Any = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise BenchError(f"{' '.join(cmd)}: expected a JSON line with {', '.join(keys)}, got {stdout!r}")
    return data


@dataclass(frozen=True)
class LoopResult:
    op: str
    iterations: int
    elapsed_ns: int

    @property
    def ns_per_iter(self) -> float:
        return self.elapsed_ns / self.iterations


def run_loop(binary: Path, op: str, iterations: int, path: str | None = None) -> LoopResult:
    cmd = [str(binary), op, str(iterations), *([path] if path else [])]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()}")
    data = _json_line(cmd, res.stdout, ("op", "iterations", "elapsed_ns"))
    return LoopResult(str(data["op"]), int(data["iterations"]), int(data["elapsed_ns"]))


@dataclass(frozen=True)
class GenResult:
    mode: str
    target_ops_per_s: float
    ops: int
    elapsed_ns: int
    pid: int

    @property
    def ops_per_s(self) -> float:
        return self.ops / (self.elapsed_ns / 1e9)


def start_gen(
    binary: Path, mode: str, ops_per_s: float, seconds: float, path: str | None
) -> subprocess.Popen[str]:
    cmd = [str(binary), mode, f"{ops_per_s:.1f}", f"{seconds:g}", *([path] if path else [])]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_gen(proc: subprocess.Popen[str]) -> GenResult:
    out, err = proc.communicate()
    cmd = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()}")
    d = _json_line(cmd, out, ("mode", "target_ops_per_s", "ops", "elapsed_ns", "pid"))
    return GenResult(str(d["mode"]), float(d["target_ops_per_s"]), int(d["ops"]),
                     int(d["elapsed_ns"]), int(d["pid"]))
