"""What one deny rule asks the kernel to check, independent of how it was written."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Hook(enum.Enum):
    EXEC = "exec"  # bprm_check_security
    OPEN = "open"  # file_open
    CONNECT = "connect"  # socket_connect


class Mode(enum.Enum):
    ENFORCE = "enforce"
    AUDIT = "audit"


class UidOp(enum.Enum):
    EQ = "=="
    NE = "!="


@dataclass(frozen=True, slots=True)
class DenySpec:
    """One deny rule as kernel checks.

    A file hook matches when the resolved path equals one of `paths` or starts with one
    of `prefixes`; connect matches a destination inside one of `networks` (and `port`,
    when set). Every other condition (uid, cgroup, except_exes) narrows the match.
    """

    rule: str
    hook: Hook
    mode: Mode
    paths: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    port: int | None = None
    uid: tuple[UidOp, int] | None = None
    cgroup_id: int | None = None
    # open only: processes whose executable is one of these are not denied.
    except_exes: tuple[str, ...] = ()
