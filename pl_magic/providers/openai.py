"""OpenAI through the official ``openai`` SDK: chat-completions, completions and responses.

``provider_base_url`` points the same code at any OpenAI-compatible server (Ollama, vLLM,
llama.cpp's server). Such servers on loopback need no key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.blueprint import ModelSpec, content_text, prompt_text
from ..core.config import provider_max_retries, provider_timeout_s
from ..core.errors import (
    InvalidInputError,
    MissingApiKeyError,
    ProviderError,
    StreamTruncatedError,
)
from ..core.keys import (
    LOCAL_SERVER_KEY,
    env_key,
    is_loopback_url,
    may_send_key,
    openai_host,
    refuse_routing_parameters,
)
from ..core.local_target import ENV_BASE_URL
from ..core.media import PDF, MediaLimits
from . import _structured, traffic
from ._local_tokens import AsyncCountingStream, CountingStream
from ._sdk_errors import category_for_status, classify_transport_error
from ._turns import forced_function
from .base import ParameterMap, Provider, Reply, StreamState, env_value, fingerprint

if TYPE_CHECKING:
    from .batches import BatchAPI

API_TYPES = ("chat-completions", "completions", "responses")

_MB = 1024 * 1024
#: What chat-completions and the Responses API take: 20 MB per image, 32 MB of files.
MEDIA_LIMITS = MediaLimits("OpenAI", image_bytes=20 * _MB, pdf_bytes=32 * _MB, total_bytes=50 * _MB)


_CHAT_PARAMS = ParameterMap(
    names={
        "temperature": "temperature",
        "top_p": "top_p",
        "max_tokens": "max_tokens",
        "stop": "stop",
        "seed": "seed",
        "presence_penalty": "presence_penalty",
        "frequency_penalty": "frequency_penalty",
        "response_format": "response_format",
    },
    aliases={"max_completion_tokens": "max_tokens", "max_output_tokens": "max_tokens"},
    keep=frozenset({"max_completion_tokens"}),  # reasoning models need this name
)
_RESPONSES_PARAMS = ParameterMap(
    names={
        "temperature": "temperature",
        "top_p": "top_p",
        "max_tokens": "max_output_tokens",
        "response_format": "response_format",  # sent as text.format (_responses_format)
    },
    aliases={"max_completion_tokens": "max_tokens"},
)


def api_type_of(spec: ModelSpec, rendered: Mapping[str, Any] | None = None) -> str:
    """The OpenAI API a spec uses; a completion template defaults to the completions API."""
    if spec.api_type in API_TYPES:
        return str(spec.api_type)
    if spec.api_type not in (None, "", "chat", "chat-completions"):
        raise ProviderError(
            "openai",
            "bad_request",
            f"unsupported api_type {spec.api_type!r}; use one of {', '.join(API_TYPES)}",
        )
    if rendered is not None and rendered.get("type") == "completion":
        return "completions"
    return "chat-completions"


#: Roles whose content PromptLayer's llm_kwargs carry as one string (the others as parts).
_STRING_CONTENT_ROLES = frozenset({"system"})


def _chat_content(content: Any, role: str = "user", plain_text: bool = False) -> Any:
    """PromptLayer blocks -> OpenAI chat content as PromptLayer's ``llm_kwargs`` have it:
    a system message's text as one string, other messages' blocks as content parts
    (``{"type": "text", "text"}``, ``image_url``), each without PromptLayer's extra keys.
    ``plain_text``: text-only content as one string for every role."""
    if isinstance(content, str):
        return content
    blocks = [b for b in content or [] if isinstance(b, dict)]
    as_string = plain_text or role in _STRING_CONTENT_ROLES
    if as_string and all(b.get("type") == "text" for b in blocks):
        return "".join(b.get("text", "") for b in blocks)
    native = []
    for b in blocks:
        if b.get("type") == "text":
            native.append({"type": "text", "text": b.get("text", "")})
        elif b.get("type") == "image_url":
            native.append({"type": "image_url", "image_url": b.get("image_url")})
        elif b.get("type") == "media" and isinstance(b.get("media"), Mapping):
            native.append(_chat_media(b["media"]))
    return native


def _chat_media(media: Mapping[str, Any]) -> dict[str, Any]:
    """A chat content part for PromptLayer's ``media`` block: a PDF is a ``file`` part with
    its bytes as a data: URL (chat takes no PDF URL), an image an ``image_url`` part."""
    url = str(media.get("url"))
    if media.get("type") != PDF:
        return {"type": "image_url", "image_url": {"url": url}}
    if not url.startswith("data:"):
        raise InvalidInputError(
            "OpenAI's chat-completions API takes PDFs only as bytes, not as a URL: pass the "
            "file (a path or its bytes), or set the template's api_type to 'responses'"
        )
    return {"type": "file", "file": {"filename": str(media.get("title")), "file_data": url}}


def _responses_media(media: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses API input part for PromptLayer's ``media`` block (``input_file`` for a PDF,
    by bytes or by URL; ``input_image`` for an image)."""
    url = str(media.get("url"))
    if media.get("type") != PDF:
        return {"type": "input_image", "image_url": url}
    if url.startswith("data:"):
        return {"type": "input_file", "filename": str(media.get("title")), "file_data": url}
    return {"type": "input_file", "file_url": url}


def chat_messages(rendered: Mapping[str, Any], plain_text: bool = False) -> list[dict[str, Any]]:
    """OpenAI chat messages from a rendered chat template (``plain_text``: text-only
    content as strings, for OpenAI-compatible servers that take nothing else)."""
    out = []
    for msg in rendered.get("messages", []):
        native: dict[str, Any] = {
            "role": msg["role"],
            "content": _chat_content(msg.get("content"), msg["role"], plain_text),
        }
        if msg.get("name"):
            native["name"] = msg["name"]
        if msg["role"] == "assistant" and msg.get("tool_calls"):
            native["tool_calls"] = msg["tool_calls"]
            native["content"] = native["content"] or None
        if msg["role"] == "tool" and msg.get("tool_call_id"):
            native["tool_call_id"] = msg["tool_call_id"]
        out.append(native)
    return out


def _responses_input(rendered: Mapping[str, Any]) -> Any:
    """The Responses API's ``input``: a message item per message; a tool result is a
    ``function_call_output`` item and an assistant message's ``tool_calls`` are
    ``function_call`` items after it (the call ids tie the two together)."""
    if rendered.get("type") == "completion":
        return prompt_text(rendered)
    items: list[dict[str, Any]] = []
    for msg in rendered.get("messages", []):
        if msg["role"] in ("tool", "function"):
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": msg.get("tool_call_id"),
                    "output": content_text(msg.get("content")),
                }
            )
            continue
        kind = "output_text" if msg["role"] == "assistant" else "input_text"
        content: list[dict[str, Any]] = []
        blocks = msg.get("content")
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        for b in blocks or []:
            if b.get("type") == "text":
                content.append({"type": kind, "text": b.get("text", "")})
            elif b.get("type") == "image_url":
                content.append({"type": "input_image", "image_url": b["image_url"].get("url")})
            elif b.get("type") == "media" and isinstance(b.get("media"), Mapping):
                content.append(_responses_media(b["media"]))
        calls = msg.get("tool_calls") if msg["role"] == "assistant" else None
        if content or not calls:
            items.append({"role": msg["role"], "content": content})
        for call in calls or []:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                }
            )
    return items


def _tools(rendered: Mapping[str, Any]) -> dict[str, Any]:
    tools = [t for t in rendered.get("tools") or [] if t.get("type") == "function"]
    out: dict[str, Any] = {}
    if tools:
        out["tools"] = tools
        if rendered.get("tool_choice"):
            out["tool_choice"] = rendered["tool_choice"]
    return out


def _responses_tools(rendered: Mapping[str, Any]) -> dict[str, Any]:
    """PromptLayer's (chat-shaped) function tools and ``tool_choice`` in the Responses API's
    flat shape (``{"type": "function", "name", "parameters", ...}``); tools already flat are
    kept as they are."""
    tools = []
    for tool in rendered.get("tools") or []:
        if tool.get("type") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, Mapping):
            tools.append(tool)  # the Responses API's own shape
            continue
        native = {"type": "function", "name": function.get("name")}
        for key in ("description", "parameters", "strict"):
            if key in function:
                native[key] = function[key]
        tools.append(native)
    if not tools:
        return {}
    out: dict[str, Any] = {"tools": tools}
    choice = rendered.get("tool_choice")
    forced = forced_function(choice)
    if forced is not None:
        out["tool_choice"] = {"type": "function", "name": forced}
    elif choice:
        out["tool_choice"] = choice
    return out


def responses_tool_calls(output: Any) -> list[dict[str, Any]] | None:
    """The ``function_call`` items of a Responses API ``output`` as PromptLayer's
    (OpenAI-chat-shaped) ``tool_calls``, whose ``id`` is the item's ``call_id`` (what a
    tool result answers)."""
    calls = [
        {
            "id": getattr(item, "call_id", None),
            "type": "function",
            "function": {"name": item.name, "arguments": item.arguments},
        }
        for item in output or []
        if getattr(item, "type", None) == "function_call"
    ]
    return calls or None


def _chat_response_format(
    given: Any, structured: _structured.StructuredOutput | None, local_model: bool
) -> Any:
    """Chat completions' ``response_format`` for ``given`` (already read as ``structured``).

    OpenAI takes PromptLayer's (its own) shape as is. llama-cpp-python's server accepts only
    ``{"type": "json_object", "schema": ...}``, which it turns into a grammar; other local
    servers (Ollama, vLLM) read that as JSON mode.
    """
    if structured is None:
        return given  # {"type": "text"}
    if local_model:
        out: dict[str, Any] = {"type": "json_object"}
        if structured.schema is not None:
            out["schema"] = structured.schema
        return out
    if given.get("type") == "json_object" and structured.schema is not None:
        return {"type": "json_schema", "json_schema": _json_schema_fields(structured)}
    return given


def _json_schema_fields(structured: _structured.StructuredOutput) -> dict[str, Any]:
    out: dict[str, Any] = {"name": structured.name, "schema": structured.schema}
    if structured.description is not None:
        out["description"] = structured.description
    if structured.strict is not None:
        out["strict"] = structured.strict
    return out


def _responses_format(structured: _structured.StructuredOutput | None) -> dict[str, Any]:
    """The Responses API's ``text.format`` for a ``response_format``: the json_schema fields
    sit beside ``type`` there, not under ``json_schema``."""
    if structured is None:
        return {"type": "text"}
    if structured.schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", **_json_schema_fields(structured)}


class OpenAIStream(StreamState):
    """Chat-completions and completions chunks."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, Any] = {}
        self.tool_calls: list[dict[str, Any]] = []

    def feed(self, chunk: Any) -> str:
        if not self.meta and getattr(chunk, "id", None):
            self.meta = {"id": chunk.id, "created": chunk.created, "model": chunk.model}
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.input_tokens = usage.prompt_tokens
            self.output_tokens = usage.completion_tokens
        added = ""
        for choice in chunk.choices or []:
            delta = getattr(choice, "delta", None)
            piece = delta.content if delta is not None else getattr(choice, "text", None)
            if piece:
                added += piece
            if delta is not None and delta.tool_calls:
                self._merge_tool_calls(delta.tool_calls)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
                self.complete = True
        if added:
            self.parts.append(added)
        return added

    def _merge_tool_calls(self, deltas: Any) -> None:
        for d in deltas:
            while len(self.tool_calls) <= d.index:
                self.tool_calls.append(
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
            call = self.tool_calls[d.index]
            if d.id:
                call["id"] = d.id
            if d.function is not None:
                call["function"]["name"] += d.function.name or ""
                call["function"]["arguments"] += d.function.arguments or ""

    def tool_calls_so_far(self) -> list[dict[str, Any]] | None:
        if not self.tool_calls:
            return None
        return [{**c, "function": dict(c["function"])} for c in self.tool_calls]

    def finish(self) -> Reply:
        if not self.complete:
            raise StreamTruncatedError("openai", self.text)
        usage = None
        if self.input_tokens is not None:
            usage = {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": self.output_tokens,
                "total_tokens": (self.input_tokens or 0) + (self.output_tokens or 0),
            }
        raw = {
            **self.meta,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.text,
                        "tool_calls": self.tool_calls or None,
                    },
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": usage,
        }
        return Reply(
            self.text,
            self.finish_reason,
            self.input_tokens,
            self.output_tokens,
            self.tool_calls or None,
            raw,
        )


class ResponsesStream(StreamState):
    """Responses API events."""

    def __init__(self) -> None:
        super().__init__()
        self.response: Any = None
        #: Function calls by output index, their arguments as far as they came.
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, event: Any) -> str:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            self.parts.append(event.delta)
            return str(event.delta)
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = event.item
            if getattr(item, "type", None) == "function_call":
                self.calls[event.output_index] = {
                    "id": item.call_id,
                    "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments or ""},
                }
        elif kind == "response.function_call_arguments.delta":
            call = self.calls.get(event.output_index)
            if call is not None:
                call["function"]["arguments"] += event.delta
        if kind in ("response.completed", "response.incomplete"):
            self.response = event.response
            self.complete = True
            self.finish_reason = "stop" if kind == "response.completed" else "length"
            usage = event.response.usage
            if usage is not None:
                self.input_tokens, self.output_tokens = usage.input_tokens, usage.output_tokens
        elif kind in ("error", "response.failed"):
            message = getattr(event, "message", None) or "the response failed"
            if kind == "response.failed" and event.response.error is not None:
                message = event.response.error.message
            raise ProviderError(
                "openai", "server", f"in-stream error: {message}", partial_text=self.text
            )
        return ""

    def tool_calls_so_far(self) -> list[dict[str, Any]] | None:
        if not self.calls:
            return None
        return [{**c, "function": dict(c["function"])} for _, c in sorted(self.calls.items())]

    def finish(self) -> Reply:
        if not self.complete:
            raise StreamTruncatedError("openai", self.text)
        raw = self.response.model_dump(mode="json") if self.response is not None else None
        calls = responses_tool_calls(getattr(self.response, "output", None))
        return Reply(
            self.text,
            self.finish_reason,
            self.input_tokens,
            self.output_tokens,
            calls or self.tool_calls_so_far(),
            raw,
        )


class OpenAIProvider(Provider):
    """The ``openai`` provider."""

    name = "openai"
    parameters = _CHAT_PARAMS

    def parameter_map(self, api_type: str | None) -> ParameterMap:
        """Parameter names differ between the chat/completions and responses APIs."""
        return _RESPONSES_PARAMS if api_type == "responses" else _CHAT_PARAMS

    def _base_url(self, spec: ModelSpec) -> str | None:
        return spec.base_url or env_value("OPENAI_BASE_URL")

    def _api_key(self, spec: ModelSpec) -> str:
        # A template's own URL gets the key only where the user sent it (keys.py): a server
        # on this machine (the local model, Ollama, vLLM) gets none, an untrusted one is refused.
        if spec.base_url and not may_send_key(
            self.name, spec.base_url, "OPENAI_API_KEY", ("OPENAI_BASE_URL",), openai_host
        ):
            return LOCAL_SERVER_KEY
        key = env_key("OPENAI_API_KEY")
        if key:
            return key
        if is_loopback_url(self._base_url(spec)):
            return LOCAL_SERVER_KEY
        raise MissingApiKeyError("openai", ["OPENAI_API_KEY"])

    def check_credentials(self, spec: ModelSpec) -> None:
        self._api_key(spec)

    def traffic_key(self, spec: ModelSpec) -> str:
        return traffic.traffic_key(self.name, self._base_url(spec))

    def _client(self, spec: ModelSpec, is_async: bool) -> Any:
        key, base_url = self._api_key(spec), self._base_url(spec)

        def make() -> Any:
            import openai

            # The SDK's own HTTP client, with hooks that tell the engine's limiter of every
            # answer (a 429 the SDK retries included); timeout and retries stay the SDK's.
            where = self.traffic_key(spec)
            cls: Any
            http: Any
            if is_async:
                cls = openai.AsyncOpenAI
                http = openai.DefaultAsyncHttpxClient(event_hooks=traffic.async_hooks(where))
            else:
                cls = openai.OpenAI
                http = openai.DefaultHttpxClient(event_hooks=traffic.hooks(where))
            return cls(
                api_key=key,
                base_url=base_url,
                max_retries=provider_max_retries(),
                timeout=provider_timeout_s(),
                http_client=http,
            )

        if is_async:  # pooled connections belong to one event loop
            return self.cached_async_client((base_url, fingerprint(key)), make)
        return self.cached_client((base_url, fingerprint(key)), make)

    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        self._client(spec, is_async)

    def resolve_api_type(self, spec: ModelSpec, rendered: Mapping[str, Any]) -> str | None:
        return api_type_of(spec, rendered)

    def media_limits(self, spec: ModelSpec, template_type: str | None) -> MediaLimits | None:
        if spec.local_model and not env_value(ENV_BASE_URL):
            return MediaLimits(
                "the embedded local model (SmolLM2-135M)",
                None,
                None,
                why="it reads text only: run this template on a provider that does (e.g. "
                f"provider='openai', model='gpt-4o-mini'), or set {ENV_BASE_URL} to a "
                "multimodal server of your own (e.g. Ollama with a vision model)",
            )
        if spec.local_model:
            return dataclasses.replace(
                MEDIA_LIMITS,
                who=f"your local server ({ENV_BASE_URL})",
                pdf_bytes=None,
                why="OpenAI-compatible local servers take images only: pass the pages as images",
            )
        api = api_type_of(spec, {"type": template_type})
        if api == "completions":
            return MediaLimits(
                "OpenAI's completions API",
                None,
                None,
                why="set the template's api_type to 'chat-completions' or 'responses'",
            )
        if api == "chat-completions":
            return dataclasses.replace(MEDIA_LIMITS, pdf_urls=False)
        return MEDIA_LIMITS

    def build_request(
        self, rendered: Mapping[str, Any], spec: ModelSpec, stream: bool
    ) -> dict[str, Any]:
        refuse_routing_parameters(self.name, spec.parameters)
        api = api_type_of(spec, rendered)
        params = dict(spec.parameters)
        stored_messages = params.pop("messages", None)
        response_format = params.get(_structured.PARAMETER)
        structured = _structured.take(params)  # a malformed one fails here, before any call
        request: dict[str, Any] = {"model": spec.name, **params}
        if api == "chat-completions":
            # PromptLayer's llm_kwargs: {messages, model, **parameters}; a ``messages`` list
            # stored in the model's parameters (old playground templates) replaces the
            # template's messages there, so it does here.
            messages = stored_messages if isinstance(stored_messages, list) else None
            # A server on this machine (the local model, Ollama, llama.cpp...) gets text as
            # plain strings: some chat templates there cannot take content parts.
            plain = is_loopback_url(spec.base_url)
            request = {"messages": messages or chat_messages(rendered, plain), **request}
            request.update(_tools(rendered))
            if response_format is not None:
                request["response_format"] = _chat_response_format(
                    response_format, structured, spec.local_model
                )
        elif api == "completions":
            if structured is not None:
                raise InvalidInputError(
                    "response_format needs the chat-completions or responses API, and this "
                    "template uses the completions API: set api_type to 'chat-completions'"
                )
            if response_format is not None:
                request["response_format"] = response_format
            if rendered.get("type") == "completion":
                request["prompt"] = prompt_text(rendered)
            else:
                request["prompt"] = "\n\n".join(
                    content_text(m.get("content")) for m in rendered.get("messages", [])
                )
        else:
            request["input"] = _responses_input(rendered)
            request.update(_responses_tools(rendered))
            if response_format is not None:
                text = request.get("text")
                text = dict(text) if isinstance(text, Mapping) else {}
                request["text"] = {**text, "format": _responses_format(structured)}
        request["stream"] = stream  # the SDK spells out "stream": false too
        if stream and api != "responses":
            request["stream_options"] = {"include_usage": True}
        return request

    def _endpoint(self, client: Any, spec: ModelSpec, request: Mapping[str, Any]) -> Any:
        if "messages" in request:
            return client.chat.completions.create
        if "prompt" in request:
            return client.completions.create
        return client.responses.create

    def _counted_at(self, request: Mapping[str, Any], spec: ModelSpec, stream: bool) -> str | None:
        """The local server whose stream gets its tokens counted (it sends no usage; see
        :mod:`._local_tokens`), or None."""
        if not (stream and spec.local_model and "input" not in request):
            return None
        return self._base_url(spec)

    def call(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        native = self._endpoint(self._client(spec, False), spec, request)(**request)
        base_url = self._counted_at(request, spec, stream)
        return native if base_url is None else CountingStream(native, base_url, request)

    async def acall(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        native = await self._endpoint(self._client(spec, True), spec, request)(**request)
        base_url = self._counted_at(request, spec, stream)
        return native if base_url is None else AsyncCountingStream(native, base_url, request)

    def parse(self, response: Any, spec: ModelSpec) -> Reply:
        raw = response.model_dump(mode="json")
        if getattr(response, "object", None) == "response":
            usage = response.usage
            return Reply(
                response.output_text,
                "stop" if response.status == "completed" else response.status,
                usage.input_tokens if usage else None,
                usage.output_tokens if usage else None,
                responses_tool_calls(response.output),
                raw,
            )
        usage = response.usage
        choice = response.choices[0] if response.choices else None
        text, tool_calls, finish = "", None, None
        if choice is not None:
            finish = choice.finish_reason
            message = getattr(choice, "message", None)
            if message is not None:
                text = message.content or ""
                if message.tool_calls:
                    tool_calls = [tc.model_dump(mode="json") for tc in message.tool_calls]
            else:
                text = choice.text or ""
        return Reply(
            text,
            finish,
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
            tool_calls,
            raw,
        )

    def stream_state(self, spec: ModelSpec) -> StreamState:
        if spec.api_type == "responses":
            return ResponsesStream()
        return OpenAIStream()

    def classify(self, exc: BaseException) -> ProviderError | None:
        import openai

        if isinstance(exc, openai.APIStatusError):
            detail = exc.message
            body = exc.body
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                detail = body["message"]
            return ProviderError(
                "openai", category_for_status(exc.status_code), detail, exc.status_code
            )
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError("openai", "timeout", "the request timed out")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            return ProviderError("openai", "connection", detail)
        if isinstance(exc, openai.APIError):  # in-band stream error: no HTTP status
            return ProviderError("openai", "server", f"in-stream error: {exc.message}")
        category = classify_transport_error(exc)
        if category:
            return ProviderError("openai", category, f"{type(exc).__name__}: {exc}")
        return None

    def pricing_provider_id(self, spec: ModelSpec) -> str | None:
        # A template pointing at another server (a local model, vLLM) is not billed by
        # OpenAI. OPENAI_BASE_URL alone is usually a gateway in front of OpenAI: priced.
        return None if spec.base_url else "openai"

    def batch_api(self, spec: ModelSpec) -> BatchAPI | str:
        # OPENAI_BASE_URL (a gateway in front of OpenAI, or the tests' fake) is OpenAI's API;
        # a template's own server (the local model, vLLM, Ollama) has no Batch API.
        if spec.local_model:
            return "the local model answers live calls only"
        if spec.base_url:
            return f"the template's own server ({spec.base_url}) has no Batch API"
        from .openai_batch import OpenAIBatches

        api = api_type_of(spec)
        return OpenAIBatches(self, spec, self._base_url(spec), self._client(spec, False), api)
