"""Provider families. Each module is imported only when a run needs it, so that
``import pl_magic`` never imports a provider SDK."""

from __future__ import annotations

import importlib
import threading

from ..core.errors import UnknownProviderError
from .base import Provider

# provider name -> "module:Class"; the module is imported on first use.
PROVIDERS = {
    "openai": "pl_magic.providers.openai:OpenAIProvider",
    "anthropic": "pl_magic.providers.anthropic:AnthropicProvider",
    "google": "pl_magic.providers.google:GoogleProvider",
    "vertexai": "pl_magic.providers.vertexai:VertexAIProvider",
}

_instances: dict[str, Provider] = {}
_lock = threading.Lock()


def supported() -> list[str]:
    """The provider names pl_magic serves."""
    return sorted(PROVIDERS)


def get_provider(name: str) -> Provider:
    """The (shared) provider object for ``name``; :class:`UnknownProviderError` otherwise."""
    if not isinstance(name, str) or name not in PROVIDERS:
        raise UnknownProviderError(str(name), supported())
    with _lock:
        provider = _instances.get(name)
        if provider is None:
            module_name, cls_name = PROVIDERS[name].split(":")
            cls = getattr(importlib.import_module(module_name), cls_name)
            provider = _instances[name] = cls()
        return provider
