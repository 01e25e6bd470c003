"""``pl_magic.PromptLayer``: a drop-in for ``promptlayer.PromptLayer`` for running prompts.

Code written for the official SDK's ``run()`` works by changing the import. The client
picks its backend: PromptLayer's API when an API key is given or ``PROMPTLAYER_API_KEY``
is set, the embedded local registry otherwise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from . import blueprint
from .engine import Engine, RunOptions, resolve_model
from .errors import ConfigurationError, InvalidInputError
from .providers import get_provider
from .registry.local import LocalRegistry
from .runlog import RunLog

if TYPE_CHECKING:
    from .registry.promptlayer import PromptLayerRegistry
    from .tracking import Tracker, TrackManager

#: Backends a client can use; "auto" is PromptLayer when a key is set, else local.
BACKENDS = ("auto", "local", "promptlayer")


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
        params = dict(params or {})
        registry = self._client.registry
        if not isinstance(registry, LocalRegistry):  # PromptLayer answers itself
            return registry.template(prompt_name, params)
        record = registry.get(prompt_name, version=params.get("version"), label=params.get("label"))
        options = RunOptions.build(
            prompt_name,
            provider=params.get("provider"),
            model=params.get("model"),
            model_parameter_overrides=params.get("model_parameter_overrides"),
        )
        out = {k: v for k, v in record.items() if k != "release_label"}
        if not (record.get("metadata") or {}).get("model") and not options.provider:
            out["llm_kwargs"] = None
            return out
        spec, _ = resolve_model(record, options)
        template = record["prompt_template"]
        if "input_variables" in params:
            template = blueprint.render(template, params["input_variables"], prompt_name)
        out["metadata"] = {**(record.get("metadata") or {}), "model": spec.as_metadata()}
        out["llm_kwargs"] = get_provider(spec.provider).build_request(template, spec, False)
        return out

    def publish(self, body: dict[str, Any]) -> dict[str, Any]:
        """Publish a new version: ``prompt_name``, ``prompt_template``, ``metadata``,
        ``commit_message``, ``tags``, ``release_labels``, ``provider_base_url``."""
        return self._client._registry.publish(body)  # a write: no starter seeding

    def all(
        self, page: int = 1, per_page: int = 30, label: str | None = None
    ) -> list[dict[str, Any]]:
        """Latest version of every prompt (or the version a ``label`` points at), paginated."""
        registry = self._client.registry
        if not isinstance(registry, LocalRegistry):
            return registry.all(page, per_page, label)
        items = []
        for name in registry.names():
            if label is not None:
                if label not in registry.labels(name):
                    continue
                record = registry.get(name, label=label)
            else:
                record = registry.get(name)
            record.pop("release_label", None)
            items.append(record)
        start = max(page - 1, 0) * per_page
        return items[start : start + per_page]


class _Group:
    """``client.group``."""

    def __init__(self, client: PromptLayer) -> None:
        self._client = client

    def create(self) -> int:
        """A new group id (PromptLayer's ``/create-group`` with that backend)."""
        registry = self._client.registry
        if not isinstance(registry, LocalRegistry):
            return registry.api.create_group()
        return self._client.runlog.create_group()


class PromptLayer:
    """Drop-in for ``promptlayer.PromptLayer`` (running prompts and the prompt registry)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        backend: str = "auto",
        **_sdk_options: Any,
    ) -> None:
        # enable_tracing, throw_on_error, cache_ttl_seconds... are accepted for drop-in
        # compatibility; pl_magic always logs locally and caches what is safe to cache.
        from .tracking import TrackManager

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
        self.tracker: Tracker | None = None
        self._registry: LocalRegistry | PromptLayerRegistry
        if self.backend == "promptlayer":
            # imported here: httpx2 and the REST client load only for this backend
            from .promptlayer_api import PromptLayerAPI
            from .registry.promptlayer import PromptLayerRegistry
            from .tracking import Tracker

            api = PromptLayerAPI(key, base_url)
            self._registry = PromptLayerRegistry(api)
            self.tracker = Tracker(api, self.runlog)
        else:
            self._registry = LocalRegistry()
        self._engine = Engine(self._registry, self.runlog, self.tracker)
        self.templates = _Templates(self)
        self.group = _Group(self)
        self.track: TrackManager = TrackManager(self.runlog, self.tracker)
        self._starters_checked = False
        self._starters_lock = threading.Lock()

    @property
    def registry(self) -> LocalRegistry | PromptLayerRegistry:
        """The prompt registry; an empty local one gets the starter prompts on first use."""
        self.ensure_starters()
        return self._registry

    def sync(self) -> dict[str, int]:
        """Send runs PromptLayer did not get yet (see :mod:`pl_magic.tracking`); counts."""
        if self.tracker is None:
            return {"sent": 0, "failed": 0, "unsent": 0}
        summary = self.tracker.sync()
        summary.pop("blocked", None)
        return summary

    def invalidate(self, prompt_name: str | None = None) -> None:
        """Forget cached PromptLayer templates (of one prompt, or all), as the SDK's."""
        if not isinstance(self._registry, LocalRegistry):
            self._registry.invalidate(prompt_name)

    def log_request(self, **body: Any) -> dict[str, Any]:
        """Log a request made outside ``run()`` on PromptLayer (the SDK's ``log_request``)."""
        if isinstance(self._registry, LocalRegistry):
            raise ConfigurationError(
                "log_request() logs to PromptLayer: set PROMPTLAYER_API_KEY (local runs are "
                "logged by run() itself)"
            )
        return self._registry.api.log_request(body)

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
        :mod:`pl_magic.starters`.
        """
        if self._starters_checked or not isinstance(self._registry, LocalRegistry):
            return []
        with self._starters_lock:
            if self._starters_checked:
                return []
            from . import starters

            seeded = starters.seed_if_empty(self._registry)
            self._starters_checked = True
            return seeded

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
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """Run a registry prompt; see :func:`pl_magic.run`."""
        return self.engine.run(
            _options(
                prompt_name,
                prompt_version,
                prompt_release_label,
                input_variables,
                model_parameter_overrides,
                tags,
                metadata,
                group_id,
                stream,
                provider,
                model,
                extra,
            )
        )

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
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """Async twin of :meth:`run`."""
        return await self.engine.arun(
            _options(
                prompt_name,
                prompt_version,
                prompt_release_label,
                input_variables,
                model_parameter_overrides,
                tags,
                metadata,
                group_id,
                stream,
                provider,
                model,
                extra,
            )
        )


_EXTRA_RUN_OPTIONS = ("repeat_index", "log", "default_provider", "default_model")


def _options(
    prompt_name: Any,
    prompt_version: Any,
    prompt_release_label: Any,
    input_variables: Any,
    model_parameter_overrides: Any,
    tags: Any,
    metadata: Any,
    group_id: Any,
    stream: Any,
    provider: Any,
    model: Any,
    extra: dict[str, Any],
) -> RunOptions:
    unknown = sorted(set(extra) - set(_EXTRA_RUN_OPTIONS))
    if unknown:
        raise InvalidInputError(
            f"run() got unknown argument(s) {', '.join(unknown)}: see help(pl_magic.run)"
        )
    return RunOptions.build(
        prompt_name,
        prompt_version=prompt_version,
        prompt_release_label=prompt_release_label,
        input_variables=input_variables,
        model_parameter_overrides=model_parameter_overrides,
        tags=tags,
        metadata=metadata,
        group_id=group_id,
        stream=stream,
        provider=provider,
        model=model,
        **extra,
    )


_default: tuple[tuple[str | None, ...], PromptLayer] | None = None
_backend = "auto"


def set_backend(backend: str) -> None:
    """The default client's backend: "auto" (PromptLayer when PROMPTLAYER_API_KEY is set),
    "local" or "promptlayer" (``%config PlMagic.registry`` sets it)."""
    global _backend
    if backend not in BACKENDS:
        raise ConfigurationError(f"registry must be one of {', '.join(BACKENDS)}, not {backend!r}")
    _backend = backend


def default_client() -> PromptLayer:
    """The client the module-level functions use, rebuilt when its environment changes."""
    global _default
    env = (
        *(
            os.environ.get(k)
            for k in ("PL_MAGIC_HOME", "PROMPTLAYER_API_KEY", "PROMPTLAYER_BASE_URL")
        ),
        _backend,
    )
    if _default is None or _default[0] != env:
        _default = (env, PromptLayer(backend=_backend))
    return _default[1]
