"""A batch job's planned runs as the ``batch_requests`` table keeps them: written when the
job is recorded, before its first provider job is created, and read back when its results
are ingested, a provider job is submitted again or the job's frame shows a run not logged.

A batched run keeps what ingesting its result needs, in a restarted kernel too: its
``run`` (the run record's fields it resolved to, as JSON), its parameters, input variables,
rendered template, tags and metadata, and (PromptLayer's) its request. A run that does not
go in a provider job keeps what was ``planned`` for it instead, so it can run live later.
The writer and the readers of these columns live here together, so they agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core import local_target
from ..core.blueprint import ModelSpec
from ..core.store import dumps
from ..providers import get_provider, info
from ..providers.batches import batch_request
from ..runlog.sqlite import run_key_of_json
from .batch import PlannedRun
from .batch_prepare import ROUTE_BATCH, BatchRun
from .engine import Engine, PreparedRun, _jsonable_vars

# -- writing ----------------------------------------------------------------------------------


def _planned_json(p: PlannedRun, variables: bool) -> str:
    """What was planned for a run (its input variables too when ``variables``: a batched
    run keeps them in their own column)."""
    planned: dict[str, Any] = {
        "version": p.version,
        "label": p.label,
        "provider": p.provider,
        "model": p.model,
        "repeat": p.repeat,
        "input_index": p.input_index,
    }
    if variables:
        planned["input_variables"] = _jsonable_vars(p.input_variables)
    return dumps(planned)


class RequestRows:
    """The ``batch_requests`` rows of a job's planned runs (no key: the request is the body).
    What a job's runs share is encoded once: the tags and metadata, each input row's
    variables, and each version × model's fields of the run record."""

    def __init__(self, job_id: str, engine: Engine, run_kwargs: Mapping[str, Any]) -> None:
        self.job_id = job_id
        self.backend = engine.registry.kind
        self.tags = dumps(list(run_kwargs.get("tags") or []))
        self.metadata = dumps(dict(run_kwargs.get("metadata") or {}))
        self._variables: dict[int | None, str] = {}
        self._cells: dict[tuple[Any, ...], str] = {}
        self._encoded: dict[int, tuple[Any, str]] = {}
        #: The local registry's requests are the provider's build of the rendered template:
        #: not kept (:func:`request_of` builds one again if a provider job must be
        #: submitted again).
        self.local = engine.registry.kind == "local"

    def __call__(self, run: BatchRun) -> dict[str, Any]:
        batched = run.route == ROUTE_BATCH and run.prepared is not None
        row: dict[str, Any] = {
            "request_id": run.request_id,
            "job_id": self.job_id,
            "position": run.planned.index,
            "part": run.part,
            "route": run.route,
            "planned": None if batched else _planned_json(run.planned, variables=True),
        }
        if run.error is not None:
            row["error_category"] = getattr(run.error, "category", None) or "input"
            row["error_message"] = str(run.error)
        prepared = run.prepared
        if prepared is None or not batched:
            return row
        spec, record, options = prepared.spec, prepared.record, prepared.options
        rendered = self._json(prepared.rendered)  # (a repeat shares its first's)
        parameters = self._json(spec.parameters)  # (a version × model shares one spec)
        variables = self._variables.get(run.planned.input_index)
        if variables is None:  # (the same for every run of an input row)
            variables = dumps(_jsonable_vars(options.input_variables))
            self._variables[run.planned.input_index] = variables
        key = run_key_of_json(
            record["prompt_name"],
            record["version"],
            rendered,
            spec.provider,
            spec.name,
            parameters,
            options.repeat_index,
        )
        # (the key and the cache key are hex digests: JSON strings as they are)
        row["run"] = (
            f'{{"run_key":"{key}","repeat_index":{int(options.repeat_index)},'
            f'"cache_key":"{prepared.cache_key}",{self._cell(prepared)}'
        )
        row["parameters"] = parameters
        row["input_variables"] = variables
        row["rendered_input"] = rendered
        row["tags"] = self.tags
        row["metadata"] = self.metadata
        if not self.local:  # (PromptLayer's request, rendered there: kept as it came)
            body = run.body
            row["request"] = (
                body if body is not None else self._json(batch_request(prepared.request))
            )
        return row

    def _json(self, value: Any) -> str:
        """``dumps(value)``, once per object: runs share their rendered template (repeats)
        and their model spec (a version × model). The objects live as long as the rows."""
        found = self._encoded.get(id(value))
        if found is None or found[0] is not value:
            found = self._encoded[id(value)] = (value, dumps(value))
        return found[1]

    def _cell(self, prepared: PreparedRun) -> str:
        """The run record's fields one version × model shares, as JSON without its ``{``."""
        spec, record, options = prepared.spec, prepared.record, prepared.options
        cell = (
            record["prompt_name"],
            record.get("id"),
            record["version"],
            options.prompt_release_label,
            spec.provider,
            spec.name,
            spec.api_type,
            spec.base_url,
            spec.local_model,
            options.group_id,
        )
        found = self._cells.get(cell)
        if found is None:
            shared = {
                "prompt_name": record["prompt_name"],
                "prompt_id": record.get("id"),
                "prompt_version": record["version"],
                "release_label": options.prompt_release_label,
                "provider": local_target.shown_provider(spec),
                "adapter": spec.provider,
                "model": spec.name,
                "api_type": spec.api_type,
                "base_url": spec.base_url,
                "group_id": options.group_id,
                "backend": self.backend,
                "pricing_id": prepared.provider.pricing_provider_id(spec),
                "function_name": info(spec.provider).function_name_for(spec.name, spec.api_type),
            }
            found = self._cells[cell] = dumps(shared)[1:]
        return found


# -- reading ----------------------------------------------------------------------------------


def request_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A planned run's batch request: as kept, or built again by its provider from the
    rendered template it kept (what prepare() does for the local registry)."""
    if row.get("request"):
        request: dict[str, Any] = json.loads(row["request"])
        return request
    run = run_fields(row)
    spec = ModelSpec(
        run["adapter"],
        run["model"],
        json.loads(row["parameters"] or "{}"),
        run["api_type"],
        run["base_url"],
    )
    rendered = json.loads(row["rendered_input"])
    return batch_request(get_provider(run["adapter"]).build_request(rendered, spec, False))


def run_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A batched run's ``run`` column: the run record's fields it resolved to, and what
    ingesting needs besides (its adapter, base URL, pricing id; see :meth:`RequestRows._cell`)."""
    fields_: dict[str, Any] = json.loads(row["run"] or "{}")
    return fields_


def resolved_fields(run: Mapping[str, Any]) -> dict[str, Any]:
    """Which run a batched run is, by the run record's names: the version, label, provider
    and model it resolved to and its repeat (from its ``run``: :func:`run_fields`). A row
    of the job's frame shows them before the run is logged; its log row keeps them."""
    return {
        "prompt_version": run["prompt_version"],
        "release_label": run["release_label"],
        "provider": run["provider"],
        "model": run["model"],
        "repeat_index": run["repeat_index"],
    }


def planned_fields(planned: Mapping[str, Any]) -> dict[str, Any]:
    """Which run a run not batched is, by the run record's names, as :func:`_planned_json`
    kept it (what was asked for, unresolved: a label, not its version)."""
    return {
        "prompt_version": planned.get("version"),
        "release_label": planned.get("label"),
        "provider": planned.get("provider"),
        "model": planned.get("model"),
        "repeat_index": planned.get("repeat"),
    }


def planned_of(index: int, planned: Mapping[str, Any]) -> PlannedRun:
    """The run :func:`_planned_json` kept, as run ``index`` of the comparison that runs
    the job's live runs."""
    return PlannedRun(
        index,
        planned.get("version"),
        planned.get("label"),
        planned.get("provider"),
        planned.get("model"),
        int(planned.get("repeat") or 0),
        planned.get("input_index"),
        dict(planned.get("input_variables") or {}),
    )
