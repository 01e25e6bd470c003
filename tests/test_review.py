"""The reviewer (surfaces/review.py over engine/review_queue.py): a real ipywidgets object
over a real run log, with runs made against the fake provider server (it answers
``echo: <the last user message>``). Labels are human scores: ``score.human`` (thumbs, the
note as its reason) and ``score.human.rating`` ((r - 1) / 4)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pandas as pd
import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine.review_queue import Label, ReviewQueue
from pl_magic.surfaces.review import Reviewer, review
from tests.helpers import chat, model, publish, scores

ROWS = [{"q": "2+2?", "expected": "4"}, {"q": "capital of France?", "expected": "Paris"}]


@pytest.fixture
def qa(openai_env, fake_provider):
    publish("qa", chat(("user", "v1 {q}")), model())
    publish("qa", chat(("user", "v2 {q}")), model())


@pytest.fixture
def df(qa):
    """Two versions × two models (one fails every call) × two inputs: four ok runs."""
    frame = pl_magic.run_many(
        "qa", versions=[1, 2], models=["gpt-4o-mini", "gpt-x-err-404"], inputs=ROWS
    )
    assert (frame["status"] == "ok").sum() == 4 and len(frame) == 8
    return frame


def ok_ids(frame: pd.DataFrame) -> list[str]:
    return list(frame.loc[frame["status"] == "ok", "request_id"])


def human_rows() -> dict[tuple[str, str], dict]:
    return {(r["request_id"], r["name"]): r for r in scores() if r["source"] == "human"}


# -- what the reviewer shows ------------------------------------------------------------------


def test_one_ok_run_at_a_time_with_inputs_expected_and_the_other_cells(df):
    reviewer = review(df)
    ids = ok_ids(df)
    assert len(reviewer.queue) == 4 and [i.request_id for i in reviewer.queue.items] == ids
    assert reviewer.current == ids[0] and reviewer.progress == "0/4 reviewed"
    first = reviewer.queue.items[0]
    row = df.set_index("request_id").loc[ids[0]]
    assert first.output == row["output"] and first.inputs == {"q": row["var.q"], "expected": "4"}
    assert first.expected == "4" and first.cell == "openai/gpt-4o-mini · v1"
    # the other cells for the same input: v2 answered, both gpt-x-err-404 cells failed
    others = {o.cell: o for o in first.others}
    assert set(others) == {
        "openai/gpt-4o-mini · v2",
        "openai/gpt-x-err-404 · v1",
        "openai/gpt-x-err-404 · v2",
    }
    assert others["openai/gpt-4o-mini · v2"].output == f"echo: v2 {row['var.q']}"
    assert others["openai/gpt-x-err-404 · v1"].status == "error"

    shown = reviewer.run_html.value
    for text in ("Inputs", "Expected", "Output", "Other cells, same input", "echo: v1 2+2?"):
        assert text in shown
    assert "echo: v2 2+2?" in shown and "capital" not in shown  # only the same input's
    assert "0/4 reviewed" in reviewer.progress_html.value
    assert "run 1 of 4" in reviewer.progress_html.value
    assert reviewer.previous_button.disabled and not reviewer.next_button.disabled


def test_the_frames_expected_column_wins_over_the_input_variable(df):
    reviewer = review(df.assign(answer=["four"] * len(df)), expected="answer")
    assert reviewer.queue.items[0].expected == "four"
    assert "four" in reviewer.run_html.value
    plain = review(df.drop(columns=["var.expected"]))  # the log still has the variable
    assert {i.inputs["q"]: i.expected for i in plain.queue.items} == {
        "2+2?": "4",
        "capital of France?": "Paris",
    }


def test_next_and_previous_walk_the_runs_and_stop_at_the_ends(df):
    reviewer = review(df)
    ids = ok_ids(df)
    reviewer.previous_button.click()  # disabled in the browser; a script's click does nothing
    assert reviewer.current == ids[0]
    for expected_id in ids[1:]:
        reviewer.next_button.click()
        assert reviewer.current == expected_id
    assert reviewer.next_button.disabled and not reviewer.previous_button.disabled
    reviewer.next_button.click()
    assert reviewer.current == ids[-1]
    reviewer.previous_button.click()
    assert reviewer.current == ids[-2]
    reviewer.show(ids[0])
    assert reviewer.index == 0 and "run 1 of 4" in reviewer.progress_html.value
    with pytest.raises(InvalidInputError, match="position from 0 to 3"):
        reviewer.show(9)


# -- labelling ---------------------------------------------------------------------------------


def test_clicks_save_at_once_as_human_scores_that_runs_shows(df):
    reviewer = review(df)
    rid = ok_ids(df)[0]
    reviewer.up.click()
    assert human_rows()[(rid, "human")]["value"] == 1.0
    assert human_rows()[(rid, "human")]["passed"] == 1
    assert reviewer.progress == "1/4 reviewed" and "1/4 reviewed" in reviewer.progress_html.value
    assert reviewer.up.button_style == "success" and reviewer.down.button_style == ""

    reviewer.ratings[3].click()  # 4 of 5
    rating = human_rows()[(rid, "human.rating")]
    assert (rating["value"], rating["reason"], rating["passed"]) == (0.75, "4/5", None)
    assert reviewer.ratings[3].button_style == "info"

    reviewer.note.value = "clear and short"  # what the browser syncs when the field loses focus
    assert human_rows()[(rid, "human")]["reason"] == "clear and short"
    assert human_rows()[(rid, "human")]["value"] == 1.0  # the thumbs stay

    reviewer.down.click()
    assert human_rows()[(rid, "human")]["value"] == 0.0
    assert reviewer.up.button_style == "" and reviewer.down.button_style == "danger"

    logged = pl_magic.runs().set_index("request_id")
    assert logged.loc[rid, "score.human"] == 0.0
    assert logged.loc[rid, "score.human.rating"] == 0.75
    assert math.isnan(logged.loc[ok_ids(df)[1], "score.human"])
    assert len(human_rows()) == 2  # one row per run, name and source: replaced, not added


def test_a_second_click_on_the_same_choice_clears_it(df):
    reviewer = review(df)
    rid = ok_ids(df)[0]
    reviewer.up.click()
    reviewer.up.click()
    assert reviewer.progress == "0/4 reviewed" and reviewer.up.button_style == ""
    assert human_rows()[(rid, "human")]["value"] is None
    reviewer.ratings[0].click()
    reviewer.ratings[0].click()
    assert human_rows()[(rid, "human.rating")]["value"] is None
    assert reviewer.labels.empty


def test_label_scripts_a_label_and_replaces_the_earlier_one_as_a_whole(df):
    reviewer = review(df)
    a, b = ok_ids(df)[:2]
    assert reviewer.label(b, thumbs=True, score=5, note="right") == Label(True, 5, "right")
    assert reviewer.progress == "1/4 reviewed"
    assert reviewer.current == a  # labelling another run does not move the view
    rows = human_rows()
    assert rows[(b, "human")]["value"] == 1.0 and rows[(b, "human")]["reason"] == "right"
    assert rows[(b, "human.rating")]["value"] == 1.0

    reviewer.label(b, note="on second thought, unsure")  # a note alone
    rows = human_rows()
    assert rows[(b, "human")]["value"] is None
    assert rows[(b, "human")]["reason"] == "on second thought, unsure"
    assert rows[(b, "human.rating")]["value"] is None  # the old rating is gone
    logged = pl_magic.runs().set_index("request_id")
    assert math.isnan(logged.loc[b, "score.human"])
    assert math.isnan(logged.loc[b, "score.human.rating"])
    assert reviewer.progress == "1/4 reviewed"  # a note alone is a label

    reviewer.label(a, score=1)
    assert human_rows()[(a, "human.rating")]["value"] == 0.0
    assert (a, "human") not in human_rows()  # no thumbs, no note: no row for them
    assert reviewer.ratings[0].button_style == "info"  # the run shown is repainted
    labels = reviewer.labels
    assert list(labels.columns) == ["request_id", "cell", "thumbs", "rating", "note"]
    assert list(labels["request_id"]) == [a, b]
    assert labels["rating"].iloc[0] == 1 and pd.isna(labels["thumbs"].iloc[0])
    assert labels["note"].iloc[1] == "on second thought, unsure"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"score": 0}, "score= takes a whole number from 1 to 5"),
        ({"score": 6}, "score= takes a whole number from 1 to 5"),
        ({"score": 2.5}, "score= takes a whole number from 1 to 5"),
        ({"score": "4"}, "score= takes a whole number from 1 to 5"),
        ({"score": True}, "score= takes a whole number from 1 to 5"),
        ({"thumbs": "up"}, "thumbs= takes True"),
        ({"thumbs": 1}, "thumbs= takes True"),
        ({"note": 3}, "note= takes a string"),
        ({}, "label\\(\\) needs thumbs=True/False, score=1..5 or a note"),
        ({"note": "   "}, "needs thumbs=True/False"),
        ({"note": "x" * 10_001}, "keep a note under 10000 characters"),
    ],
)
def test_a_bad_label_is_a_one_line_error_and_saves_nothing(df, kwargs, message):
    reviewer = review(df)
    with pytest.raises(InvalidInputError, match=message) as info:
        reviewer.label(ok_ids(df)[0], **kwargs)
    assert "\n" not in str(info.value)
    assert not human_rows()


def test_an_unknown_or_failed_run_is_a_one_line_error(df):
    reviewer = review(df)
    failed = df.loc[df["status"] != "ok", "request_id"].iloc[0]
    for rid in ("no-such-id", failed, None):
        with pytest.raises(InvalidInputError, match="is not a run of this review") as info:
            reviewer.label(rid, thumbs=True)
        assert "\n" not in str(info.value) and "request_id column" in str(info.value)
    assert reviewer.label(ok_ids(df)[2], score=3.0).rating == 3  # 3.0 is a whole number


@pytest.mark.parametrize(
    "frame",
    [
        "not a frame",
        [{"request_id": "x"}],
        pd.DataFrame({"output": ["hi"]}),
    ],
)
def test_review_refuses_what_is_not_a_runs_frame_in_one_line(qa, frame):
    with pytest.raises(InvalidInputError, match="review\\(\\) takes a runs DataFrame") as info:
        review(frame)
    assert "\n" not in str(info.value)


def test_a_frame_with_no_ok_run_in_the_log_is_a_one_line_error(qa):
    failed = pl_magic.run_many("qa", models=["gpt-x-err-404"], inputs=ROWS[:1])
    for frame in (failed, pd.DataFrame({"request_id": ["unknown"]}), failed.iloc[0:0]):
        with pytest.raises(InvalidInputError, match="found no run to review") as info:
            review(frame)
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidInputError, match="expected must name the column"):
        review(failed, expected="")


# -- resuming ----------------------------------------------------------------------------------


def test_a_new_reviewer_resumes_at_the_first_run_without_a_label(df):
    ids = ok_ids(df)
    first = review(df)
    first.up.click()
    first.next_button.click()
    first.down.click()
    first.label(ids[3], note="later one")
    assert first.progress == "3/4 reviewed"

    again = review(df)  # what the notebook does after a kernel restart, same PL_MAGIC_HOME
    assert again.progress == "3/4 reviewed" and again.current == ids[2]
    assert "3/4 reviewed" in again.progress_html.value
    again.show(ids[0])
    assert again.up.button_style == "success"  # the stored label shows on the controls
    again.show(ids[3])
    assert again.note.value == "later one"
    assert human_rows()[(ids[3], "human")]["reason"] == "later one"  # showing saved nothing new
    again.label(ids[2], thumbs=True)
    assert review(df).current == ids[3]  # all labelled: the last run
    assert review(df).progress == "4/4 reviewed"


def test_labels_survive_a_new_process(df, tmp_path):
    """A fresh interpreter (a restarted kernel) over the same PL_MAGIC_HOME sees the labels."""
    ids = ok_ids(df)
    reviewer = review(df)
    reviewer.label(ids[0], thumbs=False, score=2, note="wrong")
    df[["request_id"]].to_json(tmp_path / "frame.json")
    code = (
        "import json, pandas as pd, sys\n"
        "import pl_magic\nreview = pl_magic.review\n"
        f"df = pd.read_json({str(tmp_path / 'frame.json')!r})\n"
        "r = review(df)\n"
        "print(json.dumps({'progress': r.progress, 'current': r.current,\n"
        "    'labels': r.labels.astype(object).where(r.labels.notna(), None)"
        ".to_dict('records')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["progress"] == "1/4 reviewed" and seen["current"] == ids[1]
    (label,) = seen["labels"]
    assert (label["request_id"], label["thumbs"], label["rating"], label["note"]) == (
        ids[0],
        False,
        2,
        "wrong",
    )


# -- escaping ----------------------------------------------------------------------------------

ATTACKS = [
    {"q": "<img src=x onerror=alert(1)>", "expected": "<script>alert('e')</script>"},
    {"q": "<script>alert(2)</script>", "expected": "<b>bold</b>"},
]


def test_model_output_inputs_and_expected_show_as_text_never_as_html(qa):
    frame = pl_magic.run_many("qa", versions=[1, 2], inputs=ATTACKS)
    reviewer = review(frame)
    seen = []
    for _ in range(len(reviewer.queue)):
        seen.append(reviewer.run_html.value)
        reviewer.next()
    everything = "".join(seen)
    # the echoed model output, the other cell's output, the inputs and the expected answer
    assert "echo: v1 &lt;img src=x onerror=alert(1)&gt;" in everything
    assert "echo: v2 &lt;script&gt;alert(2)&lt;/script&gt;" in everything
    assert "&lt;script&gt;alert(&#x27;e&#x27;)&lt;/script&gt;" in everything
    assert "&lt;b&gt;bold&lt;/b&gt;" in everything
    lowered = everything.lower()
    assert "<img" not in lowered and "<script" not in lowered and "<b>bold" not in lowered
    assert "onerror=alert(1)>" not in lowered
    # a note is the person's own text but it is stored and shown as text too
    reviewer.label(reviewer.current, note="<img src=x onerror=alert(3)>")
    assert reviewer.note.value == "<img src=x onerror=alert(3)>"  # a Textarea's value is text
    assert "<img" not in reviewer.progress_html.value + reviewer.status.value


def test_a_widget_error_shows_in_one_escaped_line(df):
    reviewer = review(df)
    reviewer.note.value = "<i>x</i>" * 2000  # 16,000 characters: over the limit
    assert isinstance(reviewer.last_error, InvalidInputError)
    assert "keep it under 10000 characters" in reviewer.status.value
    assert not human_rows()
    reviewer.note.value = "fine"
    assert reviewer.last_error is None and reviewer.status.value == ""
    assert human_rows()[(ok_ids(df)[0], "human")]["reason"] == "fine"


# -- the queue without the widget ------------------------------------------------------------------


def test_the_queue_takes_each_run_once_in_the_frames_order(df):
    flipped = df.iloc[::-1]
    queue = ReviewQueue(pd.concat([flipped, flipped]))
    assert [i.request_id for i in queue.items] == ok_ids(df)[::-1]
    queue.save(ok_ids(df)[1], Label(thumbs=True))
    assert queue.first_unlabelled() == 0 and queue.reviewed == 1
    assert ReviewQueue(df).first_unlabelled() == 0
    assert ReviewQueue(df).labels == {ok_ids(df)[1]: Label(thumbs=True)}


def test_reviewer_is_a_widget_that_displays(df):
    import ipywidgets as w

    reviewer = Reviewer(df)
    assert isinstance(reviewer.widget, w.VBox)
    assert reviewer.progress_html in reviewer.widget.children
    assert reviewer.note in reviewer.widget.children
    assert reviewer.up.description == "Good" and reviewer.down.description == "Bad"
    assert [b.description for b in reviewer.ratings] == ["1", "2", "3", "4", "5"]


# -- with the PromptLayer backend ------------------------------------------------------------------


def test_labels_go_to_promptlayer_as_scores_and_promptlayers_ids_work(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    from pl_magic.client import default_client
    from tests.helpers import runs

    fake_promptlayer.add_prompt("qa", chat(("user", "v1 {q}")), model(), labels=["prod"])
    df = pl_magic.run_many("qa", inputs=ROWS)
    tracker = default_client().tracker
    assert tracker is not None
    tracker.wait_idle(5)
    remote = {r["request_id"]: int(r["remote_request_id"]) for r in runs()}
    with_remote = df.assign(request_id=[remote[rid] for rid in df["request_id"]])

    reviewer = review(with_remote)
    assert reviewer.current == remote[df["request_id"][0]]  # the frame's own ids
    reviewer.up.click()
    reviewer.label(remote[df["request_id"][1]], thumbs=False, score=3)
    tracker.wait_idle(5)

    sent = sorted((s["request_id"], s["name"], s["score"]) for s in fake_promptlayer.scores)
    a, b = (remote[rid] for rid in df["request_id"])
    assert sent == sorted([(a, "human", 100), (b, "human", 0), (b, "human.rating", 50)])
    # stored under the local ids, as runs() shows them
    assert {r["request_id"] for r in scores()} == set(df["request_id"])
    assert list(reviewer.labels["request_id"]) == [a, b]
    logged = pl_magic.runs().set_index("request_id").loc[df["request_id"]]
    assert list(logged["score.human"]) == [1.0, 0.0]


def test_review_is_part_of_the_public_api_and_loaded_lazily():
    assert pl_magic.review is review
    assert "review" in pl_magic.__all__
