"""Journal sink against a real systemd-journald, read back with journalctl."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from monitor.rules.alert import Alert
from monitor.sinks.journal import JournalSink, encode, journal_priority, stdout_is_journal
from tests.journald import PrivateJournald, journald

__all__ = ["journald"]  # the fixture, imported for pytest


def alert(i: int, priority: str, rule: str = "Shell in container") -> dict[str, Any]:
    """An alert as the rules engine makes it: its event nested under "event"."""
    event = {"evt.type": "execve", "evt.failed": False, "proc.pid": 4000 + i,
             "proc.name": "bash", "proc.exe": "/bin/bash", "proc.argv": ["bash", "-i"],
             "user.name": "root"}
    a = Alert.build(rule=rule, priority=priority, tags=["shell", "mitre_execution"],
                    action="alert", output=f"Shell spawned\n(user=root pid={4000 + i})",
                    output_fields={"proc.pid": 4000 + i}, event=event, host="h1")
    a.id = f"al-{i}"
    return a.to_dict()


def test_priority_fields_and_json_read_back(journald: PrivateJournald) -> None:
    sink = JournalSink(journald.socket_path)
    prios = ["EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE",
             "INFORMATIONAL", "DEBUG"]
    for i, p in enumerate(prios):
        sink.emit(alert(i, p, rule=f"Rule {p.lower()}"))
    assert sink.stats() == {"written": 8, "errors": 0, "large": 0}

    everything = journald.wait_for(8, "SYSLOG_IDENTIFIER=ringwatch")
    assert len(everything) == 8
    by_id = {e["RINGWATCH_ALERT_ID"]: e for e in everything}
    for i, p in enumerate(prios):
        e = by_id[f"al-{i}"]
        assert e["PRIORITY"] == str(i)
        assert e["RINGWATCH_RULE"] == f"Rule {p.lower()}"
        assert e["RINGWATCH_PID"] == str(4000 + i)
        assert e["RINGWATCH_PROC_NAME"] == "bash"
        assert e["RINGWATCH_TAGS"] == "shell,mitre_execution"
        assert e["RINGWATCH_EVT_FAILED"] == "false"
        # The summary is one readable line; the newline in the output went away.
        assert e["MESSAGE"] == f"{p} Rule {p.lower()}: Shell spawned (user=root pid={4000 + i})"
        assert e["RINGWATCH_PROC_EXE"] == "/bin/bash" and e["RINGWATCH_HOST"] == "h1"
        assert json.loads(e["RINGWATCH_JSON"]) == alert(i, p, rule=f"Rule {p.lower()}")

    warn_up = journald.read("SYSLOG_IDENTIFIER=ringwatch", priority="warning")
    assert sorted(e["RINGWATCH_ALERT_ID"] for e in warn_up) == [f"al-{i}" for i in range(5)]
    one = journald.read("RINGWATCH_RULE=Rule critical")
    assert [e["RINGWATCH_ALERT_ID"] for e in one] == ["al-2"]
    sink.close()


def test_record_larger_than_a_datagram_goes_by_memfd(journald: PrivateJournald) -> None:
    sink = JournalSink(journald.socket_path)
    big = alert(99, "WARNING")
    big["event"]["proc.args"] = "A" * 400_000  # over the socket's datagram limit
    sink.emit(big)
    assert sink.stats() == {"written": 1, "errors": 0, "large": 1}
    found = journald.wait_for(1, "RINGWATCH_ALERT_ID=al-99")
    assert len(found) == 1
    assert json.loads(found[0]["RINGWATCH_JSON"])["event"]["proc.args"] == "A" * 400_000
    sink.close()


def test_unreachable_journal_is_counted(tmp_path: Path) -> None:
    sink = JournalSink(tmp_path / "no-such-socket")
    sink.emit(alert(1, "WARNING"))
    assert sink.stats() == {"written": 0, "errors": 1, "large": 0}


def test_priority_mapping_and_binary_encoding() -> None:
    assert [journal_priority(p) for p in ("emergency", "Warning", "INFO", "DEBUG")] == [0, 4, 6, 7]
    assert journal_priority(None) == 6 and journal_priority("bogus") == 6
    data = encode([("MESSAGE", "a"), ("X", "two\nlines")])
    assert data == b"MESSAGE=a\nX\n" + (9).to_bytes(8, "little") + b"two\nlines\n"


def test_stdout_is_journal_matches_device_and_inode(tmp_path: Path) -> None:
    f = tmp_path / "stream"
    f.write_text("")
    with open(f) as fh:
        st = os.fstat(fh.fileno())
        assert stdout_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, fh.fileno())
        assert not stdout_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"},
                                     fh.fileno())
        assert not stdout_is_journal({}, fh.fileno())


def test_flat_record_fields_and_pid(journald: PrivateJournald) -> None:
    sink = JournalSink(journald.socket_path, identifier="ringwatch-test")
    sink.emit({"id": "flat-1", "rule": "Flat", "priority": "NOTICE", "output": "o",
               "proc.pid": 77})
    (e,) = journald.wait_for(1, "SYSLOG_IDENTIFIER=ringwatch-test")
    assert (e["RINGWATCH_PID"], e["PRIORITY"], e["MESSAGE"]) == ("77", "5", "NOTICE Flat: o")
    sink.close()
