"""The run log: one row per run (ok, error or cancelled) in the local SQLite file.

Every run is logged locally, whatever the backend; the DataFrames read this table.
Secrets never get here: the provider's raw response is stored after :func:`errors.redact`.
A row the file cannot take right now (locked, full, damaged) is kept in memory and written
at the next chance (see :func:`store.write_or_keep`): a reply is never lost to the log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..core.errors import ConfigurationError, redact
from ..core.store import (
    Database,
    KeptInMemory,
    Statement,
    dumps,
    open_db,
    utcnow_iso,
    write_or_keep,
)
from .base import STATUSES, RunRecord

_FIELDS = fields(RunRecord)
_JSON_COLUMNS = ("parameters", "input_variables", "rendered_input", "tags", "metadata")


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


class RunLog:
    """Writes and reads the ``runs`` table."""

    def __init__(self, db: Database | None = None) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        """The database (opened on first use)."""
        if self._db is None:
            self._db = open_db()
        return self._db

    def check(self) -> None:
        """Open the database now: a one-line :class:`ConfigurationError` naming the file and
        the fix if it cannot be used (called before a provider call, not after)."""
        _ = self.db

    def _write(self, statements: list[Statement]) -> None:
        db = self._db
        if db is None:
            try:
                db = self.db
            except ConfigurationError:
                db = None  # kept in memory by write_or_keep, which says why
        write_or_keep(db, statements)

    def record(self, run: RunRecord) -> None:
        """Insert (or replace) the row for ``run``.

        Raises :class:`store.KeptInMemory` when the file cannot take it now: the row is kept
        in memory and written at the next chance.
        """
        if run.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        # Not asdict(): it deep-copies every nested value (the raw response, the rendered
        # template) only for them to be serialized right after.
        row = {f.name: getattr(run, f.name) for f in _FIELDS}
        for col in _JSON_COLUMNS:
            row[col] = dumps(row[col])
        row["raw_response"] = None if run.raw_response is None else redact(dumps(run.raw_response))
        if row["error_message"]:
            row["error_message"] = redact(row["error_message"])
        row["ended_at"] = row["ended_at"] or utcnow_iso()
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self._write([(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})", row)])

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
        import json

        rows = self.db.query(
            "SELECT * FROM runs WHERE request_id = ? OR remote_request_id = ? "
            "ORDER BY request_id = ? DESC LIMIT 1",
            (request_id, request_id, request_id),
        )
        if not rows:
            return None
        out = dict(rows[0])
        for col in (*_JSON_COLUMNS, "raw_response"):
            if out.get(col) is not None:
                out[col] = json.loads(out[col])
        return out

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
