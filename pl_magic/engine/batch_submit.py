"""Submitting a comparison as provider batches: :func:`start`.

:func:`start` prepares the planned runs and keys the job (:mod:`pl_magic.engine.batch_prepare`),
attaches to the job already submitted for that key if there is one, and otherwise groups
the batched runs by provider route, model, API type and base URL and splits each group at
its API's limits (requests and bytes) into provider jobs; it records the job, its provider
jobs and every planned run (:mod:`pl_magic.engine.batch_rows`), submits each provider job,
and runs the runs that cannot batch live while the provider works. What happens next is
the job handle's: :class:`pl_magic.engine.batch_jobs.BatchJob`. The overview of batch mode
is :mod:`pl_magic.engine.batch_jobs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core import local_target, notices
from ..core.errors import InvalidInputError
from ..core.store import dumps, utcnow_iso
from ..providers.batches import BatchAPI, Encoded, batch_request
from ..runlog.batches import BatchStore
from .batch import PlannedRun
from .batch_jobs import RUNNING, SUBMITTING, BatchJob, submit_part
from .batch_prepare import ROUTE_BATCH, ROUTE_LIVE, ROUTE_SERVED, BatchRun, Preparer, job_key
from .batch_rows import RequestRows
from .engine import Engine
from .scoring import Scorer


def new_job_id() -> str:
    """A new job id (``pl_magic.batches()`` shows it; a unique prefix is enough to name it)."""
    return "b" + uuid.uuid4().hex[:15]


def start(
    engine: Engine,
    prompt_name: str,
    planned: Sequence[PlannedRun],
    run_kwargs: Mapping[str, Any],
    *,
    scorers: Sequence[Scorer] = (),
    expected: str = "expected",
    concurrency: int = 8,
    reattach: bool = True,
) -> BatchJob:
    """Submit a comparison as provider batches, or attach to the job already submitted for
    it (see the module's docstring); the job. Runs whose route cannot batch run live here."""
    check_options(run_kwargs)
    prepare = Preparer(engine, prompt_name, run_kwargs)
    runs = [prepare(p) for p in planned]
    if any(run.prepared is not None and run.prepared.media for run in runs):
        # a job keeps its runs' inputs and requests in the log, which never stores media
        raise InvalidInputError(
            "batch=True does not take images or PDFs (a batch job keeps its inputs in the run "
            "log, which never stores them): run this comparison without batch=True"
        )
    apis = prepare.apis
    key = job_key(prompt_name, runs, run_kwargs)
    store = BatchStore(engine.runlog.db)
    if reattach:
        found = store.find(key)
        if found is not None:
            notices.warn(
                f"attached to batch job {found['id']} (submitted {found['submitted_at'][:19]} "
                "UTC for the same comparison; reattach=False submits it again)"
            )
            return BatchJob(engine, found["id"], scorers, expected, concurrency)
    job_id = new_job_id()
    parts, payloads = _split(runs, apis)
    _tell_live(runs)
    to_row = RequestRows(job_id, engine, run_kwargs)
    requests = [to_row(run) for run in runs]
    store.create(
        {
            "id": job_id,
            "job_key": key,
            "prompt_name": prompt_name,
            "status": SUBMITTING,
            "total": len(runs),
            "options": dumps({"run_kwargs": _stored_kwargs(run_kwargs)}),
            "submitted_at": utcnow_iso(),
        },
        parts,
        requests,
    )
    for number, (api, encoded) in enumerate(payloads):
        submit_part(store, job_id, number, api, encoded)
    store.set_job(job_id, RUNNING)
    job = BatchJob(engine, job_id, scorers, expected, concurrency)
    job._live_checked = not any(run.route in (ROUTE_LIVE, ROUTE_SERVED) for run in runs)
    try:
        job._run_live()  # while the provider works on the batches
    except KeyboardInterrupt:
        notices.warn(
            f"interrupted: batch job {job_id} is submitted; its live runs not started yet run "
            f"at pl_magic.wait({job_id!r}) (or the same cell again)"
        )
    return job


def check_options(run_kwargs: Mapping[str, Any]) -> None:
    """Refuse run keywords a batch cannot honour (before anything is estimated or sent)."""
    if not run_kwargs.get("log", True):
        raise InvalidInputError(
            "a batch job is kept in the run log: drop --no-log (log=False) to run it as a batch"
        )


def _stored_kwargs(run_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The run keywords a restarted kernel needs for the job's live runs (plain data)."""
    keep = (
        "tags",
        "metadata",
        "group_id",
        "model_parameter_overrides",
        "default_provider",
        "default_model",
        "cache",
    )
    return {k: run_kwargs[k] for k in keep if run_kwargs.get(k) is not None}


def _tell_live(runs: Iterable[BatchRun]) -> None:
    """One notice per route that cannot batch: its runs go live."""
    reasons: dict[tuple[str, str], int] = {}
    for run in runs:
        if run.route == ROUTE_LIVE and run.reason and run.prepared is not None:
            spec = run.prepared.spec
            name = f"{local_target.shown_provider(spec)}/{spec.name}"
            reasons[(name, run.reason)] = reasons.get((name, run.reason), 0) + 1
    for (name, reason), count in reasons.items():
        runs_text = "1 run goes" if count == 1 else f"{count} runs go"
        notices.warn(f"{name} cannot run as a provider batch ({reason}): {runs_text} live")


def _split(
    runs: Sequence[BatchRun], apis: Mapping[tuple[Any, ...], BatchAPI | str]
) -> tuple[list[dict[str, Any]], list[tuple[BatchAPI, list[Encoded]]]]:
    """Group the batch runs and split each group at its API's limits: the parts' rows and
    their payloads. A request too large for any job goes live."""
    groups: dict[tuple[Any, ...], list[BatchRun]] = {}
    for run in runs:
        if run.route == ROUTE_BATCH and run.group is not None:
            groups.setdefault(run.group, []).append(run)
    parts: list[dict[str, Any]] = []
    payloads: list[tuple[BatchAPI, list[Encoded]]] = []
    for group, members in groups.items():
        api = apis[group]
        assert not isinstance(api, str)
        for chunk in _chunks(api, members):
            number = len(parts)
            for run, _ in chunk:
                run.part = number
            parts.append(
                {
                    "part": number,
                    "provider": api.spec.provider,
                    "model": api.spec.name,
                    "api_type": api.spec.api_type,
                    "base_url": api.base_url,
                    "status": SUBMITTING,
                    "total": len(chunk),
                    "ingested": 0,
                }
            )
            payloads.append((api, [encoded for _, encoded in chunk]))
    return parts, payloads


def _body_json(run: BatchRun, request: Mapping[str, Any]) -> str:
    """The batch request's body as JSON: the request as its cache key encoded it, where
    that is the body (no ``extra_body`` to merge; the delivery keys are left out of both)."""
    if run.keyer is not None and "extra_body" not in request:
        return run.keyer.request_json
    return dumps(batch_request(request))


def _chunks(api: BatchAPI, members: Sequence[BatchRun]) -> list[list[tuple[BatchRun, Encoded]]]:
    """``members`` encoded and cut where a job would pass a limit (requests or bytes)."""
    limits = api.limits
    out: list[list[tuple[BatchRun, Encoded]]] = []
    current: list[tuple[BatchRun, Encoded]] = []
    size = 0
    bodies: dict[int, tuple[Any, str]] = {}  # a repeat sends its first's request object
    for run in members:
        assert run.prepared is not None
        request = run.prepared.request
        found = bodies.get(id(request))
        if found is None or found[0] is not request:
            found = bodies[id(request)] = (request, _body_json(run, request))
        run.body = found[1]
        encoded = api.encode(run.request_id, request, run.body)
        if encoded.size > limits.max_bytes:
            run.route, run.group = ROUTE_LIVE, None
            run.reason = "a request larger than one provider batch may hold"
            continue
        if current and (
            len(current) >= limits.max_requests or size + encoded.size > limits.max_bytes
        ):
            out.append(current)
            current, size = [], 0
        current.append((run, encoded))
        size += encoded.size
    if current:
        out.append(current)
    return out
