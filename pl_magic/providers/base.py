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
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.blueprint import ModelSpec
from ..core.errors import ConfigurationError, MissingApiKeyError, ProviderError
from ..core.keys import is_loopback_url

__all__ = ["is_loopback_url"]  # (one loopback rule, in keys.py)

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


def require_env(provider: str, *names: str, why: str = "") -> str:
    """The first set variable among ``names``, else :class:`MissingApiKeyError` naming them."""
    value = env_value(*names)
    if value is None:
        raise MissingApiKeyError(provider, names, why)
    return value


class MissingSettingsError(MissingApiKeyError):
    """Several settings are needed and some are missing: names every missing one.

    Each group lists a variable and its accepted alternatives, e.g.
    ``("ANTHROPIC_VERTEX_PROJECT_ID", "VERTEX_AI_PROJECT_ID")``.
    """

    def __init__(
        self, provider: str, missing: Sequence[Sequence[str]], why: str = "", note: str = ""
    ) -> None:
        self.provider = provider
        self.groups = [list(group) for group in missing]
        self.variables = [name for group in self.groups for name in group]
        extra = f" ({why})" if why else ""
        if len(self.groups) == 1:
            what = "the environment variable " + " or ".join(self.groups[0])
        else:
            shown = [
                group[0] + (f" (or {' or '.join(group[1:])})" if len(group) > 1 else "")
                for group in self.groups
            ]
            what = "the environment variables " + ", ".join(shown[:-1]) + " and " + shown[-1]
        tail = f"; {note}" if note else ""
        ConfigurationError.__init__(self, f"No credentials for {provider}{extra}: set {what}{tail}")


def require_google_cloud(provider: str, *groups: Sequence[str], why: str = "") -> list[str]:
    """One value per group of alternative variables, with Google credentials present (see
    :func:`google_credentials_problem`); else one error naming every missing variable."""
    values = [env_value(*group) for group in groups]
    missing = [group for group, value in zip(groups, values, strict=True) if value is None]
    problem = google_credentials_problem()
    note = ""
    if problem == "GOOGLE_APPLICATION_CREDENTIALS":
        missing.append((problem,))
    elif problem:
        note = problem
    if missing:
        raise MissingSettingsError(provider, missing, why, note)
    if note:
        extra = f" ({why})" if why else ""
        raise ConfigurationError(f"No credentials for {provider}{extra}: {note}")
    return [value for value in values if value is not None]


def google_credentials_problem() -> str | None:
    """Why Google credentials (ADC) cannot be found offline, or None when they can.

    Accepted, in google-auth's own order: ``GOOGLE_APPLICATION_CREDENTIALS`` naming an
    existing file; the gcloud CLI's ``application_default_credentials.json``
    (``gcloud auth application-default login``); running on Google Cloud (detected from
    the machine's DMI product name, the check google-auth makes without the network).
    Returns the name of the variable to set, or a one-line explanation.
    """
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        if Path(path).expanduser().is_file():
            return None
        return (
            "GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist "
            f"({path}): point it at a service-account JSON key file"
        )
    if _gcloud_adc_file().is_file() or _on_google_cloud():
        return None
    return "GOOGLE_APPLICATION_CREDENTIALS"


def _gcloud_adc_file() -> Path:
    """Where ``gcloud auth application-default login`` writes its credentials."""
    config = os.environ.get("CLOUDSDK_CONFIG")
    if config:
        base = Path(config)
    elif os.name == "nt":  # pragma: no cover - Windows
        base = Path(os.environ.get("APPDATA", "")) / "gcloud"
    else:
        base = Path.home() / ".config" / "gcloud"
    return base / "application_default_credentials.json"


def _on_google_cloud() -> bool:
    """True on a Google Cloud VM (Vertex AI Workbench, GCE, GKE): their metadata server
    gives credentials. Read from DMI, never probed over the network."""
    try:
        name = Path("/sys/class/dmi/id/product_name").read_text().strip()
    except OSError:
        return False
    return name.startswith("Google")


def fingerprint(secret: str | None) -> str:
    """A short hash to key client caches by credential without keeping the value around.

    Python's own (per-process, salted) string hash: these keys never leave the process,
    and a str caches its hash, so the lookup every run makes costs nothing (a sha256
    there was a measurable part of the time before a request went out).
    """
    return format(hash(secret or ""), "x")


def category_for_status(status: int | None) -> str:
    """The error category for an HTTP status code."""
    if status is None:
        return "unknown"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limit"
    if status >= 500:
        return "server"
    if status >= 400:
        return "bad_request"
    return "unknown"


def classify_transport_error(exc: BaseException) -> str | None:
    """The category of a raw httpx2 transport error (some SDKs let them through), or None."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - httpx2 comes with every SDK
        return None
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx2.TransportError):
        return "connection"
    # google-genai's async client uses aiohttp when it is installed: a cut stream raises
    # aiohttp.ClientPayloadError, a refused connection ClientConnectorError. Only looked at
    # when something already imported aiohttp.
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return "timeout"
        if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
            return "connection"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return None


def classify_google_auth_error(provider: str, exc: BaseException) -> ProviderError | None:
    """A :class:`ProviderError` for google-auth failures (Vertex tokens), or None.

    Only looked at when google-auth is already imported (a Vertex route imported it).
    """
    if "google.auth.exceptions" not in sys.modules:
        return None
    from google.auth import exceptions

    if isinstance(exc, exceptions.TransportError):
        return ProviderError(provider, "connection", f"Google token request failed: {exc}")
    if isinstance(exc, exceptions.GoogleAuthError):
        return ProviderError(provider, "auth", f"Google credentials were refused: {exc}")
    return None


class Provider(ABC):
    """One provider family. Subclasses are imported lazily by ``providers.get_provider``."""

    name: str = ""
    default_model: str = ""
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
        becomes an ``unknown`` :class:`ProviderError`.
        """
        from ._sdk_errors import catchable, scrub

        error = exc if isinstance(exc, ProviderError) else self.classify(exc)
        if error is None:
            scrub(exc)  # shown as the cause: no key in its text or its frames
            return ProviderError(self.name, "unknown", f"{type(exc).__name__}: {exc}")
        if error is not exc:
            error = catchable(error, exc)
        return error

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
