"""Fuzzing as tests: random and mutated inputs, a fixed seed, a bounded number of cases.

What an attacker controls reaches three parsers: the record decoder (a record's bytes
come from the kernel, but its strings and lengths from whatever the traced process
passed), the rules loader and the config loader (files an operator may be tricked into
loading). Each case must end in a value or in the parser's own clean error (DecodeError,
a rules Problem, ConfigError), never in another exception. Seeds are fixed so a failure
reproduces; RINGWATCH_FUZZ_SEED picks another run, RINGWATCH_FUZZ_SCALE more cases.
"""

from __future__ import annotations

import ctypes as ct
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor import config
from monitor.errors import UserError
from monitor.events.decode import Decode
from monitor.events.enrich import Enrich
from monitor.kernel import records
from monitor.kernel.records import DecodeError, RecordType
from monitor.rules import check
from monitor.stage import Item
from tests.monitor_proc import REPO
from tests.rules_util import EXEC_RULES, sources

SEED = int(os.environ.get("RINGWATCH_FUZZ_SEED", "20261201"))
SCALE = int(os.environ.get("RINGWATCH_FUZZ_SCALE", "1"))
SIZES = records._SIZES  # the decoder's own idea of each record's size

CONTROL = [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 0x7F, 0x85, 0xFFFE)]


# -- records -------------------------------------------------------------------------------
def _record_bytes(rng: random.Random) -> bytes:
    kind = rng.choice(list(RecordType))
    size = SIZES[kind]
    style = rng.random()
    if style < 0.3:  # all random
        data = bytearray(rng.randbytes(size))
    else:  # plausible: zeros and small numbers, then a few bytes mutated
        data = bytearray(size)
        for _ in range(rng.randint(1, 40)):
            pos = rng.randrange(size)
            data[pos] = rng.choice((0, 1, 2, 0x2F, 0x41, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    rtype = kind.value if rng.random() < 0.9 else rng.randrange(1 << 32)
    data[0:4] = rtype.to_bytes(4, "little")
    cut = rng.random()
    if cut < 0.1:  # short records
        return bytes(data[: rng.randrange(size)])
    if cut < 0.15:  # longer ones
        return bytes(data) + rng.randbytes(rng.randrange(64))
    return bytes(data)


def test_the_record_decoder_and_event_decoding_never_crash() -> None:
    rng = random.Random(SEED)
    decode, enrich = Decode(), Enrich()
    decoded = refused = 0
    for case in range(3000 * SCALE):
        raw = _record_bytes(rng)
        buf = ct.create_string_buffer(raw, max(len(raw), 1))
        try:
            rec = records.decode(ct.addressof(buf), len(raw))
        except DecodeError:
            refused += 1
            continue
        try:
            item = Item(rec)
            decode(item)
            enrich(item)
        except Exception as exc:  # pragma: no cover - the failure report
            pytest.fail(f"case {case} (seed {SEED}): event decoding raised {repr(exc)[:300]} "
                        f"for {raw.hex()}")
        decoded += 1
    assert decoded > 1000 and refused > 100, (decoded, refused)  # both paths exercised


# -- text mutations --------------------------------------------------------------------------
def _mutate(rng: random.Random, text: str) -> str:
    ops: list[Callable[[str], str]] = [
        lambda t: _at(rng, t, rng.choice(CONTROL)),
        lambda t: _at(rng, t, rng.choice("[]{}:,-&*!|>'\"#%@`\n ")),
        lambda t: _cut(rng, t),
        lambda t: _dup(rng, t),
        lambda t: _at(rng, t, "[" * rng.randint(100, 3000)),
        lambda t: _at(rng, t, "(" * rng.randint(50, 500) + "x" + ")" * rng.randint(0, 500)),
        lambda t: _at(rng, t, "x" * rng.randint(10_000, 300_000)),
        lambda t: _at(rng, t, rng.choice(["&a", "*a", "<<: *a", "!!python/object:os.system", "? [a]",
                                          "2020-13-45", "0x" + "f" * 40, "1e999", "!!binary x",
                                          "%YAML 1.1\n---", "..."])),
        lambda t: t.replace("proc.name", rng.choice(["proc.nmae", "proc", "evt.type.x", "(", "=~"]), 1),
    ]
    for _ in range(rng.randint(1, 4)):
        text = rng.choice(ops)(text)
    return text


def _at(rng: random.Random, text: str, piece: str) -> str:
    pos = rng.randrange(len(text) + 1)
    return text[:pos] + piece + text[pos:]


def _cut(rng: random.Random, text: str) -> str:
    a = rng.randrange(len(text) + 1)
    return text[:a] + text[a + rng.randrange(200):]


def _dup(rng: random.Random, text: str) -> str:
    a = rng.randrange(len(text) + 1)
    return text[:a] + text[a: a + rng.randrange(400)] * rng.randint(2, 5) + text[a:]


def _write(rng: random.Random, path: Path, text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:  # not UTF-8
        data = data[: len(data) // 2] + b"\xff\xfe" + data[len(data) // 2:]
    path.write_bytes(data)


def test_the_rules_loader_never_crashes(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    base = EXEC_RULES.read_text()
    path = tmp_path / "fuzz.yaml"
    outcomes = {"loaded": 0, "problems": 0}
    for case in range(120 * SCALE):
        text = _mutate(rng, base)
        _write(rng, path, text)
        try:
            ruleset, problems = check(sources(path))
        except Exception as exc:  # pragma: no cover - the failure report
            (tmp_path / f"crash-{case}.yaml").write_bytes(path.read_bytes())
            pytest.fail(f"case {case} (seed {SEED + 1}): the rules loader raised {repr(exc)[:300]}; "
                        f"input kept in {tmp_path}/crash-{case}.yaml")
        assert (ruleset is None) == bool(problems)
        for p in problems:
            assert "\n" not in str(p), str(p)  # one line each
        outcomes["loaded" if ruleset is not None else "problems"] += 1
    assert outcomes["problems"] > 50, outcomes


def test_the_config_loader_never_crashes(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    base = (REPO / "packaging" / "config.yaml").read_text()
    path = tmp_path / "config.yaml"
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(150 * SCALE):
        _write(rng, path, _mutate(rng, base))
        try:
            config.load(path)
            outcomes["loaded"] += 1
        except UserError as exc:
            assert "\n" not in str(exc), str(exc)
            outcomes["refused"] += 1
        except Exception as exc:  # pragma: no cover - the failure report
            (tmp_path / f"crash-{case}.yaml").write_bytes(path.read_bytes())
            pytest.fail(f"case {case} (seed {SEED + 2}): the config loader raised {repr(exc)[:300]}; "
                        f"input kept in {tmp_path}/crash-{case}.yaml")
    assert outcomes["refused"] > 50, outcomes
