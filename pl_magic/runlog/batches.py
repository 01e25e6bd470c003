"""The batch job store: the ``batch_jobs``, ``batch_parts`` and ``batch_requests`` tables
(``m006_batches`` in :mod:`pl_magic.core.migrations`).

A provider batch outlives the kernel that submitted it, so everything needed to ingest its
results later — the planned runs, their inputs, the rendered prompts and the native requests
(never a key) — is written here before the first provider job is created, and each provider
job's id the moment the provider accepts it. :mod:`pl_magic.engine.batch_jobs` drives it;
this module owns every query on those tables (the runs themselves stay :class:`RunLog`'s).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.errors import InvalidInputError, redact
from ..core.store import OnDatabase, utcnow_iso

#: The columns of ``batch_requests`` a job writes, in order.
REQUEST_COLUMNS = (
    "request_id",
    "job_id",
    "position",
    "part",
    "route",
    "planned",
    "run",
    "parameters",
    "input_variables",
    "rendered_input",
    "tags",
    "metadata",
    "request",
    "error_category",
    "error_message",
)
#: The columns of ``batch_parts``, in order.
PART_COLUMNS = (
    "job_id",
    "part",
    "provider",
    "model",
    "api_type",
    "base_url",
    "provider_job_id",
    "status",
    "total",
    "succeeded",
    "errored",
    "message",
    "ingested",
    "submitted_at",
    "finished_at",
)
_JOB_COLUMNS = ("id", "job_key", "prompt_name", "status", "total", "options", "submitted_at")
#: Part columns a caller may set.
_SETTABLE_PART = frozenset(PART_COLUMNS) - {"job_id", "part"}
#: The shortest id prefix a person may type for a job.
MIN_PREFIX = 6


class BatchStore(OnDatabase):
    """Reads and writes the batch job tables."""

    def create(
        self,
        job: Mapping[str, Any],
        parts: Sequence[Mapping[str, Any]],
        requests: Sequence[Mapping[str, Any]],
    ) -> None:
        """Write a new job, its parts and its planned runs, in one transaction."""
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO batch_jobs ({', '.join(_JOB_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_JOB_COLUMNS))})",
                tuple(job[c] for c in _JOB_COLUMNS),
            )
            conn.executemany(
                f"INSERT INTO batch_parts ({', '.join(PART_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(PART_COLUMNS))})",
                [tuple({**p, "job_id": job["id"]}.get(c) for c in PART_COLUMNS) for p in parts],
            )
            conn.executemany(
                f"INSERT INTO batch_requests ({', '.join(REQUEST_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})",
                [tuple(r.get(c) for c in REQUEST_COLUMNS) for r in requests],
            )

    def set_job(self, job_id: str, status: str, finished: bool = False) -> None:
        """A job's status (and, when it has ended, when)."""
        with self.db.write() as conn:
            conn.execute(
                "UPDATE batch_jobs SET status = ?, finished_at = CASE WHEN ? THEN "
                "COALESCE(finished_at, ?) ELSE NULL END WHERE id = ?",
                (status, finished, utcnow_iso(), job_id),
            )

    def set_part(self, job_id: str, part: int, **values: Any) -> None:
        """Set columns of one provider job's row."""
        unknown = set(values) - _SETTABLE_PART
        if unknown:
            raise ValueError(f"not settable columns of batch_parts: {sorted(unknown)}")
        if isinstance(values.get("message"), str):  # (the provider's words may echo the key)
            values["message"] = redact(values["message"])
        sets = ", ".join(f"{c} = ?" for c in values)
        with self.db.write() as conn:
            conn.execute(
                f"UPDATE batch_parts SET {sets} WHERE job_id = ? AND part = ?",
                (*values.values(), job_id, part),
            )

    def set_requests(self, job_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """After a run of the job went live: its ``request_id`` (the one it was logged
        under, given as ``new_id``; the planned one as ``request_id``) and the error of a
        run that failed before any call."""
        values = [
            (
                r.get("new_id") or r["request_id"],
                r.get("error_category"),
                r.get("error_message"),
                job_id,
                r["request_id"],
            )
            for r in rows
        ]
        if not values:
            return
        with self.db.write() as conn:
            conn.executemany(
                "UPDATE batch_requests SET request_id = ?, error_category = ?, error_message = ? "
                "WHERE job_id = ? AND request_id = ?",
                values,
            )

    # -- reads -----------------------------------------------------------------------------

    def find(self, job_key: str) -> dict[str, Any] | None:
        """The newest job submitted for the same planned runs that was not cancelled."""
        rows = self.db.query(
            "SELECT * FROM batch_jobs WHERE job_key = ? AND status != 'cancelled' "
            "ORDER BY submitted_at DESC LIMIT 1",
            (job_key,),
        )
        return dict(rows[0]) if rows else None

    def job(self, job_id: str) -> dict[str, Any]:
        """The job with this id, or with this unique id prefix (six characters or more); a
        one-line :class:`InvalidInputError` naming the fix otherwise."""
        text = str(job_id).strip()
        rows = self.db.query("SELECT * FROM batch_jobs WHERE id = ?", (text,))
        if not rows and len(text) >= MIN_PREFIX and text.isalnum():
            rows = self.db.query(
                "SELECT * FROM batch_jobs WHERE id LIKE ? ORDER BY submitted_at LIMIT 2",
                (text + "%",),
            )
            if len(rows) > 1:
                raise InvalidInputError(
                    f"More than one batch job starts with {text!r}: give more of its id "
                    "(pl_magic.batches() lists them)"
                )
        if not rows:
            raise InvalidInputError(
                f"No batch job {text[:64]!r}: give a job id pl_magic.batches() (or "
                "`pl-magic batches list`) lists"
            )
        return dict(rows[0])

    def jobs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every job, newest first (the newest ``limit`` of them)."""
        sql = "SELECT * FROM batch_jobs ORDER BY submitted_at DESC"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (int(limit),)
        return [dict(r) for r in self.db.query(sql, params)]

    def parts(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The provider jobs of these jobs, by job and part."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(job_ids), 400):
            chunk = tuple(job_ids[start : start + 400])
            marks = ",".join("?" * len(chunk))
            out += [
                dict(r)
                for r in self.db.query(
                    f"SELECT * FROM batch_parts WHERE job_id IN ({marks}) ORDER BY job_id, part",
                    chunk,
                )
            ]
        return out

    def requests(
        self, job_id: str, columns: Sequence[str], part: int | None = None
    ) -> list[dict[str, Any]]:
        """The planned runs of a job (of one of its parts), in their order."""
        unknown = [c for c in columns if c not in REQUEST_COLUMNS]
        if unknown:
            raise ValueError(f"not columns of batch_requests: {unknown}")
        sql = f"SELECT {', '.join(columns)} FROM batch_requests WHERE job_id = ?"
        params: tuple[Any, ...] = (job_id,)
        if part is not None:
            sql += " AND part = ?"
            params += (part,)
        db = self.db
        with db.lock:
            cursor = db.conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(sql + " ORDER BY position", params).fetchall()
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def failed_before_call(self, job_ids: Sequence[str]) -> dict[str, int]:
        """For each job, how many of its runs failed before any call (never logged)."""
        out: dict[str, int] = {}
        for start in range(0, len(job_ids), 400):
            chunk = tuple(job_ids[start : start + 400])
            marks = ",".join("?" * len(chunk))
            for job_id, count in self.db.query(
                f"SELECT job_id, COUNT(*) FROM batch_requests WHERE job_id IN ({marks}) "
                "AND route != 'batch' AND error_message IS NOT NULL GROUP BY job_id",
                chunk,
            ):
                out[job_id] = count
        return out

    def specs(self, job_id: str, part: int) -> list[tuple[Any, ...]]:
        """``(request_id, parameters, adapter, model, api_type, base_url)`` of each planned
        run of one provider job: what parsing its result needs."""
        return [
            tuple(r)
            for r in self.db.query(
                "SELECT request_id, parameters, json_extract(run, '$.adapter'), "
                "json_extract(run, '$.model'), json_extract(run, '$.api_type'), "
                "json_extract(run, '$.base_url') FROM batch_requests "
                "WHERE job_id = ? AND part = ? ORDER BY position",
                (job_id, part),
            )
        ]

    def requests_by_ids(
        self, request_ids: Sequence[str], columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The planned runs with these ids (at most a few hundred at a time)."""
        unknown = [c for c in columns if c not in REQUEST_COLUMNS]
        if unknown:
            raise ValueError(f"not columns of batch_requests: {unknown}")
        out: list[dict[str, Any]] = []
        for start in range(0, len(request_ids), 400):
            chunk = tuple(request_ids[start : start + 400])
            marks = ",".join("?" * len(chunk))
            db = self.db
            with db.lock:
                cursor = db.conn.cursor()
                cursor.row_factory = None
                rows = cursor.execute(
                    f"SELECT {', '.join(columns)} FROM batch_requests "
                    f"WHERE request_id IN ({marks})",
                    chunk,
                ).fetchall()
            out += [dict(zip(columns, row, strict=True)) for row in rows]
        return out
