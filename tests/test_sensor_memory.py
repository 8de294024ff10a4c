"""After the compile, the sensor gives back what only bcc's compile used (monitor/kernel/sensor.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.kernel.sensor import _mapped_ranges

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import ctypes, sys
sys.path.insert(0, {repo!r})
from bcc import BPF  # loads libbcc, and with it libLLVM and libclang-cpp
BPF(text=b'int f(void *ctx) {{ return 0; }}')  # a compile: their code runs, their pages come in
from monitor.kernel.sensor import release_compiler_memory

def resident_kb():
    total, name = 0, ""
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and len(head) >= 5:
            name = head[5] if len(head) > 5 else ""
        elif head[0] == "Rss:" and ("libLLVM" in name or "libclang" in name):
            total += int(head[1])
    return total

before = resident_kb()
release_compiler_memory()
print(before, resident_kb())
"""


def test_compiler_pages_are_given_back() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO))], capture_output=True,
                         text=True, check=True, timeout=120).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before > 10_000, f"the compile touched only {before} kB of LLVM: nothing to test"
    assert after < before / 2, (before, after)


def test_mapped_ranges_names_this_process_files() -> None:
    ranges = _mapped_ranges(("python3",))
    assert ranges and all(lo < hi for lo, hi in ranges)
    assert _mapped_ranges(("no-such-library-here",)) == []
