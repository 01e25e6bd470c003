"""The one SQLite file behind the local registry and the run log.

One connection per (process, path), shared by threads behind a lock: writes are short,
and WAL lets other processes read while one writes. ``busy_timeout`` makes a second
process wait for the write lock instead of failing with "database is locked".
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import config
from .migrations import migrate

_open: dict[tuple[int, str], Database] = {}
_open_lock = threading.Lock()


def utcnow_iso() -> str:
    """The current time as ISO-8601 UTC text with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def dumps(value: Any) -> str:
    """JSON for storage: compact, non-ASCII kept, unknown objects as strings."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class Database:
    """A migrated SQLite database with a lock for its shared connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            str(path), timeout=60, check_same_thread=False, isolation_level=None
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 60000")
        _enable_wal(self.conn)
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        with self.lock:
            migrate(self.conn)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no upgrade deadlocks)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()


def _enable_wal(conn: sqlite3.Connection, wait_s: float = 30.0) -> None:
    """Switch the file to WAL. When two processes create a new file at once, the switch
    can meet the other's lock; SQLite's busy handler does not cover it, so retry here."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_db(path: Path | None = None) -> Database:
    """The process's shared :class:`Database` for ``path`` (default: under PL_MAGIC_HOME)."""
    path = path or config.db_path()
    key = (os.getpid(), str(path.resolve()))
    with _open_lock:
        db = _open.get(key)
        if db is None:
            db = _open[key] = Database(path)
        return db
