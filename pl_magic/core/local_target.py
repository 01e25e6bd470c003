"""How a template names the embedded local model, and where a run of such a template goes.

The model's server itself (starting, stopping, its state) is :mod:`pl_magic.providers.local`;
this module is the part that the registry (starter prompts), authoring and the engine's
routing share, so it imports nothing but the core.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blueprint import ModelSpec

#: The ``provider_base_url.name`` that marks a template as using the local model.
LOCAL_NAME = "pl_magic-local"
#: The model name the embedded server answers to (its ``--model_alias``).
LOCAL_MODEL_NAME = "smollm2-135m-instruct"
#: Stored in templates; replaced by the running server's URL at run time.
PLACEHOLDER_URL = "http://127.0.0.1:0/v1"
ENV_BASE_URL = "PL_MAGIC_LOCAL_BASE_URL"
ENV_MODEL_NAME = "PL_MAGIC_LOCAL_MODEL_NAME"
#: The provider a local model's run shows as (log, footer, DataFrames, charts). The request
#: itself goes through the OpenAI adapter (llama.cpp's server speaks OpenAI's API), and
#: PromptLayer is told ``openai``: it knows no provider ``local``.
LOCAL_PROVIDER = "local"
#: The adapter a run shown as :data:`LOCAL_PROVIDER` went through.
LOCAL_WIRE_PROVIDER = "openai"


def base_url_spec() -> dict[str, Any]:
    """The ``provider_base_url`` that marks a template as using the local model."""
    return {"name": LOCAL_NAME, "provider": "openai", "url": PLACEHOLDER_URL}


def model_metadata(**parameters: Any) -> dict[str, Any]:
    """PromptLayer's ``metadata`` for the local model with these parameters."""
    return {"model": {"provider": "openai", "name": LOCAL_MODEL_NAME, "parameters": parameters}}


def is_local(provider_base_url: Any) -> bool:
    """True when a template's ``provider_base_url`` names the local model."""
    return isinstance(provider_base_url, Mapping) and provider_base_url.get("name") == LOCAL_NAME


def route_to_local_model(record: Mapping[str, Any], spec: ModelSpec) -> None:
    """Point ``spec`` at the right server when its template names the local model.

    - a provider override already dropped the template's base URL: nothing to do;
    - ``PL_MAGIC_LOCAL_BASE_URL`` set: the user's own server (and ``PL_MAGIC_LOCAL_MODEL_NAME``
      as the model name, unless the run asked for another model);
    - a different model asked for (``model=``): the embedded server serves one model only,
      so the run goes to the provider's own endpoint rather than silently answering with
      SmolLM2 under another name;
    - otherwise: the placeholder, replaced by :func:`server_url` once rendering succeeded.

    A spec left pointing at a local server gets ``local_model=True`` (providers adapt the
    request to llama.cpp's server with it).
    """
    if not is_local(record.get("provider_base_url")) or spec.base_url is None:
        return
    spec.local_model = True
    template_model = ((record.get("metadata") or {}).get("model") or {}).get("name")
    own_url = os.environ.get(ENV_BASE_URL)
    if own_url:
        spec.base_url = own_url.rstrip("/")
        own_model = os.environ.get(ENV_MODEL_NAME)
        if own_model and spec.name == template_model:
            spec.name = own_model
    elif spec.name != template_model:
        spec.base_url = None
        spec.local_model = False
    else:
        spec.base_url = PLACEHOLDER_URL


def shown_provider(spec: ModelSpec) -> str:
    """The provider a run on ``spec`` is logged and shown as: ``local`` for the local
    model (so ``local/smollm2-135m-instruct`` never reads as an OpenAI model), else its own."""
    return LOCAL_PROVIDER if spec.local_model else spec.provider


def wire_provider(provider: str) -> str:
    """The provider PromptLayer is told for a run logged as ``provider``."""
    return LOCAL_WIRE_PROVIDER if provider == LOCAL_PROVIDER else provider
