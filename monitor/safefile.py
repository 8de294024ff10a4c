"""Refuse rules and config that someone other than root could have written (sshd StrictModes).

A rules file decides what the monitor reports and denies; a user who can write one, or
replace it by renaming inside a directory they can write, can switch detection off. So
the file, after symlinks are resolved, and every directory above it up to / must be
owned by root (or by the user running the command: `rules validate` on one's own file
grants nothing) and not writable by group or others.

One exception, as for /tmp: a directory with the sticky bit lets only an entry's owner
rename or remove it, so a world-writable sticky directory is safe above a root-owned
entry (whose owner is checked on its own). The packaged default rules are part of the
installed code and are trusted as the code is.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from monitor.errors import ConfigError

OVERRIDE_HINT = "or pass --allow-unsafe-files (development only)"


class UnsafeFileError(ConfigError):
    """A rules or config file, or a directory above it, is writable by someone other than root."""


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _problem(path: Path, st: os.stat_result, trusted: frozenset[int], below_sticky_ok: bool) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    shown = f"mode {mode:04o}, owner {_owner(st.st_uid)}"
    if st.st_uid not in trusted:
        return f"{path} is not owned by root ({shown})"
    if mode & 0o022 and not (below_sticky_ok and stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX):
        return f"{path} is writable by group or others ({shown})"
    return None


def unsafe_reason(path: Path, uid: int | None = None) -> str | None:
    """Why `path` cannot be trusted, or None; `uid` is the user besides root who may own it."""
    uid = os.geteuid() if uid is None else uid
    trusted = frozenset({0, uid})
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except OSError:
        return None  # reading it reports the error, with the reader's wording
    reason = _problem(real, st, trusted, below_sticky_ok=False)
    if reason is not None:
        return reason
    # The directories above the path as given too: whoever can write the one holding a
    # symlink can point it elsewhere.
    given = Path(os.path.abspath(path))
    for parent in dict.fromkeys([*real.parents, *given.parents]):
        try:
            pst = os.stat(parent)
        except OSError as exc:
            return f"{parent}: cannot check: {exc.strerror}"
        reason = _problem(parent, pst, trusted, below_sticky_ok=True)
        if reason is not None:
            return reason
    return None


def check(path: Path, what: str) -> None:
    """Raise UnsafeFileError naming `path`, the offending file or directory, and the fix."""
    reason = unsafe_reason(path)
    if reason is not None:
        raise UnsafeFileError(refusal(path, what, reason))


def refusal(path: Path, what: str, reason: str) -> str:
    return (f"{path}: refusing {what}: {reason}; make it root's and not writable by group or "
            f"others (chown root, chmod go-w), {OVERRIDE_HINT}")
