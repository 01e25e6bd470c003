"""PromptLayer's ``vertexai`` provider: Gemini or Claude on Vertex AI, chosen by model name.

A model whose name contains ``gemini`` runs through google-genai in Vertex mode
(:class:`~pl_magic.providers.google.GeminiVertexRoute`); one whose name contains
``claude`` through ``anthropic.AnthropicVertex``
(:class:`~pl_magic.providers.anthropic.AnthropicVertexRoute`). Any other name is an error
raised before any call. Each route's SDK is imported only when that route runs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.blueprint import ModelSpec
from ..core.errors import InvalidInputError, ProviderError
from ..core.media import MediaLimits
from ._sdk_errors import transport_error
from .anthropic import PARAMETERS as CLAUDE_PARAMETERS
from .anthropic import AnthropicVertexRoute
from .base import ParameterMap, Provider, Reply, StreamState
from .google import PARAMETERS as GEMINI_PARAMETERS
from .google import GeminiVertexRoute

if TYPE_CHECKING:
    from .batches import BatchAPI


def route_of(model: str) -> str | None:
    """``"gemini"``, ``"claude"`` or None for a model name (as PromptLayer dispatches)."""
    lowered = model.lower()
    if "gemini" in lowered:
        return "gemini"
    if "claude" in lowered:
        return "claude"
    return None


class VertexAIProvider(Provider):
    """The ``vertexai`` provider."""

    name = "vertexai"
    parameters = GEMINI_PARAMETERS  # the default model's

    def __init__(self) -> None:
        super().__init__()
        self.gemini = GeminiVertexRoute()
        self.claude = AnthropicVertexRoute()

    def parameters_for(self, api_type: str | None, model: str) -> ParameterMap:
        return CLAUDE_PARAMETERS if route_of(model) == "claude" else GEMINI_PARAMETERS

    def route(self, spec: ModelSpec) -> Provider:
        """The provider object that serves ``spec.name``; an error naming what is served."""
        found = route_of(spec.name)
        if found == "gemini":
            return self.gemini
        if found == "claude":
            return self.claude
        raise InvalidInputError(
            f"vertexai serves Gemini and Claude models (a name containing 'gemini' or "
            f"'claude'), not {spec.name!r}: pass e.g. model='gemini-2.5-flash' or "
            f"model='claude-sonnet-4-5'"
        )

    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        self.route(spec).warm(spec, is_async)

    def traffic_key(self, spec: ModelSpec) -> str:
        return self.route(spec).traffic_key(spec)

    def check_credentials(self, spec: ModelSpec) -> None:
        self.route(spec).check_credentials(spec)

    def build_request(
        self, rendered: Mapping[str, Any], spec: ModelSpec, stream: bool
    ) -> dict[str, Any]:
        return self.route(spec).build_request(rendered, spec, stream)

    def call(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        return self.route(spec).call(request, spec, stream)

    async def acall(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        return await self.route(spec).acall(request, spec, stream)

    def parse(self, response: Any, spec: ModelSpec) -> Reply:
        return self.route(spec).parse(response, spec)

    def stream_state(self, spec: ModelSpec) -> StreamState:
        return self.route(spec).stream_state(spec)

    def classify(self, exc: BaseException) -> ProviderError | None:
        # No spec here: ask each route whose SDK is loaded (importing one just to classify
        # an exception from the other would be wasteful).
        routes = (("anthropic", self.claude), ("google.genai", self.gemini))
        for module, route in routes:
            if module in sys.modules:
                error = route.classify(exc)
                if error is not None:
                    return error
        return transport_error(self.name, exc)

    def close_stream(self, stream: Any) -> None:
        self.gemini.close_stream(stream)

    async def aclose_stream(self, stream: Any) -> None:
        await self.gemini.aclose_stream(stream)

    def media_limits(self, spec: ModelSpec, template_type: str | None) -> MediaLimits | None:
        return self.route(spec).media_limits(spec, template_type)

    def pricing_provider_id(self, spec: ModelSpec) -> str | None:
        if route_of(spec.name) is None:
            return None
        return self.route(spec).pricing_provider_id(spec)

    def batch_api(self, spec: ModelSpec) -> BatchAPI | str:
        return self.route(spec).batch_api(spec)
