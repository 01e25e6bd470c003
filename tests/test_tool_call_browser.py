"""A JSON reply and a tool call in a real browser: JupyterLab on 127.0.0.1, Debian's chromium
driven by Playwright (reference/notebook-testing.md). The kernel talks to the fake provider
server, whose model answers with hostile JSON and a tool call with hostile arguments; the
page shows both formatted and foldable, as text, and nothing in them runs or loads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import conftest
from tests.helpers import chat, model, publish
from tests.jupyterlab import ARTIFACTS, notebook_page
from tests.jupyterlab import lab as jupyterlab

pytestmark = pytest.mark.e2e

HOSTILE = '</pre></details><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
CELLS = [
    "%load_ext pl_magic",
    "%%plrun judge\nreply: Hello",
    "def get_weather(city):\n    return {'city': city, 'sky': 'sunny'}\n"
    "my_tools = {'get_weather': get_weather}",
    "%%plrun weather --tools my_tools\ncity: Paris",
]


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    schema = {"type": "object", "properties": {"verdict": {"type": "string"}}}
    publish(
        "judge",
        chat(("user", "Judge: {reply}")),
        model(
            response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
        ),
    )
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    publish("weather", {**chat(("user", "Weather in {city}?")), "tools": [weather]}, model())
    fake_provider.structured_replies = [{"verdict": HOSTILE, "score": 2, "reasons": ["a", "b"]}]
    fake_provider.tool_call_replies = [
        [{"name": "get_weather", "arguments": {"city": HOSTILE}}],
        [],
    ]
    fake_provider.reply_text = "It is sunny."
    conftest.audit_dir(tmp_path)
    with jupyterlab(tmp_path, CELLS, name="tools.ipynb") as url:
        yield url


def test_a_json_reply_and_a_tool_call_render_formatted_and_escaped(lab):
    from playwright.sync_api import expect

    with notebook_page(lab, failure="tool-calls-failure", height=1200) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        output = page.locator(".jp-OutputArea-output")
        json_view = output.locator("details.pl-magic-json")
        expect(json_view).to_be_visible(timeout=60_000)
        expect(json_view.locator("summary")).to_have_text("JSON object · 3 fields")
        pre = json_view.locator("pre")
        expect(pre).to_contain_text('"verdict": "</pre></details><img src=x')
        expect(pre).to_contain_text('  "reasons": [\n    "a",')  # indented JSON

        calls = output.locator(".pl-magic-tool-call")
        expect(calls).to_have_count(1, timeout=60_000)
        expect(calls.locator("summary code")).to_have_text("get_weather")
        expect(calls.locator("pre.pl-magic-tool-arguments")).to_contain_text(
            '"city": "</pre></details><img'
        )
        expect(calls).to_contain_text('"sky": "sunny"')  # the tool's result, under the call
        expect(output.locator(".pl-magic-run pre", has_text="It is sunny.")).to_be_visible(
            timeout=30_000
        )
        page.screenshot(path=str(ARTIFACTS / "structured-and-tool-calls.png"), full_page=True)

        # the JSON folds
        json_view.locator("summary").click()
        expect(pre).to_be_hidden()
        json_view.locator("summary").click()
        expect(pre).to_be_visible()

        assert page.evaluate("window.__pwned") is None and dialogs == []
        loading = output.locator("img, script, iframe")
        assert loading.count() == 0
