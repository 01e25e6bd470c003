"""The ``scores`` table: one row per run × score name × source.

:class:`ScoreLog` owns every query on ``scores`` (the schema is migration
``m004_scores`` in :mod:`pl_magic.core.migrations`). A run scored again by the same scorer
(``pl_magic.score(df, ...)`` after ``run_many(scorers=...)``) replaces its row: the key is
``(request_id, name, source)``, so a rule, a judge and a human may each score a run under
one name.

:func:`percent` puts a stored value on PromptLayer's 0–100 scale (``track.score``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.store import OnDatabase, dumps, utcnow_iso

SOURCES = ("rule", "judge", "human")
#: The name of a repeated judge's agreement score: ``<judge name>.agreement``.
AGREEMENT_SUFFIX = ".agreement"


def percent(value: float | None) -> int | None:
    """A score value on PromptLayer's scale: a whole number from 0 to 100, or None when
    it has none.

    Scores are values from 0 to 1 (pass/fail is 1.0/0.0): ``round(100 * value)``. A
    failed scorer's score (None or NaN) has none; nor has a value outside 0–1 (a callable
    returning 7.5): it is kept locally as given but not sent, since clamping it to 100
    would claim a perfect score its scorer never gave.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        return None
    return round(100 * number)


@dataclass(frozen=True)
class ScoreRow:
    """One stored score (``value`` None when the scorer failed: see ``reason``)."""

    request_id: str
    name: str
    value: float | None
    passed: bool | None
    reason: str | None
    source: str = "rule"
    scorer_version: str | None = None


class ScoreLog(OnDatabase):
    """Writes and reads the ``scores`` table."""

    def record(self, rows: Iterable[ScoreRow]) -> int:
        """Store scores (replacing a run's earlier score of the same name and source), in
        one transaction; returns how many.

        A judge's score replaces the run's earlier ``<name>.agreement`` too when it comes
        without one (judged once after a ``judge_repeat`` pass): an agreement left beside
        it would describe verdicts that are no longer the score's.
        """
        rows = list(rows)
        now = utcnow_iso()
        given = {(str(r.request_id), r.name) for r in rows if r.source == "judge"}
        stale = [
            (rid, f"{name}{AGREEMENT_SUFFIX}")
            for rid, name in given
            if not name.endswith(AGREEMENT_SUFFIX) and (rid, name + AGREEMENT_SUFFIX) not in given
        ]
        params = []
        for r in rows:
            if r.source not in SOURCES:
                raise ValueError(f"source must be one of {SOURCES}")
            value = None if r.value is None or math.isnan(r.value) else float(r.value)
            passed = None if r.passed is None else int(bool(r.passed))
            params.append(
                (
                    str(r.request_id),
                    r.name,
                    value,
                    passed,
                    r.reason,
                    r.source,
                    r.scorer_version,
                    now,
                )
            )
        if not params:
            return 0
        with self.db.write() as conn:
            conn.executemany(
                "DELETE FROM scores WHERE request_id = ? AND name = ? AND source = 'judge'", stale
            )
            conn.executemany(
                "INSERT OR REPLACE INTO scores (request_id, name, value, passed, reason, source, "
                "scorer_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            )
        return len(params)

    def empty(self) -> bool:
        """True when no run has a score (most logs: a probe cheaper than reading by ids)."""
        return not self.db.query("SELECT 1 FROM scores LIMIT 1")

    def for_runs(self, request_ids: Iterable[Any]) -> list[ScoreRow]:
        """Every score of these runs (local ids), oldest first, read with one query however
        many ids (they go as one JSON array)."""
        wanted = list(dict.fromkeys(str(i) for i in request_ids if i is not None))
        if not wanted:
            return []
        rows = self.db.query(
            "SELECT request_id, name, value, passed, reason, source, scorer_version FROM scores "
            "WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, id",
            (dumps(wanted),),
        )
        return [
            ScoreRow(
                r["request_id"],
                r["name"],
                r["value"],
                None if r["passed"] is None else bool(r["passed"]),
                r["reason"],
                r["source"],
                r["scorer_version"],
            )
            for r in rows
        ]

    def values(self, request_ids: Sequence[Any]) -> dict[str, dict[str, float]]:
        """``{name: {request_id: value}}`` for these runs (NaN for a failed scorer).

        A name scored by several sources shows the latest score.
        """
        out: dict[str, dict[str, float]] = {}
        for r in self.for_runs(request_ids):
            out.setdefault(r.name, {})[r.request_id] = math.nan if r.value is None else r.value
        return out

    def delete_runs(self, request_ids: Iterable[Any]) -> None:
        """Remove every score of these runs."""
        ids = dumps([str(i) for i in request_ids])
        with self.db.write() as conn:
            conn.execute(
                "DELETE FROM scores WHERE request_id IN (SELECT value FROM json_each(?))", (ids,)
            )
