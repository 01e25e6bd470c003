"""The compact display of %plprompts and %plruns (ui/compact.py): the data stays as it is,
the display reads as the CLI and the footer write values, and nothing in it is markup."""

from __future__ import annotations

import pickle

import pandas as pd

from pl_magic.ui.compact import TEXT_LIMIT, CompactFrame, cell_text, compact


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "labels": [{"prod": 2, "staging": 3}, {}],
            "versions": [[1, 2, 3], [1]],
            "model": ["openai/smollm2-135m-instruct", None],
            "latency_s": [0.344973, float("nan")],
            "cost_usd": [0.000123, None],
            "output": ["<img src=x onerror=alert(1)>", "x" * 500],
        },
        index=pd.Index(["capital-city", "other"], name="prompt_name"),
    )


def test_values_read_as_the_cli_and_the_footer_write_them():
    shown = compact(frame())._shown()
    assert shown.loc["capital-city", "labels"] == "prod→v2, staging→v3"
    assert shown.loc["capital-city", "versions"] == "1, 2, 3"
    assert shown.loc["capital-city", "latency_s"] == "0.34s"
    assert shown.loc["capital-city", "cost_usd"] == "$0.000123"
    missing = shown.loc["other", ["labels", "model", "latency_s", "cost_usd"]]
    assert list(missing) == ["—"] * 4  # unknown reads the same in every column
    assert len(shown.loc["other", "output"]) == TEXT_LIMIT
    assert cell_text({"a": "b"}) == "a=b" and cell_text(pd.NaT) == "—"


def test_the_data_is_unchanged_and_computing_gives_a_plain_frame():
    original = frame()
    df = compact(original)
    assert isinstance(df, CompactFrame)
    assert df.loc["capital-city", "labels"] == {"prod": 2, "staging": 3}
    assert df["latency_s"].dtype == "float64"
    assert type(df[["model"]]) is pd.DataFrame
    assert type(pickle.loads(pickle.dumps(df))) is CompactFrame


def test_html_does_not_wrap_and_escapes_what_a_model_wrote():
    html = compact(frame())._repr_html_()
    assert "white-space:nowrap" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "prod→v2, staging→v3" in html
    assert "prod→v2" in repr(compact(frame()))
