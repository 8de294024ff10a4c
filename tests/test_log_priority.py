"""Log lines carry syslog priority prefixes exactly when stderr is the journal stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from monitor import log

_EMIT = """
import sys
from monitor import log
log.configure("debug", json=True)
l = log.get("t")
l.debug("d"); l.info("i"); l.warning("w"); l.error("e")
"""


def _run(env: dict[str, str], stderr_path: Path) -> list[str]:
    with open(stderr_path, "wb") as err:
        subprocess.run([sys.executable, "-c", _EMIT], env={**os.environ, **env}, stderr=err,
                       check=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    return stderr_path.read_text().splitlines()


def test_prefixes_on_the_journal_stream_only(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    path.touch()
    st = path.stat()
    # JOURNAL_STREAM naming the file stderr is: the journal's case (device:inode match).
    lines = _run({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, path)
    assert [ln[:3] for ln in lines] == ["<7>", "<6>", "<4>", "<3>"], lines
    # Inherited by a process whose stderr goes elsewhere: no prefix.
    lines = _run({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, path)
    assert all(ln.startswith("{") for ln in lines), lines
    lines = _run({"JOURNAL_STREAM": ""}, path)
    assert all(ln.startswith("{") for ln in lines), lines


def test_journal_prefix_for_the_one_line_error(tmp_path: Path) -> None:
    assert log.journal_prefix("error", {}) == ""
    assert log.journal_prefix("error", {"JOURNAL_STREAM": "garbage"}) == ""
