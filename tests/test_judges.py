"""Judges (engine/judges.py): registry prompts that score runs, through the real engine.

Here the provider is the public test double (pl_magic.testing.fake_provider), answering
the judged prompt with its input and the judge with JSON chosen by each test; the wire
form of each provider's structured output is tested in tests/test_judges_wire.py.
"""

from __future__ import annotations

import json
import math

import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine.judges import JUDGE_TAG, JUDGED_RUN_KEY, RESPONSE_FORMAT
from pl_magic.registry import starters
from pl_magic.testing import fake_provider
from tests.helpers import chat, model, publish, runs, scores

ROWS = [
    {"q": "The capital is Paris.", "expected": "Paris"},
    {"q": "I think it is Lyon.", "expected": "Paris"},
]


@pytest.fixture
def prompts(pl_home):
    publish("echo", chat(("user", "{q}")), model())
    publish("grader", chat(("system", "grade"), ("user", "want {expected} got {output} for {q}")))


def is_judge(request) -> bool:
    return "response_format" in request.request


def by_substring(request) -> str:
    """The judged prompt answers its input; the judge passes replies naming the expected."""
    if not is_judge(request):
        return request.texts[-1]
    last = request.texts[-1]
    ok = "got The capital is Paris." in last
    return json.dumps({"score": 1 if ok else 0, "reason": "names it" if ok else "wrong city"})


def test_a_judge_scores_each_run_and_its_runs_are_logged_and_linked(prompts):
    with fake_provider(by_substring) as fake:
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=["contains", "judge:grader"])
    assert list(df["score.judge:grader"]) == [1.0, 0.0]
    assert list(df["score.contains"]) == [1.0, 0.0]

    judge_calls = [r for r in fake.requests if is_judge(r)]
    assert len(judge_calls) == 2
    # the judge's template saw the judged reply, the expected answer and the run's own inputs
    assert sorted(r.texts[-1] for r in judge_calls) == [
        "want Paris got I think it is Lyon. for I think it is Lyon.",
        "want Paris got The capital is Paris. for The capital is Paris.",
    ]
    assert judge_calls[0].request["response_format"] == RESPONSE_FORMAT

    logged = runs()
    judged = {r["request_id"]: r for r in logged if r["prompt_name"] == "echo"}
    judge_runs = [r for r in logged if r["prompt_name"] == "grader"]
    assert len(judge_runs) == 2
    for r in judge_runs:
        assert JUDGE_TAG in json.loads(r["tags"])
        assert json.loads(r["metadata"])[JUDGED_RUN_KEY] in judged
    stored = [s for s in scores() if s["source"] == "judge"]
    assert {s["request_id"] for s in stored} == set(judged)
    assert {s["scorer_version"] for s in stored} == {"1"}
    assert {s["reason"] for s in stored} == {"names it", "wrong city"}
    assert {s["passed"] for s in stored} == {1, 0}


def test_a_judge_label_is_pinned_to_the_version_it_points_at_when_the_scorer_is_made(prompts):
    publish("grader", chat(("user", "v2 {output}")))
    pl_magic.set_label("grader", "prod", 1)
    with fake_provider(by_substring):
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader@prod"])
    assert list(df["score.judge:grader@prod"]) == [1.0, 0.0]
    assert {s["scorer_version"] for s in scores()} == {"1"}


def test_an_invalid_reply_is_asked_for_again_once_then_is_an_error_row(prompts):
    answers = iter(["not json", json.dumps({"score": 0.75, "reason": "close"}), "{", "[1]"])

    def reply(request):
        return next(answers) if is_judge(request) else request.texts[-1]

    with fake_provider(reply) as fake:
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader"], concurrency=1)
    assert sum(is_judge(r) for r in fake.requests) == 4
    values = list(df["score.judge:grader"])
    assert values[0] == 0.75 and math.isnan(values[1])
    errors = [s for s in scores() if s["value"] is None]
    assert len(errors) == 1 and "twice" in errors[0]["reason"]
    assert len(df) == 2 and set(df["status"]) == {"ok"}  # the runs themselves are kept


@pytest.mark.parametrize("bad", ['{"score": 7, "reason": "x"}', '{"reason": "no score"}'])
def test_a_reply_of_the_wrong_shape_is_not_a_score(prompts, bad):
    with fake_provider(lambda r: bad if is_judge(r) else r.texts[-1]):
        df = pl_magic.run_many("echo", inputs=ROWS[:1], scorers=["judge:grader"])
    assert math.isnan(df["score.judge:grader"][0])


def test_a_failing_judge_call_is_that_rows_error(prompts):
    def reply(request):
        if is_judge(request):
            raise pl_magic.errors.ProviderError("openai", "rate_limit", "slow down", 429)
        return request.texts[-1]

    with fake_provider(reply):
        df = pl_magic.run_many("echo", inputs=ROWS, scorers=["contains", "judge:grader"])
    assert list(df["score.contains"]) == [1.0, 0.0]
    assert df["score.judge:grader"].isna().all()
    assert all("429" in s["reason"] for s in scores() if s["source"] == "judge")


def test_judge_repeat_reports_the_mean_and_how_much_the_judge_agrees_with_itself(prompts):
    verdicts = iter([1, 1, 0, 0, 0, 0])  # row 1: 2 of 3 pass; row 2: none

    def reply(request):
        if not is_judge(request):
            return request.texts[-1]
        return json.dumps({"score": next(verdicts), "reason": "r"})

    with fake_provider(reply):
        df = pl_magic.run_many(
            "echo", inputs=ROWS, scorers=["judge:grader"], judge_repeat=3, concurrency=1
        )
    assert list(df["score.judge:grader"]) == pytest.approx([2 / 3, 0.0])
    assert list(df["score.judge:grader.agreement"]) == pytest.approx([2 / 3, 1.0])
    judge_runs = [r for r in runs() if r["prompt_name"] == "grader"]
    assert sorted(r["repeat_index"] for r in judge_runs) == [0, 0, 1, 1, 2, 2]


def test_score_df_rejudges_logged_runs_linking_each_judge_run(prompts):
    with fake_provider(by_substring):
        df = pl_magic.run_many("echo", inputs=ROWS)
        scored = pl_magic.score(df, ["judge:grader"])
    assert list(scored["score.judge:grader"]) == [1.0, 0.0]
    links = {
        json.loads(r["metadata"])[JUDGED_RUN_KEY] for r in runs() if r["prompt_name"] == "grader"
    }
    assert links == set(df["request_id"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("judge:nope", "judge:nope"),
        ("judge:", "judge:NAME"),
        ("judge:grader@", "judge:NAME"),
        ("judge:grader@9", "judge:grader"),
    ],
)
def test_a_bad_judge_fails_in_one_line_before_any_run(prompts, spec, message):
    with fake_provider(by_substring) as fake, pytest.raises(InvalidInputError) as caught:
        pl_magic.run_many("echo", inputs=ROWS, scorers=[spec])
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert fake.requests == [] and runs() == []


def test_judge_repeat_must_be_a_positive_whole_number(prompts):
    with pytest.raises(InvalidInputError, match="judge_repeat"):
        pl_magic.run_many("echo", inputs=ROWS, scorers=["judge:grader"], judge_repeat=0)


def test_the_starter_judge_is_added_to_a_registry_seeded_before_it_existed(pl_home, capsys):
    publish("echo", chat(("user", "{q}")), model())  # a registry without judge-correct
    assert starters.JUDGE_STARTER not in pl_magic.client.default_client().registry.names()
    with fake_provider(by_substring) as fake:
        df = pl_magic.run_many("echo", inputs=ROWS[:1], scorers=["judge:judge-correct"])
    assert "added the starter judge 'judge-correct'" in capsys.readouterr().err
    assert df["score.judge:judge-correct"].notna().all()
    judge_call = next(r for r in fake.requests if is_judge(r))
    assert "Expected answer: Paris" in judge_call.texts[-1]


def test_plrun_scores_with_a_judge_asked_twice(shell, prompts):
    shell.run_line_magic("load_ext", "pl_magic")
    try:
        shell.user_ns["rows"] = ROWS
        with fake_provider(by_substring):
            shell.run_line_magic(
                "plrun", "echo --inputs rows --score judge:grader --judge-repeat 2 --out cmp"
            )
        df = shell.user_ns["cmp"]
        assert list(df["score.judge:grader"]) == [1.0, 0.0]
        assert list(df["score.judge:grader.agreement"]) == [1.0, 1.0]
        assert sum(r["prompt_name"] == "grader" for r in runs()) == 4
    finally:
        shell.run_line_magic("unload_ext", "pl_magic")
