"""What pl_magic knows about a provider without loading it: one :class:`ProviderInfo` each.

The table of them is :data:`pl_magic.providers.PROVIDERS`. Everything here is plain data, so
reading it imports neither the provider's module nor its SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Provider


@dataclass(frozen=True)
class ProviderInfo:
    """One provider family: where its adapter is, and the facts the other layers read.

    A new provider is one module with its :class:`~pl_magic.providers.base.Provider`
    subclass and one ``ProviderInfo`` in :data:`pl_magic.providers.PROVIDERS`. Its key
    variables must be secrets by name (:func:`pl_magic.core.errors.is_secret_name`, e.g.
    ``..._API_KEY``) so that they are redacted and kept from child processes with no
    further edit; a test checks it.
    """

    #: The name templates and users give (PromptLayer's ``metadata.model.provider``).
    name: str
    #: ``"module:Class"`` of the adapter, imported on first use; or a callable returning the
    #: adapter (what :mod:`pl_magic.testing` registers).
    adapter: str | Callable[[], Provider]
    #: The model used when a template or a provider override names none.
    default_model: str = ""
    #: The environment variables that hold the provider's keys (the adapter reads the
    #: first one set; the SDK may read others, as Anthropic's ``ANTHROPIC_AUTH_TOKEN``):
    #: redacted however short. Empty: no key, as Vertex AI's Google credentials.
    key_env_vars: tuple[str, ...] = ()
    #: The environment variables that move the provider's endpoint (their origins are
    #: trusted with the key).
    base_url_env_vars: tuple[str, ...] = ()
    #: Prefixes of bare model names that belong to this provider (``gpt-`` → openai).
    model_prefixes: tuple[str, ...] = ()
    #: Models offered in the widget (any other name can be typed).
    suggested_models: tuple[str, ...] = ()
    #: PromptLayer's ``function_name`` for a call (the official SDK's name for the function
    #: it wrapped); the two tables below refine it.
    function_name: str = ""
    #: ``function_name`` per API type (``api_type`` absent: :attr:`default_api_type`'s);
    #: an API type not listed gets :attr:`function_name`.
    function_names_by_api_type: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    #: The API type of a template that names none.
    default_api_type: str | None = None
    #: ``(part, function_name)``: a model whose name contains ``part`` is called through
    #: another SDK function (Claude on Vertex AI); the first match wins.
    function_names_by_model: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Read-only, so that the frozen descriptor cannot change under the table.
        object.__setattr__(
            self,
            "function_names_by_api_type",
            MappingProxyType(dict(self.function_names_by_api_type)),
        )

    def function_name_for(self, model: str, api_type: str | None) -> str:
        """PromptLayer's ``function_name`` for a call of ``model`` through ``api_type``."""
        for part, name in self.function_names_by_model:
            if part in model:
                return name
        if self.function_names_by_api_type:
            chosen = api_type or self.default_api_type or ""
            return self.function_names_by_api_type.get(chosen, self.function_name)
        return self.function_name

    def claims(self, model: str) -> bool:
        """True when the bare model name ``model`` starts with one of :attr:`model_prefixes`."""
        return model.startswith(self.model_prefixes) if self.model_prefixes else False
