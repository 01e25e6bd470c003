"""The engine: resolve → render → call → stream → log → result.

One code path for the Python API, the magic, the widget and the CLI. The contract is
PromptLayer's ``run()``: :meth:`Engine.run` returns a :class:`~pl_magic.core.types.RunResult`
(``request_id``, ``raw_response``, the SDK's own object, and ``prompt_blueprint``);
:meth:`Engine.stream` an iterator of :class:`~pl_magic.core.types.RunChunk` where only the
last one carries the ``request_id`` and each ``prompt_blueprint`` holds the reply so far.
The public ``run(stream=True)`` picks one or the other.

Every run is logged, whatever happens: ``ok``, ``error`` (with its category and the
partial text) or ``cancelled`` (KeyboardInterrupt, or a stream closed early).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import math
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar, Unpack, cast

from ..core import blueprint, config, local_target, notices, render_budget
from ..core.blueprint import ModelSpec
from ..core.errors import (
    ConfigurationError,
    InvalidInputError,
    InvalidOutputError,
    PlMagicError,
    shown,
)
from ..core.media import Media, Redactor, data_url_inputs, resolve_slots
from ..core.plain_data import plain_variables
from ..core.store import KeptInMemory
from ..core.types import RUN_ARGUMENTS, Blueprint, RunArgs, RunChunk, RunResult
from ..providers import get_provider, info, structured_output
from ..providers import local as local_model
from ..providers.base import Provider, Reply, StreamState
from ..registry.base import PreRendered, Registry
from ..runlog.base import ProviderCall, RunRecord, RunSink
from ..runlog.scores import ScoreLog, ScoreRow, percent
from ..runlog.sqlite import RunLog, run_key
from . import limiter, pricing, replay, versions

_T = TypeVar("_T")

limiter.install()  # the providers' HTTP hooks report to the limiters from now on


def new_request_id() -> str:
    """A new local request id."""
    return uuid.uuid4().hex


class RunOptionArgs(RunArgs, total=False):
    """The keywords of :meth:`RunOptions.build`: ``run()``'s, and the surfaces' own."""

    #: Which repeat of the same run this is (a comparison's ``--repeat``; part of its key).
    repeat_index: int
    #: False: not logged (``%%plrun --no-log``).
    log: bool
    #: The model for templates that name none (the magic's configured default).
    default_provider: str | None
    default_model: str | None
    #: The replay cache's mode for this run (None: the configured one; see engine/replay.py).
    cache: str | None


#: The keywords a client's ``run()`` takes besides PromptLayer's (see :class:`RunOptionArgs`).
SURFACE_ARGUMENTS = ("repeat_index", "log", "default_provider", "default_model", "cache")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The arguments of ``run()``, checked: made by :meth:`build` (or :meth:`from_call`),
    which checks everything once, and never changed after (frozen)."""

    prompt_name: str
    prompt_version: int | None = None
    prompt_release_label: str | None = None
    input_variables: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    group_id: int | None = None
    model_parameter_overrides: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    provider: str | None = None
    model: str | None = None
    repeat_index: int = 0
    log: bool = True
    default_provider: str | None = None
    default_model: str | None = None
    cache: str | None = None
    #: Messages appended to the rendered template, never rendered themselves (the tool
    #: loop's assistant tool calls and tool results: see engine/tool_loop.py).
    follow_up: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_call(
        cls, arguments: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> RunOptions:
        """The options of a public ``run()`` call: ``arguments`` holds its parameters by
        name (its ``locals()``; the names of :data:`~pl_magic.core.types.RUN_ARGUMENTS` are
        read), ``extra`` its keywords beyond PromptLayer's (:data:`SURFACE_ARGUMENTS`)."""
        if extra:
            unknown = sorted(set(extra) - set(SURFACE_ARGUMENTS))
            if unknown:
                raise InvalidInputError(
                    f"run() got unknown argument(s) {', '.join(unknown)}: see help(pl_magic.run)"
                )
        named = {name: arguments[name] for name in RUN_ARGUMENTS}
        return cls.build(**named, **(extra or {}))

    @classmethod
    def build(cls, prompt_name: Any, **kwargs: Unpack[RunOptionArgs]) -> RunOptions:
        """Check argument types and build options; bad input is a one-line error."""
        if not isinstance(prompt_name, str) or not prompt_name.strip():
            raise InvalidInputError("prompt_name must be the name of a registry prompt")
        checks = {
            "input_variables": dict,
            "metadata": dict,
            "model_parameter_overrides": dict,
        }
        for key, kind in checks.items():
            value = kwargs.get(key)
            if value is not None and not isinstance(value, kind):
                raise InvalidInputError(
                    f"{key} must be a dict, not {type(value).__name__}: pass e.g. {{'name': 'Ada'}}"
                )
        _check_overrides(kwargs.get("model_parameter_overrides") or {})
        tags = kwargs.get("tags")
        if tags is not None and (
            isinstance(tags, str) or not all(isinstance(t, str) for t in tags)
        ):
            raise InvalidInputError("tags must be a list of strings, e.g. ['demo']")
        version = kwargs.get("prompt_version")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, int | str):
                raise InvalidInputError(f"prompt_version must be a number, not {shown(version)}")
            try:
                version = int(version)
            except ValueError:
                raise InvalidInputError(
                    f"prompt_version must be a number, not {shown(version)}: "
                    "use prompt_release_label for labels"
                ) from None
        group_id = kwargs.get("group_id")
        if group_id is not None and (
            isinstance(group_id, bool) or not isinstance(group_id, int) or not 0 <= group_id < 2**63
        ):  # (the log's column is a 64-bit integer: a bigger one would fail after the call)
            raise InvalidInputError("group_id must be an integer from pl_magic.create_group()")
        for key in ("provider", "model", "prompt_release_label"):
            value = kwargs.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidInputError(f"{key} must be a non-empty string, not {shown(value)}")
        # Templates see plain data only, never the user's objects (see plain_data.py).
        input_variables = plain_variables(kwargs.get("input_variables"))
        # Text that cannot be encoded could be neither sent nor logged: refused before the call.
        for name, value in input_variables.items():
            blueprint.check_utf8(name, "An input variable's name")
            blueprint.check_utf8(value, f"Input variable {shown(name, 40)}")
        for key in ("tags", "metadata", "model_parameter_overrides"):
            blueprint.check_utf8(kwargs.get(key), key)
        return cls(
            prompt_name=prompt_name.strip(),
            prompt_version=version,
            prompt_release_label=kwargs.get("prompt_release_label"),
            input_variables=input_variables,
            tags=list(tags or []),
            metadata=dict(kwargs.get("metadata") or {}),
            group_id=group_id,
            model_parameter_overrides=dict(kwargs.get("model_parameter_overrides") or {}),
            stream=bool(kwargs.get("stream", False)),
            provider=kwargs.get("provider"),
            model=kwargs.get("model"),
            repeat_index=int(kwargs.get("repeat_index", 0)),
            log=bool(kwargs.get("log", True)),
            default_provider=kwargs.get("default_provider"),
            default_model=kwargs.get("default_model"),
            cache=None if kwargs.get("cache") is None else config.check_cache_mode(kwargs["cache"]),
        )


#: Keys that are the call's own arguments or the prompt, not model parameters: as an
#: override each would make the request differ from what is logged (or break the call).
_ARGUMENT_KEYS = {"model": "model", "provider": "provider", "stream": "stream"}
_PROMPT_KEYS = frozenset(
    {
        "messages",
        "system",
        "prompt",
        "input",
        "contents",
        "history",
        "system_instruction",
        "tools",
        "functions",
        "stream_options",
    }
)


def _check_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse overrides of the model, the provider, streaming or the prompt itself."""
    for key, value in overrides.items():
        if key in _ARGUMENT_KEYS:
            raise InvalidInputError(
                f"model_parameter_overrides cannot set {key!r}: pass {key}={shown(value, 40)} "
                f"instead (--{key} in %%plrun and pl-magic)"
                if key != "stream"
                else "model_parameter_overrides cannot set 'stream': pass stream=True or "
                "stream=False instead (--no-stream in %%plrun and pl-magic)"
            )
        if key in _PROMPT_KEYS:
            raise InvalidInputError(
                f"model_parameter_overrides cannot set {key!r}, which is part of the prompt, "
                "not a model parameter: publish a new version of the template instead"
            )


@dataclass
class PreparedRun:
    """Everything decided before the provider is called."""

    options: RunOptions
    record: dict[str, Any]
    spec: ModelSpec
    provider: Provider
    rendered: dict[str, Any]
    request: dict[str, Any]
    dropped_parameters: list[str]
    t0: float = 0.0
    ttft_s: float | None = None
    # Stream chunks' blueprints share one copy of the rendered template (see blueprint()).
    _chunk_template: dict[str, Any] | None = field(default=None, init=False, repr=False)
    # The id and the start time are made when first needed, after the provider call has
    # gone out: every microsecond before it is time to first token.
    _request_id: str | None = field(default=None, init=False, repr=False)
    _started_wall: float = field(default=0.0, init=False, repr=False)
    #: The run's log row once logged (what is sent to PromptLayer comes from it).
    logged: RunRecord | None = field(default=None, init=False, repr=False)
    #: The replay cache's key of this request (see engine/replay.py).
    cache_key: str | None = field(default=None, init=False, repr=False)
    #: A replay hit: the recorded row served instead of a call.
    served: dict[str, Any] | None = field(default=None, init=False, repr=False)
    #: The lengths of the streamed text pieces, once the stream completed.
    chunk_sizes: list[int] | None = field(default=None, init=False, repr=False)
    #: The provider's reply, once complete (its tool calls: see engine/tool_loop.py).
    reply: Reply | None = field(default=None, init=False, repr=False)
    #: The media of the run's media slots, by input variable (read and checked; see
    #: core/media.py): what the log keeps markers of instead of the bytes.
    media: dict[str, Media] = field(default_factory=dict, init=False, repr=False)

    def redacted(self) -> Redactor | None:
        """What replaces the run's media bytes in what is stored (None: it has none)."""
        return Redactor(self.media.values()) if self.media else None

    @property
    def request_id(self) -> str:
        """The run's local request id."""
        if self._request_id is None:
            self._request_id = new_request_id()
        return self._request_id

    @property
    def started_at(self) -> str:
        """When the provider call started, ISO-8601 UTC ("" before :meth:`begin`)."""
        if not self._started_wall:
            return ""
        return datetime.fromtimestamp(self._started_wall, UTC).isoformat(timespec="microseconds")

    @property
    def extra_metadata(self) -> dict[str, Any]:
        """What goes into the blueprint's metadata besides ``model``."""
        return {"dropped_parameters": self.dropped_parameters} if self.dropped_parameters else {}

    def blueprint(
        self, text: str, tool_calls: list[dict[str, Any]] | None = None, chunk: bool = False
    ) -> Blueprint:
        """The ``prompt_blueprint`` with ``text`` as the assistant's reply.

        A final result's blueprint is a deep copy of its own. A stream chunk's (``chunk``)
        shares the rendered messages, copied once per run, with the run's other chunks:
        a deep copy per chunk cost more than the SDK's own parsing of the chunk.
        """
        if chunk:
            if self._chunk_template is None:
                self._chunk_template = blueprint.copy_json(self.rendered)
            shared = blueprint.with_reply(
                self._chunk_template, self.spec, text, tool_calls, self.extra_metadata, False
            )
        else:
            shared = blueprint.with_reply(
                self.rendered, self.spec, text, tool_calls, self.extra_metadata
            )
        out = cast("Blueprint", shared)  # (with_reply builds exactly that shape)
        out["prompt_name"] = self.record["prompt_name"]
        out["prompt_version"] = self.record["version"]
        out["release_label"] = self.options.prompt_release_label
        return out

    def begin(self) -> None:
        """Mark the start of the provider call."""
        self._started_wall = time.time()
        self.t0 = time.perf_counter()


def resolve_model(record: Mapping[str, Any], options: RunOptions) -> tuple[ModelSpec, list[str]]:
    """The model that will run: the template's, with provider/model/parameter overrides.

    When the provider changes, parameters with an equivalent are carried over under the
    target's own names, the rest are dropped (and reported), and the target's required
    defaults are filled. ``model_parameter_overrides`` are applied last; canonical names
    among them (``max_tokens``, ``stop``...) are renamed to the target's own.
    """
    model_meta = ((record.get("metadata") or {}).get("model")) or {}
    base_url = (record.get("provider_base_url") or {}).get("url")
    if not model_meta and options.default_provider:
        model_meta = {"provider": options.default_provider, "name": options.default_model}
    if not model_meta and not options.provider:
        raise ConfigurationError(
            f"Prompt {record['prompt_name']!r} version {record['version']} has no model: "
            "publish it with metadata={'model': {'provider': ..., 'name': ...}} or pass provider= "
            "and model="
        )
    source_provider = model_meta.get("provider") or options.provider
    source = get_provider(str(source_provider))
    spec = ModelSpec(
        provider=str(source_provider),
        name=str(model_meta.get("name") or info(str(source_provider)).default_model),
        parameters=dict(model_meta.get("parameters") or {}),
        api_type=model_meta.get("api_type"),
        base_url=base_url,
    )
    dropped: list[str] = []
    if options.provider and options.provider != spec.provider:
        target = get_provider(options.provider)
        name = options.model or info(options.provider).default_model
        source_map = source.parameters_for(spec.api_type, spec.name)
        canonical, unknown = source_map.to_canonical(spec.parameters)
        native, no_equivalent = target.parameters_for(None, name).from_canonical(canonical)
        dropped = sorted(unknown + no_equivalent)
        spec = ModelSpec(
            provider=options.provider,
            name=name,
            parameters=native,
            api_type=None,
            base_url=None,  # a provider_base_url belongs to the template's own provider
        )
    elif options.model:
        spec.name = options.model
    params = get_provider(spec.provider).parameters_for(spec.api_type, spec.name)
    spec.parameters, unsupported = params.adapt(spec.parameters)
    for key, value in params.required.items():
        spec.parameters.setdefault(key, value)
    # Overrides win over everything; canonical names (max_tokens, stop, ...) are renamed to
    # the target's own so that one override works on every provider.
    overrides, not_supported = params.adapt(options.model_parameter_overrides)
    spec.parameters.update(overrides)
    dropped = sorted({*dropped, *unsupported, *not_supported})
    return spec, dropped


class Engine:
    """Runs registry prompts. Surfaces call :meth:`run` / :meth:`arun`."""

    def __init__(self, registry: Registry, runlog: RunLog, sink: RunSink | None = None) -> None:
        self.registry = registry
        self.runlog = runlog
        #: With the PromptLayer backend: sends runs to /track-request
        #: (:class:`pl_magic.runlog.promptlayer.PromptLayerSink`).
        self.sink = sink

    # -- preparing -----------------------------------------------------------------------

    def prepare(self, options: RunOptions) -> PreparedRun:
        """Resolve the template, pick the model, render, build the native request.

        Everything that can fail without the network fails here, before any call.
        """
        version, label = options.prompt_version, options.prompt_release_label
        if version is not None and label is not None:
            notices.warn(
                f"both prompt_version={version} and prompt_release_label={label!r} given; "
                f"the label wins, as in PromptLayer's SDK"
            )
            version = None
        if options.log:
            self.runlog.check()  # a log file that cannot be used fails here, not after a call
        if self.sink is not None:
            self.sink.before_run()
        record = self._template(options, version, label)
        prerendered = self.registry.prerendered(record, options.stream)
        if prerendered is not None:
            return self._prepare_prerendered(options, record, prerendered)
        spec, dropped = resolve_model(record, options)
        local_target.route_to_local_model(record, spec)
        provider = get_provider(spec.provider)
        replaying = replay.mode(options.cache) in replay.REPLAYING
        if not replaying:  # (a replay hit needs no key: checked on a miss, below)
            provider.check_credentials(spec)
        template = record["prompt_template"]
        slots = blueprint.media_slots(template)
        # Media slots are read (files) and checked against the provider's limits before
        # rendering, so that nothing is rendered or sent for media the provider refuses.
        found = (
            resolve_slots(
                slots, options.input_variables, provider.media_limits(spec, template.get("type"))
            )
            if slots
            else {}
        )
        with render_budget.render_budget():  # one size and time budget for all the messages
            rendered = blueprint.render(
                template, options.input_variables, options.prompt_name, found
            )
        rendered = _with_follow_up(rendered, options)
        # Built before the local model's server is started (a replay hit never starts it):
        # the request names no URL, and the key holds the template's base URL, not the
        # server's port (see replay.py).
        request = provider.build_request(rendered, spec, options.stream)
        key = _cache_key(spec, request, options.repeat_index, found)
        if replaying:
            hit = self._replayed(options, record, spec, provider, rendered, request, key)
            if hit is not None:
                hit.dropped_parameters = dropped
                hit.media = found
                return hit
            provider.check_credentials(spec)
        # Started only now, so that a bad variable fails fast instead of after a start.
        spec.base_url = local_model.server_url(spec.base_url)
        spec.api_type = provider.resolve_api_type(spec, rendered)
        run = PreparedRun(options, record, spec, provider, rendered, request, dropped)
        run.cache_key = key
        run.media = found
        return run

    def _template(
        self, options: RunOptions, version: int | None, label: str | None
    ) -> dict[str, Any]:
        """The template record a run of ``options`` uses (a label's pin followed)."""
        context = self.registry.run_context(options)
        record = self.registry.get(options.prompt_name, version=version, label=label, **context)
        # A label may have moved since it last ran, or be pinned elsewhere (prompts.lock.json).
        return versions.resolve(
            self.registry,
            record,
            options.prompt_name,
            label,
            lambda pinned: self.registry.get(options.prompt_name, version=pinned, **context),
        )

    def describe(self, options: RunOptions) -> tuple[str, str, int]:
        """``(provider, model, version)`` a run of ``options`` would run, as its log row
        will name them; the template is read from the registry (through its cache), nothing
        is rendered or called. Raises what :meth:`prepare` would for an unknown prompt,
        version or label, or a template that names no model."""
        label = options.prompt_release_label
        version = None if label is not None else options.prompt_version
        record = self._template(options, version, label)
        spec, _ = resolve_model(record, options)
        local_target.route_to_local_model(record, spec)
        return local_target.shown_provider(spec), spec.name, int(record["version"])

    def _replayed(
        self,
        options: RunOptions,
        record: dict[str, Any],
        spec: ModelSpec,
        provider: Provider,
        rendered: dict[str, Any],
        request: dict[str, Any],
        key: str,
    ) -> PreparedRun | None:
        """In a replaying mode: the run served from the log on a hit; None on a miss in
        ``replay`` (the model is called); a miss in ``replay-only`` raises."""
        row = replay.lookup(self.runlog, key)
        if row is None:
            if replay.mode(options.cache) == "replay-only":
                raise replay.miss_error(
                    record["prompt_name"],
                    record.get("version"),
                    options.prompt_release_label,
                    spec.provider,
                    spec.name,
                    options.repeat_index,
                )
            return None
        spec.api_type = provider.resolve_api_type(spec, rendered)
        run = PreparedRun(options, record, spec, provider, rendered, request, [])
        run.cache_key = key
        run.served = row
        return run

    def _prepare_prerendered(
        self, options: RunOptions, record: dict[str, Any], pre: PreRendered
    ) -> PreparedRun:
        """The registry rendered the template for these inputs (PromptLayer does): its spec
        has the provider, model and overrides applied already; its request, when it built
        one, is sent as it is."""
        provider = get_provider(pre.spec.provider)  # an unsupported one is a one-line error
        spec = copy.deepcopy(pre.spec)
        spec.name = spec.name or info(pre.spec.provider).default_model
        template = _with_follow_up(pre.template, options)
        # (PromptLayer's request has no follow-up messages: built again with them)
        request = pre.request if template is pre.template else None
        if request is None:
            request = provider.build_request(template, spec, options.stream)
        # PromptLayer put the data: URLs given as inputs into the request as they are.
        found = data_url_inputs(options.input_variables)
        key = _cache_key(spec, request, options.repeat_index, found)
        if replay.mode(options.cache) in replay.REPLAYING:
            hit = self._replayed(options, record, spec, provider, template, request, key)
            if hit is not None:
                hit.media = found
                return hit
        provider.check_credentials(spec)
        spec.api_type = provider.resolve_api_type(spec, template)
        run = PreparedRun(options, record, spec, provider, template, request, [])
        run.cache_key = key
        run.media = found
        return run

    # -- scores --------------------------------------------------------------------------

    def record_scores(self, rows: Iterable[ScoreRow]) -> int:
        """Store scores of logged runs (local request ids) in the ``scores`` table and,
        with a sink (the PromptLayer backend), send each one there too; how many were stored.

        The sink gets each score on the 0–100 scale (:func:`pl_magic.runlog.scores.percent`)
        under its scorer's name. A failed scorer's score is not sent (it has no value); nor
        is a value outside 0–1, with one notice naming the scorers that gave one.
        """
        rows = list(rows)
        stored = ScoreLog(self.runlog.db).record(rows)
        if self.sink is None:
            return stored
        unscaled: dict[str, None] = {}
        for row in rows:
            value = percent(row.value)
            if value is not None:
                self.sink.score(row.request_id, row.name, value)
            elif row.value is not None and not math.isnan(row.value):
                unscaled.setdefault(row.name, None)
        if unscaled:
            names = ", ".join(unscaled)
            notices.warn(
                f"scores of {names} are outside 0–1: kept in the local log, not sent to "
                "PromptLayer (its scores are 0–100: return a value from 0 to 1)"
            )
        return stored

    # -- logging -------------------------------------------------------------------------

    def _log(
        self,
        run: PreparedRun,
        status: str,
        text: str,
        reply: Reply | None = None,
        error: PlMagicError | None = None,
    ) -> None:
        if not run.options.log:
            return
        latency = time.perf_counter() - run.t0 if run.t0 else None
        input_tokens = reply.input_tokens if reply else None
        output_tokens = reply.output_tokens if reply else None
        # Media bytes are never stored: markers (type, size, SHA-256) take their place.
        redact = run.redacted()
        rendered = run.rendered if redact is None else redact(run.rendered)
        variables = run.options.input_variables
        if redact is not None:
            variables = redact.variables(variables, run.media)
        raw = reply.raw if reply and run.served is None else None
        record = RunRecord(
            request_id=run.request_id,
            run_key=run_key(
                run.record["prompt_name"],
                run.record["version"],
                rendered,
                run.spec.provider,
                run.spec.name,
                run.spec.parameters,
                run.options.repeat_index,
            ),
            prompt_name=run.record["prompt_name"],
            prompt_id=run.record.get("id"),
            prompt_version=run.record["version"],
            release_label=run.options.prompt_release_label,
            provider=local_target.shown_provider(run.spec),  # "local" for the local model
            model=run.spec.name,
            api_type=run.spec.api_type,
            parameters=run.spec.parameters,
            input_variables=_jsonable_vars(variables),
            rendered_input=rendered,
            started_at=run.started_at,
            status=status,
            output=text,
            error_category=getattr(error, "category", None) if error else None,
            error_message=str(error) if error else None,
            finish_reason=reply.finish_reason if reply else None,
            tags=run.options.tags,
            metadata=run.options.metadata,
            group_id=run.options.group_id,
            repeat_index=run.options.repeat_index,
            ttft_s=run.ttft_s,
            latency_s=latency,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=0.0
            # served from the log, or answered by the model on this machine: nothing was paid
            if run.served is not None or run.spec.local_model
            else pricing.cost_usd(
                run.provider.pricing_provider_id(run.spec),
                run.spec.name,
                input_tokens,
                output_tokens,
            ),
            # (a served run's raw response is its recording's: not stored twice)
            raw_response=raw if redact is None or raw is None else redact(raw),
            backend=self.registry.kind,
            cache_key=run.cache_key,
            chunk_sizes=run.chunk_sizes,
            reply_tool_calls=reply.tool_calls if reply and reply.tool_calls else None,
            cached_from=run.served["request_id"] if run.served is not None else None,
        )
        sink = self.sink if run.served is None else None  # a served run is not sent again
        if sink is not None:
            call = ProviderCall(
                run.request if redact is None else redact(run.request),
                run.options.stream,
                info(run.spec.provider).function_name_for(run.spec.name, run.spec.api_type),
            )
            sink.record(record, call, error)
        run.logged = record
        try:
            # a served run paid for nothing: it may be written with the others of a batch
            self.runlog.record(record, deferrable=run.served is not None)
        except KeptInMemory as kept:  # the provider was paid: its reply is never lost
            notices.warn(
                f"run {run.request_id[:8]} could not be logged to {kept.path} ({kept.reason}): "
                "its result is returned and the run is kept in memory, to be written at the "
                "next run or pl_magic.runs()"
            )
        if sink is not None and status != "ok":
            # a failed run is on PromptLayer before its error is raised, as with the SDK
            sink.finalize(record)

    def _fail_output(
        self, run: PreparedRun, reply: Reply, error: InvalidOutputError, result: RunResult
    ) -> InvalidOutputError:
        """Log a run whose reply is invalid (status error, its text, tokens and cost kept);
        the error to raise, carrying the text and the result."""
        error.partial_text = reply.text
        error.result = result
        self._log(run, "error", reply.text, reply, error)
        if run.options.log:
            error.request_id = run.request_id
        return error

    def _fail(self, run: PreparedRun, exc: BaseException, text: str) -> PlMagicError:
        """Log a failed run; return the typed error to raise (SDK error kept as cause)."""
        error = run.provider.error_for(exc)
        error.partial_text = text
        self._log(run, "error", text, error=error)
        if run.options.log:
            error.request_id = run.request_id
        return error

    # -- running -------------------------------------------------------------------------

    def run(self, options: RunOptions) -> RunResult:
        """Run synchronously; the result. With ``options.stream`` the provider streams
        its reply and the result is the stream's last chunk (:meth:`stream` yields them all).
        """
        if options.stream:
            return _final(self.stream(options))
        return self.run_prepared(self.prepare(options))

    def run_prepared(self, run: PreparedRun) -> RunResult:
        """Run what :meth:`prepare` made ready: a replay hit is served from the log (its
        result at once, even for a streamed run: nobody sees its chunks), anything else
        calls the provider (streaming when the run's options say so)."""
        if run.served is not None:
            return replay.result(run, self._served_logger(run))
        if run.options.stream:
            return _final(self.stream_prepared(run))
        return self._finish(run, self._call(run))

    def stream(self, options: RunOptions) -> Generator[RunChunk, None, None]:
        """Run streaming: the chunks; the provider call is made before this returns.
        Closing the generator early logs the run as cancelled."""
        if not options.stream:
            options = dataclasses.replace(options, stream=True)
        return self.stream_prepared(self.prepare(options))

    def stream_prepared(self, run: PreparedRun) -> Generator[RunChunk, None, None]:
        """:meth:`stream` for what :meth:`prepare` made ready (with ``stream`` set)."""
        if not run.options.stream:  # its request was built for a plain call
            raise ValueError("stream_prepared needs a run prepared with stream=True")
        if run.served is not None:
            return replay.serve(run, self._served_logger(run))
        gen = self._stream(run, self._call(run))
        next(gen)  # prime: from here on, closing the generator logs the run as cancelled
        return gen

    def _served_logger(self, run: PreparedRun) -> Callable[[Reply], None]:
        """How a replay hit logs itself (as a new row marked ``cached_from``)."""
        return lambda reply: self._log(run, "ok", reply.text, reply)

    def _call(self, run: PreparedRun) -> Any:
        """The provider call, in its turn in the provider's limiter (see engine/limiter.py):
        waiting for it sends nothing and logs nothing."""
        run.provider.warm(run.spec, False)
        gate = limiter.limiter_for(run.provider.traffic_key(run.spec))
        attempts = 0
        while True:
            permit = gate.acquire()
            try:
                run.begin()
                return run.provider.call(run.request, run.spec, run.options.stream)
            except KeyboardInterrupt:
                permit.release()
                self._log(run, "cancelled", "")
                raise
            except Exception as exc:
                permit.release()
                if self._rate_limited(run, gate, permit, exc) and gate.requeue(attempts):
                    attempts += 1
                    continue
                _reraise(self._fail(run, exc, ""), exc)
            finally:
                permit.release()

    @staticmethod
    def _rate_limited(
        run: PreparedRun, gate: limiter.Limiter, permit: limiter.Permit, exc: BaseException
    ) -> bool:
        """Whether a failed call ended in a rate-limit error (the limiter learns of it if
        the SDK's HTTP hooks did not)."""
        try:
            error = run.provider.classify(exc)
        except Exception:  # classifying must not hide the call's own error
            return False
        if error is None or error.category != "rate_limit":
            return False
        gate.observed_rate_limit(permit)
        return True

    async def arun(self, options: RunOptions) -> RunResult:
        """Async twin of :meth:`run`."""
        if options.stream:
            final = None
            async for chunk in await self.astream(options):
                final = chunk
            return _checked_final(final)
        run, response = await self._acall(options)
        if run.served is not None:
            return replay.result(run, self._served_logger(run))
        return await self._off_loop(self._finish, run, response)

    async def astream(self, options: RunOptions) -> AsyncGenerator[RunChunk, None]:
        """Async twin of :meth:`stream`: awaited, it makes the provider call and returns an
        async iterator of the chunks."""
        if not options.stream:
            options = dataclasses.replace(options, stream=True)
        run, response = await self._acall(options)
        if run.served is not None:
            return replay.aserve(replay.serve(run, self._served_logger(run)))
        agen = self._astream(run, response)
        await agen.__anext__()
        return agen

    async def _acall(self, options: RunOptions) -> tuple[PreparedRun, Any]:
        run = await self._off_loop(self.prepare, options)  # a template fetch may wait
        if run.served is not None:
            return run, None  # a replay hit: no call
        run.provider.warm(run.spec, True)
        gate = limiter.limiter_for(run.provider.traffic_key(run.spec))
        permit = await gate.aacquire()
        try:
            run.begin()
            response = await run.provider.acall(run.request, run.spec, options.stream)
        except KeyboardInterrupt:
            permit.release()
            self._log(run, "cancelled", "")
            raise
        except Exception as exc:  # (logging it may wait on PromptLayer: off the loop)
            permit.release()
            self._rate_limited(run, gate, permit, exc)
            _reraise(await self._off_loop(self._fail, run, exc, ""), exc)
        finally:
            permit.release()
        return run, response

    async def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn`` in a worker thread when it may wait on PromptLayer (keeps the loop free)."""
        if self.sink is None:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def _tracked(self, run: PreparedRun, result: RunResult) -> RunResult:
        """With the PromptLayer backend, log the run there too: the result then carries
        PromptLayer's request_id and prompt_blueprint (or, past a short wait, the local ones)."""
        if self.sink is None or run.logged is None:
            return result
        return self.sink.finalize(run.logged, result)

    def _finish(self, run: PreparedRun, response: Any) -> RunResult:
        try:
            reply = run.provider.parse(response, run.spec)
        except Exception as exc:
            _reraise(self._fail(run, exc, ""), exc)
        run.ttft_s = time.perf_counter() - run.t0
        run.reply = reply
        invalid = invalid_output(run.spec.parameters, reply)
        result: RunResult = {
            "request_id": run.request_id,
            "raw_response": response,
            "prompt_blueprint": run.blueprint(reply.text, reply.tool_calls),
        }
        if invalid is not None:
            raise self._fail_output(run, reply, invalid, result)
        self._log(run, "ok", reply.text, reply)
        return self._tracked(run, result)

    def _on_chunk(self, run: PreparedRun, state: StreamState, chunk: Any) -> RunChunk:
        added = state.feed(chunk)
        calls = state.tool_calls_so_far()
        if (added or calls) and run.ttft_s is None:  # (a reply of tool calls has no text)
            run.ttft_s = time.perf_counter() - run.t0
        return {
            "request_id": None,
            "raw_response": chunk,
            "prompt_blueprint": run.blueprint(state.text, calls, chunk=True),
        }

    def _complete(self, run: PreparedRun, state: StreamState, last: Any) -> RunResult:
        reply = state.finish()
        run.chunk_sizes = [len(part) for part in state.parts if part]
        run.reply = reply
        invalid = invalid_output(run.spec.parameters, reply)
        result: RunResult = {
            "request_id": run.request_id,
            "raw_response": last,
            "prompt_blueprint": run.blueprint(reply.text, reply.tool_calls),
        }
        if invalid is not None:
            raise self._fail_output(run, reply, invalid, result)
        self._log(run, "ok", reply.text, reply)
        return self._tracked(run, result)

    def _stream(self, run: PreparedRun, native: Any) -> Generator[RunChunk, None, None]:
        state = run.provider.stream_state(run.spec)
        last = None
        done = False
        try:
            yield _PRIMING  # consumed by stream()
            for chunk in native:
                last = chunk
                yield self._on_chunk(run, state, chunk)
            final = self._complete(run, state, last)
            done = True
            yield cast("RunChunk", final)  # (the last chunk is the result)
        except (GeneratorExit, KeyboardInterrupt):
            if not done:
                self._log(run, "cancelled", state.text)
                run.provider.close_stream(native)
            raise
        except InvalidOutputError:  # the stream completed; the run is logged
            raise
        except Exception as exc:
            run.provider.close_stream(native)
            _reraise(self._fail(run, exc, state.text), exc)

    async def _astream(self, run: PreparedRun, native: Any) -> AsyncGenerator[RunChunk, None]:
        state = run.provider.stream_state(run.spec)
        last = None
        done = False
        try:
            yield _PRIMING  # consumed by astream()
            async for chunk in native:
                last = chunk
                yield self._on_chunk(run, state, chunk)
            final = await self._off_loop(self._complete, run, state, last)
            done = True
            yield cast("RunChunk", final)  # (the last chunk is the result)
        except (GeneratorExit, KeyboardInterrupt):
            if not done:
                self._log(run, "cancelled", state.text)
                await run.provider.aclose_stream(native)
            raise
        except InvalidOutputError:  # the stream completed; the run is logged
            raise
        except Exception as exc:
            await run.provider.aclose_stream(native)
            _reraise(await self._off_loop(self._fail, run, exc, state.text), exc)


#: What a stream yields first, before the provider's first chunk: its caller primes the
#: generator with it and never passes it on.
_PRIMING = cast("RunChunk", {})


def _final(chunks: Iterator[RunChunk]) -> RunResult:
    """A stream's last chunk: the run's result."""
    final = None
    for chunk in chunks:
        final = chunk
    return _checked_final(final)


def _checked_final(final: RunChunk | None) -> RunResult:
    if final is None or final["request_id"] is None:  # (a stream ends with its result)
        raise PlMagicError("the stream ended without its result")
    return cast("RunResult", final)


def _cache_key(
    spec: ModelSpec, request: Mapping[str, Any], repeat_index: int, found: Mapping[str, Any]
) -> str:
    """The replay key of a request; media count by their SHA-256 (the key is computed over
    the request with markers in place of the bytes, so another image is another key)."""
    if found:
        request = Redactor(found.values())(request)
    return replay.cache_key(spec.provider, spec.name, spec.base_url, request, repeat_index)


def _reraise(error: PlMagicError, exc: BaseException) -> NoReturn:
    """Raise the typed error, keeping the SDK's exception as its cause."""
    if error is exc:
        raise error
    raise error from exc


def invalid_output(parameters: Mapping[str, Any], reply: Reply) -> InvalidOutputError | None:
    """The error of a reply that is not the JSON its model ``parameters``' response_format
    asks for; None for any other reply (a plain-text run's, or a tool-call step's without
    text). A live run and a batch job's result are judged alike."""
    if reply.tool_calls and not reply.text.strip():
        return None
    if structured_output(parameters) is None:
        return None
    try:
        json.loads(reply.text)
    except ValueError as exc:
        cut = str(reply.finish_reason or "").lower() in ("length", "max_tokens")
        fix = "raise max_tokens (the reply was cut)" if cut else "retry, or simplify the schema"
        return InvalidOutputError(
            f"the reply is not the JSON its response_format asks for ({exc}): {fix}; the "
            "text is kept in the run log and in this error's partial_text"
        )
    return None


def _with_follow_up(rendered: dict[str, Any], options: RunOptions) -> dict[str, Any]:
    """``rendered`` with the run's follow-up messages appended (copied, not rendered: a
    tool's result is data, never a template); ``rendered`` itself when there are none."""
    if not options.follow_up:
        return rendered
    if rendered.get("type") == "completion":
        raise InvalidInputError(
            f"prompt {options.prompt_name!r} is a completion template, and tool calls need a "
            "chat template: publish it with messages"
        )
    messages = blueprint.copy_json(list(options.follow_up))
    return {**rendered, "messages": [*rendered.get("messages", []), *messages]}


def _jsonable_vars(values: Mapping[str, Any]) -> dict[str, Any]:
    """Input variables as stored in the log (non-JSON values as their str). A value longer
    than ``PL_MAGIC_LOG_MAX_VARIABLE_CHARS`` (as JSON) is stored cut, as text that says so:
    the provider got all of it, the log keeps a bounded row."""
    import json

    limit = config.log_max_variable_chars()
    out = {}
    for key, value in values.items():
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, ensure_ascii=False)
            except (TypeError, ValueError):
                try:
                    value = text = str(value)
                except Exception as exc:  # (an int too long to write): the row is kept
                    value = text = f"[not stored: a {type(value).__name__} ({exc})]"
        if len(text) > limit:
            value = f"{text[:limit]}… [cut in the log: {len(text):,} characters in all]"
        out[key] = value
    return out
