"""The evaluation features attacked: judges, the reviewer's labels and the score chart, with
hostile model output, hostile names, odd inputs and an interrupt in the middle of a judge pass.

The provider is the public test double (pl_magic.testing.fake_provider); nothing here touches
the network.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine.judges import parse_judge_target
from pl_magic.testing import fake_provider
from tests.helpers import chat, model, publish, runs, scores

ROWS = [{"q": "The capital is Paris.", "expected": "Paris"}, {"q": "Lyon.", "expected": "Paris"}]
KEY = "sk-proj-ADVERSARYsecret0123456789abcdef"


@pytest.fixture
def prompts(pl_home):
    publish("echo", chat(("user", "{q}")), model())
    publish("grader", chat(("system", "grade"), ("user", "want {expected} got {output}")))


def is_judge(request) -> bool:
    return "response_format" in request.request


def judge_says(score: float, reason: str = "ok"):
    """The judged prompt echoes its input; the judge answers ``{score, reason}``."""

    def reply(request) -> str:
        if not is_judge(request):
            return request.texts[-1]
        return json.dumps({"score": score, "reason": reason})

    return reply


def judge_threads_done(timeout: float = 10.0) -> None:
    """Wait for judge calls still in flight after an interrupt (they finish on their own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(t.name.startswith("pl_magic-judge") for t in threading.enumerate()):
            return
        time.sleep(0.02)


# -- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["²", "١", "٣"])
def test_a_judge_version_in_non_ascii_digits_is_a_label_not_a_crash(at):
    # str.isdigit() is True for "²" (int() refuses it) and for Arabic-Indic digits (int() reads
    # them): neither is a version number anyone writes
    assert parse_judge_target(f"grader@{at}") == ("grader", None, at)


def test_judge_at_superscript_fails_in_one_line_before_any_run(prompts):
    with fake_provider(judge_says(1)) as fake, pytest.raises(InvalidInputError, match="label"):
        pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader@²"])
    assert fake.requests == []


# -- an interrupt in the middle of a judge pass -----------------------------------------------


def test_an_interrupt_during_the_judge_pass_keeps_the_runs_the_rule_scores_and_the_judged(
    prompts, capsys
):
    calls: list[int] = []
    lock = threading.Lock()

    def reply(request) -> str:
        if not is_judge(request):
            return request.texts[-1]
        with lock:
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the kernel waits for the judge
        time.sleep(0.05)
        return json.dumps({"score": 1, "reason": "ok"})

    rows = [{"q": f"answer {i}", "expected": "answer"} for i in range(8)]
    with fake_provider(reply):
        df = pl_magic.run_many(
            "echo", inputs=rows, scorers=["contains", "judge:grader"], concurrency=1
        )
        judge_threads_done()
    assert len(df) == 8 and (df["status"] == "ok").all()
    assert df["score.contains"].tolist() == [1.0] * 8  # the rule's scores are kept
    judged = df["score.judge:grader"]
    assert judged.iloc[0] == 1.0  # what the judge said before the interrupt is kept
    assert judged.isna().sum() >= 5  # the rest is not judged ...
    assert len(calls) <= 3  # ... and not asked for after the interrupt
    assert "interrupted" in capsys.readouterr().err
    stored = {s["name"] for s in scores()}
    assert stored == {"contains", "judge:grader"}


def test_a_judge_call_that_raises_keyboardinterrupt_stops_the_pass_not_the_comparison(prompts):
    def reply(request) -> str:
        if not is_judge(request):
            return request.texts[-1]
        raise KeyboardInterrupt

    with fake_provider(reply):
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=["contains", "judge:grader"])
        judge_threads_done()
    assert df["score.contains"].tolist() == [1.0, 0.0]
    assert "score.judge:grader" not in df or df["score.judge:grader"].isna().all()
    assert len([r for r in runs() if r["prompt_name"] == "echo"]) == 2


# -- secrets -------------------------------------------------------------------------------------


def test_a_judges_error_reason_never_holds_a_key(prompts, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def reply(request) -> str:
        if not is_judge(request):
            return request.texts[-1]
        return f"I cannot judge, my key is {KEY}"  # not JSON: an error row quoting the reply

    with fake_provider(reply):
        pl_magic.run_many("echo", inputs=ROWS[:1], scorers=["judge:grader"])
    reasons = [s["reason"] for s in scores()]
    assert reasons and all("***" in r and KEY not in r for r in reasons)


def test_a_rule_scorers_exception_never_stores_a_key(prompts, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def leaky(output, row):
        raise RuntimeError(f"auth failed with {KEY}")

    with fake_provider():
        pl_magic.run_many("echo", inputs=ROWS[:1], scorers=[("leaky", leaky)])
    assert all(KEY not in (s["reason"] or "") for s in scores())


# -- the reviewer's labels ----------------------------------------------------------------------


@pytest.fixture
def reviewer(prompts):
    with fake_provider():
        df = pl_magic.run_many("echo", inputs=ROWS)
    return pl_magic.review(df), df


def test_a_label_taken_from_a_dataframe_numpy_values_is_accepted(reviewer):
    rv, df = reviewer
    rid = df["request_id"][0]
    # ratings and thumbs read back from a frame are numpy scalars, not int and bool
    label = rv.label(rid, thumbs=np.bool_(True), score=np.int64(4))
    assert (label.thumbs, label.rating) == (True, 4)
    assert type(label.thumbs) is bool and type(label.rating) is int
    row = pl_magic.runs(prompt="echo").set_index("request_id").loc[rid]
    assert row["score.human"] == 1.0 and row["score.human.rating"] == 0.75


@pytest.mark.parametrize("bad", [0, 6, True, "5", 4.5, float("nan"), np.float64(np.nan)])
def test_a_bad_rating_is_still_refused_in_one_line(reviewer, bad):
    rv, df = reviewer
    with pytest.raises(InvalidInputError, match="score="):
        rv.label(df["request_id"][0], score=bad)


def test_numbers_are_not_thumbs(reviewer):
    rv, df = reviewer
    for bad in (1, np.int64(0), "yes"):
        with pytest.raises(InvalidInputError, match="thumbs="):
            rv.label(df["request_id"][0], thumbs=bad)


# -- re-scoring ---------------------------------------------------------------------------------


def test_rejudging_once_does_not_keep_the_agreement_of_an_earlier_repeated_pass(prompts):
    with fake_provider(judge_says(1)):
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader"], judge_repeat=3)
    assert df["score.judge:grader.agreement"].tolist() == [1.0, 1.0]
    with fake_provider(judge_says(0)):
        again = pl_magic.score(df, ["judge:grader"])
    assert again["score.judge:grader"].tolist() == [0.0, 0.0]
    assert (
        "score.judge:grader.agreement" not in again
        or again["score.judge:grader.agreement"].isna().all()
    )


# -- the score chart ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["model", "scorer"])
def test_a_dollar_in_a_model_or_scorer_name_does_not_break_compare_chart(prompts, where):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = "gpt-$x_{{$" if where == "model" else "cost $\\frac{$"
    publish("echo", chat(("user", "{q}")), model(name if where == "model" else "gpt-4o-mini"))
    scorer = ("$\\sqrt{$" if where == "scorer" else "mine", lambda output, row: 1.0)
    with fake_provider():
        df = pl_magic.run_many("echo", versions=[1, 2], inputs=ROWS, scorers=[scorer])
    try:
        table = pl_magic.compare(df, chart=True)
        for number in plt.get_fignums():
            plt.figure(number).canvas.draw()
    finally:
        plt.close("all")
    assert len(table.columns) == 2


# -- naming ----------------------------------------------------------------------------------


def test_a_judge_named_with_a_tuple_scores_under_that_name(prompts):
    with fake_provider(judge_says(1)):
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=[("strict", "judge:grader")])
    assert "score.strict" in df and "score.judge:grader" not in df
    assert {s["name"] for s in scores()} == {"strict"}


def test_two_names_for_one_judge_keep_both_columns_and_agreements(prompts):
    with fake_provider(judge_says(1)):
        df = pl_magic.run_many(
            "echo",
            inputs=ROWS,
            scorers=[("a", "judge:grader"), ("b", "judge:grader")],
            judge_repeat=2,
        )
    names = {c for c in df.columns if c.startswith("score.")}
    assert names == {"score.a", "score.a.agreement", "score.b", "score.b.agreement"}
    assert len(scores()) == 8  # two runs × (score + agreement) × two names
