"""A bounded, ordered, on-disk spool for records a network sink could not deliver.

SQLite (stdlib) is the store: appends are transactional, a crash leaves either the whole
batch or none of it, and the file is readable by `ringwatch stats` while the daemon runs
(WAL mode). Rows are ordered by the sequence number the sink assigned when the record was
emitted, not by insertion time, so a record whose delivery failed late still goes back in
front of records that were spooled while it was in flight.

The bound is enforced on append: what does not fit is refused and counted, newest first,
so the oldest evidence of an incident survives a long outage. The drop total is kept in
the file, so it is still reported after a restart.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import UserError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    rid TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('dropped', 0);
"""


class SpoolError(UserError):
    pass


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    rid: str  # the record's unique id, so consumers can de-duplicate

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key or b"")


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int
    bytes: int
    dropped: int


def _create_private(path: Path) -> None:
    """Make the database file 0600 before SQLite does (it would use 0644 minus the umask).

    SQLite gives the -wal and -shm files the database file's mode, so they follow. The
    spool holds alerts and events, which name users, commands and files.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class Spool:
    """Not thread-safe: one owner thread at a time (the sink's sender)."""

    def __init__(self, path: Path, max_records: int, max_bytes: int) -> None:
        if max_records < 1 or max_bytes < 1:
            raise SpoolError(f"{path}: spool bounds must be positive")
        self.path = path
        self.max_records = max_records
        self.max_bytes = max_bytes
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _create_private(path)
            # The sink opens the spool on the caller's thread and then hands it to its
            # sender thread; only one thread uses it at a time.
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of ringwatch; only power loss can take
            # the last transactions, which is the price of not fsyncing every append.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value) + COALESCE(LENGTH(key), 0)), 0),"
                " COALESCE(MAX(seq), 0) FROM spool"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"{path}: cannot open spool: {exc}") from exc
        self._depth = int(row[0])
        self._bytes = int(row[1])
        self._max_seq = int(row[2])
        self._dropped = self._meta("dropped")

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    @property
    def max_seq(self) -> int:
        """Highest sequence number ever stored here (0 if none): new records go above it."""
        return self._max_seq

    def __len__(self) -> int:
        return self._depth

    def append(self, records: list[SpoolRecord]) -> int:
        """Store what fits, in one transaction; returns how many were refused (and counted)."""
        accepted: list[SpoolRecord] = []
        depth, size = self._depth, self._bytes
        for r in records:
            if depth + 1 > self.max_records or size + r.size > self.max_bytes:
                continue
            accepted.append(r)
            depth += 1
            size += r.size
        refused = len(records) - len(accepted)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            # OR IGNORE: a record re-spooled after a partial failure may already be here.
            cur = self._db.executemany(
                "INSERT OR IGNORE INTO spool (seq, topic, key, value, rid) VALUES (?, ?, ?, ?, ?)",
                [(r.seq, r.topic, r.key, r.value, r.rid) for r in accepted],
            )
            inserted = cur.rowcount if cur.rowcount >= 0 else len(accepted)
            if refused:
                self._db.execute(
                    "UPDATE meta SET value = value + ? WHERE name = 'dropped'", (refused,)
                )
        if inserted == len(accepted):
            self._depth, self._bytes = depth, size
        else:
            self._recount()
        if accepted:
            self._max_seq = max(self._max_seq, max(r.seq for r in accepted))
        self._dropped += refused
        return refused

    def peek(self, limit: int) -> list[SpoolRecord]:
        """The oldest `limit` records, in sequence order; they stay until delete_through()."""
        rows = self._db.execute(
            "SELECT seq, topic, key, value, rid FROM spool ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [SpoolRecord(int(s), str(t), k, bytes(v), str(rid)) for s, t, k, v, rid in rows]

    def delete_through(self, seq: int) -> None:
        """Forget every record up to and including `seq` (they were delivered)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM spool WHERE seq <= ?", (seq,))
        self._recount()

    def _recount(self) -> None:
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(value) + COALESCE(LENGTH(key), 0)), 0)"
            " FROM spool"
        ).fetchone()
        self._depth, self._bytes = int(row[0]), int(row[1])

    def stats(self) -> SpoolStats:
        return SpoolStats(depth=self._depth, bytes=self._bytes, dropped=self._dropped)

    def close(self) -> None:
        self._db.close()


def read_stats(path: Path) -> SpoolStats:
    """Depth and drop total of a spool file, read-only, for `ringwatch stats`."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SpoolError(f"{path}: cannot open spool: {exc}") from exc
    try:
        depth, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(value) + COALESCE(LENGTH(key), 0)), 0)"
            " FROM spool"
        ).fetchone()
        row = db.execute("SELECT value FROM meta WHERE name = 'dropped'").fetchone()
        return SpoolStats(depth=int(depth), bytes=int(size), dropped=int(row[0]) if row else 0)
    except sqlite3.Error as exc:
        raise SpoolError(f"{path}: not a ringwatch spool: {exc}") from exc
    finally:
        db.close()
