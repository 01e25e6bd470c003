"""Ingesting a batch job's results: :class:`Ingester` turns a provider job that ended into
run rows.

Each request of the provider job becomes one run row with the same columns as a live run
(``batch_id`` set, status and error per request, cost at batch rates); a request the
provider gave no result for becomes a cancelled or failed row, so every planned run ends.
Rows are written :data:`CHUNK` per transaction, handed to PromptLayer's sink (sent in the
background) with that backend, and the ok ones are then scored by the job's scorers and
judges. The job handle (:class:`pl_magic.engine.batch_jobs.BatchJob`) decides *when* a
provider job is ingested; this module is *how*.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core import notices
from ..core.blueprint import ModelSpec
from ..core.errors import PlMagicError, ProviderError
from ..core.store import KeptInMemory, utcnow_iso
from ..providers.batches import CANCELLED, EXPIRED, FAILED, BatchAPI, BatchOutcome, BatchState
from ..runlog.base import ProviderCall, RunRecord
from ..runlog.batches import BatchStore
from ..runlog.scores import ScoreLog
from ..runlog.sqlite import JsonText
from . import pricing
from .batch import Batch, PlannedRun, Progress
from .batch_rows import request_of, resolved_fields, run_fields
from .engine import Engine, invalid_output
from .scoring import Scorer

#: Rows written per transaction while ingesting.
CHUNK = 400
#: The request columns ingesting a provider job reads.
_INGEST_COLUMNS = (
    "request_id",
    "run",
    "parameters",
    "input_variables",
    "rendered_input",
    "tags",
    "metadata",
    "request",
)

#: A logged run: its record, the provider call a sink sends with it, its error.
Logged = tuple[RunRecord, ProviderCall | None, PlMagicError | None]


class Ingester:
    """Logs and scores the results of one batch job's provider jobs."""

    def __init__(
        self,
        engine: Engine,
        store: BatchStore,
        job_id: str,
        prompt_name: str,
        scorers: Sequence[Scorer] = (),
        expected: str = "expected",
    ) -> None:
        self.engine = engine
        self.store = store
        self.job_id = job_id
        self.prompt_name = prompt_name
        self.scorers = scorers
        self.expected = expected

    def ingest(self, part: Mapping[str, Any], api: BatchAPI | None, state: BatchState) -> None:
        """Log the results of a provider job that ended, a row per request, and mark it
        ingested; requests it gave no result for are cancelled or failed rows (all of them
        when ``api`` is None: the provider job was never created, refused or cancelled first).

        Only each request's model spec is held for the whole job (what parsing its result
        needs); the rest of a request's record is read with its chunk, so a job of many
        requests is never held in memory whole."""
        number = int(part["part"])
        specs: dict[str, ModelSpec] = {}
        shared: dict[tuple[Any, ...], ModelSpec] = {}
        for request_id, parameters, adapter, model, api_type, base_url in self.store.specs(
            self.job_id, number
        ):
            key = (parameters, adapter, model, api_type, base_url)
            spec = shared.get(key)
            if spec is None:
                params = json.loads(parameters or "{}")
                spec = shared[key] = ModelSpec(adapter, model, params, api_type, base_url)
            specs[request_id] = spec
        started = part["submitted_at"] or utcnow_iso()
        seen: set[str] = set()
        pending: list[BatchOutcome] = []
        if api is not None and part["provider_job_id"]:
            outcomes = api.results(part["provider_job_id"], specs.get, list(specs))
            for outcome in outcomes:
                if outcome.custom_id in seen:
                    continue
                seen.add(outcome.custom_id)
                pending.append(outcome)
                if len(pending) >= CHUNK:
                    self._log_chunk(pending, started, specs)
                    pending = []
        missing = _missing_outcome(state, str(part["provider"]))
        for request_id in specs:
            if request_id not in seen:
                pending.append(dataclasses.replace(missing, custom_id=request_id))
                if len(pending) >= CHUNK:
                    self._log_chunk(pending, started, specs)
                    pending = []
        self._log_chunk(pending, started, specs)
        self.store.set_part(self.job_id, number, ingested=1, finished_at=utcnow_iso())
        self.score(list(specs))

    def _log_chunk(
        self,
        outcomes: Sequence[BatchOutcome],
        started: str,
        specs: Mapping[str, ModelSpec],
    ) -> None:
        """Log a chunk of results in one transaction, reading their requests' records."""
        if not outcomes:
            return
        ids = [o.custom_id for o in outcomes]
        rows = {r["request_id"]: r for r in self.store.requests_by_ids(ids, _INGEST_COLUMNS)}
        self._write(
            [self._record(rows[o.custom_id], o, started, specs.get(o.custom_id)) for o in outcomes]
        )

    def _record(
        self,
        row: Mapping[str, Any],
        outcome: BatchOutcome,
        started: str,
        spec: ModelSpec | None = None,
    ) -> Logged:
        """The log row of one request's result (and what a sink needs to send it)."""
        run = run_fields(row)
        reply = outcome.reply
        error: PlMagicError | None = outcome.error
        if reply is not None and error is None and spec is not None:
            # a reply that is not the JSON its response_format asks for fails, as live
            error = invalid_output(spec.parameters, reply)
        if reply is not None and error is None:
            status = "ok"
        else:
            status = "cancelled" if outcome.cancelled else "error"
        in_tokens = reply.input_tokens if reply is not None else None
        out_tokens = reply.output_tokens if reply is not None else None
        sink = self.engine.sink
        # the log writes the stored JSON text as it is (no decoding and encoding again);
        # a sink builds its payload from the values
        decode: Callable[[Any], Any] = json.loads if sink is not None else JsonText
        record = RunRecord(
            request_id=row["request_id"],
            run_key=run["run_key"],
            prompt_name=run["prompt_name"],
            prompt_id=run["prompt_id"],
            **resolved_fields(run),  # (its version, label, provider, model and repeat)
            api_type=run["api_type"],
            parameters=decode(row["parameters"]),
            input_variables=decode(row["input_variables"]),
            rendered_input=decode(row["rendered_input"]),
            started_at=started,
            status=status,
            output=reply.text if reply is not None else "",  # (an invalid reply's kept)
            error_category=getattr(error, "category", None) if error is not None else None,
            error_message=str(error) if error is not None else None,
            finish_reason=reply.finish_reason if reply is not None else None,
            tags=decode(row["tags"]),
            metadata=decode(row["metadata"]),
            group_id=run["group_id"],
            input_tokens=in_tokens,
            output_tokens=out_tokens,
            cost_usd=pricing.cost_usd(run["pricing_id"], run["model"], in_tokens, out_tokens, True),
            raw_response=reply.raw if reply is not None else None,
            backend=run["backend"],
            cache_key=run["cache_key"],
            reply_tool_calls=reply.tool_calls if reply is not None and reply.tool_calls else None,
            batch_id=self.job_id,
        )
        call = None
        if sink is not None:
            call = ProviderCall(request_of(row), False, run["function_name"])
        return record, call, error

    def _write(self, chunk: Sequence[Logged]) -> None:
        """Write a chunk of results in one transaction (a sink gets each to send later)."""
        if not chunk:
            return
        sink = self.engine.sink
        if sink is not None:
            for record, call, error in chunk:
                assert call is not None
                sink.record(record, call, error, later=True)
        try:
            self.engine.runlog.record_many([record for record, _, _ in chunk])
        except KeptInMemory as kept:  # the provider was paid: never lost
            notices.warn(
                f"batch job {self.job_id}: {len(chunk)} results could not be logged to "
                f"{kept.path} ({kept.reason}): kept in memory, written at the next chance"
            )
        if sink is not None:
            for record, _, _ in chunk:
                sink.finalize(record)

    def score(self, request_ids: Sequence[str]) -> None:
        """Score the ok runs among ``request_ids`` that a scorer of this job has not scored."""
        if not self.scorers:
            return
        rows = self.engine.runlog.by_ids(
            request_ids, ("request_id", "status", "output", "input_variables")
        )
        ok = [r for r in rows if r["status"] == "ok"]
        if not ok:
            return
        have = ScoreLog(self.engine.runlog.db).values([r["request_id"] for r in ok])
        for scorer in self.scorers:
            scored = have.get(scorer.name, {})
            todo = [r for r in ok if r["request_id"] not in scored]
            if not todo:
                continue
            progress = [
                Progress(
                    PlannedRun(
                        i, None, None, None, None, 0, None, json.loads(r["input_variables"] or "{}")
                    ),
                    text=r["output"] or "",
                    status="ok",
                    request_id=r["request_id"],
                )
                for i, r in enumerate(todo)
            ]
            scoring = Batch(
                self.engine, self.prompt_name, [], scorers=[scorer], expected=self.expected
            )
            scoring.score(progress)


def _missing_outcome(state: BatchState, provider: str) -> BatchOutcome:
    """What a request the provider job gave no result for becomes."""
    if state.status == CANCELLED:
        return BatchOutcome("", cancelled=True)
    if state.status == EXPIRED:
        why = "the batch expired before this request ran"
        return BatchOutcome("", error=ProviderError(provider, "timeout", why))
    if state.status == FAILED:
        why = f"the batch failed: {state.message or 'the provider refused it'}"
        return BatchOutcome("", error=ProviderError(provider, "bad_request", why))
    why = "the batch ended without a result for this request"
    return BatchOutcome("", error=ProviderError(provider, "server", why))
