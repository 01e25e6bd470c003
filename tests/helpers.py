"""Small builders shared by tests: PromptLayer-shaped templates and log queries."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import pl_magic
from pl_magic.core import config, local_target


def text(t: str) -> list[dict[str, Any]]:
    """PromptLayer content blocks for one text."""
    return [{"type": "text", "text": t}]


def chat(*messages: tuple[str, str], fmt: str = "f-string") -> dict[str, Any]:
    """A chat template from (role, text) pairs."""
    return {
        "type": "chat",
        "messages": [
            {"role": role, "content": text(t), "template_format": fmt} for role, t in messages
        ],
    }


def completion(t: str, fmt: str = "f-string") -> dict[str, Any]:
    """A completion template."""
    return {"type": "completion", "content": text(t), "template_format": fmt}


def model(
    name: str = "gpt-4o-mini",
    provider: str = "openai",
    api_type: str | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """PromptLayer metadata for a model."""
    m: dict[str, Any] = {"provider": provider, "name": name, "parameters": parameters}
    if api_type:
        m["api_type"] = api_type
    return {"model": m}


def publish(
    name: str, template: dict[str, Any], meta: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Publish through the public API."""
    body = {
        "prompt_name": name,
        "prompt_template": template,
        "metadata": meta if meta is not None else model(),
        **extra,
    }
    return pl_magic.publish(body)


def runs() -> list[dict[str, Any]]:
    """Every row of the local run log, oldest first."""
    conn = sqlite3.connect(config.db_path())
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY started_at")]
    finally:
        conn.close()


def scores() -> list[dict[str, Any]]:
    """Every row of the local scores table, in the order they were written."""
    conn = sqlite3.connect(config.db_path())
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM scores ORDER BY id")]
    finally:
        conn.close()


# -- every provider route, as the fake provider server serves it ------------------------------


@dataclass(frozen=True)
class Route:
    """One provider route a test runs through the fake server."""

    id: str
    env: str  # fixture applying the environment ("" for the local model)
    provider: str
    model: str
    kind: str  # the fake server's Recorded.kind
    api_type: str | None = None


#: Every route, the embedded local model last (its env is "": no key, no fixture).
ROUTES = [
    Route("openai-chat", "openai_env", "openai", "gpt-4o-mini", "openai.chat"),
    Route(
        "openai-responses", "openai_env", "openai", "gpt-4o-mini", "openai.responses", "responses"
    ),
    Route("anthropic", "anthropic_env", "anthropic", "claude-sonnet-4-5", "anthropic.messages"),
    Route(
        "claude-vertex",
        "anthropic_vertex_env",
        "vertexai",
        "claude-sonnet-4-5@20250929",
        "anthropic.vertex",
    ),
    Route("gemini", "gemini_env", "google", "gemini-2.5-flash", "gemini"),
    Route("gemini-vertex", "vertex_env", "google", "gemini-2.5-flash", "vertex.gemini"),
    Route("local", "", "openai", local_target.LOCAL_MODEL_NAME, "openai.chat"),
]
