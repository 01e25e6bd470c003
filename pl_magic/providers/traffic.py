"""What the providers' HTTP answers say about rate limits, for whoever paces the calls.

Every SDK client pl_magic builds carries httpx event hooks (:func:`hooks`,
:func:`async_hooks`) naming the limiter its requests belong to (a *traffic key*: the provider
and where its requests go, see ``Provider.traffic_key``). Before each request goes out — the
SDK's own retries included — the installed :class:`Observer` may hold it back (the provider
asked to wait); after each answer it gets an :class:`Answer`: the status, how long the
provider asked to wait (``retry-after-ms``, ``retry-after``, Gemini's ``RetryInfo``) and,
when a rate-limit header says none are left, how long until the limit resets (OpenAI's
``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*``, Anthropic's
``anthropic-ratelimit-*-remaining`` / ``-reset``). So a 429 that the SDK retries and hides
is still seen.

The engine installs its limiter here (:mod:`pl_magic.engine.limiter`); a port does not
import the engine, and without an observer the hooks only time the requests.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol

#: Where the request hook notes when a request went out (read back from its response).
SENT_AT = "pl_magic.sent_at"


class Answer(NamedTuple):
    """One HTTP answer from a provider, as far as pacing is concerned."""

    status: int
    #: Seconds the provider asked to wait before the next request (429s and 5xx), or None.
    retry_after_s: float | None = None
    #: Seconds until a rate limit whose rate-limit header says none are left resets, or None.
    exhausted_for_s: float | None = None
    #: ``time.monotonic()`` when the request went out, or None when unknown.
    sent_at: float | None = None


class Observer(Protocol):
    """Who paces the requests of each traffic key (the engine's limiter)."""

    def before_send(self, key: str) -> None:
        """Called before each request of ``key`` goes out; may wait (or raise to stop it)."""

    async def abefore_send(self, key: str) -> None:
        """Async twin of :meth:`before_send`."""

    def answered(self, key: str, answer: Answer) -> None:
        """Called with each answer to a request of ``key``."""


_observer: Observer | None = None


def set_observer(observer: Observer | None) -> None:
    """Install who paces requests (None: nobody)."""
    global _observer
    _observer = observer


def traffic_key(provider: str, where: str | None) -> str:
    """The key of one provider's traffic to one place (its base URL, or its region)."""
    return f"{provider} {where or 'default'}"


# -- the hooks -------------------------------------------------------------------------------


def hooks(key: str) -> dict[str, list[Callable[[Any], None]]]:
    """httpx ``event_hooks`` for a sync SDK client whose requests belong to ``key``."""

    def on_request(request: Any) -> None:
        observer = _observer
        if observer is not None:
            observer.before_send(key)
        request.extensions[SENT_AT] = time.monotonic()

    def on_response(response: Any) -> None:
        observer = _observer
        if observer is None:
            return
        body = None
        if response.status_code == 429 and not _has_retry_header(response.headers):
            body = response.read()  # Gemini says how long to wait in the body (RetryInfo)
        observer.answered(key, answer_of(response, body))

    return {"request": [on_request], "response": [on_response]}


def async_hooks(key: str) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """httpx ``event_hooks`` for an async SDK client whose requests belong to ``key``."""

    async def on_request(request: Any) -> None:
        observer = _observer
        if observer is not None:
            await observer.abefore_send(key)
        request.extensions[SENT_AT] = time.monotonic()

    async def on_response(response: Any) -> None:
        observer = _observer
        if observer is None:
            return
        body = None
        if response.status_code == 429 and not _has_retry_header(response.headers):
            body = await response.aread()
        observer.answered(key, answer_of(response, body))

    return {"request": [on_request], "response": [on_response]}


def answer_of(response: Any, body: bytes | None = None) -> Answer:
    """The :class:`Answer` of an httpx response (``body``: its bytes, when read)."""
    headers = response.headers
    status = int(response.status_code)
    retry = retry_after_s(headers, body) if status == 429 or status >= 500 else None
    sent_at = response.request.extensions.get(SENT_AT) if _has_request(response) else None
    return Answer(status, retry, exhausted_for_s(headers), sent_at)


def _has_request(response: Any) -> bool:
    try:
        response.request  # noqa: B018 (httpx raises when a response has no request)
    except RuntimeError:
        return False
    return True


def _has_retry_header(headers: Mapping[str, str]) -> bool:
    return "retry-after-ms" in headers or "retry-after" in headers


# -- reading the headers ---------------------------------------------------------------------


def retry_after_s(headers: Mapping[str, str], body: bytes | None = None) -> float | None:
    """Seconds the provider asked to wait: ``retry-after-ms``, ``retry-after`` (seconds or
    an HTTP date), or a ``google.rpc.RetryInfo`` ``retryDelay`` in a JSON error body."""
    value = headers.get("retry-after-ms")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                seconds = max(0.0, email.utils.mktime_tz(parsed) - time.time())
        if seconds is not None:
            return seconds
    return _retry_info_s(body) if body else None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _retry_info_s(body: bytes) -> float | None:
    """``retryDelay`` ("1.5s") of a ``google.rpc.RetryInfo`` in a Google JSON error body."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return _number(delay[:-1])
    return None


#: The (remaining, reset) header pairs of OpenAI and Anthropic, per limit.
_LIMIT_HEADERS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers among ``headers``, by lower-case name (one pass over an httpx
    response's raw headers: most answers have none, and this runs for every answer)."""
    raw = getattr(headers, "raw", None)
    if raw is None:
        return {k.lower(): v for k, v in headers.items() if "ratelimit" in k.lower()}
    return {
        k.decode("latin-1").lower(): v.decode("latin-1")
        for k, v in raw
        if b"ratelimit" in k.lower()
    }


def exhausted_for_s(headers: Mapping[str, str]) -> float | None:
    """Seconds until a limit that has none left resets (the longest such), or None."""
    found = _limit_headers(headers)
    if not found:
        return None
    longest: float | None = None
    for remaining_name, reset_name in _LIMIT_HEADERS:
        remaining = found.get(remaining_name)
        if remaining is None or remaining.strip() not in ("0", "0.0"):
            continue
        seconds = reset_s(found.get(reset_name, ""))
        if seconds is not None and (longest is None or seconds > longest):
            longest = seconds
    return longest


def reset_s(value: str) -> float | None:
    """Seconds until a reset written as OpenAI does (``"1s"``, ``"6m0s"``, ``"20ms"``) or as
    Anthropic does (an RFC 3339 time), or None."""
    value = value.strip()
    if not value:
        return None
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _number(value)
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
