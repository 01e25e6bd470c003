"""The interface every provider family implements, and what they share.

A provider turns a rendered PromptLayer template and a :class:`ModelSpec` into the SDK's
native request, calls the official SDK (sync, async, streaming — the SDK's own retries
apply), and turns the native response or stream back into a :class:`Reply`.
The engine never touches an SDK directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.blueprint import ModelSpec
from ..core.errors import ProviderError
from ..core.media import MediaLimits
from . import _sdk_errors, traffic

# Canonical parameter names. Each provider maps them to its own names; a parameter with
# no canonical name is provider-specific and is dropped when the provider changes.
CANONICAL_PARAMETERS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",  # structured output: every provider has a form of it (_structured.py)
)


@dataclass
class Reply:
    """A provider's answer, normalized."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    raw: Any = None  # JSON-able dump of the native response (assembled, for streams)


class StreamState(ABC):
    """Accumulates a native stream: text deltas in, a :class:`Reply` out."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.complete = False  # set when the provider's terminal marker arrives
        self._joined = ""  # "".join(parts[:_joined_count]), kept to join only what is new
        self._joined_count = 0

    @property
    def text(self) -> str:
        """The text so far (parts are only appended: joined incrementally, not O(n) a chunk)."""
        count = len(self.parts)
        if count != self._joined_count:
            self._joined += "".join(self.parts[self._joined_count :])
            self._joined_count = count
        return self._joined

    @abstractmethod
    def feed(self, chunk: Any) -> str:
        """Take one native chunk; return the text it adds ('' if none)."""

    def tool_calls_so_far(self) -> list[dict[str, Any]] | None:
        """The tool calls the stream carried so far, in PromptLayer's (OpenAI-chat) shape with
        their arguments as far as they came (a copy: later chunks do not change it); None
        when there are none (most streams)."""
        return None

    @abstractmethod
    def finish(self) -> Reply:
        """The complete reply. Raises :class:`StreamTruncatedError` without a terminal marker."""


@dataclass
class ParameterMap:
    """How a provider names the canonical parameters (canonical -> native)."""

    names: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)  # other names -> canonical
    required: dict[str, Any] = field(default_factory=dict)  # native name -> default
    keep: frozenset[str] = frozenset()  # native names accepted as is besides ``names``

    def adapt(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Rename known parameters to this provider's names; drop those it lacks.

        Provider-specific parameters (no canonical name) pass through untouched, so a
        template can use anything its own SDK accepts.
        """
        native_names = set(self.names.values()) | self.keep
        out: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in params.items():
            if key in native_names:
                out[key] = value
            elif key in self.aliases or key in CANONICAL_PARAMETERS:
                canonical = self.aliases.get(key, key)
                if canonical in self.names:
                    out.setdefault(self.names[canonical], _convert_stop(canonical, value))
                else:
                    dropped.append(key)
            else:
                out[key] = value
        return out, dropped

    def to_canonical(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Split native params into canonical ones and the names with no equivalent."""
        reverse = {native: canon for canon, native in self.names.items()} | self.aliases
        canonical, unknown = {}, []
        for key, value in params.items():
            if key in reverse:
                canonical[reverse[key]] = value
            else:
                unknown.append(key)
        return canonical, unknown

    def from_canonical(self, canonical: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Native params for canonical ones; names this provider has no equivalent for."""
        native, dropped = {}, []
        for key, value in canonical.items():
            if key in self.names:
                native[self.names[key]] = _convert_stop(key, value)
            else:
                dropped.append(key)
        return native, dropped


def _convert_stop(key: str, value: Any) -> Any:
    # OpenAI accepts a string or a list for `stop`; the others want a list.
    if key == "stop" and isinstance(value, str):
        return [value]
    return value


def env_value(*names: str) -> str | None:
    """The first non-empty value among the environment variables ``names``."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def fingerprint(secret: str | None) -> str:
    """A short hash to key client caches by credential without keeping the value around.

    Python's own (per-process, salted) string hash: these keys never leave the process,
    and a str caches its hash, so the lookup every run makes costs nothing (a sha256
    there was a measurable part of the time before a request went out).
    """
    return format(hash(secret or ""), "x")


class Provider(ABC):
    """One provider family. Subclasses are imported lazily by ``providers.get_provider``."""

    name: str = ""
    parameters: ParameterMap = ParameterMap(names={})

    def __init__(self) -> None:
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._async_clients: dict[tuple[Any, ...], tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._clients_lock = threading.Lock()

    def parameters_for(self, api_type: str | None, model: str) -> ParameterMap:
        """The parameter names of ``model`` (one provider may serve models that differ)."""
        pick = getattr(self, "parameter_map", None)
        return pick(api_type) if callable(pick) else self.parameters

    def cached_client(self, key: tuple[Any, ...], make: Any) -> Any:
        """An SDK client built once per key (connection pools are reused across runs)."""
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = make()
            return client

    def cached_async_client(self, key: tuple[Any, ...], make: Any) -> Any:
        """An async SDK client built once per key *and event loop*.

        Pooled connections belong to the loop that opened them: a client reused from a
        later ``asyncio.run`` fails with "Event loop is closed". Clients of closed loops
        are dropped (their sockets go with them; a closed loop cannot run ``aclose``).
        """
        loop = asyncio.get_running_loop()
        with self._clients_lock:
            for stale in [k for k, (lp, _) in self._async_clients.items() if lp.is_closed()]:
                del self._async_clients[stale]
            full_key = (id(loop), *key)
            entry = self._async_clients.get(full_key)
            if entry is None or entry[0] is not loop:
                entry = self._async_clients[full_key] = (loop, make())
            return entry[1]

    def traffic_key(self, spec: ModelSpec) -> str:
        """Which limiter this provider's calls for ``spec`` share (the engine paces each
        one; see :mod:`.traffic`): the provider and where its requests go."""
        return traffic.traffic_key(self.name, spec.base_url)

    @abstractmethod
    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        """Build (and cache) the SDK client now: its import and setup are not the
        provider's time, so the engine does this before its clock starts."""

    @abstractmethod
    def check_credentials(self, spec: ModelSpec) -> None:
        """Raise :class:`MissingApiKeyError` when the environment lacks what ``spec`` needs."""

    def resolve_api_type(self, spec: ModelSpec, rendered: Mapping[str, Any]) -> str | None:
        """The API ``spec`` will call for this template (recorded in the log); most
        providers have one, so ``spec.api_type`` as given."""
        return spec.api_type

    @abstractmethod
    def build_request(
        self, rendered: Mapping[str, Any], spec: ModelSpec, stream: bool
    ) -> dict[str, Any]:
        """The SDK's native keyword arguments for this rendered template."""

    @abstractmethod
    def call(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        """Call the SDK synchronously: a native response, or a native stream (iterable)."""

    @abstractmethod
    async def acall(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        """Call the SDK asynchronously: a native response, or an async iterable stream."""

    @abstractmethod
    def parse(self, response: Any, spec: ModelSpec) -> Reply:
        """A :class:`Reply` from a native (non-streamed) response."""

    @abstractmethod
    def stream_state(self, spec: ModelSpec) -> StreamState:
        """A fresh accumulator for one native stream."""

    @abstractmethod
    def classify(self, exc: BaseException) -> ProviderError | None:
        """A :class:`ProviderError` for an SDK or transport exception, or None if not ours."""

    def error_for(self, exc: BaseException) -> ProviderError:
        """The typed error to raise for ``exc``, with no key in it or in ``exc`` (its cause).

        A recognised SDK error stays catchable as the SDK's own class too; anything else
        becomes an ``unknown`` :class:`ProviderError` (see :func:`._sdk_errors.error_for`).
        """
        return _sdk_errors.error_for(self.name, exc, self.classify)

    def close_stream(self, stream: Any) -> None:
        """Release a native stream's connection (best effort)."""
        close = getattr(stream, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()

    async def aclose_stream(self, stream: Any) -> None:
        """Async twin of :meth:`close_stream`."""
        close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
        if callable(close):
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:
                pass

    def pricing_provider_id(self, spec: ModelSpec) -> str | None:
        """genai-prices' provider id for cost, or None when prices do not apply."""
        return self.name

    def batch_api(self, spec: ModelSpec) -> Any:
        """The provider's batch API for ``spec`` (a :class:`.batches.BatchAPI`), or why this
        route has none (a str, in words that follow "cannot run as a provider batch")."""
        return f"pl_magic has no batch API for {self.name}"

    def media_limits(self, spec: ModelSpec, template_type: str | None) -> MediaLimits | None:
        """The images and PDFs ``spec`` takes, checked before any call (see
        :mod:`pl_magic.core.media`); None: no check (a test double)."""
        return None
