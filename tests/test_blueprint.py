"""The blueprint module: PromptLayer's template shape checked, rendered, and a run's reply
put in and read back out (``prompt_blueprint``), for chat and completion templates."""

from __future__ import annotations

import pytest

import pl_magic
from pl_magic.core import blueprint
from pl_magic.core.blueprint import ModelSpec
from pl_magic.core.errors import InvalidInputError, InvalidTemplateError, MissingVariablesError
from tests.helpers import chat, completion


def test_placeholder_is_filled_from_a_list_of_messages():
    t = {
        "type": "chat",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Sys {x}"}]},
            {"role": "placeholder", "name": "history"},
            {"role": "user", "content": [{"type": "text", "text": "Now {x}"}]},
        ],
    }
    assert blueprint.input_variables(t) == ["history", "x"]
    history = [{"role": "user", "content": "hi {x}"}, {"role": "assistant", "content": "hello"}]
    out = blueprint.render(t, {"x": "1", "history": history}, "p")
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    # placeholder messages are data: not rendered again
    assert out["messages"][1]["content"][0]["text"] == "hi {x}"
    with pytest.raises(InvalidInputError):
        blueprint.render(t, {"x": "1", "history": "not a list"}, "p")


def test_completion_template_variables_and_render():
    t = completion("Q: {q}\nA:")
    assert blueprint.input_variables(t) == ["q"]
    assert blueprint.prompt_text(blueprint.render(t, {"q": "2+2?"}, "p")) == "Q: 2+2?\nA:"


def test_invalid_templates_are_rejected_with_one_line_errors():
    for bad in (
        None,
        {"type": "image"},
        {"type": "chat", "messages": []},
        {"type": "chat", "messages": [{"role": "robot", "content": []}]},
    ):
        with pytest.raises(InvalidTemplateError) as info:
            pl_magic.publish({"prompt_name": "x", "prompt_template": bad})
        assert "\n" not in str(info.value)


# -- content and reply shapes ---------------------------------------------------------------

SPEC = ModelSpec("openai", "gpt-4o-mini", {"temperature": 0.2}, api_type="responses")


def test_content_text_reads_strings_blocks_and_nothing():
    assert blueprint.content_text(None) == ""
    assert blueprint.content_text("plain") == "plain"
    blocks = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "data:"}},
        "not a block",
        {"type": "text", "text": "b"},
    ]
    assert blueprint.content_text(blocks) == "ab"


def test_a_chat_reply_is_a_final_assistant_message_and_reads_back():
    rendered = blueprint.render(chat(("system", "Be brief"), ("user", "Hi {n}")), {"n": "Ada"})
    out = blueprint.with_reply(rendered, SPEC, "Hello Ada", extra_metadata={"run": 1})
    messages = out["prompt_template"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello Ada"}],
        "tool_calls": None,
        "input_variables": [],
        "template_format": "f-string",
    }
    assert out["metadata"] == {
        "model": {
            "provider": "openai",
            "name": "gpt-4o-mini",
            "parameters": {"temperature": 0.2},
            "api_type": "responses",
        },
        "run": 1,
    }
    assert blueprint.reply_text(out) == "Hello Ada"
    assert len(rendered["messages"]) == 2  # the rendered template is copied, not extended


def test_a_completion_reply_is_a_final_text_block_and_reads_back():
    rendered = blueprint.render(completion("Q: {q}\nA:"), {"q": "2+2?"})
    out = blueprint.with_reply(rendered, ModelSpec("anthropic", "claude-x"), " 4")
    assert out["prompt_template"]["content"] == [
        {"type": "text", "text": "Q: 2+2?\nA:"},
        {"type": "text", "text": " 4"},
    ]
    assert out["metadata"] == {
        "model": {"provider": "anthropic", "name": "claude-x", "parameters": {}}
    }
    assert blueprint.reply_text(out) == " 4"


def test_a_reply_with_only_tool_calls_has_no_text():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = blueprint.assistant_message("", [call])
    assert message["content"] == [] and message["tool_calls"] == [call]
    assert blueprint.assistant_message("", None)["content"] == [{"type": "text", "text": ""}]
    out = blueprint.with_reply(chat(("user", "x")), SPEC, "", [call])
    assert blueprint.reply_text(out) == ""


@pytest.mark.parametrize(
    "empty",
    [
        None,
        {},
        {"prompt_template": None},
        {"prompt_template": {"type": "chat", "messages": []}},
        {"prompt_template": {"type": "completion", "content": []}},
        {"prompt_template": {"type": "chat", "messages": [{"role": "user", "content": ["x"]}]}},
    ],
)
def test_reply_text_of_a_blueprint_without_a_reply_is_empty(empty):
    assert blueprint.reply_text(empty) == ""


# -- rendering ---------------------------------------------------------------------------------


def test_render_leaves_the_template_alone_and_copies_other_blocks():
    image = {"type": "image_url", "image_url": {"url": "https://x/{name}.png"}}
    template = {
        "type": "chat",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi {name}"}, image]}],
    }
    out = blueprint.render(template, {"name": "Ada"}, "p")
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Hi Ada"}, image]
    assert out["messages"][0]["content"][1] is not image  # a copy: the caller may change it
    assert template["messages"][0]["content"][0]["text"] == "Hi {name}"


def test_render_names_every_missing_variable_before_rendering():
    with pytest.raises(MissingVariablesError) as info:
        blueprint.render(chat(("user", "{a} {b} {c}")), {"b": 1, "cc": 2}, "greet")
    assert info.value.missing == ["a", "c"]
    assert "'greet'" in str(info.value) and "c instead of 'cc'" in str(info.value)


def test_a_placeholder_item_without_a_role_is_refused():
    t = {"type": "chat", "messages": [{"role": "placeholder", "name": "h"}]}
    with pytest.raises(InvalidInputError, match="each item needs a 'role'"):
        blueprint.render(t, {"h": [{"content": "no role"}]}, "p")
    with pytest.raises(InvalidInputError, match="each item needs a 'role'"):
        blueprint.render(t, {"h": [{"role": "placeholder", "content": "x"}]}, "p")


def test_with_input_variables_fills_the_top_and_each_message():
    t = {
        "type": "chat",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "{tone}"}]},
            {"role": "placeholder", "name": "history"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "{{ q }}"}],
                "template_format": "jinja2",
            },
        ],
    }
    out = blueprint.with_input_variables(t)
    assert out["input_variables"] == ["history", "q", "tone"]
    assert [m.get("input_variables") for m in out["messages"]] == [["tone"], None, ["q"]]
    assert [m.get("template_format") for m in out["messages"]] == ["f-string", None, "jinja2"]
    assert "input_variables" not in t and "template_format" not in t["messages"][0]
    assert blueprint.with_input_variables(completion("{x}"))["input_variables"] == ["x"]


def test_copy_json_shares_nothing():
    value = {"a": [{"b": 1}], "c": (1, 2)}
    copied = blueprint.copy_json(value)
    assert copied == value
    copied["a"][0]["b"] = 2
    assert value["a"][0]["b"] == 1


# -- checks ------------------------------------------------------------------------------------


def test_validate_accepts_promptlayer_shapes_and_returns_them_unchanged():
    t = {
        "type": "chat",
        "messages": [
            {"role": "user", "content": "plain text is fine"},
            {"role": "assistant", "content": [{"type": "mcp_tool_use", "id": "x"}]},
            {"role": "placeholder", "name": "history"},
        ],
        "tools": [{"type": "function"}],
    }
    assert blueprint.validate(t, "p") is t


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"type": "chat", "messages": [{"role": "user", "content": [{"type": "x"}]}]}, "type 'x'"),
        (
            {
                "type": "chat",
                "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            },
            "Text block 1",
        ),
        ({"type": "chat", "messages": [{"role": "placeholder"}]}, "has no 'name'"),
        ({"type": "chat", "messages": [{"role": "user", "content": 5}]}, "content that is 5"),
        ({"type": "completion", "content": 3}, "has no content"),
        ({"type": "chat", "messages": [{"role": "user"}], "tools": {}}, "tools"),
        ({"type": "chat", "template_format": "mustache", "messages": []}, "template_format"),
    ],
)
def test_validate_names_the_part_that_is_wrong(bad, needle):
    with pytest.raises(InvalidTemplateError) as info:
        blueprint.validate(bad, "p")
    assert needle in str(info.value) and "'p'" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ([], "use a dict"),
        ({"model": "gpt-4o"}, "metadata.model of"),
        ({"model": {"name": "gpt-4o"}}, "metadata.model.provider"),
        ({"model": {"provider": "openai", "name": 4}}, "metadata.model.name"),
        ({"model": {"provider": "openai", "parameters": [1]}}, "metadata.model.parameters"),
    ],
)
def test_validate_metadata_names_the_field(metadata, needle):
    with pytest.raises(InvalidTemplateError, match=needle.replace(".", r"\.")):
        blueprint.validate_metadata(metadata, "p")


def test_validate_metadata_accepts_none_and_a_model():
    assert blueprint.validate_metadata(None) is None
    meta = {"model": {"provider": "openai", "name": "gpt-4o", "parameters": {}}, "x": 1}
    assert blueprint.validate_metadata(meta) is meta


def test_check_utf8_refuses_lone_surrogates_cycles_and_deep_nesting():
    blueprint.check_utf8({"name": ["Ada", "é", ("ok",)]}, "input_variables")
    with pytest.raises(InvalidInputError, match=r"'\\udc80' at position 2"):
        blueprint.check_utf8({"k": ["ab\udc80"]}, "input_variables")
    loop: list = []
    loop.append(loop)
    with pytest.raises(InvalidInputError, match="contains itself"):
        blueprint.check_utf8(loop, "input_variables")
    deep: list = []
    for _ in range(blueprint.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="nests more than"):
        blueprint.check_utf8(deep, "input_variables")
    shared = ["x"]
    blueprint.check_utf8([shared, shared], "input_variables")  # shared, not circular


def test_model_spec_metadata_leaves_out_an_unset_api_type():
    spec = ModelSpec("google", "gemini-2.0-flash", {"temperature": 0})
    meta = spec.as_metadata()
    assert meta == {
        "provider": "google",
        "name": "gemini-2.0-flash",
        "parameters": {"temperature": 0},
    }
    meta["parameters"]["temperature"] = 1
    assert spec.parameters == {"temperature": 0}
