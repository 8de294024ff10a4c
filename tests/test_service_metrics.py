"""Prometheus metrics, scraped from a running daemon over HTTP and parsed with
prometheus_client's own text parser."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from monitor.service import control, metrics
from tests.monitor_proc import REPO, RunningMonitor

pytestmark = pytest.mark.kernel

# Families a scrape of a default-config daemon must carry, whatever its load.
EXPECTED = {
    "ringwatch_build_info", "ringwatch_uptime_seconds", "ringwatch_records_produced",
    "ringwatch_events_delivered", "ringwatch_records_lost", "ringwatch_records_partial",
    "ringwatch_ringbuf_size_bytes", "ringwatch_ringbuf_fill_bytes", "ringwatch_ringbuf_fill_high_water_bytes",
    "ringwatch_kernel_filtered_opens", "ringwatch_rule_evaluations", "ringwatch_rule_matches",
    "ringwatch_rule_errors", "ringwatch_alerts", "ringwatch_output_records_written",
    "ringwatch_output_record_errors", "ringwatch_output_records_dropped", "ringwatch_output_queued_records",
    "ringwatch_reloads", "ringwatch_reload_errors", "ringwatch_control_requests",
    "ringwatch_drop_alerts", "ringwatch_lineage_entries", "ringwatch_lineage_max_entries",
    "ringwatch_lineage_evictions", "ringwatch_lineage_lookups", "ringwatch_lineage_kernel_misses",
    "ringwatch_lineage_inserts", "ringwatch_bpf_map_memlock_bytes", "ringwatch_bpf_memlock_bytes",
    "process_resident_memory_bytes",
}


@pytest.fixture
def bpffs_dir() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/rw-ops17-{uuid.uuid4().hex[:8]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def scrape(address: str) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(fams: dict[str, list[Sample]], family: str, sample: str | None = None, **labels: str) -> float:
    found = [s.value for s in fams[family] if s.name == (sample or family)
             and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{family}{labels}: {len(found)} samples in {fams[family]}"
    return found[0]


def wait_scrape(address: str, pred: object, timeout: float = 20) -> dict[str, list[Sample]]:
    deadline = time.monotonic() + timeout
    while True:
        fams = scrape(address)
        try:
            if pred(fams):  # type: ignore[operator]
                return fams
        except (KeyError, AssertionError):
            pass
        assert time.monotonic() < deadline, "scrape never showed the expected values"
        time.sleep(0.2)


def test_scrape_has_every_stats_counter_and_moves(tmp_path: Path, bpffs_dir: Path) -> None:
    marker = f"rwmet{uuid.uuid4().hex[:8]}"
    exe = tmp_path / marker
    shutil.copy("/bin/true", exe)
    rules = tmp_path / "marker.yaml"
    rules.write_text(
        "- rule: Marker ran\n"
        f'  condition: evt.type == "execve" and proc.name == "{marker}"\n'
        '  output: "marker ran (pid=%proc.pid)"\n'
        "  priority: WARNING\n"
    )
    cfg = {
        "lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": 4096},
        "enforcement": {"enabled": False},
        "metrics": {"enabled": True, "address": "127.0.0.1:0"},
    }
    mon = RunningMonitor(tmp_path / "mon", cfg, args=["--rules", str(rules)])
    with mon:
        address = mon.wait_log("metrics_listening")["address"]
        assert address.startswith("127.0.0.1:")
        before = scrape(address)
        # An alert family has samples once an alert was sent: checked after the execs.
        missing = EXPECTED - {"ringwatch_alerts"} - set(before)
        assert not missing, f"families missing from the scrape: {sorted(missing)}"

        # Every number `ringwatch stats` reports has a metric of its own (none falls
        # through to ringwatch_stats_value), judged on the live daemon's own snapshot.
        snap = control.request(mon.control_socket, "stats")
        fams = metrics.families(snap)
        assert fams.unmapped == []
        assert "ringwatch_stats_value" not in before
        for reason in snap["drops"]["kernel"]:
            value(before, "ringwatch_records_lost", "ringwatch_records_lost_total", reason=reason)
        for rule in snap["rules"]:
            value(before, "ringwatch_rule_evaluations", "ringwatch_rule_evaluations_total", rule=rule)
        assert value(before, "ringwatch_lineage_entries") > 0
        assert value(before, "ringwatch_bpf_memlock_bytes") > 0
        map_names = {s.labels["map"] for s in before["ringwatch_bpf_map_memlock_bytes"]}
        assert "procs" in map_names  # the pinned lineage map, found through bpftool

        execs = value(before, "ringwatch_records_produced", "ringwatch_records_produced_total", type="exec")
        evals = value(before, "ringwatch_rule_evaluations", "ringwatch_rule_evaluations_total",
                      rule="Marker ran")
        for _ in range(3):
            subprocess.run([str(exe)], check=True)

        def moved(f: dict[str, list[Sample]]) -> bool:
            return (value(f, "ringwatch_alerts", "ringwatch_alerts_total", rule="Marker ran",
                          priority="WARNING") == 3
                    and value(f, "ringwatch_rule_matches", "ringwatch_rule_matches_total",
                              rule="Marker ran") == 3)

        after = wait_scrape(address, moved)
        assert value(after, "ringwatch_records_produced", "ringwatch_records_produced_total",
                     type="exec") >= execs + 3
        assert value(after, "ringwatch_rule_evaluations", "ringwatch_rule_evaluations_total",
                     rule="Marker ran") >= evals + 3
        assert value(after, "ringwatch_output_records_written", "ringwatch_output_records_written_total",
                     output="stdout") >= 3
        # `rules list` beside the running instance shows its counts, in aligned columns.
        listing = subprocess.run(
            [sys.executable, "-m", "monitor", "rules", "list", "--rules", str(rules),
             "--control-socket", str(mon.control_socket)],
            cwd=REPO, capture_output=True, text=True, check=False)
        assert listing.returncode == 0, listing.stderr
        head, *lines = listing.stdout.splitlines()
        cols = {name: head.index(name) for name in ("EVALUATED", "MATCHED", "ERRORS")}
        (mine,) = [ln for ln in lines if ln.startswith("Marker ran ")]
        assert int(mine[cols["MATCHED"]:].split()[0]) == 3
        assert int(mine[cols["EVALUATED"]:].split()[0]) >= 3
        assert mine[cols["ERRORS"]:].split()[0] == "0"

        # metrics.enabled is taken over by a reload: switched off, the port closes.
        cfg["metrics"] = {"enabled": False}
        mon.config_path.write_text(yaml.safe_dump({**cfg, "control": {"socket": str(mon.control_socket)}}))
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        mon.wait_log("reloaded")
        with pytest.raises(urllib.error.URLError):
            scrape(address)
        assert mon.stop() == 0

