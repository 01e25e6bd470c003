"""Authoring prompts as YAML (surfaces/authoring.py): the YAML → PromptLayer publish body,
its errors, a template shown as text, and ``%%plprompt`` publishing and showing through a
real IPython shell."""

from __future__ import annotations

import json

import pytest

import pl_magic
from pl_magic.core import local_target
from pl_magic.core.errors import InvalidInputError
from pl_magic.surfaces import authoring
from tests.helpers import chat, model

FULL_YAML = """\
prompt_name: support-reply
template_format: jinja2
messages:
  - system: You are terse.
  - user: "Customer {{ name }} writes: {{ message }}"
  - placeholder: history
  - role: user
    name: follow_up
    content: "{n} more"
    template_format: f-string
  - assistant: 42
model: openai/gpt-4o-mini
parameters: {temperature: 0.2, max_tokens: 64}
api_type: chat-completions
provider_base_url: {name: proxy, provider: openai, url: "http://127.0.0.1:9/v1"}
labels: staging, canary
commit_message: shorter replies
tags: [support]
"""


def text(t: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t}]


def test_a_full_yaml_becomes_the_publish_body():
    body = authoring.body_from_yaml(FULL_YAML)
    assert body == {
        "prompt_name": "support-reply",
        "prompt_template": {
            "type": "chat",
            "messages": [
                {"role": "system", "content": text("You are terse."), "template_format": "jinja2"},
                {
                    "role": "user",
                    "content": text("Customer {{ name }} writes: {{ message }}"),
                    "template_format": "jinja2",
                },
                {"role": "placeholder", "name": "history", "content": []},
                {
                    "role": "user",
                    "content": text("{n} more"),
                    "template_format": "f-string",
                    "name": "follow_up",
                },
                {"role": "assistant", "content": text("42"), "template_format": "jinja2"},
            ],
        },
        "metadata": {
            "model": {
                "provider": "openai",
                "name": "gpt-4o-mini",
                "parameters": {"temperature": 0.2, "max_tokens": 64},
                "api_type": "chat-completions",
            }
        },
        "provider_base_url": {
            "name": "proxy",
            "provider": "openai",
            "url": "http://127.0.0.1:9/v1",
        },
        "release_labels": ["staging", "canary"],
        "commit_message": "shorter replies",
        "tags": ["support"],
    }


def test_the_long_placeholder_form_and_an_empty_message():
    body = authoring.body_from_yaml(
        "name: p\nmessages:\n  - {role: placeholder, name: ' h '}\n  - user:\n"
    )
    assert body["prompt_template"]["messages"] == [
        {"role": "placeholder", "name": "h", "content": []},
        {"role": "user", "content": text(""), "template_format": "f-string"},
    ]
    assert "metadata" not in body  # no model: the registry's default applies


def test_a_model_mapping_keeps_its_parameters_and_the_others_merge_over_them():
    body = authoring.body_from_mapping(
        {
            "name": "p",
            "template": "go",
            "model": {"provider": "anthropic", "name": "claude-x", "parameters": {"a": 1, "b": 1}},
            "parameters": {"b": 2, "c": 2},
        },
        parameters={"c": 3},
    )
    assert body["metadata"]["model"] == {
        "provider": "anthropic",
        "name": "claude-x",
        "parameters": {"a": 1, "b": 2, "c": 3},
    }


def test_a_new_model_for_a_promptlayer_body_keeps_its_parameters():
    record = {
        "prompt_name": "p",
        "prompt_template": chat(("user", "x")),
        "metadata": model("gpt-4o", temperature=0.3),
        "release_labels": ["prod"],
    }
    body = authoring.body_from_mapping(record, model="claude-x", labels=["prod", "new"])
    assert body["metadata"]["model"] == {
        "provider": "anthropic",
        "name": "claude-x",
        "parameters": {"temperature": 0.3},
    }
    assert body["release_labels"] == ["prod", "new"]  # no label twice
    assert record["metadata"] == model("gpt-4o", temperature=0.3)  # the input is not changed


def test_the_local_model_by_any_of_its_names_or_base_url():
    for name in ("local", local_target.LOCAL_NAME, local_target.LOCAL_MODEL_NAME):
        body = authoring.body_from_yaml(f"name: p\ntemplate: x\nmodel: {name}\n")
        assert local_target.is_local(body["provider_base_url"]), name
    body = authoring.body_from_yaml(
        "name: p\ntemplate: x\nmodel: openai/m\nprovider_base_url: local\n"
    )
    assert body["provider_base_url"] == local_target.base_url_spec()


def test_names_and_labels_in_their_other_spellings():
    body = authoring.body_from_yaml(
        "prompt_name: from-yaml\nname: ignored\ntemplate: x\nrelease_labels: [a]\ntags: t1,t2\n"
    )
    assert body["prompt_name"] == "from-yaml" and body["release_labels"] == ["a"]
    assert body["tags"] == ["t1", "t2"]
    assert authoring.body_from_yaml("name: ' p '\ntemplate: x")["prompt_name"] == "p"
    assert authoring.body_from_yaml("template: x", prompt_name="given")["prompt_name"] == "given"


def test_a_file_is_read_as_yaml_or_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "p", "messages": [{"user": "hi {who}"}]}))
    body = authoring.body_from_file(path, labels=["prod"])
    assert body["prompt_template"]["messages"][0]["content"] == text("hi {who}")
    assert body["release_labels"] == ["prod"]
    with pytest.raises(InvalidInputError, match=r"Cannot read '.*nope\.yaml'"):
        authoring.body_from_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("name: p\nmessages:\n  - user: hi\n  - user: [oops", "does not parse at line"),
        ("", "needs a prompt_name"),
        ("name: p\nmesages: [{user: a}]", "did you mean messages?"),
        ("name: p\nmessages: []", "messages: must be a list"),
        ("name: p\nmessages: [hi]", "Message 1 must be a mapping"),
        ("name: p\nmessages: [{user: a}, {robot: b}]", "Message 2 has role 'robot'"),
        ("name: p\nmessages: [{user: [a, b]}]", "Message 1 must be text, not list"),
        ("name: p\nmessages: [{role: user, content: a, template_format: j2}]", "Message 1:"),
        ("name: p\ntemplate: x\nlabels: [1, 2]", "labels must be a list of names"),
        ("name: p\ntemplate: x\nmodel: {provider: openai}", "a mapping needs provider and name"),
        ("name: p\ntemplate: x\nmodel: ''", "model must be provider/name"),
    ],
)
def test_errors_name_the_place_and_the_fix(yaml_text, needle):
    with pytest.raises(InvalidInputError) as info:
        authoring.body_from_yaml(yaml_text)
    assert needle in str(info.value) and "\n" not in str(info.value)


# -- a template as text ----------------------------------------------------------------------


def test_template_as_text_shows_the_header_model_and_each_message():
    record = {
        "prompt_name": "support",
        "version": 3,
        "release_labels": ["prod", "staging"],
        "metadata": {
            "model": {
                "provider": "openai",
                "name": "gpt-4o",
                "api_type": "responses",
                "parameters": {"temperature": 0.2, "max_tokens": 5},
            }
        },
        "provider_base_url": {"name": "proxy", "url": "http://h/v1"},
        "commit_message": "tighter",
        "prompt_template": {
            "type": "chat",
            "messages": [
                {"role": "system", "content": text("Be {tone}")},
                {"role": "placeholder", "name": "history"},
                {"role": "user", "content": text("{{ q }}"), "template_format": "jinja2"},
            ],
        },
    }
    assert authoring.template_as_text(record).splitlines() == [
        "support v3 (prod, staging)",
        'model: openai/gpt-4o (responses) {"max_tokens": 5, "temperature": 0.2}',
        "base URL: http://h/v1",
        "commit: tighter",
        "variables: history, q, tone",
        "",
        "[system]",
        "Be {tone}",
        "",
        "[placeholder: history]",
        "",
        "[user] (jinja2)",
        "{{ q }}",
    ]


def test_template_as_text_of_a_completion_on_the_local_model():
    record = {
        "prompt_name": "c",
        "version": 1,
        "provider_base_url": local_target.base_url_spec(),
        "prompt_template": {"type": "completion", "content": text("Complete: {x}")},
    }
    assert authoring.template_as_text(record).splitlines() == [
        "c v1",
        "base URL: the local model (pl-magic local status)",
        "variables: x",
        "",
        "[completion, f-string]",
        "Complete: {x}",
    ]


# -- %%plprompt -----------------------------------------------------------------------------


def test_plprompt_publishes_shows_and_diffs(ip, fake_provider, capsys):
    ip.run_cell_magic("plprompt", "haiku --label prod", "messages:\n  - user: A haiku on {topic}")
    ip.run_cell_magic(
        "plprompt",
        "haiku --label staging --model openai/gpt-4.1-mini --param temperature=0.5 "
        "--commit terser --tag poem",
        "messages:\n  - system: Be terse.\n  - user: A haiku on {topic}",
    )
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "Published haiku version 1 (prod)",
        "Published haiku version 2 (staging)",
    ]
    record = pl_magic.get_template("haiku", label="staging")
    assert record["commit_message"] == "terser" and record["tags"] == ["poem"]
    assert record["metadata"]["model"] == {
        "provider": "openai",
        "name": "gpt-4.1-mini",
        "parameters": {"temperature": 0.5},
    }

    ip.run_line_magic("plprompt", "haiku@staging --diff prod")
    shown, _, diff = capsys.readouterr().out.partition("--- haiku v1")
    assert shown.splitlines()[0] == "haiku v2 (staging)" and "[system]\nBe terse." in shown
    assert "+++ haiku v2" in diff and "+Be terse." in diff
    result = pl_magic.run("haiku", input_variables={"topic": "sea"}, prompt_release_label="staging")
    assert fake_provider.requests[-1].body["messages"][0]["content"] == "Be terse."
    assert result["prompt_blueprint"]["metadata"]["model"]["name"] == "gpt-4.1-mini"


def test_plprompt_refuses_bad_yaml_and_publishes_nothing(ip, fake_provider):
    with pytest.raises(InvalidInputError, match="role 'usr'"):
        ip.run_cell_magic("plprompt", "p", "messages:\n  - usr: hi")
    assert pl_magic.prompts() == []


# -- the YAML short forms and their errors ------------------------------------------------------


def test_yaml_short_forms_completion_and_local_model():
    body = authoring.body_from_yaml(
        "name: c\ntemplate: 'Complete: {x}'\nmodel: local\nparameters: {max_tokens: 8}\n"
    )
    assert body["prompt_template"] == {
        "type": "completion",
        "content": [{"type": "text", "text": "Complete: {x}"}],
        "template_format": "f-string",
    }
    assert body["metadata"]["model"] == {
        "provider": "openai",
        "name": local_target.LOCAL_MODEL_NAME,
        "parameters": {"max_tokens": 8},
    }
    assert local_target.is_local(body["provider_base_url"])


def test_yaml_overrides_win_and_bare_model_names_find_their_provider():
    body = authoring.body_from_yaml(
        "messages: [{user: hi}]\nmodel: gpt-4o\nlabels: [a]\ntags: [t]\n",
        prompt_name="p",
        labels=["b"],
        model="openai/gpt-4o-mini",
        parameters={"temperature": 0.5},
        commit_message="c",
        tags=["u"],
    )
    assert body["prompt_name"] == "p" and body["commit_message"] == "c"
    assert body["release_labels"] == ["a", "b"] and body["tags"] == ["t", "u"]
    assert body["metadata"]["model"] == {
        "provider": "openai",
        "name": "gpt-4o-mini",
        "parameters": {"temperature": 0.5},
    }


def test_yaml_with_a_promptlayer_body_passes_through():
    record = {"prompt_name": "p", "prompt_template": chat(("user", "x")), "metadata": model()}
    body = authoring.body_from_mapping(record, labels=["prod"])
    assert body["prompt_template"] == record["prompt_template"]
    assert body["metadata"] == model() and body["release_labels"] == ["prod"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("messages: [{user: hi}]", "prompt_name"),
        ("name: p", "either messages"),
        ("name: p\nmessages: [{user: a}]\ntemplate: b", "either messages"),
        ("name: p\nmessages: [{user: a, system: b}]", "several keys"),
        ("name: p\nmessages: [{placeholder: ''}]", "placeholder without a name"),
        ("name: p\nmessages: [{user: a}]\nmodel: nope/x", "Unknown provider"),
        ("name: p\nmessages: [{user: a}]\nmodel: mystery", "provider/model"),
        ("name: p\nmessages: [{user: a}]\nparameters: {t: 1}", "need a model"),
        ("name: p\nmessages: [{user: a}]\nflavour: x", "Unknown key"),
        ("name: p\ntemplate: a\ntemplate_format: mustache", "template_format"),
        ("- a list", "must be a mapping"),
    ],
)
def test_yaml_errors_name_the_fix(text, needle):
    with pytest.raises(pl_magic.errors.PlMagicError) as info:
        authoring.body_from_yaml(text)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_yaml_errors_are_invalid_input():
    with pytest.raises(InvalidInputError):
        authoring.body_from_yaml("name: p")
