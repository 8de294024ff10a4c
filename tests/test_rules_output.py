"""Output templates and the alert record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monitor.events.catalog import FIELD_TYPES
from monitor.rules.names import FieldNames
from monitor.rules.output import OutputTemplate, TemplateError
from tests.rules_util import exec_event, load_text

NAMES = FieldNames.from_types(FIELD_TYPES)


def render(template: str, event: dict[str, object]) -> str:
    return OutputTemplate.parse(template, NAMES).render(event)


def test_fields_render_and_missing_is_na() -> None:
    ev = {"proc.name": "bash", "user.uid": 0, "evt.failed": False}
    assert render("shell %proc.name uid=%user.uid failed=%evt.failed exe=%proc.exe", ev) == (
        "shell bash uid=0 failed=false exe=<NA>"
    )
    assert render("nothing at all %proc.name", {}) == "nothing at all <NA>"


def test_lists_indexes_and_punctuation() -> None:
    ev = {"proc.aname": ["sh", "sshd", "systemd"], "proc.name": "sh"}
    want = "a=sh,sshd,systemd a1=sshd a5=<NA>"
    assert render("a=%proc.aname a1=%proc.aname[1] a5=%proc.aname[5]", ev) == want
    assert render("(%proc.name).", ev) == "(sh)."
    assert render("100% of %proc.name%", ev) == "100% of sh%"
    assert render("x %proc.name.as_lower", ev) == "x sh.as_lower"


def test_template_errors() -> None:
    with pytest.raises(TemplateError, match=r"unknown field %proc\.nope"):
        OutputTemplate.parse("x %proc.nope", NAMES)
    with pytest.raises(TemplateError, match=r"%proc\.name is not a list"):
        OutputTemplate.parse("x %proc.name[1]", NAMES)
    assert OutputTemplate.parse("%proc.name %user.uid %proc.name", NAMES).fields == ("proc.name", "user.uid")


RULE = """
- rule: Shell
  condition: evt.type == "execve"
  output: "shell %proc.name by %user.name under %proc.pname (%proc.exe)"
  priority: warning
  tags: [process, mitre_execution]
"""


def test_alert_record(tmp_path: Path) -> None:
    rs = load_text(tmp_path, RULE)
    ev = exec_event(
        proc__pname="nginx",
        # [0] is the process itself, as Falco indexes them; the alert's ancestors follow it.
        proc__aname=["bash", "nginx", "systemd"],
        proc__apid=[100, 50, 1],
        proc__aexepath=["/usr/bin/bash", "/usr/sbin/nginx", "/lib/systemd/systemd"],
        proc__exe=None,
    )
    (a1,) = rs.alerts(ev)
    (a2,) = rs.alerts(ev)
    d = json.loads(json.dumps(a1.to_dict()))
    # ids: a per-ruleset random prefix (128 bits) and a counter, unique across loads
    assert d["id"] != a2.id and re.fullmatch(r"[0-9a-f]{32}-[0-9]+", d["id"])
    (a3,) = load_text(tmp_path, RULE).alerts(ev)
    assert a3.id.split("-")[0] != a1.id.split("-")[0]
    assert d["time"] == "2026-01-01T00:00:00.000000000Z"
    assert d["host"] == rs.host and d["host"]
    assert (d["rule"], d["priority"], d["tags"], d["action"]) == (
        "Shell",
        "WARNING",
        ["process", "mitre_execution"],
        "alert",
    )
    assert d["output"] == "shell bash by root under nginx (<NA>)"
    assert d["output_fields"] == {
        "proc.name": "bash",
        "user.name": "root",
        "proc.pname": "nginx",
        "proc.exe": None,
    }
    assert d["process"]["pid"] == 100 and d["process"]["name"] == "bash" and d["process"]["uid"] == 0
    assert d["ancestors"] == [
        {"pid": 50, "name": "nginx", "exe": "/usr/sbin/nginx"},
        {"pid": 1, "name": "systemd", "exe": "/lib/systemd/systemd"},
    ]
    assert d["event"] == ev


def test_alert_ancestors_fall_back_to_parent(tmp_path: Path) -> None:
    rs = load_text(tmp_path, RULE)
    (alert,) = rs.alerts(exec_event(proc__pname="cron", proc__pexepath="/usr/sbin/cron"))
    assert alert.to_dict()["ancestors"] == [{"pid": 1, "name": "cron", "exe": "/usr/sbin/cron"}]
    (alert,) = rs.alerts({"evt.type": "execve"})
    assert alert.to_dict()["ancestors"] == [] and alert.output == "shell <NA> by <NA> under <NA> (<NA>)"


def test_alert_ancestors_of_uneven_or_odd_lists(tmp_path: Path) -> None:
    """A replayed event is input: lists of different lengths pair up with nulls, a
    non-list counts as none (then the parent's own fields stand in)."""
    rs = load_text(tmp_path, RULE)
    (alert,) = rs.alerts(exec_event(proc__apid=[100, 50, 1], proc__aname=["bash", "nginx"],
                                    proc__aexepath="not a list"))
    assert alert.to_dict()["ancestors"] == [{"pid": 50, "name": "nginx", "exe": None},
                                            {"pid": 1, "name": None, "exe": None}]
    (alert,) = rs.alerts(exec_event(proc__apid=7, proc__aname=None, proc__aexepath={"x": 1},
                                    proc__pname="cron", proc__pexepath="/usr/sbin/cron"))
    assert alert.to_dict()["ancestors"] == [{"pid": 1, "name": "cron", "exe": "/usr/sbin/cron"}]


def test_plain_template_fast_render_equals_the_general_loop() -> None:
    """A template of plain references renders through one str.format pattern: braces in
    its text, lists, booleans, missing fields render as the part-by-part loop does."""
    from monitor.rules.output import FieldRef, OutputTemplate, render_value

    parts = ("a{b} ", FieldRef("fd.name", None), " }{ {0} ", FieldRef("proc.aname", None), "%",
             FieldRef("evt.failed", None), FieldRef("user.name", None))
    fast = OutputTemplate("t", parts)
    assert fast._pattern is not None  # the fast path is the one under test
    indexed = OutputTemplate("t", (*parts, FieldRef("proc.aname", 1)))
    assert indexed._pattern is None
    ev = {"fd.name": "/etc/{shadow}", "proc.aname": ["bash", "sshd"], "evt.failed": True}
    loop = "".join(p if isinstance(p, str) else render_value(ev.get(p.field)) for p in parts)
    assert fast.render(ev) == loop == "a{b} /etc/{shadow} }{ {0} bash,sshd%true<NA>"
    assert indexed.render(ev) == loop + "sshd"
    twice = OutputTemplate("t", (FieldRef("fd.name", None), " ", FieldRef("user.uid", None), " ",
                                 FieldRef("fd.name", None)))
    assert twice.values(ev) == {"fd.name": "/etc/{shadow}", "user.uid": None}
    assert list(twice.values(ev)) == ["fd.name", "user.uid"]
