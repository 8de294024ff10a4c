"""The cgroup v1 hierarchy an exec record names its process's cgroup in (rw_exec.cgroup1_id).

On a hybrid host (v1 controllers beside the unified v2 hierarchy) a runtime may put its
containers in v1 hierarchies only: docker's cgroupfs driver leaves them in the shim's v2
cgroup, which host processes share. The v2 id every record carries then cannot tell a
container process from the host, and a process gone before /proc/PID/cgroup was read had
no identity (monitor/events/container.py). The kernel reads, at exec, the id of the
process's cgroup in one v1 hierarchy (task->cgroups->subsys[N]->cgroup->kn->id, the
kernfs node whose inode number the cgroup's directory has): with the v2 id it names the
cgroup pair the process ran in, whatever the process did afterwards.

The hierarchy is the first controller of PREFERRED that the running kernel has bound to a
v1 hierarchy (/proc/cgroups) and whose subsystem index its BTF gives. None on a pure v2
host (the v2 id tells everything there) or without BTF: the record's id is then 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.kernel.btf import BTF, VMLINUX_BTF, BTFError

# Controllers every container runtime's v1 layout uses, most common first.
PREFERRED = ("memory", "pids", "cpu", "devices", "freezer", "cpuset")

# macro suffix -> (struct, member path), as monitor.kernel.offsets.KERNEL_FIELDS.
CGROUP1_FIELDS: dict[str, tuple[str, str]] = {
    "TASK_CGROUPS": ("task_struct", "cgroups"),
    "CSS_SET_SUBSYS": ("css_set", "subsys"),
    "CSS_CGROUP": ("cgroup_subsys_state", "cgroup"),
    "CGROUP_KN": ("cgroup", "kn"),
    "KERNFS_NODE_ID": ("kernfs_node", "id"),
}
PROC_CGROUPS = Path("/proc/cgroups")


@dataclass(frozen=True, slots=True)
class Cgroup1:
    controller: str  # "" when the records carry no v1 id
    cflags: tuple[str, ...]
    reason: str  # why none, when controller is ""


def v1_controllers(text: str) -> list[str]:
    """Controllers bound to a v1 hierarchy and enabled, from /proc/cgroups
    ("#subsys_name hierarchy num_cgroups enabled"; hierarchy 0: v2 or unmounted)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and not parts[0].startswith("#") and parts[1] != "0" and parts[3] == "1":
            out.append(parts[0])
    return out


def detect(btf_path: Path = VMLINUX_BTF, proc_cgroups: Path = PROC_CGROUPS) -> Cgroup1:
    try:
        bound = v1_controllers(proc_cgroups.read_text())
    except OSError as exc:
        return Cgroup1("", (), f"{proc_cgroups}: {exc.strerror}")
    candidates = [c for c in PREFERRED if c in bound]
    if not candidates:
        return Cgroup1("", (), "no cgroup v1 controller is mounted (a pure cgroup v2 host)")
    try:
        btf = BTF.load(btf_path)
        values = {k: btf.offset_of(s, p) for k, (s, p) in CGROUP1_FIELDS.items()}
    except BTFError as exc:
        return Cgroup1("", (), f"cgroup layout unknown ({exc})")
    for name in candidates:
        try:
            index = btf.enumerator(f"{name}_cgrp_id")
        except BTFError:
            continue
        flags = [f"-DRW_OFF_{k}={v}" for k, v in values.items()]
        return Cgroup1(name, (f"-DRW_CGROUP1_SUBSYS={index}", *flags), "")
    return Cgroup1("", (), f"no subsystem index in BTF for {', '.join(candidates)}")
