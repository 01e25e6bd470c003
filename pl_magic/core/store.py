"""The one SQLite file behind the local registry and the run log.

One connection per (process, path), shared by threads behind a lock: writes are short,
and WAL lets other processes read while one writes. ``busy_timeout`` makes a second
process wait for the write lock instead of failing with "database is locked".

A write made after a provider call must not lose the reply when the file cannot take it
(another process holds the write lock, the disk is full, the file is damaged):
:func:`write_or_keep` then keeps the statements in memory, in order, and writes them at the
next chance — the next such write, the next :func:`open_db` (``pl_magic.runs()`` reads
through it) or the interpreter's exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import config
from .config import env_float
from .errors import ConfigurationError
from .migrations import migrate

_open: dict[tuple[int, str], Database] = {}
_open_lock = threading.Lock()

#: One statement: SQL and its parameters (a :class:`Many`: run once per item).
Statement = tuple[str, Any]


class Many(list[Any]):
    """The parameters of a statement run once per item (``executemany``): many rows in one
    transaction, at C speed."""


def utcnow_iso() -> str:
    """The current time as ISO-8601 UTC text with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


#: One encoder for every call: ``json.dumps`` with options builds a new one each time, which
#: was half the time of encoding a run's small values (a batch job encodes tens of thousands).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def dumps(value: Any) -> str:
    """JSON for storage: compact, non-ASCII kept, unknown objects as strings."""
    return _ENCODER.encode(value)


def log_lock_timeout_s() -> float:
    """Seconds a run's log write waits for another process's write lock.

    A healthy writer holds the lock for milliseconds; past this wait the run is kept in
    memory (see :func:`write_or_keep`) instead of keeping the person waiting.
    """
    return max(0.0, env_float("PL_MAGIC_LOG_LOCK_TIMEOUT", 2.0))


class Database:
    """A migrated SQLite database with a lock for its shared connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            str(path), timeout=60, check_same_thread=False, isolation_level=None
        )
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout = 60000")
            _enable_wal(self.conn)
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            with self.lock:
                migrate(self.conn)
        except BaseException:
            self.conn.close()
            raise

    @contextmanager
    def write(self, timeout_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no upgrade deadlocks).

        ``timeout_s`` bounds the wait for another process's write lock (default: 60 s).
        """
        with self.lock:
            if timeout_s is None:
                self.conn.execute("BEGIN IMMEDIATE")
            else:
                self.conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                finally:
                    self.conn.execute("PRAGMA busy_timeout = 60000")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

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
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":  # already WAL: no lock needed (another may write)
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _unusable(path: Path, exc: BaseException) -> ConfigurationError:
    """The one-line error for a database file pl_magic cannot use, naming the fix."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in reason or "malformed" in reason or "corrupt" in reason
    ):
        return ConfigurationError(
            f"The pl_magic database {path} is damaged ({reason}): move it aside "
            f"(e.g. `mv {path} {path}.damaged`) and pl_magic starts a new one, or set "
            "PL_MAGIC_HOME to another directory"
        )
    if "locked" in reason or "busy" in reason:
        return ConfigurationError(
            f"The pl_magic database {path} is locked by another process ({reason}): end the "
            "other program's open transaction (e.g. a sqlite3 shell), or set PL_MAGIC_HOME to "
            "another directory"
        )
    return ConfigurationError(
        f"Cannot open the pl_magic database {path} ({reason}): check that the file and its "
        "directory are readable and writable, or set PL_MAGIC_HOME to a writable directory"
    )


def _home_error(exc: OSError) -> ConfigurationError:
    raw = os.environ.get("PL_MAGIC_HOME") or str(Path.home() / ".pl_magic")
    home = Path(raw).expanduser()
    if home.exists() and not home.is_dir():
        return ConfigurationError(
            f"PL_MAGIC_HOME ({raw}) is not a directory: set PL_MAGIC_HOME to a "
            "directory (pl_magic creates it), or move the file away"
        )
    reason = exc.strerror or type(exc).__name__
    return ConfigurationError(
        f"Cannot create pl_magic's directory {raw} ({reason}): set PL_MAGIC_HOME to a "
        "writable directory"
    )


def resolve_db_path(path: Path | None = None) -> Path:
    """``path``, or the database file under PL_MAGIC_HOME (created if needed).

    Raises :class:`ConfigurationError` (one line naming the fix) when PL_MAGIC_HOME is a
    file or cannot be created.
    """
    if path is not None:
        return path
    try:
        return config.db_path()
    except OSError as exc:
        raise _home_error(exc) from None


def open_db(path: Path | None = None) -> Database:
    """The process's shared :class:`Database` for ``path`` (default: under PL_MAGIC_HOME).

    Raises :class:`ConfigurationError` naming the path and the fix when the file cannot be
    used (damaged, unreadable, or PL_MAGIC_HOME is a file). Writes kept in memory for this
    file are written first (see :func:`write_or_keep`).
    """
    path = resolve_db_path(path)
    key = (os.getpid(), str(path.resolve()))
    with _open_lock:
        db = _open.get(key)
        if db is None:
            try:
                db = Database(path)
            except sqlite3.DatabaseError as exc:
                raise _unusable(path, exc) from None
            _open[key] = db
    if _kept.get(key[1]):
        flush_kept(db)
    return db


class OnDatabase:
    """Base of what reads and writes the SQLite file (the run log, the score log, the local
    registry): given a :class:`Database`, or opening the shared one on first use, so that
    building one does no I/O."""

    def __init__(self, db: Database | None = None) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        """The database (opened on first use)."""
        if self._db is None:
            self._db = open_db()
        return self._db


# -- writes kept in memory --------------------------------------------------------------

#: Per database file: groups of statements not written yet, oldest first.
_kept: dict[str, list[list[Statement]]] = {}
_kept_lock = threading.Lock()
#: Per database file: until when a write does not wait for the lock again (monotonic).
_lock_cooldown: dict[str, float] = {}


class KeptInMemory(Exception):
    """A write could not be done now; its statements are kept and written later."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def kept_count(path: Path | None = None) -> int:
    """How many writes for ``path`` (default: PL_MAGIC_HOME's file) wait in memory."""
    try:
        key = str(resolve_db_path(path).resolve())
    except ConfigurationError:
        return sum(len(groups) for groups in _kept.values())
    return len(_kept.get(key, []))


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ConfigurationError):
        return text
    if "disk is full" in text or "disk full" in text:
        return "the disk is full"
    if "locked" in text or "busy" in text:
        return "another process holds its write lock"
    if "not a database" in text or "malformed" in text:
        return f"the file is damaged: {text}"
    return text


def _drain(db: Database, groups: list[list[Statement]], timeout_s: float) -> None:
    """Write kept groups oldest first, one transaction each, dropping each once written."""
    while groups:
        with db.write(timeout_s) as conn:
            for sql, params in groups[0]:
                if isinstance(params, Many):
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params)
        del groups[0]


def flush_kept(db: Database, timeout_s: float | None = None) -> int:
    """Write what is kept in memory for ``db``'s file; how many writes are still kept."""
    key = str(db.path.resolve())
    with _kept_lock:
        groups = _kept.get(key)
        if not groups:
            return 0
        try:
            _drain(db, groups, log_lock_timeout_s() if timeout_s is None else timeout_s)
        except (sqlite3.Error, OSError):
            pass  # still kept; a later write or read tries again
        else:
            _lock_cooldown.pop(key, None)
        return len(groups)


def write_or_keep(db: Database | None, statements: Sequence[Statement]) -> None:
    """Write ``statements`` in one transaction, after any writes kept earlier for the file.

    ``db`` is the open database, or None for PL_MAGIC_HOME's file (opened here). When the
    file cannot take them (locked past :func:`log_lock_timeout_s`, full, damaged, cannot be
    opened), they are kept in memory, in order, and :class:`KeptInMemory` says why. Right
    after a lock wait ran out, the next writes do not wait again (they try once), so that
    a comparison's runs do not each wait while another process holds the lock.
    """
    group = list(statements)
    if db is None:
        try:
            db = open_db()
        except ConfigurationError as exc:
            try:
                key = str(resolve_db_path().resolve())
            except ConfigurationError:
                key = os.environ.get("PL_MAGIC_HOME") or "~/.pl_magic"
            with _kept_lock:
                _kept.setdefault(key, []).append(group)
            raise KeptInMemory(key, _reason(exc)) from None
    key = str(db.path.resolve())
    with _kept_lock:
        groups = _kept.setdefault(key, [])
        groups.append(group)
        waited_recently = time.monotonic() < _lock_cooldown.get(key, 0.0)
        try:
            _drain(db, groups, 0.0 if waited_recently else log_lock_timeout_s())
        except (sqlite3.Error, OSError) as exc:
            reason = _reason(exc)
            if "write lock" in reason and not waited_recently:
                _lock_cooldown[key] = time.monotonic() + max(1.0, log_lock_timeout_s())
            raise KeptInMemory(db.path, reason) from None
        _lock_cooldown.pop(key, None)


@atexit.register
def _flush_at_exit() -> None:
    """Write what is still kept when the interpreter exits (waiting longer for the lock)."""
    for (pid, _path), db in list(_open.items()):
        if pid == os.getpid():
            with contextlib.suppress(Exception):  # exiting: nothing more can be done
                flush_kept(db, timeout_s=10.0)
