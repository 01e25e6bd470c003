"""engine/results: runs() and its filters, the comparison frame of run_many, compare() and
plot(), over runs logged through the engine against the fake provider."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError, PlMagicError
from pl_magic.engine import results
from tests.helpers import chat, model, publish

GREET = chat(("system", "Be brief."), ("user", "Hi {name}"))


@pytest.fixture
def greet(openai_env):
    publish("greet", GREET, model(temperature=0.1), release_labels=["prod"])
    publish("greet", chat(("user", "Hello {name}")), model())


@pytest.fixture
def logged(greet, fake_provider):
    """Four runs: two of greet v1 tagged ``a`` (one in a group), one of v2, one failed."""
    group = pl_magic.create_group()
    ids = [
        pl_magic.run("greet", 1, input_variables={"name": "Ada"}, tags=["a"])["request_id"],
        pl_magic.run(
            "greet", 1, input_variables={"name": "Bo", "x": 1}, tags=["a"], group_id=group
        )["request_id"],
        pl_magic.run("greet", 2, input_variables={"name": "Cy"})["request_id"],
    ]
    with pytest.raises(PlMagicError) as info:
        pl_magic.run("greet", 1, input_variables={"name": "Dee"}, model="gpt-x-err-404")
    ids.append(info.value.request_id)
    return {"ids": ids, "group": group}


def test_runs_frame_columns_types_and_order(logged):
    df = pl_magic.runs()
    assert list(df["request_id"]) == logged["ids"]  # newest last
    assert list(df.columns) == [
        *results.COLUMNS[:8],
        "var.name",
        "var.x",
        *results.COLUMNS[8:],
    ]
    assert list(df["var.name"]) == ["Ada", "Bo", "Cy", "Dee"]
    assert df["var.x"].iloc[1] == 1 and math.isnan(df["var.x"].iloc[0])
    assert str(df["started_at"].dt.tz) == "UTC"
    assert str(df["prompt_version"].dtype) == "Int64" and list(df["prompt_version"]) == [1, 1, 2, 1]
    assert str(df["latency_s"].dtype) == "float64"
    assert df["parameters"].iloc[0] == {"temperature": 0.1}
    assert df["tags"].iloc[0] == ["a"] and df["tags"].iloc[2] == []
    assert list(df["status"]) == ["ok", "ok", "ok", "error"]
    assert df["output"].iloc[0] == "echo: Hi Ada"
    assert df["error"].iloc[3] and df["error_category"].iloc[3]
    assert df["repeat"].iloc[0] == 0 and df["group_id"].iloc[1] == logged["group"]
    assert pd.isna(df["group_id"].iloc[0])


def test_runs_filters_combine(logged):
    ids = logged["ids"]
    assert list(pl_magic.runs(tag="a")["request_id"]) == ids[:2]
    assert list(pl_magic.runs(group_id=logged["group"])["request_id"]) == [ids[1]]
    # status: results.runs() only (pl_magic.runs() does not take it)
    assert list(results.runs(status="error")["request_id"]) == [ids[3]]
    assert list(results.runs(prompt="greet", status="ok", limit=2)["request_id"]) == ids[1:3]
    assert list(pl_magic.runs(limit=1)["request_id"]) == [ids[3]]
    assert pl_magic.runs(limit=0).empty
    assert pl_magic.runs(prompt="greet", tag="nope").empty
    future = datetime.now(UTC) + timedelta(days=1)
    assert pl_magic.runs(since=future).empty
    assert len(pl_magic.runs(since=date(2000, 1, 1))) == 4
    assert len(pl_magic.runs(since="2000-01-01 10:00")) == 4
    assert len(pl_magic.runs(since=pd.Timestamp("2000-01-01"))) == 4


def test_runs_since_reads_naive_times_as_utc():
    assert results._iso(datetime(2026, 1, 2, 3, 4)) == "2026-01-02T03:04:00.000000+00:00"
    later = datetime(2026, 1, 2, 3, 4, tzinfo=UTC) + timedelta(hours=0)
    assert results._iso(later) == "2026-01-02T03:04:00.000000+00:00"
    assert results._iso(date(2026, 1, 2)) == "2026-01-02T00:00:00+00:00"
    assert results._iso("2026-01-02") == "2026-01-02T00:00:00.000000+00:00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ["a"]}, "runs(prompt=...) takes one name as a string, not list"),
        ({"tag": 3}, "runs(tag=...) takes one name as a string, not int"),
        ({"status": 1}, "runs(status=...) takes a string such as 'ok' or 'error', not int"),
        ({"group_id": "1"}, "runs(group_id=...) takes a group id"),
        ({"group_id": True}, "runs(group_id=...) takes a group id"),
        ({"limit": -1}, "runs(limit=...) takes a whole number of runs"),
        ({"limit": 2.0}, "runs(limit=...) takes a whole number of runs"),
        ({"since": "garbage"}, "is not a date"),
        ({"since": 5}, "since must be a date, a datetime or a date string"),
        ({"since": pd.NaT}, "since=NaT is not a date"),
    ],
)
def test_runs_refuses_bad_filters_in_one_line(kwargs, message):
    with pytest.raises(InvalidInputError) as info:
        results.runs(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_empty_log_is_an_empty_frame_with_every_column():
    df = pl_magic.runs()
    assert df.empty and list(df.columns) == list(results.COLUMNS)
    pd.testing.assert_frame_equal(results.frame_from_log_rows([]), df)


def test_frame_from_log_rows_matches_runs(logged):
    rows = pl_magic.PromptLayer().runlog.query()  # whole rows, as stored
    pd.testing.assert_frame_equal(results.frame_from_log_rows(rows), pl_magic.runs())


def test_run_many_frame_has_the_logged_rows_and_the_plan_of_the_rest(greet, fake_provider):
    df = pl_magic.run_many(
        "greet",
        versions=[1, "prod"],
        models=["gpt-4o-mini", "gpt-x-err-404"],
        inputs=[{"name": "Ada"}],
    )
    assert len(df) == 4
    assert list(df.columns) == [*results.COLUMNS[:8], "var.name", *results.COLUMNS[8:]]
    logged = pl_magic.runs()
    assert set(df["request_id"]) == set(logged["request_id"])
    ok = df[df["status"] == "ok"]
    assert len(ok) == 2 and set(ok["output"]) == {"echo: Hi Ada"}
    assert set(df.loc[df["status"] == "error", "model"]) == {"gpt-x-err-404"}
    assert set(df["release_label"].dropna()) == {"prod"}
    assert list(df["var.name"]) == ["Ada"] * 4
    assert str(df["prompt_version"].dtype) == "Int64"


def test_run_many_row_of_a_run_that_never_reached_the_provider(greet, fake_provider):
    df = pl_magic.run_many("greet", versions=[1], inputs=[{"name": "Ada"}, {"other": "x"}])
    assert list(df["status"]) == ["ok", "error"]
    failed = df.iloc[1]
    assert failed["error_category"] == "input" and "name" in failed["error"]
    assert pd.isna(failed["request_id"]) and failed["prompt_name"] == "greet"
    assert failed["var.other"] == "x" and math.isnan(df["var.other"].iloc[0])
    assert len(pl_magic.runs()) == 1  # nothing was logged for it


def test_compare_puts_outputs_side_by_side_with_summary_rows(greet, fake_provider):
    df = pl_magic.run_many("greet", versions=[1, 2], inputs=[{"name": "Ada"}, {"name": "Bo"}])
    table = pl_magic.compare(df)
    assert table.columns.name == "model · version"
    assert sorted(table.columns) == ["openai/gpt-4o-mini · v1", "openai/gpt-4o-mini · v2"]
    assert list(table.index[:2]) == ["name=Ada #0", "name=Bo #0"]
    assert table.loc["name=Ada #0", "openai/gpt-4o-mini · v1"] == "echo: Hi Ada"
    assert table.loc["name=Bo #0", "openai/gpt-4o-mini · v2"] == "echo: Hello Bo"
    assert list(table.index[2:]) == [
        "mean latency_s",
        "p95 latency_s",
        "mean ttft_s",
        "mean output_tokens",
        "total cost_usd",
        "error rate",
        "first error",
    ]
    assert (table.loc["error rate"] == 0.0).all()
    assert table.loc["first error"].isna().all()
    assert (table.loc["mean latency_s"] > 0).all()


def test_compare_keeps_a_cell_whose_runs_all_failed_with_its_first_error(greet, fake_provider):
    publish("greet", chat(("user", "Hey {name}, {topic}?")), model())  # v3 needs a topic
    df = pl_magic.run_many("greet", versions=[1, 3], inputs=[{"name": "Ada"}, {"name": "Bo"}])
    failed = df[df["prompt_version"] == 3]
    assert (failed["status"] == "error").all() and not failed["output"].fillna("").any()
    table = pl_magic.compare(df)
    assert list(table.columns) == ["openai/gpt-4o-mini · v1", "— · v3"]
    assert table.loc["error rate", "— · v3"] == 1.0
    first = table.loc["first error", "— · v3"]
    assert isinstance(first, str) and "topic" in first and "\n" not in first


def test_compare_reads_for_a_person_and_keeps_its_numbers_in_data(greet, fake_provider):
    df = pl_magic.run_many("greet", versions=[1, 2], inputs=[{"name": "Ada"}])
    table = pl_magic.compare(df)
    shown = table._shown()
    cell = "openai/gpt-4o-mini · v1"
    assert re.fullmatch(r"\d+\.\d\ds", shown.loc["mean latency_s", cell])
    assert shown.loc["total cost_usd", cell].startswith("$")
    assert shown.loc["error rate", cell] == "0%"
    assert shown.loc["first error", cell] == "—"
    data = table.data
    assert type(data) is pd.DataFrame and data.loc["error rate", cell] == 0.0
    assert "nan" not in table._repr_html_().lower() and "none" not in table._repr_html_().lower()


def test_compare_counts_errors_and_refuses_other_frames(greet, fake_provider):
    df = pl_magic.run_many(
        "greet",
        versions=["prod"],
        models=["gpt-4o-mini", "gpt-x-err-404"],
        repeat=2,
        input_variables={"name": "Ada"},
    )
    table = pl_magic.compare(df)
    rates = table.loc["error rate"]
    assert rates["openai/gpt-x-err-404 · v1 (prod)"] == 1.0
    assert rates["openai/gpt-4o-mini · v1 (prod)"] == 0.0
    assert list(table.index[:2]) == ["name=Ada #0", "name=Ada #1"]  # one row per repeat
    with pytest.raises(InvalidInputError, match="compare\\(\\) takes a runs DataFrame"):
        pl_magic.compare(pd.DataFrame({"output": ["x"]}))
    with pytest.raises(InvalidInputError, match="compare\\(\\) takes a runs DataFrame"):
        pl_magic.compare([{"output": "x"}])


def test_plot_charts_a_metric_per_model_and_version(greet, fake_provider):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    df = pl_magic.run_many("greet", versions=[1, 2], input_variables={"name": "Ada"})
    ax = results.plot(df, "output_tokens")
    assert ax.get_title() == "mean output_tokens per model and version"
    assert len(ax.patches) == 2
    with pytest.raises(InvalidInputError, match="No column 'speed' to chart"):
        results.plot(df, "speed")


def scored_runs() -> pd.DataFrame:
    """Three cells of a scored comparison (two inputs, repeats), built by hand: a pass/fail
    score, a graded one and a score nobody gave."""
    nan = float("nan")
    cells = {
        ("gpt-4o-mini", 1): ([1.0, 0.0, 1.0, 0.0], [0.2, 0.4, 0.3, 0.5]),
        ("gpt-4o-mini", 2): ([1.0, 1.0, 1.0, 1.0], [0.9, 0.7, 0.8, 0.6]),
        ("gpt-4o", 1): ([1.0, 1.0, 0.0, nan], [0.5, nan, 0.6, 0.4]),
    }
    rows = []
    for (name, version), (passes, grades) in cells.items():
        for i, (passed, grade) in enumerate(zip(passes, grades, strict=True)):
            rows.append(
                {
                    "provider": "openai",
                    "model": name,
                    "prompt_version": version,
                    "release_label": None,
                    "var.name": ["Ada", "Bo"][i % 2],
                    "output": f"reply {i}",
                    "status": "ok",
                    "latency_s": 0.1 * (i + 1),
                    "ttft_s": 0.05,
                    "output_tokens": 3,
                    "cost_usd": 0.001,
                    "repeat": i // 2,
                    "score.contains": passed,
                    "score.similar": grade,
                    "score.judge": nan,
                }
            )
    df = pd.DataFrame(rows)
    for column in ("prompt_version", "output_tokens", "repeat"):
        df[column] = df[column].astype("Int64")
    return df


def test_compare_chart_draws_each_score_with_its_interval_in_compares_order():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.container import BarContainer

    from pl_magic.engine.statistics import cell_summary

    df = scored_runs()
    plt.close("all")
    try:
        table = pl_magic.compare(df, chart=True)
        latency, scores = (plt.figure(n) for n in plt.get_fignums())
        assert latency.axes[0].get_title() == "mean latency_s per model and version"
        axes = scores.axes
        assert len(axes) == 2  # score.judge has no value: no chart
        cells = list(table.columns)
        assert cells[0] == "openai/gpt-4o-mini · v2"  # best first, as compare orders them
        for ax, name in zip(axes, ("contains", "similar"), strict=True):
            summary = cell_summary(df, name).reindex(cells)
            assert ax.get_title() == f"mean {name} per model and version (95 % CI)"
            assert ax.get_xlabel() == f"mean {name}" and ax.get_ylabel() == "model · version"
            (bars,) = (c for c in ax.containers if isinstance(c, BarContainer))
            # Cells at y = 0, 1, 2 from the top (the axis is inverted), one bar each.
            shown = sorted(bars.patches, key=lambda bar: bar.get_y())
            assert [t.get_text() for t in ax.get_yticklabels()] == cells
            assert ax.yaxis_inverted()
            assert [bar.get_width() for bar in shown] == pytest.approx(list(summary["mean"]))
            segments = bars.errorbar.lines[2][0].get_segments()
            spans = sorted((s[0][1], s[0][0], s[1][0]) for s in segments)
            assert [(low, high) for _, low, high in spans] == [
                (pytest.approx(lo), pytest.approx(hi))
                for lo, hi in zip(summary["ci_low"], summary["ci_high"], strict=True)
            ]
        # The pass/fail score's interval stays within 0–1 (4 passes of 4 on v2).
        v2 = cell_summary(df, "contains").loc["openai/gpt-4o-mini · v2"]
        assert v2["ci_high"] == 1.0 and 0 < v2["ci_low"] < 1
    finally:
        plt.close("all")


def test_plot_scores_refuses_a_frame_without_scores():
    pytest.importorskip("matplotlib")
    df = scored_runs().drop(columns=["score.contains", "score.similar"])
    with pytest.raises(InvalidInputError, match="No scores to chart"):
        results.plot_scores(df)
    with pytest.raises(InvalidInputError, match="plot_scores\\(\\) takes a runs DataFrame"):
        results.plot_scores([1])
