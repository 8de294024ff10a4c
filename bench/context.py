"""What every part of a benchmark run shares: settings, binaries, a work directory."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import workloads


@dataclass(frozen=True)
class Settings:
    """Sizes of one run. `full` is what the report quotes; `quick` for development on a
    busy machine; `smoke` only proves the harness works end to end (tests)."""

    rounds: int
    open_n: int
    getppid_n: int
    forkexec_n: int
    window_s: float  # throughput trial length
    max_doublings: int
    bisect_steps: int
    idle_s: float  # idle CPU window
    # Drain allowance after a throughput trial: more means the monitor fell behind.
    lag_limit_s: float
    # First offered rate of the throughput search, events/s, by workload.
    start_rate: dict[str, float]


# First offered rate of each throughput search (bench/throughput.py), events/s.
_START_RATES = {"quiet": 10_000, "alerting": 5_000, "exec": 250, "events_file": 5_000,
                "events_kafka": 5_000}

PRESETS = {
    "full": Settings(rounds=5, open_n=1_000_000, getppid_n=5_000_000, forkexec_n=5_000,
                     window_s=10, max_doublings=8, bisect_steps=3, idle_s=10, lag_limit_s=2.0,
                     start_rate=dict(_START_RATES)),
    "quick": Settings(rounds=2, open_n=100_000, getppid_n=500_000, forkexec_n=300,
                      window_s=3, max_doublings=4, bisect_steps=1, idle_s=3, lag_limit_s=2.0,
                      start_rate=dict(_START_RATES)),
    "smoke": Settings(rounds=1, open_n=2_000, getppid_n=10_000, forkexec_n=20,
                      window_s=1, max_doublings=0, bisect_steps=0, idle_s=1, lag_limit_s=5.0,
                      start_rate={"quiet": 1_000, "alerting": 1_000, "exec": 200,
                                  "events_file": 1_000, "events_kafka": 1_000}),
}


def bench_pin_dir() -> Path:
    return Path(f"/sys/fs/bpf/ringwatch-bench-{os.getpid()}")


def ringwatch_config(workdir: Path, cgroup: Path | None = None) -> dict[str, Any]:
    """Defaults, except for what a ringwatch running beside this one (a service, another
    engineer's tests) would share: the pinned lineage maps and the control socket; and,
    with `cgroup`, tracing confined to it."""
    from monitor.config import Config

    sections = {f.name for f in dataclasses.fields(Config)}
    cfg: dict[str, Any] = {}
    if "lineage" in sections:
        cfg["lineage"] = {"bpffs_dir": str(bench_pin_dir())}
    if "control" in sections:
        cfg["control"] = {"socket": str(workdir / "control.sock")}
    if cgroup is not None:
        cfg["sensor"] = {"cgroups": [str(cgroup)]}
    return cfg


def remove_pins() -> None:
    """Unpin the lineage maps the benchmark's ringwatch left, freeing their memory."""
    shutil.rmtree(bench_pin_dir(), ignore_errors=True)


@dataclass(frozen=True)
class Context:
    settings: Settings
    workdir: Path
    python: str
    loop_bin: Path
    gen_bin: Path
    config: Path  # ringwatch config: defaults (and the default rules) but private paths
    control_socket: Path  # where that ringwatch answers `ringwatch stats`
    open_path: str  # overhead: a file no rule cares about
    interesting_open_path: str  # throughput: a file the default rules watch
    exec_path: str
    rules: tuple[Path, ...] = ()  # extra rules files, beside the defaults
    # throughput: a file under a watched prefix (passes the kernel's path filter) that no
    # rule matches
    quiet_open_path: str = "/etc/hostname"
    cgroup: Path | None = None  # --cgroup: the benchmark's own cgroup

    @classmethod
    def create(cls, settings: Settings, workdir: Path, open_path: str | None,
               interesting_open_path: str, rules: tuple[Path, ...] = (),
               cgroup: Path | None = None, quiet_open_path: str = "/etc/hostname") -> Context:
        workdir.mkdir(parents=True, exist_ok=True)
        build_dir = Path(__file__).resolve().parent / "build"
        config = workdir / "ringwatch.yaml"
        # An explicit config: a host's /etc/ringwatch/config.yaml must not change the result.
        config.write_text(yaml.safe_dump(ringwatch_config(workdir, cgroup)))
        target = workdir / "open-target"
        target.write_text("ringwatch bench\n")
        return cls(
            settings=settings,
            workdir=workdir,
            python=sys.executable,
            loop_bin=workloads.build("rw-bench-loop", build_dir),
            gen_bin=workloads.build("rw-bench-gen", build_dir),
            config=config,
            control_socket=workdir / "control.sock",
            open_path=open_path or str(target),
            interesting_open_path=interesting_open_path,
            exec_path="/bin/true",
            rules=rules,
            quiet_open_path=quiet_open_path,
            cgroup=cgroup,
        )
