"""Comparisons (engine/batch.py): the grid of versions × models × repeats × input rows, the
checks on its arguments, and the runs it makes against the fake provider server, through
``%plrun`` and through :class:`Batch` itself."""

from __future__ import annotations

import pandas as pd
import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.errors import InvalidInputError, PlMagicError, UnknownProviderError
from pl_magic.engine import batch
from pl_magic.engine.batch import Batch, PlannedRun
from tests.helpers import chat, model, publish, runs


@pytest.fixture
def greet(openai_env):
    publish("greet", chat(("user", "v1 hi {name}")), model(temperature=0.1))
    publish("greet", chat(("user", "v2 hello {name}")), model(temperature=0.1))
    publish("greet", chat(("user", "v3 hey {name}")), model(temperature=0.1))
    pl_magic.set_label("greet", "prod", 2)
    pl_magic.set_label("greet", "staging", 3)


# -- through %plrun ------------------------------------------------------------------------------


def test_inputs_models_repeats_make_twelve_rows(ip, greet, fake_provider):
    ip.user_ns["rows"] = pd.DataFrame({"name": ["A", "B", "C"]})
    shown = ip.run_line_magic(
        "plrun",
        "greet@prod --inputs rows --models gpt-4o-mini,openai/gpt-4.1-mini --repeat 2 --out cmp",
    )
    assert shown is None  # with --out the cell shows the grid and its summary, not the frame
    df = ip.user_ns["cmp"]
    assert len(df) == 12 and len(fake_provider.requests) == 12
    assert set(df["status"]) == {"ok"}
    assert sorted(df["var.name"].unique()) == ["A", "B", "C"]
    assert set(df["model"]) == {"gpt-4o-mini", "gpt-4.1-mini"}
    assert sorted(df["repeat"].unique()) == [0, 1]
    assert (df["output"] == "echo: v2 hello " + df["var.name"]).all()
    assert len(runs()) == 12


def test_versions_comparison_and_a_failing_run_is_a_row(ip, greet, fake_provider):
    df = ip.run_cell_magic(
        "plrun", "greet --versions 1,prod,staging --models gpt-4o-mini,gpt-err-401", "name: Z"
    )
    assert len(df) == 6
    failed = df[df["model"] == "gpt-err-401"]
    assert set(failed["status"]) == {"error"} and set(failed["error_category"]) == {"auth"}
    ok = df[df["model"] == "gpt-4o-mini"]
    assert sorted(ok["prompt_version"]) == [1, 2, 3]
    assert set(ok["release_label"].dropna()) == {"prod", "staging"}


def test_batch_row_for_a_run_that_failed_before_calling(ip, greet, fake_provider):
    ip.user_ns["rows"] = [{"name": "ok"}, {"other": "missing name"}]
    df = ip.run_line_magic("plrun", "greet --inputs rows")
    assert list(df["status"]) == ["ok", "error"]
    assert "name" in df["error"].iloc[1]
    assert len(runs()) == 1


# -- the arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("  anthropic/claude-x ", ("anthropic", "claude-x")),
        ("openai/ft:gpt-4o:org/x", ("openai", "ft:gpt-4o:org/x")),  # the rest is the name
        ("gpt-4.1", ("openai", "gpt-4.1")),
        ("o3-mini", ("openai", "o3-mini")),
        ("chatgpt-4o-latest", ("openai", "chatgpt-4o-latest")),
        ("claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("gemini-2.0-flash", ("google", "gemini-2.0-flash")),
    ],
)
def test_provider_and_model_finds_the_provider(value, expected):
    assert batch.provider_and_model(value) == expected


def test_provider_and_model_refuses_what_it_cannot_place():
    with pytest.raises(UnknownProviderError, match="cohere"):
        batch.provider_and_model("cohere/command-r")
    with pytest.raises(
        InvalidInputError, match=r"write it as provider/model, e\.g\. openai/llama-3"
    ):
        batch.provider_and_model("llama-3")


def test_split_list_and_parse_version():
    assert batch.split_list(" 2, prod ,,3") == ["2", "prod", "3"]
    assert batch.split_list(None) == [] and batch.split_list(("a", 1)) == ["a", 1]
    assert batch.split_list(7) == [7]
    assert [batch.parse_version(v) for v in (2, " 3 ", "prod")] == [
        (2, None),
        (3, None),
        (None, "prod"),
    ]
    for bad in (True, " "):
        with pytest.raises(InvalidInputError):
            batch.parse_version(bad)


def test_input_rows_from_a_dataframe_a_list_a_dict_or_a_generator():
    frame = pd.DataFrame({"name": ["A", "B"], "n": [1, 2]})
    assert batch.input_rows(frame) == [{"name": "A", "n": 1}, {"name": "B", "n": 2}]
    assert batch.input_rows([{"a": 1}]) == [{"a": 1}]
    assert batch.input_rows({"a": 1}) == [{"a": 1}]
    assert batch.input_rows({"a": i} for i in range(2)) == [{"a": 0}, {"a": 1}]
    assert batch.input_rows(None) == []
    for bad in ("name", 5, [{"a": 1}, "b"]):
        with pytest.raises(InvalidInputError, match="a DataFrame or a list of dicts"):
            batch.input_rows(bad)


def test_plan_order_is_input_row_then_version_then_model_then_repeat():
    planned = batch.plan(
        versions="1,prod",
        models=["gpt-4o-mini", "anthropic/claude-x"],
        repeat=2,
        inputs=[{"name": "A"}, {"name": "B", "tone": "dry"}],
        input_variables={"tone": "warm"},
    )
    assert len(planned) == 2 * 2 * 2 * 2
    assert [p.index for p in planned] == list(range(16))
    grid = [(p.input_index, p.version_name, p.model_name, p.repeat) for p in planned]
    assert grid[:5] == [
        (0, "1", "openai/gpt-4o-mini", 0),
        (0, "1", "openai/gpt-4o-mini", 1),
        (0, "1", "anthropic/claude-x", 0),
        (0, "1", "anthropic/claude-x", 1),
        (0, "prod", "openai/gpt-4o-mini", 0),
    ]
    assert grid[8] == (1, "1", "openai/gpt-4o-mini", 0)
    # each row's own values win over the shared ones
    assert planned[0].input_variables == {"tone": "warm", "name": "A"}
    assert planned[8].input_variables == {"tone": "dry", "name": "B"}
    assert (planned[4].version, planned[4].label) == (None, "prod")


def test_plan_without_lists_is_one_run_of_the_templates_own_model():
    (only,) = batch.plan(input_variables={"name": "Ada"})
    assert only == PlannedRun(0, None, None, None, None, 0, None, {"name": "Ada"})
    assert (only.version_name, only.model_name) == ("latest", "template")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"repeat": 0}, "repeat must be a whole number ≥ 1, not 0"),
        ({"repeat": True}, "repeat must be a whole number"),
        ({"repeat": "3"}, "repeat must be a whole number"),
        ({"versions": 2.5}, "versions must be a list or a comma-separated string"),
        ({"versions": [1, None]}, "an item is None, a NoneType"),
        ({"models": {"openai": "gpt-4o"}}, "models must be a list"),
        ({"models": [4]}, "an item is 4, a int"),
        ({"input_variables": ["Ada"]}, "input_variables must be a dict, not list"),
        ({"inputs": 5}, "inputs must be a DataFrame"),
        ({"versions": "1,,  ,"}, None),  # empties dropped: the latest version
    ],
)
def test_plan_refuses_bad_arguments_in_one_line(kwargs, needle):
    if needle is None:
        assert [p.version for p in batch.plan(**kwargs)] == [1]
        return
    with pytest.raises(InvalidInputError) as info:
        batch.plan(**kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_grid_too_big_is_refused_before_it_is_built():
    with pytest.raises(InvalidInputError, match="more than 100,000"):
        batch.plan(models="gpt-4o-mini,gpt-4.1", repeat=batch.MAX_RUNS)
    assert len(batch.plan(repeat=batch.MAX_RUNS)) == batch.MAX_RUNS


def test_check_runs_refuses_a_bad_concurrency_or_input_row_before_any_run(greet, fake_provider):
    engine = default_client().engine
    good = batch.plan(input_variables={"name": "Ada"})
    for concurrency in (0, -1, True, "4", 2.0):
        with pytest.raises(InvalidInputError, match="concurrency must be a whole number ≥ 1"):
            batch.check_runs(Batch(engine, "greet", good, concurrency=concurrency))
    rows = batch.plan(inputs=[{"name": "Ada"}, {"name": "\udc80"}])
    with pytest.raises(InvalidInputError, match="UTF-8"):
        batch.check_runs(Batch(engine, "greet", rows))
    assert fake_provider.requests == []


# -- running a batch -------------------------------------------------------------------------


def test_progress_comes_back_in_plan_order_whatever_finishes_first(greet, fake_provider):
    fake_provider.chunk_size = 1
    names = [f"n{i}" for i in range(10)]
    planned = batch.plan(versions="prod", inputs=[{"name": n} for n in names])
    seen: list[bool] = []
    progress = Batch(default_client().engine, "greet", planned, concurrency=5).execute(
        lambda items, final: seen.append(final)
    )
    assert [p.run.index for p in progress] == list(range(10))
    assert [p.text for p in progress] == [f"echo: v2 hello {n}" for n in names]
    assert {p.status for p in progress} == {"ok"}
    assert [p.request_id for p in progress] == [p.result["request_id"] for p in progress]
    assert seen[-1] is True and seen.count(True) == 1


def test_a_failing_run_is_an_error_item_and_the_others_complete(greet, fake_provider):
    planned = batch.plan(models="gpt-4o-mini,gpt-err-401,gpt-4.1", input_variables={"name": "A"})
    progress = Batch(default_client().engine, "greet", planned, stream=False).execute()
    assert [p.status for p in progress] == ["ok", "error", "ok"]
    failed = progress[1]
    assert isinstance(failed.error, PlMagicError) and failed.error.category == "auth"
    assert failed.result is None and failed.request_id  # logged, so it has an id
    assert {r["request_id"] for r in runs()} == {p.request_id for p in progress}


def test_streaming_is_asked_for_only_when_the_batch_streams(greet, fake_provider):
    engine = default_client().engine
    planned = batch.plan(repeat=2, input_variables={"name": "A"})
    Batch(engine, "greet", planned, stream=False).execute()
    Batch(engine, "greet", planned, stream=True).execute()
    assert [r.stream for r in fake_provider.requests] == [False, False, True, True]


def test_the_limit_is_per_provider(greet, fake_provider, anthropic_env):
    # Two workers (one per provider), one run at a time each: the second OpenAI run may not
    # start before the first one is answered, though a worker is free to take it.
    fake_provider.delay_s = 0.3
    planned = batch.plan(models="gpt-4o-mini,claude-x", repeat=2, input_variables={"name": "A"})
    progress = Batch(default_client().engine, "greet", planned, concurrency=1).execute()
    assert [p.status for p in progress] == ["ok"] * 4, [p.error for p in progress]
    openai = [r.received_at for r in fake_provider.requests_for("openai.chat")]
    assert len(openai) == 2 and openai[1] - openai[0] >= 0.25


def test_a_cancelled_batch_starts_nothing(greet, fake_provider):
    planned = batch.plan(repeat=3, input_variables={"name": "A"})
    run = Batch(default_client().engine, "greet", planned)
    run.cancel.set()
    progress = run.execute()
    assert [p.status for p in progress] == ["pending"] * 3
    assert fake_provider.requests == [] and runs() == []
