"""Running ringwatch for the benchmark and reading what it says about itself."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.daemons import MonitorSpec
from bench.errors import BenchError

# Kernel drop reasons that mean a whole record never reached userspace. The other
# reasons (argv truncated, ...) count records delivered incomplete, not lost.
# monitor.records.RECORD_LOST is the source of truth once it exists.
_LOST_FALLBACK = frozenset({"ringbuf_full", "pending_full", "exit_no_enter"})


def lost_reasons() -> frozenset[str]:
    try:
        from monitor.kernel.records import RECORD_LOST  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return _LOST_FALLBACK
    return frozenset(r.name.lower() for r in RECORD_LOST)


def _is_event(line: str, name: str) -> bool:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(entry, dict) and entry.get("event") == name


def spec(
    python: str, config: Path, record: Path | None = None, rules: tuple[Path, ...] = (),
    keep_stdout: bool = False,
) -> MonitorSpec:
    """`ringwatch run` with JSON logs; what it writes on stdout (alerts, by default) goes
    to /dev/null (the default output a service sends to the journal, and the journal is
    not under test), or with keep_stdout to a file (RunningMonitor.stdout_path)."""
    argv = [python, "-m", "monitor", "--log-json", "run", "--config", str(config)]
    if record is not None:
        argv += ["--record", str(record)]
    for r in rules:
        argv += ["--rules", str(r)]
    return MonitorSpec(
        name="ringwatch",
        argv=argv,
        ready_stream="stderr",
        is_ready=lambda line: _is_event(line, "ready"),
        keep_stdout=keep_stdout,
    )


def log_entry(stderr: str, event: str) -> dict[str, Any] | None:
    """The last JSON log line with this event name."""
    found = None
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found = entry
    return found


def _int_dict(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
        raise BenchError(f"ringwatch 'stopped' log: {where}: expected a mapping of counts, got {value!r}")
    return {str(k): int(v) for k, v in value.items()}


def losses(stopped: Mapping[str, Any]) -> dict[str, int]:
    """Every record lost, by where, from ringwatch's 'stopped' log line: kernel drops of
    whole records, decode errors, and any output's dropped/errors counts."""
    if "drops" not in stopped:
        raise BenchError(f"ringwatch 'stopped' log has no drops: {dict(stopped)!r}")
    drops = _int_dict(stopped["drops"], "drops")
    out = {f"kernel.{r}": drops.get(r, 0) for r in sorted(lost_reasons())}
    out["decode_errors"] = int(stopped.get("decode_errors", 0))
    outputs = stopped.get("outputs")
    if isinstance(outputs, dict):
        for name, st in outputs.items():
            if isinstance(st, dict):
                for key in ("dropped", "errors"):
                    if isinstance(st.get(key), int):
                        out[f"output.{name}.{key}"] = st[key]
    return out


def stats(socket: Path) -> dict[str, Any] | None:
    """`ringwatch stats` from a running instance, or None if it has no control socket."""
    try:
        from monitor.service import control
    except ImportError:
        return None
    try:
        snap = control.request(socket, "stats", timeout=5.0)
    except Exception:  # ControlError; an older daemon without the socket is not an error
        return None
    return snap if isinstance(snap, dict) else None


def stats_losses(snap: Mapping[str, Any]) -> dict[str, int]:
    """Whole records lost, from a `ringwatch stats` snapshot, keyed like losses()."""
    drops = snap.get("drops", {})
    out: dict[str, int] = {}
    for where in ("kernel", "userspace"):
        section = drops.get(where, {}) if isinstance(drops, dict) else {}
        for k, v in (section.items() if isinstance(section, dict) else ()):
            if isinstance(v, int):
                out[f"kernel.{k}" if where == "kernel" else str(k)] = v
    return out


def merge_losses(*counts: Mapping[str, int]) -> dict[str, int]:
    """Per key, the largest of several readings of the same cumulative counters."""
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = max(out.get(k, 0), v)
    return out


def delivered_total(stopped: Mapping[str, Any]) -> int:
    return sum(_int_dict(stopped.get("delivered", {}), "delivered").values())


def count_events(
    lines: Iterable[bytes], field: str, value: int, types: frozenset[str]
) -> int:
    """Events in a JSON-lines record whose `field` is `value` and whose evt.type is one of
    `types`. A record of millions of events must be counted in seconds: lines that cannot
    contain the value are skipped unparsed, and lines in ringwatch's compact format that
    plainly match are counted unparsed; anything else is parsed."""
    needle = str(value).encode()
    kv = _compact(field, value)
    fast_field = (kv + b",", kv + b"}")
    fast_types = tuple(_compact("evt.type", t) for t in types)
    n = 0
    for line in lines:
        if needle not in line or not line.endswith(b"\n"):
            continue
        if any(f in line for f in fast_field) and any(t in line for t in fast_types):
            n += 1
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict) and ev.get(field) == value and ev.get("evt.type") in types:
            n += 1
    return n


def _compact(key: str, value: object) -> bytes:
    """`"key":value` as ringwatch's JSON-lines writer renders it (no spaces)."""
    return json.dumps({key: value}, separators=(",", ":"), ensure_ascii=False)[1:-1].encode()


def count_events_in(path: Path, field: str, value: int, types: frozenset[str]) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return count_events(fh, field, value, types)
