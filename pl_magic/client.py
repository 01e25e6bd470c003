"""``pl_magic.PromptLayer``: a drop-in for ``promptlayer.PromptLayer`` for running prompts.

Code written for the official SDK's ``run()`` works by changing the import: the same
arguments, the same requests to PromptLayer, the same result keys and exception classes
(see :mod:`pl_magic.dropin`). The client picks its backend (:mod:`pl_magic.backends`):
PromptLayer's API when an API key is given or ``PROMPTLAYER_API_KEY`` is set, the embedded
local registry otherwise. The module-level functions use a :class:`ModuleClient`, whose
results keep pl_magic's extra blueprint keys. :class:`pl_magic.AsyncPromptLayer` is the
async twin.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import dropin
from .backends import Backend, make_backend
from .core import config, notices
from .core.errors import ConfigurationError, InvalidInputError, RegistryError
from .core.types import RunChunk, RunResult
from .engine.engine import Engine, RunOptions
from .runlog.sqlite import RunLog

if TYPE_CHECKING:
    from .registry.local import LocalRegistry
    from .registry.promptlayer import PromptLayerRegistry
    from .runlog.annotations import RunAnnotations
    from .runlog.promptlayer import PromptLayerSink

#: Backends a client can use; "auto" is PromptLayer when a key is set, else local.
BACKENDS = config.REGISTRY_BACKENDS


class _Templates:
    """``client.templates``: get, publish, all (PromptLayer's shapes)."""

    def __init__(self, client: PromptLayer) -> None:
        self._client = client

    def get(self, prompt_name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A template record as PromptLayer returns it, with provider-ready ``llm_kwargs``.

        ``params``: ``version``, ``label``, ``input_variables``, ``provider``, ``model``,
        ``model_parameter_overrides`` (``metadata_filters`` is accepted and ignored locally).
        Without ``input_variables`` the template is returned unrendered.
        """
        return dropin.guarded(
            self._client.throw_on_error,
            None,
            f"getting prompt {prompt_name!r}",
            lambda: self._get(prompt_name, params),
        )

    def _get(self, prompt_name: str, params: dict[str, Any] | None) -> dict[str, Any]:
        if params is not None and not isinstance(params, dict):
            raise InvalidInputError(
                f"templates.get() params must be a dict like {{'label': 'prod'}}, not "
                f"{type(params).__name__}"
            )
        params = dict(params or {})
        return self._client._reading().template(prompt_name, params)

    def publish(self, body: dict[str, Any]) -> dict[str, Any]:
        """Publish a new version: ``prompt_name``, ``prompt_template``, ``metadata``,
        ``commit_message``, ``tags``, ``release_labels`` (``provider_base_url_name`` on
        PromptLayer, ``provider_base_url`` locally).

        On PromptLayer: one request, the body as given (checked first), and PromptLayer's
        answer as it is, as the SDK's publish.
        """
        return dropin.guarded(
            self._client.throw_on_error,
            None,
            "publishing a prompt",
            lambda: self._client._publish(body),
        )

    def all(
        self, page: int = 1, per_page: int = 30, label: str | None = None
    ) -> list[dict[str, Any]]:
        """Latest version of every prompt (or the version a ``label`` points at), paginated."""
        dropin.check_page(page, per_page)
        return dropin.guarded(
            self._client.throw_on_error,
            [],
            "listing prompts",
            lambda: self._all(page, per_page, label),
        )

    def invalidate(self, prompt_name: str | None = None) -> None:
        """Forget cached templates (of one prompt, or all), as the SDK's."""
        self._client.invalidate(prompt_name)

    def _all(self, page: int, per_page: int, label: str | None) -> list[dict[str, Any]]:
        return self._client._reading().all(page, per_page, label)


class _Group:
    """``client.group``."""

    def __init__(self, client: PromptLayer) -> None:
        self._client = client

    def create(self) -> int:
        """A new group id (PromptLayer's ``/create-group`` with that backend); ``False``
        when PromptLayer fails and the client was made with ``throw_on_error=False``."""
        return dropin.guarded(self._client.throw_on_error, False, "creating a group", self._create)

    def _create(self) -> int:
        return self._client._reading().create_group()


class _Track:
    """``client.track``: score, metadata, group, prompt (``False`` on a PromptLayer failure
    with ``throw_on_error=False``, as the SDK's)."""

    def __init__(self, client: PromptLayer, manager: RunAnnotations) -> None:
        self._client = client
        self._manager = manager

    def _guard(self, action: str, call: Any) -> bool:
        return dropin.guarded(self._client.throw_on_error, False, action, call)

    def score(self, request_id: Any, score: int, score_name: str | None = None) -> bool:
        """Score a run from 0 to 100 (``/library-track-score``), optionally named."""
        return self._guard(
            "tracking a score", lambda: self._manager.score(request_id, score, score_name)
        )

    def metadata(self, request_id: Any, metadata: dict[str, str]) -> bool:
        """Add string metadata to a run (``/library-track-metadata``)."""
        return self._guard(
            "tracking metadata", lambda: self._manager.metadata(request_id, metadata)
        )

    def group(self, request_id: Any, group_id: int) -> bool:
        """Put a run into a group (``/track-group``)."""
        return self._guard("tracking a group", lambda: self._manager.group(request_id, group_id))

    def prompt(
        self,
        request_id: Any,
        prompt_name: str,
        prompt_input_variables: dict[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> bool:
        """Tie a logged request to a registry prompt (``/library-track-prompt``)."""
        return self._guard(
            "tracking a prompt",
            lambda: self._manager.prompt(
                request_id, prompt_name, prompt_input_variables, version, label
            ),
        )


class PromptLayer:
    """Drop-in for ``promptlayer.PromptLayer`` (running prompts and the prompt registry).

    ``throw_on_error=False``: PromptLayer failures of ``templates``, ``group``, ``track``
    and ``log_request`` become a one-line notice and the SDK's fallback value.
    ``cache_ttl_seconds``: as the SDK's when given (0: PromptLayer renders every run;
    N: a template is reused N seconds); not given, pl_magic's own cache (see
    :mod:`pl_magic.registry.promptlayer`). ``enable_tracing`` and its tracer options are
    accepted; OpenTelemetry tracing is not part of pl_magic (runs are logged all the same).
    """

    #: Results and publish answers exactly as the SDK's (False: pl_magic's richer shapes).
    sdk_shapes = True

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        backend: str = "auto",
        *,
        enable_tracing: bool = False,
        throw_on_error: bool = True,
        cache_ttl_seconds: float | None = None,
        tracer_provider: Any = None,
        tracing_providers: Any = None,
        **unknown: Any,
    ) -> None:
        from .runlog.annotations import RunAnnotations

        dropin.refuse_unknown_options(unknown)
        ttl = dropin.check_cache_ttl(cache_ttl_seconds)
        if enable_tracing:
            notices.warn(
                "enable_tracing: OpenTelemetry tracing is not part of pl_magic; runs are "
                "logged to PromptLayer's request log as usual"
            )
        self.throw_on_error = bool(throw_on_error)
        key = api_key or os.environ.get("PROMPTLAYER_API_KEY")
        if backend not in BACKENDS:
            raise ConfigurationError(
                f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}"
            )
        if backend == "promptlayer" and not key:
            raise ConfigurationError(
                "The PromptLayer backend needs an API key: set the environment variable "
                "PROMPTLAYER_API_KEY"
            )
        self.backend = "promptlayer" if key and backend != "local" else "local"
        self.runlog = RunLog()
        # chosen once: every call that depends on where prompts live goes to it
        self._backend: Backend = make_backend(self.backend, self.runlog, api_key, base_url, ttl)
        self.tracker: PromptLayerSink | None = self._backend.tracker
        self._engine = Engine(self._backend.registry, self.runlog, self.tracker)
        self.templates = _Templates(self)
        self.group = _Group(self)
        self.track = _Track(self, RunAnnotations(self.runlog, self.tracker))

    @property
    def registry(self) -> LocalRegistry | PromptLayerRegistry:
        """The prompt registry; an empty local one gets the starter prompts on first use."""
        self.ensure_starters()
        return self._backend.registry

    def _reading(self) -> Backend:
        """The backend, for a read: an empty local registry gets its starters first."""
        self.ensure_starters()
        return self._backend

    def sync(self) -> dict[str, int]:
        """Send runs PromptLayer did not get yet (:mod:`pl_magic.runlog.promptlayer`); counts."""
        if self.tracker is None:
            return {"sent": 0, "failed": 0, "unsent": 0}
        summary = self.tracker.sync()
        summary.pop("blocked", None)
        return summary

    def invalidate(self, prompt_name: str | None = None) -> None:
        """Forget cached PromptLayer templates (of one prompt, or all), as the SDK's."""
        self._backend.invalidate(prompt_name)

    def log_request(
        self,
        *,
        provider: str,
        model: str,
        input: dict[str, Any],
        output: dict[str, Any],
        request_start_time: float,
        request_end_time: float,
        parameters: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        prompt_name: str | None = None,
        prompt_version_number: int | None = None,
        prompt_input_variables: dict[str, Any] | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        price: float = 0.0,
        function_name: str = "",
        score: int = 0,
        prompt_id: int | None = None,
        score_name: str | None = None,
        api_type: str | None = None,
        status: str = "SUCCESS",
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> dict[str, Any] | None:
        """Log a request made outside ``run()`` on PromptLayer (``POST /log-request``), as
        the SDK's ``log_request``: the same arguments and body; PromptLayer's answer
        (``{"id", "prompt_version", "status", ...}``), or None when it fails and the client
        was made with ``throw_on_error=False``."""
        body = dropin.log_request_body(locals())
        return dropin.guarded(
            self.throw_on_error, None, "logging a request", lambda: self._log_request(body)
        )

    def _log_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._backend.log_request(body)  # shared with AsyncPromptLayer.log_request

    def _publish(self, body: Any) -> dict[str, Any]:
        """``templates.publish``: on PromptLayer with :attr:`sdk_shapes`, one request with
        the body as given and PromptLayer's answer as it is."""
        return self._backend.publish(body, self.sdk_shapes)  # a write: no starter seeding

    @property
    def engine(self) -> Engine:
        """The engine every surface runs prompts through (seeds starters like ``registry``)."""
        self.ensure_starters()
        return self._engine

    def ensure_starters(self) -> list[str]:
        """Seed the starter prompts if the registry is empty; the names seeded (or []).

        Reading ``registry`` or ``engine`` (so running, listing, getting, labelling) calls
        it; publishing and importing do not, so a registry whose first use is a publish
        keeps only its own prompts. Checked once per client (one query); see
        :mod:`pl_magic.registry.starters`.
        """
        return self._backend.seed_starters()

    def run(
        self,
        prompt_name: str,
        prompt_version: int | None = None,
        prompt_release_label: str | None = None,
        input_variables: dict[str, Any] | None = None,
        model_parameter_overrides: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        group_id: int | None = None,
        stream: bool = False,
        provider: str | None = None,
        model: str | None = None,
        **extra: Any,
    ) -> RunResult | Iterator[RunChunk]:
        """Run a registry prompt; see :func:`pl_magic.run`."""
        return self._run(locals(), extra)

    async def arun(
        self,
        prompt_name: str,
        prompt_version: int | None = None,
        prompt_release_label: str | None = None,
        input_variables: dict[str, Any] | None = None,
        model_parameter_overrides: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        group_id: int | None = None,
        stream: bool = False,
        provider: str | None = None,
        model: str | None = None,
        **extra: Any,
    ) -> RunResult | AsyncIterator[RunChunk]:
        """Async twin of :meth:`run`."""
        return await self._arun(locals(), extra)

    # Every run() and arun() of pl_magic (module functions, both clients) comes here with
    # its arguments by name (its locals(): see RunOptions.from_call), so that each public
    # signature, PromptLayer's contract, is the only place that spells them.

    def _run(
        self, arguments: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> RunResult | Iterator[RunChunk]:
        try:
            engine = self.engine
            options = RunOptions.from_call(arguments, extra)
            if options.stream:
                chunks = engine.stream(options)
                return dropin.sdk_stream(chunks) if self.sdk_shapes else chunks
            result = engine.run(options)
        except RegistryError as exc:
            dropin.reraise_as_sdk(exc)
            raise  # not reached: for type checkers
        return dropin.sdk_result(result) if self.sdk_shapes else result

    async def _arun(
        self, arguments: Mapping[str, Any], extra: Mapping[str, Any] | None = None
    ) -> RunResult | AsyncIterator[RunChunk]:
        try:
            engine = self.engine
            options = RunOptions.from_call(arguments, extra)
            if options.stream:
                chunks = await engine.astream(options)
                return dropin.sdk_astream(chunks) if self.sdk_shapes else chunks
            result = await engine.arun(options)
        except RegistryError as exc:
            dropin.reraise_as_sdk(exc)
            raise  # not reached: for type checkers
        return dropin.sdk_result(result) if self.sdk_shapes else result


class ModuleClient(PromptLayer):
    """The client behind the module-level functions: results keep ``prompt_name``,
    ``prompt_version`` and ``release_label`` in the blueprint, and ``publish`` answers
    with the version number (asking PromptLayer when its answer lacks it)."""

    sdk_shapes = False


_default: tuple[tuple[str | None, ...], ModuleClient] | None = None


def set_backend(backend: str) -> None:
    """The default client's backend: "auto" (PromptLayer when PROMPTLAYER_API_KEY is set),
    "local" or "promptlayer" (``%config PlMagic.registry`` sets it)."""
    config.set_registry_backend(backend)


def default_client() -> ModuleClient:
    """The client the module-level functions use, rebuilt when its environment changes."""
    global _default
    env = (
        *(
            os.environ.get(k)
            for k in ("PL_MAGIC_HOME", "PROMPTLAYER_API_KEY", "PROMPTLAYER_BASE_URL")
        ),
        config.registry_backend(),
    )
    if _default is None or _default[0] != env:
        _default = (env, ModuleClient(backend=config.registry_backend()))
    return _default[1]
