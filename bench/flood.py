"""The flood trial: can a process that floods the monitor hide an attack beside it?

One process opens files as fast as it can (bench/c/flood.c) while another performs 10
alerting reads (`cat /etc/shadow`, rule "Read sensitive file untrusted") and 10 execs
from /dev/shm (rule "Execution from /dev/shm"), 0.3 s apart. Each runs in a cgroup of
its own, and ringwatch traces those two cgroups only (sensor.cgroups), so the flood
stays inside the trial. Reported per variant: detected/10 of each kind, process records
lost, and the syscall lane's coalesced, throttled and lost counts (ringwatch's final
"lanes" log line).

Variants: the flood repeats one open (`same`, what coalescing folds) or opens a new
path each time (`distinct`, nothing to fold: throttling's case); with the default
config, and with coalescing and throttling off (the lanes alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from bench import ringwatch, workloads
from bench.cgroup import cgroup2_root
from bench.context import Context, ringwatch_config
from bench.daemons import RunningMonitor
from bench.errors import BenchError

READ_RULE = "Read sensitive file untrusted"
EXEC_RULE = "Execution from /dev/shm"
OPS = 10
GAP_S = 0.3
# The flood runs this long before the attack starts, and the attack's length after it.
LEAD_S = 1.0
FLOOD_S = LEAD_S + 2 * OPS * GAP_S + 2.0

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "same path, defaults": ("same", {}),
    "distinct paths, defaults": ("distinct", {}),
    "same path, lanes only": ("same", {"coalesce_window_ms": 0, "throttle_process_rate": 0,
                                       "throttle_cgroup_rate": 0}),
    "distinct paths, lanes only": ("distinct", {"coalesce_window_ms": 0, "throttle_process_rate": 0,
                                                "throttle_cgroup_rate": 0}),
}

# The attacker: joins its cgroup, then reads /etc/shadow and runs a copy of /bin/true
# from /dev/shm, OPS times each; prints the pids of both kinds as JSON.
ATTACK = r"""
import json, os, shutil, subprocess, sys, time
cg, ops, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(os.path.join(cg, "cgroup.procs"), "w") as fh:
    fh.write(str(os.getpid()))
exe = f"/dev/shm/rw-bench-flood-{os.getpid()}"
shutil.copy("/bin/true", exe)
reads, execs = [], []
try:
    for _ in range(ops):
        p = subprocess.Popen(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL)
        p.wait()
        reads.append(p.pid)
        time.sleep(gap)
        p = subprocess.Popen([exe])
        p.wait()
        execs.append(p.pid)
        time.sleep(gap)
finally:
    os.unlink(exe)
print(json.dumps({"reads": reads, "execs": execs}))
"""


@contextlib.contextmanager
def _cgroups(names: list[str]) -> Iterator[list[Path]]:
    root = cgroup2_root(Path("/proc/self/mounts").read_text())
    paths = [root / f"ringwatch-bench-{n}-{os.getpid()}" for n in names]
    for p in paths:
        p.mkdir(exist_ok=True)
    try:
        yield paths
    finally:
        for p in paths:
            for _ in range(50):
                try:
                    p.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _in_cgroup(cg: Path, argv: list[str]) -> list[str]:
    """argv run from inside cg: a shell joins it, then becomes the command."""
    return ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh", *argv]


def _alert_pids(stdout: Path, rule: str) -> set[int]:
    pids: set[int] = set()
    if not stdout.exists():
        return pids
    with open(stdout, "rb") as fh:
        for line in fh:
            if rule.encode() not in line:
                continue
            try:
                a = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(a, dict) and a.get("rule") == rule:
                pids.add(int(a.get("event", {}).get("proc.pid", -1)))
    return pids


def trial(ctx: Context, name: str, mode: str, sensor: dict[str, Any], flood_bin: Path) -> dict[str, Any]:
    workdir = ctx.workdir / f"flood-{mode}-{len(sensor)}"
    workdir.mkdir(parents=True, exist_ok=True)
    with _cgroups(["flood", "attack"]) as (flood_cg, attack_cg):
        cfg = ringwatch_config(workdir)
        cfg["sensor"] = {**cfg.get("sensor", {}), "cgroups": [str(flood_cg), str(attack_cg)], **sensor}
        config = workdir / "ringwatch.yaml"
        config.write_text(yaml.safe_dump(cfg))
        # Alerts go to stdout: keep it (the events stream is not on stdout by default).
        mon = RunningMonitor(ringwatch.spec(ctx.python, config, None, ctx.rules, keep_stdout=True), workdir)
        target = "/etc/passwd" if mode == "same" else "/etc/rw-bench-flood-"
        try:
            mon.start()
            flood = subprocess.Popen(_in_cgroup(flood_cg, [str(flood_bin), mode, f"{FLOOD_S:g}", target]),
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(LEAD_S)
            attack = subprocess.run([sys.executable, "-c", ATTACK, str(attack_cg), str(OPS), str(GAP_S)],
                                    capture_output=True, text=True, timeout=120, check=False)
            out, _ = flood.communicate(timeout=120)
            time.sleep(2.0)  # let ringwatch reach the end of both lanes
            rc = mon.stop()
        finally:
            mon.kill()
    if attack.returncode != 0:
        raise BenchError(f"flood trial attacker failed: {attack.stderr.strip()[-500:]}")
    pids = json.loads(attack.stdout.strip().splitlines()[-1])
    gen = json.loads(out.strip().splitlines()[-1])
    lanes = ringwatch.log_entry(mon.stderr(), "lanes")
    if rc != 0 or lanes is None:
        raise BenchError(f"ringwatch exited {rc} during the flood trial:\n" + mon.stderr()[-2000:])
    reads = _alert_pids(mon.stdout_path, READ_RULE) & set(pids["reads"])
    execs = _alert_pids(mon.stdout_path, EXEC_RULE) & set(pids["execs"])
    proc, sc = lanes["process"], lanes["syscall"]
    return {
        "variant": name,
        "flood": mode,
        "sensor_overrides": sensor,
        "flood_opens": gen["ops"],
        "flood_opens_per_s": round(gen["ops"] / (gen["elapsed_ns"] / 1e9)),
        "reads_detected": len(reads),
        "execs_detected": len(execs),
        "of": OPS,
        "process_records_lost": proc["lost"],
        "process_records_produced": proc["produced"],
        "syscall_produced": sc["produced"],
        "syscall_delivered": sc["delivered"],
        "syscall_coalesced": sc["coalesced"],
        "syscall_throttled": sc["throttled"],
        "syscall_lost": sc["lost"],
        "identity_holds": all(
            c["delivered"] + c["coalesced"] + c["throttled"] + c["lost"] == c["produced"]
            for c in (proc, sc)
        ),
        "coalesce_tail_repeats": lanes.get("coalesce_tail_repeats", 0),
        "throttle_alerts": len(_alert_pids(mon.stdout_path, "ringwatch: syscall flood throttled")),
    }


def run(ctx: Context, log: Callable[[str], None]) -> dict[str, Any]:
    if shutil.which("cat") is None:
        raise BenchError("flood trial: cat not found")
    flood_bin = workloads.build("rw-bench-flood", Path(__file__).resolve().parent / "build")
    trials = []
    for name, (mode, sensor) in VARIANTS.items():
        log(f"flood trial: {name}")
        trials.append(trial(ctx, name, mode, sensor, flood_bin))
    return {"ops": OPS, "gap_s": GAP_S, "flood_s": FLOOD_S, "trials": trials}
