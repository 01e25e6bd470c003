"""PromptLayer's (OpenAI-shaped) chat messages, read once for the providers that need turns.

Anthropic's Messages API and Gemini's ``contents`` share one shape: the system prompt stands
apart from the turns, a tool result is part of a user turn, and two turns in a row never
have the same role. This module reads the PromptLayer side of that (messages, content
blocks, data: URLs, tool calls, function tools, ``tool_choice``); each provider module keeps
only how its wire spells a block (:class:`TurnShape`) and a tool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..core.blueprint import prompt_text

#: Roles whose text becomes the system prompt, wherever they stand in the list.
SYSTEM_ROLES = ("system", "developer")
#: Roles that carry a tool's result (``function`` is OpenAI's older name).
TOOL_ROLES = ("tool", "function")


class ToolCall(NamedTuple):
    """One entry of an assistant message's ``tool_calls``, its arguments parsed."""

    id: Any
    name: Any
    arguments: Any


class FunctionTool(NamedTuple):
    """One ``{"type": "function", "function": {...}}`` entry of a template's ``tools``."""

    name: Any
    description: Any
    parameters: Any


@dataclass(frozen=True)
class TurnShape:
    """How one provider's wire spells a turn and its blocks."""

    #: The key holding a turn's blocks (``content`` for Anthropic, ``parts`` for Gemini).
    key: str
    #: The role name of the model's own turns (``assistant`` or ``model``).
    assistant_role: str
    #: A text block.
    text: Callable[[Any], dict[str, Any]]
    #: An image block, from an ``image_url`` block's URL.
    image: Callable[[str], dict[str, Any]]
    #: Block types already in the provider's shape, kept as they are.
    native_types: frozenset[str] = frozenset()
    #: A PromptLayer ``media`` block (``{"title", "type", "url"}``: a PDF or an image, its URL
    #: a ``data:`` URL or an http(s) one), as the provider's block; None: left out.
    media: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


def data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a base64 ``data:`` URL (``image/png`` when the URL
    names no type), or None for any other URL."""
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return head or "image/png", data
    return None


def _pieces(content: Any) -> Iterator[tuple[str, Any]]:
    """``("text", text)``, ``("image", url)``, ``("media", media)`` and ``("native", block)``
    for a message's content (a string or a list of blocks); empty text and unreadable blocks
    are skipped."""
    if isinstance(content, str):
        if content:
            yield "text", content
        return
    for block in content or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            if block.get("text"):
                yield "text", block["text"]
        elif kind == "image_url":
            image = block.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                yield "image", url
        elif kind == "media":
            media = block.get("media")
            if isinstance(media, Mapping) and isinstance(media.get("url"), str):
                yield "media", media
        else:
            yield "native", block


def texts(content: Any) -> list[Any]:
    """The texts of a message's content, in order."""
    return [value for kind, value in _pieces(content) if kind == "text"]


def blocks(content: Any, shape: TurnShape) -> list[dict[str, Any]]:
    """A message's content as ``shape``'s blocks (text, images, blocks already native)."""
    out: list[dict[str, Any]] = []
    for kind, value in _pieces(content):
        if kind == "text":
            out.append(shape.text(value))
        elif kind == "image":
            out.append(shape.image(value))
        elif kind == "media":
            if shape.media is not None:
                out.append(shape.media(value))
        elif value.get("type") in shape.native_types:
            out.append(value)
    return out


def tool_calls(calls: Any) -> list[ToolCall]:
    """An assistant message's ``tool_calls``, arguments parsed from their JSON text (text
    that is not JSON is kept as ``{"arguments": text}``)."""
    out = []
    for call in calls or []:
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except (ValueError, RecursionError):  # (a model's hostile nesting: kept as text)
            arguments = {"arguments": arguments}
        out.append(ToolCall(call.get("id"), function.get("name"), arguments))
    return out


def to_turns(
    rendered: Mapping[str, Any],
    shape: TurnShape,
    tool_result: Callable[[Mapping[str, Any], str], dict[str, Any]],
    calls: Callable[[Any], list[dict[str, Any]]],
) -> tuple[str | None, list[dict[str, Any]]]:
    """The system text and the turns of a rendered template.

    System (and developer) messages become the system text, joined by blank lines; a tool
    result becomes ``tool_result(message, its text)`` in a user turn; an assistant message's
    ``tool_calls`` become ``calls(tool_calls)`` after its content; consecutive turns of one
    role are merged. A completion template becomes one user turn with its prompt text.
    """
    key = shape.key
    if rendered.get("type") == "completion":
        return None, [{"role": "user", key: [shape.text(prompt_text(rendered))]}]
    system: list[Any] = []
    turns: list[dict[str, Any]] = []
    for msg in rendered.get("messages", []):
        role = msg.get("role")
        if role in SYSTEM_ROLES:
            system.extend(texts(msg.get("content")))
            continue
        if role in TOOL_ROLES:
            text = "".join(texts(msg.get("content")))
            native = {"role": "user", key: [tool_result(msg, text)]}
        else:
            items = blocks(msg.get("content"), shape)
            if role == "assistant":
                items += calls(msg.get("tool_calls"))
            native = {"role": shape.assistant_role if role == "assistant" else "user", key: items}
        if turns and turns[-1]["role"] == native["role"]:
            turns[-1][key] = turns[-1][key] + native[key]
        else:
            turns.append(native)
    return ("\n\n".join(system) or None), turns


def function_tools(rendered: Mapping[str, Any]) -> list[FunctionTool]:
    """The function tools of a template (other tool types are left out)."""
    out = []
    for tool in rendered.get("tools") or []:
        if tool.get("type") != "function":
            continue
        function = tool.get("function") or {}
        out.append(
            FunctionTool(
                function.get("name"), function.get("description"), function.get("parameters")
            )
        )
    return out


def forced_function(choice: Any) -> Any:
    """The function name a ``tool_choice`` of ``{"type": "function", "function": {"name":
    ...}}`` forces, or None (for ``"auto"``, ``"none"``, ``"required"`` and the rest)."""
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        return choice["function"]["name"]
    return None
