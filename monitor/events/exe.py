"""What the kernel executed: exec fields from the file and task the kernel saw at exec.

`proc.exe` is the string passed to execve (Falco: the first argument); these come from
bprm->file and the task at sched_process_exec (bpf/sensor.bpf.c), so a relative path, a
symlink, execveat(fd, "", AT_EMPTY_PATH) or a renamed process cannot disguise them.
"""

from __future__ import annotations

import posixpath
from typing import Any

from monitor.events.fields import Field
from monitor.kernel.records import ExecRecord, Layer

# Exec and fork events (the catalogue gives it to both).
CGROUP1 = Field("cgroup.v1_id", int, "id (the directory's inode number) of the process's cgroup in one "
                "cgroup v1 hierarchy, the one `ringwatch` logs as cgroup1_controller at start, at exec "
                "or (the child's) at fork; 0 on a pure cgroup v2 host (exec and fork events)")

FIELDS = (
    Field("proc.exe_ino", int, "inode number of the executed file"),
    Field("proc.exe_ino_ctime", int, "inode change time of the executed file, ns since the epoch"),
    Field("proc.exe_ino_mtime", int, "modification time of the executed file, ns since the epoch"),
    Field("proc.is_exe_writable", bool, "the executed file is writable by the process's real user: "
          "owner/group/other write bits against its uid and gid (root: always); supplementary "
          "groups, ACLs and read-only mounts are not considered"),
    Field("proc.is_exe_upper_layer", bool, "the executed file is on overlayfs, in its upper layer "
          "(written after the mount, e.g. dropped into a container), as Falco: decided in the kernel "
          "at exec from the overlay inode's upper dentry; false off overlayfs (exec events)"),
    Field("proc.is_exe_lower_layer", bool, "the executed file is on overlayfs, only in a lower layer "
          "(e.g. a container's image) (exec events)"),
    Field("proc.exe_deleted", bool, "the executed file had no name left when it ran (unlinked)"),
    Field("proc.cwd", str, "working directory at exec, resolved by the kernel, with a trailing / as "
          "in Falco (exec events)"),
    Field("proc.tty", int, "controlling terminal at exec, encoded as /proc/PID/stat's tty_nr; 0 if "
          "none (exec events)"),
    Field("proc.sid", int, "session id at exec, in the process's pid namespace (exec events)"),
    Field("proc.vpgid", int, "process group id at exec, in the process's pid namespace (exec events)"),
    Field("proc.exe_ino_ctime_duration_proc_start", int, "ns from the executed file's last inode change "
          "(write, chmod, rename) to this exec (Falco's name): small for a program created moments ago"),
    Field("user.loginuid", int, "audit login uid at exec (who logged in, kept across su/sudo); -1 if "
          "never set (exec events)"),
    CGROUP1,
)


def name_is_exe(comm: str, exepath: str) -> bool:
    """Whether the process name (comm, which prctl(PR_SET_NAME), /proc/self/comm or the
    name of a symlink executed can set to anything) is the executed file's own name, cut
    to comm's 15 characters. False for scripts: the executed file is the interpreter."""
    return bool(exepath) and comm == posixpath.basename(exepath)[:15]


def exe_fields(rec: ExecRecord) -> dict[str, Any]:
    """The exec event's fields from what the kernel executed; none for a failed exec."""
    ev: dict[str, Any] = {}
    exe = rec.exe
    if exe is not None:
        ev["proc.exe_ino"] = exe.ino
        ev["proc.exe_ino_ctime"] = exe.ctime_ns
        ev["proc.exe_ino_mtime"] = exe.mtime_ns
        ev["proc.is_exe_writable"] = exe.writable_by(rec.h.uid, rec.h.gid)
        ev["proc.exe_deleted"] = exe.deleted
        ev["proc.is_exe_upper_layer"] = rec.layer is Layer.UPPER
        ev["proc.is_exe_lower_layer"] = rec.layer is Layer.LOWER
        if exe.path is not None:
            ev["proc.exepath"] = exe.path
            ev["proc.is_name_exe"] = name_is_exe(rec.h.comm, exe.path)
    task = rec.task
    if task is not None:
        ev["proc.tty"] = task.tty
        ev["proc.sid"] = task.sid
        ev["proc.vpgid"] = task.vpgid
        ev["user.loginuid"] = -1 if task.loginuid == 0xFFFFFFFF else task.loginuid
        ev["cgroup.v1_id"] = task.cgroup1_id
        if task.cwd is not None:
            # Falco's cwd ends with "/": `proc.cwd startswith "/dev/shm/"` holds in /dev/shm.
            ev["proc.cwd"] = task.cwd.rstrip("/") + "/"
    return ev


def age_fields(ev: dict[str, Any]) -> dict[str, Any]:
    """How long before this exec the executed inode last changed (both wall clock, ns)."""
    ctime, now = ev.get("proc.exe_ino_ctime"), ev.get("evt.ts")
    if not isinstance(ctime, int) or not isinstance(now, int) or ctime <= 0:
        return {}
    return {"proc.exe_ino_ctime_duration_proc_start": now - ctime}
