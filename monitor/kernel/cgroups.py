"""The cgroups fork and exec records name: the child's own v2 cgroup, and one v1 cgroup.

Two things the kernel programs read from a task's css_set (task->cgroups), with offsets
from the running kernel's BTF:

- At fork, the child's cgroup v2 id (css_set->dfl_cgrp->kn->id). sched_process_fork runs
  in the parent, and a child made by clone3(CLONE_INTO_CGROUP) starts in another cgroup;
  bpf_get_current_cgroup_id() would give the parent's.
- At exec and fork, the id of the process's cgroup in one v1 hierarchy
  (css_set->subsys[N]->cgroup->kn->id; rw_exec/rw_fork.cgroup1_id). On a hybrid host (v1
  controllers beside the unified hierarchy) a runtime may put its containers in v1
  hierarchies only: docker's cgroupfs driver leaves them in the shim's v2 cgroup, which
  host processes share, so the v2 id cannot tell a container process from the host, and a
  process gone before /proc/PID/cgroup was read had no identity (monitor/events/container.py).

A cgroup's id is its kernfs node id, the inode number of its directory in cgroupfs. The v1
hierarchy is the first controller of PREFERRED that the running kernel has bound to a v1
hierarchy (/proc/cgroups) and whose subsystem index BTF gives; none on a pure v2 host
(the v2 id tells everything there): the records' v1 id is then 0. Without BTF neither is
read: fork records then carry the parent's v2 id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.kernel.btf import BTF, BTFError

# Controllers every container runtime's v1 layout uses, most common first.
PREFERRED = ("memory", "pids", "cpu", "devices", "freezer", "cpuset")

# macro suffix -> (struct, member path), as monitor.kernel.offsets.KERNEL_FIELDS.
CGROUP_FIELDS: dict[str, tuple[str, str]] = {
    "TASK_CGROUPS": ("task_struct", "cgroups"),
    "CSS_SET_DFL_CGRP": ("css_set", "dfl_cgrp"),
    "CSS_SET_SUBSYS": ("css_set", "subsys"),
    "CSS_CGROUP": ("cgroup_subsys_state", "cgroup"),
    "CGROUP_KN": ("cgroup", "kn"),
    "KERNFS_NODE_ID": ("kernfs_node", "id"),
}
PROC_CGROUPS = Path("/proc/cgroups")


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    controller: str  # the v1 hierarchy records name a cgroup of; "" none
    cflags: tuple[str, ...]  # empty: nothing read from css_set
    reason: str  # why no v1 controller, when controller is ""


def v1_controllers(text: str) -> list[str]:
    """Controllers bound to a v1 hierarchy and enabled, from /proc/cgroups
    ("#subsys_name hierarchy num_cgroups enabled"; hierarchy 0: v2 or unmounted)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and not parts[0].startswith("#") and parts[1] != "0" and parts[3] == "1":
            out.append(parts[0])
    return out


def detect(btf: BTF | BTFError, proc_cgroups: Path = PROC_CGROUPS) -> CgroupSupport:
    """What the cgroup reads need, from BTF.try_load's result and /proc/cgroups."""
    try:
        if isinstance(btf, BTFError):
            raise btf
        values = {k: btf.offset_of(s, p) for k, (s, p) in CGROUP_FIELDS.items()}
    except BTFError as exc:
        return CgroupSupport("", (), f"cgroup layout unknown ({exc})")
    flags = tuple(f"-DRW_OFF_{k}={v}" for k, v in values.items())
    try:
        bound = v1_controllers(proc_cgroups.read_text())
    except OSError as exc:
        return CgroupSupport("", flags, f"{proc_cgroups}: {exc.strerror}")
    candidates = [c for c in PREFERRED if c in bound]
    if not candidates:
        return CgroupSupport("", flags, "no cgroup v1 controller is mounted (a pure cgroup v2 host)")
    for name in candidates:
        try:
            index = btf.enumerator(f"{name}_cgrp_id")
        except BTFError:
            continue
        return CgroupSupport(name, (f"-DRW_CGROUP1_SUBSYS={index}", *flags), "")
    return CgroupSupport("", flags, f"no subsystem index in BTF for {', '.join(candidates)}")
