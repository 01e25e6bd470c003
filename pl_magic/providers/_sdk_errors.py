"""Provider SDK exceptions: classified, made safe to show, catchable as what the SDK raised.

Each provider's ``classify`` names the category of its SDK's own errors (with the helpers
here for what the SDKs share: HTTP statuses, raw transport errors, google-auth's errors);
:func:`error_for` turns any exception into the error pl_magic raises.

An SDK's exception can hold the key: a gateway's 401 body that echoes the request's
``Authorization`` header, the request object itself, a URL with ``?key=``. And its
traceback's frames hold the request headers as local variables, which ``%xmode Verbose``
prints. Before pl_magic raises, :func:`catchable` therefore redacts the exception and every
exception chained to it in place (args, message, body, response, request) and drops their
tracebacks, then returns pl_magic's error as an instance of both
:class:`~pl_magic.core.errors.ProviderError` and the SDK's class, so that code written for the
SDK (``except openai.RateLimitError``) keeps catching it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from ..core.errors import ProviderError, as_sdk_class, redact, redact_data

#: Attributes that hold an HTTP request or response (httpx's, aiohttp's, requests').
_HTTP_ATTRIBUTES = frozenset({"request", "_request", "response", "_response", "request_info"})
#: Response headers that describe the original bytes, not the redacted copy.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
#: How many chained exceptions are looked at (a chain is short; a cycle is cut).
_MAX_CHAIN = 20


def _httpx_modules() -> list[Any]:
    return [m for m in (sys.modules.get("httpx2"), sys.modules.get("httpx")) if m is not None]


def _scrubbed_request(request: Any, httpx: Any) -> Any:
    headers = [(k, redact(v)) for k, v in request.headers.items()]
    return httpx.Request(request.method, redact(str(request.url)), headers=headers)


def _scrubbed_response(response: Any, httpx: Any) -> Any:
    try:
        content = response.content
    except Exception:  # a streamed body not read: nothing of it is kept
        content = b""
    headers = [
        (k, redact(v)) for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS
    ]
    try:
        request = _scrubbed_request(response.request, httpx)
    except Exception:  # a response built without a request
        request = None
    return httpx.Response(
        response.status_code, headers=headers, content=redact_data(content), request=request
    )


def _scrubbed_http(value: Any) -> Any:
    """A copy of an HTTP request or response with every secret redacted; None when it is of
    a kind that cannot be copied (its headers could not be vouched for)."""
    for httpx in _httpx_modules():
        if isinstance(value, httpx.Response):
            return _scrubbed_response(value, httpx)
        if isinstance(value, httpx.Request):
            return _scrubbed_request(value, httpx)
    return None


def _scrubbed(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str | bytes | bytearray | dict | list | tuple):
        return redact_data(value)
    if name in _HTTP_ATTRIBUTES:
        return _scrubbed_http(value)
    return value


def scrub(exc: BaseException) -> None:
    """Redact ``exc`` and the exceptions chained to it in place (args and attributes, HTTP
    requests and responses copied with their secrets redacted) and drop their tracebacks."""
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(Exception):  # args made read-only (seen in no SDK)
            current.args = tuple(_scrubbed("", arg) for arg in current.args)
        attributes = getattr(current, "__dict__", None)
        if isinstance(attributes, dict):
            for name, value in list(attributes.items()):
                attributes[name] = _scrubbed(name, value)
        current.__traceback__ = None
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def catchable(error: ProviderError, exc: BaseException) -> ProviderError:
    """``error`` (made by a provider's ``classify`` from ``exc``) as an instance of both
    :class:`ProviderError` and ``type(exc)``, carrying ``exc``'s redacted attributes;
    ``exc`` is redacted in place (see :func:`scrub`)."""
    scrub(exc)
    attributes = dict(getattr(exc, "__dict__", {}))
    # pl_magic's request_id is the run's; the SDK's (an answer header) keeps another name
    provider_request_id = attributes.pop("request_id", None)
    combined = as_sdk_class(error, type(exc), attributes)
    if isinstance(provider_request_id, str):
        combined.provider_request_id = provider_request_id
    return combined


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


def transport_error(provider: str, exc: BaseException) -> ProviderError | None:
    """A :class:`ProviderError` for a raw transport error (see
    :func:`classify_transport_error`), or None."""
    category = classify_transport_error(exc)
    if category:
        return ProviderError(provider, category, f"{type(exc).__name__}: {exc}")
    return None


def connection_error(provider: str, exc: BaseException, sdk: Any) -> ProviderError | None:
    """A :class:`ProviderError` for the timeout and connection errors of ``sdk`` (the
    ``openai`` or ``anthropic`` module: one code generator made both, with the same
    ``APITimeoutError`` and ``APIConnectionError``), or None."""
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError(provider, "timeout", "the request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return ProviderError(provider, "connection", detail)
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


def error_for(
    provider: str,
    exc: BaseException,
    classify: Callable[[BaseException], ProviderError | None],
) -> ProviderError:
    """The typed error to raise for ``exc``, with no key in it or in ``exc`` (its cause).

    ``classify`` is the provider's. A recognised SDK error stays catchable as the SDK's own
    class too (:func:`catchable`); anything else becomes an ``unknown``
    :class:`ProviderError`.
    """
    error = exc if isinstance(exc, ProviderError) else classify(exc)
    if error is None:
        scrub(exc)  # shown as the cause: no key in its text or its frames
        return ProviderError(provider, "unknown", f"{type(exc).__name__}: {exc}")
    if error is not exc:
        error = catchable(error, exc)
    return error
