"""What a comparison shows (``%%plrun --versions/--models``): grid rows named as
``compare()`` names its columns (one rule, core/cell_names.py), the progress bar split by
outcome, the summary line that leads with failures, ``--out`` showing the grid and not the
DataFrame, and the compact runs frame otherwise. Against the fake provider server."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.cell_names import cell_name, version_name
from pl_magic.engine.batch import Batch, plan
from pl_magic.engine.labels import cell_label, planned_cells
from pl_magic.ui import footer
from pl_magic.ui.compact import RunsFrame
from pl_magic.ui.display import GridCell, GridView
from tests.helpers import chat, model, publish

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def greet(openai_env):
    publish("greet", chat(("user", "v1 hi {name}")), model())
    publish("greet", chat(("user", "v2 hello {name}")), model())
    publish("greet", chat(("user", "v3 {name} on {topic}")), model())
    pl_magic.set_label("greet", "prod", 2)


@pytest.fixture
def live(ip, monkeypatch):
    """The shell as a front end with display updates (the live grid)."""
    monkeypatch.setattr(ip, "kernel", object(), raising=False)
    return ip


def _grid_html(captured) -> str:
    grids = [o.data["text/html"] for o in captured.outputs if "pl-magic-grid" in str(o.data)]
    return grids[-1]


def _row_names(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m).replace("&amp;", "&")
        for m in re.findall(r"<tr><th[^>]*>(.*?)</th>", html.split("<tbody>", 1)[1])
    ]


# -- the one naming rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("gpt-4o-mini", 3, None, "openai"), "openai/gpt-4o-mini · v3"),
        (("gpt-4o-mini", 3, "prod", "openai"), "openai/gpt-4o-mini · v3 (prod)"),
        (("gpt-4o-mini", None, "prod", "openai"), "openai/gpt-4o-mini · v? (prod)"),
        (("gpt-4o-mini", 3.0, "", None), "gpt-4o-mini · v3"),
        ((None, 2, None, None), "— · v2"),
        ((float("nan"), pd.NA, float("nan"), "openai"), "— · v?"),
    ],
)
def test_one_rule_names_a_cell(args, name):
    assert cell_name(*args) == name


def test_cell_label_applies_the_rule_to_each_run():
    df = pd.DataFrame(
        {
            "provider": ["openai", "local", None, "openai"],
            "model": ["gpt-4o-mini", "smollm2-135m-instruct", None, "gpt-4o-mini"],
            "prompt_version": pd.array([1, 2, 3, None], dtype="Int64"),
            "release_label": [None, "prod", None, "staging"],
        }
    )
    labels = cell_label(df)
    assert labels.iloc[0] == "openai/gpt-4o-mini · v1"
    assert labels.iloc[1] == "local/smollm2-135m-instruct · v2 (prod)"
    assert labels.isna().iloc[2]  # no model: compare() places the run by its version
    assert labels.iloc[3] == "openai/gpt-4o-mini · v? (staging)"
    assert version_name(pd.NA, "prod") == "v? (prod)"


# -- the grid's rows ---------------------------------------------------------------------------


def test_grid_rows_are_named_as_compare_names_its_columns(live, greet, fake_provider):
    with capture_output(display=True) as captured:
        live.run_cell_magic(
            "plrun", "greet --versions 1,prod --models gpt-4o-mini,gpt-4.1-mini --out df", "name: A"
        )
    rows = _row_names(_grid_html(captured))
    assert rows == [
        "openai/gpt-4o-mini · v1",
        "openai/gpt-4.1-mini · v1",
        "openai/gpt-4o-mini · v2 (prod)",
        "openai/gpt-4.1-mini · v2 (prod)",
    ]
    assert set(rows) == set(pl_magic.compare(live.user_ns["df"]).columns)
    assert "template" not in str(captured.outputs)
    assert "ran v2" not in _grid_html(captured)  # the row says which version ran


def test_grid_rows_of_inputs_and_of_a_cell_that_cannot_be_read(live, greet, fake_provider):
    live.user_ns["rows"] = [{"name": "A"}, {"name": "B"}]
    with capture_output(display=True) as captured:
        live.run_line_magic("plrun", "greet --versions 2,9 --inputs rows --out df")
    assert _row_names(_grid_html(captured)) == [
        "row 0 · openai/gpt-4o-mini · v2",
        "row 0 · — · v9",  # no version 9: its runs fail and say so
        "row 1 · openai/gpt-4o-mini · v2",
        "row 1 · — · v9",
    ]
    assert set(live.user_ns["df"]["status"]) == {"ok", "error"}


def test_planned_cells_read_each_template_once(greet, fake_provider):
    planned = plan(versions=[1, "prod", "nosuch"], models=None, repeat=3)
    batch = Batch(default_client().engine, "greet", planned)
    cells = planned_cells(batch)
    assert len(cells) == 9
    assert [c.name for c in cells[::3]] == [
        "openai/gpt-4o-mini · v1",
        "openai/gpt-4o-mini · v2 (prod)",
        "— · v? (nosuch)",
    ]
    assert [c.version for c in cells[::3]] == [1, 2, None]
    assert fake_provider.requests == []  # nothing rendered, nothing called


# -- the progress bar and the summary line -----------------------------------------------------


def _cells(*statuses: str) -> list[GridCell]:
    return [
        GridCell("openai/gpt-4o-mini · v1", f"#{i + 1}", status=s) for i, s in enumerate(statuses)
    ]


def test_failed_runs_colour_the_bar():
    grid = GridView(_cells("ok", "error", "error", "running"), live=False)
    page = grid._html()
    assert (
        'class="pl-magic-bar-ok" title="1 ok" style="width:25.000%;background-color:#2e7d32"'
        in page
    )
    assert 'class="pl-magic-bar-failed" title="2 failed" style="width:50.000%;' in page
    assert "background-color:#c62828" in page
    assert 'aria-valuenow="3"' in page and "3/4 runs (75%), " in page
    assert "2 failed</span>" in page
    every = GridView(_cells("error", "error"), live=False)._html()
    assert (
        "pl-magic-bar-ok" not in every
        and 'style="width:100.000%;background-color:#c62828"' in every
    )
    assert "mathjax_ignore" in page  # two dollar amounts must not typeset as a formula


def test_the_summary_is_escaped_and_red_when_runs_failed():
    grid = GridView(_cells("error"), live=False)
    grid.summary, grid.summary_status = f"1 run · 1 failed (first: {HOSTILE})", "error"
    page = grid._html()
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'class="pl-magic-summary" style="margin-bottom:4px;color:#c62828"' in page
    assert grid._plain().endswith(f"1 run · 1 failed (first: {HOSTILE})")


def _runs(statuses, errors=None, latencies=None, costs=None) -> pd.DataFrame:
    n = len(statuses)
    return pd.DataFrame(
        {
            "status": statuses,
            "error": errors or [None] * n,
            "latency_s": latencies or [0.3] * n,
            "cost_usd": costs or [0.0001] * n,
        }
    )


def test_summary_line_of_runs_that_went_well():
    line, status = footer.comparison(_runs(["ok"] * 4, latencies=[0.3, 0.4, 0.35, 0.39]), "df")
    assert line == "4 runs · 4 ok · mean latency 0.36s · $0.000400 → df" and status == "ok"
    one, _ = footer.comparison(_runs(["ok"], costs=[float("nan")]))
    assert one == "1 run · 1 ok · mean latency 0.30s · $—"


def test_summary_line_leads_with_the_failures_and_the_first_error():
    errors = [None, "first  bad\nthing: list prompts with pl_magic.prompts()", "second"]
    line, status = footer.comparison(
        _runs(["ok", "error", "error"], errors, [0.5, 9.0, 9.0], [0.0001, None, None]),
        "df",
        "magic",
    )
    assert line == (
        "3 runs · 2 failed (first: first bad thing: list prompts with %plprompts) · 1 ok · "
        "mean latency 0.50s · $0.000100 → df"
    )
    assert status == "error"
    every, _ = footer.comparison(
        _runs(["error"] * 4, ["x" * 300] * 4, [None] * 4, [None] * 4), None
    )
    assert every.startswith("4 runs · 4 failed (first: xxx") and every.endswith("…)")
    assert " ok" not in every and "$" not in every
    stopped, status = footer.comparison(_runs(["ok", "cancelled", "skipped"]))
    assert stopped.startswith("3 runs · 1 ok · 1 cancelled · 1 skipped (budget) · ")
    assert status == "cancelled"


# -- --out and the frame shown without it ------------------------------------------------------


def test_out_shows_the_grid_and_its_summary_not_the_frame(live, greet, fake_provider):
    with capture_output(display=True) as captured:
        shown = live.run_cell_magic(
            "plrun", "greet --versions 1,prod --models gpt-4o-mini,gpt-err-401 --out df", "name: A"
        )
    assert shown is None and len(live.user_ns["df"]) == 4
    assert captured.outputs and all(
        o.data["text/html"].startswith('<div class="pl-magic-grid') for o in captured.outputs
    )
    html = _grid_html(captured)
    summary = re.search(r'class="pl-magic-summary"[^>]*>(.*?)</div>', html)[1]
    assert summary.startswith("4 runs · 2 failed (first: openai auth error (HTTP 401)")
    assert " · 2 ok · mean latency " in summary and summary.endswith(" → df")
    assert "pl-magic-bar-failed" in html and "pl-magic-bar-ok" in html


def test_without_out_the_frame_is_the_compact_runs_frame(ip, greet, fake_provider, capsys):
    df = ip.run_cell_magic("plrun", "greet --versions 1,prod --repeat 2", "name: A")
    assert isinstance(df, RunsFrame) and len(df.columns) > 20  # the data: every column
    assert "4 runs · 4 ok · mean latency" in capsys.readouterr().out  # (a terminal: printed)
    shown = df._shown()
    assert list(shown.columns) == [
        "model · version",
        "var.name",
        "repeat",
        "status",
        "output",
        "latency_s",
        "output_tokens",
        "cost_usd",
    ]
    assert (
        list(shown["model · version"])
        == ["openai/gpt-4o-mini · v1"] * 2 + ["openai/gpt-4o-mini · v2 (prod)"] * 2
    )
    assert shown["latency_s"].str.fullmatch(r"\d+\.\d\ds").all()
    html = df._repr_html_()
    assert "request_id" not in html and "white-space:nowrap" in html
    assert "4 runs; 8 of the DataFrame's" in html
    assert type(df[["status"]]) is pd.DataFrame  # computing on it gives a plain frame


def test_the_runs_frame_shows_errors_and_scores_escaped():
    df = pd.DataFrame(
        {
            "provider": ["openai", None],
            "model": ["gpt-4o-mini", None],
            "prompt_version": pd.array([1, 3], dtype="Int64"),
            "release_label": [None, None],
            "output": ["fine", ""],
            "status": ["ok", "error"],
            "error": [None, HOSTILE],
            "latency_s": [0.2, None],
            "score.contains": [1.0, None],
        }
    )
    frame = RunsFrame(df)
    shown = frame._shown()
    assert list(shown.columns) == [
        "model · version",
        "status",
        "output",
        "error",
        "latency_s",
        "score.contains",
    ]
    assert list(shown["model · version"]) == ["openai/gpt-4o-mini · v1", "— · v3"]
    assert HOSTILE not in frame._repr_html_()


def test_a_long_runs_frame_shows_its_first_and_last_rows_as_pandas_does():
    n = 100_000
    df = pd.DataFrame(
        {
            "provider": ["openai"] * n,
            "model": ["gpt-4o-mini"] * n,
            "prompt_version": pd.array([1] * n, dtype="Int64"),
            "output": [f"reply {i}" for i in range(n)],
            "status": ["ok"] * n,
            "latency_s": [0.5] * n,
        }
    )
    html = RunsFrame(df)._repr_html_()
    assert html.count("<tr") == 1 + 10 + 1  # the header, the first and last 5, and "…"
    assert ">reply 0<" in html and ">reply 99999<" in html and ">reply 5<" not in html
    assert "100,000 rows × 6 columns" in html and "100,000 runs; 4 of the DataFrame's" in html
    text = repr(RunsFrame(df))
    assert "reply 99999" in text and text.endswith("[100,000 rows × 6 columns]")
    with pd.option_context("display.max_rows", None):
        assert RunsFrame(df.head(100))._repr_html_().count("<tr") == 101
