"""Batch mode: a comparison submitted as provider batches, a job that outlives the kernel.

``run_many(..., batch=True)`` and ``%%plrun ... --batch`` hand their planned runs to
:func:`pl_magic.engine.batch_submit.start`, which returns this module's :class:`BatchJob`:

1. **prepare** each run as a live one would be (resolve, render, the native request; the
   same :meth:`Engine.prepare`), so a batch request is exactly what a live call sends, minus
   streaming;
2. **key** the comparison (a sha256 over every planned run: its cell, the version it resolved
   to, its replay key — provider, model, base URL, request, repeat — and the tags, metadata
   and group): a job already submitted for the same key is **re-attached** to, never submitted
   again (after a kernel restart too: re-running the cell attaches);
3. **group** the runs by provider route, model, API type and base URL and **split** each
   group at its API's limits (requests and bytes) into provider jobs;
4. **record** the job, its provider jobs and every planned run with what ingesting its result
   needs (:mod:`pl_magic.runlog.batches`), then **submit**, writing each provider job's id the
   moment the provider accepts it;
5. runs whose route cannot batch (the local model, a template's own server, Vertex AI) go
   **live** through the normal path, with one notice per reason; in a replay mode
   (``cache="replay"``/``"replay-only"``) a run the log holds is **served** from it and never
   submitted (a miss is submitted in ``replay``, an error in ``replay-only``, as live);
6. :meth:`BatchJob.wait` **polls** with back-off (the kernel's interrupt stops the waiting,
   not the job) and **ingests** each provider job's results as it ends: one run row per
   request (same columns as a live run, ``batch_id`` set, status and error per request,
   cost at batch rates), written a chunk per transaction, sent to PromptLayer in the
   background with that backend, and scored by the comparison's scorers and judges.

A run that fails before any call (a missing variable, a missing key) is an error row of the
comparison, as live, and is not submitted.

Where each step lives: :mod:`~pl_magic.engine.batch_prepare` prepares and keys (1, 2 and
the routes of 5); :mod:`~pl_magic.engine.batch_submit` starts a job (groups, splits,
records and submits: 3 and 4); :mod:`~pl_magic.engine.batch_rows` writes the planned runs
to the job's tables and reads them back; :mod:`~pl_magic.engine.batch_ingest` turns a
provider job that ended into run rows and scores them (the ingesting of 6); this module is
the job handle (:class:`BatchJob`: polling, running the live runs of 5, waiting,
cancelling, its frame: 6) and lists the jobs.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core import config, notices
from ..core.blueprint import ModelSpec
from ..core.errors import ConfigurationError, InvalidInputError, ProviderError
from ..core.store import KeptInMemory, dumps, utcnow_iso
from ..providers import get_provider, info
from ..providers.batches import CANCELLED, FAILED, FINAL, BatchAPI, BatchState, Encoded
from ..runlog.batches import BatchStore
from .batch import Batch
from .batch_ingest import Ingester
from .batch_prepare import ROUTE_LIVE, ROUTE_SERVED
from .batch_rows import (
    planned_fields,
    planned_of,
    request_of,
    resolved_fields,
    run_fields,
)
from .engine import Engine
from .scoring import Scorer

if TYPE_CHECKING:
    import pandas as pd

#: Job statuses.
SUBMITTING, RUNNING, CANCELLING, DONE = "submitting", "running", "cancelling", "done"
JOB_CANCELLED = "cancelled"

#: Seconds after which a job still being submitted is taken to have been abandoned (its
#: kernel stopped): the provider jobs it had not recorded are submitted again.
SUBMIT_GRACE_S = 300.0
#: Errors of a poll that waiting longer cannot mend.
_FATAL = frozenset({"auth", "not_found", "bad_request"})


def poll_s() -> float:
    """The first wait between two polls of a job (``PL_MAGIC_BATCH_POLL_S``, 2 s)."""
    return max(0.01, config.env_float("PL_MAGIC_BATCH_POLL_S", 2.0))


def poll_max_s() -> float:
    """The longest wait between two polls (``PL_MAGIC_BATCH_POLL_MAX_S``, 60 s): the wait
    grows by half at each poll up to it."""
    return max(poll_s(), config.env_float("PL_MAGIC_BATCH_POLL_MAX_S", 60.0))


# -- the job ----------------------------------------------------------------------------------


@dataclass
class PartStatus:
    """One provider job, as a progress view shows it."""

    provider: str
    model: str
    provider_job_id: str | None
    status: str
    total: int
    succeeded: int | None
    errored: int | None
    ingested: bool
    message: str | None = None


@dataclass(repr=False)
class JobStatus:
    """Where a job is: its runs' counts and its provider jobs."""

    id: str
    prompt_name: str
    status: str
    total: int
    ok: int = 0
    error: int = 0
    cancelled: int = 0
    parts: list[PartStatus] = field(default_factory=list)
    #: The last poll's trouble (a connection error...), shown while waiting on.
    message: str | None = None

    @property
    def done(self) -> int:
        """Runs that have ended (logged, or failed before any call)."""
        return self.ok + self.error + self.cancelled

    @property
    def pending(self) -> int:
        """Runs still waiting for the provider (or for their live run)."""
        return max(0, self.total - self.done)

    @property
    def finished(self) -> bool:
        """True once every run has ended."""
        return self.status in (DONE, JOB_CANCELLED)

    def __repr__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """One line: the job, its status and its counts."""
        parts = ", ".join(
            f"{p.provider}/{p.model} {p.status}"
            + ("" if p.ingested or p.succeeded is None else f" ({p.succeeded or 0}/{p.total})")
            for p in self.parts
        )
        counts = f"{self.done}/{self.total} runs ended ({self.ok} ok"
        counts += f", {self.error} failed" if self.error else ""
        counts += f", {self.cancelled} cancelled" if self.cancelled else ""
        return f"batch job {self.id} {self.status}: {counts})" + (f" · {parts}" if parts else "")


class BatchJob:
    """A batch job: ``pl_magic.batches()`` lists them, ``pl_magic.wait(job)`` waits for one
    and returns its DataFrame, ``pl_magic.cancel(job)`` cancels it."""

    def __init__(
        self,
        engine: Engine,
        job_id: str,
        scorers: Sequence[Scorer] = (),
        expected: str = "expected",
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.store = BatchStore(engine.runlog.db)
        row = self.store.job(job_id)
        self.id: str = row["id"]
        self.prompt_name: str = row["prompt_name"]
        self.total: int = int(row["total"])
        self.scorers = list(scorers)
        self.expected = expected
        self.concurrency = concurrency
        self._apis: dict[int, BatchAPI] = {}
        self._message: str | None = None
        self._live_checked = False
        #: Parts whose runs this handle's scorers have looked at (see :meth:`_score_ingested`).
        self._scored: set[int] = set()

    def __repr__(self) -> str:
        return f"BatchJob({self.id!r})"

    # -- status ------------------------------------------------------------------------------

    def status(self) -> JobStatus:
        """The job's counts and provider jobs, as the log holds them (no provider call)."""
        row = self.store.job(self.id)
        counts = self.engine.runlog.batch_counts([self.id]).get(self.id, {})
        failed_before = self.store.failed_before_call([self.id]).get(self.id, 0)
        parts = [
            PartStatus(
                p["provider"],
                p["model"],
                p["provider_job_id"],
                p["status"],
                p["total"],
                p["succeeded"],
                p["errored"],
                bool(p["ingested"]),
                p["message"],
            )
            for p in self.store.parts([self.id])
        ]
        return JobStatus(
            self.id,
            self.prompt_name,
            row["status"],
            self.total,
            ok=counts.get("ok", 0),
            error=counts.get("error", 0) + failed_before,
            cancelled=counts.get("cancelled", 0),
            parts=parts,
            message=self._message,
        )

    # -- polling and ingesting ---------------------------------------------------------------

    def _api(self, part: Mapping[str, Any]) -> BatchAPI:
        """The batch API a provider job was submitted through, checked to go where it went."""
        number = int(part["part"])
        api = self._apis.get(number)
        if api is not None:
            return api
        provider = get_provider(part["provider"])
        spec = ModelSpec(part["provider"], part["model"], {}, part["api_type"], None)
        made = provider.batch_api(spec)
        if isinstance(made, str):
            raise ConfigurationError(
                f"batch job {self.id} ran on {part['provider']}/{part['model']}, which "
                f"cannot batch now ({made})"
            )
        if (made.base_url or None) != (part["base_url"] or None):
            variable = (info(part["provider"]).base_url_env_vars or ("its base URL",))[0]
            fix = f"set {variable}={part['base_url']}" if part["base_url"] else f"unset {variable}"
            raise ConfigurationError(
                f"batch job {self.id} was sent to {part['base_url'] or 'the provider'}, and "
                f"{part['provider']} now points at {made.base_url or 'its own API'}: {fix} "
                "to attach to it"
            )
        self._apis[number] = made
        return made

    def poll(self) -> JobStatus:
        """Ask the provider about each provider job still running; ingest those that ended.

        A provider error that waiting cannot mend (a bad key, an unknown job) is raised;
        others (a connection error) are shown and the next poll tries again.
        """
        self._message = None
        for part in self.store.parts([self.id]):
            if part["ingested"]:
                self._score_ingested(part)
                continue
            if part["provider_job_id"] is None:
                if part["status"] in FINAL:  # refused by the provider: its runs are errors
                    self._ingester().ingest(
                        part, None, BatchState("", part["status"], message=part["message"])
                    )
                    self._scored.add(int(part["part"]))
                elif self._submission_abandoned():
                    self._resubmit_part(part)
                continue
            try:
                api = self._api(part)
                state = api.retrieve(part["provider_job_id"])
                self.store.set_part(
                    self.id,
                    part["part"],
                    status=state.status,
                    succeeded=state.succeeded,
                    errored=state.errored,
                    message=state.message,
                    finished_at=utcnow_iso() if state.final else None,
                )
                if state.final:
                    self._ingester().ingest(part, api, state)
                    self._scored.add(int(part["part"]))
            except ProviderError as exc:
                if exc.category in _FATAL:
                    raise
                self._message = str(exc)
        self._run_live()
        status = self.status()
        if all(p.ingested for p in status.parts) and status.pending == 0:
            row = self.store.job(self.id)
            final = JOB_CANCELLED if row["status"] in (CANCELLING, JOB_CANCELLED) else DONE
            if row["status"] != final:
                self.store.set_job(self.id, final, finished=True)
            status.status = final
        return status

    def _submission_abandoned(self) -> bool:
        """True when the job's submission stopped part-way (its kernel stopped) long enough
        ago that no one is still submitting it: another kernel may be, for a few minutes."""
        row = self.store.job(self.id)
        if row["status"] != SUBMITTING:
            return True
        submitted = datetime.fromisoformat(row["submitted_at"]).timestamp()
        return time.time() - submitted > SUBMIT_GRACE_S

    def _resubmit_part(self, part: Mapping[str, Any]) -> None:
        """Submit a provider job that was written but not (known to be) accepted: the
        kernel stopped while submitting it."""
        columns = ("request_id", "request", "rendered_input", "run", "parameters")
        rows = self.store.requests(self.id, columns, part=part["part"])
        api = self._api(part)
        encoded = [api.encode(r["request_id"], request_of(r)) for r in rows]
        notices.warn(
            f"batch job {self.id}: provider job {part['part'] + 1} was being submitted when "
            "the kernel stopped; submitting it now (if the provider had accepted it, cancel "
            "the other copy in its console)"
        )
        submit_part(self.store, self.id, part["part"], api, encoded)
        if self.store.job(self.id)["status"] == SUBMITTING:
            self.store.set_job(self.id, RUNNING)

    def _score_ingested(self, part: Mapping[str, Any]) -> None:
        """Score the runs of a provider job ingested earlier that this handle's scorers have
        not scored yet (once per handle): the kernel stopped between logging and scoring
        them, or the handle that ingested them had other scorers. Scored runs are skipped."""
        number = int(part["part"])
        if not self.scorers or number in self._scored:
            return
        rows = self.store.requests(self.id, ("request_id",), part=number)
        self._ingester().score([r["request_id"] for r in rows])
        self._scored.add(number)

    def _ingester(self) -> Ingester:
        """What logs and scores a provider job's results once it has ended (made when
        needed, so it scores with the handle's scorers as they are then)."""
        return Ingester(
            self.engine, self.store, self.id, self.prompt_name, self.scorers, self.expected
        )

    # -- live runs ---------------------------------------------------------------------------

    def _run_live(self) -> None:
        """Run the job's live runs (routes that cannot batch, replay hits) that have not run
        yet: after a kernel restart, those it had not reached."""
        if self._live_checked:
            return
        rows = self.store.requests(
            self.id, ("request_id", "position", "route", "planned", "error_message")
        )
        live = [r for r in rows if r["route"] in (ROUTE_LIVE, ROUTE_SERVED)]
        if not live:
            self._live_checked = True
            return
        logged = {
            row["request_id"]
            for row in self.engine.runlog.by_ids([r["request_id"] for r in live], ("request_id",))
        }
        todo = [r for r in live if r["request_id"] not in logged and not r["error_message"]]
        if not todo:
            self._live_checked = True
            return
        options = json.loads(self.store.job(self.id)["options"] or "{}")
        run_kwargs = options.get("run_kwargs") or {}
        planned = [planned_of(i, json.loads(r["planned"])) for i, r in enumerate(todo)]
        live_batch = Batch(
            self.engine,
            self.prompt_name,
            planned,
            run_kwargs,
            self.concurrency,
            stream=False,
            scorers=self.scorers,
            expected=self.expected,
        )
        progress = live_batch.execute()
        updates: list[dict[str, Any]] = []
        ran: list[str] = []
        for row, item in zip(todo, progress, strict=True):
            if item.status == "pending":
                continue  # interrupted before it started: runs at the next wait
            local = self._local_id(item.request_id)
            if local is not None:
                ran.append(local)
                updates.append({"request_id": row["request_id"], "new_id": local})
            elif item.error is not None:
                updates.append(
                    {
                        "request_id": row["request_id"],
                        "error_category": getattr(item.error, "category", None) or "input",
                        "error_message": str(item.error),
                    }
                )
        self.store.set_requests(self.id, updates)
        with contextlib.suppress(KeptInMemory):  # (kept: written at the next chance)
            self.engine.runlog.set_batch(ran, self.id)
        if live_batch.cancel.is_set():
            raise KeyboardInterrupt

    def _local_id(self, request_id: Any) -> str | None:
        """A live run's local id (its result may carry PromptLayer's)."""
        if request_id is None:
            return None
        found = self.engine.runlog.by_either_id([request_id], ("request_id",))
        row = found.get(str(request_id))
        return row["request_id"] if row is not None else None

    # -- the public verbs --------------------------------------------------------------------

    def wait(
        self,
        timeout: float | None = None,
        on_progress: Callable[[JobStatus], None] | None = None,
        interruptible: bool = True,
    ) -> JobStatus:
        """Poll until every run has ended (or ``timeout`` seconds passed), with back-off
        (``PL_MAGIC_BATCH_POLL_S`` growing to ``PL_MAGIC_BATCH_POLL_MAX_S``), ingesting
        results as provider jobs end. The kernel's interrupt stops the waiting, not the
        job: a notice says how to attach again, and the status is returned (with
        ``interruptible=False`` the interrupt is raised after the notice)."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        delay = poll_s()
        try:
            while True:
                status = self.poll()
                if on_progress is not None:
                    on_progress(status)
                if status.finished:
                    return status
                if deadline is not None and time.monotonic() >= deadline:
                    return status
                pause = delay if deadline is None else min(delay, deadline - time.monotonic())
                time.sleep(max(0.0, pause))
                delay = min(delay * 1.5, poll_max_s())
        except KeyboardInterrupt:
            notices.warn(
                f"stopped waiting: batch job {self.id} keeps running on the provider — "
                f"pl_magic.wait({self.id!r}) (or the same cell again) attaches to it"
            )
            if not interruptible:
                raise
            status = self.status()
            if on_progress is not None:
                on_progress(status)
            return status

    def cancel(self) -> JobStatus:
        """Ask the provider to cancel each provider job still running; the runs it had not
        finished become ``cancelled`` rows once it has stopped (a later poll logs them,
        with those it finished)."""
        row = self.store.job(self.id)
        if row["status"] in (DONE, JOB_CANCELLED):
            return self.status()
        self.store.set_job(self.id, CANCELLING)
        for part in self.store.parts([self.id]):
            if part["ingested"] or part["status"] in FINAL:
                continue
            if part["provider_job_id"] is None:
                self.store.set_part(self.id, part["part"], status=CANCELLED)
                continue
            state = self._api(part).cancel(part["provider_job_id"])
            self.store.set_part(
                self.id,
                part["part"],
                status=state.status,
                succeeded=state.succeeded,
                errored=state.errored,
            )
        return self.poll()

    def frame(self) -> pd.DataFrame:
        """The job's runs as a DataFrame, in the comparison's order: one row per planned
        run (logged runs as the log has them; a run still waiting is ``pending``)."""
        from .results import LOG_COLUMNS, frame_from_log_columns, with_scores

        logged = self.engine.runlog.batch_columns(self.id, LOG_COLUMNS)
        if len(logged["request_id"]) == self.total:  # every run logged: in order already
            return with_scores(frame_from_log_columns(logged))
        index = {rid: i for i, rid in enumerate(logged["request_id"])}
        requests = self.store.requests(
            self.id, ("request_id", "planned", "error_category", "error_message")
        )
        status_of_job = self.store.job(self.id)["status"]
        columns: dict[str, list[Any]] = {c: [] for c in LOG_COLUMNS}
        unlogged: list[tuple[int, dict[str, Any]]] = []
        order: list[int] = []
        for req in requests:
            at = index.get(req["request_id"])
            if at is None:
                unlogged.append((len(order), req))
                at = -1
            order.append(at)
        for column in LOG_COLUMNS:
            stored = logged[column]
            columns[column] = [stored[at] if at >= 0 else None for at in order]
        if unlogged:
            batched = self._batched([req["request_id"] for _, req in unlogged])
            for position, req in unlogged:
                values = self._unlogged_row(req, batched.get(req["request_id"]), status_of_job)
                for column, value in values.items():
                    columns[column][position] = value
        return with_scores(frame_from_log_columns(columns))

    def _unlogged_row(
        self, req: Mapping[str, Any], batched: Mapping[str, Any] | None, job_status: str
    ) -> dict[str, Any]:
        """The frame's row of a planned run not in the log: failed before any call, still
        pending, or left when the job was cancelled."""
        failed = req["error_message"] is not None
        status = "error" if failed else "cancelled" if job_status == JOB_CANCELLED else "pending"
        row: dict[str, Any] = {
            "request_id": None if failed else req["request_id"],
            "prompt_name": self.prompt_name,
            "output": "",
            "status": status,
            "error_message": req["error_message"],
            "error_category": req["error_category"],
            "batch_id": self.id,
        }
        if batched is not None:  # a batched run: what it resolved to
            row.update(resolved_fields(run_fields(batched)))
            row["parameters"] = batched["parameters"]
            row["input_variables"] = batched["input_variables"]
            return row
        planned = json.loads(req["planned"] or "{}")  # otherwise: what was planned
        row.update(planned_fields(planned))
        row["input_variables"] = dumps(planned.get("input_variables") or {})
        return row

    def _batched(self, request_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of the batched runs among these (a run kept in the job's columns)."""
        columns = ("request_id", "run", "parameters", "input_variables")
        return {
            r["request_id"]: r
            for r in self.store.requests_by_ids(request_ids, columns)
            if r["run"] is not None
        }


def submit_part(
    store: BatchStore, job_id: str, part: int, api: BatchAPI, encoded: Sequence[Encoded]
) -> None:
    """Create one provider job and record its id at once (a refusal fails its runs).

    Here rather than beside :func:`~pl_magic.engine.batch_submit.start`: a job handle
    submits again a provider job whose kernel stopped while submitting it."""
    try:
        state = api.submit(encoded, f"pl_magic {job_id} part {part + 1}")
    except ProviderError as exc:
        store.set_part(job_id, part, status=FAILED, message=str(exc), finished_at=utcnow_iso())
        notices.warn(f"batch job {job_id}: the provider refused a batch: {exc}")
        return
    store.set_part(
        job_id,
        part,
        provider_job_id=state.job_id,
        status=state.status,
        submitted_at=utcnow_iso(),
    )


# -- listing and naming jobs ------------------------------------------------------------------


def job_of(engine: Engine, job: Any, **kwargs: Any) -> BatchJob:
    """A :class:`BatchJob` from a job, its id or a unique prefix of its id (``kwargs`` go
    to a new handle); a one-line :class:`InvalidInputError` naming the fix otherwise."""
    if isinstance(job, BatchJob):
        return job
    if isinstance(job, str) and job.strip():
        return BatchJob(engine, job, **kwargs)
    raise InvalidInputError(
        "job must be a batch job's id (pl_magic.batches() lists them) or the job "
        f"run_many(..., batch=True, wait=False) returned, not {type(job).__name__}"
    )


#: The columns of :func:`jobs_frame`, in order.
JOB_COLUMNS = (
    "job_id",
    "prompt_name",
    "status",
    "runs",
    "ok",
    "error",
    "cancelled",
    "pending",
    "provider_jobs",
    "submitted_at",
    "finished_at",
)


def listing(engine: Engine, limit: int | None = None) -> list[dict[str, Any]]:
    """Every batch job, newest first: its status, its runs' counts and its provider jobs
    (no provider call: as the log holds them)."""
    store = BatchStore(engine.runlog.db)
    jobs = store.jobs(limit)
    ids = [j["id"] for j in jobs]
    counts = engine.runlog.batch_counts(ids)
    parts: dict[str, list[dict[str, Any]]] = {}
    for part in store.parts(ids):
        parts.setdefault(part["job_id"], []).append(part)
    failed = store.failed_before_call(ids)
    out = []
    for job in jobs:
        by_status = counts.get(job["id"], {})
        ok = by_status.get("ok", 0)
        error = by_status.get("error", 0) + failed.get(job["id"], 0)
        cancelled = by_status.get("cancelled", 0)
        out.append(
            {
                "job_id": job["id"],
                "prompt_name": job["prompt_name"],
                "status": job["status"],
                "runs": job["total"],
                "ok": ok,
                "error": error,
                "cancelled": cancelled,
                "pending": max(0, job["total"] - ok - error - cancelled),
                "provider_jobs": "; ".join(
                    f"{p['provider']}/{p['model']} {p['provider_job_id'] or '—'} ({p['status']})"
                    for p in parts.get(job["id"], [])
                ),
                "submitted_at": job["submitted_at"],
                "finished_at": job["finished_at"],
            }
        )
    return out


def jobs_frame(engine: Engine, limit: int | None = None) -> pd.DataFrame:
    """:func:`listing` as a DataFrame (times as UTC timestamps)."""
    import pandas as pd

    df = pd.DataFrame.from_records(listing(engine, limit), columns=list(JOB_COLUMNS))
    for col in ("submitted_at", "finished_at"):
        df[col] = pd.to_datetime(df[col], format="ISO8601", utc=True)
    return df
