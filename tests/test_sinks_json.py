"""The outputs' JSON: orjson writes exactly what the standard library encoder writes.

monitor.sinks.base.dumps() encodes with orjson and falls back to json's encoder for what
orjson refuses. Both must give the same bytes (a float's exponent aside: 1e-7 for
1e-07, the same number), or a consumer (and `replay`) would see records change shape
with the encoder that happened to write them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from monitor import paths
from monitor.events.catalog import FIELD_TYPES
from monitor.rules import RuleSources, load
from monitor.sinks import base
from monitor.sinks.file import JsonlFileSink

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "exec_events.jsonl"


def _recorded() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def _alerts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rules = load(RuleSources(default_dir=paths.rules_dir(), fields=FIELD_TYPES))
    fixture_rules = load(RuleSources(paths=(FIXTURE.parent / "exec_rules.yaml",), defaults=False,
                                     allow_unsafe=True, fields=FIELD_TYPES))
    out = [a.to_dict() for rs in (rules, fixture_rules) for ev in events for a in rs.alerts(ev)]
    assert out, "the fixture raises no alert: nothing compared"
    return out


@dataclasses.dataclass
class _Point:
    x: int


ODD_VALUES: list[Any] = [
    "", "plain", "naïve ünïcode ✓", "tab\tnew\nline\"quote\\", "\x00\x1f\x7f", "\u2028\u2029",
    0, -1, 2**63 - 1, -(2**63), 2**64 - 1, True, False, None, 1.5, -0.0, 1e-07, 1e22, 123456.789,
    [], [1, "a", None], (1, 2), {"nested": {"k": [1, {"d": "e"}]}},
    uuid.UUID(int=7), datetime.datetime(2026, 12, 1, 16, 25, tzinfo=datetime.UTC), _Point(3),
]


def test_events_and_alerts_encode_byte_for_byte_as_the_standard_encoder() -> None:
    events = _recorded()
    records = events + _alerts(events)
    for rec in records:
        assert base.dumps(rec) == base._ENCODE(rec), rec.get("evt.type") or rec.get("rule")
        assert base.dumps_bytes(rec) == base._ENCODE(rec).encode()
        assert base.dumps_line(rec) == base._ENCODE(rec).encode() + b"\n"


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_values_encode_as_the_standard_encoder(value: Any) -> None:
    rec = {"evt.type": "openat", "value": value}
    if isinstance(value, float) and "e" in repr(value):
        # The one difference: orjson spells exponents without padding (1e-7, not 1e-07).
        assert json.loads(base.dumps(rec)) == json.loads(base._ENCODE(rec))
        return
    assert base.dumps(rec) == base._ENCODE(rec)


@pytest.mark.parametrize("value", ["/tmp/\udcff\udcfe", 2**64, -(2**63) - 1], ids=repr)
def test_what_orjson_refuses_falls_back(value: Any) -> None:
    """A path of invalid UTF-8 (surrogateescape), an integer beyond 64 bits."""
    rec = {"fd.name": value}
    assert base._FAST is not None, "orjson is a dependency: pip installs it (the .deb leaves it out)"
    with pytest.raises(TypeError):
        base._FAST(rec, default=str, option=base._FAST_OPTIONS)
    assert base.dumps(rec) == base._ENCODE(rec)
    # A file line: the fallback's text, a lone surrogate written back as its byte.
    assert base.dumps_line(rec) == (base._ENCODE(rec) + "\n").encode("utf-8", "surrogateescape")


def test_without_orjson_json_encodes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Debian package runs (it ships no compiled module)."""
    monkeypatch.setattr(base, "_FAST", None)
    events = _recorded()
    for rec in [*events, {"fd.name": "/tmp/\udcff"}]:
        assert base.dumps(rec) == base._ENCODE(rec)
    assert base.dumps_bytes(events[0]) == base._ENCODE(events[0]).encode()
    assert base.dumps_line({"fd.name": "/tmp/\udcff"}) == b'{"fd.name":"/tmp/\xff"}\n'


def test_non_string_keys_fall_back() -> None:
    rec: dict[Any, Any] = {"a": {1: "x", None: "y"}}
    assert base.dumps(rec) == base._ENCODE(rec) == '{"a":{"1":"x","null":"y"}}'


def test_a_path_of_invalid_utf8_reaches_the_file_as_its_bytes(tmp_path: Path) -> None:
    raw = b"/tmp/\xff\xfeevil"
    name = raw.decode("utf-8", "surrogateescape")
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    sink.emit({"fd.name": name})
    sink.emit_batch([{"fd.name": name}, {"fd.name": "/etc/ok"}])
    sink.close()
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert lines == [b'{"fd.name":"' + raw + b'"}'] * 2 + [b'{"fd.name":"/etc/ok"}']
    assert sink.stats()["written"] == 3 and sink.stats()["errors"] == 0
