"""Where a :class:`pl_magic.PromptLayer` client keeps its prompts: locally or on PromptLayer.

The client picks one backend when it is built (:func:`make_backend`) and hands it every
call whose answer depends on where prompts live: getting and listing templates, creating
a group, forgetting cached templates, logging a request, publishing and seeding the
starter prompts. Each behaviour is written once, in :class:`LocalBackend` or
:class:`PromptLayerBackend`; the client keeps what both share (argument checks,
``throw_on_error``, the SDK's shapes).

The PromptLayer registry, its REST client and its sink are imported only when that
backend is built, so ``import pl_magic`` loads neither httpx2 nor the REST client.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from .core import blueprint
from .core.errors import ConfigurationError
from .engine.engine import RunOptions, resolve_model
from .providers import get_provider
from .registry.base import check_publish_body
from .registry.local import LocalRegistry
from .runlog.sqlite import RunLog

if TYPE_CHECKING:
    from .registry.promptlayer import PromptLayerRegistry
    from .runlog.promptlayer import PromptLayerSink


class Backend(Protocol):
    """What a client asks of its backend (the client adds ``throw_on_error`` and shapes)."""

    @property
    def name(self) -> str:
        """``"local"`` or ``"promptlayer"`` (the client's ``backend`` attribute)."""
        ...

    @property
    def registry(self) -> LocalRegistry | PromptLayerRegistry:
        """The prompt registry, without seeding starters (see :meth:`seed_starters`)."""
        ...

    @property
    def tracker(self) -> PromptLayerSink | None:
        """The sink sending runs to PromptLayer, or None when runs stay local."""
        ...

    def template(self, prompt_name: str, params: dict[str, Any]) -> dict[str, Any]:
        """``templates.get``: the record as PromptLayer returns it, with ``llm_kwargs``."""
        ...

    def all(self, page: int, per_page: int, label: str | None) -> list[dict[str, Any]]:
        """``templates.all``: one page of the latest (or ``label``) version of each prompt."""
        ...

    def create_group(self) -> int:
        """``group.create``: a new group id."""
        ...

    def invalidate(self, prompt_name: str | None) -> None:
        """Forget cached templates (of one prompt, or all)."""
        ...

    def log_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """``log_request``: PromptLayer's answer to ``POST /log-request`` with ``body``."""
        ...

    def publish(self, body: Any, sdk_shapes: bool) -> dict[str, Any]:
        """``templates.publish``; ``sdk_shapes``: answer exactly as the SDK's."""
        ...

    def seed_starters(self) -> list[str]:
        """Seed the starter prompts into an empty registry; the names seeded (or [])."""
        ...


class LocalBackend:
    """Prompts in the embedded SQLite registry; runs logged only to the local run log."""

    name = "local"
    tracker: None = None

    def __init__(self, runlog: RunLog) -> None:
        self.registry = LocalRegistry()
        self.runlog = runlog
        self._starters_checked = False
        # several threads may read a fresh client at once: one of them seeds, once
        self._starters_lock = threading.Lock()

    def template(self, prompt_name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The record in PromptLayer's shape, its ``llm_kwargs`` built by pl_magic's provider
        (rendered when ``params`` has ``input_variables``; None when no model is known)."""
        record = self.registry.get(
            prompt_name, version=params.get("version"), label=params.get("label")
        )
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

    def all(self, page: int, per_page: int, label: str | None) -> list[dict[str, Any]]:
        """One page of the latest version of every prompt, or of the one ``label`` marks."""
        items = []
        for name in self.registry.names():
            if label is not None:
                if label not in self.registry.labels(name):
                    continue
                record = self.registry.get(name, label=label)
            else:
                record = self.registry.get(name)
            record.pop("release_label", None)
            items.append(record)
        start = max(page - 1, 0) * per_page
        return items[start : start + per_page]

    def create_group(self) -> int:
        """A new group id from the local run log."""
        return self.runlog.create_group()

    def invalidate(self, prompt_name: str | None) -> None:
        """Nothing to forget: the local registry is read without a cache."""

    def log_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Refused: there is no PromptLayer to log to."""
        raise ConfigurationError(
            "log_request() logs to PromptLayer: set PROMPTLAYER_API_KEY (local runs are "
            "logged by run() itself)"
        )

    def publish(self, body: Any, sdk_shapes: bool) -> dict[str, Any]:
        """Publish into the local registry (its answer is the same with either shape)."""
        return self.registry.publish(body)

    def seed_starters(self) -> list[str]:
        """Seed the starters if the registry is empty; checked once per backend."""
        if self._starters_checked:
            return []
        with self._starters_lock:
            if self._starters_checked:
                return []
            from .registry import starters

            seeded = starters.seed_if_empty(self.registry)
            self._starters_checked = True
            return seeded


class PromptLayerBackend:
    """Prompts on PromptLayer through its REST API; runs sent to its request log."""

    name = "promptlayer"

    def __init__(
        self,
        runlog: RunLog,
        api_key: str | None,
        base_url: str | None,
        cache_ttl_seconds: float | None,
    ) -> None:
        # imported here: httpx2 and the REST client load only for this backend
        from .core.promptlayer_api import PromptLayerAPI
        from .registry.promptlayer import PromptLayerRegistry
        from .runlog.promptlayer import PromptLayerSink

        api = PromptLayerAPI(api_key, base_url)  # it names the variable a bad key came from
        self.registry: PromptLayerRegistry = PromptLayerRegistry(
            api, cache_ttl_seconds=cache_ttl_seconds
        )
        self.tracker: PromptLayerSink | None = PromptLayerSink(api, runlog)

    def template(self, prompt_name: str, params: dict[str, Any]) -> dict[str, Any]:
        """PromptLayer's own answer to the template request (it renders and builds)."""
        return self.registry.template(prompt_name, params)

    def all(self, page: int, per_page: int, label: str | None) -> list[dict[str, Any]]:
        """PromptLayer's page of templates."""
        return self.registry.all(page, per_page, label)

    def create_group(self) -> int:
        """A new group id from PromptLayer's ``/create-group``."""
        return self.registry.api.create_group()

    def invalidate(self, prompt_name: str | None) -> None:
        """Forget cached PromptLayer templates (of one prompt, or all)."""
        self.registry.invalidate(prompt_name)

    def log_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """PromptLayer's answer to ``POST /log-request``."""
        return self.registry.api.log_request(body)

    def publish(self, body: Any, sdk_shapes: bool) -> dict[str, Any]:
        """With ``sdk_shapes``, as the SDK's: one request with the body as given (checked
        first) and PromptLayer's answer as it is; else the registry's richer answer."""
        if not sdk_shapes:
            return self.registry.publish(body)
        if isinstance(body, dict) and body.get("provider_base_url"):
            return self.registry.publish(body)  # refused there, with the fix
        checked = check_publish_body(body)
        answer = self.registry.api.publish(body)
        # the SDK path bypasses the registry's write, so its cache would still serve the old
        self.registry.invalidate(checked.name)
        return answer

    def seed_starters(self) -> list[str]:
        """Never: a PromptLayer workspace is the user's own, starters are not pushed to it."""
        return []


def make_backend(
    backend: str,
    runlog: RunLog,
    api_key: str | None,
    base_url: str | None,
    cache_ttl_seconds: float | None,
) -> Backend:
    """The backend named ``backend`` (``"local"`` or ``"promptlayer"``) sharing ``runlog``."""
    if backend == "promptlayer":
        return PromptLayerBackend(runlog, api_key, base_url, cache_ttl_seconds)
    return LocalBackend(runlog)
