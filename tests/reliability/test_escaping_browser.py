"""Escaping in a real browser: a model whose reply is a catalogue of hostile HTML and Markdown.

One JupyterLab session, one notebook, shows the reply (``HOSTILE`` of test_escaping.py, all
at once) in every view pl_magic has: ``%plrun`` (streamed text), the live grid of a
comparison and its DataFrame, ``compare()``, ``%plrun --format markdown`` and the form (its
reply and runs table). The test asserts that no dialog opens (no script ran), that no
request leaves the page for any host but JupyterLab's own (no image, frame or style was
loaded from the reply), that no element of the outputs carries a handler or an unsafe URL,
and that the text of every hostile reply is visible as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests import conftest
from tests.helpers import chat, model, publish
from tests.jupyterlab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, run_all_cells
from tests.jupyterlab import lab as jupyterlab
from tests.reliability.test_escaping import ALL_HOSTILE, HOSTILE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CELLS = [
    "%load_ext pl_magic\nimport pandas as pd\nimport pl_magic\n"
    "pd.set_option('display.max_colwidth', None)",
    "%plrun xss",
    "%plrun xss --repeat 2 --out df\ndf",  # --out shows the grid only: the frame, shown too
    "pl_magic.compare(df)",
    "%plrun xss --format markdown",
    "form = pl_magic.form('xss')\nform.run()\nform",
]
#: The grid shows the last characters of long replies (GridView's ``max_chars``).
GRID_CHARS = 600
#: Elements no output may hold: each loads something or runs script.
LOADING = "img, svg, iframe, frame, object, embed, script, style, link, video, audio, source"
#: Those of them not pandas' own DataFrame style.
LOADING_JS = """els => els.filter(e => !(e.tagName === 'STYLE' &&
    e.textContent.trim().startsWith('.dataframe'))).map(e => e.outerHTML.slice(0, 200))"""
#: Elements in the outputs with an event handler, or a link or source that is not http(s).
UNSAFE_JS = """els => els.filter(e => [...e.attributes].some(a =>
    a.name.startsWith('on') || a.name === 'srcdoc' ||
    (['href', 'src', 'action', 'formaction', 'xlink:href'].includes(a.name) &&
     !/^(https?:|mailto:)/i.test(a.value.trim())))).map(e => e.outerHTML.slice(0, 200))"""


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    publish("xss", chat(("user", "say it")), model())
    fake_provider.reply_text = ALL_HOSTILE
    conftest.audit_dir(tmp_path)
    with jupyterlab(tmp_path, CELLS, name="xss.ipynb") as url:
        yield url


def _missing(view_text: str, pieces: list[str]) -> list[str]:
    shown = _flat(view_text)
    return [p for p in pieces if _flat(p) not in shown]


def test_hostile_model_output_is_text_everywhere_and_nothing_runs_or_loads(lab):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    lab_origin = urlsplit(lab).netloc
    dialogs: list[str] = []
    requests: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: requests.append(ws.url))

        def only_jupyterlab(route) -> None:  # type: ignore[no-untyped-def]
            if urlsplit(route.request.url).netloc == lab_origin:
                route.continue_()
            else:  # recorded by on("request") already; never let it reach a network
                foreign.append(route.request.url)
                route.abort()

        page.route("**/*", only_jupyterlab)
        try:
            page.goto(lab)
            run_all_cells(page)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            expect(cells).to_have_count(len(CELLS), timeout=60_000)
            # the last cell has run (its form finished its run) once its prompt is numbered
            expect(cells.nth(len(CELLS) - 1).locator(".jp-InputArea-prompt")).to_have_text(
                f"[{len(CELLS)}]:", timeout=90_000
            )
            form = cells.nth(5).locator(".jp-OutputArea-output")
            expect(form.locator(".pl-magic-footer").first).to_contain_text("xss v1")
            expect(form.locator(".pl-magic-runs")).to_be_visible()
            # waiting for something not to happen: a script or a fetch would start at once
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "escaping.png"), full_page=True)
            assert dialogs == [], f"a script ran: {dialogs}"
            left = [u for u in requests if urlsplit(u).netloc != lab_origin]
            assert left == [] and foreign == [], f"requests left JupyterLab: {left}"
            outputs = page.locator(".jp-OutputArea-output")
            assert outputs.locator(LOADING).evaluate_all(LOADING_JS) == []
            assert outputs.locator("*").evaluate_all(UNSAFE_JS) == []

            replies = [h.reply for h in HOSTILE]
            text_view = cells.nth(1).locator(".pl-magic-run pre")
            expect(text_view).to_be_visible()
            assert _missing(text_view.inner_text(), replies) == []
            grid = cells.nth(2).locator(".pl-magic-grid pre")
            expect(grid).to_have_count(2)
            in_grid = [r for r in replies if r in ALL_HOSTILE[-GRID_CHARS:]]  # the grid's tail
            assert len(in_grid) >= len(replies) // 2
            for i in range(2):
                assert _missing(grid.nth(i).inner_text(), in_grid) == [], f"grid run {i}"
            in_frames = [r.replace("\n", "\\n") for r in replies]  # pandas shows \n so
            frame = cells.nth(2).locator("table.dataframe")
            expect(frame).to_be_visible()
            assert _missing(frame.inner_text(), in_frames) == [], "the comparison's DataFrame"
            compared = cells.nth(3).locator("table.dataframe")
            expect(compared).to_be_visible()
            assert _missing(compared.inner_text(), in_frames) == [], "compare()"
            markdown = cells.nth(4).locator(".jp-OutputArea-output")
            expect(markdown).to_be_visible()
            assert _missing(markdown.inner_text(), [h.markdown_text for h in HOSTILE]) == []
            for h in HOSTILE:
                if h.markdown_link:
                    expect(markdown.locator(f'a[href="{h.markdown_link}"]')).to_have_text(
                        h.markdown_text
                    )
            form_reply = form.locator(".pl-magic-run pre")
            expect(form_reply).to_be_visible()
            assert _missing(form_reply.inner_text(), replies) == [], "the form's reply"
            runs_table = form.locator(".pl-magic-runs td", has_text="<script>alert(2)")
            expect(runs_table).to_have_count(1)  # the output column, shortened

        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "escaping-failure.png"), full_page=True)
            (ARTIFACTS / "escaping-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
