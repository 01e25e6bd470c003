"""The reviewer in a real browser: JupyterLab on 127.0.0.1, Debian's chromium driven by
Playwright (reference/notebook-testing.md). The runs are made here against the fake provider
server; the kernel reads them from the same PL_MAGIC_HOME, and the labels it saves are read
back here from the log."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import pl_magic
from pl_magic.engine.review_queue import ReviewQueue
from tests import conftest
from tests.helpers import chat, model, publish, scores
from tests.jupyterlab import ARTIFACTS, notebook_page
from tests.jupyterlab import lab as jupyterlab

pytestmark = pytest.mark.e2e

#: The echoed output carries the attack: it must show as text, and its handler never run.
ATTACK = "<img src=x onerror=window.__pwned=1>"
ROWS = [
    {"q": f"{ATTACK} hi", "expected": "<script>window.__pwned=2</script>"},
    {"q": "2+2?", "expected": "4"},
]
CELL = "import pl_magic\nreviewer = pl_magic.review(pl_magic.runs(prompt='qa'))\nreviewer"


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    """JupyterLab with a notebook showing the reviewer; yields the notebook's URL."""
    conftest.audit_dir(tmp_path)  # the notebook, the server's log: no key may reach them
    with jupyterlab(tmp_path, [CELL], name="review.ipynb") as url:
        yield url


def test_reviewer_labels_in_the_browser_and_the_labels_reach_the_log(lab, fake_provider):
    from playwright.sync_api import expect

    publish("qa", chat(("user", "v1 {q}")), model())
    publish("qa", chat(("user", "v2 {q}")), model())
    df = pl_magic.run_many("qa", versions=[1, 2], inputs=ROWS, concurrency=1)
    assert list(df["status"]) == ["ok"] * 4
    order = [item.request_id for item in ReviewQueue(pl_magic.runs(prompt="qa")).items]

    with notebook_page(lab, failure="review-failure", height=1100) as page:
        output = page.locator(".jp-OutputArea-output")
        progress = output.locator(".pl-magic-review-progress")
        expect(progress).to_contain_text("0/4 reviewed", timeout=60_000)
        expect(progress).to_contain_text("run 1 of 4")

        # what the model wrote and the inputs show as text, not as an image or a script
        run = output.locator(".pl-magic-review-output")
        expect(run).to_contain_text("echo: v1")
        shown = output.locator(".widget-html-content").all_inner_texts()
        assert any(ATTACK in text for text in shown), shown
        assert any("<script>window.__pwned=2</script>" in text for text in shown), shown
        assert output.locator("img").count() == 0
        assert page.evaluate("window.__pwned") is None

        output.locator(".widget-button", has_text="Good").click()
        expect(progress).to_contain_text("1/4 reviewed", timeout=30_000)
        output.get_by_role("button", name="4", exact=True).click()
        output.locator(".widget-textarea textarea").fill("clear enough")
        output.locator(".widget-button", has_text="Next").click()  # the note saves on blur
        expect(progress).to_contain_text("run 2 of 4", timeout=30_000)
        expect(output.locator(".widget-textarea textarea")).to_have_value("")

        output.locator(".widget-button", has_text="Bad").click()
        expect(progress).to_contain_text("2/4 reviewed", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "review-labelled.png"), full_page=True)

        # back to the first run: its stored label shows on the controls
        output.locator(".widget-button", has_text="Previous").click()
        expect(progress).to_contain_text("run 1 of 4", timeout=30_000)
        expect(output.locator(".widget-textarea textarea")).to_have_value("clear enough")
        expect(output.locator(".widget-button.mod-success", has_text="Good")).to_be_visible()
        expect(output.get_by_role("button", name="4", exact=True)).to_have_class(
            re.compile(r"\bmod-info\b")
        )
        assert page.evaluate("window.__pwned") is None

    logged = pl_magic.runs(prompt="qa").set_index("request_id")
    assert list(logged.loc[order[:2], "score.human"]) == [1.0, 0.0]
    assert logged.loc[order[0], "score.human.rating"] == 0.75
    assert logged.loc[order[2:], "score.human"].isna().all()
    notes = {r["request_id"]: r["reason"] for r in scores() if r["name"] == "human"}
    assert notes == {order[0]: "clear enough", order[1]: None}
    assert {r["source"] for r in scores()} == {"human"}
