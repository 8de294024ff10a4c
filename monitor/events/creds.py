"""thread.cap_*: the task's capability sets as the kernel held them at the event.

Read in the kernel from task->cred at the syscall's exit (bpf/sensor.bpf.c, read_caps),
on syscall and exec records: a process cannot claim or hide a capability by its name or
arguments. Rendered as Falco does (libsinsp sinsp_utils::caps_to_string): the names of
the set bits, lowest first, separated by one space; "" for an empty set.
"""

from __future__ import annotations

import functools
from typing import Any

from monitor.events.fields import Field
from monitor.kernel.records import Caps

# Capability n is bit n; the names and their order are linux/capability.h's (and libsinsp's).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

FIELDS = (
    Field("thread.cap_effective", str, "effective capabilities of the calling task at the event, read "
          "by the kernel from task->cred (syscall and exec events; after a successful exec, the new "
          "image's), space-separated names as Falco prints them: \"CAP_CHOWN CAP_DAC_OVERRIDE ...\""),
    Field("thread.cap_permitted", str, "permitted capabilities, as thread.cap_effective"),
    Field("thread.cap_inheritable", str, "inheritable capabilities, as thread.cap_effective"),
)


# Hosts hold a handful of distinct capability sets (root's full set on most events), and
# rendering one of 41 names was a sixth of a root process's event decode, live.
@functools.lru_cache(maxsize=64)
def caps_text(mask: int) -> str:
    """Falco's rendering: the names of the bits set, lowest first; bits without a name
    (a newer kernel's capabilities) are left out, as libsinsp leaves them out."""
    return " ".join(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


CAPS_FIELDS = frozenset({"thread.cap_effective", "thread.cap_permitted", "thread.cap_inheritable"})


def caps_fields(caps: Caps | None) -> dict[str, Any]:
    if caps is None:
        return {}
    return {
        "thread.cap_effective": caps_text(caps.effective),
        "thread.cap_permitted": caps_text(caps.permitted),
        "thread.cap_inheritable": caps_text(caps.inheritable),
    }
