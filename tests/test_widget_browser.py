"""The widget form in a real browser: JupyterLab on 127.0.0.1, Debian's chromium driven by
Playwright (reference/notebook-testing.md). The kernel talks to the fake provider server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import pl_magic
from tests import conftest
from tests.helpers import chat, model, publish
from tests.jupyterlab import ARTIFACTS, notebook_page
from tests.jupyterlab import lab as jupyterlab

pytestmark = pytest.mark.e2e


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    """JupyterLab with a notebook showing the form; yields the notebook's URL."""
    conftest.audit_dir(tmp_path)  # the notebook, the server's log: no key may reach them
    with jupyterlab(tmp_path, ["import pl_magic\nform = pl_magic.form('greet')\nform"]) as url:
        yield url


def test_form_streams_in_the_browser_and_shows_one_line_errors(lab, fake_provider):
    from playwright.sync_api import expect

    publish("greet", chat(("user", "v1 hi {name}")), model())
    publish("greet", chat(("user", "v2 hello {name}")), model())
    pl_magic.set_label("greet", "prod", 2)
    publish("needs-topic", chat(("user", "tell me about {topic}")), model())
    fake_provider.stream_chunks = [f"word{i} " for i in range(40)]
    fake_provider.chunk_delay_s = 0.05  # a two-second stream, to watch it grow

    with notebook_page(lab, failure="widget-failure") as page:
        output = page.locator(".jp-OutputArea-output")
        selects = output.locator(".widget-dropdown select")
        expect(selects.first).to_be_visible(timeout=60_000)

        selects.nth(0).select_option("greet")
        selects.nth(1).select_option(label="prod → v2")
        output.locator(".widget-textarea textarea").first.fill("Ada")
        output.locator(".widget-button", has_text="Run").click()

        reply = output.locator(".pl-magic-run pre").first
        lengths = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = reply.inner_text() if reply.count() else ""
            lengths.append(len(text))
            if "word39" in text:
                break
            time.sleep(0.05)
        growing = sorted(set(n for n in lengths if n))
        assert len(growing) >= 3, f"the reply did not grow while streaming: {growing}"
        footer = output.locator(".pl-magic-footer").first
        expect(footer).to_contain_text("greet v2 (prod)", timeout=30_000)
        expect(footer).to_contain_text("openai/gpt-4o-mini")
        page.screenshot(path=str(ARTIFACTS / "widget-streamed.png"), full_page=True)

        # a click the moment Run is enabled again starts the next run (it used to be
        # enabled while the first run's worker was still busy, and the click was lost)
        run_button = output.locator(".widget-button", has_text="Run")
        fake_provider.stream_chunks = None  # a short reply this time
        expect(run_button).to_be_enabled()
        run_button.click()
        runs_rows = output.locator(".pl-magic-runs tbody tr")
        expect(runs_rows).to_have_count(2, timeout=30_000)

        selects.nth(0).select_option("needs-topic")
        # the form has rebuilt its fields for the new prompt before the click
        expect(selects.nth(1).locator("option:checked")).to_have_text("v1 (latest)")
        expect(output.locator(".widget-textarea", has_text="topic")).to_be_visible()
        expect(run_button).to_be_enabled()
        run_button.click()
        error = output.locator(".pl-magic-error")
        expect(error).to_contain_text("topic", timeout=30_000)
        assert "\n" not in error.inner_text().strip()
        page.screenshot(path=str(ARTIFACTS / "widget-error.png"), full_page=True)


@pytest.fixture
def bare_lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    """JupyterLab with a notebook showing a form opened with no prompt name."""
    conftest.audit_dir(tmp_path)
    with jupyterlab(tmp_path, ["import pl_magic\npl_magic.form()"]) as url:
        yield url


def test_a_bare_form_opens_on_a_prompt_with_labels_in_full(bare_lab):
    from playwright.sync_api import expect

    publish("greet", chat(("user", "hi {name}")), model(temperature=0.2))
    with notebook_page(bare_lab) as page:
        output = page.locator(".jp-OutputArea-output")
        selects = output.locator(".widget-dropdown select")
        expect(selects.first).to_be_visible(timeout=60_000)
        expect(selects.nth(0).locator("option:checked")).to_have_text("greet")
        expect(selects.nth(2).locator("option:checked")).to_have_text("openai")
        label = output.locator(".widget-label", has_text="temperature").first
        cut = label.evaluate("e => e.scrollWidth > e.clientWidth")
        assert not cut, "the label 'temperature' is cut"
        page.screenshot(path=str(ARTIFACTS / "widget-bare.png"), full_page=True)
