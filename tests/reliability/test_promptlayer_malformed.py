"""Malformed PromptLayer answers: each is one typed error naming the prompt and what is
wrong, raised before any provider call, with nothing logged.

The fake PromptLayer answers the real record, then ``mangle_next`` bends it on the wire
(a list body, a template that is a string, a version "abc", ...), as a buggy proxy or an
odd edit in a shared workspace would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import pl_magic
from pl_magic.core.errors import InvalidTemplateError, PromptLayerError, RegistryError
from tests.fakes.provider_server import PROVIDER_KINDS
from tests.helpers import chat, model, runs


def _set(path: str, value: Any) -> Callable[[Any], Any]:
    """A mangle that sets ``path`` (dotted; digits index lists) of the answer to ``value``."""

    def mangle(answer: Any) -> Any:
        answer = copy.deepcopy(answer)
        *parents, last = path.split(".")
        node = answer
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
        return answer

    return mangle


# (id, mangle of the template record, the error class, what the message must say)
MALFORMED: list[tuple[str, Callable[[Any], Any], type[Exception], str]] = [
    ("list-body", lambda a: [a], PromptLayerError, "is a list, not a JSON object"),
    ("string-body", lambda a: "ok", PromptLayerError, "is a str, not a JSON object"),
    ("template-a-string", _set("prompt_template", "hi {name}"), InvalidTemplateError, "str"),
    ("template-type-weird", _set("prompt_template.type", "weird"), InvalidTemplateError, "'weird'"),
    (
        "messages-a-string",
        _set("prompt_template.messages", "hi"),
        InvalidTemplateError,
        "no messages",
    ),
    ("messages-empty", _set("prompt_template.messages", []), InvalidTemplateError, "no messages"),
    ("message-a-string", _set("prompt_template.messages.0", "hi"), InvalidTemplateError, "role"),
    (
        "role-hacker",
        _set("prompt_template.messages.0.role", "hacker"),
        InvalidTemplateError,
        "role 'hacker'",
    ),
    (
        "content-a-number",
        _set("prompt_template.messages.0.content", 5),
        InvalidTemplateError,
        "content that is 5 (int)",
    ),
    (
        "block-type-weird",
        _set("prompt_template.messages.0.content.0.type", "weird"),
        InvalidTemplateError,
        "type 'weird'",
    ),
    (
        "block-a-string",
        _set("prompt_template.messages.0.content.0", "hi"),
        InvalidTemplateError,
        "Block 1",
    ),
    (
        "text-a-dict",
        _set("prompt_template.messages.0.content.0.text", {"x": 1}),
        InvalidTemplateError,
        "text that is a dict",
    ),
    (
        "template-format-mako",
        _set("prompt_template.messages.0.template_format", "mako"),
        InvalidTemplateError,
        "template_format 'mako'",
    ),
    (
        "placeholder-without-name",
        _set("prompt_template.messages.0", {"role": "placeholder", "content": []}),
        InvalidTemplateError,
        "has no 'name'",
    ),
    ("tools-a-string", _set("prompt_template.tools", "lookup"), InvalidTemplateError, "tools"),
    ("metadata-a-string", _set("metadata", "gpt-4o"), InvalidTemplateError, "metadata"),
    ("model-a-list", _set("metadata.model", ["openai", "gpt-4o"]), InvalidTemplateError, "list"),
    ("provider-missing", _set("metadata.model.provider", None), InvalidTemplateError, "provider"),
    ("model-name-a-number", _set("metadata.model.name", 4), InvalidTemplateError, "model.name"),
    (
        "parameters-a-string",
        _set("metadata.model.parameters", "temperature=0"),
        InvalidTemplateError,
        "parameters",
    ),
    ("version-abc", _set("version", "abc"), InvalidTemplateError, "version is 'abc'"),
    ("version-zero", _set("version", 0), InvalidTemplateError, "version is 0"),
    ("version-true", _set("version", True), InvalidTemplateError, "version is True"),
    ("id-a-list", _set("id", [1]), InvalidTemplateError, "id is a list"),
    ("another-prompt", _set("prompt_name", "other"), InvalidTemplateError, "'other' instead"),
    (
        "base-url-a-string",
        _set("provider_base_url", "http://evil.example"),
        InvalidTemplateError,
        "provider_base_url",
    ),
    ("tags-a-string", _set("tags", "support"), InvalidTemplateError, "tags"),
]


@pytest.fixture
def greet(promptlayer_env, fake_promptlayer, openai_env):
    """A prompt on the fake PromptLayer that runs on the fake OpenAI."""
    fake_promptlayer.add_prompt("greet", chat(("user", "hi {name}")), model(), labels=["prod"])
    return fake_promptlayer


def _provider_calls(fake_provider: Any) -> list[Any]:
    return [r for r in fake_provider.requests if r.kind in PROVIDER_KINDS]


def test_the_well_formed_record_runs(greet, fake_provider):
    """The control: the same prompt, unbent, reaches the provider."""
    result = pl_magic.run("greet", input_variables={"name": "Ada"})
    assert result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"] == (
        "echo: hi Ada"
    )
    assert len(_provider_calls(fake_provider)) == 1


@pytest.mark.parametrize(
    ("mangle", "error", "says"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_a_malformed_record_is_one_typed_error_before_any_call(
    greet, fake_provider, mangle, error, says
):
    greet.mangle_next("template.get", mangle)
    with pytest.raises(RegistryError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})
    exc = info.value
    message = str(exc)
    assert isinstance(exc, error), f"{type(exc).__name__}: {message}"
    assert "\n" not in message and len(message) < 600, message
    assert "'greet'" in message, f"the message names the prompt: {message}"
    assert says in message, message
    assert "PromptLayer" in message, message
    assert _provider_calls(fake_provider) == [], "nothing malformed reaches a provider"
    assert runs() == [], "nothing was logged"
    # the next (well-formed) answer runs: the malformed one was not cached
    pl_magic.run("greet", input_variables={"name": "Ada"})
    assert len(_provider_calls(fake_provider)) == 1


def test_a_pinned_version_must_come_back_as_that_version(greet, fake_provider):
    greet.add_prompt("greet", chat(("user", "v2 {name}")), model())
    greet.mangle_next("template.get", _set("version", 2))
    with pytest.raises(InvalidTemplateError, match="version 1 was asked for, version 2 came back"):
        pl_magic.run("greet", prompt_version=1, input_variables={"name": "Ada"})
    assert _provider_calls(fake_provider) == []


SERVER_RENDERED: list[tuple[str, Callable[[Any], Any], str]] = [
    ("llm-kwargs-a-string", _set("llm_kwargs", "messages=hi"), "llm_kwargs is 'messages=hi'"),
    ("llm-kwargs-model-a-list", _set("llm_kwargs.model", ["gpt-4o"]), "llm_kwargs.model"),
    ("llm-kwargs-messages-a-string", _set("llm_kwargs.messages", "hi"), "llm_kwargs.messages"),
    ("llm-kwargs-role-hacker", _set("llm_kwargs.messages.0.role", "hacker"), "'hacker'"),
    ("llm-kwargs-stream-a-string", _set("llm_kwargs.stream", "yes"), "llm_kwargs.stream"),
]


@pytest.mark.parametrize(
    ("mangle", "says"), [m[1:] for m in SERVER_RENDERED], ids=[m[0] for m in SERVER_RENDERED]
)
def test_a_malformed_server_rendered_request_is_refused(
    greet, fake_provider, monkeypatch, mangle, says
):
    """PromptLayer renders (its llm_kwargs are the request OpenAI gets): checked too."""
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", "server")
    greet.mangle_next("template.get", mangle)
    with pytest.raises(InvalidTemplateError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})
    assert says in str(info.value) and "'greet'" in str(info.value)
    assert _provider_calls(fake_provider) == []
    pl_magic.run("greet", input_variables={"name": "Ada"})  # the control: unbent, it runs
    assert len(_provider_calls(fake_provider)) == 1


def test_templates_get_checks_the_record_too(greet):
    greet.mangle_next("template.get", _set("prompt_template.messages.0.role", "hacker"))
    with pytest.raises(InvalidTemplateError, match="role 'hacker'"):
        pl_magic.get_template("greet")


# -- listing, labels, publishing ----------------------------------------------------------


def test_a_malformed_listing_is_one_line(greet):
    greet.mangle_next("templates.list", _set("items", "greet"))
    with pytest.raises(PromptLayerError, match="items is 'greet'"):
        pl_magic.PromptLayer().registry.names()
    greet.mangle_next("templates.list", _set("items.0", ["greet"]))
    with pytest.raises(PromptLayerError, match="an item without a prompt_name"):
        pl_magic.PromptLayer().registry.names()
    greet.mangle_next("templates.list", lambda a: [a])
    with pytest.raises(PromptLayerError, match="listing prompts is a list"):
        pl_magic.PromptLayer().registry.names()


def test_a_malformed_prompt_is_left_out_of_the_list_with_a_notice(greet, capsys):
    greet.add_prompt("other", chat(("user", "other {topic}")), model())
    greet.mangle_next("templates.list", _set("items.0.prompt_template.messages.0.role", "hacker"))
    prompts = pl_magic.prompts()
    assert [p["prompt_name"] for p in prompts] == ["greet"]  # items are newest first
    err = capsys.readouterr().err
    assert "'other'" in err and "role 'hacker'" in err and "left out of the list" in err


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (_set("release_labels", "prod"), "release labels are 'prod'"),
        (_set("release_labels.0.prompt_version_number", "1"), "prompt_version_number '1'"),
        (_set("release_labels.0.release_label", None), "release label's name is missing"),
        (lambda a: [a], "is a list, not a JSON object"),
    ],
    ids=["labels-a-string", "version-a-string", "label-without-name", "list-body"],
)
def test_malformed_labels_are_one_line(greet, mangle, says):
    greet.mangle_next("template.labels", mangle)
    with pytest.raises(RegistryError) as info:
        pl_magic.PromptLayer().registry.labels("greet")
    assert says in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (_set("version_number", "abc"), "version_number is 'abc'"),
        (_set("release_labels", "prod"), "release_labels is 'prod'"),
        (lambda a: [a], "is a list, not a JSON object"),
    ],
    ids=["version-abc", "labels-a-string", "list-body"],
)
def test_a_malformed_publish_answer_is_one_line(greet, mangle, says):
    greet.mangle_next("template.publish", mangle)
    with pytest.raises(PromptLayerError) as info:
        pl_magic.publish({"prompt_name": "greet", "prompt_template": chat(("user", "v2 {name}"))})
    assert says in str(info.value) and "'greet'" in str(info.value)
