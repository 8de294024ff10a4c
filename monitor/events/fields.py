"""The event fields rules and outputs may name, Falco-style.

One catalog: the enricher only emits these names, the rules loader rejects any other
name at load time, and `ringwatch fields` prints this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: type  # str, int, bool or list
    desc: str


_FIELDS = [
    Field("evt.id", str, "unique id of the event on this host (boot, CPU, time): de-duplicates "
          "at-least-once delivery"),
    Field("evt.type", str, "event type: execve, execveat, fork, exit, ..."),
    Field("evt.time", str, "wall-clock time, RFC 3339 UTC with nanoseconds"),
    Field("evt.ts", int, "wall-clock time in ns since the epoch"),
    Field("evt.mono_ns", int, "CLOCK_MONOTONIC ns when the kernel saw the event"),
    Field("evt.cpu", int, "CPU the event happened on"),
    Field("evt.res", int, "syscall return value (0 or -errno for execve)"),
    Field("evt.failed", bool, "the syscall returned an error"),
    Field("evt.errno", str, "errno name of a failed syscall, e.g. ENOENT; empty on success"),
    Field("proc.pid", int, "process id (tgid)"),
    Field("proc.tid", int, "thread id"),
    Field("proc.ppid", int, "parent process id (real parent's tgid)"),
    Field("proc.name", str, "process name (comm, at most 15 characters)"),
    Field("proc.exe", str, "path of the executable as passed to execve (Falco: the first "
          "argument); on other events, the lineage's proc.exepath"),
    Field("proc.exepath", str, "the file the kernel executed, resolved in the kernel from the exec's "
          "struct file (dentry and mount walk): symlinks, relative paths, execveat dirfds and "
          "AT_EMPTY_PATH cannot hide it; for a script, its interpreter; /memfd:NAME for a memfd"),
    Field("proc.exe_ino", int, "inode number of the executed file"),
    Field("proc.exe_ino_ctime", int, "inode change time of the executed file, ns since the epoch"),
    Field("proc.exe_ino_mtime", int, "modification time of the executed file, ns since the epoch"),
    Field("proc.is_exe_writable", bool, "the executed file is writable by the process's real user: "
          "owner/group/other write bits against its uid and gid (root: always); supplementary "
          "groups, ACLs and read-only mounts are not considered"),
    Field("proc.exe_deleted", bool, "the executed file had no name left when it ran (unlinked)"),
    Field("proc.is_name_exe", bool, "proc.name is the executed file's own name (cut to 15 "
          "characters): false after prctl(PR_SET_NAME), a write to /proc/self/comm, an exec "
          "through a differently named symlink, and for scripts (the file is the interpreter)"),
    Field("proc.args", str, "arguments after argv[0], space separated"),
    Field("proc.argv", list, "argument vector"),
    Field("proc.cmdline", str, "proc.name and proc.args, like Falco"),
    Field("proc.argv_truncated", bool, "argv was cut at the kernel's bound"),
    Field("proc.is_exe_from_memfd", bool, "the executed file is a memfd (fileless execution)"),
    Field("proc.start_ns", int, "process start, boot-based ns"),
    Field("proc.exit_code", int, "exit code (exit events)"),
    Field("proc.exit_signal", int, "terminating signal, 0 if none (exit events)"),
    Field("proc.child_pid", int, "the new process (fork events)"),
    Field("proc.exec_id", str, "unique id of this process image on this host"),
    Field("proc.cwd", str, "working directory at exec, resolved by the kernel (exec events)"),
    Field("proc.tty", int, "controlling terminal at exec, encoded as /proc/PID/stat's tty_nr; 0 if "
          "none (exec events)"),
    Field("proc.sid", int, "session id at exec, in the process's pid namespace (exec events)"),
    Field("proc.vpgid", int, "process group id at exec, in the process's pid namespace (exec events)"),
    Field("user.loginuid", int, "audit login uid at exec (who logged in, kept across su/sudo); -1 if "
          "never set (exec events)"),
    Field("proc.pexe", str, "parent's executable path (the kernel-resolved one, as proc.pexepath)"),
    Field("proc.pexepath", str, "the file the parent executed, resolved by the kernel"),
    Field("proc.pname", str, "parent's name"),
    Field("proc.pcmdline", str, "parent's command line"),
    Field("proc.pexec_id", str, "parent's exec id"),
    Field("proc.aname", list, "ancestor names, nearest first: [0] is the parent (unlike Falco, "
          "whose aname[0] is the process itself)"),
    Field("proc.apid", list, "ancestor pids, nearest first"),
    Field("proc.aexe", list, "ancestor executable paths, nearest first (as proc.aexepath)"),
    Field("proc.aexepath", list, "files the ancestors executed, resolved by the kernel, nearest first"),
    Field("fd.name", str, "file path: for an open that returned a file, that file's path resolved by "
          "the kernel (symlinks and .. followed, see fd.is_resolved); else the path given, made "
          "absolute and normalised when it can be known (the executable for exec denials); "
          "socket peer ip:port, unix socket path, or memfd:NAME"),
    Field("fd.is_resolved", bool, "fd.name is the kernel's path of the file actually opened"),
    Field("fd.nameraw", str, "the path exactly as passed to the syscall"),
    Field("fd.relative", bool, "the syscall was given a relative path (joined with cwd or dirfd)"),
    Field("fd.name_truncated", bool, "the path was cut at 255 bytes by the kernel"),
    Field("fd.directory", str, "directory part of fd.name"),
    Field("fd.filename", str, "last component of fd.name"),
    Field("fd.type", str, "file, ipv4, ipv6, unix, memfd, ..."),
    Field("fd.num", int, "file descriptor returned (open, socket, memfd_create); -1 on failure"),
    Field("fd.sockfamily", str, "AF_INET, AF_INET6, AF_UNIX, ... (connect, dup of a socket)"),
    Field("fd.rip", str, "remote IP address (connect, dup of a socket)"),
    Field("fd.rport", int, "remote port (connect, dup of a socket)"),
    Field("evt.arg.flags", str, "open flags (O_RDONLY|O_CLOEXEC), unlinkat AT_REMOVEDIR, memfd MFD_*"),
    Field("evt.arg.mode", int, "permission bits (open with O_CREAT, chmod)"),
    Field("evt.arg.dirfd", int, "directory fd of an *at syscall (-100 is AT_FDCWD)"),
    Field("evt.is_open_read", bool, "opened for reading"),
    Field("evt.is_open_write", bool, "opened for writing (or truncation)"),
    Field("evt.arg.oldpath", str, "rename/link source"),
    Field("evt.arg.newpath", str, "rename/link destination"),
    Field("evt.arg.target", str, "symlink target, as given"),
    Field("evt.arg.linkpath", str, "symlink path created"),
    Field("evt.arg.source", str, "mount source"),
    Field("evt.arg.fstype", str, "mount filesystem type"),
    Field("evt.arg.domain", str, "socket domain: AF_INET, AF_PACKET, ..."),
    Field("evt.arg.sotype", str, "socket type: SOCK_STREAM, SOCK_RAW, ..."),
    Field("evt.arg.proto", int, "socket protocol"),
    Field("evt.arg.request", str, "ptrace request: PTRACE_ATTACH, PTRACE_TRACEME, ..."),
    Field("evt.arg.pid", int, "ptrace target pid"),
    Field("evt.arg.uid", int, "uid requested by set*uid (the effective one); -1 = unchanged"),
    Field("evt.arg.gid", int, "gid requested by set*gid (the effective one); -1 = unchanged"),
    Field("evt.arg.cmd", str, "bpf command: BPF_PROG_LOAD, BPF_MAP_CREATE, ..."),
    Field("evt.arg.name", str, "memfd_create name"),
    Field("evt.arg.fd", int, "fd argument (connect, finit_module)"),
    Field("evt.arg.oldfd", int, "dup2/dup3 source fd"),
    Field("evt.arg.newfd", int, "dup2/dup3 target fd (0, 1 or 2: recorded only then)"),
    Field("user.uid", int, "real user id"),
    Field("user.name", str, "user name for user.uid, empty if unknown"),
    Field("group.gid", int, "real group id"),
    Field("cgroup.id", int, "cgroup v2 id"),
    # Enforcement (deny/audit rules, bpf/lsm.bpf.c): conditions of deny rules and the
    # fields of evt.type "enforce" events.
    Field("fd.sip", str, "destination (server) IP address of a connect (as fd.rip)"),
    Field("fd.snet", str, "destination network, CIDR (deny rules: fd.snet in [\"10.0.0.0/8\"])"),
    Field("fd.sport", int, "destination (server) port of a connect (as fd.rport)"),
    Field("enforce.action", str, "deny (the kernel refused the operation) or audit (reported only)"),
    Field("enforce.op", str, "operation an enforce event is about: exec, open or connect"),
    Field("enforce.rule", str, "name of the deny/audit rule that matched"),
    Field("enforce.rule_id", int, "kernel id of that rule (changes across reloads)"),
]

FIELDS: dict[str, Field] = {f.name: f for f in _FIELDS}


def is_field(name: str) -> bool:
    return name in FIELDS


def describe() -> list[dict[str, Any]]:
    return [{"name": f.name, "type": f.type.__name__, "desc": f.desc} for f in _FIELDS]
