"""``pl_magic.PromptLayer``: a drop-in for ``promptlayer.PromptLayer`` for running prompts.

Code written for the official SDK's ``run()`` works by changing the import. The client
picks its backend: PromptLayer's API when an API key is given or ``PROMPTLAYER_API_KEY``
is set, the embedded local registry otherwise.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import blueprint
from .engine import Engine, RunOptions, resolve_model
from .errors import ConfigurationError, InvalidInputError
from .providers import get_provider
from .registry.local import LocalRegistry
from .runlog import RunLog


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
        return self._client.registry.publish(body)

    def all(
        self, page: int = 1, per_page: int = 30, label: str | None = None
    ) -> list[dict[str, Any]]:
        """Latest version of every prompt (or the version a ``label`` points at), paginated."""
        registry = self._client.registry
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
        """A new group id."""
        return self._client.runlog.create_group()


class PromptLayer:
    """Drop-in for ``promptlayer.PromptLayer`` (running prompts and the prompt registry)."""

    def __init__(
        self, api_key: str | None = None, base_url: str | None = None, **_sdk_options: Any
    ) -> None:
        # enable_tracing, throw_on_error, cache_ttl_seconds... are accepted for drop-in
        # compatibility; pl_magic always logs locally and caches what is safe to cache.
        key = api_key or os.environ.get("PROMPTLAYER_API_KEY")
        if key:
            raise ConfigurationError(
                "The PromptLayer backend is not available in this version: unset "
                "PROMPTLAYER_API_KEY to use the embedded local registry"
            )
        self.backend = "local"
        self.registry = LocalRegistry()
        self.runlog = RunLog()
        self.engine = Engine(self.registry, self.runlog)
        self.templates = _Templates(self)
        self.group = _Group(self)

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


def default_client() -> PromptLayer:
    """The client the module-level functions use, rebuilt when its environment changes."""
    global _default
    env = tuple(
        os.environ.get(k) for k in ("PL_MAGIC_HOME", "PROMPTLAYER_API_KEY", "PROMPTLAYER_BASE_URL")
    )
    if _default is None or _default[0] != env:
        _default = (env, PromptLayer())
    return _default[1]
