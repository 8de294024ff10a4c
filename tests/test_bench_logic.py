"""The benchmark harness's arithmetic and parsing (bench/): no kernel, no timing."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from bench import (
    bpftool,
    cgroup,
    cli,
    context,
    fixed_rate,
    procfs,
    replay,
    report,
    ringwatch,
    stats,
    workloads,
)
from bench.errors import BenchError
from bench.search import RateSearch, Trial


def test_median_odd_even_and_empty() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        stats.median([])


def test_ratio_of_zero_baseline_is_none() -> None:
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(3.0, 0.0) is None


def test_schedule_alternates_conditions_every_round() -> None:
    assert stats.schedule(["a", "b", "c"], 2) == [
        (0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c")]
    with pytest.raises(ValueError, match="rounds"):
        stats.schedule(["a"], 0)
    with pytest.raises(ValueError, match="duplicate"):
        stats.schedule(["a", "a"], 1)


def test_summarize_medians_ratios_and_paired_ratios() -> None:
    runs = {"none": [100.0, 200.0, 110.0], "mon": [150.0, 260.0, 121.0]}
    s = stats.summarize(runs, "none")
    assert s["none"].median == 110.0 and s["none"].ratio == 1.0
    assert s["mon"].median == 150.0
    assert s["mon"].ratio == pytest.approx(150 / 110)
    # Paired: 1.5, 1.3, 1.1 -> median 1.3, unlike the ratio of medians.
    assert s["mon"].paired_ratio == pytest.approx(1.3)
    assert (s["mon"].min, s["mon"].max) == (121.0, 260.0)
    with pytest.raises(ValueError, match="baseline 'x'"):
        stats.summarize(runs, "x")


def _drive(search: RateSearch, capacity: float, gen_max: float = math.inf) -> list[float]:
    """Runs a search against a simulated monitor that keeps up to `capacity` events/s
    fed by a generator that reaches at most `gen_max`."""
    offered = []
    while (rate := search.next_target()) is not None:
        offered.append(rate)
        achieved = min(rate, gen_max)
        search.record(Trial(rate, achieved, passed=achieved <= capacity,
                            generator_kept_up=achieved >= 0.95 * rate))
        assert len(offered) < 50, "search did not end"
    return offered


def test_search_doubles_then_bisects_geometrically() -> None:
    s = RateSearch(start=10_000, max_doublings=8, bisect_steps=3)
    offered = _drive(s, capacity=70_000)
    assert offered[:4] == [10_000, 20_000, 40_000, 80_000]
    assert offered[4] == pytest.approx(math.sqrt(40_000 * 80_000))
    assert len(offered) == 7
    assert s.bound == "monitor"
    assert s.best is not None and 40_000 < s.best.achieved <= 70_000
    assert s.first_failure is not None and s.first_failure.target > 70_000


def test_search_stops_when_generator_cannot_keep_up() -> None:
    s = RateSearch(start=1_000, max_doublings=8, bisect_steps=3)
    offered = _drive(s, capacity=1e9, gen_max=5_000)
    assert offered == [1_000, 2_000, 4_000, 8_000]
    assert s.bound == "generator"
    assert s.best is not None and s.best.achieved == 5_000


def test_search_cap_when_everything_passes() -> None:
    s = RateSearch(start=100, max_doublings=2, bisect_steps=3)
    assert _drive(s, capacity=1e9) == [100, 200, 400]
    assert s.bound == "cap"


def test_search_first_trial_failing_halves() -> None:
    s = RateSearch(start=100, max_doublings=5, bisect_steps=2)
    assert _drive(s, capacity=30) == [100, 50, 25]
    assert s.best is not None and s.best.target == 25


def test_search_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="start rate"):
        RateSearch(start=0, max_doublings=1, bisect_steps=1)


def test_stat_cpu_ticks_with_awkward_comm() -> None:
    fields = ["S"] + [str(i) for i in range(4, 60)]  # field n holds the number n
    stat = "1234 (a) (b c) " + " ".join(fields)
    assert procfs.parse_stat_cpu_ticks(stat) == 14 + 15
    with pytest.raises(BenchError, match="unparsable"):
        procfs.parse_stat_cpu_ticks("garbage")


def test_status_kb_in_bytes() -> None:
    status = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert procfs.parse_status_kb(status, "VmRSS") == 1024 * 1024
    with pytest.raises(BenchError, match="no VmSwap"):
        procfs.parse_status_kb(status, "VmSwap")


def test_fdinfo_classifies_bpf_objects() -> None:
    prog = procfs.parse_fdinfo("pos:\t0\nprog_type:\t17\nmemlock:\t4096\nprog_id:\t97\n")
    link = procfs.parse_fdinfo(
        "link_type:\traw_tracepoint\nlink_id:\t66\nprog_id:\t97\ntp_name:\tsys_enter\n"
    )
    bmap = procfs.parse_fdinfo("map_type:\t27\nmemlock:\t8433992\nmap_id:\t66\n")
    assert procfs.classify_fdinfo(prog) == procfs.BpfObject("prog", 97, 4096, "")
    assert procfs.classify_fdinfo(link) == procfs.BpfObject("link", 66, 0, "sys_enter")
    assert procfs.classify_fdinfo(bmap) == procfs.BpfObject("map", 66, 8433992, "")
    assert procfs.classify_fdinfo(procfs.parse_fdinfo("pos:\t0\nflags:\t02\n")) is None


def test_bpftool_map_show_parsing() -> None:
    text = json.dumps([{"id": 66, "type": "ringbuf", "name": "events", "max_entries": 8388608,
                        "bytes_memlock": 8433992}])
    m = bpftool.parse_map_show(text)[66]
    assert (m.name, m.type, m.bytes_memlock) == ("events", "ringbuf", 8433992)
    with pytest.raises(BenchError, match="not JSON"):
        bpftool.parse_map_show("nope")
    with pytest.raises(BenchError, match="entry 0"):
        bpftool.parse_map_show('[{"name": "x"}]')


STOPPED: dict[str, Any] = {
    "event": "stopped",
    "produced": {"exec": 10, "fork": 5},
    "delivered": {"exec": 7, "fork": 5},
    "drops": {"ringbuf_full": 3, "pending_full": 0, "exit_no_enter": 0, "argv_truncated": 9},
    "decode_errors": 1,
    "outputs": {"record": {"written": 12, "dropped": 2, "errors": 0}},
}


def test_losses_count_whole_records_only() -> None:
    lost = ringwatch.losses(STOPPED)
    assert lost["kernel.ringbuf_full"] == 3
    assert lost["decode_errors"] == 1
    assert lost["output.record.dropped"] == 2
    # A truncated argv is a delivered record, not a lost one.
    assert not any("argv_truncated" in k for k in lost)
    assert sum(lost.values()) == 6
    assert ringwatch.delivered_total(STOPPED) == 12


def test_losses_errors_name_the_key() -> None:
    with pytest.raises(BenchError, match="no drops"):
        ringwatch.losses({"event": "stopped"})
    with pytest.raises(BenchError, match="drops: expected a mapping"):
        ringwatch.losses({"drops": [1, 2]})


def test_log_entry_finds_last_json_event() -> None:
    stderr = ('noise\n{"event": "ready", "startup_s": 1}\n'
              '{"event": "stopped", "n": 1}\n{"event": "stopped", "n": 2}\n')
    assert ringwatch.log_entry(stderr, "stopped") == {"event": "stopped", "n": 2}
    assert ringwatch.log_entry(stderr, "missing") is None


def test_count_events_matches_field_and_type_exactly() -> None:
    def line(pid: int, typ: str) -> bytes:
        return (json.dumps({"evt.type": typ, "proc.pid": pid, "proc.ppid": 1}) + "\n").encode()

    lines = [line(42, "openat"), line(42, "openat"), line(420, "openat"), line(42, "exit"),
             line(7, "openat"), line(42, "openat")[:-1]]  # last: cut mid-write, not counted
    assert ringwatch.count_events(lines, "proc.pid", 42, frozenset({"openat"})) == 2
    # The same through the unparsed fast path (ringwatch's compact writer) and the parsed one.
    compact = [(json.dumps(json.loads(x), separators=(",", ":")) + "\n").encode() for x in lines[:5]]
    assert ringwatch.count_events(compact, "proc.pid", 42, frozenset({"openat"})) == 2
    tricky = [b'{"evt.type":"openat2","proc.pid":42}\n', b'{"evt.type":"openat","proc.pid":421}\n',
              b'{"evt.type":"openat","proc.ppid":42,"proc.pid":1}\n',
              b'{"proc.pid":42,"evt.type":"openat"}\n']
    assert ringwatch.count_events(tricky, "proc.pid", 42, frozenset({"openat"})) == 1


def test_stats_counted_trials_read_their_own_counter_and_never_exceed_the_generator() -> None:
    from bench import throughput

    quiet = throughput.Workload("quiet", "open", "/etc/hostname", "stats", "")
    alerting = throughput.Workload("alerting", "open", "/etc/shadow", "stats", "",
                                   stat=("alerts", "total"))
    snap = {"events": {"syscall": 950, "exec": 4}, "alerts": {"total": 7}}
    assert throughput.counted(quiet, 1000, snap) == 950  # short: the trial fails on it
    assert throughput.counted(quiet, 900, snap) == 900  # the host's own records do not count
    assert throughput.counted(alerting, 1000, snap) == 7
    assert throughput.counted(alerting, 1000, {"events": {"syscall": 5000}}) == 0
    with pytest.raises(BenchError, match="control socket"):
        throughput.counted(quiet, 10, None)


def test_replay_rate_parsing() -> None:
    assert replay.parse_rate('warming up\n{"events_per_s": 12345.5}\n') == 12345.5
    assert replay.parse_rate("replayed 1,000,000 events in 4.0 s: 250,000 events/s\n") == 250_000
    assert replay.parse_rate("nothing useful") is None


def test_json_line_errors_name_the_command() -> None:
    with pytest.raises(BenchError, match="rw-bench-loop open"):
        workloads._json_line(["rw-bench-loop", "open"], "oops", ("op",))


def _results(
    rw_getppid: float, floor_getppid: float, best: float, idle: float, rss_mb: int
) -> dict[str, Any]:
    def cond(median: float, r: float) -> dict[str, Any]:
        return {"median": median, "ratio": r}

    loops = {loop: {"none": cond(100, 1.0), "ringwatch": cond(110, 1.1), "syscount": cond(150, 1.5),
                    "floor": cond(105, 1.05)} for loop in ("open", "forkexec")}
    loops["getppid"] = {"none": cond(100, 1.0), "ringwatch": cond(rw_getppid, rw_getppid / 100),
                        "syscount": cond(300, 3.0), "floor": cond(floor_getppid, floor_getppid / 100)}
    return {
        "overhead": {"ns_per_iter": loops},
        "throughput": {"mode": "open", "window_s": 3, "searches": {
            name: {"best_events_per_s": rate, "bound": "monitor", "best_records_written_per_s": rate,
                   "under_load": {"rss_bytes": rss_mb * report.MB}, "trials": []}
            for name, rate in (("quiet", best), ("alerting", best / 3), ("events_file", best),
                               ("events_kafka", best / 10))}},
        "footprint": {"idle_cpu_fraction": idle, "idle_rss_bytes": 100 * report.MB},
    }


def test_targets_met_and_missed() -> None:
    good = {t.name: t for t in report.targets(_results(115, 100, 150_000, 0.002, 150))}
    kafka = report.OUTPUT_TARGETS["events_kafka"]
    # Kafka at a tenth of the quiet rate does not keep pace with the pipeline.
    assert {n for n, t in good.items() if not t.met} == {kafka}, good
    assert good[kafka].limit == 150_000
    assert len(good) == 10
    bad = {t.name: t for t in report.targets(_results(130, 100, 90_000, 0.02, 250))}
    missed = {n for n, t in bad.items() if not t.met}
    assert missed == {
        "getppid: ringwatch within 1.2x of the no-op floor",
        report.LIVE_TARGETS["quiet"][0],
        kafka,
        "idle CPU, % of a core",
        "RSS, MB (idle and under load)",
    }
    assert bad["RSS, MB (idle and under load)"].value == 250


def test_render_marks_missed_targets() -> None:
    res = _results(130, 100, 150_000, 0.002, 150)
    meta = {"preset": "quick", "kernel": "k", "cpus": 2, "loadavg_start": "0", "loadavg_end": "0"}
    text = report.render({"meta": meta, "targets": report.targets_json(res)})
    assert "MISSED  getppid: ringwatch within 1.2x of the no-op floor: 1.30 vs 1.20" in text
    assert "met     idle CPU, % of a core" in text


def test_cgroup_v2_mount_and_membership_parsing() -> None:
    mounts = ("tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
              "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
              "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert cgroup.cgroup2_root(mounts) == Path("/sys/fs/cgroup/unified")
    with pytest.raises(BenchError, match="no cgroup2"):
        cgroup.cgroup2_root("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n")
    assert cgroup.own_cgroup("4:memory:/x\n0::/user.slice/a\n") == "/user.slice/a"
    with pytest.raises(BenchError, match="no cgroup v2"):
        cgroup.own_cgroup("4:memory:/x\n")


def test_ringwatch_config_keeps_instances_apart(tmp_path: Path) -> None:
    cfg = context.ringwatch_config(tmp_path, Path("/sys/fs/cgroup/unified/b"))
    assert cfg["control"]["socket"] == str(tmp_path / "control.sock")
    assert cfg["lineage"]["bpffs_dir"] != "/sys/fs/bpf/ringwatch"
    assert cfg["sensor"] == {"cgroups": ["/sys/fs/cgroup/unified/b"]}
    assert "sensor" not in context.ringwatch_config(tmp_path)


def test_cli_presets() -> None:
    parse = cli.build_parser().parse_args
    assert parse([]).preset == "full"
    assert parse(["--quick"]).preset == "quick"
    assert parse(["--preset", "smoke"]).preset == "smoke"
    assert context.PRESETS["full"].rounds >= 5


def test_flood_trial_report_and_targets() -> None:
    from bench import report

    trial = {"variant": "same path, defaults", "flood": "same", "flood_opens_per_s": 500000,
             "reads_detected": 10, "execs_detected": 9, "of": 10, "process_records_lost": 0,
             "syscall_coalesced": 4_000_000, "syscall_throttled": 0, "syscall_lost": 0,
             "syscall_delivered": 49, "identity_holds": True}
    results = {"meta": {"preset": "full", "kernel": "6.18", "cpus": 2, "loadavg_start": "1",
                        "loadavg_end": "1"},
               "flood": {"ops": 10, "gap_s": 0.3, "trials": [trial]}}
    text = report.render(results)
    assert "same path, defaults" in text and "10/10" in text and "9/10" in text and "4,000,000" in text
    tg = {t.name: t for t in report.targets(results)}
    assert tg["flood trial (same path, defaults): attacks detected of 20"].met is False
    assert tg["flood trial (same path, defaults): process records lost"].met is True


def test_rss_by_mapping_of_this_process() -> None:
    import os

    parts = procfs.rss_by_mapping(os.getpid())
    assert parts["file"] > 0 and parts["heap"] + parts["anon"] > 0  # python3 and its heap
    assert parts["bpf-map"] == 0  # no ring buffer mapped here
    total = procfs.parse_status_kb(Path(f"/proc/{os.getpid()}/status").read_text(), "VmRSS")
    assert abs(sum(parts.values()) - total) < total * 0.2, (parts, total)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert fixed_rate.percentile(values, 50) == 50.0
    assert fixed_rate.percentile(values, 99) == 99.0
    assert fixed_rate.percentile([7.0], 99) == 7.0
    assert fixed_rate.percentile([], 50) is None


def test_alert_watch_times_only_its_rule_and_pid_across_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "ringwatch.stdout"
    watch = fixed_rate.AlertWatch(path, "R")
    watch.pid = 42
    now = time.time_ns()

    def line(rule: str, pid: int, ts: int) -> bytes:
        return json.dumps({"rule": rule, "event": {"proc.pid": pid, "evt.ts": ts}}).encode() + b"\n"

    watch.start()
    mine = line("R", 42, now - 30_000_000)
    with open(path, "ab") as fh:
        fh.write(line("R", 7, now) + line("other", 42, now) + b"not json R\n" + mine[:10])
        fh.flush()
        time.sleep(0.05)
        fh.write(mine[10:])
    deadline = time.monotonic() + 5
    while not watch.delays_ms and time.monotonic() < deadline:
        time.sleep(0.01)
    delays = watch.stop()
    assert len(delays) == 1
    assert delays[0] >= 30.0  # seen no earlier than the event plus the 30 ms it was "old"
