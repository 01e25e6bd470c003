"""Escaping in a real browser: a model that answers ``<img src=x onerror=alert(1)>``.

JupyterLab shows the reply of ``%plrun`` (streamed), of a comparison (the live grid and
its DataFrame), of ``%plrun --format markdown`` and of the form: the text is visible as
text, no ``<img src=x>`` element exists, and no dialog ever opens. (Before issue 9 the
Markdown view ran the script: JupyterLab renders the Markdown of live outputs as trusted,
without sanitizing it.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import conftest
from tests.helpers import chat, model, publish
from tests.jupyterlab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, run_all_cells
from tests.jupyterlab import lab as jupyterlab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAYLOAD = "<img src=x onerror=alert(1)>"
CELLS = [
    "%load_ext pl_magic",
    "%plrun xss",
    "%plrun xss --repeat 2",
    "%plrun xss --format markdown",
    "import pl_magic\nform = pl_magic.form('xss')\nform.run()\nform",
]


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    publish("xss", chat(("user", "say it")), model())
    fake_provider.reply_text = PAYLOAD
    conftest.audit_dir(tmp_path)
    with jupyterlab(tmp_path, CELLS, name="xss.ipynb") as url:
        yield url


def test_html_from_the_model_is_text_and_no_script_runs(lab):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            page.goto(lab)
            run_all_cells(page)
            output = page.locator(".jp-OutputArea-output")
            # the last cell: the form, after its run
            expect(output.locator(".widget-html .pl-magic-footer").first).to_contain_text(
                "xss v1", timeout=60_000
            )
            expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible(
                timeout=60_000
            )
            page.wait_for_timeout(1000)  # a broken image's onerror fires at once: give it time

            as_text = output.get_by_text(PAYLOAD, exact=True)
            # %plrun; the grid's two runs and the DataFrame's two rows; the form's reply and
            # its runs table
            assert as_text.count() >= 6, as_text.count()
            expect(as_text.first).to_be_visible()
            markdown = page.locator(".jp-OutputArea .jp-RenderedMarkdown")
            expect(markdown.get_by_text(PAYLOAD)).to_be_visible()
            assert page.locator("img[src='x'], img[onerror], .jp-OutputArea script").count() == 0
            page.screenshot(path=str(ARTIFACTS / "escaping.png"), full_page=True)
            assert dialogs == [], f"a script ran: {dialogs}"
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "escaping-failure.png"), full_page=True)
            (ARTIFACTS / "escaping-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
