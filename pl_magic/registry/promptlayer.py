"""The PromptLayer registry: prompts, versions and release labels over PromptLayer's REST API.

It offers what the engine, the magics and the widget use of the local registry (``names``,
``versions``, ``labels``, ``get``, ``list_prompts``, ``publish``, ``set_label``,
``delete_label``), with PromptLayer's own template JSON as records.

How a run gets its template:

* **Cached, rendered locally (the default).** As the official SDK does with its cache on,
  the template is fetched unrendered (``skip_input_variable_rendering: true``) and cached;
  pl_magic then renders it with its strict renderer (a missing variable is an error naming
  it) and builds the request with its own providers, exactly as for the local registry.
  A pinned version is cached for good (versions never change); a release label or "latest"
  for ``PL_MAGIC_TEMPLATE_TTL`` seconds (60); when PromptLayer is unreachable an expired
  copy is used with a one-line notice.
* **Rendered by PromptLayer** when only the server can: ``metadata`` given with a release
  label (PromptLayer routes dynamic release labels, A/B tests, by it), a template with
  ``tools`` of type ``variable``, or ``PL_MAGIC_PROMPTLAYER_RENDERING=server`` (the SDK's
  default behaviour). The fetch then carries everything the SDK sends (``input_variables``,
  ``metadata_filters``, ``provider``, ``model``, ``model_parameter_overrides``) and the
  record is marked ``server_rendered``: the engine sends its ``llm_kwargs`` as they are
  (see :func:`server_rendered_run`). Such a fetch is never cached (it holds the inputs), but
  the unrendered cached copy still stands in when PromptLayer is down.

Version numbers on PromptLayer run from 1 to the latest, so ``versions()`` is that range.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..core import blueprint, media, notices
from ..core.blueprint import ModelSpec
from ..core.config import env_float
from ..core.errors import (
    ConfigurationError,
    InvalidInputError,
    InvalidTemplateError,
    LabelNotFoundError,
    PlMagicError,
    PromptLayerError,
    PromptLayerUnavailableError,
    PromptNotFoundError,
    RegistryError,
    VersionNotFoundError,
)
from ..core.promptlayer_api import PromptLayerAPI
from . import promptlayer_checks as checks
from .base import PreRendered, check_label, check_publish_body, check_version

#: Providers whose SDK call takes PromptLayer's ``llm_kwargs`` as they are. Not Anthropic:
#: anthropic>=2 takes ``temperature`` and friends only through ``extra_body`` (pl_magic's
#: provider knows), nor Google/Vertex (pl_magic calls generate_content, not chats).
NATIVE_KWARGS_PROVIDERS = ("openai",)
#: Keys of ``llm_kwargs`` that are the prompt or the call's plumbing, not model parameters.
_STRUCTURAL = frozenset(
    {
        "model",
        "messages",
        "system",
        "prompt",
        "input",
        "contents",
        "history",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "stream",
        "stream_options",
        "extra_body",
        "generation_config",  # Google's parameters, nested (see _parameters_of)
        "config",
    }
)
#: Keys of Google's nested config that are the prompt or tools, not model parameters.
_GOOGLE_STRUCTURAL = frozenset({"system_instruction", "tools", "tool_config"})
_MAX_CACHED = 1000
_MAX_PAGES = 200  # 200 pages of 100: far beyond any workspace; guards a server loop


class TemplateRecord(dict[str, Any]):
    """A template record in PromptLayer's shape.

    ``server_rendered`` is True when PromptLayer rendered it for a run's inputs: its
    ``prompt_template`` is rendered and its ``llm_kwargs`` are the provider request.
    """

    server_rendered: bool = False


def ttl_s() -> float:
    """Seconds a release label's (or "latest") template is used before asking again."""
    return env_float("PL_MAGIC_TEMPLATE_TTL", 60.0)


def rendering() -> str:
    """``local`` (cached, pl_magic renders) or ``server`` (PromptLayer renders every run)."""
    value = os.environ.get("PL_MAGIC_PROMPTLAYER_RENDERING", "local").strip().lower()
    if value not in ("local", "server"):
        raise ConfigurationError(
            f"PL_MAGIC_PROMPTLAYER_RENDERING must be 'local' or 'server', not {value!r}"
        )
    return value


def locally_renderable(record: Mapping[str, Any]) -> bool:
    """False when only PromptLayer can render the template (``tools`` of type variable)."""
    template = record.get("prompt_template") or {}
    return not any(
        isinstance(t, Mapping) and t.get("type") == "variable" for t in template.get("tools") or []
    )


@dataclass
class _Entry:
    value: Any
    fetched_at: float  # time.monotonic()
    pinned: bool  # a version number: never goes stale
    stale_ok_until: float = 0.0  # PromptLayer was down: the old copy serves until then


class _Cache:
    """Thread-safe cache of records and label maps, with expired entries kept as fallbacks."""

    def __init__(self, ttl: Callable[[], float] = ttl_s) -> None:
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._lock = threading.Lock()
        self._ttl = ttl

    def get(self, key: tuple[Any, ...]) -> tuple[Any, bool, float] | None:
        """(a copy of the value, is it fresh, its age in seconds), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            now = time.monotonic()
            age = now - entry.fetched_at
            fresh = entry.pinned or age < self._ttl() or now < entry.stale_ok_until
            return copy.deepcopy(entry.value), fresh, age

    def keep_serving(self, key: tuple[Any, ...]) -> None:
        """PromptLayer is down: serve the stale copy a TTL (at least 10 s) longer before
        asking again — each ask would cost every run the retries' wait."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.stale_ok_until = time.monotonic() + max(self._ttl(), 10.0)

    def put(self, key: tuple[Any, ...], value: Any, pinned: bool = False) -> None:
        with self._lock:
            if len(self._entries) >= _MAX_CACHED and key not in self._entries:
                oldest = min(self._entries, key=lambda k: self._entries[k].fetched_at)
                del self._entries[oldest]
            self._entries[key] = _Entry(copy.deepcopy(value), time.monotonic(), pinned)

    def invalidate(self, name: str | None = None) -> None:
        """Forget one prompt's entries (all of them when ``name`` is None)."""
        with self._lock:
            if name is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[1] == name]:
                    del self._entries[key]


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _what(name: str, version: int | None, label: str | None) -> str:
    if label is not None:
        return f"{name!r} (label {label!r})"
    if version is not None:
        return f"{name!r} version {version}"
    return repr(name)


def _clean_model(metadata: Any) -> Any:
    """``metadata.model`` with stray request keys moved out of ``parameters``.

    Real templates carry ``messages`` and ``model`` inside ``parameters`` (seen in the
    cassettes); PromptLayer builds ``llm_kwargs`` with that ``model`` and those
    ``messages``, so both win here too (the OpenAI provider sends the ``messages``).
    """
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("model"), Mapping):
        return metadata
    model = dict(metadata["model"])
    params = dict(model.get("parameters") or {})
    for key in ("stream", "stream_options", "prompt", "input"):
        params.pop(key, None)
    if model.get("provider") != "openai":
        params.pop("messages", None)  # OpenAI-shaped: only OpenAI's llm_kwargs carry them
    if isinstance(params.get("model"), str):
        model["name"] = params.pop("model")
    model["parameters"] = params
    return {**metadata, "model": model}


class PromptLayerRegistry:
    """Prompt registry on PromptLayer (read through a cache, written through the API)."""

    kind = "promptlayer"

    def __init__(self, api: PromptLayerAPI, cache_ttl_seconds: float | None = None) -> None:
        self.api = api
        #: The drop-in's ``cache_ttl_seconds``: None is pl_magic's own policy (see the module
        #: docstring); a number is the SDK's: every entry fresh that long (0: no cache, every
        #: run rendered by PromptLayer), no pinning.
        self.cache_ttl_seconds = cache_ttl_seconds
        self._cache = _Cache(self.ttl)
        self._warned_custom: set[str] = set()
        self._warned_malformed: set[str] = set()

    def ttl(self) -> float:
        """Seconds a cached template is used before asking PromptLayer again."""
        return ttl_s() if self.cache_ttl_seconds is None else self.cache_ttl_seconds

    def rendering(self) -> str:
        """``server`` when PromptLayer renders every run (no cache), else ``local``."""
        return "server" if self.cache_ttl_seconds == 0 else rendering()

    # -- fetching templates --------------------------------------------------------------

    def prerendered(self, record: Mapping[str, Any], stream: bool) -> PreRendered | None:
        """The run as PromptLayer rendered it, when it did (see :func:`server_rendered_run`)."""
        if not getattr(record, "server_rendered", False):
            return None
        return server_rendered_run(record, stream)

    @staticmethod
    def run_context(options: Any) -> dict[str, Any]:
        """What the engine passes to :meth:`get` for a run (the SDK's fetch parameters)."""
        return {
            "input_variables": options.input_variables,
            "metadata_filters": options.metadata,
            "provider": options.provider,
            "model": options.model,
            "model_parameter_overrides": options.model_parameter_overrides,
        }

    def get(
        self,
        name: str,
        version: int | str | None = None,
        label: str | None = None,
        **run_context: Any,
    ) -> TemplateRecord:
        """A template record by name and label, or name and version, or the latest version.

        The label wins when both are given. ``run_context`` (from :meth:`run_context`) lets
        PromptLayer render it when only PromptLayer can (see the module docstring).
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError("A prompt name is required: give the registry prompt's name")
        number = None if version is None or label is not None else check_version(version)
        if run_context and self._server_renders(label, run_context):
            return self._server_rendered(name, number, label, run_context)
        record = self._cached(name, number, label)
        if run_context and not locally_renderable(record):
            return self._server_rendered(name, number, label, run_context)
        return record

    def _server_renders(self, label: str | None, context: Mapping[str, Any]) -> bool:
        sdk_cache = self.cache_ttl_seconds is not None and self.cache_ttl_seconds > 0
        # the SDK's cache steps aside for these (its should_skip_cache)
        if sdk_cache and (
            context.get("metadata_filters") or context.get("model_parameter_overrides")
        ):
            return True
        return self.rendering() == "server" or bool(
            label is not None and context.get("metadata_filters")
        )

    def _fetch(
        self, name: str, version: int | None, label: str | None, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        """One fetch; a 404 becomes the local registry's not-found errors."""
        params: dict[str, Any] = {}
        if version is not None:
            params["version"] = version
        if label is not None:
            params["label"] = label
        params.update(extra)
        try:
            data = self.api.get_template(name, params)
        except PromptLayerError as exc:
            if exc.status_code == 404:
                raise self._not_found(name, version, label) from None
            raise
        return checks.check_template_record(data, name, version, label)

    def _record(self, name: str, data: Mapping[str, Any], label: str | None) -> TemplateRecord:
        record = TemplateRecord(data)
        record.setdefault("prompt_name", name)
        record["metadata"] = _clean_model(record.get("metadata"))
        record["release_label"] = label
        if record.get("custom_provider") and record["prompt_name"] not in self._warned_custom:
            self._warned_custom.add(record["prompt_name"])
            notices.warn(
                f"prompt {record['prompt_name']!r} uses a PromptLayer custom provider, whose "
                "key pl_magic does not use: it runs on the template's provider with keys from "
                "the environment"
            )
        return record

    def _cached(self, name: str, version: int | None, label: str | None) -> TemplateRecord:
        key = ("template", name, version, label)
        hit = self._cache.get(key)
        if hit is not None and hit[1]:
            return TemplateRecord(hit[0])
        try:
            data = self._fetch(name, version, label, {"skip_input_variable_rendering": True})
        except PromptLayerUnavailableError as exc:
            if hit is None:
                raise PromptLayerUnavailableError(
                    f"{exc}; no copy of {_what(name, version, label)} was fetched before",
                    exc.status_code,
                ) from exc
            notices.warn(
                f"PromptLayer unreachable; using the copy of {_what(name, version, label)} "
                f"fetched {_age(hit[2])} ago"
            )
            self._cache.keep_serving(key)
            return TemplateRecord(hit[0])
        record = self._record(name, data, label)
        own_policy = self.cache_ttl_seconds is None
        self._cache.put(key, record, pinned=version is not None and own_policy)
        if own_policy:
            # the version a label or "latest" points at is now known: it never changes
            pinned = {**record, "release_label": None}
            self._cache.put(("template", name, record["version"], None), pinned, pinned=True)
        return TemplateRecord(copy.deepcopy(record))

    def _server_rendered(
        self, name: str, version: int | None, label: str | None, context: Mapping[str, Any]
    ) -> TemplateRecord:
        # PromptLayer would get bytes and PIL images as text: refused before the fetch.
        media.refuse_for_server(context.get("input_variables") or {})
        # The official SDK sends only the truthy ones (_prepare_get_prompt_template_params).
        extra = {k: v for k, v in context.items() if v}
        try:
            data = self._fetch(name, version, label, extra)
        except PromptLayerUnavailableError:
            hit = self._cache.get(("template", name, version, label))
            if hit is None:
                raise
            notices.warn(
                f"PromptLayer unreachable; rendering the copy of {_what(name, version, label)} "
                f"fetched {_age(hit[2])} ago locally"
            )
            return TemplateRecord(hit[0])
        record = self._record(name, data, label)
        record.server_rendered = True
        return record

    def _not_found(self, name: str, version: int | None, label: str | None) -> RegistryError:
        """The precise not-found error: no such prompt, or no such label/version of it."""
        if version is None and label is None:
            return PromptNotFoundError(name, self._names_quietly())
        try:
            latest = self._cached(name, None, None)
        except PlMagicError as exc:
            return exc if isinstance(exc, RegistryError) else PromptNotFoundError(name)
        if label is not None:
            try:
                known = list(self.labels(name))
            except PlMagicError:
                known = []
            return LabelNotFoundError(name, label, known)
        return VersionNotFoundError(name, version or 0, list(range(1, latest["version"] + 1)))

    def template(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``client.templates.get``: as the SDK's (server-rendered when inputs are given)."""
        params = dict(params or {})
        version, label = params.pop("version", None), params.pop("label", None)
        if params or self.rendering() == "server":  # PromptLayer's own answer, as the SDK's
            number = None if version is None else check_version(version)
            record = dict(self._fetch(name, number, label, params))
        else:
            record = dict(self.get(name, version=version, label=label))
        record.pop("release_label", None)
        return record

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached templates and labels (of one prompt, or all)."""
        self._cache.invalidate(name)

    # -- listing -------------------------------------------------------------------------

    def _items(self, label: str | None = None) -> list[dict[str, Any]]:
        """Every listed template (latest version of each prompt), all pages."""
        key = ("listing", None, label)
        try:
            items: list[dict[str, Any]] = []
            for page in range(1, _MAX_PAGES + 1):
                answer = self.api.list_templates(page=page, per_page=100, label=label)
                batch = checks.check_listing(answer)
                items.extend(batch)
                if not batch or not answer.get("has_next", False):
                    break
        except PromptLayerUnavailableError:
            hit = self._cache.get(key)
            if hit is None:
                raise
            notices.warn(f"PromptLayer unreachable; using the prompt list of {_age(hit[2])} ago")
            return list(hit[0])
        self._cache.put(key, items)
        return items

    def all(
        self, page: int = 1, per_page: int = 30, label: str | None = None
    ) -> list[dict[str, Any]]:
        """``client.templates.all``: one page of PromptLayer's listing."""
        return list(self.api.list_templates(page, per_page, label).get("items") or [])

    def names(self) -> list[str]:
        """Every prompt name, sorted."""
        return sorted({str(item["prompt_name"]) for item in self._items()})

    def _names_quietly(self) -> list[str]:
        try:
            return self.names()
        except PlMagicError:
            return []

    def versions(self, name: str) -> list[int]:
        """The version numbers of a prompt, ascending (1 to the latest)."""
        return list(range(1, self.get(name)["version"] + 1))

    def _label_rows(self, name: str, fresh: bool = False) -> list[dict[str, Any]]:
        key = ("labels", name, None)
        hit = None if fresh else self._cache.get(key)
        if hit is not None and hit[1]:
            return list(hit[0])
        prompt_id = self.get(name)["id"]
        try:
            rows = checks.check_label_rows(self.api.template_labels(prompt_id), name)
        except PromptLayerUnavailableError:
            if hit is None:
                raise
            return list(hit[0])
        self._cache.put(key, rows)
        return rows

    def labels(self, name: str) -> dict[str, int]:
        """Release labels of a prompt and the version each points at."""
        rows = self._label_rows(name)
        return {
            str(r["release_label"]): int(r["prompt_version_number"])
            for r in sorted(rows, key=lambda r: str(r.get("release_label")))
        }

    def list_prompts(self) -> list[dict[str, Any]]:
        """One summary per prompt, as the local registry's (labels fetched concurrently)."""
        latest = {}
        for item in self._items():
            try:
                latest[item["prompt_name"]] = checks.check_template_record(
                    item, item["prompt_name"]
                )
            except InvalidTemplateError as exc:  # listed, but it cannot run: say why once
                if item["prompt_name"] not in self._warned_malformed:
                    self._warned_malformed.add(item["prompt_name"])
                    notices.warn(f"{exc} (left out of the list)")
        names = sorted(latest)

        def labels_of(name: str) -> dict[str, int]:
            try:
                return self.labels(name)
            except PlMagicError:
                return {}

        with ThreadPoolExecutor(max_workers=8) as pool:
            all_labels = dict(zip(names, pool.map(labels_of, names), strict=True))
        out = []
        for name in names:
            item = latest[name]
            template = item.get("prompt_template") or {}
            model = (_clean_model(item.get("metadata")) or {}).get("model") or {}
            number = item["version"]
            out.append(
                {
                    "id": item.get("id"),
                    "prompt_name": name,
                    "versions": list(range(1, number + 1)),
                    "latest_version": number,
                    "labels": all_labels[name],
                    "provider": model.get("provider"),
                    "model": model.get("name"),
                    "type": template.get("type"),
                    "input_variables": blueprint.input_variables(template) if template else [],
                    "tags": item.get("tags") or [],
                    "commit_message": item.get("commit_message"),
                }
            )
        return out

    # -- writing -------------------------------------------------------------------------

    def publish(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Publish a new version (``POST /rest/prompt-templates``); PromptLayer's answer.

        ``body`` as the local registry's, except the base URL: PromptLayer names its base
        URLs (``provider_base_url_name``), set up in its dashboard; a raw
        ``provider_base_url`` is a local-registry feature and is refused.
        """
        if isinstance(body, Mapping) and body.get("provider_base_url"):
            raise InvalidInputError(
                "provider_base_url (a raw URL) works with the local registry only: on "
                "PromptLayer, add the base URL in its dashboard and publish with "
                "provider_base_url_name='NAME'"
            )
        checked = check_publish_body(body)
        name, labels = checked.name, checked.labels
        wire: dict[str, Any] = {
            "prompt_name": name,
            "prompt_template": checked.template,
            "metadata": checked.metadata,
            "commit_message": checked.commit_message,
            "tags": checked.tags,
            "release_labels": labels or None,
        }
        for key in ("provider_base_url_name", "parent_version_id"):
            if body.get(key) is not None:
                wire[key] = body[key]
        answer = checks.check_publish_answer(self.api.publish(wire), name)
        self._cache.invalidate(name)
        out = {
            **answer,
            "prompt_name": answer.get("prompt_name") or name,
            "release_labels": answer.get("release_labels") or labels,
            "tags": answer.get("tags") or wire["tags"],
        }
        if out.get("version_number") is None:
            # Older servers (the recorded cassettes) answer without it: ask which it is.
            out["version_number"] = self.get(name)["version"]
        return out

    def _label_id(self, name: str, label: str) -> int | None:
        for row in self._label_rows(name, fresh=True):
            if row.get("release_label") == label:
                return int(row["release_label_id"])
        return None

    def set_label(self, name: str, label: str, version: int | str) -> None:
        """Point ``label`` at ``version`` of ``name`` (creating or moving the label)."""
        check_label(label)
        number = check_version(version)
        self._cache.invalidate(name)  # the latest version and the labels, fresh
        record = self.get(name)
        latest = record["version"]
        if number > latest:
            raise VersionNotFoundError(name, number, list(range(1, latest + 1)))
        label_id = self._label_id(name, label)
        if label_id is None:
            self.api.create_label(int(record["id"]), label, number)
        else:
            self.api.move_label(label_id, number)
        self._cache.invalidate(name)

    def delete_label(self, name: str, label: str) -> None:
        """Remove a release label."""
        label_id = self._label_id(name, label)
        if label_id is None:
            raise LabelNotFoundError(name, label, list(self.labels(name)))
        self.api.delete_label(label_id)
        self._cache.invalidate(name)


# -- runs PromptLayer rendered ----------------------------------------------------------


def _parameters_of(llm_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The model parameters inside ``llm_kwargs`` (flat, or Google's nested config)."""
    params = {k: v for k, v in llm_kwargs.items() if k not in _STRUCTURAL}
    for key in ("generation_config", "config"):
        nested = llm_kwargs.get(key)
        if isinstance(nested, Mapping):
            params.update({k: v for k, v in nested.items() if k not in _GOOGLE_STRUCTURAL})
    return params


def server_rendered_run(record: Mapping[str, Any], stream: bool) -> PreRendered:
    """The spec, rendered template and (for OpenAI) native request of a template PromptLayer
    rendered.

    For OpenAI the request is PromptLayer's ``llm_kwargs`` as the official SDK sends them
    (plus ``stream``, and ``stream_options.include_usage`` for streamed chat); for the
    other providers the engine has the provider build it from the rendered template with
    the parameters of ``llm_kwargs`` (the same request on the wire).
    """
    name = record.get("prompt_name")
    model = ((record.get("metadata") or {}).get("model")) or {}
    llm_kwargs = record.get("llm_kwargs")
    if not model or not llm_kwargs:
        raise ConfigurationError(
            f"Prompt {name!r} version {record.get('version')} has no model on PromptLayer: "
            "set one in its registry, or pass provider= and model="
        )
    provider = str(model.get("provider"))
    spec = ModelSpec(
        provider=provider,
        name=str(llm_kwargs.get("model") or model.get("name") or ""),
        parameters=_parameters_of(llm_kwargs),
        api_type=model.get("api_type"),
        base_url=(record.get("provider_base_url") or {}).get("url"),
    )
    rendered = dict(record["prompt_template"])
    if provider not in NATIVE_KWARGS_PROVIDERS:
        return PreRendered(spec, rendered, None)
    request = copy.deepcopy(dict(llm_kwargs))
    request["stream"] = stream
    if stream and provider == "openai" and spec.api_type in (None, "chat-completions"):
        request["stream_options"] = {"include_usage": True}
    return PreRendered(spec, rendered, request)
