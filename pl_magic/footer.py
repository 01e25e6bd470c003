"""The one-line summary under a reply, shared by the CLI, the cell magic and the widget.

``support-reply v2 (prod) · openai/gpt-4o-mini · ttft 0.21s · 0.84s · 12→31 tokens · $0.0001 ·
request 3f2a…`` — read from the run log, since PromptLayer's result dict carries no timings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reply_text(result: Mapping[str, Any]) -> str:
    """The assistant's reply in a ``run()`` result or stream chunk."""
    template = (result.get("prompt_blueprint") or {}).get("prompt_template") or {}
    if template.get("type") == "completion":
        blocks = template.get("content") or []
    else:
        messages = template.get("messages") or []
        blocks = messages[-1].get("content") if messages else []
    if not blocks:
        return ""
    last = blocks[-1]
    return str(last.get("text", "")) if isinstance(last, Mapping) else ""


def footer(row: Mapping[str, Any]) -> str:
    """The footer line for a run-log row."""
    label = f" ({row['release_label']})" if row.get("release_label") else ""
    parts = [
        f"{row.get('prompt_name')} v{row.get('prompt_version')}{label}",
        f"{row.get('provider')}/{row.get('model')}",
    ]
    if row.get("ttft_s") is not None:
        parts.append(f"ttft {row['ttft_s']:.2f}s")
    if row.get("latency_s") is not None:
        parts.append(f"{row['latency_s']:.2f}s")
    if row.get("input_tokens") is not None or row.get("output_tokens") is not None:
        parts.append(f"{row.get('input_tokens') or 0}→{row.get('output_tokens') or 0} tokens")
    cost = row.get("cost_usd")
    parts.append(f"${cost:.6f}" if cost is not None else "$—")
    if row.get("status") not in (None, "ok"):
        parts.append(str(row["status"]))
    parts.append(f"request {str(row.get('request_id'))[:12]}")
    return " · ".join(parts)


def footer_for_result(result: Mapping[str, Any]) -> str:
    """The footer for a ``run()`` result (looked up in the local log by request id)."""
    from .client import default_client

    request_id = result.get("request_id")
    row = default_client().runlog.get(str(request_id)) if request_id else None
    if row is None:  # not logged (--no-log): what the blueprint knows
        bp = result.get("prompt_blueprint") or {}
        model = (bp.get("metadata") or {}).get("model") or {}
        row = {
            "prompt_name": bp.get("prompt_name"),
            "prompt_version": bp.get("prompt_version"),
            "release_label": bp.get("release_label"),
            "provider": model.get("provider"),
            "model": model.get("name"),
            "request_id": request_id or "not logged",
        }
    return footer(row)
