"""The offline replay rate, from bench/replay_rate.py (the rules engine's own script).

That script is optional here: until it exists the report says so rather than failing.
Its last stdout line is read as JSON (an object with "events_per_s"), or else as text
holding a number before "events/s".
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "replay_rate.py"
_RATE = re.compile(r"([0-9][0-9_,]*(?:\.[0-9]+)?)\s*events?/s")


def parse_rate(stdout: str) -> float | None:
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("events_per_s"), int | float):
        return float(data["events_per_s"])
    for line in reversed(lines):
        m = _RATE.search(line)
        if m:
            return float(m.group(1).replace(",", "").replace("_", ""))
    return None


def run(python: str, timeout: float = 900) -> dict[str, Any]:
    if not SCRIPT.exists():
        return {"status": "absent", "note": f"{SCRIPT} does not exist yet"}
    cmd = [python, str(SCRIPT)]
    try:
        res = subprocess.run(cmd, cwd=SCRIPT.parent.parent, capture_output=True, text=True,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "error", "note": f"{' '.join(cmd)} ran over {timeout:g}s"}
    rate = parse_rate(res.stdout)
    if res.returncode != 0 or rate is None:
        return {"status": "error", "returncode": res.returncode,
                "note": (res.stderr or res.stdout).strip()[-1500:]}
    out: dict[str, Any] = {"status": "ok", "events_per_s": rate, "output": res.stdout.strip()[-1500:]}
    try:
        last = json.loads(res.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        last = None
    if isinstance(last, dict):
        out["details"] = last
    return out
