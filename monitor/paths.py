"""Where ringwatch's data (kernel sources in bpf/, default rules in rules/) lives.

The one way every caller finds them. A source checkout or editable install keeps them next
to the package; `make install` (a non-editable install into a venv) ships them under
<venv>/share/ringwatch/, where sys.prefix finds them whatever the venv's location.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_dir(name: str, env_var: str) -> Path:
    """$env_var if set, else the source tree's `name`/, else <sys.prefix>/share/ringwatch/`name`/."""
    override = os.environ.get(env_var)
    if override:
        return Path(override)
    source = Path(__file__).resolve().parent.parent / name
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "ringwatch" / name


def bpf_dir() -> Path:
    """The kernel programs (sensor.bpf.c, lsm.bpf.c, records.h)."""
    return data_dir("bpf", "RINGWATCH_BPF_DIR")


def rules_dir() -> Path:
    """The packaged default ruleset."""
    return data_dir("rules", "RINGWATCH_RULES_DIR")
