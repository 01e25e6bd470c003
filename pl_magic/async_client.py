"""``pl_magic.AsyncPromptLayer``: a drop-in for ``promptlayer.AsyncPromptLayer``.

The same client as :class:`pl_magic.PromptLayer` with every call awaitable: ``run``
(``stream=True`` gives an async iterator), ``templates.get/publish/all``,
``group.create``, ``track.score/metadata/group/prompt`` and ``log_request``. Registry
and tracking calls go to a worker thread, so the event loop is never blocked by a wait on
PromptLayer; the provider call itself is the provider SDK's async client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from . import dropin
from .client import PromptLayer
from .core.types import RunChunk, RunResult


class _AsyncTemplates:
    """``client.templates``: awaitable get, publish, all."""

    def __init__(self, client: PromptLayer) -> None:
        self._client = client

    async def get(
        self, prompt_name: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A template record as PromptLayer returns it (see ``PromptLayer.templates.get``)."""
        return await asyncio.to_thread(self._client.templates.get, prompt_name, params)

    async def publish(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Publish a new version; PromptLayer's answer (see ``PromptLayer.templates.publish``)."""
        return await asyncio.to_thread(self._client.templates.publish, body)

    async def all(
        self, page: int = 1, per_page: int = 30, label: str | None = None
    ) -> list[dict[str, Any]]:
        """One page of the latest version of every prompt (or the one ``label`` points at)."""
        dropin.check_page(page, per_page)  # bad input fails before the thread
        return await asyncio.to_thread(self._client.templates.all, page, per_page, label)

    def invalidate(self, prompt_name: str | None = None) -> None:
        """Forget cached templates (of one prompt, or all), as the SDK's."""
        self._client.invalidate(prompt_name)


class _AsyncGroup:
    """``client.group``: awaitable create."""

    def __init__(self, client: PromptLayer) -> None:
        self._client = client

    async def create(self) -> int:
        """A new group id (``False`` on a PromptLayer failure with ``throw_on_error=False``)."""
        return await asyncio.to_thread(self._client.group.create)


class _AsyncTrack:
    """``client.track``: awaitable score, metadata, group, prompt."""

    def __init__(self, client: PromptLayer) -> None:
        self._client = client

    async def score(self, request_id: Any, score: int, score_name: str | None = None) -> bool:
        """Score a run from 0 to 100, optionally named."""
        return await asyncio.to_thread(self._client.track.score, request_id, score, score_name)

    async def metadata(self, request_id: Any, metadata: dict[str, str]) -> bool:
        """Add string metadata to a run."""
        return await asyncio.to_thread(self._client.track.metadata, request_id, metadata)

    async def group(self, request_id: Any, group_id: int) -> bool:
        """Put a run into a group."""
        return await asyncio.to_thread(self._client.track.group, request_id, group_id)

    async def prompt(
        self,
        request_id: Any,
        prompt_name: str,
        prompt_input_variables: dict[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> bool:
        """Tie a logged request to a registry prompt."""
        return await asyncio.to_thread(
            self._client.track.prompt,
            request_id,
            prompt_name,
            prompt_input_variables,
            version,
            label,
        )


class AsyncPromptLayer:
    """Drop-in for ``promptlayer.AsyncPromptLayer``; options as :class:`pl_magic.PromptLayer`."""

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
        dropin.refuse_unknown_options(unknown)
        self._sync = PromptLayer(
            api_key,
            base_url,
            backend,
            enable_tracing=enable_tracing,
            throw_on_error=throw_on_error,
            cache_ttl_seconds=cache_ttl_seconds,
            tracer_provider=tracer_provider,
            tracing_providers=tracing_providers,
        )
        self.backend = self._sync.backend
        self.throw_on_error = self._sync.throw_on_error
        self.templates = _AsyncTemplates(self._sync)
        self.group = _AsyncGroup(self._sync)
        self.track = _AsyncTrack(self._sync)

    @property
    def sync_client(self) -> PromptLayer:
        """The synchronous client sharing this one's registry, cache and run log."""
        return self._sync

    def invalidate(self, prompt_name: str | None = None) -> None:
        """Forget cached PromptLayer templates (of one prompt, or all), as the SDK's."""
        self._sync.invalidate(prompt_name)

    async def run(
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
    ) -> RunResult | AsyncIterator[RunChunk]:
        """Run a registry prompt: the result dict, or (``stream=True``) an async iterator of
        chunk dicts whose last one carries the ``request_id``."""
        return await self._sync._arun(locals())  # (its arguments by name: see client._run)

    async def log_request(
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
        status: str = "SUCCESS",
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> dict[str, Any] | None:
        """Log a request made outside ``run()`` (``POST /log-request``), as the async SDK's
        ``log_request`` (which has no ``score_name`` or ``api_type``)."""
        body = dropin.log_request_body(locals(), is_async=True)
        client = self._sync
        return await asyncio.to_thread(
            dropin.guarded,
            client.throw_on_error,
            None,
            "logging a request",
            lambda: client._log_request(body),
        )
