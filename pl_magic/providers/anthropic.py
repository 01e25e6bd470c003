"""Anthropic through the official ``anthropic`` SDK: the Messages API, first party or on Vertex.

``anthropic`` (key ``ANTHROPIC_API_KEY``) calls ``anthropic.Anthropic``; the ``vertexai``
provider reuses this module for Claude models through ``anthropic.AnthropicVertex``
(:class:`AnthropicVertexRoute`). The request body is the same on both.

Two things of the SDK shape the request (anthropic >= 1.0):

- ``temperature``, ``top_p`` and ``top_k`` are no longer keyword arguments of
  ``messages.create``; the SDK's migration guide sends them through ``extra_body``, which
  puts them at the top level of the JSON body as before. Every parameter the installed
  SDK does not know goes that way, so the API (not a ``TypeError``) judges it.
- ``max_tokens`` is required: the parameter map fills a default when the template has none.

Structured output (``response_format``, see :mod:`._structured`) has no Messages API field:
it becomes a forced tool whose ``input_schema`` is the schema. That tool's input is the
reply text (streamed from its ``input_json_delta`` events), not a tool call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.blueprint import ModelSpec
from ..core.config import provider_max_retries, provider_timeout_s
from ..core.errors import (
    InvalidInputError,
    MissingApiKeyError,
    ProviderError,
    StreamTruncatedError,
)
from ..core.keys import (
    LOCAL_SERVER_KEY,
    anthropic_host,
    env_key,
    may_send_key,
    refuse_routing_parameters,
)
from ..core.media import PDF, MediaLimits
from . import _structured, traffic
from ._sdk_errors import (
    category_for_status,
    classify_google_auth_error,
    connection_error,
    transport_error,
)
from ._turns import TurnShape, data_url, forced_function, function_tools, to_turns, tool_calls
from .base import ParameterMap, Provider, Reply, StreamState, env_value, fingerprint
from .google_auth import require_google_cloud, vertex_keyless

if TYPE_CHECKING:
    from .batches import BatchAPI

#: Max tokens when the template sets none (the Messages API requires a value).
DEFAULT_MAX_TOKENS = 1024

PARAMETERS = ParameterMap(
    names={
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "max_tokens": "max_tokens",
        "stop": "stop_sequences",
        "response_format": "response_format",  # sent as a forced tool (_output_tool)
    },
    aliases={
        "max_completion_tokens": "max_tokens",
        "max_output_tokens": "max_tokens",
        "maxOutputTokens": "max_tokens",
        "topP": "top_p",
        "topK": "top_k",
        "stopSequences": "stop",
    },
    required={"max_tokens": DEFAULT_MAX_TOKENS},
)

# Request keys that are pl_magic's own, never model parameters.
_STRUCTURAL = frozenset({"model", "messages", "system", "stream", "tools", "tool_choice"})


@functools.cache
def _sdk_arguments() -> frozenset[str]:
    """The keyword arguments the installed SDK's ``messages.create`` accepts."""
    from anthropic.resources.messages import Messages

    return frozenset(inspect.signature(Messages.create).parameters) - {"self"}


def _settings() -> tuple[int, float]:
    """Client settings read from the environment (part of the client cache key)."""
    return provider_max_retries(), provider_timeout_s()


def _http_client(anthropic: Any, is_async: bool, where: str) -> Any:
    """The SDK's own HTTP client, with hooks that tell the engine's limiter of every answer
    (a 429 the SDK retries included); timeout and retries stay the SDK's."""
    if is_async:
        return anthropic.DefaultAsyncHttpxClient(event_hooks=traffic.async_hooks(where))
    return anthropic.DefaultHttpxClient(event_hooks=traffic.hooks(where))


# -- request ---------------------------------------------------------------------------------


def _image_block(url: str) -> dict[str, Any]:
    """An Anthropic image block for an ``image_url`` (a data: URL becomes base64)."""
    found = data_url(url)
    if found is not None:
        media_type, data = found
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _media_block(media: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic block for PromptLayer's ``media`` block: a PDF is a ``document`` block
    (base64 for a data: URL, else a URL source), an image an ``image`` block."""
    url = str(media.get("url"))
    if media.get("type") != PDF:
        return _image_block(url)
    found = data_url(url)
    if found is not None:
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": PDF, "data": found[1]},
        }
    return {"type": "document", "source": {"type": "url", "url": url}}


#: Anthropic's content blocks; blocks already in Anthropic's shape (e.g. imported from
#: PromptLayer) are kept.
SHAPE = TurnShape(
    key="content",
    assistant_role="assistant",
    text=lambda text: {"type": "text", "text": text},
    image=_image_block,
    native_types=frozenset({"image", "document", "tool_use", "tool_result"}),
    media=_media_block,
)

#: What the Messages API takes (its documented limits apply to the base64: 5 MB per image,
#: 32 MB per request, so about three quarters of that in bytes).
MEDIA_LIMITS = MediaLimits(
    "Anthropic",
    image_bytes=5 * 1024 * 1024 * 3 // 4,
    pdf_bytes=32 * 1024 * 1024 * 3 // 4,
    total_bytes=32 * 1024 * 1024 * 3 // 4,
    note="the API's 5 MB per image and 32 MB per request are of the base64",
)


def _tool_result(msg: Mapping[str, Any], text: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": msg.get("tool_call_id"), "content": text}


def _tool_use_blocks(calls: Any) -> list[dict[str, Any]]:
    """PromptLayer/OpenAI ``tool_calls`` -> Anthropic ``tool_use`` blocks."""
    return [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in tool_calls(calls)
    ]


def build_messages(rendered: Mapping[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The ``system`` text and Anthropic messages of a rendered template.

    System (and developer) messages become the ``system`` field, wherever they stand.
    Tool results become ``tool_result`` blocks of a user turn; consecutive turns of one
    role are merged, as the API needs every result of a tool call in the next user turn.
    A completion template becomes one user message.
    """
    return to_turns(rendered, SHAPE, _tool_result, _tool_use_blocks)


def _tools(rendered: Mapping[str, Any]) -> dict[str, Any]:
    """PromptLayer (OpenAI-shaped) function tools and tool_choice -> Anthropic's."""
    tools = []
    for function in function_tools(rendered):
        native = {
            "name": function.name,
            "input_schema": function.parameters or {"type": "object", "properties": {}},
        }
        if function.description:
            native["description"] = function.description
        tools.append(native)
    if not tools:
        return {}
    out: dict[str, Any] = {"tools": tools}
    choice = rendered.get("tool_choice")
    forced = forced_function(choice)
    if choice in ("auto", "none"):
        out["tool_choice"] = {"type": choice}
    elif choice == "required":
        out["tool_choice"] = {"type": "any"}
    elif forced is not None:
        out["tool_choice"] = {"type": "tool", "name": forced}
    return out


def _output_tool(
    structured: _structured.StructuredOutput, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` that make the reply a JSON object: a tool whose input
    schema is the wanted one, forced, so that its input is the reply (the template's own
    tools are kept, but no longer chosen)."""
    schema = structured.schema_or_any
    if schema.get("type", "object") != "object":
        raise InvalidInputError(
            f"response_format's schema has type {schema.get('type')!r}, and on Anthropic the "
            "reply is a tool's input, which must be an object: wrap it in an object schema"
        )
    if any(t.get("name") == structured.name for t in tools):
        raise InvalidInputError(
            f"response_format's name {structured.name!r} is also the name of one of the "
            "template's tools: give the json_schema another name"
        )
    tool = {
        "name": structured.name,
        "description": structured.description
        or "Give your answer as this tool's input: a JSON object that matches its schema.",
        "input_schema": schema,
    }
    return {"tools": [*tools, tool], "tool_choice": {"type": "tool", "name": structured.name}}


def output_tool_name(spec: ModelSpec) -> str | None:
    """The name of the forced tool whose input is the reply (see :func:`_output_tool`)."""
    structured = _structured.of(spec.parameters)
    return structured.name if structured is not None else None


def tool_calls_of(blocks: list[Any]) -> list[dict[str, Any]] | None:
    """Anthropic ``tool_use`` blocks -> PromptLayer's (OpenAI-shaped) ``tool_calls``."""
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    return calls or None


# -- streaming -------------------------------------------------------------------------------


class AnthropicStream(StreamState):
    """Raw Messages stream events. Complete only with ``message_stop`` and a stop reason."""

    def __init__(self, provider: str, output_tool: str | None = None) -> None:
        super().__init__()
        self.provider = provider
        #: The forced tool whose input is the reply (structured output), and its block index.
        self.output_tool = output_tool
        self.output_index: int | None = None
        self.message: dict[str, Any] = {}
        self.blocks: list[dict[str, Any]] = []
        self._json_parts: dict[int, list[str]] = {}
        self.stop_sequence: str | None = None
        self._stopped = False

    def feed(self, event: Any) -> str:
        kind = getattr(event, "type", "")
        if kind == "message_start":
            self.message = event.message.model_dump(mode="json", exclude={"content"})
            self.input_tokens = event.message.usage.input_tokens
            self.output_tokens = event.message.usage.output_tokens
        elif kind == "content_block_start":
            while len(self.blocks) <= event.index:
                self.blocks.append({})
            block = self.blocks[event.index] = event.content_block.model_dump(mode="json")
            if (
                self.output_tool is not None
                and self.output_index is None
                and block.get("type") == "tool_use"
                and block.get("name") == self.output_tool
            ):
                self.output_index = event.index
        elif kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        elif kind == "content_block_stop":
            parts = self._json_parts.pop(event.index, None)
            if parts is not None and event.index < len(self.blocks):
                with contextlib.suppress(ValueError):
                    self.blocks[event.index]["input"] = json.loads("".join(parts) or "{}")
        elif kind == "message_delta":
            self.finish_reason = event.delta.stop_reason or self.finish_reason
            self.stop_sequence = event.delta.stop_sequence
            usage = event.usage
            if usage is not None:
                self.output_tokens = usage.output_tokens
                if usage.input_tokens is not None:
                    self.input_tokens = usage.input_tokens
        elif kind == "message_stop":
            self._stopped = True
            self.complete = self.finish_reason is not None
        return ""

    def _delta(self, index: int, delta: Any) -> str:
        kind = getattr(delta, "type", "")
        if kind == "text_delta":
            self.parts.append(delta.text)
            if index < len(self.blocks):
                block = self.blocks[index]
                block["text"] = block.get("text", "") + delta.text
            return str(delta.text)
        if kind == "input_json_delta":
            self._json_parts.setdefault(index, []).append(delta.partial_json)
            if index == self.output_index and delta.partial_json:
                self.parts.append(delta.partial_json)  # the structured reply, as text
                return str(delta.partial_json)
        elif kind == "thinking_delta" and index < len(self.blocks):
            block = self.blocks[index]
            block["thinking"] = block.get("thinking", "") + delta.thinking
        return ""

    def tool_calls_so_far(self) -> list[dict[str, Any]] | None:
        calls = []
        for i, block in enumerate(self.blocks):
            if i == self.output_index or block.get("type") != "tool_use":
                continue
            parts = self._json_parts.get(i)  # still streaming: its JSON as far as it came
            arguments = (
                "".join(parts) if parts is not None else json.dumps(block.get("input") or {})
            )
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        return calls or None

    def finish(self) -> Reply:
        if not self.complete:
            raise StreamTruncatedError(self.provider, self.text)
        raw = {
            **self.message,
            "content": self.blocks,
            "stop_reason": self.finish_reason,
            "stop_sequence": self.stop_sequence,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }
        calls = [b for i, b in enumerate(self.blocks) if i != self.output_index]
        return Reply(
            self.text,
            self.finish_reason,
            self.input_tokens,
            self.output_tokens,
            tool_calls_of(calls),
            raw,
        )


# -- provider --------------------------------------------------------------------------------


class AnthropicProvider(Provider):
    """The ``anthropic`` provider (``anthropic.Anthropic``)."""

    name = "anthropic"
    parameters = PARAMETERS

    def _base_url(self, spec: ModelSpec) -> str | None:
        # The SDK reads ANTHROPIC_BASE_URL itself; read here too so the client cache is
        # keyed by where requests actually go.
        return spec.base_url or env_value("ANTHROPIC_BASE_URL")

    def _api_key(self, spec: ModelSpec) -> str:
        # A template's own URL gets the key only where the user sent it (keys.py): a local
        # Anthropic-compatible server gets none, an untrusted one is refused.
        if spec.base_url and not may_send_key(
            self.name, spec.base_url, "ANTHROPIC_API_KEY", ("ANTHROPIC_BASE_URL",), anthropic_host
        ):
            return LOCAL_SERVER_KEY
        key = env_key("ANTHROPIC_API_KEY")
        if key:
            return key
        raise MissingApiKeyError(self.name, ["ANTHROPIC_API_KEY"])

    def check_credentials(self, spec: ModelSpec) -> None:
        self._api_key(spec)

    def traffic_key(self, spec: ModelSpec) -> str:
        return traffic.traffic_key(self.name, self._base_url(spec))

    def _client(self, spec: ModelSpec, is_async: bool) -> Any:
        key, base_url = self._api_key(spec), self._base_url(spec)

        def make() -> Any:
            import anthropic

            cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
            return cls(
                api_key=key,
                base_url=base_url,
                max_retries=provider_max_retries(),
                timeout=provider_timeout_s(),
                http_client=_http_client(anthropic, is_async, self.traffic_key(spec)),
            )

        cache = self.cached_async_client if is_async else self.cached_client
        return cache((base_url, fingerprint(key), *_settings()), make)

    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        self._client(spec, is_async)

    def build_request(
        self, rendered: Mapping[str, Any], spec: ModelSpec, stream: bool
    ) -> dict[str, Any]:
        refuse_routing_parameters(self.name, spec.parameters)
        parameters = dict(spec.parameters)
        structured = _structured.take(parameters)  # a malformed one fails here
        system, messages = build_messages(rendered)
        request: dict[str, Any] = {"model": spec.name, "messages": messages}
        if system:
            request["system"] = system
        request.update(_tools(rendered))
        if structured is not None:
            request.update(_output_tool(structured, request.get("tools", [])))
        known = _sdk_arguments()
        extra: dict[str, Any] = {}
        for key, value in parameters.items():
            if key in known and key not in _STRUCTURAL:
                request[key] = value
            else:
                extra[key] = value  # temperature, top_p, top_k and anything newer
        if extra:
            request["extra_body"] = extra
        request["stream"] = stream  # the SDK spells out "stream": false too
        return request

    def call(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        return self._client(spec, False).messages.create(**request)

    async def acall(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        return await self._client(spec, True).messages.create(**request)

    def parse(self, response: Any, spec: ModelSpec) -> Reply:
        # A reply without stop_reason (a body cut short by a proxy) still parses: the
        # non-streamed API has no other end marker, and PromptLayer logs it as success.
        raw = response.model_dump(mode="json")
        blocks = raw.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        # Structured output: the forced tool's input is the reply, not a tool call.
        output_tool = output_tool_name(spec)
        output = next(
            (
                b
                for b in blocks
                if output_tool is not None
                and b.get("type") == "tool_use"
                and b.get("name") == output_tool
            ),
            None,
        )
        if output is not None:
            text = json.dumps(output.get("input"), ensure_ascii=False)
            blocks = [b for b in blocks if b is not output]
        usage = response.usage
        return Reply(
            text,
            response.stop_reason,
            usage.input_tokens if usage else None,
            usage.output_tokens if usage else None,
            tool_calls_of(blocks),
            raw,
        )

    def stream_state(self, spec: ModelSpec) -> StreamState:
        return AnthropicStream(self.name, output_tool_name(spec))

    def classify(self, exc: BaseException) -> ProviderError | None:
        import anthropic

        if isinstance(exc, anthropic.APIStatusError):
            detail = exc.message
            body = exc.body
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                detail = error["message"]
            if exc.status_code == 200:
                # An in-band `event: error` mid-stream carries the stream's 200 status; its
                # error type says what it is (overloaded_error -> 529 -> server).
                status = _ERROR_TYPE_STATUS.get(str(getattr(exc, "type", None)), 500)
                return ProviderError(
                    self.name, category_for_status(status), f"in-stream error: {detail}"
                )
            # 529 (OverloadedError) is >= 500: a server error, like Anthropic's own retry rule.
            return ProviderError(
                self.name, category_for_status(exc.status_code), detail, exc.status_code
            )
        return (
            connection_error(self.name, exc, anthropic)
            # anthropic lets a cut stream's httpx2.RemoteProtocolError through
            or transport_error(self.name, exc)
            or classify_google_auth_error(self.name, exc)  # AnthropicVertex's token
        )

    def media_limits(self, spec: ModelSpec, template_type: str | None) -> MediaLimits | None:
        if self.name == "vertexai":
            return dataclasses.replace(MEDIA_LIMITS, who="Claude on Vertex AI")
        return MEDIA_LIMITS

    def pricing_provider_id(self, spec: ModelSpec) -> str | None:
        # A template pointing at its own server (a local model) is not billed by Anthropic.
        # Claude on Vertex is billed at Anthropic's list prices (genai-prices has no
        # separate Vertex provider).
        return None if spec.base_url else "anthropic"

    def batch_api(self, spec: ModelSpec) -> BatchAPI | str:
        # ANTHROPIC_BASE_URL (a gateway, or the tests' fake) is Anthropic's API; a template's
        # own server has no Message Batches.
        if spec.base_url:
            return f"the template's own server ({spec.base_url}) has no Message Batches API"
        from .anthropic_batch import AnthropicBatches

        client = self._client(spec, False)
        return AnthropicBatches(self, spec, self._base_url(spec), client, _ERROR_TYPE_STATUS)


# In-band error types -> the HTTP status the same error has outside a stream.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicVertexRoute(AnthropicProvider):
    """Claude on Vertex AI through ``anthropic.AnthropicVertex`` (used by ``vertexai``).

    Project and region come from ``ANTHROPIC_VERTEX_PROJECT_ID`` / ``CLOUD_ML_REGION``
    (or ``VERTEX_AI_PROJECT_ID`` / ``VERTEX_AI_PROJECT_LOCATION``) and are passed
    explicitly; the token comes from Google's application default credentials.
    ``ANTHROPIC_VERTEX_BASE_URL`` (read by the SDK, ``/v1`` included) moves the endpoint.
    """

    name = "vertexai"
    why = "Claude on Vertex AI"

    def _settings(self) -> tuple[str, str]:
        project, region = require_google_cloud(
            self.name,
            ("ANTHROPIC_VERTEX_PROJECT_ID", "VERTEX_AI_PROJECT_ID"),
            ("CLOUD_ML_REGION", "VERTEX_AI_PROJECT_LOCATION"),
            why=self.why,
        )
        return project, region

    def _keyless(self, spec: ModelSpec) -> bool:
        """True when the template's URL is on this machine: it gets no Google token (and an
        untrusted one is refused), as every provider's key (see keys.py)."""
        return vertex_keyless(self.name, spec.base_url, ("ANTHROPIC_VERTEX_BASE_URL",))

    def check_credentials(self, spec: ModelSpec) -> None:
        self._keyless(spec)  # an untrusted template URL is refused first
        self._settings()

    def traffic_key(self, spec: ModelSpec) -> str:
        # Vertex AI's quotas are per project and region
        project, region = self._settings()
        where = spec.base_url or env_value("ANTHROPIC_VERTEX_BASE_URL")
        return traffic.traffic_key(f"{self.name}/claude", f"{project}/{region} {where or ''}")

    def _client(self, spec: ModelSpec, is_async: bool) -> Any:
        keyless = self._keyless(spec)
        project, region = self._settings()
        base_url = spec.base_url or env_value("ANTHROPIC_VERTEX_BASE_URL")
        token = LOCAL_SERVER_KEY if keyless else None

        def make() -> Any:
            import anthropic

            cls = anthropic.AsyncAnthropicVertex if is_async else anthropic.AnthropicVertex
            return cls(
                project_id=project,
                region=region,
                base_url=base_url,
                access_token=token,
                max_retries=provider_max_retries(),
                timeout=provider_timeout_s(),
                http_client=_http_client(anthropic, is_async, self.traffic_key(spec)),
            )

        credentials = env_value("GOOGLE_APPLICATION_CREDENTIALS")
        cache = self.cached_async_client if is_async else self.cached_client
        return cache((project, region, base_url, credentials, token, *_settings()), make)

    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        self._client(spec, is_async)

    def batch_api(self, spec: ModelSpec) -> BatchAPI | str:
        return (
            "Claude's batch predictions on Vertex AI read and write Cloud Storage or BigQuery, "
            "which pl_magic does not use"
        )
