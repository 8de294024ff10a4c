"""Paths as the kernel saw them: relative ones joined with the directory they were relative to."""

from __future__ import annotations

import os
import posixpath

AT_FDCWD = -100


def normpath(path: str) -> str:
    """posixpath.normpath, and a leading "//" is "/" (POSIX leaves it alone; Linux does not
    give it a meaning, and "//etc/shadow" must not slip past `startswith "/etc/"`)."""
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/") if norm.startswith("//") else norm


class PathResolver:
    """Joins relative paths with the process's working directory or dirfd.

    Read from /proc at decode time: a process that already exited leaves the path
    relative (fd.relative stays true and fd.name is the raw path).
    """

    def __init__(self, proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self.unresolved = 0

    def base(self, tid: int, dirfd: int) -> str | None:
        link = "cwd" if dirfd == AT_FDCWD else f"fd/{dirfd}"
        try:
            return os.readlink(f"{self.proc_root}/{tid}/{link}")
        except OSError:
            self.unresolved += 1
            return None

    def resolve(self, tid: int, dirfd: int, path: str, kernel_base: str | None = None) -> tuple[str, bool]:
        """(absolute normalised path, or the raw one if it cannot be known; was relative).

        The kernel's base (captured during the syscall) is authoritative; /proc is only
        asked for paths the kernel did not capture a base for, and may have moved on.
        """
        if path.startswith("/"):
            return normpath(path), False
        if not path:
            return path, False
        base = kernel_base if kernel_base is not None else self.base(tid, dirfd)
        return (normpath(posixpath.join(base, path)) if base else path), True

    def real(self, tid: int, path: str, follow_last: bool) -> str:
        """An absolute path with the symlinks in it followed, as the syscall followed them
        (the last component only if the call follows it), read from the filesystem now.

        For path-based calls the kernel programs see only the string and the directory a
        relative one started from; a link in the middle (/tmp/lnk/x, lnk -> /var/log) is
        resolved here, after the fact: a link swapped in between is not seen. Processes
        with another root (containers, chroots) keep the path as given; one that has
        exited is resolved from the host's root.
        """
        if not path.startswith("/"):
            return path
        try:
            if os.readlink(f"{self.proc_root}/{tid}/root") != "/":
                return path
        except OSError:
            pass  # gone already (mkdir, touch, ...): resolved from the host's root
        if follow_last:
            return os.path.realpath(path)
        head, tail = posixpath.split(path)
        if not tail:
            return os.path.realpath(path)
        return posixpath.join(os.path.realpath(head or "/"), tail)
