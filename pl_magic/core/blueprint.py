"""PromptLayer's prompt-template JSON: the one internal format.

A *template record* is what the registry returns (PromptLayer's ``POST /prompt-templates``
shape): ``id``, ``prompt_name``, ``version``, ``prompt_template``, ``metadata``,
``provider_base_url``, ``commit_message``, ``tags``. A *blueprint* is what ``run()`` returns:
``{"prompt_template": <rendered template + assistant reply>, "metadata": {"model": ...}}``.
Keeping PromptLayer's shape as is makes import and export lossless.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import media as media_mod
from . import templates
from .errors import InvalidInputError, InvalidTemplateError, MissingVariablesError, shown

TEMPLATE_TYPES = ("chat", "completion")
ROLES = ("system", "developer", "user", "assistant", "tool", "function", "placeholder")
#: Content block types PromptLayer documents, and Anthropic's own (kept from imports).
BLOCK_TYPES = frozenset(
    {
        "text",
        "thinking",
        "redacted_thinking",
        "image_url",
        "media",
        "media_variable",
        "output_media",
        "code",
        "server_tool_use",
        "web_search_tool_result",
        "image",
        "document",
        "tool_use",
        "tool_result",
    }
)
BLOCK_TYPE_PREFIXES = ("mcp_",)


@dataclass
class ModelSpec:
    """What to call: PromptLayer's ``metadata.model`` plus the base URL to call it at."""

    provider: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    api_type: str | None = None
    base_url: str | None = None
    #: Set by :func:`pl_magic.core.local_target.route_to_local_model`: the run goes to the
    #: local model's server (llama.cpp's OpenAI-compatible API, which differs in places,
    #: e.g. its ``response_format``), not to OpenAI proper. Not part of the run's metadata.
    local_model: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """PromptLayer's ``metadata.model`` dict for this spec."""
        out: dict[str, Any] = {
            "provider": self.provider,
            "name": self.name,
            "parameters": dict(self.parameters),
        }
        if self.api_type:
            out["api_type"] = self.api_type
        return out


#: How deep input data may nest (dicts and lists in one another): deeper data is refused
#: before any call, as nothing a person means nests that deep and a cycle nests forever.
MAX_DEPTH = 100


def check_utf8(value: Any, what: str) -> None:
    """Refuse text that cannot be encoded as UTF-8 (a lone surrogate, e.g. from bytes decoded
    with ``surrogateescape``): it could be neither sent to a provider nor logged. Looks
    inside dicts, lists and tuples, and refuses data that contains itself or nests more
    than :data:`MAX_DEPTH` levels (either would end in a RecursionError later)."""
    # An explicit stack, not recursion: the data may be deep enough to exhaust the stack.
    stack: list[tuple[Any, int, tuple[int, ...]]] = [(value, 0, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, what)
            continue
        if not isinstance(item, Mapping | list | tuple):
            continue
        if id(item) in path:
            raise InvalidInputError(
                f"{what} contains itself (a circular reference): pass plain data without cycles"
            )
        if depth >= MAX_DEPTH:
            raise InvalidInputError(
                f"{what} nests more than {MAX_DEPTH} levels deep: pass flatter data"
            )
        inner = (*path, id(item))
        children = [x for pair in item.items() for x in pair] if isinstance(item, Mapping) else item
        stack.extend((child, depth + 1, inner) for child in children)


def _check_text(value: str, what: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} holds text that cannot be encoded as UTF-8 ({value[exc.start]!r} at "
            f"position {exc.start}, a lone surrogate): fix the text, e.g. decode its bytes "
            "with errors='replace'"
        ) from None


def text_block(text: str) -> dict[str, Any]:
    """A PromptLayer text content block."""
    return {"type": "text", "text": text}


def content_text(content: Any) -> str:
    """The text of a message's content: a list of blocks, or a plain string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        block.get("text", "") for block in content if isinstance(block, dict) and "text" in block
    )


def validate(prompt_template: Any, name: str = "") -> dict[str, Any]:
    """Check ``prompt_template`` has PromptLayer's shape; return it (unchanged).

    Everything a run reads is checked: the type, each message's role, content blocks and
    template format, tools. A record from PromptLayer gets the same checks as a local
    publish, so that nothing malformed reaches a provider.
    """
    where = f" of prompt {name!r}" if name else ""
    if not isinstance(prompt_template, dict):
        raise InvalidTemplateError(
            f"The prompt_template{where} must be a JSON object with a 'type' of chat or "
            f"completion, not {kind_of(prompt_template)}"
        )
    kind = prompt_template.get("type")
    if kind not in TEMPLATE_TYPES:
        raise InvalidTemplateError(
            f"The prompt_template{where} has type {shown(kind, 40)}: use 'chat' or 'completion'"
        )
    _check_format(prompt_template.get("template_format"), f"The prompt_template{where}")
    tools = prompt_template.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise InvalidTemplateError(
            f"The tools{where} must be a list of tool objects, not {kind_of(tools)}"
        )
    if kind == "chat":
        messages = prompt_template.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidTemplateError(
                f"The chat template{where} has no messages ({kind_of(messages)}): add a list of "
                "messages"
            )
        for i, msg in enumerate(messages):
            _check_message(msg, f"Message {i + 1} of the template{where}")
    else:
        content = prompt_template.get("content")
        if not isinstance(content, list | str):
            raise InvalidTemplateError(
                f"The completion template{where} has no content ({kind_of(content)}): add a list "
                "of text blocks"
            )
        _check_content(content, f"The completion template{where}")
    return prompt_template


def kind_of(value: Any) -> str:
    """What a value is, for a message: ``'abc' (str)``, ``5 (int)``, ``a list``, ``missing``."""
    if value is None:
        return "missing"
    if isinstance(value, str | int | float | bool):
        return f"{shown(value, 30)} ({type(value).__name__})"
    return f"a {type(value).__name__}"


def _check_format(value: Any, where: str) -> None:
    if value is not None and value not in templates.FORMATS:
        raise InvalidTemplateError(
            f"{where} has template_format {shown(value, 40)}: use 'f-string' or 'jinja2'"
        )


def _check_message(msg: Any, where: str) -> None:
    if not isinstance(msg, dict) or msg.get("role") not in ROLES:
        role = msg.get("role") if isinstance(msg, dict) else msg
        raise InvalidTemplateError(
            f"{where} has role {shown(role, 40)}: use one of {', '.join(ROLES)}"
        )
    if msg["role"] == "placeholder":
        if not isinstance(msg.get("name"), str) or not msg["name"].strip():
            raise InvalidTemplateError(
                f"Placeholder {where[0].lower()}{where[1:]} has no 'name': name the input "
                "variable that holds its messages"
            )
        return
    _check_format(msg.get("template_format"), where)
    if msg.get("name") is not None and not isinstance(msg["name"], str):
        raise InvalidTemplateError(f"{where} has a name that is {kind_of(msg['name'])}: use text")
    content = msg.get("content")
    if content is not None and not isinstance(content, list | str):
        raise InvalidTemplateError(
            f"{where} has content that is {kind_of(content)}: use text or a list of blocks "
            "like [{'type': 'text', 'text': '...'}]"
        )
    _check_content(content, where)
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None and (
        not isinstance(tool_calls, list) or not all(isinstance(c, dict) for c in tool_calls)
    ):
        raise InvalidTemplateError(f"{where} has tool_calls that are {kind_of(tool_calls)}")


def _check_content(content: Any, where: str) -> None:
    """Each block a dict of a type PromptLayer knows; a text block's text is text."""
    if not isinstance(content, list):
        return
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str) or not (
            kind in BLOCK_TYPES or kind.startswith(BLOCK_TYPE_PREFIXES)
        ):
            shown_kind = shown(kind, 40) if isinstance(block, dict) else kind_of(block)
            raise InvalidTemplateError(
                f"Block {j + 1} of {where[0].lower()}{where[1:]} has type {shown_kind}: use "
                "one of text, image_url, media, thinking, ..."
            )
        if kind == "text" and not isinstance(block.get("text", ""), str):
            raise InvalidTemplateError(
                f"Text block {j + 1} of {where[0].lower()}{where[1:]} has text that is "
                f"{kind_of(block.get('text'))}: use a string"
            )


def validate_metadata(metadata: Any, name: str = "") -> dict[str, Any] | None:
    """Check a template's ``metadata`` (``{"model": {provider, name, parameters, api_type}}``);
    return it (unchanged)."""
    where = f" of prompt {name!r}" if name else ""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidTemplateError(
            f"The metadata{where} is {kind_of(metadata)}: use a dict like {{'model': {{...}}}}"
        )
    model = metadata.get("model")
    if model is None:
        return metadata
    example = "{'provider': 'openai', 'name': 'gpt-4o-mini', 'parameters': {}}"
    if not isinstance(model, dict):
        raise InvalidTemplateError(
            f"metadata.model{where} is {kind_of(model)}: use a dict like {example}"
        )
    if not isinstance(model.get("provider"), str) or not model["provider"].strip():
        raise InvalidTemplateError(
            f"metadata.model.provider{where} is {kind_of(model.get('provider'))}: name the "
            f"provider, e.g. {example}"
        )
    for key in ("name", "api_type"):
        if model.get(key) is not None and not isinstance(model[key], str):
            raise InvalidTemplateError(
                f"metadata.model.{key}{where} is {kind_of(model[key])}: use a string, e.g. "
                f"{example}"
            )
    params = model.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidTemplateError(
            f"metadata.model.parameters{where} is {kind_of(params)}: use a dict like "
            "{'temperature': 0.2}"
        )
    return metadata


def _message_format(msg: Mapping[str, Any], default: str = "f-string") -> str:
    return str(msg.get("template_format") or default)


def _blocks_variables(content: Any, fmt: str) -> set[str]:
    if isinstance(content, str):
        return templates.variables(content, fmt)
    found: set[str] = set()
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            found |= templates.variables(block.get("text", ""), fmt)
        else:
            slot = media_mod.slot_name(block, fmt)
            if slot is not None:
                found.add(slot)
    return found


def media_slots(prompt_template: Mapping[str, Any]) -> list[str]:
    """The input variables the template takes media from (``image_url`` blocks whose URL is
    a variable, ``media_variable`` blocks; see :mod:`pl_magic.core.media`), in order."""
    found: dict[str, None] = {}
    if prompt_template.get("type") == "completion":
        groups = [(prompt_template.get("content"), _message_format(prompt_template))]
    else:
        groups = [
            (msg.get("content"), _message_format(msg))
            for msg in prompt_template.get("messages", [])
            if isinstance(msg, Mapping) and msg.get("role") != "placeholder"
        ]
    for content, fmt in groups:
        if isinstance(content, list):
            for block in content:
                slot = media_mod.slot_name(block, fmt)
                if slot is not None:
                    found[slot] = None
    return list(found)


def input_variables(prompt_template: Mapping[str, Any]) -> list[str]:
    """Every input variable the template uses, sorted (placeholder names included)."""
    found: set[str] = set()
    if prompt_template.get("type") == "completion":
        found |= _blocks_variables(prompt_template.get("content"), _message_format(prompt_template))
    else:
        for msg in prompt_template.get("messages", []):
            if msg.get("role") == "placeholder":
                found.add(msg["name"])
            else:
                found |= _blocks_variables(msg.get("content"), _message_format(msg))
    return sorted(found)


def with_input_variables(prompt_template: dict[str, Any]) -> dict[str, Any]:
    """A copy of the template with ``input_variables`` filled in (top level and per message)."""
    out = copy.deepcopy(prompt_template)
    out["input_variables"] = input_variables(out)
    if out.get("type") == "chat":
        for msg in out["messages"]:
            if msg.get("role") != "placeholder":
                msg["input_variables"] = sorted(
                    _blocks_variables(msg.get("content"), _message_format(msg))
                )
                msg.setdefault("template_format", "f-string")
    else:
        out.setdefault("template_format", "f-string")
    return out


_ATOMIC = (str, int, float, bool, type(None))


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than
    ``copy.deepcopy`` (no memo, no dispatch); anything else goes to ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    if isinstance(value, _ATOMIC):
        return value
    return copy.deepcopy(value)


def _copy_but(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A deep copy of ``mapping`` without copying the value of ``key`` (set to None in its
    place, keeping the key order), which the caller replaces."""
    return {
        k: None if k == key else v if isinstance(v, _ATOMIC) else copy_json(v)
        for k, v in mapping.items()
    }


def _render_blocks(
    content: Any, values: Mapping[str, Any], fmt: str, media: dict[str, media_mod.Media]
) -> Any:
    """Rendered copies of content blocks (text blocks rendered, media slots filled with
    their media, the others copied). A slot's value is read as media only (never rendered
    as text): ``media`` holds what was resolved already, the rest is resolved here."""
    if isinstance(content, str):
        return [text_block(templates.render(content, values, fmt))]
    rendered = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            block = {
                **_copy_but(block, "text"),
                "text": templates.render(block.get("text", ""), values, fmt),
            }
        elif (slot := media_mod.slot_name(block, fmt)) is not None:
            if slot not in media:
                media[slot] = media_mod.resolve(values[slot], slot)
            block = media[slot].block(block)
        else:
            block = copy_json(block)
        rendered.append(block)
    return rendered


def _placeholder_messages(name: str, value: Any, prompt: str) -> list[dict[str, Any]]:
    """Normalize a list-valued variable into PromptLayer messages."""
    if not isinstance(value, list):
        raise InvalidInputError(
            f"Input variable {name!r} of prompt {prompt!r} fills a placeholder and must be a "
            "list of messages like [{'role': 'user', 'content': 'hi'}]"
        )
    messages = []
    for item in value:
        if not isinstance(item, dict) or item.get("role") not in ROLES[:-1]:
            raise InvalidInputError(
                f"Placeholder {name!r} of prompt {prompt!r} got {item!r}: each item needs a "
                "'role' (user, assistant, system, ...) and 'content'"
            )
        content = item.get("content")
        msg = {
            **item,
            "content": [text_block(content)] if isinstance(content, str) else content or [],
        }
        msg.setdefault("input_variables", [])
        msg.setdefault("template_format", "f-string")
        messages.append(msg)
    return messages


def render(
    prompt_template: Mapping[str, Any],
    values: Mapping[str, Any] | None,
    prompt_name: str = "",
    media: Mapping[str, media_mod.Media] | None = None,
    needed: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Render every text block; fill placeholders and media slots. Strict: missing
    variables raise. ``needed``: :func:`input_variables` of the template, when the caller
    has them (a comparison renders one template for each of thousands of input rows).

    Placeholder messages are replaced by the messages of their list-valued variable;
    those messages are not rendered again (they are data, not template). A media slot gets
    its variable's media (``media``: already read and checked by the engine, see
    :func:`pl_magic.core.media.resolve_slots`), as an ``image_url`` block (an image) or a
    ``media`` block (a PDF) holding a ``data:`` URL, or the http(s) URL given.
    """
    values = dict(values or {})
    resolved = dict(media or {})
    if needed is None:
        needed = input_variables(prompt_template)
    missing = [name for name in needed if name not in values]
    if missing:
        raise MissingVariablesError(prompt_name or "(unnamed)", missing, values)
    # A copy, but not a deep copy of the text that rendering replaces anyway: that was
    # most of the time a run spent rendering.
    if prompt_template.get("type") == "completion":
        out = _copy_but(prompt_template, "content")
        out["content"] = _render_blocks(
            prompt_template.get("content"), values, _message_format(prompt_template), resolved
        )
        return out
    out = _copy_but(prompt_template, "messages")
    messages: list[dict[str, Any]] = []
    for msg in prompt_template.get("messages", []):
        if msg.get("role") == "placeholder":
            messages.extend(_placeholder_messages(msg["name"], values[msg["name"]], prompt_name))
        else:
            rendered = _copy_but(msg, "content")
            rendered["content"] = _render_blocks(
                msg.get("content"), values, _message_format(msg), resolved
            )
            messages.append(rendered)
    out["messages"] = messages
    return out


def prompt_text(prompt_template: Mapping[str, Any]) -> str:
    """The text of a completion template (after rendering)."""
    return content_text(prompt_template.get("content"))


def assistant_message(text: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """PromptLayer's assistant message for a reply."""
    return {
        "role": "assistant",
        "content": [text_block(text)] if text or not tool_calls else [],
        "tool_calls": tool_calls or None,
        "input_variables": [],
        "template_format": "f-string",
    }


def with_reply(
    rendered: Mapping[str, Any],
    model: ModelSpec,
    text: str,
    tool_calls: list[dict[str, Any]] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
    copy_template: bool = True,
) -> dict[str, Any]:
    """The ``prompt_blueprint`` of a run: the rendered template with the reply appended.

    A completion template becomes ``content`` plus the completion text in a final block,
    as PromptLayer does for completion logs. ``copy_template=False`` shares the rendered
    messages (only the top-level dict and the message list are new): for stream chunks,
    built many times a second from one private copy.
    """
    template = copy_json(dict(rendered)) if copy_template else dict(rendered)
    if template.get("type") == "completion":
        template["content"] = [*template.get("content", []), text_block(text)]
    else:
        template["messages"] = [*template.get("messages", []), assistant_message(text, tool_calls)]
    metadata: dict[str, Any] = {"model": model.as_metadata()}
    if extra_metadata:
        metadata.update(extra_metadata)
    return {"prompt_template": template, "metadata": metadata}


def reply_text(prompt_blueprint: Mapping[str, Any] | None) -> str:
    """The assistant's reply inside a run's (or a stream chunk's) ``prompt_blueprint``."""
    template = (prompt_blueprint or {}).get("prompt_template") or {}
    if template.get("type") == "completion":
        blocks = template.get("content") or []
    else:
        messages = template.get("messages") or []
        blocks = messages[-1].get("content") if messages else []
    if not blocks:
        return ""
    last = blocks[-1]
    return str(last.get("text", "")) if isinstance(last, Mapping) else ""
