"""BackgroundLoad: a rules load in a thread that the main loop polls without blocking."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.rules.background import BackgroundLoad
from tests.rules_util import sources, write


def test_poll_is_none_while_the_load_blocks_then_gives_the_ruleset(tmp_path: Path) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    load = BackgroundLoad.start(sources(fifo))
    assert load.poll() is None and load.running()  # blocked in open(): nobody writes yet
    with open(fifo, "w") as fh:
        fh.write('- rule: r\n  desc: d\n  condition: proc.name == "x"\n  output: o\n  priority: INFO\n')
    result = load.wait(30)
    assert result is not None and result.problems == [] and result.ruleset is not None
    assert [r.name for r in result.ruleset.rules] == ["r"]


def test_a_failed_load_gives_its_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "- rule: r\n  desc: '\x1b'\n")
    result = BackgroundLoad.start(sources(path)).wait(30)
    assert result is not None and result.ruleset is None
    assert "control character #x001b" in str(result.problems[0])
