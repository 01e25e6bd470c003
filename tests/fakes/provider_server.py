"""Wire-level fake of the OpenAI, Anthropic and Gemini HTTP APIs (Vertex included) for tests.

The real SDKs talk to it over HTTP on 127.0.0.1, so tests exercise the SDKs' own request
building, SSE parsing, error mapping and retries, which in-process mocks cannot do (the SDKs use
``httpx2``, which ``respx`` and friends do not intercept). Shapes follow the provider-wire
reference notes (§3-§4): every body is the full form that the SDKs' stream accumulators need,
not the minimal one the raw parsers accept.

Routes (one catch-all, dispatched on the path suffix so any API-version prefix works), with
the ``Recorded.kind`` each gets and what decides streaming:

* ``POST …/chat/completions`` → ``openai.chat``; ``…/completions`` → ``openai.completions``;
  ``…/responses`` → ``openai.responses``; ``…/v1/messages`` → ``anthropic.messages``.
  These stream when the body says ``"stream": true``: the SDKs send
  ``Accept: application/json`` even when streaming, so Accept is never consulted.
* ``POST …/publishers/anthropic/models/{m}:rawPredict`` / ``:streamRawPredict`` →
  ``anthropic.vertex`` (model from the path; the body has none).
* ``POST /v1[beta]/models/{m}:generateContent`` / ``:streamGenerateContent`` → ``gemini``;
  the same under ``/v1beta1/…/publishers/google/models/{m}`` → ``vertex.gemini``.
* ``POST /token`` → ``token``: the OAuth endpoint a fake service account points at.
* anything else → ``unknown``, answered 404.

Media: every image and document block of a request is read in its dialect's shape (OpenAI
chat ``image_url`` / ``file`` parts, Responses ``input_image`` / ``input_file``, Anthropic
``image`` / ``document`` blocks with a base64 or URL source, Gemini ``inlineData`` /
``fileData`` parts) into :class:`MediaPart` entries on ``Recorded.media``, and counted in
``FakeProviderServer.media_counts``. A malformed one (base64 that does not decode, bytes that
do not start like the type they declare, a type the provider does not take, a file without a
name) is answered with the provider's native 400, as the real APIs do.

Structured output: a request that asks for a JSON reply gets a JSON object that conforms to
its schema (by default generated from it; ``structured_replies`` scripts it, see
:class:`FakeProviderServer`). The four wire forms it recognises:

* OpenAI chat: ``response_format`` ``{"type": "json_schema", "json_schema": {"schema": ...}}``,
  or ``{"type": "json_object"}`` (llama.cpp's server form: with a ``"schema"`` beside it);
* OpenAI Responses: ``text.format`` ``{"type": "json_schema", "schema": ...}`` or
  ``{"type": "json_object"}``;
* Anthropic (and its Vertex route): ``tool_choice`` ``{"type": "tool", "name": N}``: the answer
  is a ``tool_use`` block for tool N whose input conforms to N's ``input_schema`` (streamed as
  ``input_json_delta`` events), with ``stop_reason`` ``"tool_use"``;
* Gemini (API and Vertex): ``generationConfig.responseMimeType == "application/json"``, with
  the schema in ``responseJsonSchema`` (or ``responseSchema``); the JSON is the reply text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import json
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.provider_batches import BATCH_KINDS, BatchHTTPError, FakeBatches, classify_batch
from tests.fakes.serving import ThreadedServer

__all__ = [
    "FAULTS",
    "KINDS",
    "PROVIDER_KINDS",
    "FakeProviderServer",
    "MediaPart",
    "Recorded",
    "StructuredRequest",
    "example_for",
    "structured_request",
]

#: Fault names. Selected by ``fail_next()`` or by a model name that contains one of them.
FAULTS: tuple[str, ...] = (
    "err-401",
    "err-403",
    "err-404",
    "err-429",
    "flaky-429",
    "err-500",
    "flaky-500",
    "err-503",
    "err-529",
    "cut",
    "eof",
    "sse-error",
)

#: Request kinds that are provider calls (faults and credentials checks apply to these).
PROVIDER_KINDS: tuple[str, ...] = (
    "openai.chat",
    "openai.completions",
    "openai.responses",
    "anthropic.messages",
    "anthropic.vertex",
    "gemini",
    "vertex.gemini",
)

#: Every value ``Recorded.kind`` can take (``BATCH_KINDS``: see ``provider_batches.py``).
KINDS: tuple[str, ...] = (*PROVIDER_KINDS, *BATCH_KINDS, "token", "tokenize", "unknown")

#: HTTP status answered by each status fault. ``flaky-*`` answer it once per model name.
_STATUS_FAULTS: dict[str, int] = {
    "err-401": 401,
    "err-403": 403,
    "err-404": 404,
    "err-429": 429,
    "flaky-429": 429,
    "err-500": 500,
    "flaky-500": 500,
    "err-503": 503,
    "err-529": 529,
}

_DEFAULT_CHUNK_SIZE = 4
_HOLD_TIMEOUT_S = 10.0
_HOLD_POLL_S = 0.005
_CREATED = 1_700_000_000

# Short retry hints on every retryable error: openai and anthropic honour ``retry-after-ms``
# before their 0.5 s·2ⁿ backoff, so retry tests take milliseconds instead of seconds.
# ``retry-after: 0`` is there for clients that only read the seconds header.
_RETRY_HEADERS = {"retry-after-ms": "10", "retry-after": "0"}

_ANTHROPIC_VERTEX_RE = re.compile(
    r"/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$"
)
_GEMINI_RE = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")


class _AbortConnectionError(Exception):
    """Raised inside a response body generator so uvicorn drops the connection mid-body."""


@dataclass(frozen=True)
class MediaPart:
    """One image or document of a request, as its dialect spelled it."""

    kind: str  # "image" or "document"
    mime_type: str  # the type the request declares ("" when it declares none)
    source: str  # "base64" (bytes in the request) or "url"
    size: int | None = None  # bytes, for base64
    sha256: str | None = None  # of the bytes, for base64
    url: str | None = None  # for url
    filename: str | None = None  # OpenAI's file inputs


class MediaError(ValueError):
    """A malformed media block: answered with the provider's native 400."""


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_GEMINI_TYPES = ("image/png", "image/jpeg", "image/webp", "application/pdf")


def _sniffed(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


def _base64_part(
    kind: str, mime_type: str, encoded: Any, allowed: tuple[str, ...], web_safe: bool = False
) -> MediaPart:
    """A base64 part, checked: valid base64, a type the provider takes, bytes of that type.
    ``web_safe``: the URL-safe alphabet is accepted too (protobuf JSON's bytes, which genai
    sends)."""
    if not isinstance(encoded, str):
        raise MediaError(f"{kind} data must be a base64 string")
    if web_safe:
        encoded = encoded.replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{kind} data is not valid base64") from None
    if mime_type not in allowed:
        raise MediaError(f"{kind} media type {mime_type!r} is not supported")
    if _sniffed(data) != mime_type:
        raise MediaError(f"{kind} bytes do not match the declared media type {mime_type!r}")
    return MediaPart(kind, mime_type, "base64", len(data), hashlib.sha256(data).hexdigest())


def _data_url_part(
    kind: str, url: Any, allowed: tuple[str, ...], filename: Any = None
) -> MediaPart:
    """An OpenAI part whose URL is a data: URL (bytes) or an http(s) URL."""
    if not isinstance(url, str):
        raise MediaError(f"{kind} URL must be a string")
    if url.startswith(("http://", "https://")):
        return MediaPart(kind, "", "url", url=url)
    match = re.match(r"data:([^;,]+);base64,", url)
    if match is None:
        raise MediaError(f"{kind} URL must be an http(s) URL or a base64 data: URL")
    part = _base64_part(kind, match[1], url[match.end() :], allowed)
    return replace(part, filename=filename if isinstance(filename, str) else None)


def _openai_parts(parts: list[Any], chat: bool) -> list[MediaPart]:
    out = []
    for part in parts:
        kind = _dict(part).get("type")
        if kind == "image_url" and chat:
            out.append(
                _data_url_part("image", _dict(part.get("image_url")).get("url"), _IMAGE_TYPES)
            )
        elif kind == "file" and chat:
            file = _dict(part.get("file"))
            if not isinstance(file.get("filename"), str) or not file["filename"]:
                raise MediaError("file inputs with file_data need a filename")
            found = _data_url_part(
                "document", file.get("file_data"), ("application/pdf",), file["filename"]
            )
            if found.source != "base64":
                raise MediaError("file_data must be a base64 data: URL")
            out.append(found)
        elif kind == "input_image" and not chat:
            out.append(_data_url_part("image", part.get("image_url"), _IMAGE_TYPES))
        elif kind == "input_file" and not chat:
            if isinstance(part.get("file_url"), str):
                out.append(MediaPart("document", "", "url", url=part["file_url"]))
                continue
            if not isinstance(part.get("filename"), str) or not part["filename"]:
                raise MediaError("input_file with file_data needs a filename")
            out.append(
                _data_url_part(
                    "document", part.get("file_data"), ("application/pdf",), part["filename"]
                )
            )
    return out


def _anthropic_parts(blocks: list[Any]) -> list[MediaPart]:
    out = []
    for block in blocks:
        kind = _dict(block).get("type")
        if kind not in ("image", "document"):
            continue
        source = _dict(block.get("source"))
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            out.append(MediaPart(kind, "", "url", url=source["url"]))
            continue
        if source.get("type") != "base64":
            raise MediaError(f"{kind} source must be base64 or url")
        allowed = _IMAGE_TYPES if kind == "image" else ("application/pdf",)
        out.append(_base64_part(kind, str(source.get("media_type")), source.get("data"), allowed))
    return out


def _gemini_parts(parts: list[Any]) -> list[MediaPart]:
    out = []
    for part in parts:
        part = _dict(part)
        inline = _dict(part.get("inlineData", part.get("inline_data")))
        file_data = _dict(part.get("fileData", part.get("file_data")))
        if inline:
            mime = str(inline.get("mimeType", inline.get("mime_type")))
            kind = "document" if mime == "application/pdf" else "image"
            out.append(_base64_part(kind, mime, inline.get("data"), _GEMINI_TYPES, web_safe=True))
        elif file_data:
            mime = str(file_data.get("mimeType", file_data.get("mime_type", "")))
            uri = file_data.get("fileUri", file_data.get("file_uri"))
            kind = "document" if mime == "application/pdf" else "image"
            out.append(MediaPart(kind, mime, "url", url=str(uri)))
    return out


def media_parts(kind: str, body: dict[str, Any]) -> list[MediaPart]:
    """Every image and document of a provider request of ``kind``, checked (``MediaError``)."""
    out: list[MediaPart] = []
    if kind == "openai.chat":
        for message in _as_list(body.get("messages")):
            out += _openai_parts(_as_list(_dict(message).get("content")), chat=True)
    elif kind == "openai.responses":
        for item in _as_list(body.get("input")):
            out += _openai_parts(_as_list(_dict(item).get("content")), chat=False)
    elif kind in ("anthropic.messages", "anthropic.vertex"):
        for message in _as_list(body.get("messages")):
            out += _anthropic_parts(_as_list(_dict(message).get("content")))
    elif kind in ("gemini", "vertex.gemini"):
        for content in _as_list(body.get("contents")):
            out += _gemini_parts(_as_list(_dict(content).get("parts")))
    return out


@dataclass(frozen=True)
class Recorded:
    """One request as the fake server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body is empty or not JSON (e.g. the token form)
    raw: bytes
    kind: str  # one of KINDS
    model: str  # from the body or the URL path; "" when the request has none
    stream: bool
    received_at: float  # time.monotonic() on arrival, for measuring gaps between retries
    #: The request's images and documents (see the module docstring), in order.
    media: tuple[MediaPart, ...] = ()

    @property
    def retry_count(self) -> int | None:
        """The SDK's ``x-stainless-retry-count`` (openai/anthropic only; genai sends none)."""
        value = self.headers.get("x-stainless-retry-count")
        return None if value is None else int(value)


@dataclass(frozen=True)
class _Route:
    kind: str
    model: str
    stream: bool


@dataclass
class _Reply:
    """Everything a dialect needs to render one answer."""

    id: str
    model: str
    text: str
    input_tokens: int
    include_usage: bool  # OpenAI streams only: the ``stream_options.include_usage`` flag
    seq: Iterator[int]  # Responses API ``sequence_number`` source
    tool_name: str | None = None  # Anthropic: the forced tool whose input ``text`` is

    @property
    def tool_input(self) -> dict[str, Any] | None:
        """``text`` as a ``tool_use`` input (an object), or None when it is not one: a
        non-streamed answer then carries it as text, as a tool input cannot be anything else."""
        if self.tool_name is None:
            return None
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def output_tokens(self) -> int:
        return _count_words([self.text])

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class _Plan:
    """Knob values captured when a request arrives, so a test changing them mid-stream is safe."""

    fault: str | None
    reply_text: str | None
    chunk_size: int
    stream_chunks: tuple[str, ...] | None
    delay_s: float
    chunk_delay_s: float
    hold: threading.Event | None

    def chunks(self, last_user: str) -> list[str]:
        """The reply as text deltas; never empty, so even an empty reply has a final delta."""
        if self.stream_chunks is not None:
            chunks = list(self.stream_chunks)
        else:
            text = self.reply_text if self.reply_text is not None else "echo: " + last_user
            chunks = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        return chunks or [""]


@dataclass(frozen=True)
class StructuredRequest:
    """What a structured-output request asks for (see the module docstring)."""

    schema: dict[str, Any] | None  # None: any JSON object
    tool_name: str | None = None  # Anthropic: the forced tool that carries the reply


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def structured_request(kind: str, body: dict[str, Any]) -> StructuredRequest | None:
    """The structured output a provider request of ``kind`` asks for, or None."""
    if kind == "openai.chat":
        fmt = _dict(body.get("response_format"))
        if fmt.get("type") == "json_schema":
            schema = _dict(fmt.get("json_schema")).get("schema")
            return StructuredRequest(schema if isinstance(schema, dict) else None)
        if fmt.get("type") == "json_object":  # llama.cpp's server takes a schema beside it
            schema = fmt.get("schema")
            return StructuredRequest(schema if isinstance(schema, dict) else None)
    elif kind == "openai.responses":
        fmt = _dict(_dict(body.get("text")).get("format"))
        if fmt.get("type") in ("json_schema", "json_object"):
            schema = fmt.get("schema")
            return StructuredRequest(schema if isinstance(schema, dict) else None)
    elif kind in ("anthropic.messages", "anthropic.vertex"):
        choice = _dict(body.get("tool_choice"))
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            name = choice["name"]
            tool = next(
                (t for t in _as_list(body.get("tools")) if _dict(t).get("name") == name), {}
            )
            schema = tool.get("input_schema")
            return StructuredRequest(schema if isinstance(schema, dict) else None, name)
    elif kind in ("gemini", "vertex.gemini"):
        config = _dict(body.get("generationConfig"))
        if config.get("responseMimeType") == "application/json":
            schema = config.get("responseJsonSchema") or config.get("responseSchema")
            return StructuredRequest(schema if isinstance(schema, dict) else None)
    return None


_EXAMPLE_STRINGS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "ada@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def example_for(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small JSON value that conforms to ``schema`` (JSON Schema, or genai's OpenAPI subset
    with upper-case types): every declared property of an object (and every required one),
    ``minItems`` (at least one) items of an array, the first ``enum`` value or ``const``, the
    first branch of ``anyOf``/``oneOf``/``allOf``, local ``$ref``s, numbers within their bounds,
    strings within their lengths (a known ``format`` gets a value of that format)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 32:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
            target = _dict(target).get(part.replace("~1", "/").replace("~0", "~"))
        return example_for(_dict(target), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in _as_list(schema.get(key)) if isinstance(o, dict)]
        non_null = [o for o in options if str(o.get("type", "")).lower() != "null"]
        if options:
            return example_for((non_null or options)[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    kind = str(kind).lower() if kind is not None else None
    if kind is None:
        if "properties" in schema or "required" in schema or depth == 0:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        else:
            kind = "string"
    if kind == "object":
        properties = _dict(schema.get("properties"))
        out = {name: example_for(_dict(sub), root, depth + 1) for name, sub in properties.items()}
        for name in _as_list(schema.get("required")):
            if isinstance(name, str) and name not in out:
                out[name] = "example"
        return out
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 0))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        prefix = [p for p in _as_list(schema.get("prefixItems")) if isinstance(p, dict)]
        items = _dict(schema.get("items"))
        return [
            example_for(prefix[i] if i < len(prefix) else items, root, depth + 1)
            for i in range(count)
        ]
    if kind in ("integer", "number"):
        return _number_within(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = _EXAMPLE_STRINGS.get(str(schema.get("format")), "example")
    if isinstance(schema.get("minLength"), int) and len(text) < schema["minLength"]:
        text = text.ljust(schema["minLength"], "x")
    if isinstance(schema.get("maxLength"), int):
        text = text[: schema["maxLength"]]
    return text


def _number_within(schema: dict[str, Any], integer: bool) -> int | float:
    """1, moved inside the schema's bounds."""
    value: float = 1
    low, high = schema.get("minimum"), schema.get("maximum")
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(low, int | float) and not isinstance(low, bool):
        value = max(value, low)
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool) and value <= ex_low:
        value = ex_low + (1 if integer else 0.5)
    if isinstance(high, int | float) and not isinstance(high, bool):
        value = min(value, high)
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool) and value >= ex_high:
        value = ex_high - (1 if integer else 0.5)
    return math.ceil(value) if integer else value


def _first_half(chunks: list[str]) -> list[str]:
    """What faulty streams send before failing: about half the deltas, at least one."""
    return chunks[: max(1, len(chunks) // 2)]


def _count_words(texts: list[str]) -> int:
    """Fake token count: whitespace-separated words, at least 1 (real APIs never report 0)."""
    return max(1, sum(len(t.split()) for t in texts))


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _sse_data(obj: Any) -> bytes:
    # The space after "data:" is mandatory for genai (``data:{`` raises UnknownApiResponseError).
    return b"data: " + _json(obj) + b"\n\n"


def _sse_event(name: str, obj: Any) -> bytes:
    return f"event: {name}\n".encode() + _sse_data(obj)


def _text_of(content: Any, part_types: tuple[str, ...]) -> str:
    """Text of a message ``content`` that is either a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type", part_types[0]) in part_types
            and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_and_all(messages: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """From (role, text) pairs: the last user text and all texts."""
    user_texts = [text for role, text in messages if role == "user"]
    return (user_texts[-1] if user_texts else ""), [text for _, text in messages]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------
# Dialects: one per wire format. Each renders the same reply in its provider's native shapes.
# ---------------------------------------------------------------------------------------------


class _Dialect(ABC):
    """A provider wire format: request text extraction, bodies, SSE frames and error bodies."""

    id_prefix: str

    @abstractmethod
    def texts(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        """Return the last user text and every message text of a request body."""

    @abstractmethod
    def complete(self, r: _Reply, finished: bool) -> dict[str, Any]:
        """Non-stream body; ``finished=False`` omits the terminal marker (``eof`` fault)."""

    @abstractmethod
    def stream_start(self, r: _Reply) -> list[bytes]:
        """Frames sent before the first text delta."""

    @abstractmethod
    def stream_delta(self, r: _Reply, text: str, last: bool) -> bytes:
        """Frame carrying one text delta; ``last`` marks the final one of a complete stream."""

    @abstractmethod
    def stream_end(self, r: _Reply) -> list[bytes]:
        """Terminal frames after the final text delta."""

    @abstractmethod
    def stream_error(self, r: _Reply) -> bytes:
        """In-band error frame (``sse-error`` fault)."""

    @abstractmethod
    def error(self, status: int, message: str) -> dict[str, Any]:
        """Native error body for an HTTP error status."""


# (OpenAI type, OpenAI code, Anthropic error type, Google status) per HTTP status.
_ERROR_TABLE: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "INVALID_ARGUMENT"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "UNAUTHENTICATED"),
    403: ("invalid_request_error", "permission_denied", "permission_error", "PERMISSION_DENIED"),
    404: ("invalid_request_error", "model_not_found", "not_found_error", "NOT_FOUND"),
    409: ("invalid_request_error", None, "invalid_request_error", "ABORTED"),
    413: ("invalid_request_error", None, "request_too_large", "INVALID_ARGUMENT"),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    500: ("server_error", None, "api_error", "INTERNAL"),
    503: ("server_error", None, "api_error", "UNAVAILABLE"),
    529: ("server_error", None, "overloaded_error", "UNAVAILABLE"),
}


def _openai_error(status: int, message: str) -> dict[str, Any]:
    err_type, code, _, _ = _ERROR_TABLE[status]
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


class _ChatDialect(_Dialect):
    """OpenAI ``/chat/completions``."""

    id_prefix = "chatcmpl-fake-"
    chunk_object = "chat.completion.chunk"

    def texts(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        return _last_user_and_all(
            [
                (m.get("role", ""), _text_of(m.get("content"), ("text",)))
                for m in _as_list(body.get("messages"))
                if isinstance(m, dict)
            ]
        )

    def _usage(self, r: _Reply) -> dict[str, int]:
        return {
            "prompt_tokens": r.input_tokens,
            "completion_tokens": r.output_tokens,
            "total_tokens": r.total_tokens,
        }

    def _envelope(self, r: _Reply, obj: str, choices: list[Any]) -> dict[str, Any]:
        return {
            "id": r.id,
            "object": obj,
            "created": _CREATED,
            "model": r.model,
            "choices": choices,
        }

    def complete(self, r: _Reply, finished: bool) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": r.text, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop" if finished else None,
        }
        return {**self._envelope(r, "chat.completion", [choice]), "usage": self._usage(r)}

    def _chunk(self, r: _Reply, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse_data(self._envelope(r, self.chunk_object, [choice]))

    def stream_start(self, r: _Reply) -> list[bytes]:
        return [self._chunk(r, {"role": "assistant", "content": ""})]

    def stream_delta(self, r: _Reply, text: str, last: bool) -> bytes:
        return self._chunk(r, {"content": text})

    def stream_end(self, r: _Reply) -> list[bytes]:
        frames = [self._chunk(r, {}, "stop")]
        if r.include_usage:
            # Sent only on request, like the real API; its empty ``choices`` trips naive clients.
            frames.append(
                _sse_data({**self._envelope(r, self.chunk_object, []), "usage": self._usage(r)})
            )
        frames.append(b"data: [DONE]\n\n")
        return frames

    def stream_error(self, r: _Reply) -> bytes:
        return _sse_data(self.error(500, "The server had an error while processing your request."))

    def error(self, status: int, message: str) -> dict[str, Any]:
        return _openai_error(status, message)


class _CompletionsDialect(_ChatDialect):
    """OpenAI legacy ``/completions`` (same envelope and errors as chat, text choices)."""

    id_prefix = "cmpl-fake-"
    chunk_object = "text_completion"

    def texts(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        prompt = body.get("prompt")
        prompts = (
            [prompt]
            if isinstance(prompt, str)
            else [p for p in _as_list(prompt) if isinstance(p, str)]
        )
        return (prompts[-1] if prompts else ""), prompts

    def _choice(self, text: str, finish: str | None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}

    def complete(self, r: _Reply, finished: bool) -> dict[str, Any]:
        choice = self._choice(r.text, "stop" if finished else None)
        return {**self._envelope(r, "text_completion", [choice]), "usage": self._usage(r)}

    def stream_start(self, r: _Reply) -> list[bytes]:
        return []  # the legacy API has no role-only first chunk

    def stream_delta(self, r: _Reply, text: str, last: bool) -> bytes:
        return _sse_data(self._envelope(r, self.chunk_object, [self._choice(text, None)]))

    def stream_end(self, r: _Reply) -> list[bytes]:
        frames = [_sse_data(self._envelope(r, self.chunk_object, [self._choice("", "stop")]))]
        if r.include_usage:
            frames.append(
                _sse_data({**self._envelope(r, self.chunk_object, []), "usage": self._usage(r)})
            )
        frames.append(b"data: [DONE]\n\n")
        return frames


class _ResponsesDialect(_Dialect):
    """OpenAI Responses API: typed events with sequence numbers, no ``[DONE]``."""

    id_prefix = "resp_fake_"

    def texts(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        given = body.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else _as_list(given)
        messages = [
            (
                item.get("role", ""),
                _text_of(item.get("content"), ("input_text", "output_text", "text")),
            )
            for item in items
            if isinstance(item, dict)
        ]
        last_user, texts = _last_user_and_all(messages)
        instructions = body.get("instructions")
        return last_user, texts + ([instructions] if isinstance(instructions, str) else [])

    def _item_id(self, r: _Reply) -> str:
        return "msg_" + r.id.removeprefix(self.id_prefix)

    def _part(self, text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": []}

    def _item(self, r: _Reply, status: str, content: list[Any]) -> dict[str, Any]:
        return {
            "type": "message",
            "id": self._item_id(r),
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def _response(self, r: _Reply, status: str, output: list[Any], usage: bool) -> dict[str, Any]:
        return {
            "id": r.id,
            "object": "response",
            "created_at": _CREATED,
            "model": r.model,
            "status": status,
            "output": output,
            "usage": {
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "total_tokens": r.total_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
            if usage
            else None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }

    def complete(self, r: _Reply, finished: bool) -> dict[str, Any]:
        status = "completed" if finished else "incomplete"
        return self._response(r, status, [self._item(r, status, [self._part(r.text)])], usage=True)

    def _event(self, r: _Reply, event_type: str, **fields: Any) -> bytes:
        return _sse_event(
            event_type, {"type": event_type, "sequence_number": next(r.seq), **fields}
        )

    def _text_ref(self, r: _Reply) -> dict[str, Any]:
        return {"item_id": self._item_id(r), "output_index": 0, "content_index": 0}

    def stream_start(self, r: _Reply) -> list[bytes]:
        pending = self._response(r, "in_progress", [], usage=False)
        return [
            self._event(r, "response.created", response=pending),
            self._event(r, "response.in_progress", response=pending),
            self._event(
                r,
                "response.output_item.added",
                output_index=0,
                item=self._item(r, "in_progress", []),
            ),
            self._event(r, "response.content_part.added", **self._text_ref(r), part=self._part("")),
        ]

    def stream_delta(self, r: _Reply, text: str, last: bool) -> bytes:
        return self._event(
            r, "response.output_text.delta", **self._text_ref(r), delta=text, logprobs=[]
        )

    def stream_end(self, r: _Reply) -> list[bytes]:
        return [
            self._event(
                r, "response.output_text.done", **self._text_ref(r), text=r.text, logprobs=[]
            ),
            self._event(
                r, "response.content_part.done", **self._text_ref(r), part=self._part(r.text)
            ),
            self._event(
                r,
                "response.output_item.done",
                output_index=0,
                item=self._item(r, "completed", [self._part(r.text)]),
            ),
            self._event(r, "response.completed", response=self.complete(r, finished=True)),
        ]

    def stream_error(self, r: _Reply) -> bytes:
        return self._event(
            r, "error", code="server_error", message="The server had an error.", param=None
        )

    def error(self, status: int, message: str) -> dict[str, Any]:
        return _openai_error(status, message)


class _AnthropicDialect(_Dialect):
    """Anthropic Messages API; also the body format of Vertex ``:rawPredict``."""

    id_prefix = "msg_fake_"

    def texts(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        last_user, texts = _last_user_and_all(
            [
                (m.get("role", ""), _text_of(m.get("content"), ("text",)))
                for m in _as_list(body.get("messages"))
                if isinstance(m, dict)
            ]
        )
        system = _text_of(body.get("system"), ("text",))
        return last_user, texts + ([system] if system else [])

    def _message(
        self, r: _Reply, content: list[Any], stop: str | None, output_tokens: int
    ) -> dict[str, Any]:
        return {
            "id": r.id,
            "type": "message",
            "role": "assistant",
            "model": r.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": r.input_tokens, "output_tokens": output_tokens},
        }

    def _tool_use(self, r: _Reply, tool_input: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": "toolu_" + r.id.removeprefix(self.id_prefix),
            "name": r.tool_name,
            "input": tool_input,
        }

    def complete(self, r: _Reply, finished: bool) -> dict[str, Any]:
        tool_input = r.tool_input
        if tool_input is not None:
            content = [self._tool_use(r, tool_input)]
            return self._message(r, content, "tool_use" if finished else None, r.output_tokens)
        content = [{"type": "text", "text": r.text}]
        return self._message(r, content, "end_turn" if finished else None, r.output_tokens)

    def stream_start(self, r: _Reply) -> list[bytes]:
        # The accumulator needs usage in message_start and content_block_start before deltas.
        block = {"type": "text", "text": ""} if r.tool_name is None else self._tool_use(r, {})
        return [
            _sse_event(
                "message_start", {"type": "message_start", "message": self._message(r, [], None, 1)}
            ),
            _sse_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            _sse_event("ping", {"type": "ping"}),
        ]

    def stream_delta(self, r: _Reply, text: str, last: bool) -> bytes:
        if r.tool_name is None:
            inner = {"type": "text_delta", "text": text}
        else:
            inner = {"type": "input_json_delta", "partial_json": text}
        delta = {"type": "content_block_delta", "index": 0, "delta": inner}
        return _sse_event("content_block_delta", delta)

    def stream_end(self, r: _Reply) -> list[bytes]:
        stop = "end_turn" if r.tool_name is None else "tool_use"
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": r.output_tokens},
        }
        return [
            _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse_event("message_delta", message_delta),
            _sse_event("message_stop", {"type": "message_stop"}),
        ]

    def stream_error(self, r: _Reply) -> bytes:
        return _sse_event(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )

    def error(self, status: int, message: str) -> dict[str, Any]:
        _, _, err_type, _ = _ERROR_TABLE[status]
        return {"type": "error", "error": {"type": err_type, "message": message}}


class _GeminiDialect(_Dialect):
    """Gemini ``generateContent`` (Gemini API and Vertex share the bodies)."""

    id_prefix = "fake-resp-"

    def texts(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        last_user, texts = _last_user_and_all(
            [
                # genai always sends a role, but the API defaults a missing one to "user".
                (c.get("role") or "user", _text_of(c.get("parts"), ("text",)))
                for c in _as_list(body.get("contents"))
                if isinstance(c, dict)
            ]
        )
        system = body.get("systemInstruction")
        system_text = _text_of(system.get("parts"), ("text",)) if isinstance(system, dict) else ""
        return last_user, texts + ([system_text] if system_text else [])

    def _response(self, r: _Reply, text: str, finished: bool, usage: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": [{"text": text}]},
            "index": 0,
        }
        if finished:
            candidate["finishReason"] = "STOP"
        body: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": r.model,
            "responseId": r.id,
        }
        if usage:
            body["usageMetadata"] = {
                "promptTokenCount": r.input_tokens,
                "candidatesTokenCount": r.output_tokens,
                "totalTokenCount": r.total_tokens,
            }
        return body

    def complete(self, r: _Reply, finished: bool) -> dict[str, Any]:
        return self._response(r, r.text, finished, usage=True)

    def stream_start(self, r: _Reply) -> list[bytes]:
        return []

    def stream_delta(self, r: _Reply, text: str, last: bool) -> bytes:
        # Gemini has no separate terminal event: the last chunk carries finishReason and usage.
        return _sse_data(self._response(r, text, finished=last, usage=last))

    def stream_end(self, r: _Reply) -> list[bytes]:
        return []

    def stream_error(self, r: _Reply) -> bytes:
        return _sse_data(self.error(500, "Internal error encountered."))

    def error(self, status: int, message: str) -> dict[str, Any]:
        _, _, _, google_status = _ERROR_TABLE[status]
        return {"error": {"code": status, "message": message, "status": google_status}}


_DIALECTS: dict[str, _Dialect] = {
    "openai.chat": _ChatDialect(),
    "openai.completions": _CompletionsDialect(),
    "openai.responses": _ResponsesDialect(),
    "anthropic.messages": _AnthropicDialect(),
    "anthropic.vertex": _AnthropicDialect(),
    "gemini": _GeminiDialect(),
    "vertex.gemini": _GeminiDialect(),
}

# Credential headers each kind accepts ("authorization" means a non-empty ``Bearer`` token).
# anthropic 2.x sends ``Authorization: Bearer``, older SDKs ``x-api-key``; Vertex express mode
# sends ``x-goog-api-key`` where Vertex proper sends an OAuth bearer token.
_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "openai.chat": ("authorization",),
    "openai.completions": ("authorization",),
    "openai.responses": ("authorization",),
    "anthropic.messages": ("authorization", "x-api-key"),
    "anthropic.vertex": ("authorization",),
    "gemini": ("x-goog-api-key", "authorization"),
    "vertex.gemini": ("authorization", "x-goog-api-key"),
    "openai.files": ("authorization",),
    "openai.batches": ("authorization",),
    "anthropic.batches": ("authorization", "x-api-key"),
    "gemini.batches": ("x-goog-api-key", "authorization"),
}

# The live kind whose native error body each batch kind answers with.
_BATCH_ERROR_KIND: dict[str, str] = {
    "openai.files": "openai.chat",
    "openai.batches": "openai.chat",
    "anthropic.batches": "anthropic.messages",
    "gemini.batches": "gemini",
}


def _has_credentials(kind: str, headers: dict[str, str]) -> bool:
    for name in _CREDENTIALS[kind]:
        value = headers.get(name, "")
        if name == "authorization" and value.startswith("Bearer ") and value[7:].strip():
            return True
        if name != "authorization" and value:
            return True
    return False


def _classify(method: str, path: str, body: Any, headers: Mapping[str, str]) -> _Route:
    """Map a request to its kind, model and stream flag (``unknown`` when nothing matches)."""
    model = str(body.get("model", "")) if isinstance(body, dict) else ""
    body_stream = isinstance(body, dict) and body.get("stream") is True
    if batch := classify_batch(method, path, headers):
        return _Route(batch[0], batch[1], False)
    if method == "POST":
        if match := _ANTHROPIC_VERTEX_RE.search(path):
            return _Route("anthropic.vertex", match[1], match[2] == "streamRawPredict")
        if match := _GEMINI_RE.search(path):
            kind = "vertex.gemini" if "/publishers/google/" in path else "gemini"
            return _Route(kind, match[1], match[2] == "streamGenerateContent")
        for suffix, kind in (
            ("/chat/completions", "openai.chat"),
            ("/completions", "openai.completions"),
            ("/responses", "openai.responses"),
            ("/v1/messages", "anthropic.messages"),
        ):
            if path.endswith(suffix):
                return _Route(kind, model, body_stream)
        if path == "/token":
            return _Route("token", "", False)
        if path in ("/extras/tokenize/count", "/tokenize"):
            return _Route("tokenize", model, False)
    return _Route("unknown", model, False)


# ---------------------------------------------------------------------------------------------
# Tool calls: a request that offers tools gets the next ``tool_call_replies`` entry as the
# model's tool calls, in its dialect's shapes (streamed or not). Kept apart from the dialects
# above: nothing there changes for the requests that get text.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FakeCall:
    """One scripted tool call: ``arguments`` is the JSON text the model "wrote"."""

    id: str
    name: str
    arguments: str

    @property
    def input(self) -> Any:
        """The arguments as a value (Anthropic's and Gemini's wires carry objects)."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return {}


def offers_tools(kind: str, body: dict[str, Any]) -> bool:
    """True when a provider request of ``kind`` offers function tools."""
    tools = _as_list(body.get("tools"))
    if kind in ("gemini", "vertex.gemini"):
        return any(
            _dict(t).get("functionDeclarations") or _dict(t).get("function_declarations")
            for t in tools
        )
    return bool(tools)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _tool_call_body(kind: str, r: _Reply, calls: list[_FakeCall]) -> dict[str, Any]:
    """The non-streamed answer carrying ``calls``."""
    if kind == "openai.chat":
        chat = _DIALECTS[kind]
        assert isinstance(chat, _ChatDialect)
        native = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": native}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
        return {**chat._envelope(r, "chat.completion", [choice]), "usage": chat._usage(r)}
    if kind == "openai.responses":
        responses = _DIALECTS[kind]
        assert isinstance(responses, _ResponsesDialect)
        items = [_responses_call(c, i, "completed") for i, c in enumerate(calls)]
        return responses._response(r, "completed", items, usage=True)
    if kind.startswith("anthropic."):
        anthropic = _DIALECTS[kind]
        assert isinstance(anthropic, _AnthropicDialect)
        blocks = [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in calls]
        return anthropic._message(r, blocks, "tool_use", r.output_tokens)
    parts = [{"functionCall": {"name": c.name, "args": c.input}} for c in calls]
    return _gemini_body(r, parts, finished=True)


def _responses_call(
    call: _FakeCall, index: int, status: str, arguments: str = ""
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_fake_{index}",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else arguments,
        "status": status,
    }


def _gemini_body(r: _Reply, parts: list[Any], finished: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": r.model, "responseId": r.id}
    if finished:
        candidate["finishReason"] = "STOP"
        body["usageMetadata"] = {
            "promptTokenCount": r.input_tokens,
            "candidatesTokenCount": 1,
            "totalTokenCount": r.input_tokens + 1,
        }
    return body


def _tool_call_frames(kind: str, r: _Reply, calls: list[_FakeCall], size: int) -> list[bytes]:
    """The stream carrying ``calls``: their arguments in ``size``-character pieces (Gemini
    sends each call whole, as it does)."""
    frames: list[bytes] = []
    if kind == "openai.chat":
        chat = _DIALECTS[kind]
        assert isinstance(chat, _ChatDialect)
        frames += chat.stream_start(r)
        for i, c in enumerate(calls):
            head = {"index": i, "id": c.id, "type": "function"}
            frames.append(
                chat._chunk(
                    r, {"tool_calls": [{**head, "function": {"name": c.name, "arguments": ""}}]}
                )
            )
            for piece in _pieces(c.arguments, size):
                delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                frames.append(chat._chunk(r, delta))
        frames.append(chat._chunk(r, {}, "tool_calls"))
        if r.include_usage:
            frames.append(
                _sse_data({**chat._envelope(r, chat.chunk_object, []), "usage": chat._usage(r)})
            )
        frames.append(b"data: [DONE]\n\n")
    elif kind == "openai.responses":
        responses = _DIALECTS[kind]
        assert isinstance(responses, _ResponsesDialect)
        pending = responses._response(r, "in_progress", [], usage=False)
        frames += [
            responses._event(r, "response.created", response=pending),
            responses._event(r, "response.in_progress", response=pending),
        ]
        for i, c in enumerate(calls):
            ref = {"item_id": f"fc_fake_{i}", "output_index": i}
            item = _responses_call(c, i, "in_progress")
            frames.append(
                responses._event(r, "response.output_item.added", output_index=i, item=item)
            )
            for piece in _pieces(c.arguments, size):
                frames.append(
                    responses._event(
                        r, "response.function_call_arguments.delta", **ref, delta=piece
                    )
                )
            frames.append(
                responses._event(
                    r,
                    "response.function_call_arguments.done",
                    **ref,
                    name=c.name,
                    arguments=c.arguments,
                )
            )
            done = _responses_call(c, i, "completed")
            frames.append(
                responses._event(r, "response.output_item.done", output_index=i, item=done)
            )
        frames.append(
            responses._event(r, "response.completed", response=_tool_call_body(kind, r, calls))
        )
    elif kind.startswith("anthropic."):
        anthropic = _DIALECTS[kind]
        assert isinstance(anthropic, _AnthropicDialect)
        start = {"type": "message_start", "message": anthropic._message(r, [], None, 1)}
        frames.append(_sse_event("message_start", start))
        for i, c in enumerate(calls):
            block = {"type": "tool_use", "id": c.id, "name": c.name, "input": {}}
            frames.append(
                _sse_event(
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": block},
                )
            )
            for piece in _pieces(c.arguments, size):
                delta = {"type": "input_json_delta", "partial_json": piece}
                frames.append(
                    _sse_event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": i, "delta": delta},
                    )
                )
            frames.append(
                _sse_event("content_block_stop", {"type": "content_block_stop", "index": i})
            )
        end = {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": r.output_tokens},
        }
        frames += [
            _sse_event("message_delta", end),
            _sse_event("message_stop", {"type": "message_stop"}),
        ]
    else:
        for i, c in enumerate(calls):
            part = {"functionCall": {"name": c.name, "args": c.input}}
            frames.append(_sse_data(_gemini_body(r, [part], finished=i == len(calls) - 1)))
    return frames


class FakeProviderServer(ThreadedServer):
    """Fake OpenAI/Anthropic/Gemini/Vertex server on 127.0.0.1, run by uvicorn in a daemon thread.

    Behaviour knobs (plain attributes, read when a request arrives; ``reset()`` restores them):

    * ``reply_text``: reply for every following request; ``None`` echoes
      ``"echo: " + <last user message text>``.
    * ``chunk_size``: characters per streamed text delta (default 4).
    * ``stream_chunks``: exact list of text deltas; their concatenation is then the reply
      text of streamed *and* non-streamed requests.
    * ``delay_s``: sleep before answering each provider request (not ``/token``).
    * ``chunk_delay_s``: sleep between streamed text deltas.
    * ``echo_headers``: status faults' error bodies repeat the request's headers, keys
      included (as some gateways' 401 bodies do).
    * ``stream_usage``: False makes OpenAI streams end without usage even when
      ``stream_options.include_usage`` asks for it, as llama-cpp-python's server does; its
      tokenizer endpoints (``/extras/tokenize/count``, llama.cpp's ``/tokenize``) count words.
    * ``hold_before_last``: a ``threading.Event``; complete streams stop before their final
      text delta until it is set (10 s at most). ``final_sent_count`` counts streams whose
      final delta went out, so a test can prove the client saw chunks before the end.
    * ``structured_replies``: a list consumed in order (one entry per request) by
      structured-output requests only (see the module docstring for the four wire forms;
      other requests neither use nor consume it). A dict entry is sent as its JSON
      (``json.dumps`` with default separators); a str entry is sent raw as the reply text,
      so a test can send invalid JSON. When the list is empty the reply is generated from the
      request's schema (:func:`example_for`; ``{}`` when the request has no schema). A
      structured reply ignores ``reply_text`` and ``stream_chunks``: it is streamed in
      ``chunk_size`` pieces. Anthropic carries it as the forced tool's ``tool_use`` input
      (streamed as ``input_json_delta``); a non-streamed Anthropic reply whose entry is not
      a JSON object is sent as a text block instead (a tool input is always an object).
      Faults apply to structured replies as to any other; an entry is consumed only by a
      request that gets a body (not by a status fault or a 401 for missing credentials, so
      a retried request gets the entry), and ``reset()`` empties the list.
    * ``tool_call_replies``: a list consumed in order (one entry per request) by requests
      that offer function tools (``tools``; Gemini: ``functionDeclarations``) and do not ask
      for structured output. An entry is a list of calls ``{"name": ..., "arguments": {...}}``
      (a str ``arguments`` is sent raw, so a test can send arguments that are not JSON); the
      answer is those tool calls in the dialect's shapes (OpenAI chat ``tool_calls`` with
      finish reason ``tool_calls``, Responses ``function_call`` items, Anthropic ``tool_use``
      blocks with stop reason ``tool_use``, Gemini ``functionCall`` parts), streamed when
      asked (arguments in ``chunk_size`` pieces; Gemini sends each call whole). An empty
      list, or an empty entry, answers text as usual. Faults other than status faults do not
      apply to these answers.

    Faults (see ``FAULTS``), from ``fail_next()`` first, else from the model name containing a
    fault name (``"gpt-x-err-401"``, ``"flaky-429-model"``):

    * ``err-NNN``: that status with the provider's native error body, every time.
    * ``flaky-429`` / ``flaky-500``: that status once per model name since ``reset()``.
    * ``cut``: about half the text deltas, then the connection is dropped (non-stream: half
      the JSON body, then dropped).
    * ``eof``: about half the text deltas, then a clean end with no terminal event
      (non-stream: a well-formed body with half the text and no finish/stop reason).
    * ``sse-error``: some text deltas, then the provider's in-band error event
      (non-stream: a native 500).

    429 and 5xx answers carry ``retry-after-ms: 10`` and ``retry-after: 0``; Anthropic errors
    carry a ``request-id`` header. A provider request without credentials gets a native 401.

    Batch APIs (OpenAI files + batches, Anthropic Message Batches, Gemini API batch mode):
    ``batches`` is a :class:`~tests.fakes.provider_batches.FakeBatches` holding the jobs, the
    uploaded files, the batch knobs and the record of batch calls; ``reset()`` resets it. Each
    request of a batch is answered by the same reply machinery as a live non-streamed call.
    Credentials are checked as on the live routes, and queued status faults (``fail_next``
    with ``err-*``/``flaky-*``) apply to batch API calls too; a queued stream fault is left
    for the next live call.

    Rate limit (:meth:`_rate_limited`): ``rate_limit_rpm`` (None: off) admits that many
    provider requests a minute per provider route (OpenAI's three APIs share one; Anthropic,
    Claude on Vertex, Gemini and Gemini on Vertex one each) from a token bucket holding
    ``rate_limit_burst`` requests (default: one second's worth, at least 1). A request over
    the limit gets the route's native 429 at once with ``retry-after`` (whole seconds, rounded
    up), ``retry-after-ms`` (the time until a request is admitted again) and the provider's
    rate-limit headers (Gemini's: a ``google.rpc.RetryInfo`` in the body); admitted answers
    carry the rate-limit headers too (OpenAI's ``x-ratelimit-*-requests``, Anthropic's
    ``anthropic-ratelimit-requests-*``, ``reset`` being when the bucket is full again).
    ``rate_limited_count`` counts the 429s it sent.
    """

    _name = "fake-provider"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.final_sent_count = 0
        #: Images and documents received since ``reset()``, by kind and source
        #: (``{"image/base64": 2, "document/url": 1}``).
        self.media_counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._fault_queue: deque[str] = deque()
        self._flaky_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._buckets: dict[str, tuple[float, float]] = {}  # route → (tokens, when)
        self.rate_limited_count = 0
        super().__init__()
        self.batches = FakeBatches(_LiveAnswers(self))
        self._app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE"])]
        )
        self._set_default_knobs()

    def _set_default_knobs(self) -> None:
        self.reply_text: str | None = None
        self.chunk_size: int = _DEFAULT_CHUNK_SIZE
        self.stream_chunks: list[str] | None = None
        self.delay_s: float = 0.0
        self.chunk_delay_s: float = 0.0
        self.hold_before_last: threading.Event | None = None
        self.echo_headers: bool = False
        self.structured_replies: list[dict[str, Any] | str] = []
        self.stream_usage: bool = True
        self.tool_call_replies: list[list[dict[str, Any]]] = []
        self.rate_limit_rpm: float | None = None
        self.rate_limit_burst: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    # -- URLs ----------------------------------------------------------------------------------

    @property
    def openai_base_url(self) -> str:
        """For ``openai.OpenAI(base_url=...)``, which expects the ``/v1`` prefix."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``anthropic.Anthropic(base_url=...)``; the SDK adds ``/v1`` itself."""
        return self.url

    @property
    def anthropic_vertex_base_url(self) -> str:
        """For ``anthropic.AnthropicVertex(base_url=...)``, which expects ``/v1``."""
        return self.url + "/v1"

    @property
    def gemini_base_url(self) -> str:
        """For ``genai.Client(http_options={"base_url": ...})``; host only."""
        return self.url

    @property
    def vertex_base_url(self) -> str:
        """For ``genai.Client(vertexai=True, http_options={"base_url": ...})``; host only."""
        return self.url

    @property
    def token_uri(self) -> str:
        """OAuth token endpoint to put in a fake service-account JSON."""
        return self.url + "/token"

    # -- test controls -------------------------------------------------------------------------

    def reset(self) -> None:
        """Clear the request log, fault queue, flaky memory and counters; restore the knobs."""
        with self._lock:
            self.requests.clear()
            self.media_counts.clear()
            self._fault_queue.clear()
            self._flaky_seen.clear()
            self._buckets.clear()
            self.rate_limited_count = 0
            self.final_sent_count = 0
        self._set_default_knobs()
        self.batches.reset()

    def fail_next(self, fault: str, times: int = 1) -> None:
        """Give the next ``times`` provider requests ``fault`` (queued faults win over model names).

        A queued ``flaky-*`` behaves like its ``err-*`` twin: each queue entry is used once.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")
        with self._lock:
            self._fault_queue.extend([fault] * times)

    def requests_for(self, kind: str) -> list[Recorded]:
        """Recorded requests of one kind, oldest first."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    # -- request handling ----------------------------------------------------------------------

    def _record(
        self,
        request: Request,
        raw: bytes,
        body: Any,
        route: _Route,
        media: tuple[MediaPart, ...] = (),
    ) -> Recorded:
        rec = Recorded(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers.items()),  # Starlette lower-cases the names
            body=body,
            raw=raw,
            kind=route.kind,
            model=route.model,
            stream=route.stream,
            received_at=time.monotonic(),
            media=media,
        )
        with self._lock:
            self.requests.append(rec)
            for part in media:
                key = f"{part.kind}/{part.source}"
                self.media_counts[key] = self.media_counts.get(key, 0) + 1
        return rec

    def _plan(self, model: str) -> _Plan:
        with self._lock:
            fault = self._fault_queue.popleft() if self._fault_queue else None
            if fault is None:
                fault = next((name for name in FAULTS if name in model), None)
                if fault is not None and fault.startswith("flaky-"):
                    if model in self._flaky_seen:
                        fault = None
                    else:
                        self._flaky_seen.add(model)
        return replace(self._knobs(), fault=fault)

    def _knobs(self) -> _Plan:
        """The reply knobs as they are now, without a fault."""
        return _Plan(
            fault=None,
            reply_text=self.reply_text,
            chunk_size=max(1, self.chunk_size),
            stream_chunks=None if self.stream_chunks is None else tuple(self.stream_chunks),
            delay_s=self.delay_s,
            chunk_delay_s=self.chunk_delay_s,
            hold=self.hold_before_last,
        )

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        route = _classify(request.method, request.url.path, body, request.headers)
        media_error = None
        parts: list[MediaPart] = []
        if route.kind in PROVIDER_KINDS and isinstance(body, dict):
            try:
                parts = media_parts(route.kind, body)
            except MediaError as exc:
                media_error = str(exc)
        rec = self._record(request, raw, body, route, tuple(parts))
        if media_error is not None:
            return self._error(route.kind, 400, f"Invalid media: {media_error}")
        if route.kind == "token":
            return JSONResponse(
                {"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"}
            )
        if route.kind == "tokenize":
            return self._tokenize(rec)
        if route.kind in BATCH_KINDS:
            return self._batch(route, rec)
        if route.kind == "unknown":
            return JSONResponse(
                {
                    "error": {
                        "code": 404,
                        "message": f"fake provider: no route for {request.method} {rec.path}",
                    }
                },
                status_code=404,
            )
        return await self._provider(route, rec)

    def _tokenize(self, rec: Recorded) -> JSONResponse:
        """llama-cpp-python's ``/extras/tokenize/count`` or llama.cpp's ``/tokenize``, counting
        words as the fake's usage does."""
        body = rec.body if isinstance(rec.body, dict) else {}
        if rec.path == "/tokenize":
            words = str(body.get("content", "")).split()
            return JSONResponse({"tokens": list(range(len(words)))})
        return JSONResponse({"count": len(str(body.get("input", "")).split())})

    def _error(self, kind: str, status: int, message: str) -> JSONResponse:
        body = _DIALECTS[kind].error(status, message)
        headers = dict(_RETRY_HEADERS) if status == 429 or status >= 500 else {}
        if kind.startswith("anthropic."):
            request_id = f"req_fake_{next(self._ids)}"
            body["request_id"] = request_id
            headers["request-id"] = request_id
        return JSONResponse(body, status_code=status, headers=headers)

    def _batch(self, route: _Route, rec: Recorded) -> Response:
        """A batch API call: queued status fault, credentials, then ``self.batches``."""
        error_kind = _BATCH_ERROR_KIND[route.kind]
        with self._lock:
            head = self._fault_queue[0] if self._fault_queue else None
            fault = self._fault_queue.popleft() if head in _STATUS_FAULTS else None
        if fault is not None:
            message = f"Fake provider fault {fault} for {rec.method} {rec.path}."
            return self._error(error_kind, _STATUS_FAULTS[fault], message)
        if not _has_credentials(route.kind, rec.headers):
            return self._error(error_kind, 401, "Missing credentials.")
        try:
            return self.batches.handle(route.kind, rec, self.url)
        except BatchHTTPError as exc:
            return self._error(error_kind, exc.status, exc.message)

    def _reply(
        self, kind: str, model: str, body: dict[str, Any], plan: _Plan
    ) -> tuple[_Dialect, _Reply, list[str]]:
        """The answer to one request body: its dialect, the reply and its text deltas."""
        dialect = _DIALECTS[kind]
        last_user, all_texts = dialect.texts(body)
        chunks = plan.chunks(last_user)
        structured = structured_request(kind, body)
        if structured is not None:
            text = self._structured_text(structured)
            size = plan.chunk_size
            chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        stream_options = body.get("stream_options")
        reply = _Reply(
            id=f"{dialect.id_prefix}{next(self._ids)}",
            model=model,
            text="".join(chunks),
            input_tokens=_count_words(all_texts),
            include_usage=self.stream_usage
            and isinstance(stream_options, dict)
            and stream_options.get("include_usage") is True,
            seq=itertools.count(),
            tool_name=structured.tool_name if structured is not None else None,
        )
        return dialect, reply, chunks

    async def _provider(self, route: _Route, rec: Recorded) -> Response:
        if self.rate_limit_rpm is None or not _has_credentials(route.kind, rec.headers):
            return await self._answer(route, rec)
        refused, headers = self._rate_limited(route)
        if refused is not None:
            return refused
        response = await self._answer(route, rec)
        response.headers.update(headers)
        return response

    def _rate_limited(self, route: _Route) -> tuple[Response | None, dict[str, str]]:
        """Take a token from the route's bucket: (a native 429, or None, and the rate-limit
        headers for the answer)."""
        family = "openai" if route.kind.startswith("openai.") else route.kind
        rpm = float(self.rate_limit_rpm or 0)
        rate = max(rpm, 1e-9) / 60.0
        capacity = max(1.0, float(self.rate_limit_burst or rate))
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(family, (capacity, now))
            tokens = min(capacity, tokens + (now - then) * rate)
            admitted = tokens >= 1.0
            if admitted:
                tokens -= 1.0
            else:
                self.rate_limited_count += 1
            self._buckets[family] = (tokens, now)
        wait_s = 0.0 if admitted else (1.0 - tokens) / rate
        full_in_s = (capacity - tokens) / rate
        headers: dict[str, str] = {}
        if family == "openai":
            headers = {
                "x-ratelimit-limit-requests": str(int(rpm)),
                "x-ratelimit-remaining-requests": str(int(tokens)),
                "x-ratelimit-reset-requests": f"{math.ceil(full_in_s * 1000)}ms",
            }
        elif family.startswith("anthropic."):
            reset = time.time() + full_in_s
            headers = {
                "anthropic-ratelimit-requests-limit": str(int(rpm)),
                "anthropic-ratelimit-requests-remaining": str(int(tokens)),
                "anthropic-ratelimit-requests-reset": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(reset))
                ),
            }
        if admitted:
            return None, headers
        body = _DIALECTS[route.kind].error(429, f"Fake provider: over {rpm:g} requests a minute.")
        if route.kind in ("gemini", "vertex.gemini"):
            retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo"}
            body["error"]["details"] = [{**retry_info, "retryDelay": f"{wait_s:.3f}s"}]
        headers["retry-after"] = str(math.ceil(wait_s))
        headers["retry-after-ms"] = str(math.ceil(wait_s * 1000))
        if route.kind.startswith("anthropic."):
            headers["request-id"] = f"req_fake_{next(self._ids)}"
            body["request_id"] = headers["request-id"]
        return JSONResponse(body, status_code=429, headers=headers), headers

    async def _answer(self, route: _Route, rec: Recorded) -> Response:
        plan = self._plan(route.model)
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if not _has_credentials(route.kind, rec.headers):
            return self._error(route.kind, 401, "Missing credentials.")
        if not isinstance(rec.body, dict):
            return self._error(route.kind, 400, "Request body must be a JSON object.")
        status = _STATUS_FAULTS.get(plan.fault or "")
        if status is not None:
            message = f"Fake provider fault {plan.fault} for model {route.model!r}."
            if self.echo_headers:  # as a gateway that echoes the request in its error body
                message += f" Request headers: {json.dumps(rec.headers)}"
            return self._error(route.kind, status, message)
        if plan.fault == "sse-error" and not route.stream:
            return self._error(route.kind, 500, "Fake provider fault sse-error (non-stream).")

        dialect, reply, chunks = self._reply(route.kind, route.model, rec.body, plan)
        structured = structured_request(route.kind, rec.body)
        calls = self._tool_calls(route.kind, rec.body) if structured is None else None
        if calls:
            if not route.stream:
                return JSONResponse(_tool_call_body(route.kind, reply, calls))
            frames = _tool_call_frames(route.kind, reply, calls, plan.chunk_size)
            return StreamingResponse(_frames(frames), media_type="text/event-stream")

        if route.stream:
            return StreamingResponse(
                self._stream(dialect, reply, chunks, plan), media_type="text/event-stream"
            )
        if plan.fault == "cut":
            return StreamingResponse(
                _cut_body(_json(dialect.complete(reply, True))), media_type="application/json"
            )
        if plan.fault == "eof":
            truncated = replace(reply, text="".join(_first_half(chunks)))
            return JSONResponse(dialect.complete(truncated, finished=False))
        return JSONResponse(dialect.complete(reply, finished=True))

    def _structured_text(self, structured: StructuredRequest) -> str:
        """The next scripted structured reply, or one generated from the request's schema."""
        with self._lock:
            scripted = self.structured_replies.pop(0) if self.structured_replies else None
        if isinstance(scripted, str):
            return scripted
        if scripted is None:
            scripted = example_for(structured.schema) if structured.schema is not None else {}
        return json.dumps(scripted)

    def _tool_calls(self, kind: str, body: dict[str, Any]) -> list[_FakeCall] | None:
        """The next scripted tool calls, for a request that offers tools; None otherwise."""
        if not offers_tools(kind, body):
            return None
        with self._lock:
            entry = self.tool_call_replies.pop(0) if self.tool_call_replies else None
        if not entry:
            return None
        prefix = "toolu_fake_" if kind.startswith("anthropic.") else "call_fake_"
        return [
            _FakeCall(
                f"{prefix}{next(self._ids)}",
                str(call["name"]),
                args if isinstance(args := call.get("arguments", {}), str) else json.dumps(args),
            )
            for call in entry
        ]

    async def _stream(
        self, dialect: _Dialect, r: _Reply, chunks: list[str], plan: _Plan
    ) -> AsyncIterator[bytes]:
        for frame in dialect.stream_start(r):
            yield frame
        faulty = plan.fault in ("cut", "eof", "sse-error")
        sent = _first_half(chunks) if faulty else chunks
        for i, text in enumerate(sent):
            last = not faulty and i == len(sent) - 1
            if i and plan.chunk_delay_s:
                await asyncio.sleep(plan.chunk_delay_s)
            if last and plan.hold is not None:
                await _wait_for(plan.hold)
            yield dialect.stream_delta(r, text, last)
        if plan.fault == "cut":
            raise _AbortConnectionError("fault 'cut': dropping the connection mid-stream")
        if plan.fault == "sse-error":
            yield dialect.stream_error(r)
        if faulty:
            return
        with self._lock:
            self.final_sent_count += 1
        for frame in dialect.stream_end(r):
            yield frame


async def _frames(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


async def _wait_for(gate: threading.Event) -> None:
    """Poll a thread event without blocking the event loop (other requests keep being served)."""
    deadline = time.monotonic() + _HOLD_TIMEOUT_S
    while not gate.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(_HOLD_POLL_S)


async def _cut_body(payload: bytes) -> AsyncIterator[bytes]:
    """First half of a body, then an abort: uvicorn closes the socket mid chunked transfer."""
    yield payload[: len(payload) // 2]
    raise _AbortConnectionError("fault 'cut': dropping the connection mid-body")


class _LiveAnswers:
    """What ``FakeBatches`` borrows from the live routes, so a batch request gets exactly the
    answer the live non-streamed call would get (see ``provider_batches.LiveAnswers``)."""

    def __init__(self, server: FakeProviderServer) -> None:
        self._server = server

    def plan(self) -> _Plan:
        """The reply knobs now (a batch captures them when it is created)."""
        return self._server._knobs()

    def texts(self, kind: str, body: dict[str, Any]) -> list[str]:
        """Every message text of a request body of live ``kind``."""
        return _DIALECTS[kind].texts(body)[1]

    def fault_status(self, model: str) -> int | None:
        """The status an ``err-NNN`` fault in the model name answers with, else None."""
        return next(
            (
                status
                for name, status in _STATUS_FAULTS.items()
                if name.startswith("err-") and name in model
            ),
            None,
        )

    def reply(self, kind: str, model: str, body: dict[str, Any], plan: Any) -> dict[str, Any]:
        """The body the live non-streamed call of ``kind`` answers with (status 200)."""
        dialect, reply, _ = self._server._reply(kind, model, body, plan)
        return dialect.complete(reply, finished=True)

    def error(self, kind: str, status: int, message: str) -> dict[str, Any]:
        """The native error body of live ``kind`` (an unknown status answers as a 500)."""
        return _DIALECTS[kind].error(status if status in _ERROR_TABLE else 500, message)
