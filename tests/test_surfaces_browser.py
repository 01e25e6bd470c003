"""What a newcomer sees in JupyterLab (issue 19), in a real browser: the comparison grid's
row names, summary line and progress bar, ``--out``, the compact frames, ``compare()``,
``%plprompts``/``%plruns``, an error in a cell's words, the form's empty registry, stopped
run and runs table; and the HTML of a notebook the main job executed. Debian's chromium
driven by Playwright (reference/notebook-testing.md); the kernel talks to the fake provider
server.

Each point leaves a screenshot in ``test-artifacts/`` (``surfaces-*.png``) to look at.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import pl_magic
from tests import conftest
from tests.helpers import chat, model, publish
from tests.jupyterlab import ARTIFACTS, notebook_page, skip_without_browser
from tests.jupyterlab import lab as jupyterlab

pytestmark = pytest.mark.e2e

#: A model name that is markup (with no space: a magic's options split at spaces): the fake
#: server's 401 error repeats it, so it reaches the grid's row name, its cells' footers and
#: the summary line.
HOSTILE_MODEL = "<svg/onload=alert(1)>err-401"

#: The notebook's cells; the test finds each one's output by its position here.
COMPARISON_CELLS = [
    "%load_ext pl_magic\nimport pl_magic",
    # 1: --out: the grid and its summary, no DataFrame
    "%%plrun greet --versions 1,prod --models gpt-4o-mini,gpt-4.1-mini --out df\nname: Ada\n",
    # 2: no --out: the grid, then the compact runs frame
    "%%plrun greet --versions 1,prod --repeat 2\nname: Bo\n",
    # 3: some runs fail: a split bar, the failures first in the summary
    "%%plrun greet --versions 1,prod --models gpt-4o-mini,gpt-err-401 --out mixed\nname: Cy\n",
    # 4: every run fails, with an error that is markup
    f"%%plrun greet --versions 1,prod --models openai/{HOSTILE_MODEL} --out failed\nname: Di\n",
    # 5, 6: compare(): a version whose runs all failed before the call keeps its column
    "%%plrun greet --versions 1,3 --repeat 2 --out pre\nname: Ed\n",
    "pl_magic.compare(pre)",
    "%plprompts",  # 7
    "%plruns --limit 6",  # 8
    # 9, last (an error stops Run All): the fix in a cell's words
    "%%plrun nosuch\nname: x\n",
]


def _shot(locator: Any, name: str) -> Path:
    path = ARTIFACTS / f"surfaces-{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path


@pytest.fixture
def comparison_lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    conftest.audit_dir(tmp_path)  # the notebook, the server's log: no key may reach them
    publish("greet", chat(("user", "v1 hi {name}")), model())
    publish("greet", chat(("user", "v2 hello {name}")), model())
    publish("greet", chat(("user", "v3 {name} on {topic}")), model())
    pl_magic.set_label("greet", "prod", 2)
    with jupyterlab(tmp_path, COMPARISON_CELLS, "comparisons.ipynb") as url:
        yield url


def test_comparisons_read_well_in_the_browser(comparison_lab):
    from playwright.sync_api import expect

    with notebook_page(comparison_lab, failure="surfaces-failure", height=1200) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        cells = page.locator(".jp-CodeCell")
        # Run All stops at the last cell's error: everything before it has run
        error = cells.nth(9).locator(".jp-OutputArea-output")
        expect(error).to_contain_text("%plprompts", timeout=120_000)

        # --out: the grid (rows named as compare() names its columns) and one summary line
        out = cells.nth(1)
        rows = out.locator(".pl-magic-grid tbody th")
        expect(rows).to_have_text(
            [
                "openai/gpt-4o-mini · v1",
                "openai/gpt-4.1-mini · v1",
                "openai/gpt-4o-mini · v2 (prod)",
                "openai/gpt-4.1-mini · v2 (prod)",
            ]
        )
        summary = out.locator(".pl-magic-summary")
        expect(summary).to_have_text(
            re.compile(r"^4 runs · 4 ok · mean latency \d+\.\d\ds · \$\S+ → df$")
        )
        assert out.locator("table.dataframe").count() == 0, "--out also showed the DataFrame"
        assert out.locator(".pl-magic-bar-failed").count() == 0
        _shot(out, "grid-out")

        # without --out: the compact runs frame, not two dozen wrapped columns
        plain = cells.nth(2)
        frame = plain.locator(".pl-magic-compact table.dataframe")
        expect(frame).to_be_visible()
        headers = [h.strip() for h in frame.locator("thead th").all_inner_texts() if h.strip()]
        assert headers[0] == "model · version" and "request_id" not in headers, headers
        assert len(headers) <= 10, headers
        assert frame.evaluate("t => t.scrollWidth <= t.parentElement.parentElement.clientWidth")
        _shot(plain, "runs-frame")

        # some runs failed: the bar is split, the summary leads with the failures
        mixed = cells.nth(3)
        expect(mixed.locator(".pl-magic-bar-ok")).to_be_visible()
        expect(mixed.locator(".pl-magic-bar-failed")).to_be_visible()
        expect(mixed.locator(".pl-magic-summary")).to_contain_text("4 runs · 2 failed (first: ")
        expect(mixed.locator(".pl-magic-summary")).to_contain_text("· 2 ok · mean latency")
        _shot(mixed, "grid-split-bar")

        # every run failed: a red bar, the first error; the markup in it stays text
        failed = cells.nth(4)
        bar = failed.locator(".pl-magic-bar-failed")
        expect(bar).to_be_visible()
        assert bar.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"
        assert failed.locator(".pl-magic-bar-ok").count() == 0
        summary = failed.locator(".pl-magic-summary")
        expect(summary).to_contain_text("2 runs · 2 failed (first: ")
        expect(summary).to_contain_text(HOSTILE_MODEL)
        assert summary.evaluate("e => getComputedStyle(e).color") == "rgb(198, 40, 40)"
        expect(failed.locator(".pl-magic-grid tbody th").first).to_have_text(
            f"openai/{HOSTILE_MODEL} · v1"
        )
        assert failed.locator(".jp-OutputArea-output svg").count() == 0, "markup was rendered"
        assert not dialogs, f"a script ran: {dialogs}"
        _shot(failed, "grid-all-failed")

        # compare(): the version whose runs all failed before the call is a column
        compared = cells.nth(6)
        table = compared.locator("table.dataframe")
        expect(table).to_contain_text("openai/gpt-4o-mini · v1")
        expect(table).to_contain_text("— · v3")
        expect(table.locator("tr", has_text="error rate")).to_contain_text("100%")
        expect(table.locator("tr", has_text="first error")).to_contain_text("topic")
        _shot(compared, "compare-all-failed-cell")

        prompts = cells.nth(7)
        expect(prompts.locator("table.dataframe")).to_contain_text("prod→v2")
        _shot(prompts, "plprompts")
        runs_table = cells.nth(8).locator("table.dataframe")
        expect(runs_table).to_contain_text("openai")
        assert "None" not in runs_table.inner_text() and "NaN" not in runs_table.inner_text()
        _shot(cells.nth(8), "plruns")

        assert "\n" not in error.inner_text().strip()  # one red line
        _shot(cells.nth(9), "error-in-a-cell")


def _notebook(root: Path, name: str, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, root / name)


@pytest.fixture
def form_lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    conftest.audit_dir(tmp_path)
    with jupyterlab(tmp_path, ["import pl_magic\npl_magic.form()"], "empty.ipynb") as url:
        _notebook(
            tmp_path / "nbroot", "form.ipynb", "import pl_magic\nform = pl_magic.form()\nform"
        )
        yield url


def test_the_form_reads_well_in_the_browser(form_lab, fake_provider):
    from playwright.sync_api import expect

    # an empty registry: the form says how to make a prompt
    with notebook_page(form_lab, failure="surfaces-form-failure") as page:
        output = page.locator(".jp-OutputArea-output").first
        expect(output).to_contain_text("%%plprompt NAME", timeout=60_000)
        _shot(output, "form-empty-registry")

    publish("greet", chat(("user", "hi {name}")), model(temperature=0.2))
    form_url = form_lab.replace("empty.ipynb", "form.ipynb")
    with notebook_page(form_url, failure="surfaces-form-failure", height=1400) as page:
        output = page.locator(".jp-OutputArea-output").first
        run = output.locator(".widget-button", has_text="Run")
        expect(run).to_be_visible(timeout=60_000)
        output.locator(".widget-textarea textarea").first.fill("Ada")
        # 25 runs: the runs table shows the newest 20 and counts the others
        repeat_label = page.locator(".widget-label", has_text="repeat")
        repeat = output.locator(".widget-text", has=repeat_label).locator("input")
        repeat.fill("25")
        repeat.press("Tab")
        run.click()
        expect(output.locator(".pl-magic-runs-more")).to_contain_text(
            "5 earlier runs", timeout=60_000
        )
        expect(output.locator(".pl-magic-runs tbody tr")).to_have_count(20)

        # a run stopped mid-stream is in the runs table, as cancelled
        repeat.fill("1")
        repeat.press("Tab")
        fake_provider.stream_chunks = [f"word{i} " for i in range(200)]
        fake_provider.chunk_delay_s = 0.05
        expect(run).to_be_enabled()
        run.click()
        expect(output.locator(".pl-magic-run pre").last).to_contain_text("word3", timeout=30_000)
        output.locator(".widget-button", has_text="Stop").click()
        first_row = output.locator(".pl-magic-runs tbody tr").last
        expect(first_row).to_contain_text("cancelled", timeout=30_000)
        expect(output.locator(".pl-magic-runs-more")).to_contain_text("6 earlier runs")
        label = output.locator(".widget-label", has_text="temperature").first
        assert not label.evaluate("e => e.scrollWidth > e.clientWidth"), "a label is cut"
        _shot(output, "form-stopped-and-runs")


@pytest.fixture
def executed_quickstart(tmp_path, pl_home, fake_provider, monkeypatch) -> Path:
    """notebooks/quickstart.ipynb executed by the main job's step (scripts/execute_notebooks.py)
    from a fresh home with its starter prompts, the local model's prompts sent to the fake
    server; the HTML it wrote."""
    from pl_magic.core import local_target

    monkeypatch.setenv("PL_MAGIC_STARTERS", "1")
    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    monkeypatch.delenv(local_target.ENV_MODEL_NAME, raising=False)
    conftest.audit_dir(tmp_path)
    out = tmp_path / "out"
    script = Path(__file__).resolve().parents[1] / "scripts" / "execute_notebooks.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out), "quickstart"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "quickstart.html"


def test_the_executed_notebook_shows_a_streamed_reply_as_one_output(executed_quickstart):
    from playwright.sync_api import expect, sync_playwright

    from tests.jupyterlab import CHROMIUM, CHROMIUM_ARGS

    skip_without_browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        # offline: the page's CDN scripts (require.js, MathJax) are not fetched
        page.route(
            "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
        )
        try:
            page.goto(executed_quickstart.as_uri(), wait_until="domcontentloaded")
            cell = page.locator(".jp-Cell", has_text='text, chunks = "", 0')
            outputs = cell.locator(".jp-OutputArea-output")
            expect(outputs).to_have_count(1)  # every streamed piece in one output
            text = outputs.inner_text()
            chunks = re.search(r"\[(\d+) chunks; request [0-9a-f]{32}\]", text)
            assert chunks, text
            # the reply's own lines, not one line per streamed piece
            assert len(text.strip().splitlines()) < int(chunks[1]) // 4, text
            _shot(cell, "executed-stream-loop")
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "surfaces-executed-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
