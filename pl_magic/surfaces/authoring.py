"""Authoring prompts as YAML: YAML → PromptLayer's ``templates.publish`` body, and back to text.

Used by ``pl-magic prompts push FILE.yaml`` and the notebook's ``%%plprompt``. The YAML::

    prompt_name: support-reply          # (or name:) may also come from the caller
    messages:                           # a chat template: one {role: text} item per message
      - system: You are a terse support agent.
      - user: "Customer {name} writes: {message}"
      - placeholder: history            # a placeholder filled from a list-valued variable
      - role: user                      # the long form, for per-message options
        content: "{% if vip %}VIP{% endif %}"
        template_format: jinja2
    # template: "Complete: {text}"      # instead of messages: a completion template
    template_format: f-string           # default format of every message (or jinja2)
    model: openai/gpt-4o-mini           # provider/name, "local", or {provider, name, ...}
    parameters: {temperature: 0.2, max_tokens: 64}
    api_type: responses                 # optional (OpenAI)
    provider_base_url: http://127.0.0.1:11434/v1   # optional; "local" for the local model
    labels: [staging]                   # (or release_labels:)
    commit_message: shorter replies
    tags: [support]

A YAML that already has ``prompt_template`` is taken as a PromptLayer body as it is.
Only PyYAML is needed (imported on first use).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core import local_target
from ..core.blueprint import ROLES, content_text, input_variables
from ..core.errors import InvalidInputError

_FORMATS = ("f-string", "jinja2")
_KNOWN_KEYS = {
    "prompt_name",
    "name",
    "messages",
    "template",
    "template_format",
    "model",
    "parameters",
    "api_type",
    "provider_base_url",
    "labels",
    "release_labels",
    "commit_message",
    "tags",
    "prompt_template",
    "metadata",
}


def _text_blocks(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        value = ""
    if isinstance(value, int | float | bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInputError(f"{where} must be text, not {type(value).__name__}")
    return [{"type": "text", "text": value}]


def _format(value: Any, where: str) -> str:
    fmt = str(value or "f-string")
    if fmt not in _FORMATS:
        raise InvalidInputError(f"{where}: template_format {fmt!r} is not one of f-string, jinja2")
    return fmt


def _message(item: Any, index: int, default_format: str) -> dict[str, Any]:
    where = f"Message {index + 1}"
    if not isinstance(item, Mapping) or not item:
        raise InvalidInputError(
            f"{where} must be a mapping like {{user: 'Hi {{name}}'}} "
            "or {role: user, content: ...}"
        )
    if "role" in item:
        role, content = item["role"], item.get("content")
        fmt = _format(item.get("template_format") or default_format, where)
    elif len(item) == 1:
        ((role, content),) = item.items()
        fmt = default_format
    else:
        raise InvalidInputError(
            f"{where} has several keys ({', '.join(map(str, item))}): write one {{role: text}} "
            "per message, or use role: and content:"
        )
    if role not in ROLES:
        raise InvalidInputError(f"{where} has role {role!r}: use one of {', '.join(ROLES)}")
    if role == "placeholder":
        name = item.get("name") if "role" in item else content
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(
                f"{where} is a placeholder without a name: write {{placeholder: history}}"
            )
        return {"role": "placeholder", "name": name.strip(), "content": []}
    msg: dict[str, Any] = {
        "role": role,
        "content": _text_blocks(content, where),
        "template_format": fmt,
    }
    if "role" in item and item.get("name"):
        msg["name"] = item["name"]
    return msg


def model_metadata_of(value: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``model:`` → (PromptLayer ``metadata.model`` without parameters, provider_base_url).

    ``"provider/name"``, a bare name whose provider its prefix tells (``gpt-…``,
    ``claude-…``, ``gemini-…``), ``"local"`` (the local model), or a mapping.
    """
    if isinstance(value, Mapping):
        if not value.get("provider") or not value.get("name"):
            raise InvalidInputError(
                "model: a mapping needs provider and name, e.g. {provider: openai, name: gpt-4o}"
            )
        return dict(value), None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"model must be provider/name (e.g. openai/gpt-4o), not {value!r}")
    text = value.strip()
    if text in ("local", local_target.LOCAL_NAME, local_target.LOCAL_MODEL_NAME):
        local = local_target.model_metadata()["model"]
        return local, local_target.base_url_spec()
    from ..engine.batch import provider_and_model

    provider, name = provider_and_model(text)
    return {"provider": provider, "name": name}, None


def _labels(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidInputError(f"{what} must be a list of names, e.g. [staging]")


def body_from_mapping(
    data: Mapping[str, Any],
    prompt_name: str | None = None,
    labels: Sequence[str] | None = None,
    model: str | Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    commit_message: str | None = None,
    tags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A PromptLayer publish body from authoring data; the keyword arguments win over it.

    ``labels`` and ``tags`` given here are added to those of the data; ``parameters`` are
    merged over the data's.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError(
            "The prompt YAML must be a mapping with messages: (or template:) and model:"
        )
    unknown = sorted(set(map(str, data)) - _KNOWN_KEYS)
    if unknown:
        import difflib

        guesses = [
            close[0] for key in unknown if (close := difflib.get_close_matches(key, _KNOWN_KEYS, 1))
        ]
        hint = f"did you mean {', '.join(guesses)}? " if guesses else ""
        raise InvalidInputError(
            f"Unknown key(s) in the prompt YAML: {', '.join(unknown)}: {hint}(known: messages, "
            "template, model, parameters, labels, commit_message, tags, template_format)"
        )
    name = prompt_name or data.get("prompt_name") or data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("The prompt YAML needs a prompt_name: give the prompt a name")

    if "prompt_template" in data:  # already PromptLayer's shape
        body: dict[str, Any] = {
            k: copy.deepcopy(v) for k, v in data.items() if k not in ("name", "labels")
        }
        body["release_labels"] = _labels(data.get("release_labels") or data.get("labels"), "labels")
    else:
        default_format = _format(data.get("template_format"), "The prompt YAML")
        if ("messages" in data) == ("template" in data):
            raise InvalidInputError(
                "The prompt YAML needs either messages: (a chat) or template: (a completion)"
            )
        if "messages" in data:
            items = data["messages"]
            if not isinstance(items, list) or not items:
                raise InvalidInputError("messages: must be a list like [{user: 'Hi {name}'}]")
            template: dict[str, Any] = {
                "type": "chat",
                "messages": [_message(m, i, default_format) for i, m in enumerate(items)],
            }
        else:
            template = {
                "type": "completion",
                "content": _text_blocks(data["template"], "template"),
                "template_format": default_format,
            }
        body = {
            "prompt_template": template,
            "release_labels": _labels(data.get("labels") or data.get("release_labels"), "labels"),
            "commit_message": data.get("commit_message"),
            "tags": _labels(data.get("tags"), "tags"),
        }
        if data.get("metadata") is not None:
            body["metadata"] = copy.deepcopy(dict(data["metadata"]))
        base_url = data.get("provider_base_url")
        if base_url is not None:
            body["provider_base_url"] = base_url

    body["prompt_name"] = name.strip()
    chosen_model = model if model is not None else data.get("model")
    metadata = dict(body.get("metadata") or {})
    model_meta = dict(metadata.get("model") or {})
    if chosen_model is not None:
        new_model, base_url_of_model = model_metadata_of(chosen_model)
        params = {
            **dict(model_meta.get("parameters") or {}),
            **dict(new_model.get("parameters") or {}),
        }
        model_meta = {**new_model, "parameters": params}
        if base_url_of_model is not None and not body.get("provider_base_url"):
            body["provider_base_url"] = base_url_of_model
    extra_params = {**dict(data.get("parameters") or {}), **dict(parameters or {})}
    if extra_params or data.get("api_type"):
        if not model_meta:
            raise InvalidInputError("parameters: need a model: (e.g. model: openai/gpt-4o-mini)")
        model_meta["parameters"] = {**dict(model_meta.get("parameters") or {}), **extra_params}
        if data.get("api_type"):
            model_meta["api_type"] = data["api_type"]
    if model_meta:
        metadata["model"] = model_meta
        body["metadata"] = metadata
    if body.get("provider_base_url") == "local":
        body["provider_base_url"] = local_target.base_url_spec()
    if commit_message is not None:
        body["commit_message"] = commit_message
    body["release_labels"] = list(dict.fromkeys([*body.get("release_labels", []), *(labels or [])]))
    body["tags"] = list(dict.fromkeys([*(body.get("tags") or []), *(tags or [])]))
    return body


def body_from_yaml(text: str, **overrides: Any) -> dict[str, Any]:
    """A PromptLayer publish body from YAML text (see the module docstring).

    ``overrides``: ``prompt_name``, ``labels``, ``model``, ``parameters``,
    ``commit_message``, ``tags`` — as :func:`body_from_mapping`.
    """
    import yaml

    from ..core.parsing import load_yaml

    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidInputError(
            f"The prompt YAML does not parse{where}: {problem}; fix the YAML there"
        ) from None
    if data is None:
        data = {}
    return body_from_mapping(data, **overrides)


def body_from_file(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """A PromptLayer publish body from a YAML (or JSON) file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {str(file)!r}: {exc.strerror or exc}") from None
    return body_from_yaml(text, **overrides)


def template_as_text(record: Mapping[str, Any]) -> str:
    """A template record as readable text: a header, then each message under its role.

    Used to show a prompt (``pl-magic prompts show``, ``%plprompt NAME``) and to diff
    two versions line by line.
    """
    model = ((record.get("metadata") or {}).get("model")) or {}
    head = f"{record.get('prompt_name')} v{record.get('version')}"
    labels = record.get("release_labels") or []
    if labels:
        head += f" ({', '.join(labels)})"
    lines = [head]
    if model:
        model_line = f"model: {model.get('provider')}/{model.get('name')}"
        if model.get("api_type"):
            model_line += f" ({model['api_type']})"
        if model.get("parameters"):
            model_line += " " + json.dumps(model["parameters"], sort_keys=True)
        lines.append(model_line)
    base = record.get("provider_base_url")
    if local_target.is_local(base):
        lines.append("base URL: the local model (pl-magic local status)")
    elif base:
        lines.append(f"base URL: {base.get('url') if isinstance(base, Mapping) else base}")
    if record.get("commit_message"):
        lines.append(f"commit: {record['commit_message']}")
    template = record.get("prompt_template") or {}
    variables = input_variables(template) if template else []
    if variables:
        lines.append(f"variables: {', '.join(variables)}")
    if template.get("type") == "completion":
        lines += ["", f"[completion, {template.get('template_format') or 'f-string'}]"]
        lines.append(content_text(template.get("content")))
    for msg in template.get("messages", []):
        lines.append("")
        if msg.get("role") == "placeholder":
            lines.append(f"[placeholder: {msg.get('name')}]")
            continue
        fmt = msg.get("template_format") or "f-string"
        lines.append(f"[{msg.get('role')}]" + (f" ({fmt})" if fmt != "f-string" else ""))
        lines.append(content_text(msg.get("content")))
    return "\n".join(lines)
