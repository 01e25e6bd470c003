"""A comparison's cost before and while it runs (engine/estimate.py, Batch's budget): the
estimate in the grid's header and run_many's notice, the budget refusal and the runs skipped
once the budget is spent, against the fake provider server."""

from __future__ import annotations

import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine import estimate as est
from pl_magic.engine.batch import Batch, plan
from pl_magic.ui.display import GridCell, GridView
from tests.helpers import chat, model, publish, runs

# 200 three-letter words: four characters a word with its space, so that the estimate's
# characters / 4 and the fake server's count (whitespace-separated words) measure the same.
LONG = " ".join(["cat", "dog", "sun", "map"] * 50)


@pytest.fixture
def long_prompt(openai_env):
    publish("long", chat(("user", LONG + " {name}")), model(max_tokens=50))


def _batch(name: str, **kwargs) -> Batch:
    planned = plan(kwargs.pop("versions", None), kwargs.pop("models", None), **kwargs)
    return Batch(default_client().engine, name, planned)


def test_estimate_within_ten_percent_of_the_reported_prompt_tokens(long_prompt, fake_provider):
    rows = [{"name": n} for n in ("Ada", "Bob", "Cy")]
    estimate = est.estimate(_batch("long", inputs=rows, repeat=2))
    assert not fake_provider.requests  # no provider was called
    assert estimate.runs == 6
    assert estimate.output_tokens == 6 * 50  # the template's max_tokens
    df = pl_magic.run_many("long", inputs=rows, repeat=2)
    assert set(df["status"]) == {"ok"}
    actual = sum(r["input_tokens"] for r in runs())
    assert abs(estimate.input_tokens - actual) <= 0.1 * actual
    assert estimate.low_usd is not None and estimate.high_usd is not None
    assert 0 < estimate.low_usd < estimate.high_usd
    # low = input only, high = input + max output, at gpt-4o-mini's price
    assert estimate.high_usd == pytest.approx(
        estimate.low_usd + est.pricing.cost_usd("openai", "gpt-4o-mini", 0, 300), rel=1e-6
    )


def test_run_many_prints_the_estimate_as_one_notice(long_prompt, capsys):
    pl_magic.run_many("long", input_variables={"name": "Ada"}, repeat=3)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "estimate:" in line]
    assert len(lines) == 1
    assert "3 runs · ≈ 612 input tokens · $0.0000" in lines[0] and "–$" in lines[0]


def test_run_many_is_quiet_when_the_cost_is_unknown(long_prompt, capsys):
    df = pl_magic.run_many(
        "long", models="openai/not-a-priced-model", input_variables={"name": "A"}
    )
    assert set(df["status"]) == {"ok"}
    assert "estimate" not in capsys.readouterr().err
    summary = est.estimate(
        _batch("long", models="openai/not-a-priced-model", input_variables={"name": "A"})
    ).summary()
    assert "cost unknown (no price for openai/not-a-priced-model)" in summary


def test_no_max_tokens_counts_the_default(openai_env):
    publish("free", chat(("user", "hi {name}")), model())
    estimate = est.estimate(_batch("free", input_variables={"name": "A"}))
    assert estimate.output_tokens == est.DEFAULT_MAX_OUTPUT


def test_a_run_that_will_fail_before_calling_costs_nothing(long_prompt):
    estimate = est.estimate(_batch("long", inputs=[{"name": "A"}, {"other": "no name"}]))
    assert estimate.runs == 2
    assert (
        estimate.input_tokens == est.estimate(_batch("long", inputs=[{"name": "A"}])).input_tokens
    )


def test_budget_refusal_is_one_line_and_calls_nothing(long_prompt, fake_provider):
    with pytest.raises(InvalidInputError) as info:
        pl_magic.run_many("long", input_variables={"name": "A"}, repeat=4, budget=0.00001)
    message = str(info.value)
    assert "\n" not in message
    assert "Not started" in message and "4 runs" in message and "budget=0." in message
    assert not fake_provider.requests and not runs()


def test_budget_with_an_unknown_cost_refuses(long_prompt, fake_provider):
    with pytest.raises(InvalidInputError, match="cost must be known"):
        pl_magic.run_many(
            "long", models="openai/not-a-priced-model", input_variables={"name": "A"}, budget=1.0
        )
    assert not fake_provider.requests


@pytest.mark.parametrize("bad", [-1, "1", True, float("nan")])
def test_budget_must_be_a_number(long_prompt, bad):
    with pytest.raises(InvalidInputError, match="budget must be a number"):
        pl_magic.run_many("long", input_variables={"name": "A"}, budget=bad)


def test_runs_stop_once_the_budget_is_spent(long_prompt, fake_provider):
    # The fake echoes the 200-word prompt (≈ 200 output tokens, over max_tokens=50): the
    # actual spend outruns the estimate, and the budget stops the comparison part-way.
    variables = {"name": "Ada"}
    budget = est.estimate(_batch("long", input_variables=variables, repeat=10)).high_usd
    assert budget is not None
    df = pl_magic.run_many(
        "long", input_variables=variables, repeat=10, concurrency=1, budget=budget
    )
    assert len(df) == 10
    ok, skipped = df[df["status"] == "ok"], df[df["status"] == "skipped"]
    assert len(ok) + len(skipped) == 10 and 0 < len(ok) < 10
    assert set(skipped["error"]) == {"budget"} and set(skipped["error_category"]) == {"budget"}
    assert len(fake_provider.requests) == len(ok)
    costs = [r["cost_usd"] for r in runs()]
    assert sum(costs) >= budget > sum(costs[:-1])  # stopped at the first run that reached it
    # the skipped runs never ran: they are no errors of their cell
    assert pl_magic.compare(df).data.loc["error rate"].tolist() == [0.0]


def test_magic_shows_the_estimate_and_refuses_over_budget(ip, long_prompt, fake_provider, capsys):
    df = ip.run_line_magic("plrun", "long --repeat 2 --var name=Ada --budget 1")
    assert list(df["status"]) == ["ok", "ok"]
    out = capsys.readouterr().out
    assert "Estimate: 2 runs · ≈ 408 input tokens · $0.0000" in out
    assert "2/2 runs" in out
    with pytest.raises(InvalidInputError, match=r"raise it, e.g. --budget 0\."):
        ip.run_line_magic("plrun", "long --repeat 2 --var name=Ada --budget 0.000001")
    assert len(fake_provider.requests) == 2


def test_grid_header_shows_the_estimate_and_the_spend():
    grid = GridView([GridCell("v1", "#1", status="ok"), GridCell("v1", "#2", status="skipped")])
    grid.live = False
    grid.header = "Estimate: 2 runs · ≈ 406 input tokens · $0.0001–$0.0002 <b>"
    grid.spent = 0.00012
    page = grid._html()
    assert "Estimate: 2 runs" in page and "&lt;b&gt;" in page
    assert "2/2 runs (100%), 1 skipped (budget) · spent $0.000120" in page
    assert grid._plain().endswith("2/2 runs · spent $0.000120")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0"),
        (0.0042, "$0.0042"),
        (0.000092, "$0.000092"),
        (0.19, "$0.19"),
        (1234.5, "$1,234.50"),
    ],
)
def test_usd_text(value, text):
    assert est.usd_text(value) == text


def test_summary_forms():
    assert est.Estimate(48, 31_000, 0, 0.04, 0.19).summary() == (
        "48 runs · ≈ 31k input tokens · $0.04–$0.19"
    )
    assert est.Estimate(1, 12, 0, 0.0, 0.0).summary() == "1 run · ≈ 12 input tokens · $0"
    assert (
        est.Estimate(1, 1_500, 0, None, None, ("x/y",))
        .summary()
        .endswith("cost unknown (no price for x/y)")
    )


def test_a_sampled_estimate_scales_to_every_run(long_prompt):
    rows = [{"name": "x" * (i % 7)} for i in range(100)]
    full = est.estimate(_batch("long", inputs=rows, models="gpt-4o-mini,gpt-4.1-mini"))
    sampled = est.estimate(
        _batch("long", inputs=rows, models="gpt-4o-mini,gpt-4.1-mini"), sample=10
    )
    assert sampled.runs == full.runs == 200
    assert sampled.output_tokens == full.output_tokens
    assert abs(sampled.input_tokens - full.input_tokens) <= 0.02 * full.input_tokens
    assert full.high_usd is not None and sampled.high_usd == pytest.approx(full.high_usd, rel=0.02)


def test_the_local_model_costs_nothing_and_fits_any_budget(fake_provider, monkeypatch):
    from pl_magic.core import local_target
    from pl_magic.registry import starters

    monkeypatch.setenv(starters.ENV_SWITCH, "1")
    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    batch = _batch("capital-city", versions="prod", input_variables={"country": "Peru"}, repeat=3)
    estimate = est.estimate(batch)
    assert estimate.known and estimate.low_usd == estimate.high_usd == 0
    assert estimate.summary().endswith(" · $0") and estimate.input_tokens > 0
    df = pl_magic.run_many(
        "capital-city", versions="prod", input_variables={"country": "Peru"}, repeat=3, budget=0
    )
    assert list(df["status"]) == ["ok"] * 3


def test_magic_budget_on_one_run_shows_its_estimate(ip, long_prompt, capsys):
    df = ip.run_line_magic("plrun", "long --var name=Ada --budget 1")
    assert list(df["status"]) == ["ok"]
    assert "Estimate: 1 run · ≈ 204 input tokens" in capsys.readouterr().out


def test_an_estimate_past_its_time_limit_gives_up_and_says_so(long_prompt):
    batch = _batch("long", input_variables={"name": "Ada"}, repeat=3)
    found = est.estimate(batch, time_limit_s=0.0)
    assert found.gave_up and found.high_usd is None
    assert found.summary() == "3 runs · no estimate: the templates take too long to render"
    assert not est.estimate(batch, time_limit_s=30.0).gave_up
