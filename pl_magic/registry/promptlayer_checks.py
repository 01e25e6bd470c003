"""What PromptLayer answers, checked before pl_magic uses it.

A template record from PromptLayer gets the checks a local publish gets (its template,
its ``metadata.model``) and more (its version and id, its ``llm_kwargs`` and base URL), so
that a malformed answer — a workspace member's odd edit, a proxy, a server bug — is one
typed error naming the prompt and what is wrong, raised before any provider call, instead
of a raw ``TypeError`` or a request sent with the wrong content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import blueprint
from ..core.blueprint import kind_of
from ..core.errors import InvalidTemplateError, PromptLayerError, shown

#: Keys of ``llm_kwargs`` that must be lists of objects when present (the prompt itself).
_LIST_KWARGS = ("messages", "input", "contents", "tools")
_FIX = "fix the prompt on PromptLayer (or publish a corrected version)"


def what(name: str, version: int | None = None, label: str | None = None) -> str:
    """``'greet' (label 'prod')``, ``'greet' version 3`` or ``'greet'``: which record."""
    if label is not None:
        return f"{shown(name)} (label {shown(label, 40)})"
    if version is not None:
        return f"{shown(name)} version {version}"
    return shown(name)


def _bad(which: str, problem: str) -> InvalidTemplateError:
    return InvalidTemplateError(f"PromptLayer's prompt {which} is malformed: {problem} — {_FIX}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_template_record(
    data: Any,
    name: str,
    version: int | None = None,
    label: str | None = None,
    server_rendered: bool = False,
) -> dict[str, Any]:
    """Check a ``POST /prompt-templates/{name}`` answer; return it (unchanged).

    ``version``: the version asked for (the answer must be that version); ``server_rendered``:
    PromptLayer rendered it for a run, so its ``llm_kwargs`` are the request.
    """
    which = what(name, version, label)
    if not isinstance(data, dict):
        raise _bad(which, f"the answer is {kind_of(data)}, not a template record")
    answered = data.get("prompt_name")
    if answered is not None and not isinstance(answered, str):
        raise _bad(which, f"prompt_name is {kind_of(answered)}")
    if isinstance(answered, str) and answered != name and not name.isdigit():
        raise _bad(which, f"it answered with prompt {shown(answered)} instead")
    number = data.get("version")
    if not _positive_int(number):
        raise _bad(which, f"version is {kind_of(number)}, not a number from 1")
    if version is not None and number != version:
        raise _bad(which, f"version {version} was asked for, version {number} came back")
    ident = data.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int | str)):
        raise _bad(which, f"id is {kind_of(ident)}")
    try:
        blueprint.validate(data.get("prompt_template"), name)
        blueprint.validate_metadata(data.get("metadata"), name)
    except InvalidTemplateError as exc:
        raise _bad(which, str(exc)) from None
    tags = data.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        raise _bad(which, f"tags are {kind_of(tags)}, not a list of names")
    _check_base_url(data.get("provider_base_url"), which)
    _check_llm_kwargs(data.get("llm_kwargs"), which, server_rendered)
    return data


def _check_base_url(value: Any, which: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _bad(which, f"provider_base_url is {kind_of(value)}, not an object with a url")
    url = value.get("url")
    if url is not None and not isinstance(url, str):
        raise _bad(which, f"provider_base_url.url is {kind_of(url)}")


def _check_llm_kwargs(value: Any, which: str, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, dict):
        raise _bad(which, f"llm_kwargs is {kind_of(value)}, not an object")
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad(which, f"llm_kwargs.model is {kind_of(model)}")
    if "stream" in value and not isinstance(value["stream"], bool):
        raise _bad(which, f"llm_kwargs.stream is {kind_of(value['stream'])}")
    for key in _LIST_KWARGS:
        items = value.get(key)
        if key == "input" and isinstance(items, str):
            continue  # the Responses API takes a plain string as its input
        if items is not None and (
            not isinstance(items, list) or not all(isinstance(i, dict) for i in items)
        ):
            raise _bad(which, f"llm_kwargs.{key} is {kind_of(items)}, not a list of objects")
    messages = value.get("messages") or []
    for i, msg in enumerate(messages):
        if not isinstance(msg.get("role"), str) or msg["role"] not in blueprint.ROLES:
            raise _bad(which, f"llm_kwargs.messages[{i}] has role {shown(msg.get('role'), 40)}")


def check_listing(answer: Any) -> list[dict[str, Any]]:
    """The items of one ``GET /prompt-templates`` page; each has a name and a version."""
    items = answer.get("items") if isinstance(answer, Mapping) else answer
    if items is None:
        return []
    if not isinstance(items, list):
        raise PromptLayerError(
            f"PromptLayer's prompt listing is malformed: items is {kind_of(items)}, not a list — "
            "is PROMPTLAYER_BASE_URL PromptLayer's API?"
        )
    for item in items:
        name = item.get("prompt_name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise PromptLayerError(
                f"PromptLayer's prompt listing is malformed: an item without a prompt_name "
                f"({kind_of(item if not isinstance(item, dict) else name)}) — is "
                "PROMPTLAYER_BASE_URL PromptLayer's API?"
            )
    return items


def check_label_rows(rows: Any, name: str) -> list[dict[str, Any]]:
    """The release labels of a prompt: each a name, its id and the version it points at."""
    if not isinstance(rows, list):
        raise _bad(shown(name), f"its release labels are {kind_of(rows)}, not a list")
    for row in rows:
        if not isinstance(row, dict):
            raise _bad(shown(name), f"a release label is {kind_of(row)}, not an object")
        label = row.get("release_label")
        if not isinstance(label, str) or not label:
            raise _bad(shown(name), f"a release label's name is {kind_of(label)}")
        for key in ("prompt_version_number", "release_label_id"):
            if not _positive_int(row.get(key)):
                raise _bad(
                    shown(name), f"label {shown(label, 40)} has {key} {kind_of(row.get(key))}"
                )
    return rows


def check_publish_answer(answer: Any, name: str) -> dict[str, Any]:
    """PromptLayer's answer to a publish: a record whose version number (if any) is one."""
    if not isinstance(answer, dict):
        raise PromptLayerError(
            f"PromptLayer's answer to publishing prompt {shown(name)} is {kind_of(answer)}, not "
            "a record — is PROMPTLAYER_BASE_URL PromptLayer's API?"
        )
    number = answer.get("version_number")
    if number is not None and not _positive_int(number):
        raise PromptLayerError(
            f"PromptLayer's answer to publishing prompt {shown(name)} is malformed: "
            f"version_number is {kind_of(number)} — check the prompt's versions on PromptLayer"
        )
    for key in ("release_labels", "tags"):
        value = answer.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise PromptLayerError(
                f"PromptLayer's answer to publishing prompt {shown(name)} is malformed: "
                f"{key} is {kind_of(value)} — check the prompt on PromptLayer"
            )
    return answer
