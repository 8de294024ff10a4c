"""The benchmark harness run for real, tiny: every monitor starts, is proven attached,
and the JSON holds numbers. Timings are never asserted (that is `make bench`'s job)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import daemons, procfs, workloads
from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.kernel


def test_loop_failure_names_the_path(tmp_path: Path) -> None:
    binary = workloads.build("rw-bench-loop", tmp_path)
    missing = str(tmp_path / "no-such-file")
    with pytest.raises(BenchError, match="no-such-file: No such file"):
        workloads.run_loop(binary, "open", 3, missing)
    res = workloads.run_loop(binary, "getppid", 1000)
    assert (res.op, res.iterations) == ("getppid", 1000) and res.elapsed_ns > 0


def test_generator_never_exceeds_the_offered_rate(tmp_path: Path) -> None:
    gen = workloads.build("rw-bench-gen", tmp_path)
    target = tmp_path / "f"
    target.write_text("x")
    res = workloads.finish_gen(workloads.start_gen(gen, "open", 2000, 0.3, str(target)))
    # Pacing issues an op only when it is due: at most rate * elapsed (+1 for rounding).
    assert 0 < res.ops <= 2000 * res.elapsed_ns / 1e9 + 1


def test_floor_probe_attaches_raw_tracepoints(root: None, tmp_path: Path) -> None:
    mon = daemons.RunningMonitor(daemons.floor_spec(sys.executable), tmp_path)
    with mon:
        objs = procfs.bpf_objects(mon.pid)
        assert sorted(o.detail for o in objs if o.kind == "link") == ["sys_enter", "sys_exit"]
        assert sum(1 for o in objs if o.kind == "prog") == 2


def test_smoke_run_writes_complete_results(root: None, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    res = subprocess.run(
        [sys.executable, "-m", "bench", "--preset", "smoke", "--out", str(out),
         # Replay is the rules engine's script, sized for `make bench`, not for a smoke test.
         "--only", "footprint,overhead,throughput,outputs"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    assert f"results: {out}" in res.stdout
    assert "Targets (reported, not asserted)" in res.stdout
    r = json.loads(out.read_text())

    ov = r["overhead"]
    for loop in ("open", "getppid", "forkexec"):
        conds = ov["ns_per_iter"][loop]
        assert set(conds) == {"none", "ringwatch", "syscount", "floor"}
        assert all(c["median"] > 0 and c["ratio"] is not None for c in conds.values())
    assert set(ov["ready_s"]) == {"ringwatch", "syscount", "floor"}
    assert ov["ringwatch_losses"], "ringwatch's drop counters were not read"
    # Read from `ringwatch stats` around each loop: the loop's own execs are among them.
    assert ov["ringwatch_records_per_loop"]["forkexec"]["produced"] >= r["overhead"]["iterations"]["forkexec"]

    fp = r["footprint"]
    names = {m["name"] for m in fp["bpf"]["maps"]}
    assert "events" in names, names  # ringwatch's ring buffer, found through its own fds
    assert fp["bpf"]["map_bytes_memlock"] > 0 and fp["bpf"]["progs"] >= 2
    assert fp["idle_rss_bytes"] > 0 and fp["startup_s_logged"] is not None

    searches = r["throughput"]["searches"]
    assert set(searches) == {"quiet", "alerting", "events_file", "events_kafka"}, searches
    for name, sr in searches.items():
        assert sr["trials"], f"no {name} trial ran"
        assert sr["trials"][0]["events_seen"] > 0, (name, sr["trials"][0])
        # Every event out: the output holds more than the generator's opens.
        if name.startswith("events_"):
            assert sr["trials"][0]["records_written"] > sr["trials"][0]["events_seen"], sr
    # The generator's opens of /etc/shadow alert. (Whether the quiet trial saw none depends
    # on what else runs on a host-wide traced machine: the table reports it.)
    assert searches["alerting"]["trials"][0]["alerts"] > 0
    first = searches["alerting"]["trials"][0]
    assert first["events_seen"] > 0, first
    # Whether a trial passes depends on the machine's speed and load: the harness must
    # judge it (a verdict and its reasons), the test must not.
    assert isinstance(first["passed"], bool) and "achieved" in first, first
    # The drain was measured from `ringwatch stats`, not guessed from the stop time.
    assert first["drain_from"] == "stats", first
    assert len(r["targets"]) == 10
