"""proc.env: selected environment variables of a new image, as the kernel read them at exec.

bpf/sensor.bpf.c (exec_env) scans the new mm's env_start..env_end at sched_process_exec,
so the values are what execve's envp gave the program (what the dynamic loader and the
program will see), not the caller's environment, and later setenv() calls change nothing.
Only the variables below are kept; Falco's `proc.env[NAME]` is `proc.env.NAME` here.
"""

from __future__ import annotations

from typing import Any

from monitor.events.fields import Field
from monitor.kernel.records import ExecRecord

# The variables the kernel keeps (env_wanted in bpf/sensor.bpf.c; proxies in either case).
NAMES = ("LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GLIBC_TUNABLES",
         "http_proxy", "https_proxy", "all_proxy", "no_proxy",
         "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

FIELDS = (
    Field("proc.env", str, "exec events: the selected environment variables of the new image "
          "(LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH, GLIBC_TUNABLES, *_proxy), NAME=value space "
          "separated in environment order, read by the kernel at exec; not the whole environment "
          "(unlike Falco)"),
    *(Field(f"proc.env.{n}", str, f"exec events: the value of {n} in the new image's environment "
            f"(Falco: proc.env[{n}]); absent when unset; cut at 255 bytes (proc.env_cut); given twice, "
            "both values joined by \":\"")
      for n in NAMES),
    Field("proc.env_cut", list, "exec events: names of selected variables whose value was 255 bytes "
          "or longer and was cut"),
    Field("proc.env_truncated", bool, "exec events: the kernel's scan of the environment stopped "
          "before its end (more than 128 reads of 256 bytes, an unreadable part, or more than 512 "
          "bytes of selected variables): a variable may be missing"),
)


def env_fields(rec: ExecRecord) -> dict[str, Any]:
    env = rec.env
    if env is None:
        return {}
    ev: dict[str, Any] = {
        "proc.env": " ".join(f"{n}={v}" for n, v in env.entries),
        "proc.env_cut": sorted(env.cut),
        "proc.env_truncated": env.incomplete or bool(env.cut),
    }
    values: dict[str, list[str]] = {}
    for name, value in env.entries:
        if name in NAMES:
            values.setdefault(name, []).append(value)
    for name, vals in values.items():
        # A name given twice: getenv() takes the first, ld.so the last. Both are kept,
        # ":"-joined, so neither can hide behind the other.
        ev[f"proc.env.{name}"] = ":".join(vals)
    return ev
