"""Scorers' scores on PromptLayer: each stored score is also sent with ``track.score`` (its
scorer's name, 0–100), queued on the run's row and retried like runs; the ``scores`` table
keeps the runs' local ids whichever id a frame carries. Against the fake PromptLayer server."""

from __future__ import annotations

import math

import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.engine.results import score_frame
from pl_magic.runlog.scores import percent
from tests.helpers import chat, model, publish, runs, scores

GREET = chat(("system", "Be brief."), ("user", "hi {name}"))
#: The fake provider answers "echo: hi <name>".
ROWS = [{"name": "Ada", "expected": "Ada"}, {"name": "Bob", "expected": "Zed"}]


@pytest.fixture
def greet(promptlayer_env, openai_env, fake_promptlayer):
    fake_promptlayer.add_prompt("greet", GREET, model(temperature=0.2), labels=["prod"])
    return fake_promptlayer


def _wait_synced() -> None:
    tracker = default_client().tracker
    assert tracker is not None
    tracker.wait_idle(5)


def _remote_ids() -> dict[str, int]:
    """Local id -> PromptLayer's id, of every run PromptLayer has."""
    return {r["request_id"]: int(r["remote_request_id"]) for r in runs() if r["remote_request_id"]}


def _sent(fake) -> list[tuple[int, str, int]]:
    return sorted((s["request_id"], s["name"], s["score"]) for s in fake.scores)


def half(output, row):
    return 0.5 if "Ada" in output else math.nan  # NaN: no score for Bob's run


def ten_scale(output, row):
    return 7.5


def test_percent_puts_values_from_0_to_1_on_0_to_100():
    assert [percent(v) for v in (0.0, 1.0, 0.5, 0.333, 0.999, True)] == [0, 100, 50, 33, 100, 100]
    assert [percent(v) for v in (None, math.nan, 7.5, -0.1, math.inf)] == [None] * 5


def test_run_many_sends_each_score_with_promptlayers_id(greet, fake_provider, capsys):
    df = pl_magic.run_many("greet", inputs=ROWS, scorers=["contains", half, ten_scale])
    _wait_synced()  # sent in the background: the comparison did not wait on them

    assert list(df["status"]) == ["ok", "ok"]
    remote = _remote_ids()
    ada, bob = (remote[rid] for rid in df["request_id"])  # the frame has the local ids
    assert _sent(greet) == sorted(
        [(ada, "contains", 100), (bob, "contains", 0), (ada, "half", 50)]
    )  # Bob's NaN (a failed score) and ten_scale's 7.5 (outside 0–1) are not sent
    err = capsys.readouterr().err
    assert "scores of ten_scale are outside 0–1" in err and "not sent" in err
    # the scores table keeps the local ids, as the frames and runs() show them
    assert {r["request_id"] for r in scores()} == set(df["request_id"]) == set(remote)
    assert list(df["score.contains"]) == [1.0, 0.0]
    assert list(df["score.ten_scale"]) == [7.5, 7.5]  # kept locally as given
    logged = pl_magic.runs().set_index("request_id").loc[df["request_id"]]
    assert list(logged["score.half"].fillna(-1)) == [0.5, -1]
    assert all(r["pending_ops"] is None for r in runs())


def test_scoring_a_frame_again_sends_the_new_scores(greet, fake_provider):
    df = pl_magic.run_many("greet", inputs=ROWS)
    _wait_synced()
    assert greet.scores == []

    scored = pl_magic.score(df, ["icontains"])
    _wait_synced()

    ada, bob = (_remote_ids()[rid] for rid in df["request_id"])
    assert list(scored["score.icontains"]) == [1.0, 0.0]
    assert _sent(greet) == sorted([(ada, "icontains", 100), (bob, "icontains", 0)])


def test_a_frame_with_promptlayers_ids_is_scored_under_the_local_ids(greet, fake_provider):
    df = pl_magic.run_many("greet", inputs=ROWS)
    remote = _remote_ids()
    with_remote = df.assign(request_id=[remote[rid] for rid in df["request_id"]])

    scored = score_frame(with_remote, ["contains"], engine=default_client().engine)
    _wait_synced()

    assert list(scored["request_id"]) == list(with_remote["request_id"])
    assert list(scored["score.contains"]) == [1.0, 0.0]
    assert [r["request_id"] for r in scores()] == list(df["request_id"])  # local ids
    assert _sent(greet) == sorted(
        [
            (remote[df["request_id"][0]], "contains", 100),
            (remote[df["request_id"][1]], "contains", 0),
        ]
    )


def test_scores_wait_while_promptlayer_is_down_and_go_at_the_next_sync(greet, fake_provider):
    greet.fail_next("track.score", 503, times=1000)
    df = pl_magic.run_many("greet", inputs=ROWS, scorers=["contains"])
    _wait_synced()  # the background send failed: the scores stay queued on the runs' rows
    assert greet.scores == [] and greet.requests_for("track.score")  # tried, refused
    assert all(r["pending_ops"] for r in runs())
    assert len(scores()) == 2
    greet.clear_faults()

    pl_magic.sync()

    ada, bob = (_remote_ids()[rid] for rid in df["request_id"])
    assert _sent(greet) == sorted([(ada, "contains", 100), (bob, "contains", 0)])
    assert all(r["pending_ops"] is None for r in runs())
    pl_magic.sync()
    assert len(greet.scores) == 2  # never sent twice


def test_scores_of_runs_promptlayer_does_not_have_yet_go_after_them(greet, fake_provider):
    greet.fail_next("track.request", 503, times=1000)  # the runs themselves are not logged
    df = pl_magic.run_many("greet", inputs=ROWS, scorers=["contains"])
    _wait_synced()
    assert greet.tracked == {} and greet.scores == []
    assert {r["request_id"] for r in scores()} == set(df["request_id"])
    greet.clear_faults()

    assert pl_magic.sync()["sent"] == 2

    ada, bob = (_remote_ids()[rid] for rid in df["request_id"])
    assert _sent(greet) == sorted([(ada, "contains", 100), (bob, "contains", 0)])


def test_the_local_backend_sends_no_score(openai_env, fake_provider, fake_promptlayer):
    publish("greet", GREET)
    df = pl_magic.run_many("greet", inputs=ROWS, scorers=["contains"])
    scored = pl_magic.score(df, ["icontains"])

    assert default_client().tracker is None
    assert list(scored["score.icontains"]) == [1.0, 0.0]
    assert len(scores()) == 4 and fake_promptlayer.requests == []
    assert all(r["pending_ops"] is None and r["sync_state"] is None for r in runs())


def test_a_judge_from_promptlayers_registry_is_asked_for_json_and_its_scores_are_sent(
    greet, fake_provider
):
    greet.add_prompt("grader", chat(("user", "want {expected} got {output}")), model())
    fake_provider.structured_replies = [{"score": 1, "reason": "ok"}, {"score": 0, "reason": "no"}]
    df = pl_magic.run_many("greet", inputs=ROWS, scorers=["judge:grader"], concurrency=1)
    _wait_synced()

    assert list(df["score.judge:grader"]) == [1.0, 0.0]
    bodies = [r.body for r in fake_provider.requests_for("openai.chat")]
    assert [b.get("response_format", {}).get("type") for b in bodies].count("json_schema") == 2
    remote = _remote_ids()
    ada, bob = (remote[rid] for rid in df["request_id"])
    assert _sent(greet) == sorted([(ada, "judge:grader", 100), (bob, "judge:grader", 0)])
    judge_runs = [r for r in runs() if r["prompt_name"] == "grader"]
    assert len(judge_runs) == 2 and all(r["remote_request_id"] for r in judge_runs)
    tracked = [greet.tracked[int(r["remote_request_id"])] for r in judge_runs]
    assert {t["metadata"]["pl_magic_judged_run"] for t in tracked} == set(df["request_id"])
