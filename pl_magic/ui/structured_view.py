"""How a cell shows a structured (JSON) reply and a reply's tool calls.

Both are model output, so hostile: every piece of text (the JSON, a tool's name, its
arguments, its result) is HTML-escaped here, whatever it holds. A structured reply (a run
whose ``response_format`` asks for JSON) shows as formatted JSON in a ``<details>`` that
folds; while it streams, JSON that does not parse yet shows as the text so far. Tool calls
show under the reply's text: the function's name, its arguments as formatted JSON (as far
as they came, while streaming) and, once the tool loop ran it, the tool's result.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.blueprint import reply_text
from ..core.inert import escape_controls

_PRE_STYLE = (
    "white-space:pre-wrap;word-break:break-word;margin:0;"
    "font-family:var(--jp-code-font-family,monospace)"
)
#: Characters of a tool result shown in the cell (the log and the result keep all of it).
RESULT_LIMIT = 2000


@dataclass
class ReplyParts:
    """What a view shows of a run's reply (read from a result's or a chunk's blueprint)."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: The run's ``response_format`` asks for JSON.
    structured: bool = False


def reply_parts(prompt_blueprint: Mapping[str, Any] | None) -> ReplyParts:
    """The reply's text, its tool calls and whether it is structured, from a blueprint."""
    from ..providers import structured_output  # (not at %load_ext: see docs/architecture.md)

    blueprint = prompt_blueprint or {}
    template = blueprint.get("prompt_template") or {}
    messages = template.get("messages") or [] if isinstance(template, Mapping) else []
    last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
    calls = last.get("tool_calls") if last.get("role") == "assistant" else None
    model = (blueprint.get("metadata") or {}).get("model") or {}
    parameters = model.get("parameters") if isinstance(model, Mapping) else None
    structured = isinstance(parameters, Mapping) and structured_output(parameters) is not None
    return ReplyParts(
        reply_text(blueprint),
        [dict(c) for c in calls or [] if isinstance(c, Mapping)],
        structured,
    )


def _pre(text: str, css_class: str = "") -> str:
    attr = f' class="{css_class}"' if css_class else ""
    return f'<pre{attr} style="{_PRE_STYLE}">{html.escape(text)}</pre>'


def pretty_json(text: str) -> str | None:
    """``text`` as indented JSON, or None when it does not parse (yet)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # (model output nested past Python's stack)
        return None
    return json.dumps(value, indent=2, ensure_ascii=False)


def _summary(text: str) -> str:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # (model output nested past Python's stack)
        return "JSON"
    if isinstance(value, dict):
        return f"JSON object · {len(value)} field{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"JSON array · {len(value)} item{'s' if len(value) != 1 else ''}"
    return "JSON"


def json_html(text: str, cursor: str = "") -> str:
    """A structured reply: formatted JSON in a ``<details>`` (open) when ``text`` parses,
    else the text as it is (a reply still streaming, or one that is not JSON); escaped."""
    pretty = pretty_json(text)
    if pretty is None:
        return _pre(text + cursor)
    return (
        '<details open class="pl-magic-json"><summary style="cursor:pointer;color:#757575">'
        f"{html.escape(_summary(text))}</summary>{_pre(pretty + cursor)}</details>"
    )


def _call_parts(call: Mapping[str, Any]) -> tuple[str, str, Any]:
    """(name, arguments as shown, id) of a PromptLayer (OpenAI-shaped) tool call."""
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    name = function.get("name")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    shown = pretty_json(arguments) if arguments.strip() else "{}"
    return (
        str(name if name is not None else "?"),
        shown if shown is not None else arguments,
        call.get("id"),
    )


def _cut(text: str) -> str:
    if len(text) <= RESULT_LIMIT:
        return text
    return text[:RESULT_LIMIT] + f"… ({len(text):,} characters)"


def tool_calls_html(
    calls: Sequence[Mapping[str, Any]], results: Mapping[Any, str] | None = None
) -> str:
    """The tool calls of a reply, under its text: each call's name and arguments (as JSON
    when they parse) and, when ``results`` has one for its id, the tool's result; escaped."""
    if not calls:
        return ""
    items = []
    for call in calls:
        name, arguments, call_id = _call_parts(call)
        result = (results or {}).get(call_id) if call_id is not None else None
        shown_result = (
            '<div style="color:#757575;margin-top:2px">result</div>' + _pre(_cut(result))
            if result is not None
            else ""
        )
        items.append(
            '<details open class="pl-magic-tool-call" style="margin-top:4px">'
            '<summary style="cursor:pointer"><span style="color:#757575">tool call</span> '
            f"<code>{html.escape(name)}</code></summary>"
            f"{_pre(arguments, 'pl-magic-tool-arguments')}{shown_result}</details>"
        )
    return f'<div class="pl-magic-tool-calls">{"".join(items)}</div>'


def tool_calls_text(
    calls: Sequence[Mapping[str, Any]], results: Mapping[Any, str] | None = None
) -> str:
    """The tool calls as plain text lines (``text/plain`` and a terminal), with the model's
    control characters made inert (a terminal escape in a tool's name stays text)."""
    lines = []
    for call in calls:
        name, arguments, call_id = _call_parts(call)
        lines.append(f"→ tool call {name}({' '.join(arguments.split())})")
        result = (results or {}).get(call_id) if call_id is not None else None
        if result is not None:
            lines.append(f"  ← {' '.join(_cut(result).split())}")
    return escape_controls("\n".join(lines))
