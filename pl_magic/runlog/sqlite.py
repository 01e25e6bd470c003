"""The run log: one row per run (ok, error or cancelled) in the local SQLite file.

Every run is logged locally, whatever the backend; the DataFrames read this table.
:class:`RunLog` owns every query on ``runs``: the engine writes through :meth:`RunLog.record`,
the DataFrames, the CLI and the widget read through :meth:`RunLog.query`,
:meth:`RunLog.columns` and :meth:`RunLog.by_ids`, and the PromptLayer sync claims and marks
rows through the ``sync`` methods. (:mod:`pl_magic.core.store` owns the connection and
:mod:`pl_magic.core.migrations` the schema.)

Secrets never get here: the provider's raw response is stored after :func:`errors.redact_json`.
A row the file cannot take right now (locked, full, damaged) is kept in memory and written
at the next chance (see :func:`store.write_or_keep`): a reply is never lost to the log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..core import notices
from ..core.errors import ConfigurationError, redact, redact_json
from ..core.store import (
    Database,
    KeptInMemory,
    Many,
    OnDatabase,
    Statement,
    dumps,
    flush_kept,
    utcnow_iso,
    write_or_keep,
)
from .base import STATUSES, RunRecord

_FIELDS = fields(RunRecord)
_JSON_COLUMNS = ("parameters", "input_variables", "rendered_input", "tags", "metadata")
#: JSON columns where None is stored as NULL (not as the text ``null``).
_NULLABLE_JSON_COLUMNS = ("chunk_sizes", "reply_tool_calls")
#: Every column of ``runs`` a read may name (a name is never taken from elsewhere into SQL).
_COLUMNS = frozenset(
    {f.name for f in _FIELDS} | {"scores", "sync_error", "pending_ops", "remote_request_id"}
)
#: The columns of a recorded run a replay needs (``pl-magic replay export``): no sync state,
#: no scores, no error (a recording is an ``ok`` run).
RECORDING_COLUMNS = (
    "request_id",
    "cache_key",
    "prompt_name",
    "prompt_version",
    "release_label",
    "provider",
    "model",
    "api_type",
    "parameters",
    "input_variables",
    "rendered_input",
    "tags",
    "metadata",
    "status",
    "output",
    "finish_reason",
    "repeat_index",
    "started_at",
    "ended_at",
    "ttft_s",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "raw_response",
    "chunk_sizes",
    "reply_tool_calls",
)
#: What serving a recorded run needs (the rest comes from the run being served).
_SERVED_COLUMNS = (
    "request_id",
    "started_at",
    "output",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "raw_response",
    "chunk_sizes",
    "reply_tool_calls",
)
#: What an imported row's JSON column holds when the file has none.
_EMPTY: dict[str, Any] = {"tags": [], "metadata": {}, "parameters": {}, "input_variables": {}}
#: Ids per ``IN (...)`` list: twice this many parameters stay under SQLite's limit (999 in
#: older builds).
_IDS_PER_QUERY = 400


@dataclass(frozen=True)
class RunFilter:
    """Which runs a read returns: the filters combine with AND; None leaves one out.

    ``since`` is ISO-8601 UTC text (as ``started_at`` is stored); ``limit`` keeps the newest
    N runs. Reads return them oldest first.
    """

    prompt: str | None = None
    since: str | None = None
    tag: str | None = None
    group_id: int | None = None
    status: str | None = None
    limit: int | None = None


def _select(columns: Sequence[str] | None) -> str:
    if columns is None:
        return "*"
    unknown = [c for c in columns if c not in _COLUMNS]
    if unknown:
        raise ValueError(f"not columns of runs: {unknown}")
    return ", ".join(columns)


def _where(filters: RunFilter) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if filters.prompt is not None:
        where.append("prompt_name = ?")
        params.append(filters.prompt)
    if filters.since is not None:
        where.append("started_at >= ?")
        params.append(filters.since)
    if filters.tag is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE value = ?)")
        params.append(filters.tag)
    if filters.group_id is not None:
        where.append("group_id = ?")
        params.append(filters.group_id)
    if filters.status is not None:
        where.append("status = ?")
        params.append(filters.status)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _newest_first(filters: RunFilter, columns: Sequence[str] | None) -> tuple[str, list[Any]]:
    """The SQL of a filtered read, newest first (so that LIMIT keeps the newest)."""
    where, params = _where(filters)
    sql = f"SELECT {_select(columns)} FROM runs{where} ORDER BY started_at DESC"
    if filters.limit is not None:
        sql += " LIMIT ?"
        params.append(int(filters.limit))
    return sql, params


def run_key(
    prompt_name: str | None,
    prompt_version: int | None,
    rendered_input: Any,
    provider: str,
    model: str,
    parameters: dict[str, Any],
    repeat_index: int,
) -> str:
    """The run identity shared by the log, the DataFrames and a response cache."""
    ident = dumps(
        [prompt_name, prompt_version, rendered_input, provider, model, parameters, repeat_index]
    )
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def run_key_of_json(
    prompt_name: str | None,
    prompt_version: int | None,
    rendered_json: str,
    provider: str,
    model: str,
    parameters_json: str,
    repeat_index: int,
) -> str:
    """:func:`run_key`, given the rendered input and the parameters as the JSON text
    :func:`~pl_magic.core.store.dumps` makes of them (a batch job has it already): the same
    key, without encoding them again."""
    head, middle = _run_key_parts(prompt_name, prompt_version, provider, model)
    repeat = str(repeat_index) if type(repeat_index) is int else dumps(repeat_index)
    ident = f"{head}{rendered_json}{middle}{parameters_json},{repeat}]"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=256)
def _run_key_parts(
    prompt_name: str | None, prompt_version: int | None, provider: str, model: str
) -> tuple[str, str]:
    """The JSON of :func:`run_key`'s list around the rendered input (the same for every
    run of one version and model)."""
    return (
        f"[{dumps(prompt_name)},{dumps(prompt_version)},",
        f",{dumps(provider)},{dumps(model)},",
    )


class JsonText(str):
    """A JSON column's value that is JSON text already (a batch job stored it so): written
    as it is, not encoded again."""

    __slots__ = ()


def _json_cell(value: Any) -> str:
    return value if isinstance(value, JsonText) else dumps(value)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row with its JSON columns decoded."""
    for col in (*_JSON_COLUMNS, *_NULLABLE_JSON_COLUMNS, "raw_response"):
        if row.get(col) is not None:
            row[col] = json.loads(row[col])
    return row


#: The ``runs`` columns a :class:`RunRecord` fills, in its fields' order, and where the
#: columns that :func:`_values` converts are in it.
_NAMES = tuple(f.name for f in _FIELDS)
_JSON_AT = tuple(_NAMES.index(c) for c in _JSON_COLUMNS)
_NULLABLE_JSON_AT = tuple(_NAMES.index(c) for c in _NULLABLE_JSON_COLUMNS)
_RAW_AT, _ERROR_AT, _ENDED_AT = (
    _NAMES.index(c) for c in ("raw_response", "error_message", "ended_at")
)


def _values(run: RunRecord, redact_raw: bool = True) -> list[Any]:
    """A run's column values as the ``runs`` table stores them (in :data:`_NAMES`' order):
    JSON columns as text, secrets out (but for the raw response's, when ``redact_raw`` is
    False: the caller redacts it)."""
    if run.status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    # Not asdict(): it deep-copies every nested value (the raw response, the rendered
    # template) only for them to be serialized right after.
    values = [getattr(run, name) for name in _NAMES]
    for i in _JSON_AT:
        values[i] = _json_cell(values[i])
    for i in _NULLABLE_JSON_AT:
        values[i] = None if values[i] is None else _json_cell(values[i])
    raw = None if run.raw_response is None else _json_cell(run.raw_response)
    values[_RAW_AT] = redact_json(raw) if raw is not None and redact_raw else raw
    if values[_ERROR_AT]:
        values[_ERROR_AT] = redact(values[_ERROR_AT])
    values[_ENDED_AT] = values[_ENDED_AT] or utcnow_iso()
    return values


def _row(run: RunRecord) -> dict[str, Any]:
    """A run as the ``runs`` table stores it, by column (see :func:`_values`)."""
    return dict(zip(_NAMES, _values(run), strict=True))


#: While :meth:`RunLog.grouping`: how many deferrable rows are written in one transaction.
GROUP_ROWS = 256


class RunLog(OnDatabase):
    """Writes and reads the ``runs`` table."""

    def __init__(self, db: Database | None = None) -> None:
        super().__init__(db)
        self._group_lock = threading.Lock()
        self._group_depth = 0
        self._grouped: list[Statement] = []

    @contextlib.contextmanager
    def grouping(self) -> Iterator[None]:
        """Within it, rows recorded with ``record(run, deferrable=True)`` are written
        :data:`GROUP_ROWS` at a time in one transaction, and the rest when it ends.

        A comparison served from the replay cache logs a row per served run and nothing
        else: one commit per row made the log, not the replay, the cost of a replayed
        comparison. Only rows that nothing was paid for are deferrable (a crash loses at
        most a group of rows that a re-run serves again); any other write goes after them,
        in order. Reads inside the block may not see the deferred rows yet.
        """
        with self._group_lock:
            self._group_depth += 1
        try:
            yield
        finally:
            with self._group_lock:
                self._group_depth -= 1
                rows = self._take_grouped() if self._group_depth == 0 else []
            if rows:
                self._write_group(rows)

    def _take_grouped(self) -> list[Statement]:
        rows, self._grouped = self._grouped, []
        return rows

    def _write_group(self, rows: list[Statement]) -> None:
        try:
            self._write(rows)
        except KeptInMemory as kept:
            notices.warn(
                f"{len(rows)} replayed runs could not be logged to {kept.path} ({kept.reason}): "
                "they are kept in memory, to be written at the next run or pl_magic.runs()"
            )

    def check(self) -> None:
        """Open the database now: a one-line :class:`ConfigurationError` naming the file and
        the fix if it cannot be used (called before a provider call, not after)."""
        _ = self.db

    def _write(self, statements: list[Statement]) -> None:
        with self._group_lock:  # what was deferred was recorded first: written first
            if self._grouped:
                statements = self._take_grouped() + statements
        db = self._db
        if db is None:
            try:
                db = self.db
            except ConfigurationError:
                db = None  # kept in memory by write_or_keep, which says why
        write_or_keep(db, statements)

    def record(self, run: RunRecord, deferrable: bool = False) -> None:
        """Insert (or replace) the row for ``run``; inside :meth:`grouping`, a ``deferrable``
        row (one nothing was paid for: a replayed run) is written with its group.

        Raises :class:`store.KeptInMemory` when the file cannot take it now: the row is kept
        in memory and written at the next chance.
        """
        row = _row(run)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        statement = (f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})", row)
        if deferrable:
            with self._group_lock:
                grouping = self._group_depth > 0
                if grouping:
                    self._grouped.append(statement)
                    full = self._take_grouped() if len(self._grouped) >= GROUP_ROWS else []
            if grouping:
                if full:
                    self._write_group(full)
                return
        self._write([statement])

    def record_many(self, runs: Sequence[RunRecord]) -> None:
        """Insert the rows of ``runs`` that the log does not hold yet (by ``request_id``),
        in one transaction: a batch job's results, which may be read twice (two kernels
        waiting on one job, or a kernel stopped after it wrote them) and are logged once.
        A JSON column may hold :class:`JsonText` (written as it is).

        Raises :class:`store.KeptInMemory` as :meth:`record` does.
        """
        if not runs:
            return
        rows = Many(_values(run, redact_raw=False) for run in runs)  # (binds faster than names)
        raws = [row[_RAW_AT] for row in rows if row[_RAW_AT] is not None]
        joined = "\n".join(raws)
        if raws and redact(joined) != joined:  # (one look for secrets in the whole chunk)
            for row in rows:
                if row[_RAW_AT] is not None:
                    row[_RAW_AT] = redact_json(row[_RAW_AT])
        marks = ", ".join("?" * len(_NAMES))
        self._write([(f"INSERT OR IGNORE INTO runs ({', '.join(_NAMES)}) VALUES ({marks})", rows)])

    def set_batch(self, request_ids: Iterable[str], batch_id: str) -> None:
        """Mark logged runs as runs of batch job ``batch_id`` (those of a job that went live,
        or were served by the replay cache)."""
        pairs = [(batch_id, rid) for rid in request_ids]
        if pairs:
            self._write([("UPDATE runs SET batch_id = ? WHERE request_id = ?", Many(pairs))])

    def batch_columns(self, batch_id: str, columns: Sequence[str]) -> dict[str, Sequence[Any]]:
        """The runs of batch job ``batch_id``, column by column (as stored; see
        :meth:`columns`), in the order of the job's planned runs (``batch_requests``)."""
        select = ", ".join(f"r.{c}" for c in _select(columns).split(", "))
        db = self.db
        with db.lock:
            cursor = db.conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(
                f"SELECT {select} FROM runs AS r LEFT JOIN batch_requests AS q "
                "ON q.request_id = r.request_id WHERE r.batch_id = ? ORDER BY q.position",
                (batch_id,),
            ).fetchall()
        values = list(zip(*rows, strict=True)) or [()] * len(columns)
        return dict(zip(columns, values, strict=True))

    def batch_counts(self, batch_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each batch job, how many of its logged runs have each status."""
        out: dict[str, dict[str, int]] = {}
        for start in range(0, len(batch_ids), _IDS_PER_QUERY):
            chunk = tuple(batch_ids[start : start + _IDS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            for batch_id, status, count in self.db.query(
                f"SELECT batch_id, status, COUNT(*) FROM runs WHERE batch_id IN ({marks}) "
                "GROUP BY batch_id, status",
                chunk,
            ):
                out.setdefault(batch_id, {})[status] = count
        return out

    def update(self, request_id: str, **values: Any) -> bool:
        """Set some columns of an existing row (e.g. the sync state of a PromptLayer log).

        False when the file cannot take it now: the change is kept in memory, after the
        row's own write if that is kept too, and written at the next chance.
        """
        for col in _JSON_COLUMNS:
            if col in values:
                values[col] = dumps(values[col])
        sets = ", ".join(f"{c} = :{c}" for c in values)
        try:
            self._write(
                [
                    (
                        f"UPDATE runs SET {sets} WHERE request_id = :_rid",
                        {**values, "_rid": request_id},
                    )
                ]
            )
        except KeptInMemory:
            return False
        return True

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One logged run as a dict (JSON columns decoded), or None.

        Takes either id of a run: the local one or PromptLayer's (``remote_request_id``).
        """
        rows = self.db.query(
            "SELECT * FROM runs WHERE request_id = ? OR remote_request_id = ? "
            "ORDER BY request_id = ? DESC LIMIT 1",
            (request_id, request_id, request_id),
        )
        if not rows:
            return None
        return _decoded(dict(rows[0]))

    def latest_ok(self, cache_key: str) -> dict[str, Any] | None:
        """The newest ``ok`` run recorded with this replay-cache key (runs served by the
        cache are left out: each served run names the recorded one): what serving it needs
        (:data:`_SERVED_COLUMNS`), decoded as :meth:`get`'s; None when there is none."""
        rows = self.db.query(
            f"SELECT {', '.join(_SERVED_COLUMNS)} FROM runs WHERE cache_key = ? AND status = 'ok' "
            "AND cached_from IS NULL ORDER BY started_at DESC LIMIT 1",
            (cache_key,),
        )
        return _decoded(dict(rows[0])) if rows else None

    # -- the replay cache (see pl_magic.engine.replay) ---------------------------------------

    def recordings(self, prompt: str | None = None) -> list[dict[str, Any]]:
        """What a replay serves: for each cache key, the newest ``ok`` recorded run (runs
        served by the cache left out), oldest first, with the columns of
        :data:`RECORDING_COLUMNS` decoded as :meth:`get`'s; only ``prompt``'s when given."""
        where = "" if prompt is None else " AND prompt_name = ?"
        rows = self.db.query(
            f"SELECT {', '.join(RECORDING_COLUMNS)} FROM runs AS r WHERE status = 'ok' "
            f"AND cached_from IS NULL AND cache_key IS NOT NULL{where} AND NOT EXISTS ("
            "SELECT 1 FROM runs AS n WHERE n.cache_key = r.cache_key AND n.status = 'ok' "
            "AND n.cached_from IS NULL AND n.started_at > r.started_at) ORDER BY started_at",
            () if prompt is None else (prompt,),
        )
        return [_decoded(dict(r)) for r in rows]

    def add_recordings(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store recorded runs (as :meth:`recordings` returns them) that the log does not hold
        yet (by ``request_id``); how many were added. They are local runs: never sent to
        PromptLayer."""
        added = 0
        with self.db.write() as conn:
            for given in rows:
                row = {c: given.get(c) for c in RECORDING_COLUMNS}
                for col in _JSON_COLUMNS:
                    row[col] = dumps(row[col] if row[col] is not None else _EMPTY.get(col))
                for col in (*_NULLABLE_JSON_COLUMNS, "raw_response"):
                    row[col] = None if row[col] is None else dumps(row[col])
                if row["raw_response"] is not None:
                    row["raw_response"] = redact_json(row["raw_response"])
                row["run_key"] = row["cache_key"]  # (NOT NULL; the local identity is not kept)
                cols = ", ".join(row)
                marks = ", ".join(f":{c}" for c in row)
                cur = conn.execute(f"INSERT OR IGNORE INTO runs ({cols}) VALUES ({marks})", row)
                added += cur.rowcount
        return added

    # -- reads -----------------------------------------------------------------------------

    def query(
        self, filters: RunFilter = RunFilter(), columns: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The runs ``filters`` select, oldest first, as stored (JSON columns are text).

        ``columns``: the columns to read (default: all of them).
        """
        sql, params = _newest_first(filters, columns)
        rows = [dict(r) for r in self.db.query(sql, tuple(params))]
        rows.reverse()
        return rows

    def columns(self, filters: RunFilter, columns: Sequence[str]) -> dict[str, Sequence[Any]]:
        """The runs ``filters`` select, oldest first, column by column (as stored).

        For the DataFrames: plain tuples, zipped at C speed, cost far less than a dict (or a
        ``sqlite3.Row``) per row, which costs more than the query itself on a large log.
        """
        sql, params = _newest_first(filters, columns)
        db = self.db
        with db.lock:
            cursor = db.conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(sql, tuple(params)).fetchall()
        rows.reverse()
        values = list(zip(*rows, strict=True)) or [()] * len(columns)
        return dict(zip(columns, values, strict=True))

    def by_either_id(self, ids: Iterable[Any], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """:meth:`by_ids`, keyed by each run's local id and, once PromptLayer has the run,
        by PromptLayer's id as text too (a frame may carry either)."""
        wanted = tuple(dict.fromkeys((*columns, "request_id", "remote_request_id")))
        out: dict[str, dict[str, Any]] = {}
        for row in self.by_ids(ids, wanted):
            out[row["request_id"]] = row
            if row["remote_request_id"] is not None:
                out[str(row["remote_request_id"])] = row
        return out

    def by_ids(
        self, ids: Iterable[Any], columns: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The runs with these ids (local ones or PromptLayer's), oldest first, as stored.

        Each run comes once, however many of its ids are given; unknown ids are skipped.
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        select = _select(columns)
        db = self.db  # opened (and rows kept in memory written) even when no id is given
        found: dict[Any, tuple[Any, dict[str, Any]]] = {}
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = tuple(wanted[start : start + _IDS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            # the id and start are read to merge the chunks even when ``columns`` omit them
            for r in db.query(
                f"SELECT request_id AS _rid, started_at AS _at, {select} FROM runs "
                f"WHERE request_id IN ({marks}) OR remote_request_id IN ({marks}) "
                "ORDER BY started_at",
                chunk + chunk,
            ):
                row = dict(r)
                found.setdefault(row.pop("_rid"), (row.pop("_at"), row))
        ordered = list(found.values())
        if len(wanted) > _IDS_PER_QUERY:  # (one query's rows are in order already)
            ordered.sort(key=lambda pair: str(pair[0]))
        return [row for _, row in ordered]

    # -- annotations (client.track) --------------------------------------------------------

    def annotate(self, request_id: str, store: Mapping[str, Any]) -> None:
        """Store a run's score (``score``, ``name``), metadata (merged) or ``group_id``."""
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT scores, metadata FROM runs WHERE request_id = ?", (request_id,)
            ).fetchone()
            if "score" in store:
                scores = json.loads(row["scores"]) if row["scores"] else {}
                scores[store["name"] or "default"] = store["score"]
                conn.execute(
                    "UPDATE runs SET scores = ? WHERE request_id = ?", (dumps(scores), request_id)
                )
            if "metadata" in store:
                merged = {**json.loads(row["metadata"] or "{}"), **store["metadata"]}
                conn.execute(
                    "UPDATE runs SET metadata = ? WHERE request_id = ?",
                    (dumps(merged), request_id),
                )
            if "group_id" in store:
                conn.execute(
                    "UPDATE runs SET group_id = ? WHERE request_id = ?",
                    (store["group_id"], request_id),
                )

    def create_group(self) -> int:
        """A new group id for tying runs together."""
        with self.db.write() as conn:
            cur = conn.execute("INSERT INTO run_groups (created_at) VALUES (?)", (utcnow_iso(),))
            return int(cur.lastrowid or 0)

    # -- the PromptLayer sync (see pl_magic.runlog.promptlayer) ------------------------------

    def flush_kept(self) -> None:
        """Write the rows kept in memory (the file was busy) before the log is read."""
        flush_kept(self.db)

    def unsent(self, account: str, stale_before: float) -> list[dict[str, Any]]:
        """Runs of ``account`` waiting to go to PromptLayer, oldest first: ``unsent`` ones,
        and ``sending`` ones whose claim is older than ``stale_before`` (an epoch: the
        process that claimed them died). Each has ``request_id``, ``sync_state``,
        ``sync_attempted_at`` and ``sync_payload``: what :meth:`claim_unsent` takes."""
        rows = self.db.query(
            "SELECT request_id, sync_state, sync_attempted_at, sync_payload FROM runs "
            "WHERE sync_state IN ('unsent', 'sending') "
            "AND json_extract(sync_payload, '$.account') = ? AND (sync_state = 'unsent' "
            "OR COALESCE(sync_attempted_at, 0) < ?) ORDER BY started_at",
            (account, stale_before),
        )
        return [dict(r) for r in rows]

    def claim_unsent(self, row: Mapping[str, Any]) -> bool:
        """Claim a row :meth:`unsent` listed (``sending`` from now), if it is still as listed:
        False when another thread or kernel claimed or settled it meanwhile, so that a run
        is never sent twice."""
        attempted = row["sync_attempted_at"]
        with self.db.write() as conn:
            cur = conn.execute(
                "UPDATE runs SET sync_state = 'sending', sync_attempted_at = ? WHERE "
                "request_id = ? AND sync_state = ? AND COALESCE(sync_attempted_at, -1) = ?",
                (
                    time.time(),  # (taken once the write lock is held)
                    row["request_id"],
                    row["sync_state"],
                    -1 if attempted is None else attempted,
                ),
            )
            return cur.rowcount == 1

    def mark_sent(self, request_id: str, remote_request_id: Any) -> bool:
        """PromptLayer has the run (its id is ``remote_request_id``): the payload is dropped.

        False when the file cannot take it now (kept in memory, as :meth:`update`).
        """
        return self.update(
            request_id,
            sync_state="sent",
            remote_request_id=str(remote_request_id),
            sync_payload=None,
            sync_error=None,
        )

    def count_unsent(self, account: str) -> int:
        """How many runs of ``account`` are still ``unsent``."""
        ((count,),) = self.db.query(
            "SELECT COUNT(*) FROM runs WHERE sync_state = 'unsent' "
            "AND json_extract(sync_payload, '$.account') = ?",
            (account,),
        )
        return int(count)

    def queue_op(self, request_id: str, op: Mapping[str, Any]) -> None:
        """Queue a score, metadata, group or prompt op on a run PromptLayer does not have yet."""
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT pending_ops FROM runs WHERE request_id = ?", (request_id,)
            ).fetchone()
            ops = json.loads(row["pending_ops"]) if row and row["pending_ops"] else []
            conn.execute(
                "UPDATE runs SET pending_ops = ? WHERE request_id = ?",
                (dumps([*ops, op]), request_id),
            )

    def take_ops(self, request_id: str) -> list[dict[str, Any]]:
        """The ops queued on a run, cleared from its row in the same transaction."""
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT pending_ops FROM runs WHERE request_id = ?", (request_id,)
            ).fetchone()
            if row is None or not row["pending_ops"]:
                return []
            conn.execute("UPDATE runs SET pending_ops = NULL WHERE request_id = ?", (request_id,))
        ops: list[dict[str, Any]] = json.loads(row["pending_ops"])
        return ops

    def with_queued_ops(self) -> list[tuple[str, str]]:
        """``(request_id, remote_request_id)`` of the sent runs that have ops queued."""
        rows = self.db.query(
            "SELECT request_id, remote_request_id FROM runs WHERE pending_ops IS NOT NULL "
            "AND remote_request_id IS NOT NULL"
        )
        return [(r["request_id"], r["remote_request_id"]) for r in rows]
