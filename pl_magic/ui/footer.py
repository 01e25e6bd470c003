"""The one-line summary shown under a run's reply (``%%plrun``, the form and the CLI).

    — capital-city v2 (prod) · local/smollm2-135m-instruct · ttft 0.21s · 0.84s
      · 37→8 tokens · $— · request 3f2a…          (one line; wrapped here)

Built from a run-log row (:meth:`pl_magic.runlog.sqlite.RunLog.get`, or a row of
``pl_magic.runs()``), or from ``run()``'s final result, whose row is then looked up. Unknown
values show as ``—``: a local server may not report tokens when streaming, and a model
genai-prices does not know has no cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import local_target
from ..core.errors import first_message, in_words_of
from ..core.plain_data import is_missing

DASH = "—"
SEP = " · "


def _seconds(value: Any) -> str:
    return DASH if is_missing(value) else f"{float(value):.2f}s"


def _count(value: Any) -> str:
    return DASH if is_missing(value) else str(int(value))


def format_cost(value: Any) -> str:
    """``$0.000123`` style (more digits for tiny amounts), ``$—`` when unknown."""
    if is_missing(value):
        return f"${DASH}"
    cost = float(value)
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


def short_id(request_id: Any, keep: int = 8) -> str:
    """The first ``keep`` characters of a request id followed by an ellipsis."""
    text = str(request_id or "")
    return text if len(text) <= keep else text[:keep] + "…"


def result_reply_text(result: Mapping[str, Any]) -> str:
    """The reply's text in a ``run()`` result or stream chunk (the text so far, for a chunk).

    Chat: every text block of the last assistant message, so a reply in several blocks is
    printed whole (``core.blueprint.reply_text`` reads only the last block, the one the
    engine grows while streaming); completion: the last content block (where PromptLayer's
    blueprint puts the completion).
    """
    from ..core.blueprint import content_text

    template = ((result.get("prompt_blueprint") or {}).get("prompt_template")) or {}
    if template.get("type") == "completion":
        blocks = template.get("content") or []
        return str(blocks[-1].get("text", "")) if blocks and isinstance(blocks[-1], dict) else ""
    for msg in reversed(template.get("messages") or []):
        if msg.get("role") == "assistant":
            return content_text(msg.get("content"))
    return ""


def _row_from_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The log row of ``run()``'s final result, or what its blueprint says when not logged."""
    request_id = result.get("request_id")
    if request_id:
        from ..runlog.sqlite import RunLog

        row = RunLog().get(str(request_id))
        if row is not None:
            return row
    blueprint = result.get("prompt_blueprint") or {}
    model = (blueprint.get("metadata") or {}).get("model") or {}
    provider = model.get("provider")
    if provider == local_target.LOCAL_WIRE_PROVIDER and local_target.is_local(
        blueprint.get("provider_base_url")
    ):
        provider = local_target.LOCAL_PROVIDER  # as the log would say
    return {
        "request_id": request_id,
        "prompt_name": blueprint.get("prompt_name"),
        "prompt_version": blueprint.get("prompt_version"),
        "release_label": blueprint.get("release_label"),
        "provider": provider,
        "model": model.get("name"),
        "status": "ok",
    }


def _recorded_date(request_id: str) -> str:
    """When the run a replayed one was served from ran (``2026-12-03 11:22`` UTC)."""
    from ..runlog.sqlite import RunLog

    try:
        source = RunLog().get(request_id)
    except Exception:  # (the footer never fails a run that succeeded)
        source = None
    started = str((source or {}).get("started_at") or "")
    return started[:16].replace("T", " ") + " UTC" if started else DASH


def footer(run: Mapping[str, Any], full_request_id: bool = False) -> str:
    """The footer line of one run: a run-log row, or ``run()``'s final result dict.

    ``full_request_id`` shows the whole id (the CLI does, so that it can be copied into
    ``track.score``); otherwise its first 8 characters.
    """
    row = _row_from_result(run) if "prompt_blueprint" in run else dict(run)
    name = row.get("prompt_name") or "(no prompt)"
    title = f"{name} v{row['prompt_version']}" if row.get("prompt_version") else str(name)
    if row.get("release_label"):
        title += f" ({row['release_label']})"
    parts = [f"{DASH} {title}", f"{row.get('provider') or DASH}/{row.get('model') or DASH}"]
    if row.get("cached_from"):
        parts.append(f"replayed from {_recorded_date(str(row['cached_from']))}")
    status = row.get("status") or "ok"
    if status != "ok":
        category = row.get("error_category")
        parts.append(f"{status} ({category})" if category else str(status))
    parts.append(f"ttft {_seconds(row.get('ttft_s'))}")
    parts.append(_seconds(row.get("latency_s")))
    tokens_in, tokens_out = row.get("input_tokens"), row.get("output_tokens")
    if is_missing(tokens_in) and is_missing(tokens_out):
        parts.append(f"tokens {DASH}")
    else:
        parts.append(f"{_count(tokens_in)}→{_count(tokens_out)} tokens")
    parts.append(format_cost(row.get("cost_usd")))
    request_id = row.get("request_id")
    if request_id:
        parts.append(f"request {request_id if full_request_id else short_id(request_id)}")
    return SEP.join(parts)


def comparison(runs: Any, out: str | None = None, surface: str = "python") -> tuple[str, str]:
    """The one line that sums up a comparison's runs DataFrame, and its status (``error``
    when a run failed, ``cancelled`` when one was stopped, else ``ok``)::

        4 runs · 4 ok · mean latency 0.36s · $0.000412 → df
        4 runs · 4 failed (first: openai auth error (HTTP 401): …)

    Failures lead, with the first error on one line (in the words of ``surface``, see
    :func:`~pl_magic.core.errors.in_words_of`); the mean latency is over the runs that
    ended ok; ``out``: the variable the DataFrame was stored in.
    """
    statuses = [str(s) for s in runs["status"]]
    count = {s: statuses.count(s) for s in ("ok", "error", "cancelled", "skipped")}
    total = len(statuses)
    parts = [f"{total} run" + ("" if total == 1 else "s")]
    if count["error"]:
        first = first_message(runs["error"], limit=200) if "error" in runs else None
        shown = f" (first: {in_words_of(first, surface)})" if first else ""
        parts.append(f"{count['error']} failed{shown}")
    if count["ok"] or not count["error"]:
        parts.append(f"{count['ok']} ok")
    if count["cancelled"]:
        parts.append(f"{count['cancelled']} cancelled")
    if count["skipped"]:
        parts.append(f"{count['skipped']} skipped (budget)")
    latencies = [
        float(v)
        for v, status in zip(runs["latency_s"], statuses, strict=True)
        if status == "ok" and not is_missing(v)
    ]
    if latencies:
        parts.append(f"mean latency {_seconds(sum(latencies) / len(latencies))}")
    costs = [float(v) for v in runs["cost_usd"] if not is_missing(v)]
    if costs or count["ok"]:
        parts.append(format_cost(sum(costs) if costs else None))
    status = "error" if count["error"] else "cancelled" if count["cancelled"] else "ok"
    return SEP.join(parts) + (f" → {out}" if out else ""), status
