"""Metrics without a kernel: config checks and the snapshot-to-families mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import config
from monitor.errors import ConfigError
from monitor.service import metrics


def test_off_by_default_on_loopback() -> None:
    cfg = config.Config()
    assert cfg.metrics.enabled is False
    assert metrics.parse_address(cfg.metrics.address) == ("127.0.0.1", 9376)
    assert metrics.parse_address("[::1]:9100") == ("::1", 9100)


@pytest.mark.parametrize(("address", "error"), [
    ("localhost", r"c\.yaml: metrics\.address: expected HOST:PORT"),
    ("127.0.0.1:http", r"metrics\.address: port must be a number"),
    ("127.0.0.1:70000", r"metrics\.address: port must be 0\.\.65535"),
])
def test_bad_address_names_the_key(tmp_path: Path, address: str, error: str) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(f"metrics:\n  enabled: true\n  address: '{address}'\n")
    with pytest.raises(ConfigError, match=error):
        config.load(bad)


def test_unknown_counter_is_still_exported() -> None:
    fams = metrics.families({"uptime_s": 1.0, "newsection": {"widgets": 7}})
    assert fams.unmapped == [("newsection", "widgets")]
    (sample,) = fams.metrics["ringwatch_stats_value"].samples
    assert sample.labels == {"path": "newsection.widgets"} and sample.value == 7


def test_output_losses_sum_into_records_lost() -> None:
    snap = {"drops": {"records_lost": 5, "kernel": {"ringbuf_full": 2},
                      "userspace": {"decode_errors": 0, "output.a.dropped": 1, "output.b.dropped": 2,
                                    "output.a.errors": 0}}}
    fams = metrics.families(snap)
    lost = {s.labels["reason"]: s.value for s in fams.metrics["ringwatch_records_lost"].samples}
    assert lost == {"ringbuf_full": 2, "decode_error": 0, "output_dropped": 3, "output_error": 0}
    assert sum(lost.values()) == snap["drops"]["records_lost"]
    assert fams.unmapped == []


def test_kafka_output_and_enforcement_sections_are_all_named() -> None:
    """Sections the kernel test cannot produce on this host (no broker there, no BPF LSM)."""
    from monitor.enforce.kmaps import STAT_NAMES

    kafka = {"written": 5, "errors": 0, "send_failures": 1, "dropped": 2, "queue_dropped": 1,
             "spool_dropped": 1, "spool_dropped_total": 3, "queued": 4, "spooled": 6,
             "spooled_bytes": 600, "spooled_total": 9}
    enforcement = {"active": True, "rules": 2, "exec_keys": 1, "open_keys": 1, "v4_keys": 0, "v6_keys": 0,
                   "exceptions": 0, "kernel": {name: 1 for name in STAT_NAMES}}
    fams = metrics.families({"outputs": {"kafka-alerts": kafka}, "enforcement": enforcement})
    assert fams.unmapped == []
    spooled = fams.metrics["ringwatch_output_spooled_records"].samples
    assert [(s.labels, s.value) for s in spooled] == [({"output": "kafka-alerts"}, 6)]
    decisions = {s.labels["outcome"] for s in fams.metrics["ringwatch_enforcement_decisions"].samples}
    assert decisions == set(STAT_NAMES)
