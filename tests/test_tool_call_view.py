"""What the cell, the form and the terminal show of a JSON reply and of tool calls: formatted,
foldable, and escaped whatever the model wrote (hostile names, arguments and results)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

import pl_magic
from pl_magic.surfaces.widget import PromptForm
from pl_magic.ui.display import run_bundle
from pl_magic.ui.structured_view import reply_parts
from tests.helpers import chat, model, publish, runs

HOSTILE = "</pre></code></details><script>alert(1)</script><img src=x onerror=alert(2)>"
#: The only elements the views write themselves (and the Markdown renderer its paragraphs).
ALLOWED = {"div", "pre", "details", "summary", "span", "code", "p"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def _check_inert(markup: str) -> None:
    parser = _Tags()
    parser.feed(markup)
    assert set(parser.tags) <= ALLOWED, parser.tags
    assert not [name for name, _ in parser.attrs if name.startswith("on")]
    assert "<script" not in markup and "<img" not in markup


def _call(name: str, arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_structured_reply_is_formatted_foldable_json_escaped():
    text = json.dumps({"verdict": HOSTILE, "score": 2, "nested": {"a": [1, 2]}})
    bundle = run_bundle(text, "footer", structured=True)
    markup = bundle["text/html"]
    _check_inert(markup)
    assert '<details open class="pl-magic-json">' in markup
    assert "JSON object · 3 fields" in markup
    pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    assert f">{__import__('html').escape(pretty)}</pre>" in markup
    assert "&lt;/pre&gt;&lt;/code&gt;&lt;/details&gt;&lt;script&gt;" in markup
    assert bundle["text/plain"].startswith(text)


def test_partial_json_shows_as_text_until_it_parses():
    partial = '{"verdict": "</pre><scr'
    streaming = run_bundle(partial, structured=True, streaming=True)["text/html"]
    _check_inert(streaming)
    assert "pl-magic-json" not in streaming and "&lt;/pre&gt;&lt;scr" in streaming
    whole = run_bundle('{"verdict": "pass"}', structured=True, streaming=True)["text/html"]
    assert "pl-magic-json" in whole and "▌" in whole  # formatted as soon as it parses
    failed = run_bundle(partial, "failed: not JSON", "error", structured=True)["text/html"]
    _check_inert(failed)
    assert "pl-magic-json" not in failed and "failed: not JSON" in failed


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_tool_calls_show_under_the_text_escaped(fmt):
    calls = [
        _call(HOSTILE, json.dumps({"q": HOSTILE, "n": 1})),
        _call("get_time", '{"zone": "CE', "call_2"),  # still streaming: shown as it came
    ]
    bundle = run_bundle(
        "Let me look <b>that</b> up.",
        "footer",
        fmt,
        tool_calls=calls,
        tool_results={"call_1": f"<b>{HOSTILE}</b>"},
    )
    markup = bundle["text/html"]
    _check_inert(markup)
    assert markup.index("Let me look") < markup.index("pl-magic-tool-calls")
    assert markup.index("pl-magic-tool-calls") < markup.index("footer")
    assert markup.count('class="pl-magic-tool-call"') == 2
    assert "<code>&lt;/pre&gt;&lt;/code&gt;" in markup  # the name, escaped
    assert "&quot;q&quot;: &quot;&lt;/pre&gt;" in markup  # the arguments, as indented JSON
    assert "{&quot;zone&quot;: &quot;CE</pre>" in markup  # partial arguments as text
    assert "&lt;b&gt;&lt;/pre&gt;" in markup  # the result
    plain = bundle["text/plain"]
    assert f"→ tool call {HOSTILE}(" in plain and "← <b>" in plain


def test_reply_parts_reads_a_blueprint():
    blueprint = {
        "prompt_template": {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": [], "tool_calls": [_call("f", "{}")]},
            ]
        },
        "metadata": {"model": {"parameters": {"response_format": {"type": "json_object"}}}},
    }
    parts = reply_parts(blueprint)
    assert (parts.text, parts.structured, len(parts.tool_calls)) == ("", True, 1)
    assert reply_parts(None).tool_calls == [] and not reply_parts({}).structured
    blueprint["metadata"]["model"]["parameters"] = {"response_format": {"type": "text"}}
    assert not reply_parts(blueprint).structured


# -- through the surfaces --------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def weather(openai_env):
    template = {**chat(("user", "Weather in {city}?")), "tools": [WEATHER]}
    publish("weather", template, model())


def test_the_magic_runs_the_tools_from_the_notebook_and_shows_each_call(
    ip, weather, fake_provider, capsys
):
    fake_provider.tool_call_replies = [
        [{"name": "get_weather", "arguments": {"city": "Paris"}}],
    ]
    fake_provider.reply_text = "Sunny."
    ip.user_ns["my_tools"] = {"get_weather": lambda city: f"sunny in {city}"}
    ip.run_cell_magic("plrun", "weather --tools my_tools --out res", "city: Paris\n")
    out = capsys.readouterr().out
    assert '→ tool call get_weather({ "city": "Paris" })' in out
    assert "← sunny in Paris" in out
    assert out.index("← sunny in Paris") < out.index("Sunny.")
    result = ip.user_ns["res"]
    assert result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"] == (
        "Sunny."
    )
    rows = runs()
    assert len(rows) == 2 and rows[0]["group_id"] == rows[1]["group_id"] is not None
    ip.user_ns["not_tools"] = [1]
    with pytest.raises(pl_magic.errors.InvalidInputError, match="tools must be a dict"):
        ip.run_cell_magic("plrun", "weather --tools not_tools", "city: Paris\n")
    with pytest.raises(pl_magic.errors.InvalidInputError, match="--tools runs one prompt"):
        ip.run_cell_magic("plrun", "weather --tools my_tools --repeat 2", "city: Paris\n")


def test_a_streamed_tool_call_shows_in_the_magic(ip, weather, fake_provider, capsys):
    fake_provider.tool_call_replies = [[{"name": "get_weather", "arguments": {"city": "Oslo"}}]]
    ip.run_cell_magic("plrun", "weather", "city: Oslo\n")
    out = capsys.readouterr().out
    assert '→ tool call get_weather({ "city": "Oslo" })' in out


def test_the_form_shows_tool_calls_and_json(weather, fake_provider):
    fake_provider.tool_call_replies = [[{"name": "get_weather", "arguments": {"city": HOSTILE}}]]
    form = PromptForm("weather")
    form.variables.children[0].value = "Paris"
    form.run()
    _check_inert(form.reply.value)
    assert "pl-magic-tool-call" in form.reply.value and "get_weather" in form.reply.value
    publish(
        "judge",
        chat(("user", "Judge {x}")),
        model(response_format={"type": "json_object"}),
    )
    fake_provider.structured_replies = [{"verdict": HOSTILE}]
    form = PromptForm("judge")
    form.variables.children[0].value = "y"
    form.run()
    _check_inert(form.reply.value)
    assert "pl-magic-json" in form.reply.value


def test_deeply_nested_json_from_the_model_shows_as_text():
    from pl_magic.ui.structured_view import json_html, tool_calls_html

    hostile = "[" * 100_000
    assert hostile[:10] in json_html(hostile)
    assert "pl-magic-tool-call" in tool_calls_html(
        [{"function": {"name": "f", "arguments": hostile}}]
    )


def test_a_terminal_escape_in_a_tool_call_stays_text_in_plain_output():
    from pl_magic.ui.structured_view import tool_calls_text

    text = tool_calls_text(
        [{"function": {"name": "f\x1b]8;;http://x\x07", "arguments": '{"a": "\x1b[2J"}'}}]
    )
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]8;;http://x\\x07" in text
