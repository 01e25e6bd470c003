"""PromptLayer's REST API over httpx2, as the official SDK speaks it, but sturdier.

Every call has a timeout; connection errors, timeouts, 429 and 5xx are retried with
exponential backoff (honouring ``Retry-After``), 4xx are not. A trailing slash in the base
URL is harmless. The API key goes only where PromptLayer expects it, per endpoint (the
official SDK's placement, seen in the recorded cassettes): the ``X-API-KEY`` header for
the registry endpoints, the ``api_key`` body field for the tracking endpoints, both for
``POST /prompt-templates/{name}``. It never appears in an error message or a ``repr``.

Settings come from the environment (seconds unless said otherwise):

* ``PROMPTLAYER_API_KEY`` / ``PROMPTLAYER_BASE_URL`` (default ``https://api.promptlayer.com``)
* ``PL_MAGIC_PROMPTLAYER_TIMEOUT`` (15): one HTTP call; ``…_CONNECT_TIMEOUT`` (5)
* ``PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT`` (3): everything ``run()`` waits for
  ``/track-request`` before returning with the local request id instead
* ``PL_MAGIC_PROMPTLAYER_RETRIES`` (2, a count): retries after the first attempt
* ``PL_MAGIC_PROMPTLAYER_BACKOFF`` (0.25): first wait; doubled each retry, capped at 8

httpx2 is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .config import env_float, env_int
from .errors import (
    ConfigurationError,
    PromptLayerAuthError,
    PromptLayerError,
    PromptLayerUnavailableError,
    redact,
    spellings,
)
from .keys import checked_key

if TYPE_CHECKING:
    import httpx2

DEFAULT_BASE_URL = "https://api.promptlayer.com"
HEADER = "header"  # the key in the X-API-KEY header
BODY = "body"  # the key in the JSON body's api_key field

_FIXES = {
    400: "PromptLayer refused the request",
    404: "check the name or id",
    409: "it conflicts with what PromptLayer holds",
    422: "PromptLayer refused the request",
}


class DeliveryUnknownError(PromptLayerUnavailableError):
    """A request went out but no answer came back: PromptLayer may have acted on it.

    ``timed_out``: the wait for the answer ran out (PromptLayer may still be at work on it),
    rather than the connection closing without one.
    """

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Settings:
    """Timeouts and the retry policy (see the module docstring for the variables)."""

    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    track_timeout_s: float = 3.0
    retries: int = 2
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0

    @classmethod
    def from_env(cls) -> Settings:
        """The settings, with the environment's overrides."""
        return cls(
            timeout_s=env_float("PL_MAGIC_PROMPTLAYER_TIMEOUT", cls.timeout_s),
            connect_timeout_s=env_float(
                "PL_MAGIC_PROMPTLAYER_CONNECT_TIMEOUT", cls.connect_timeout_s
            ),
            track_timeout_s=env_float("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", cls.track_timeout_s),
            retries=max(0, env_int("PL_MAGIC_PROMPTLAYER_RETRIES", cls.retries)),
            backoff_s=max(0.0, env_float("PL_MAGIC_PROMPTLAYER_BACKOFF", cls.backoff_s)),
        )


def normalize_base_url(url: str) -> str:
    """The base URL without trailing slashes (the official SDK would call ``//path``)."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"PROMPTLAYER_BASE_URL must be an http(s) URL, not {url!r}: e.g. {DEFAULT_BASE_URL}"
        )
    return url.rstrip("/")


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: rare from an API; fall back to our own backoff
        return None


def _detail(response: httpx2.Response) -> str:
    """PromptLayer's error message (``message``, ``error`` or ``detail``), else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail"):
            if body.get(key):
                return str(body[key])
    return str(body)[:300]


def _object(answer: Any, action: str) -> dict[str, Any]:
    """A JSON object answer as a dict (none is ``{}``); a list or a scalar where PromptLayer
    answers an object is one line, not a ``TypeError`` from ``dict()``."""
    if answer is None:
        return {}
    if not isinstance(answer, dict):
        raise PromptLayerError(
            f"PromptLayer's answer {action} is a {type(answer).__name__}, not a JSON object — "
            "is PROMPTLAYER_BASE_URL PromptLayer's API?",
            200,
        )
    return answer


class PromptLayerAPI:
    """One PromptLayer account: its base URL, its key and a pooled httpx2 client."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        key = api_key or os.environ.get("PROMPTLAYER_API_KEY")
        if not key:
            raise ConfigurationError(
                "No PromptLayer API key: set the environment variable PROMPTLAYER_API_KEY"
            )
        # A key with a newline or space would fail as "unreachable" with the key echoed in
        # httpx's error: refused here, naming where it came from.
        self._key = checked_key("api_key" if api_key else "PROMPTLAYER_API_KEY", key)
        self._spellings = spellings(self._key)
        self.base_url = normalize_base_url(
            base_url or os.environ.get("PROMPTLAYER_BASE_URL") or DEFAULT_BASE_URL
        )
        self.settings = settings or Settings.from_env()
        self._client: httpx2.Client | None = None
        self._client_lock = threading.Lock()
        #: How the client waits between retries (tests replace it to record the waits).
        self.sleep: Callable[[float], None] = time.sleep
        #: An httpx2 transport to use instead of the network (set before the first call;
        #: tests replay recorded exchanges through one).
        self.transport: httpx2.BaseTransport | None = None

    def __repr__(self) -> str:
        return f"PromptLayerAPI(base_url={self.base_url!r})"

    @property
    def account(self) -> str:
        """Which account this is, without the key: base URL and a hash of the key."""
        digest = hashlib.sha256(self._key.encode()).hexdigest()[:16]
        return f"{self.base_url}#{digest}"

    def _http(self) -> httpx2.Client:
        with self._client_lock:
            if self._client is None:
                import httpx2

                from . import __version__

                self._client = httpx2.Client(
                    timeout=httpx2.Timeout(
                        self.settings.timeout_s, connect=self.settings.connect_timeout_s
                    ),
                    headers={"User-Agent": f"pl_magic/{__version__}"},
                    transport=self.transport,
                )
            return self._client

    def close(self) -> None:
        """Close the connection pool (a new one opens on the next call)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _clean(self, text: str) -> str:
        """Text from outside (server bodies, transport errors) without the key."""
        for spelling in (self._key, *self._spellings):
            text = text.replace(spelling, "***")
        return redact(text)

    # -- the one request loop ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: Sequence[str] = (HEADER,),
        budget_s: float | None = None,
        retries: int | None = None,
        retry_unsure: bool = True,
    ) -> Any:
        """Call PromptLayer; the decoded JSON answer (None for an empty one).

        ``action`` names the call in error messages ("fetching prompt 'x'"). ``budget_s``
        bounds the whole call, retries included (no attempt starts past it).
        ``retry_unsure=False``: a request that went out without an answer coming back
        (read timeout, connection closed) is not retried — PromptLayer may have acted on
        it — and raises :class:`DeliveryUnknownError`.
        Raises :class:`PromptLayerAuthError` (401/403), :class:`PromptLayerUnavailableError`
        (unreachable, timeout, 429, 5xx, after the retries) or :class:`PromptLayerError`
        (another 4xx, or an answer that is not JSON).
        """
        import httpx2

        url = self.base_url + path
        headers = {"X-API-KEY": self._key} if HEADER in auth else {}
        payload = dict(body) if body is not None else None
        if BODY in auth:
            payload = {**(payload or {}), "api_key": self._key}
        max_retries = self.settings.retries if retries is None else retries
        deadline = time.monotonic() + budget_s if budget_s is not None else None
        attempt = 0
        while True:
            timeout: Any = httpx2.USE_CLIENT_DEFAULT
            if deadline is not None:
                remaining = max(0.01, deadline - time.monotonic())
                timeout = httpx2.Timeout(
                    min(self.settings.timeout_s, remaining),
                    connect=min(self.settings.connect_timeout_s, remaining),
                )
            wait: float | None = None
            try:
                response = self._http().request(
                    method, url, headers=headers, json=payload, params=params, timeout=timeout
                )
            except httpx2.TimeoutException as exc:
                message = (
                    f"PromptLayer timed out {action} ({type(exc).__name__}) — check the network "
                    f"and PROMPTLAYER_BASE_URL ({self.base_url})"
                )
                if not retry_unsure and isinstance(exc, httpx2.ReadTimeout):
                    raise DeliveryUnknownError(message, timed_out=True) from None
                error: PromptLayerError = PromptLayerUnavailableError(message)
            except httpx2.TransportError as exc:
                message = (
                    f"PromptLayer is unreachable {action} ({type(exc).__name__}: "
                    f"{self._clean(str(exc))}) — check the network and PROMPTLAYER_BASE_URL "
                    f"({self.base_url})"
                )
                if not retry_unsure and isinstance(
                    exc, httpx2.RemoteProtocolError | httpx2.ReadError
                ):
                    raise DeliveryUnknownError(message, timed_out=False) from None
                error = PromptLayerUnavailableError(message)
            else:
                status = response.status_code
                if status < 400:
                    return self._decode(response, action)
                error = self._status_error(response, action)
                if not isinstance(error, PromptLayerUnavailableError):
                    raise error  # 4xx: retrying would get the same answer
                wait = _retry_after(response)
            if attempt >= max_retries:
                raise error
            delay = min(self.settings.backoff_s * 2**attempt, self.settings.max_backoff_s)
            if wait is not None:
                delay = min(max(delay, wait), self.settings.max_backoff_s)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise error
            self.sleep(delay)
            attempt += 1

    def _decode(self, response: httpx2.Response, action: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            # PromptLayer's SDK shows "Expecting value: line 1 column 1" here (its issue #42):
            # usually a proxy's or captive portal's HTML page.
            raise PromptLayerError(
                f"PromptLayer's answer {action} is not JSON (HTTP {response.status_code}) — is "
                f"PROMPTLAYER_BASE_URL ({self.base_url}) PromptLayer's API?",
                response.status_code,
            ) from None

    def _status_error(self, response: httpx2.Response, action: str) -> PromptLayerError:
        status = response.status_code
        detail = self._clean(_detail(response))
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        where = f"PromptLayer answered HTTP {status} {action}: {detail}"
        if status in (401, 403):
            return PromptLayerAuthError(
                f"{where} — check PROMPTLAYER_API_KEY (the key was refused)", status
            )
        if status == 429 or status >= 500:
            return PromptLayerUnavailableError(f"{where} — retry later", status)
        return PromptLayerError(f"{where} — {_FIXES.get(status, 'see the message')}", status)

    # -- endpoints (the official SDK's paths, bodies and key placement) ------------------

    def get_template(self, identifier: str | int, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /prompt-templates/{name or id}``: a template, rendered per ``params``."""
        action = f"fetching prompt {identifier!r}"
        return _object(
            self.request(
                "POST",
                f"/prompt-templates/{quote(str(identifier), safe='')}",
                action=action,
                body=params,
                auth=(HEADER, BODY),
            ),
            action,
        )

    def list_templates(
        self, page: int = 1, per_page: int = 30, label: str | None = None
    ) -> dict[str, Any]:
        """``GET /prompt-templates?page&per_page[&label]``: one page (``items`` + paging)."""
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        if label:
            params["label"] = label
        return _object(
            self.request("GET", "/prompt-templates", action="listing prompts", params=params),
            "listing prompts",
        )

    def template_labels(self, prompt_id: int | str) -> list[dict[str, Any]]:
        """``GET /prompt-templates/{id}/labels``: the release labels of a prompt."""
        action = f"listing the labels of prompt {prompt_id}"
        answer = self.request(
            "GET", f"/prompt-templates/{quote(str(prompt_id), safe='')}/labels", action=action
        )
        rows = _object(answer, action).get("release_labels")
        return rows if rows is not None else []

    def publish(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /rest/prompt-templates`` with the body twice, as the SDK's publish sends it."""
        return _object(
            self.request(
                "POST",
                "/rest/prompt-templates",
                action=f"publishing prompt {body.get('prompt_name')!r}",
                body={
                    "prompt_template": {**body},
                    "prompt_version": {**body},
                    "release_labels": body.get("release_labels"),
                },
            ),
            f"publishing prompt {body.get('prompt_name')!r}",
        )

    def create_label(self, prompt_id: int, name: str, version: int) -> dict[str, Any]:
        """``POST /prompts/{id}/label``: a new release label on a version."""
        return dict(
            self.request(
                "POST",
                f"/prompts/{prompt_id}/label",
                action=f"creating release label {name!r}",
                body={"name": name, "prompt_version_number": version},
            )
            or {}
        )

    def move_label(self, label_id: int, version: int) -> dict[str, Any]:
        """``PATCH /prompt-labels/{id}``: point a release label at another version."""
        return dict(
            self.request(
                "PATCH",
                f"/prompt-labels/{label_id}",
                action="moving a release label",
                body={"prompt_version_number": version},
            )
            or {}
        )

    def delete_label(self, label_id: int) -> None:
        """``DELETE /prompt-labels/{id}``."""
        self.request("DELETE", f"/prompt-labels/{label_id}", action="deleting a release label")

    def log_request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /log-request``: log a request made elsewhere (the SDK's ``log_request``)."""
        return dict(
            self.request("POST", "/log-request", action="logging a request", body=body) or {}
        )

    def track_request(
        self,
        payload: Mapping[str, Any],
        budget_s: float | None = None,
        retry_unsure: bool = True,
    ) -> dict[str, Any]:
        """``POST /track-request``: log a run; ``{"request_id", "prompt_blueprint", ...}``.

        ``retry_unsure=False``: see :meth:`request` (a log must not be made twice).
        """
        answer = self.request(
            "POST",
            "/track-request",
            action="logging a run",
            body=payload,
            auth=(BODY,),
            budget_s=budget_s,
            retry_unsure=retry_unsure,
        )
        answer = dict(answer or {})
        if answer.get("request_id") is None:
            raise PromptLayerError(
                "PromptLayer answered /track-request without a request_id: "
                f"{self._clean(str(answer.get('message') or answer))[:200]}"
            )
        return answer

    def find_tracked(self, key: str, value: str) -> int | None:
        """PromptLayer's id of the request logged with metadata ``key`` = ``value``, or None.

        ``POST /api/public/v2/requests/search`` (PromptLayer's request search, ``X-API-KEY``
        header) with a ``key_equals`` filter on the metadata. A server without the search
        (HTTP 404) answers None: the caller then sends again.
        """
        body = {
            "filter_group": {
                "logic": "AND",
                "filters": [
                    {
                        "field": "metadata",
                        "operator": "key_equals",
                        "value": value,
                        "nested_key": key,
                    }
                ],
            },
            "page": 1,
            "per_page": 1,
        }
        try:
            answer = self.request(
                "POST",
                "/api/public/v2/requests/search",
                action="looking for an earlier log of a run",
                body=body,
            )
        except PromptLayerError as exc:
            if exc.status_code == 404:
                return None
            raise
        items = (answer or {}).get("items") if isinstance(answer, Mapping) else None
        if not items or not isinstance(items[0], Mapping) or items[0].get("id") is None:
            return None
        try:
            return int(items[0]["id"])
        except (TypeError, ValueError):
            return None

    def _track(self, path: str, action: str, body: Mapping[str, Any]) -> None:
        answer = self.request("POST", path, action=action, body=body, auth=(BODY,))
        if isinstance(answer, Mapping) and answer.get("success") is False:
            raise PromptLayerError(
                f"PromptLayer refused {action}: {self._clean(str(answer.get('message')))}"
            )

    def track_score(self, request_id: int, score: int, name: str | None = None) -> None:
        """``POST /library-track-score``."""
        body: dict[str, Any] = {"request_id": request_id, "score": score}
        if name is not None:
            body["name"] = name
        self._track("/library-track-score", f"scoring request {request_id}", body)

    def track_metadata(self, request_id: int, metadata: Mapping[str, str]) -> None:
        """``POST /library-track-metadata``."""
        self._track(
            "/library-track-metadata",
            f"adding metadata to request {request_id}",
            {"request_id": request_id, "metadata": dict(metadata)},
        )

    def track_group(self, request_id: int, group_id: int) -> None:
        """``POST /track-group``."""
        self._track(
            "/track-group",
            f"adding request {request_id} to group {group_id}",
            {"request_id": request_id, "group_id": group_id},
        )

    def track_prompt(
        self,
        request_id: int,
        prompt_name: str,
        input_variables: Mapping[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> None:
        """``POST /library-track-prompt``: tie a logged request to a registry prompt."""
        self._track(
            "/library-track-prompt",
            f"tying request {request_id} to prompt {prompt_name!r}",
            {
                "request_id": request_id,
                "prompt_name": prompt_name,
                "prompt_input_variables": dict(input_variables),
                "version": version,
                "label": label,
            },
        )

    def create_group(self) -> int:
        """``POST /create-group``: a new group id."""
        answer = self.request("POST", "/create-group", action="creating a group", auth=(BODY,))
        try:
            return int(answer["id"])
        except (KeyError, TypeError, ValueError):
            raise PromptLayerError(
                f"PromptLayer answered /create-group without an id: {str(answer)[:200]}"
            ) from None
