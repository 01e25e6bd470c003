"""What the benchmark-driven fixes changed keeps its behaviour (issue 9; no timings here):
stream chunks' blueprints, incremental stream text, run_many without streaming, the log
write, and runs() built column by column."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import pl_magic
from pl_magic.core.store import open_db
from pl_magic.engine import results
from pl_magic.providers.openai import OpenAIStream
from pl_magic.runlog.sqlite import RunLog
from tests.helpers import chat, model, publish, runs

GREET = chat(("system", "Be brief."), ("user", "Hi {name}"))


@pytest.fixture
def greet(openai_env):
    publish("greet", GREET, model(temperature=0.1))


def _text(blueprint: dict) -> str:
    return blueprint["prompt_template"]["messages"][-1]["content"][0]["text"]


def test_stream_chunk_blueprints_grow_and_leave_the_result_and_log_alone(greet, fake_provider):
    fake_provider.stream_chunks = ["a", "b", "c"]
    chunks = list(pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True))
    texts = [_text(c["prompt_blueprint"]) for c in chunks if c["prompt_blueprint"]]
    assert texts[-1] == "abc" and "a" in texts and "ab" in texts
    # a chunk's blueprint is the person's to change: the final one and the log are not hit
    chunks[1]["prompt_blueprint"]["prompt_template"]["messages"][0]["content"][0]["text"] = "X"
    final = chunks[-1]["prompt_blueprint"]["prompt_template"]["messages"]
    assert final[0]["content"][0]["text"] == "Be brief."
    assert len(final) == 3 and final[-1]["role"] == "assistant"
    (row,) = runs()
    assert json.loads(row["rendered_input"])["messages"][0]["content"][0]["text"] == "Be brief."
    assert json.loads(row["raw_response"])["choices"][0]["message"]["content"] == "abc"


def test_stream_text_is_joined_incrementally():
    state = OpenAIStream()
    state.parts.append("ab")
    assert state.text == "ab"
    state.parts.extend(["c", "", "de"])
    assert state.text == "abcde"
    assert state.text == "abcde"


def test_run_many_does_not_stream_unless_asked(greet, fake_provider):
    df = pl_magic.run_many("greet", inputs=[{"name": "Ada"}, {"name": "Bo"}], repeat=2)
    assert list(df["status"]) == ["ok"] * 4
    assert sorted(df["output"]) == ["echo: Hi Ada"] * 2 + ["echo: Hi Bo"] * 2
    assert not any(r.stream for r in fake_provider.requests)
    assert df["ttft_s"].notna().all() and df["latency_s"].notna().all()

    fake_provider.requests.clear()
    df = pl_magic.run_many("greet", input_variables={"name": "Cy"}, stream=True)
    assert list(df["output"]) == ["echo: Hi Cy"]
    assert [r.stream for r in fake_provider.requests] == [True]


def test_logged_row_keeps_nested_values(greet, fake_provider):
    result = pl_magic.run("greet", input_variables={"name": "Ada"}, tags=["t"], metadata={"k": "v"})
    row = pl_magic.PromptLayer().runlog.get(result["request_id"])
    assert row is not None
    assert row["tags"] == ["t"] and row["metadata"] == {"k": "v"}
    assert row["parameters"] == {"temperature": 0.1}
    assert row["rendered_input"]["messages"][1]["content"][0]["text"] == "Hi Ada"


def _old_frame(rows: list[dict]) -> pd.DataFrame:
    """runs()'s frame built the way it was before issue 9: row by row, from_records."""
    parsed = [json.loads(r["input_variables"] or "{}") for r in rows]
    records = []
    for row, variables in zip(rows, parsed, strict=True):
        values = dict(row)
        values["error"] = row.get("error_message")
        values["repeat"] = row.get("repeat_index")
        for col in ("parameters", "tags", "metadata"):
            raw = row.get(col)
            values[col] = json.loads(raw) if isinstance(raw, str) else raw
        records.append(results._row(values, variables))
    return results._frame(records, results._variable_names(parsed))


def test_runs_frame_matches_the_row_by_row_build(greet, fake_provider):
    pl_magic.run("greet", input_variables={"name": "Ada"}, tags=["a"])
    pl_magic.run("greet", input_variables={"name": "Bo", "extra": [1, {"x": True}]})
    pl_magic.run("greet", input_variables={"name": "Cy", "flag": False, "n": 3})
    with open_db().write() as conn:  # a row logged with NULL variables
        conn.execute(
            "UPDATE runs SET input_variables = NULL, prompt_version = NULL, cost_usd = NULL "
            "WHERE request_id = (SELECT request_id FROM runs ORDER BY started_at LIMIT 1)"
        )
    rows = RunLog().query(columns=results.LOG_COLUMNS)
    df = pl_magic.runs()
    pd.testing.assert_frame_equal(df, _old_frame(rows))
    pd.testing.assert_frame_equal(results.frame_from_log_rows(rows), df)
    assert df["var.extra"].iloc[1] == [1, {"x": True}]
    assert df["var.flag"].iloc[2] is False
    assert math.isnan(df["var.flag"].iloc[1])
    assert df["tags"].iloc[0] == ["a"]
    pd.testing.assert_frame_equal(pl_magic.runs(prompt="nope"), _old_frame([]))


def test_json_column_falls_back_cell_by_cell():
    assert results._json_column(['{"a": 1}', None, ""], "{}") == [{"a": 1}, {}, {}]
    assert results._json_column(["1", "2"], "null") == [1, 2]
    with pytest.raises(ValueError):
        results._json_column(["{", "}"], "null")
