"""PromptLayer's prompt-template JSON: the one internal format.

A *template record* is what the registry returns (PromptLayer's ``POST /prompt-templates``
shape): ``id``, ``prompt_name``, ``version``, ``prompt_template``, ``metadata``,
``provider_base_url``, ``commit_message``, ``tags``. A *blueprint* is what ``run()`` returns:
``{"prompt_template": <rendered template + assistant reply>, "metadata": {"model": ...}}``.
Keeping PromptLayer's shape as is makes import and export lossless.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import templates
from .errors import InvalidInputError, InvalidTemplateError, MissingVariablesError

TEMPLATE_TYPES = ("chat", "completion")
ROLES = ("system", "developer", "user", "assistant", "tool", "function", "placeholder")


@dataclass
class ModelSpec:
    """What to call: PromptLayer's ``metadata.model`` plus the base URL to call it at."""

    provider: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    api_type: str | None = None
    base_url: str | None = None

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


def check_utf8(value: Any, what: str) -> None:
    """Refuse text that cannot be encoded as UTF-8 (a lone surrogate, e.g. from bytes decoded
    with ``surrogateescape``): it could be neither sent to a provider nor logged. Looks
    inside dicts, lists and tuples."""
    if isinstance(value, str):
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
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_utf8(key, what)
            check_utf8(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            check_utf8(item, what)


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
    """Check ``prompt_template`` has PromptLayer's shape; return it (unchanged)."""
    where = f" of prompt {name!r}" if name else ""
    if not isinstance(prompt_template, dict):
        raise InvalidTemplateError(
            f"The prompt_template{where} must be a JSON object with a 'type' of chat or completion"
        )
    kind = prompt_template.get("type")
    if kind not in TEMPLATE_TYPES:
        raise InvalidTemplateError(
            f"The prompt_template{where} has type {kind!r}: use 'chat' or 'completion'"
        )
    if kind == "chat":
        messages = prompt_template.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidTemplateError(
                f"The chat template{where} has no messages: add a list of messages"
            )
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ROLES:
                role = msg.get("role") if isinstance(msg, dict) else msg
                raise InvalidTemplateError(
                    f"Message {i + 1} of the template{where} has role {role!r}: "
                    f"use one of {', '.join(ROLES)}"
                )
            if msg["role"] == "placeholder" and not msg.get("name"):
                raise InvalidTemplateError(
                    f"Placeholder message {i + 1}{where} has no 'name': name the input "
                    "variable that holds its messages"
                )
    elif not isinstance(prompt_template.get("content"), list | str):
        raise InvalidTemplateError(
            f"The completion template{where} has no content: add a list of text blocks"
        )
    return prompt_template


def _message_format(msg: Mapping[str, Any], default: str = "f-string") -> str:
    return str(msg.get("template_format") or default)


def _blocks_variables(content: Any, fmt: str) -> set[str]:
    if isinstance(content, str):
        return templates.variables(content, fmt)
    found: set[str] = set()
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            found |= templates.variables(block.get("text", ""), fmt)
    return found


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


def _render_blocks(content: Any, values: Mapping[str, Any], fmt: str) -> Any:
    """Rendered copies of content blocks (text blocks rendered, the others copied)."""
    if isinstance(content, str):
        return [text_block(templates.render(content, values, fmt))]
    rendered = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            block = {
                **_copy_but(block, "text"),
                "text": templates.render(block.get("text", ""), values, fmt),
            }
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
) -> dict[str, Any]:
    """Render every text block; fill placeholders. Strict: missing variables raise.

    Placeholder messages are replaced by the messages of their list-valued variable;
    those messages are not rendered again (they are data, not template).
    """
    values = dict(values or {})
    needed = input_variables(prompt_template)
    missing = [name for name in needed if name not in values]
    if missing:
        raise MissingVariablesError(prompt_name or "(unnamed)", missing, values)
    # A copy, but not a deep copy of the text that rendering replaces anyway: that was
    # most of the time a run spent rendering.
    if prompt_template.get("type") == "completion":
        out = _copy_but(prompt_template, "content")
        out["content"] = _render_blocks(
            prompt_template.get("content"), values, _message_format(prompt_template)
        )
        return out
    out = _copy_but(prompt_template, "messages")
    messages: list[dict[str, Any]] = []
    for msg in prompt_template.get("messages", []):
        if msg.get("role") == "placeholder":
            messages.extend(_placeholder_messages(msg["name"], values[msg["name"]], prompt_name))
        else:
            rendered = _copy_but(msg, "content")
            rendered["content"] = _render_blocks(msg.get("content"), values, _message_format(msg))
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
