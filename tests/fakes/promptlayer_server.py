"""Wire-level fake of PromptLayer's REST API for tests (Starlette on 127.0.0.1).

Shapes follow ``reference/promptlayer-api.md`` and the recorded cassettes in
``compat/promptlayer-cassettes/``. What keeps it honest: the official ``promptlayer`` SDK
runs ``PromptLayer(base_url=fake.url).run(...)`` against it (tests/test_promptlayer_sdk.py).

Routes (``Recorded.kind`` in brackets) and where each takes the API key, as PromptLayer does
for the SDK's calls:

* ``POST /prompt-templates/{name or id}`` [template.get]: header ``X-API-KEY`` or body
  ``api_key``. Renders with ``input_variables`` like PromptLayer (a missing variable is
  ``""``; jinja2 in a sandbox with chainable undefined) unless
  ``skip_input_variable_rendering``; applies ``provider``/``model`` and
  ``model_parameter_overrides``; builds provider-native ``llm_kwargs`` with pl_magic's own
  providers (acceptable for a fake: what matters is the SDK can call OpenAI/Anthropic
  with them); ``metadata_filters`` are recorded. A label split with ``split_label`` (a
  dynamic release label's A/B traffic split) resolves to its versions in turn, one per
  fetch (round-robin: deterministic). Unknown prompt, version or label: 404.
* ``GET /prompt-templates?page&per_page&label`` [templates.list], ``GET
  /prompt-templates/{id}/labels`` [template.labels], ``POST /rest/prompt-templates``
  [template.publish] (201), ``POST /prompts/{id}/label`` [label.create], ``PATCH`` /
  ``DELETE /prompt-labels/{id}`` [label.move / label.delete], ``POST /log-request``
  [log.request] (201): header only.
* ``POST /track-request`` [track.request] (answers the blueprint rebuilt from the native
  request and response), ``/library-track-score`` [track.score],
  ``/library-track-metadata`` [track.metadata], ``/track-group`` [track.group],
  ``/library-track-prompt`` [track.prompt], ``/create-group`` [group.create]: body only.
* ``POST /api/public/v2/requests/search`` [requests.search]: header only. The tracked
  requests matching a ``filter_group`` (``logic`` AND/OR, nested groups; ``metadata`` with
  ``key_equals``/``key_not_equals``/``in``/``is_empty``/``is_not_empty`` and ``nested_key``;
  ``pl_id``/``prompt_id`` with ``is``/``in``; ``tags`` with ``contains``), newest first, paged
  (``per_page`` at most 25) as PromptLayer's docs show; another field or operator is a 400.
* anything else [unknown]: 404 (so ``//prompt-templates/x`` from a base URL with a
  trailing slash fails, as it would on a real server).

Faults: ``fail_next(kind, fault, times)`` with an HTTP status (429 and 5xx carry
``retry-after: 0``), ``"drop"`` (the connection closes without an answer), ``"hang"``
(answers after ``hang_s``) or ``"html"`` (200 with an HTML page); ``outage`` applies one
fault to every request. ``mangle_next(kind, fn)`` answers with ``fn(answer)``: a malformed body.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import ThreadedServer

KINDS = (
    "template.get",
    "templates.list",
    "template.labels",
    "template.publish",
    "label.create",
    "label.move",
    "label.delete",
    "track.request",
    "track.score",
    "track.metadata",
    "track.group",
    "track.prompt",
    "group.create",
    "log.request",
    "requests.search",
    "unknown",
)
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/prompt-templates/(?P<ident>[^/]+)$"), "template.get"),
    ("GET", re.compile(r"^/prompt-templates$"), "templates.list"),
    ("GET", re.compile(r"^/prompt-templates/(?P<ident>[^/]+)/labels$"), "template.labels"),
    ("POST", re.compile(r"^/rest/prompt-templates$"), "template.publish"),
    ("POST", re.compile(r"^/prompts/(?P<ident>\d+)/label$"), "label.create"),
    ("PATCH", re.compile(r"^/prompt-labels/(?P<ident>\d+)$"), "label.move"),
    ("DELETE", re.compile(r"^/prompt-labels/(?P<ident>\d+)$"), "label.delete"),
    ("POST", re.compile(r"^/track-request$"), "track.request"),
    ("POST", re.compile(r"^/library-track-score$"), "track.score"),
    ("POST", re.compile(r"^/library-track-metadata$"), "track.metadata"),
    ("POST", re.compile(r"^/track-group$"), "track.group"),
    ("POST", re.compile(r"^/library-track-prompt$"), "track.prompt"),
    ("POST", re.compile(r"^/create-group$"), "group.create"),
    ("POST", re.compile(r"^/log-request$"), "log.request"),
    ("POST", re.compile(r"^/api/public/v2/requests/search$"), "requests.search"),
]
#: Where each kind takes the key: "header", "body" or "either".
_KEY_PLACE = {
    "template.get": "either",
    "track.request": "body",
    "track.score": "body",
    "track.metadata": "body",
    "track.group": "body",
    "track.prompt": "body",
    "group.create": "body",
}
_RETRY = {"retry-after": "0"}
#: llm_kwargs keys that are the prompt, not parameters (for the logged blueprint).
_NOT_PARAMETERS = frozenset(
    {"model", "messages", "system", "prompt", "input", "contents", "config", "tools"}
)


class _AbortConnectionError(Exception):
    """Raised inside a body generator so uvicorn drops the connection."""


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str  # raw (still percent-encoded), e.g. /prompt-templates/test_template%3Atest
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    kind: str
    received_at: float

    @property
    def header_key(self) -> str | None:
        """The X-API-KEY header, if sent."""
        return self.headers.get("x-api-key")

    @property
    def body_key(self) -> str | None:
        """The body's api_key, if sent."""
        return self.body.get("api_key") if isinstance(self.body, dict) else None


@dataclass
class _Label:
    id: int
    name: str
    version: int


@dataclass
class _Version:
    number: int
    id: int
    prompt_template: dict[str, Any]
    metadata: dict[str, Any] | None
    commit_message: str | None
    provider_base_url_name: str | None


@dataclass
class _Prompt:
    id: int
    name: str
    tags: list[str]
    versions: list[_Version] = field(default_factory=list)
    labels: dict[str, _Label] = field(default_factory=dict)


# -- rendering like PromptLayer ---------------------------------------------------------


def _fstring(text: str, values: Mapping[str, Any]) -> str:
    """PromptLayer's f-string rendering: a missing (or None) variable becomes ""."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:
        return text
    out = []
    for literal, name, _spec, _conv in parts:
        out.append(literal)
        if name is not None:
            value = values.get(name)
            out.append("" if value is None else str(value))
    return "".join(out)


def _jinja(text: str, values: Mapping[str, Any]) -> str:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    try:
        env = SandboxedEnvironment(undefined=jinja2.ChainableUndefined)
        return env.from_string(text).render(**values)
    except jinja2.TemplateError:
        return text


def _render_blocks(blocks: Any, fmt: str, values: Mapping[str, Any]) -> Any:
    if isinstance(blocks, str):
        blocks = [{"type": "text", "text": blocks}]
    out = []
    for block in blocks or []:
        if isinstance(block, dict) and block.get("type") == "text":
            text = block.get("text", "")
            block = {
                **block,
                "text": _jinja(text, values) if fmt == "jinja2" else _fstring(text, values),
            }
        out.append(block)
    return out


def render(template: Mapping[str, Any], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The template rendered as PromptLayer does; ``values=None`` leaves text as is but
    drops placeholder messages (they are filled per run)."""
    out = copy.deepcopy(dict(template))
    if out.get("type") == "completion":
        if values is not None:
            out["content"] = _render_blocks(
                out.get("content"), str(out.get("template_format") or "f-string"), values
            )
        return out
    messages = []
    for msg in out.get("messages") or []:
        if msg.get("role") == "placeholder":
            filled = (values or {}).get(msg.get("name"))
            for item in filled if isinstance(filled, list) else []:
                content = item.get("content")
                messages.append(
                    {
                        **item,
                        "content": [{"type": "text", "text": content}]
                        if isinstance(content, str)
                        else content,
                    }
                )
            continue
        if values is not None:
            fmt = str(msg.get("template_format") or "f-string")
            msg = {**msg, "content": _render_blocks(msg.get("content"), fmt, values)}
        messages.append(msg)
    out["messages"] = messages
    return out


def llm_kwargs_for(rendered: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """Provider-native kwargs for a rendered template (pl_magic's providers build them)."""
    from pl_magic.core.blueprint import ModelSpec
    from pl_magic.providers import get_provider

    provider = get_provider(str(model["provider"]))
    params = dict(model.get("parameters") or {})
    for key, value in provider.parameters_for(
        model.get("api_type"), model["name"]
    ).required.items():
        params.setdefault(key, value)
    spec = ModelSpec(str(model["provider"]), str(model["name"]), params, model.get("api_type"))
    kwargs = provider.build_request(rendered, spec, False)
    kwargs.update(kwargs.pop("extra_body", None) or {})  # PromptLayer's kwargs are flat
    return kwargs


# -- the logged request's blueprint ------------------------------------------------------


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
    return out


def _message(role: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "input_variables": [],
        "template_format": "f-string",
        "content": _blocks(content),
        "raw_request_display_role": role,
        "dataset_examples": [],
        "role": role,
        "name": None,
        **extra,
    }


def log_blueprint(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """What PromptLayer makes of a logged request: its messages plus the reply."""
    fn = str(payload.get("function_name") or "")
    kwargs = payload.get("kwargs") or {}
    response = payload.get("request_response") or {}
    ok = payload.get("status") in (None, "SUCCESS")
    kind = "chat"
    messages: list[dict[str, Any]] = []
    reply: dict[str, Any] | None = None
    if fn.endswith("chat.completions.create"):
        messages = [
            _message(m.get("role", "user"), m.get("content")) for m in kwargs.get("messages") or []
        ]
        choice = (response.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        reply = _message(
            "assistant", msg.get("content"), function_call=None, tool_calls=msg.get("tool_calls")
        )
    elif fn.endswith("completions.create"):
        kind = "completion"
        text = ((response.get("choices") or [{}])[0]).get("text") or ""
        content = [
            *_blocks(kwargs.get("prompt")),
            *([{"type": "text", "text": text}] if ok else []),
        ]
        template = {
            "type": "completion",
            "content": content,
            "template_format": "f-string",
            "input_variables": [],
        }
        return _with_model(template, payload)
    elif fn.endswith("responses.create"):
        items = kwargs.get("input")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
        messages = [_message(i.get("role", "user"), i.get("content")) for i in items]
        texts = [
            c.get("text", "")
            for out in response.get("output") or []
            for c in out.get("content") or []
            if c.get("type") == "output_text"
        ]
        reply = _message("assistant", "".join(texts))
    elif fn.startswith("anthropic."):
        if kwargs.get("system"):
            messages.append(_message("system", kwargs["system"]))
        messages += [
            _message(m.get("role", "user"), m.get("content")) for m in kwargs.get("messages") or []
        ]
        reply = _message("assistant", response.get("content"))
    elif fn.startswith("google."):
        for c in kwargs.get("contents") or []:
            role = "assistant" if c.get("role") == "model" else "user"
            messages.append(_message(role, [p for p in c.get("parts") or []]))
        parts = ((response.get("candidates") or [{}])[0].get("content") or {}).get("parts") or []
        reply = _message("assistant", parts)
    else:
        return None
    if ok and reply is not None:
        messages.append(reply)
    template = {
        "messages": messages,
        "functions": [],
        "tools": [],
        "function_call": None,
        "tool_choice": None,
        "type": kind,
        "input_variables": [],
        "dataset_examples": [],
    }
    return _with_model(template, payload)


def _with_model(template: dict[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = payload.get("kwargs") or {}
    model: dict[str, Any] = {
        "provider": payload.get("provider_type"),
        "name": kwargs.get("model"),
        "parameters": {k: v for k, v in kwargs.items() if k not in _NOT_PARAMETERS},
    }
    if str(payload.get("function_name", "")).endswith("responses.create"):
        model["api_type"] = "responses"
    return {
        "prompt_template": template,
        "commit_message": None,
        "metadata": {"model": model},
        "provider_base_url_name": None,
        "report_id": None,
        "inference_client_name": None,
    }


# -- the server -------------------------------------------------------------------------


class FakePromptLayerServer(ThreadedServer):
    """Fake PromptLayer on 127.0.0.1, run by uvicorn in a daemon thread.

    State (``reset()`` clears it): ``prompts`` (seed with :meth:`add_prompt`), ``tracked``
    (``/track-request`` bodies without the key, by request id), ``scores``, ``metadata``,
    ``groups``, ``requests`` (every request). Knobs: ``api_keys`` (accepted keys),
    ``provider_base_urls`` (name → url, for ``provider_base_url_name``), ``hang_s``,
    ``latency_s``, ``outage``, ``omit_version_number`` (answer publish like the older server in the
    cassettes).
    """

    _name = "fake-pl"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        super().__init__()
        self._app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._handle,
                    methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
                )
            ]
        )
        self.reset()

    def reset(self) -> None:
        """Forget every prompt, log, fault and knob."""
        with self._lock:
            self.requests: list[Recorded] = []
            self.prompts: dict[str, _Prompt] = {}
            self.tracked: dict[int, dict[str, Any]] = {}
            self.scores: list[dict[str, Any]] = []
            self.metadata: list[dict[str, Any]] = []
            self.groups: dict[int, list[int]] = {}
            self.logged: list[dict[str, Any]] = []
            self._faults: dict[str, deque[int | str]] = {}
            self._mangles: dict[str, deque[Callable[[Any], Any]]] = {}
            self._ids = itertools.count(1)
            self._request_ids = itertools.count(101)
            self._group_ids = itertools.count(1)
            self._splits: dict[tuple[str, str], itertools.cycle[int]] = {}
        self.api_keys: set[str] = set()
        self.provider_base_urls: dict[str, str] = {}
        self.hang_s = 5.0
        self.latency_s = 0.0  # added to every answer (a distant server, for benchmarks)
        self.outage: int | str | None = None
        self.omit_version_number = False

    # -- lifecycle -----------------------------------------------------------------------

    # -- test controls -------------------------------------------------------------------

    def fail_next(self, kind: str, fault: int | str, times: int = 1) -> None:
        """Answer the next ``times`` requests of ``kind`` with ``fault``."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        with self._lock:
            self._faults.setdefault(kind, deque()).extend([fault] * times)

    def mangle_next(self, kind: str, mangle: Callable[[Any], Any], times: int = 1) -> None:
        """Answer the next ``times`` successful requests of ``kind`` with ``mangle(answer)``
        instead of the answer (a malformed body: ``lambda a: [a]``, a field of the wrong type)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        with self._lock:
            self._mangles.setdefault(kind, deque()).extend([mangle] * times)

    def clear_faults(self) -> None:
        """Drop every queued fault (``outage`` is a knob of its own)."""
        with self._lock:
            self._faults.clear()

    def requests_for(self, kind: str) -> list[Recorded]:
        """Recorded requests of one kind, oldest first."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    def add_prompt(
        self,
        name: str,
        template: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        labels: Iterable[str] = (),
        commit_message: str | None = None,
        tags: Iterable[str] = (),
        provider_base_url_name: str | None = None,
    ) -> int:
        """Add a version of ``name`` directly (no HTTP); its version number."""
        with self._lock:
            return self._add_version(
                name,
                dict(template),
                dict(metadata) if metadata is not None else None,
                list(labels),
                commit_message,
                list(tags),
                provider_base_url_name,
            ).number

    def set_label(self, name: str, label: str, version: int) -> None:
        """Point a label at a version directly (no HTTP)."""
        with self._lock:
            prompt = self.prompts[name]
            existing = prompt.labels.get(label)
            prompt.labels[label] = _Label(
                existing.id if existing else next(self._ids), label, version
            )

    def split_label(self, name: str, label: str, versions: Iterable[int]) -> None:
        """Split ``label`` across ``versions`` (an A/B dynamic release label): each fetch by
        the label gets the next of them, round-robin. The label's own version (what
        ``/labels`` lists) is the first."""
        numbers = [int(v) for v in versions]
        self.set_label(name, label, numbers[0])
        with self._lock:
            self._splits[(name, label)] = itertools.cycle(numbers)

    # -- state helpers (called with the lock held) ---------------------------------------

    def _add_version(
        self,
        name: str,
        template: dict[str, Any],
        metadata: dict[str, Any] | None,
        labels: list[str],
        commit_message: str | None,
        tags: list[str],
        base_url_name: str | None,
    ) -> _Version:
        prompt = self.prompts.get(name)
        if prompt is None:
            prompt = self.prompts[name] = _Prompt(next(self._ids), name, tags)
        elif tags:
            prompt.tags = tags
        version = _Version(
            len(prompt.versions) + 1,
            next(self._ids),
            copy.deepcopy(template),
            copy.deepcopy(metadata),
            commit_message,
            base_url_name,
        )
        prompt.versions.append(version)
        for label in labels:
            existing = prompt.labels.get(label)
            prompt.labels[label] = _Label(
                existing.id if existing else next(self._ids), label, version.number
            )
        return version

    def _find(self, ident: str) -> _Prompt | None:
        if ident in self.prompts:
            return self.prompts[ident]
        return next((p for p in self.prompts.values() if str(p.id) == ident), None)

    def _template_json(self, prompt: _Prompt, version: _Version) -> dict[str, Any]:
        return {
            "id": prompt.id,
            "prompt_name": prompt.name,
            "tags": prompt.tags,
            "workspace_id": 1,
            "commit_message": version.commit_message,
            "metadata": copy.deepcopy(version.metadata),
            "prompt_template": copy.deepcopy(version.prompt_template),
            "version": version.number,
        }

    # -- handling ------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        raw_path = request.scope.get("raw_path", b"").decode() or request.url.path
        raw_path = raw_path.split("?", 1)[0]
        kind, ident = "unknown", ""
        for method, pattern, name in _ROUTES:
            match = pattern.match(raw_path)
            if match and request.method == method:
                kind, ident = name, unquote(match.groupdict().get("ident") or "")
                break
        rec = Recorded(
            request.method,
            raw_path,
            dict(request.query_params),
            dict(request.headers.items()),
            body,
            kind,
            time.monotonic(),
        )
        with self._lock:
            self.requests.append(rec)
            queue = self._faults.get(kind)
            fault = queue.popleft() if queue else self.outage
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault is not None:
            answer = await self._fault(fault)
            if answer is not None:
                return answer
        if kind == "unknown":
            return _error(404, f"fake PromptLayer: no route for {request.method} {raw_path}")
        if not self._authorized(kind, rec):
            return _error(401, "Invalid API key")
        handler = getattr(self, "_" + kind.replace(".", "_"))
        answer = handler(ident, body if isinstance(body, dict) else {}, rec)
        with self._lock:
            mangles = self._mangles.get(kind)
            mangle = mangles.popleft() if mangles else None
        if mangle is not None and answer.status_code < 300:
            return JSONResponse(mangle(json.loads(answer.body)), status_code=answer.status_code)
        return answer

    async def _fault(self, fault: int | str) -> Response | None:
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
            return None
        if fault == "drop":

            async def cut() -> Any:
                yield b""
                raise _AbortConnectionError("fault 'drop'")

            from starlette.responses import StreamingResponse

            return StreamingResponse(cut(), media_type="application/json")
        if fault == "html":
            return HTMLResponse("<html><body>Sign in to the wifi</body></html>")
        status = int(fault)
        headers = _RETRY if status == 429 or status >= 500 else {}
        return _error(status, f"fake PromptLayer fault {status}", headers)

    def _authorized(self, kind: str, rec: Recorded) -> bool:
        place = _KEY_PLACE.get(kind, "header")
        keys = []
        if place in ("header", "either"):
            keys.append(rec.header_key)
        if place in ("body", "either"):
            keys.append(rec.body_key)
        return any(k in self.api_keys for k in keys if k)

    # -- endpoints -----------------------------------------------------------------------

    def _template_get(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            prompt = self._find(ident)
            if prompt is None or not prompt.versions:
                return _error(404, f"Prompt template '{ident}' not found")
            label, number = body.get("label"), body.get("version")
            if label:
                found = prompt.labels.get(label)
                if found is None:
                    return _error(404, f"Release label '{label}' not found for '{ident}'")
                number = found.version
                split = self._splits.get((prompt.name, label))
                if split is not None:
                    number = next(split)
            number = int(number or len(prompt.versions))
            if not 1 <= number <= len(prompt.versions):
                return _error(404, f"Version {number} of '{ident}' not found")
            version = prompt.versions[number - 1]
            out = self._template_json(prompt, version)
            base_url = self.provider_base_urls.get(version.provider_base_url_name or "")
        values = (
            None
            if body.get("skip_input_variable_rendering")
            else dict(body.get("input_variables") or {})
        )
        rendered = render(version.prompt_template, values)
        model = self._model(version.metadata, body.get("provider"), body.get("model"))
        if model is not None:
            out["metadata"] = {**(out["metadata"] or {}), "model": model}
        out["prompt_template"] = rendered if values is not None else out["prompt_template"]
        llm_kwargs = None
        if model is not None:
            llm_kwargs = llm_kwargs_for(rendered, model)
            llm_kwargs.update(body.get("model_parameter_overrides") or {})
        out.update(
            llm_kwargs=llm_kwargs,
            provider_base_url=(
                {
                    "id": 1,
                    "name": version.provider_base_url_name,
                    "provider": (model or {}).get("provider"),
                    "url": base_url,
                }
                if base_url
                else None
            ),
            snippets=[],
            warning=None,
        )
        return JSONResponse(out)

    @staticmethod
    def _model(
        metadata: Mapping[str, Any] | None, provider: str | None, model: str | None
    ) -> dict[str, Any] | None:
        current = copy.deepcopy(dict((metadata or {}).get("model") or {}))
        if provider and provider != current.get("provider"):
            from pl_magic.providers import info

            return {
                "provider": provider,
                "name": model or info(provider).default_model,
                "parameters": {},
            }
        if model:
            current["name"] = model
        return current or None

    def _templates_list(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        page = int(rec.query.get("page", 1))
        per_page = int(rec.query.get("per_page", 30))
        label = rec.query.get("label")
        with self._lock:
            items = []
            for prompt in sorted(self.prompts.values(), key=lambda p: -p.id):
                if label:
                    found = prompt.labels.get(label)
                    if found is None:
                        continue
                    version = prompt.versions[found.version - 1]
                else:
                    version = prompt.versions[-1]
                item = self._template_json(prompt, version)
                item.pop("workspace_id")
                item.update(folder_id=None, parent_folder_name=None, full_folder_path=None)
                items.append(item)
        pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return JSONResponse(
            {
                "items": chunk,
                "has_prev": page > 1,
                "has_next": page < pages,
                "prev_num": page - 1 if page > 1 else None,
                "next_num": page + 1 if page < pages else None,
                "page": page,
                "pages": pages,
                "per_page": per_page,
                "total": len(items),
            }
        )

    def _template_labels(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            prompt = self._find(ident)
            if prompt is None:
                return _error(404, f"Prompt template '{ident}' not found")
            rows = [
                {
                    "release_label": label.name,
                    "release_label_id": label.id,
                    "prompt_version_id": prompt.versions[label.version - 1].id,
                    "prompt_version_number": label.version,
                }
                for label in prompt.labels.values()
            ]
        return JSONResponse({"success": True, "release_labels": rows})

    def _template_publish(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        template_part = body.get("prompt_template") or {}
        version_part = body.get("prompt_version") or {}
        name = template_part.get("prompt_name")
        template = version_part.get("prompt_template")
        if (
            not name
            or not isinstance(template, dict)
            or template.get("type") not in ("chat", "completion")
        ):
            return _error(400, "prompt_name and a chat or completion prompt_template are required")
        labels = body.get("release_labels") or []
        with self._lock:
            version = self._add_version(
                name,
                template,
                version_part.get("metadata"),
                labels,
                version_part.get("commit_message"),
                list(template_part.get("tags") or []),
                version_part.get("provider_base_url_name"),
            )
            prompt = self.prompts[name]
        out = {
            "id": prompt.id,
            "prompt_name": name,
            "prompt_version_id": version.id,
            "version_number": version.number,
            "tags": prompt.tags,
            "release_labels": labels or None,
            "prompt_template": version.prompt_template,
            "metadata": version.metadata,
            "commit_message": version.commit_message,
            "external_ids": [],
        }
        if self.omit_version_number:
            for key in ("prompt_version_id", "version_number", "external_ids"):
                out.pop(key)
        return JSONResponse(out, status_code=201)

    def _label_create(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            prompt = self._find(ident)
            if prompt is None:
                return _error(404, "Prompt not found")
            name, number = body.get("name"), body.get("prompt_version_number")
            if not name or not isinstance(number, int) or not 1 <= number <= len(prompt.versions):
                return _error(400, "name and an existing prompt_version_number are required")
            if name in prompt.labels:
                return _error(400, f"Label '{name}' already exists")
            label = prompt.labels[name] = _Label(next(self._ids), name, number)
            return JSONResponse(self._label_json(prompt, label))

    def _label_json(self, prompt: _Prompt, label: _Label) -> dict[str, Any]:
        return {
            "created_at": "2026-01-01T00:00:00Z",
            "id": label.id,
            "name": label.name,
            "prompt_id": prompt.id,
            "prompt_version_id": prompt.versions[label.version - 1].id,
        }

    def _label_lookup(self, ident: str) -> tuple[_Prompt, _Label] | None:
        for prompt in self.prompts.values():
            for label in prompt.labels.values():
                if str(label.id) == ident:
                    return prompt, label
        return None

    def _label_move(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            found = self._label_lookup(ident)
            if found is None:
                return _error(404, "Label not found")
            prompt, label = found
            number = body.get("prompt_version_number")
            if not isinstance(number, int) or not 1 <= number <= len(prompt.versions):
                return _error(400, "an existing prompt_version_number is required")
            label.version = number
            return JSONResponse(self._label_json(prompt, label))

    def _label_delete(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            found = self._label_lookup(ident)
            if found is None:
                return _error(404, "Label not found")
            prompt, label = found
            del prompt.labels[label.name]
        return Response(status_code=204)

    def _track_request(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        required = (
            "function_name",
            "provider_type",
            "args",
            "kwargs",
            "request_start_time",
            "request_end_time",
        )
        missing = [k for k in required if k not in body]
        if missing:
            return _error(400, f"missing fields: {', '.join(missing)}")
        payload = {k: v for k, v in body.items() if k != "api_key"}
        with self._lock:
            request_id = next(self._request_ids)
            self.tracked[request_id] = payload
            if payload.get("group_id") is not None:
                self.groups.setdefault(int(payload["group_id"]), []).append(request_id)
        blueprint = log_blueprint(payload) if body.get("return_prompt_blueprint") else None
        return JSONResponse(
            {
                "success": True,
                "request_id": request_id,
                "prompt_blueprint": blueprint,
                "message": "Request tracked successfully",
            }
        )

    def _known_request(self, body: Mapping[str, Any]) -> bool:
        with self._lock:
            return body.get("request_id") in self.tracked

    def _track_score(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        if not self._known_request(body):
            return _error(400, "Request not found")
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
            return _error(400, "score must be an integer from 0 to 100")
        with self._lock:
            self.scores.append({k: v for k, v in body.items() if k != "api_key"})
        return JSONResponse({"success": True})

    def _track_metadata(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        if not self._known_request(body):
            return _error(400, "Request not found")
        with self._lock:
            self.metadata.append({k: v for k, v in body.items() if k != "api_key"})
        return JSONResponse({"success": True})

    def _track_group(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        if not self._known_request(body):
            return _error(400, "Request not found")
        with self._lock:
            self.groups.setdefault(int(body["group_id"]), []).append(int(body["request_id"]))
        return JSONResponse({"success": True})

    def _track_prompt(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        if not self._known_request(body):
            return _error(400, "Request not found")
        return JSONResponse({"success": True})

    def _group_create(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            group_id = next(self._group_ids)
            self.groups[group_id] = []
        return JSONResponse({"success": True, "id": group_id})

    def _requests_search(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        group = body.get("filter_group") or {"logic": "AND", "filters": []}
        try:
            page = max(1, int(body.get("page") or 1))
            per_page = min(25, max(1, int(body.get("per_page") or 25)))
            with self._lock:
                found = [(rid, p) for rid, p in self.tracked.items() if _matches(group, rid, p)]
        except _UnsupportedFilterError as exc:
            return _error(400, str(exc))
        except (TypeError, ValueError):
            return _error(400, "page and per_page must be integers")
        found.sort(key=lambda item: -item[0])
        total = len(found)
        pages = max(1, -(-total // per_page))
        items = [
            {
                "id": rid,
                "engine": (p.get("kwargs") or {}).get("model"),
                "provider_type": p.get("provider_type"),
                "request_start_time": p.get("request_start_time"),
                "request_end_time": p.get("request_end_time"),
                "tags_array": p.get("tags") or [],
                "metadata": [p["metadata"]] if p.get("metadata") else [],
                "scores": [],
                "prompt_id": p.get("prompt_id"),
            }
            for rid, p in found[(page - 1) * per_page : page * per_page]
        ]
        return JSONResponse(
            {
                "success": True,
                "items": items,
                "page": page,
                "pages": pages,
                "per_page": per_page,
                "total": total,
                "has_next": page < pages,
                "has_prev": page > 1,
                "next_num": page + 1 if page < pages else None,
                "prev_num": page - 1 if page > 1 else None,
            }
        )

    def _log_request(self, ident: str, body: dict[str, Any], rec: Recorded) -> Response:
        with self._lock:
            request_id = next(self._request_ids)
            self.logged.append(body)
        return JSONResponse(
            {"id": request_id, "prompt_version": None, "status": "SUCCESS"}, status_code=201
        )


class _UnsupportedFilterError(ValueError):
    """A search filter the fake does not implement (a 400, never a silent match)."""


def _matches(group: Any, request_id: int, payload: Mapping[str, Any]) -> bool:
    """Whether a tracked request matches a search ``filter_group`` (or one filter)."""
    if not isinstance(group, Mapping):
        raise _UnsupportedFilterError("a filter must be an object")
    if "filters" in group:
        results = [_matches(f, request_id, payload) for f in group.get("filters") or []]
        logic = str(group.get("logic") or "AND").upper()
        if logic not in ("AND", "OR"):
            raise _UnsupportedFilterError(f"unknown logic {logic!r}")
        return all(results) if logic == "AND" else any(results)
    field_, op, value = group.get("field"), group.get("operator"), group.get("value")
    if field_ == "metadata":
        metadata = payload.get("metadata") or {}
        key = group.get("nested_key")
        if not isinstance(key, str):
            raise _UnsupportedFilterError("a metadata filter needs a nested_key")
        present, actual = key in metadata, metadata.get(key)
        checks = {
            "key_equals": lambda: present and actual == value,
            "key_not_equals": lambda: not present or actual != value,
            "in": lambda: present and actual in (value or []),
            "is_empty": lambda: not present,
            "is_not_empty": lambda: present,
        }
    elif field_ in ("pl_id", "prompt_id"):
        actual = request_id if field_ == "pl_id" else payload.get("prompt_id")
        checks = {"is": lambda: actual == value, "in": lambda: actual in (value or [])}
    elif field_ == "tags":
        checks = {"contains": lambda: value in (payload.get("tags") or [])}
    else:
        raise _UnsupportedFilterError(f"fake PromptLayer: unsupported search field {field_!r}")
    if op not in checks:
        raise _UnsupportedFilterError(f"fake PromptLayer: unsupported operator {op!r} on {field_}")
    return bool(checks[op]())


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"success": False, "message": message}, status_code=status, headers=dict(headers or {})
    )
