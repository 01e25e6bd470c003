"""Provider families, found from one table of :class:`ProviderInfo` descriptors.

Each adapter module is imported only when a run needs it, so that ``import pl_magic`` never
imports a provider SDK; the descriptors are plain data. Adding a provider is its own module
plus one entry in :data:`PROVIDERS`.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator

from ..core.errors import UnknownProviderError, register_key_names
from ._structured import StructuredOutput
from ._structured import of as structured_output
from .base import Provider
from .info import ProviderInfo

__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderInfo",
    "StructuredOutput",
    "get_provider",
    "info",
    "provider_for_model",
    "registered",
    "structured_output",
    "suggested_models",
    "supported",
]

_OPENAI_FUNCTIONS = {  # the official SDK's MAP_PROVIDER_TO_FUNCTION_NAME
    "chat-completions": "openai.chat.completions.create",
    "completions": "openai.completions.create",
    "responses": "openai.responses.create",
}

#: Provider name -> descriptor, in the order model-name prefixes are tried.
PROVIDERS: dict[str, ProviderInfo] = {
    p.name: p
    for p in (
        ProviderInfo(
            name="openai",
            adapter="pl_magic.providers.openai:OpenAIProvider",
            default_model="gpt-4o-mini",
            key_env_vars=("OPENAI_API_KEY",),
            base_url_env_vars=("OPENAI_BASE_URL",),
            model_prefixes=("gpt-", "o1", "o3", "o4-", "chatgpt-"),
            suggested_models=("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "o4-mini"),
            function_name=_OPENAI_FUNCTIONS["responses"],
            function_names_by_api_type=_OPENAI_FUNCTIONS,
            default_api_type="chat-completions",
        ),
        ProviderInfo(
            name="anthropic",
            adapter="pl_magic.providers.anthropic:AnthropicProvider",
            default_model="claude-sonnet-4-6",
            key_env_vars=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
            base_url_env_vars=("ANTHROPIC_BASE_URL",),
            model_prefixes=("claude-",),
            suggested_models=("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-1"),
            function_name="anthropic.messages.create",
        ),
        ProviderInfo(
            name="google",
            adapter="pl_magic.providers.google:GoogleProvider",
            default_model="gemini-2.5-flash",
            key_env_vars=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
            base_url_env_vars=("GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL"),
            model_prefixes=("gemini-",),
            suggested_models=("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"),
            # pl_magic sends generate_content's own arguments, for the API and for Vertex
            function_name="google.model.generate_content",
        ),
        ProviderInfo(
            name="vertexai",
            adapter="pl_magic.providers.vertexai:VertexAIProvider",
            default_model="gemini-2.5-flash",
            base_url_env_vars=("GOOGLE_VERTEX_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL"),
            suggested_models=("gemini-2.5-flash", "gemini-2.5-pro", "claude-sonnet-4-5@20250929"),
            function_name="google.model.generate_content",
            function_names_by_model=(("claude", "anthropic.messages.create"),),
        ),
    )
}
# Each provider's keys are redacted however short (a test key, say): see core.errors.
register_key_names(name for entry in PROVIDERS.values() for name in entry.key_env_vars)

_instances: dict[str, Provider] = {}
_lock = threading.Lock()
# The blocks of registered() open now, per name (oldest first), and what the table held
# before the first of them.
_overrides: dict[str, list[tuple[object, ProviderInfo]]] = {}
_before_overrides: dict[str, tuple[ProviderInfo | None, Provider | None]] = {}


def supported() -> list[str]:
    """The provider names pl_magic serves."""
    return sorted(PROVIDERS)


def info(name: str) -> ProviderInfo:
    """The descriptor of provider ``name``; :class:`UnknownProviderError` otherwise."""
    if not isinstance(name, str) or name not in PROVIDERS:
        raise UnknownProviderError(str(name), supported())
    return PROVIDERS[name]


def _make(entry: ProviderInfo) -> Provider:
    if callable(entry.adapter):
        return entry.adapter()
    module_name, cls_name = entry.adapter.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    provider: Provider = cls()
    return provider


def get_provider(name: str) -> Provider:
    """The (shared) provider object for ``name``; :class:`UnknownProviderError` otherwise."""
    if not isinstance(name, str) or name not in PROVIDERS:
        raise UnknownProviderError(str(name), supported())
    with _lock:
        provider = _instances.get(name)
        if provider is None:
            provider = _instances[name] = _make(PROVIDERS[name])
        return provider


def provider_for_model(model: str) -> str | None:
    """The provider a bare model name belongs to by its prefix (``claude-…`` → anthropic),
    or None when no prefix matches."""
    for entry in PROVIDERS.values():
        if entry.claims(model):
            return entry.name
    return None


def suggested_models() -> dict[str, list[str]]:
    """The models offered per provider (the widget's model list)."""
    return {name: list(entry.suggested_models) for name, entry in PROVIDERS.items()}


@contextlib.contextmanager
def registered(*entries: ProviderInfo) -> Iterator[None]:
    """The table with ``entries`` in it for the block (each replacing the entry of its
    name, if any), then as before, with the adapters made before the block.

    This is how :func:`pl_magic.testing.fake_provider` stands in for a provider: every
    surface finds providers here, so a substitute serves ``run``, ``%%plrun`` and
    ``run_many`` alike. The table is the process's: while blocks overlap (nested, or in
    threads), the newest open one serves a name, and a block that ends removes only its
    own entries, whatever the order the blocks end in.
    """
    token = object()
    names = [entry.name for entry in entries]
    with _lock:
        for entry in entries:
            if entry.name not in _overrides:
                _before_overrides[entry.name] = (
                    PROVIDERS.get(entry.name),
                    _instances.get(entry.name),
                )
                _overrides[entry.name] = []
            _overrides[entry.name].append((token, entry))
            PROVIDERS[entry.name] = entry
            _instances.pop(entry.name, None)
    try:
        yield
    finally:
        with _lock:
            for name in dict.fromkeys(names):
                stack = [(t, e) for t, e in _overrides[name] if t is not token]
                _instances.pop(name, None)
                if stack:
                    _overrides[name] = stack
                    PROVIDERS[name] = stack[-1][1]
                    continue
                del _overrides[name]
                old_entry, old_instance = _before_overrides.pop(name)
                if old_entry is None:
                    PROVIDERS.pop(name, None)
                else:
                    PROVIDERS[name] = old_entry
                if old_instance is not None:
                    _instances[name] = old_instance
