"""Preparing a comparison's runs for a batch job, and the key that finds the job again.

Each planned run is prepared as a live one would be (resolve, render, the native request;
the same :meth:`Engine.prepare`) and given its route: ``batch`` (sent in a provider job),
``live`` (its route cannot batch: the local model, a template's own server, Vertex AI),
``served`` (a replay mode found it in the log) or ``failed`` (it failed before any call, an
error row of the comparison as live). :func:`job_key` then hashes the prepared comparison,
so that running it again finds the job already submitted for it: a sha256 over every
planned run (its cell, the version it resolved to, its replay key — provider, model, base
URL, request, repeat — and the tags, metadata and group). The overview of batch mode is
:mod:`pl_magic.engine.batch_jobs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core import blueprint, render_budget
from ..core.errors import PlMagicError
from ..core.store import dumps
from ..providers.batches import BatchAPI
from . import replay, versions
from .batch import PlannedRun
from .engine import Engine, PreparedRun, RunOptions

#: Run routes (``batch_requests.route``).
ROUTE_BATCH, ROUTE_LIVE, ROUTE_SERVED, ROUTE_FAILED = "batch", "live", "served", "failed"


@dataclass
class BatchRun:
    """One planned run of a job, prepared."""

    planned: PlannedRun
    request_id: str
    route: str
    prepared: PreparedRun | None = None
    error: PlMagicError | None = None
    #: Why the run goes live (its route cannot batch).
    reason: str | None = None
    group: tuple[Any, ...] | None = None
    part: int | None = None
    #: The batch request's body as JSON (the payload's and the job record's).
    body: str | None = None
    #: The replay-cache keys of this run's request (its repeats share it).
    keyer: replay.RequestKey | None = None


class _Snapshot:
    """The engine's registry as a comparison submitted at once reads it: each template
    (name, version or label, run context) fetched once, not once per run. Everything else
    is the registry's own, and it stands for the registry wherever one is looked up by
    identity (the label tracker of :mod:`pl_magic.engine.versions`)."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}

    def get(
        self, name: str, version: int | str | None = None, label: str | None = None, **run: Any
    ) -> dict[str, Any]:
        try:
            key: tuple[Any, ...] = (name, version, label, dumps(sorted(run.items())))
        except (TypeError, ValueError):
            return dict(self._registry.get(name, version=version, label=label, **run))
        found = self._records.get(key)
        if found is None:
            found = self._records[key] = self._registry.get(
                name, version=version, label=label, **run
            )
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def __hash__(self) -> int:
        return hash(self._registry)

    def __eq__(self, other: object) -> bool:
        return other is self or other is self._registry


class Preparer:
    """Prepares a comparison's runs as :meth:`Engine.prepare` does, through a
    :class:`_Snapshot` of the registry; each input row's options are checked once."""

    def __init__(self, engine: Engine, prompt_name: str, run_kwargs: Mapping[str, Any]) -> None:
        # the registry's label tracker exists before the snapshot looks it up (it is kept
        # by the registry, so the labels this comparison used can be pinned later)
        versions.tracker_for(engine.registry)
        self.engine = Engine(_Snapshot(engine.registry), engine.runlog, engine.sink)
        self.prompt_name = prompt_name
        self.run_kwargs = run_kwargs
        self.apis: dict[tuple[Any, ...], BatchAPI | str] = {}
        self._rows: dict[int | None, RunOptions] = {}
        self._cells: set[tuple[Any, ...]] = set()
        self._firsts: dict[tuple[Any, ...], BatchRun] = {}
        #: Per version × model: its first batched run, prepared whole, and the input
        #: variables of the template it resolved to.
        self._templates: dict[tuple[Any, ...], tuple[BatchRun, list[str]]] = {}
        self._replaying: bool | None = None  # (the comparison's cache mode, read once)
        #: The local registry renders nothing itself (PromptLayer may: each run is asked).
        self.local = engine.registry.kind == "local"

    def options(self, planned: PlannedRun) -> RunOptions:
        """The run's options, checked as run() checks them (once per input row and once per
        version × model): a bad one is the one-line error run() gives."""
        cell = (planned.version, planned.label, planned.provider, planned.model)
        if cell not in self._cells:
            RunOptions.build(
                self.prompt_name,
                prompt_version=planned.version,
                prompt_release_label=planned.label,
                provider=planned.provider,
                model=planned.model,
                **self.run_kwargs,
            )
            self._cells.add(cell)
        base = self._rows.get(planned.input_index)
        if base is None:
            base = self._rows[planned.input_index] = RunOptions.build(
                self.prompt_name,
                input_variables=planned.input_variables,
                stream=False,
                **self.run_kwargs,
            )
        return dataclasses.replace(
            base,
            prompt_version=planned.version,
            prompt_release_label=planned.label,
            provider=planned.provider,
            model=planned.model,
            repeat_index=planned.repeat,
        )

    def __call__(self, planned: PlannedRun) -> BatchRun:
        """One run prepared (a bad input row raises: nothing is submitted).

        The first batched run of each version × model goes through :meth:`Engine.prepare`
        whole; the others of that version × model on the local registry, outside a replay
        mode, only render their input into the template it resolved and build the request
        from it, with the provider's own ``build_request`` (what ``prepare`` does per run);
        a repeat of a run sends the same request as its first, keyed as its repeat.
        """
        options = self.options(planned)
        row = (planned.input_index, planned.version, planned.label, planned.provider, planned.model)
        first = self._firsts.get(row)
        if first is not None and first.prepared is not None:
            return _repeat_of(first, first.prepared, planned, options)
        cell = row[1:]
        if self._replaying is None:
            self._replaying = replay.mode(options.cache) in replay.REPLAYING
        template = self._templates.get(cell)
        if template is not None:
            run = _rendered(*template, options, planned)
        else:
            run = _prepare(self.engine, options, planned, self.apis)
            if (
                run.route == ROUTE_BATCH
                and run.prepared is not None
                and self.local
                and not options.follow_up  # (a tool loop's messages: prepare() adds them)
                and not self._replaying
            ):
                needed = blueprint.input_variables(run.prepared.record["prompt_template"])
                self._templates[cell] = (run, needed)
        if run.route == ROUTE_BATCH and not self._replaying:
            self._firsts[row] = run
        return run


def _rendered(
    template: BatchRun, needed: Sequence[str], options: RunOptions, planned: PlannedRun
) -> BatchRun:
    """A run of the same version × model as ``template`` (a batched run prepared whole,
    whose template uses the input variables ``needed``): its input rendered into the same
    resolved template, its request built by the provider."""
    first = template.prepared
    assert first is not None
    spec, provider, record = first.spec, first.provider, first.record
    request_id = uuid.uuid4().hex
    try:
        with render_budget.render_budget():  # one size and time budget for all the messages
            rendered = blueprint.render(
                record["prompt_template"],
                options.input_variables,
                options.prompt_name,
                needed=needed,
            )
        request = provider.build_request(rendered, spec, False)
    except Exception as exc:
        return _failed(planned, request_id, exc)
    run = PreparedRun(options, record, spec, provider, rendered, request, first.dropped_parameters)
    # (a batched run's spec has no base URL of its own: as prepare() keyed it)
    keyer = replay.RequestKey(spec.provider, spec.name, spec.base_url, request)
    run.cache_key = keyer(options.repeat_index)
    return BatchRun(planned, request_id, ROUTE_BATCH, run, group=template.group, keyer=keyer)


def _failed(planned: PlannedRun, request_id: str, exc: Exception) -> BatchRun:
    """A run that failed before any call: an error row of the comparison, as live (a
    surprise is kept as one too: one run must never lose the comparison)."""
    error = exc if isinstance(exc, PlMagicError) else PlMagicError(f"{exc!r}")
    return BatchRun(planned, request_id, ROUTE_FAILED, error=error)


def _repeat_of(
    first: BatchRun, prepared: PreparedRun, planned: PlannedRun, options: RunOptions
) -> BatchRun:
    """Another repeat of a batched run: the same resolved template, request and route (a
    repeat is keyed apart by its index only: see :func:`pl_magic.engine.replay.cache_key`)."""
    spec = prepared.spec
    run = PreparedRun(
        options,
        prepared.record,
        spec,
        prepared.provider,
        prepared.rendered,
        prepared.request,
        prepared.dropped_parameters,
    )
    if first.keyer is None:
        # (a batched run's spec has no base URL of its own: as prepare() keyed it)
        first.keyer = replay.RequestKey(spec.provider, spec.name, spec.base_url, prepared.request)
    run.cache_key = first.keyer(options.repeat_index)
    return BatchRun(
        planned, uuid.uuid4().hex, ROUTE_BATCH, run, group=first.group, keyer=first.keyer
    )


def _prepare(
    engine: Engine,
    options: RunOptions,
    planned: PlannedRun,
    apis: dict[tuple[Any, ...], BatchAPI | str],
) -> BatchRun:
    """Prepare one run and decide its route."""
    request_id = uuid.uuid4().hex
    try:
        prepared = engine.prepare(options)
    except Exception as exc:
        return _failed(planned, request_id, exc)
    if prepared.served is not None:
        return BatchRun(planned, request_id, ROUTE_SERVED, prepared)
    spec = prepared.spec
    group = (spec.provider, spec.name, spec.api_type, spec.base_url, spec.local_model)
    api = apis.get(group)
    if api is None:
        try:
            api = apis[group] = prepared.provider.batch_api(spec)
        except PlMagicError as exc:  # a missing key, an untrusted URL: as live, an error row
            return BatchRun(planned, request_id, ROUTE_FAILED, error=exc)
    if isinstance(api, str):
        return BatchRun(planned, request_id, ROUTE_LIVE, prepared, reason=api)
    return BatchRun(planned, request_id, ROUTE_BATCH, prepared, group=group)


def job_key(prompt_name: str, runs: Sequence[BatchRun], run_kwargs: Mapping[str, Any]) -> str:
    """The key that finds a job submitted for the same comparison (see the module's
    docstring): the same planned runs resolved to the same versions and requests."""
    digest = hashlib.sha256()
    shared = [
        list(run_kwargs.get("tags") or []),
        dict(run_kwargs.get("metadata") or {}),
        run_kwargs.get("group_id"),
    ]
    digest.update(dumps([prompt_name, shared]).encode())
    for run in runs:
        p = run.planned
        planned = (p.version, p.label, p.provider, p.model, p.repeat, p.input_index)
        prepared = run.prepared
        if prepared is not None:
            ident = (*planned, prepared.record.get("version"), prepared.cache_key)
        else:  # failed before any call: its inputs say which run it is
            ident = (*planned, type(run.error).__name__, dumps(p.input_variables))
        # (repr of ints, strings and None: as stable as JSON, and cheaper for 10,000 runs)
        digest.update(("\x1f".join(map(repr, ident)) + "\x1e").encode())
    return digest.hexdigest()
