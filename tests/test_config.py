"""The shipped /etc/ringwatch/config.yaml documents every option; bad config names its key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import config
from tests.monitor_proc import REPO

SHIPPED = REPO / "packaging" / "config.yaml"


def _leaf_keys(cls: Any, prefix: str = "") -> set[str]:
    """Dotted keys of every config option, from the dataclasses themselves."""
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "source":  # where the config came from, not an option
            continue
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _leaf_keys(hints[f.name], key + ".")
        else:
            keys.add(key)
    return keys


def _yaml_keys(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Dotted key -> line number (0-based) of every key in the YAML document."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line
            if isinstance(v, yaml.MappingNode):
                out.update(_yaml_keys(v, key + "."))
    return out


def test_shipped_config_lists_every_option_with_a_comment() -> None:
    text = SHIPPED.read_text()
    node = yaml.compose(text)
    assert node is not None
    found = _yaml_keys(node)
    leaves = {k for k in found if not any(o.startswith(k + ".") for o in found)}
    missing = _leaf_keys(config.Config) - leaves
    assert not missing, f"document these options in {SHIPPED}: {sorted(missing)}"
    lines = text.splitlines()
    for key, line in found.items():
        above = lines[line - 1].strip() if line > 0 else ""
        assert above.startswith("#"), f"{SHIPPED}:{line + 1}: {key} has no comment above it"


def test_shipped_config_values_are_the_defaults() -> None:
    # The file is the documentation of the defaults: it must not claim different ones.
    cfg = config.load(SHIPPED)
    defaults = config.Config()
    for section in dataclasses.fields(config.Config):
        if section.name == "source":
            continue
        assert getattr(cfg, section.name) == getattr(defaults, section.name), section.name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sensor:\n  ringbuf_byte: 4096\n", r"sensor\.ringbuf_byte: unknown key"),
        ("drop_alert:\n  min_interval_s: soon\n", r"drop_alert\.min_interval_s: expected float, got str"),
        ("drop_alert:\n  enabled: 1\n", r"drop_alert\.enabled: expected bool, got int"),
        ("drop_alert:\n  check_interval_s: 0\n", r"drop_alert\.check_interval_s: must be positive"),
        ("sensor:\n  wakeup_records: 0\n", r"sensor\.wakeup_records: must be 1\.\.1048576, got 0"),
        ("sensor:\n  poll_timeout_ms: 0\n", r"sensor\.poll_timeout_ms: must be 1\.\.10000, got 0"),
        ("control:\n  socket: run/c.sock\n", r"control\.socket: must be an absolute path"),
        ("control:\n  socket: /" + "x" * 120 + "\n", r"control\.socket: longer than 107 bytes"),
        ("control: /run/x.sock\n", r"control: expected a mapping, got str"),
        ("sensor:\n  cgroups: [a, b\n", r":3:1: invalid YAML"),
        ("- just\n- a list\n", r"top level must be a mapping"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message) as err:
        config.load(path)
    assert str(err.value).startswith(str(path))


def test_set_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sensor:\n  ringbuf_bytes: 65536\n  poll_timeout_ms: 70\n")
    cfg = config.load(path, ["sensor.ringbuf_bytes=4096", "drop_alert.enabled=false",
                             "sensor.cgroups=[/sys/fs/cgroup/a]"])
    assert cfg.sensor.ringbuf_bytes == 4096
    assert cfg.sensor.poll_timeout_ms == 70  # untouched keys keep the file's value
    assert cfg.drop_alert.enabled is False
    assert cfg.sensor.cgroups == ["/sys/fs/cgroup/a"]
    assert cfg.source == f"{path} + --set"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sensor.ringbuf_bytes", r"expected KEY=VALUE"),
        ("sensor.nope=1", r"sensor\.nope: unknown key"),
        ("sensor.ringbuf_bytes=big", r"sensor\.ringbuf_bytes: expected int, got str"),
        ("sensor.ringbuf_bytes.x=1", r"sensor\.ringbuf_bytes is not a section"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sensor:\n  ringbuf_bytes: 65536\n")
    with pytest.raises(config.ConfigError, match=message):
        config.load(path, [override])


def test_run_rejects_bad_config_before_loading_anything(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("drop_alert:\n  min_interval_s: -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(path), "--set", "sensor.ringbuf_bytes=4096"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert f"{path} + --set: drop_alert.min_interval_s: must be positive, got -1.0" in proc.stderr
    path.write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(path), "--set", "control.sockt=/x"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "control.sockt: unknown key" in proc.stderr
