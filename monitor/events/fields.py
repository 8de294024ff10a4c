"""Field declarations, Falco-style: the ones every event carries and the groups families share.

Each event family in monitor.events.catalog declares the fields it sets; the table rules
and `ringwatch rules fields` use is built there from these declarations and the families.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: type  # str, int, bool or list
    desc: str


# Set on every event from the record header (and the lineage stage for the proc.* image).
COMMON = (
    Field("evt.id", str, "unique id of the event on this host (boot, CPU, time): de-duplicates "
          "at-least-once delivery"),
    Field("evt.type", str, "event type: execve, execveat, fork, exit, ..."),
    Field("evt.time", str, "wall-clock time, RFC 3339 UTC with nanoseconds"),
    Field("evt.ts", int, "wall-clock time in ns since the epoch"),
    Field("evt.mono_ns", int, "CLOCK_MONOTONIC ns when the kernel saw the event"),
    Field("evt.cpu", int, "CPU the event happened on"),
    Field("proc.pid", int, "process id (tgid)"),
    Field("proc.tid", int, "thread id"),
    Field("proc.ppid", int, "parent process id (real parent's tgid)"),
    Field("proc.name", str, "process name (comm, at most 15 characters)"),
    Field("proc.exe", str, "the first argument, argv[0], as Falco defines it (whatever the caller "
          "chose: trust proc.exepath instead); on other events, the process's last exec's"),
    Field("proc.args", str, "arguments after argv[0], space separated"),
    Field("proc.argv", list, "argument vector"),
    Field("proc.cmdline", str, "proc.name and proc.args, like Falco"),
    Field("proc.start_ns", int, "process start, boot-based ns"),
    Field("proc.duration", int, "ns since the process started, at the event (Falco's meaning)"),
    Field("user.uid", int, "real user id"),
    Field("user.name", str, "user name for user.uid, empty if unknown"),
    Field("group.gid", int, "real group id"),
    Field("cgroup.id", int, "cgroup v2 id"),
)

# Added by the lineage stage from the kernel's lineage map.
LINEAGE = (
    Field("proc.exec_id", str, "unique id of this process image on this host"),
    Field("proc.exepath", str, "the file the kernel executed, resolved in the kernel from the exec's "
          "struct file (dentry and mount walk): symlinks, relative paths, execveat dirfds and "
          "AT_EMPTY_PATH cannot hide it; for a script, its interpreter; /memfd:NAME for a memfd"),
    Field("proc.is_name_exe", bool, "proc.name is the executed file's own name (cut to 15 "
          "characters): false after prctl(PR_SET_NAME), a write to /proc/self/comm, an exec "
          "through a differently named symlink, and for scripts (the file is the interpreter)"),
    Field("proc.pexe", str, "parent's argv[0] (Falco's meaning; proc.pexepath is its resolved file)"),
    Field("proc.pexepath", str, "the file the parent executed, resolved by the kernel"),
    Field("proc.pname", str, "parent's name"),
    Field("proc.pcmdline", str, "parent's command line"),
    Field("proc.pexec_id", str, "parent's exec id"),
    Field("proc.aname", list, "names of the process and its ancestors, as Falco indexes them: [0] "
          "is the process itself, [1] the parent, ...; proc.aname[1:] is the ancestors alone"),
    Field("proc.apid", list, "pids, as proc.aname: [0] the process, [1] the parent, ..."),
    Field("proc.aexe", list, "argv[0] of the process and its ancestors, as proc.aname"),
    Field("proc.aexepath", list, "files the process and its ancestors executed, resolved by the "
          "kernel, as proc.aname"),
)

# Syscall events: kernel coalescing (bpf/sensor.bpf.c, emit_syscall) folds identical
# occurrences into one event.
COALESCE = (
    Field("evt.count", int, "syscall events: identical occurrences (same process image, syscall, "
          "arguments, paths, result) this event stands for; the kernel coalesces repeats"),
    Field("evt.first_ts", int, "syscall events: wall-clock ns of the first of those occurrences"),
    Field("evt.last_ts", int, "syscall events: wall-clock ns of the last of them (= evt.ts)"),
    Field("evt.count_only", bool, "syscall events: only reports evt.count more repeats of an event "
          "already delivered (the kernel coalesced them and no later record carried them); rules "
          "do not see it"),
)

# Syscalls and execs: what the call returned.
RESULT = (
    Field("evt.res", str, "result as Falco gives it: SUCCESS, or the errno name of a failed "
          "syscall (ENOENT, EPERM, ...)"),
    Field("evt.rawres", int, "the syscall's return value (an fd, a count, 0, or -errno)"),
    Field("evt.failed", bool, "the syscall returned an error"),
    Field("evt.errno", str, "errno name of a failed syscall, e.g. ENOENT; empty on success"),
)


def result_fields(ret: int) -> dict[str, object]:
    """The RESULT fields of a return value."""
    name = errno.errorcode.get(-ret, str(-ret)) if ret < 0 else ""
    return {"evt.res": name or "SUCCESS", "evt.rawres": ret, "evt.failed": ret < 0, "evt.errno": name}

FD_NAME = Field("fd.name", str, "file path: for an open that returned a file, that file's path resolved "
                "by the kernel (symlinks and .. followed, see fd.is_resolved); else the path given, "
                "made absolute and normalised when it can be known (the executable for exec "
                "denials); socket peer ip:port, unix socket path, or memfd:NAME")
FD_TYPE = Field("fd.type", str, "file, ipv4, ipv6, unix, memfd, ...")
FD_NUM = Field("fd.num", int, "file descriptor returned (open, socket, memfd_create); -1 on failure")

# A path argument, resolved as the kernel saw it (monitor.events.paths).
PATH = (
    FD_NAME,
    Field("fd.nameraw", str, "the path exactly as passed to the syscall"),
    Field("fd.relative", bool, "the syscall was given a relative path (joined with cwd or dirfd)"),
    Field("fd.name_truncated", bool, "the path was cut at 255 bytes by the kernel"),
    Field("fd.directory", str, "directory part of fd.name"),
    Field("fd.filename", str, "last component of fd.name"),
    FD_TYPE,
)

FD_RIP = Field("fd.rip", str, "remote IP address (connect, dup of a socket)")
FD_RPORT = Field("fd.rport", int, "remote port (connect, dup of a socket)")
# Where a socket leads (connect, and a socket dup'ed onto stdio).
SOCKET = (
    FD_NAME,
    FD_TYPE,
    Field("fd.sockfamily", str, "AF_INET, AF_INET6, AF_UNIX, ... (connect, dup of a socket)"),
    FD_RIP,
    FD_RPORT,
)

ARG_FLAGS = Field("evt.arg.flags", str, "open flags (O_RDONLY|O_CLOEXEC), unlinkat AT_REMOVEDIR, memfd "
                  "MFD_*, *at AT_*, setxattr XATTR_*, unshare CLONE_*, userfaultfd flags, io_uring_setup "
                  "IORING_SETUP_*")
ARG_MODE = Field("evt.arg.mode", int, "permission bits (open with O_CREAT, chmod)")
ARG_DIRFD = Field("evt.arg.dirfd", int, "directory fd of an *at syscall (-100 is AT_FDCWD)")
ARG_FD = Field("evt.arg.fd", int, "fd argument (connect, finit_module, fd-based calls: ftruncate, "
               "fchmod, fchown, fsetxattr, setns, bind, listen, accept, sendto, ...)")
FD_L4PROTO = Field("fd.l4proto", str, "transport of the socket the kernel holds behind the fd (its "
                   "sk_type and sk_protocol, not the syscall's arguments), Falco's names: tcp, udp, "
                   "icmp, raw; unset for non-IP sockets (connect, socket, dup of a socket)")
FD_SIP = Field("fd.sip", str, "destination (server) IP address of a connect (as fd.rip)")
FD_SIP_NAME = Field("fd.sip.name", list, "the host names rules compare it with (fd.sip.name = N, "
                    "in (...)) whose addresses include fd.sip, resolved in the background and refreshed "
                    "(Falco's DNS manager semantics, monitor/events/dns.py); no reverse lookup")
FD_SPORT = Field("fd.sport", int, "destination (server) port of a connect (as fd.rport)")

# Added by the enrich stage (monitor.events.container), Falco's names and meanings.
CONTAINER = (
    Field("container.id", str, "12-character container id; \"host\" for host processes, \"\" if unknown"),
    Field("container.full_id", str, "the full 64-character container id"),
    Field("container.name", str, "container name from the runtime's state (\"host\" on the host)"),
    Field("container.type", str, "runtime: docker, podman, containerd, cri-o"),
    Field("container.image", str, "image reference the container runs, e.g. docker.io/library/nginx:1.25"),
    Field("container.image.repository", str, "image without its tag"),
    Field("container.image.tag", str, "image tag"),
    Field("container.privileged", bool, "the container runs privileged (when the runtime's state says)"),
    Field("k8s.ns.name", str, "Kubernetes namespace of the container's pod, from the runtime's state "
          "(the io.kubernetes.pod.namespace label kubelet sets; docker and podman): \"\" on the host "
          "and outside Kubernetes; unset when the runtime's state is not read (containerd, CRI-O)"),
)
