"""Gemini through the official ``google-genai`` SDK, on the Gemini API or on Vertex AI.

``google`` uses the Gemini API with ``GOOGLE_API_KEY`` (or ``GEMINI_API_KEY``); with
``GOOGLE_GENAI_USE_VERTEXAI=true`` the same provider runs on Vertex AI with
``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_CLOUD_LOCATION`` and Google's application default
credentials. The ``vertexai`` provider reuses this module for Gemini models
(:class:`GeminiVertexRoute`).

SDK traits this module works around (reference/provider-wire.md §0, §4):

- With a custom base URL and project/location taken only from the environment, genai
  switches to "API-gateway mode" and sends no credentials: project and location are read
  here and passed explicitly, and ``GOOGLE_VERTEX_BASE_URL`` is only honoured when
  ``vertexai=True`` is passed explicitly, which it always is in Vertex mode.
- A ``genai.Client`` closes its HTTP client when garbage-collected, so clients are cached
  (never temporary).
- genai does not retry by default: retry options mirroring the other SDKs are set.
- The sync stream is lazy (nothing is sent until it is iterated): the first chunk is
  fetched in :meth:`GoogleProvider.call`, so errors surface at call time like the others.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..core.blueprint import ModelSpec
from ..core.config import provider_max_retries, provider_timeout_s
from ..core.errors import MissingApiKeyError, ProviderError, StreamTruncatedError
from ..core.keys import (
    LOCAL_SERVER_KEY,
    env_key,
    gemini_host,
    may_send_key,
    refuse_routing_parameters,
)
from ..core.media import JPEG, PNG, WEBP, MediaLimits
from . import _structured, traffic
from ._sdk_errors import category_for_status, classify_google_auth_error, transport_error
from ._turns import TurnShape, data_url, forced_function, function_tools, to_turns, tool_calls
from .base import ParameterMap, Provider, Reply, StreamState, env_value, fingerprint
from .google_auth import require_google_cloud, vertex_keyless

if TYPE_CHECKING:
    from .batches import BatchAPI

PARAMETERS = ParameterMap(
    names={
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "max_tokens": "max_output_tokens",
        "stop": "stop_sequences",
        "seed": "seed",
        "presence_penalty": "presence_penalty",
        "frequency_penalty": "frequency_penalty",
        "response_format": "response_format",  # sent as response_mime_type + schema
    },
    aliases={
        "max_completion_tokens": "max_tokens",
        "maxOutputTokens": "max_tokens",
        "topP": "top_p",
        "topK": "top_k",
        "stopSequences": "stop",
        "presencePenalty": "presence_penalty",
        "frequencyPenalty": "frequency_penalty",
    },
)

# HTTP statuses genai retries (its own defaults once retries are on), like openai/anthropic.
RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]
#: First retry delay and cap, in seconds (openai and anthropic back off 0.5 s·2ⁿ up to 8 s;
#: genai does not honour Retry-After).
RETRY_INITIAL_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 8.0

_TRUE = ("true", "1")


def _placeholder_credentials() -> Any:
    """Google credentials holding a placeholder token, for a server on this machine: the
    user's own credentials are neither loaded nor sent there."""
    from google.oauth2.credentials import Credentials

    return Credentials(token=LOCAL_SERVER_KEY)


_DROPPED_FROM_RAW = {"sdk_http_response", "automatic_function_calling_history"}


def vertex_mode_from_env() -> bool:
    """True when the environment asks google-genai for Vertex AI (as genai decides it)."""
    for name in ("GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_USE_VERTEXAI"):
        value = env_value(name)
        if value is not None:
            return value.lower() in _TRUE
    return False


def _enum_text(value: Any) -> str | None:
    """A genai enum (FinishReason.STOP) as its wire text ("STOP")."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


# -- request ---------------------------------------------------------------------------------


def _image_part(url: str) -> dict[str, Any]:
    """A Gemini part for an ``image_url``: inline bytes for data: URLs, file_data otherwise."""
    found = data_url(url)
    if found is not None:
        mime_type, data = found
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        return {"inline_data": {"mime_type": mime_type, "data": raw}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"file_data": {"file_uri": url, "mime_type": mime}}


def _media_part(media: Mapping[str, Any]) -> dict[str, Any]:
    """A Gemini part for PromptLayer's ``media`` block (a PDF or an image): inline bytes for
    a data: URL, file_data (with the block's type) otherwise."""
    url = str(media.get("url"))
    if data_url(url) is not None:
        return _image_part(url)
    return {"file_data": {"file_uri": url, "mime_type": str(media.get("type") or "")}}


#: Gemini's parts; ``assistant`` is Gemini's ``model`` role.
SHAPE = TurnShape(
    key="parts",
    assistant_role="model",
    text=lambda text: {"text": text},
    image=_image_part,
    media=_media_part,
)

_MB = 1024 * 1024
#: Inline data on the Gemini API: one request's media together (GIF is not among its
#: image types).
GEMINI_MEDIA_LIMITS = MediaLimits(
    "Gemini",
    image_bytes=20 * _MB,
    pdf_bytes=20 * _MB,
    total_bytes=20 * _MB,
    image_types=(PNG, JPEG, WEBP),
    note="inline data of one request",
)
#: Inline data on Vertex AI: 7 MB per image.
VERTEX_MEDIA_LIMITS = MediaLimits(
    "Gemini on Vertex AI",
    image_bytes=7 * _MB,
    pdf_bytes=20 * _MB,
    total_bytes=20 * _MB,
    image_types=(PNG, JPEG, WEBP),
    note="inline data",
)


def build_contents(rendered: Mapping[str, Any]) -> tuple[str | None, Any]:
    """The system instruction and Gemini ``contents`` of a rendered template.

    System (and developer) messages become the system instruction; ``assistant`` is
    Gemini's ``model`` role; tool results become ``function_response`` parts of a user
    turn (named after the call they answer). Consecutive turns of one role are merged.
    A completion template becomes one user turn with its prompt text (PromptLayer's
    ``llm_kwargs.contents`` shape; on the wire the same as the bare text).
    """
    call_names: dict[str, str] = {}  # tool call id -> function name, for the results

    def function_calls(raw: Any) -> list[dict[str, Any]]:
        calls = tool_calls(raw)
        for call in calls:
            call_names[str(call.id)] = str(call.name)
        return [{"function_call": {"name": call.name, "args": call.arguments}} for call in calls]

    def function_response(msg: Mapping[str, Any], text: str) -> dict[str, Any]:
        name = msg.get("name") or call_names.get(str(msg.get("tool_call_id")), "tool")
        return {"function_response": {"name": name, "response": {"result": text}}}

    return to_turns(rendered, SHAPE, function_response, function_calls)


def _tools(rendered: Mapping[str, Any]) -> dict[str, Any]:
    """PromptLayer (OpenAI-shaped) function tools and tool_choice -> GenerateContentConfig."""
    declarations = []
    for function in function_tools(rendered):
        declaration: dict[str, Any] = {"name": function.name}
        if function.description:
            declaration["description"] = function.description
        if function.parameters:
            # JSON Schema as is: genai's own Schema type is an OpenAPI subset.
            declaration["parameters_json_schema"] = function.parameters
        declarations.append(declaration)
    if not declarations:
        return {}
    out: dict[str, Any] = {"tools": [{"function_declarations": declarations}]}
    choice = rendered.get("tool_choice")
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(str(choice))
    forced = forced_function(choice)
    if forced is not None:
        out["tool_config"] = {
            "function_calling_config": {"mode": "ANY", "allowed_function_names": [forced]}
        }
    elif mode:
        out["tool_config"] = {"function_calling_config": {"mode": mode}}
    return out


# -- responses -------------------------------------------------------------------------------


def _candidate_parts(response: Any) -> tuple[str, list[dict[str, Any]], Any]:
    """Text (thoughts left out), function calls and the first candidate of a response."""
    candidates = getattr(response, "candidates", None) or []
    candidate = candidates[0] if candidates else None
    content = getattr(candidate, "content", None)
    text, calls = "", []
    for part in getattr(content, "parts", None) or []:
        if part.text and not part.thought:
            text += part.text
        if part.function_call is not None:
            calls.append(part.function_call)
    return text, calls, candidate


def _finish_reason(response: Any, candidate: Any) -> str | None:
    """The candidate's finish reason; for a blocked prompt (no candidate) the block reason."""
    if candidate is not None:
        return _enum_text(getattr(candidate, "finish_reason", None))
    feedback = getattr(response, "prompt_feedback", None)
    return _enum_text(getattr(feedback, "block_reason", None))


def _tool_calls(calls: list[Any], offset: int = 0) -> list[dict[str, Any]]:
    """genai FunctionCalls -> PromptLayer's (OpenAI-shaped) ``tool_calls``."""
    return [
        {
            "id": call.id or f"call_{offset + i}",
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.args or {})},
        }
        for i, call in enumerate(calls)
    ]


def _usage(response: Any) -> tuple[int | None, int | None]:
    """(input, output) tokens; output counts thinking tokens too (they are billed as output)."""
    usage = getattr(response, "usage_metadata", None)
    if usage is None:
        return None, None
    output = None
    if usage.candidates_token_count is not None or usage.thoughts_token_count is not None:
        output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return usage.prompt_token_count, output


def _dump(response: Any) -> dict[str, Any]:
    """A JSON-able dump of a GenerateContentResponse, without the HTTP headers."""
    out: dict[str, Any] = response.model_dump(
        mode="json", exclude_none=True, exclude=_DROPPED_FROM_RAW
    )
    return out


class GeminiStream(StreamState):
    """genai stream chunks. Complete only when a chunk carries a finish reason."""

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider
        self.calls: list[dict[str, Any]] = []
        self.last: Any = None

    def feed(self, chunk: Any) -> str:
        self.last = chunk
        text, calls, candidate = _candidate_parts(chunk)
        if calls:
            self.calls.extend(_tool_calls(calls, len(self.calls)))
        input_tokens, output_tokens = _usage(chunk)
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens
        finish = _finish_reason(chunk, candidate)
        if finish is not None:
            self.finish_reason = finish
            self.complete = True
        if text:
            self.parts.append(text)
        return text

    def tool_calls_so_far(self) -> list[dict[str, Any]] | None:
        return [{**c, "function": dict(c["function"])} for c in self.calls] or None

    def finish(self) -> Reply:
        if not self.complete:
            raise StreamTruncatedError(self.provider, self.text)
        raw = _dump(self.last) if self.last is not None else {}
        parts: list[dict[str, Any]] = [{"text": self.text}] if self.text else []
        parts += [
            {
                "function_call": {
                    "name": c["function"]["name"],
                    "args": json.loads(c["function"]["arguments"]),
                }
            }
            for c in self.calls
        ]
        candidates = raw.get("candidates") or [{}]
        candidates[0]["content"] = {"role": "model", "parts": parts}
        raw["candidates"] = candidates[:1]
        return Reply(
            self.text,
            self.finish_reason,
            self.input_tokens,
            self.output_tokens,
            self.calls or None,
            raw,
        )


class _Prefetched:
    """A sync stream whose first chunk was already fetched (so errors surface at call)."""

    def __init__(self, first: list[Any], rest: Iterator[Any]) -> None:
        self._first = first
        self._rest = rest

    def __iter__(self) -> Iterator[Any]:
        yield from self._first
        self._first = []
        yield from self._rest

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if callable(close):
            close()


class _APrefetched:
    """Async twin of :class:`_Prefetched`."""

    def __init__(self, first: list[Any], rest: AsyncIterator[Any]) -> None:
        self._first = first
        self._rest = rest

    async def __aiter__(self) -> AsyncIterator[Any]:
        for chunk in self._first:
            yield chunk
        self._first = []
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._rest, "aclose", None)
        if callable(close):
            await close()


# -- provider --------------------------------------------------------------------------------


class GoogleProvider(Provider):
    """The ``google`` provider: the Gemini API, or Vertex AI when the environment says so."""

    name = "google"
    parameters = PARAMETERS
    why_vertex = "Gemini on Vertex AI, as GOOGLE_GENAI_USE_VERTEXAI is true"
    project_vars: tuple[str, ...] = ("GOOGLE_CLOUD_PROJECT",)
    location_vars: tuple[str, ...] = ("GOOGLE_CLOUD_LOCATION",)

    def vertex(self) -> bool:
        """True when this provider runs on Vertex AI."""
        return vertex_mode_from_env()

    def media_limits(self, spec: ModelSpec, template_type: str | None) -> MediaLimits | None:
        return VERTEX_MEDIA_LIMITS if self.vertex() else GEMINI_MEDIA_LIMITS

    def _vertex_settings(self) -> tuple[str, str]:
        project, location = require_google_cloud(
            self.name, self.project_vars, self.location_vars, why=self.why_vertex
        )
        return project, location

    def _keyless(self, spec: ModelSpec) -> bool:
        """True when the template's URL is on this machine: it gets no key or token; a URL
        the user did not send keys to is refused (keys.py, one rule for every provider)."""
        if not spec.base_url:
            return False
        if self.vertex():
            return vertex_keyless(self.name, spec.base_url, ("GOOGLE_VERTEX_BASE_URL",))
        env_vars = ("GOOGLE_GEMINI_BASE_URL",)
        return not may_send_key(self.name, spec.base_url, "GOOGLE_API_KEY", env_vars, gemini_host)

    def _api_key(self, spec: ModelSpec) -> str:
        if self._keyless(spec):
            return LOCAL_SERVER_KEY
        key = env_key("GOOGLE_API_KEY", "GEMINI_API_KEY")
        if key is None:
            raise MissingApiKeyError(self.name, ["GOOGLE_API_KEY", "GEMINI_API_KEY"])
        return key

    def check_credentials(self, spec: ModelSpec) -> None:
        if self.vertex():
            self._keyless(spec)  # an untrusted template URL is refused first
            self._vertex_settings()
        else:
            self._api_key(spec)

    def _http_options(self, base_url: str | None, where: str) -> Any:
        from google.genai import types

        retries = provider_max_retries()
        return types.HttpOptions(
            base_url=base_url,
            timeout=int(provider_timeout_s() * 1000),  # genai counts in milliseconds
            retry_options=types.HttpRetryOptions(
                attempts=1 + retries,
                initial_delay=RETRY_INITIAL_DELAY_S,
                max_delay=RETRY_MAX_DELAY_S,
                jitter=RETRY_INITIAL_DELAY_S / 2,
                http_status_codes=RETRY_STATUS_CODES,
            ),
            # genai builds its sync httpx client with these hooks, which tell the engine's
            # limiter of every answer (its retries included) and hold a retry while the
            # provider asked to wait (genai itself does not honour RetryInfo). Its async
            # client is aiohttp's when installed: the engine then learns of a 429 from the
            # error that reaches it.
            client_args={"event_hooks": traffic.hooks(where)},
        )

    def traffic_key(self, spec: ModelSpec) -> str:
        if self.vertex():  # Vertex AI's quotas are per project and region
            project, location = self._vertex_settings()
            where = spec.base_url or env_value("GOOGLE_VERTEX_BASE_URL")
            return traffic.traffic_key(f"{self.name}/vertex", f"{project}/{location} {where or ''}")
        return traffic.traffic_key(self.name, spec.base_url or env_value("GOOGLE_GEMINI_BASE_URL"))

    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        self._client(spec)

    def _client(self, spec: ModelSpec) -> Any:
        """The cached ``genai.Client`` for the current environment (``.aio`` for async).

        A template's ``provider_base_url`` (a gateway) wins over the SDK's base-URL variable.
        """
        settings = (
            provider_max_retries(),
            provider_timeout_s(),
            RETRY_INITIAL_DELAY_S,
            RETRY_MAX_DELAY_S,
        )
        if self.vertex():
            keyless = self._keyless(spec)
            project, location = self._vertex_settings()
            base_url = spec.base_url or env_value("GOOGLE_VERTEX_BASE_URL")
            credentials = env_value("GOOGLE_APPLICATION_CREDENTIALS")

            def make_vertex() -> Any:
                from google import genai

                return genai.Client(
                    vertexai=True,
                    project=project,
                    location=location,
                    credentials=_placeholder_credentials() if keyless else None,
                    http_options=self._http_options(base_url, self.traffic_key(spec)),
                )

            key = ("vertex", project, location, base_url, credentials, keyless, settings)
            return self.cached_client(key, make_vertex)

        api_key = self._api_key(spec)
        base_url = spec.base_url or env_value("GOOGLE_GEMINI_BASE_URL")

        def make() -> Any:
            from google import genai

            options = self._http_options(base_url, self.traffic_key(spec))
            return genai.Client(vertexai=False, api_key=api_key, http_options=options)

        return self.cached_client(("gemini", base_url, fingerprint(api_key), settings), make)

    def build_request(
        self, rendered: Mapping[str, Any], spec: ModelSpec, stream: bool
    ) -> dict[str, Any]:
        refuse_routing_parameters(self.name, spec.parameters)
        system, contents = build_contents(rendered)
        config: dict[str, Any] = dict(spec.parameters)
        structured = _structured.take(config)  # a malformed one fails here
        if structured is not None:
            # The reply is JSON text: the mime type, with the JSON Schema as is (genai's
            # ``response_schema`` is an OpenAPI subset; ``response_json_schema`` takes it whole).
            config["response_mime_type"] = "application/json"
            config.pop("response_schema", None)
            config.pop("responseSchema", None)
            if structured.schema is not None:
                config["response_json_schema"] = structured.schema
        if system:
            config["system_instruction"] = system
        config.update(_tools(rendered))
        _check_config(self.name, config)
        request: dict[str, Any] = {"model": spec.name, "contents": contents}
        if config:
            request["config"] = config
        return request

    def call(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        models = self._client(spec).models
        if not stream:
            return models.generate_content(**request)
        native = iter(models.generate_content_stream(**request))
        first = next(native, None)  # sends the request
        return _Prefetched([] if first is None else [first], native)

    async def acall(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        models = self._client(spec).aio.models
        if not stream:
            return await models.generate_content(**request)
        native = await models.generate_content_stream(**request)
        try:
            first = [await native.__anext__()]
        except StopAsyncIteration:
            first = []
        return _APrefetched(first, native)

    def parse(self, response: Any, spec: ModelSpec) -> Reply:
        # A non-streamed reply without a finish reason is accepted as is (PromptLayer does):
        # the body is whole JSON, unlike a stream that can end early.
        text, calls, candidate = _candidate_parts(response)
        input_tokens, output_tokens = _usage(response)
        return Reply(
            text,
            _finish_reason(response, candidate),
            input_tokens,
            output_tokens,
            _tool_calls(calls) or None,
            _dump(response),
        )

    def stream_state(self, spec: ModelSpec) -> StreamState:
        return GeminiStream(self.name)

    def classify(self, exc: BaseException) -> ProviderError | None:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            detail = str(exc.message or exc.status or type(exc).__name__)
            code = exc.code if isinstance(exc.code, int) else None
            category = category_for_status(code)
            if code == 400 and "api key" in detail.lower():
                category = "auth"  # the Gemini API answers a bad key with 400
            return ProviderError(self.name, category, detail, code)
        if isinstance(exc, errors.UnknownApiResponseError):
            return ProviderError(self.name, "server", f"unreadable response: {exc}")
        # genai lets httpx2 and aiohttp errors through unwrapped
        return transport_error(self.name, exc) or classify_google_auth_error(self.name, exc)

    def pricing_provider_id(self, spec: ModelSpec) -> str | None:
        # genai-prices has one "google" provider for the Gemini API and Vertex AI
        # ("google-vertex" resolves to it too). A template pointing at its own server is
        # not priced, as for the other providers.
        return None if spec.base_url else "google"

    def batch_api(self, spec: ModelSpec) -> BatchAPI | str:
        if self.vertex():
            return (
                "Gemini's batch prediction on Vertex AI reads and writes Cloud Storage or "
                "BigQuery, which pl_magic does not use"
            )
        if spec.base_url:
            return f"the template's own server ({spec.base_url}) has no batch API"
        from .google_batch import GeminiBatches

        base_url = env_value("GOOGLE_GEMINI_BASE_URL")
        return GeminiBatches(self, spec, base_url, self._client(spec))


def _check_config(provider: str, config: Mapping[str, Any]) -> None:
    """Fail before any call when GenerateContentConfig rejects the parameters."""
    if not config:
        return
    from google.genai import types
    from pydantic import ValidationError

    try:
        types.GenerateContentConfig(**config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ProviderError(
            provider, "bad_request", f"parameters not accepted by Gemini: {problems}"
        ) from None


class GeminiVertexRoute(GoogleProvider):
    """Gemini on Vertex AI for the ``vertexai`` provider: always Vertex, whatever
    ``GOOGLE_GENAI_USE_VERTEXAI`` says; VERTEX_AI_PROJECT_ID / VERTEX_AI_PROJECT_LOCATION
    are accepted besides GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION."""

    name = "vertexai"
    why_vertex = "Gemini on Vertex AI"
    project_vars = ("GOOGLE_CLOUD_PROJECT", "VERTEX_AI_PROJECT_ID")
    location_vars = ("GOOGLE_CLOUD_LOCATION", "VERTEX_AI_PROJECT_LOCATION")

    def vertex(self) -> bool:
        return True
