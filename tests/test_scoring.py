"""Rule scorers (engine/scoring.py), the ``scores`` table (runlog/scores.py) and the
``score.<name>`` columns of run_many(), runs() and pl_magic.score(df, ...), on the public
test double (each call answers with the last text of its prompt: here the input ``q``)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine.scoring import parse_scorers, score_output
from pl_magic.testing import fake_provider
from tests.helpers import chat, model, publish, scores

ROWS = [
    {"q": "The answer is 4.", "expected": "4"},
    {"q": "I do not know", "expected": "4"},
]


def one(spec, output, row=None, **kw):
    (scorer,) = parse_scorers([spec], **kw)
    return score_output(scorer, output, row or {})


@pytest.fixture
def echo():
    publish("echo", chat(("user", "{q}")), model())


# -- each built-in scorer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "output", "expected", "passed"),
    [
        ("equals", " 4 ", "4", True),
        ("equals", "4.0", "4", False),
        ("contains", "it is 4", "4", True),
        ("contains", "it is four", "4", False),
        ("icontains", "PARIS, France", "paris", True),
        ("icontains", "Lyon", "paris", False),
        ("regex:^\\d+$", "123", None, True),
        ("regex:^\\d+$", "12a", None, False),
        ("json", '{"a": 1}', None, True),
        ("json", "{a: 1}", None, False),
        ("length:2-5", "abc", None, True),
        ("length:2-5", "abcdef", None, False),
        ("length:3-", "abcdef", None, True),
    ],
)
def test_built_in_scorers_pass_and_fail(spec, output, expected, passed):
    score = one(spec, output, {"expected": expected})
    assert (score.passed, score.value, score.error) == (passed, float(passed), False)
    assert score.source == "rule" and score.version is None and score.name == spec


def test_json_schema_from_a_dict_a_variable_and_a_file(tmp_path):
    schema = {"type": "object", "required": ["name"], "properties": {"age": {"type": "integer"}}}
    good, bad = '{"name": "Ada", "age": 36}', '{"age": "old"}'
    direct = parse_scorers([("json_schema", schema)])[0]
    named = parse_scorers(["json_schema:person"], namespace={"person": schema})[0]
    path = tmp_path / "person.json"
    path.write_text(json.dumps(schema))
    from_file = parse_scorers([f"json_schema:{path}"])[0]
    for scorer in (direct, named, from_file):
        assert score_output(scorer, good, {}).passed is True
        failed = score_output(scorer, bad, {})
        assert failed.passed is False and failed.reason
    assert score_output(direct, "not json", {}).reason.startswith("not JSON")
    assert (direct.name, named.name) == ("json_schema", "json_schema:person")


def test_similarity_is_a_value_from_0_to_1_without_pass_fail():
    same = one("similarity", "hello world", {"expected": "hello world"})
    near = one("similarity", "hello world", {"expected": "hello word"})
    far = one("similarity", "abc", {"expected": "xyz"})
    assert same.value == 1.0 and far.value == 0.0 and 0.8 < near.value < 1.0
    assert same.passed is None and near.passed is None


def test_callables_return_a_bool_a_number_or_a_dict():
    def short(output, row):
        return len(output) < row["limit"]

    assert one(short, "abc", {"limit": 5}).passed is True
    assert one(lambda o, r: 0.25, "x").value == 0.25
    verdict = one(lambda o, r: {"score": False, "reason": "too\npolite"}, "x")
    assert (verdict.value, verdict.passed, verdict.reason) == (0.0, False, "too polite")
    assert one(short, "abc", {"limit": 5}).name == "short"
    assert parse_scorers([("brief", short)])[0].name == "brief"
    odd = one(lambda o, r: "yes", "x")
    assert odd.error and math.isnan(odd.value) and "return a bool" in odd.reason


def test_a_row_without_the_expected_answer_is_an_error_row():
    score = one("contains", "4", {"answer": "4"})
    assert score.error and math.isnan(score.value) and "expected" in score.reason
    for empty in (None, float("nan"), pd.NA):
        assert one("equals", "4", {"expected": empty}).error


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["contians"], "unknown scorer 'contians': use one of equals, contains"),
        (["regex:("], "not a valid regular expression"),
        (["regex"], "needs an argument: write e.g. regex:"),
        (["length:9-2"], "needs MIN-MAX"),
        (["json:x"], "takes no argument"),
        (["json_schema:nowhere"], "no variable 'nowhere' and no file"),
        ([("json_schema", {"type": 12})], "not a valid JSON schema"),
        (["contains", "contains"], "two scorers are named 'contains'"),
        ([42], "a scorer is a name"),
    ],
)
def test_bad_specs_are_one_line_errors(specs, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        parse_scorers(specs)
    assert "\n" not in str(caught.value)


# -- through run_many, runs() and score(df) -------------------------------------------------------


def test_run_many_scores_each_run_and_stores_the_scores(echo):
    def boom(output, row):
        if "know" in output:
            raise ValueError("cannot score\nthis one")
        return 0.5

    with fake_provider() as fake:
        df = pl_magic.run_many(
            "echo", inputs=pd.DataFrame(ROWS), scorers=["contains", boom], concurrency=1
        )
    assert len(fake.requests) == 2
    assert list(df["output"]) == ["The answer is 4.", "I do not know"]
    assert list(df["score.contains"]) == [1.0, 0.0]
    assert df["score.boom"].iloc[0] == 0.5 and math.isnan(df["score.boom"].iloc[1])
    rows = scores()
    assert len(rows) == 4 and {r["source"] for r in rows} == {"rule"}
    assert {r["request_id"] for r in rows} == set(df["request_id"])
    error = next(r for r in rows if r["name"] == "boom" and r["value"] is None)
    assert error["reason"] == "ValueError: cannot score this one" and error["passed"] is None
    passed = {r["passed"] for r in rows if r["name"] == "contains"}
    assert passed == {0, 1} and all(r["scorer_version"] is None for r in rows)


def test_expected_names_another_column_and_a_bad_scorer_stops_before_any_run(echo):
    rows = [{"q": "Paris it is", "answer": "paris"}]
    with fake_provider() as fake:
        df = pl_magic.run_many("echo", inputs=rows, scorers="icontains", expected="answer")
        with pytest.raises(InvalidInputError, match="unknown scorer 'contians'"):
            pl_magic.run_many("echo", inputs=rows, scorers=["contians"])
    assert list(df["score.icontains"]) == [1.0] and len(fake.requests) == 1


def test_score_rescores_logged_runs_without_a_model_call_and_runs_shows_the_columns(echo):
    with fake_provider() as fake:
        df = pl_magic.run_many("echo", inputs=ROWS, concurrency=1)
        assert not [c for c in df.columns if c.startswith("score.")]
        scored = pl_magic.score(df, ["contains", "length:1-14"])
        assert len(fake.requests) == 2  # no new call
    assert list(scored["score.contains"]) == [1.0, 0.0]
    assert list(scored["score.length:1-14"]) == [0.0, 1.0]
    assert "score.contains" not in df.columns  # a copy
    logged = pl_magic.runs().set_index("request_id").loc[df["request_id"]]
    assert list(logged["score.contains"]) == [1.0, 0.0]
    # scoring again replaces the scores; the frame's own expected column wins
    again = pl_magic.score(df.assign(expected=["nope", "know"]), scorers="contains")
    assert list(again["score.contains"]) == [0.0, 1.0]
    assert len(scores()) == 4


def test_score_still_scores_a_run_id_and_refuses_what_is_not_a_frame(echo):
    with fake_provider():
        result = pl_magic.run("echo", input_variables={"q": "hi"})
    assert pl_magic.score(result["request_id"], 90, "accuracy") is True  # track.score
    with pytest.raises(InvalidInputError, match="at least one scorer"):
        pl_magic.score(pl_magic.runs(), [])
    with pytest.raises(InvalidInputError, match=r"score\.<name>"):
        pl_magic.score(pl_magic.runs(), ["json"], "name")


def test_plrun_score_flags_score_a_comparison(shell, echo):
    shell.run_line_magic("load_ext", "pl_magic")
    shell.run_line_magic("config", "PlMagic.short_errors = True")
    try:
        shell.user_ns["rows"] = pd.DataFrame(ROWS).rename(columns={"expected": "gold"})
        shell.user_ns["is_long"] = lambda output, row: len(output) > 13
        with fake_provider():
            shell.run_line_magic(
                "plrun", "echo --inputs rows --score contains --score is_long --expected gold "
                "--score regex:\\d --out cmp",
            )  # fmt: skip
        df = shell.user_ns["cmp"]
        assert list(df["score.contains"]) == [1.0, 0.0]
        assert list(df["score.is_long"]) == [1.0, 0.0]
        assert list(df["score.regex:\\d"]) == [1.0, 0.0]
    finally:
        shell.run_line_magic("unload_ext", "pl_magic")


def test_compare_adds_score_statistics_and_orders_cells_best_first(echo):
    def reply(request):  # gpt-4o always right, gpt-4o-mini right on the first input only
        right = request.model == "gpt-4o" or "first" in request.text
        return "it is 4" if right else "no idea"

    inputs = pd.DataFrame([{"q": "first", "expected": "4"}, {"q": "second", "expected": "4"}])
    with fake_provider(reply):
        df = pl_magic.run_many(
            "echo",
            models="openai/gpt-4o-mini,openai/gpt-4o",
            inputs=inputs,
            repeat=2,
            scorers=["contains"],
            concurrency=1,
        )
    table = pl_magic.compare(df)
    assert list(table.columns) == ["openai/gpt-4o · v1", "openai/gpt-4o-mini · v1"]
    assert table.loc["mean contains"].tolist() == [1.0, 0.5]
    assert table.loc["pass rate contains"].tolist() == [1.0, 0.5]
    assert table.loc["pass^k contains"].tolist() == [1.0, 0.5]
    assert table.loc["pass@k contains"].tolist() == [1.0, 0.5]
    assert table.loc["95% CI contains", "openai/gpt-4o · v1"] == "0.342–1"  # Wilson(2, 2)
    assert "mean latency_s" in table.index  # the other summary rows stay
    plain = pl_magic.compare(df.drop(columns=["score.contains"]))
    assert "mean contains" not in plain.index


def test_score_runs_gives_each_item_the_verdict_score_output_gives():
    from pl_magic.engine.scoring import score_runs

    def shaky(output, row):
        if output == "boom":
            raise ValueError("no")
        return {"score": len(output) > 3, "reason": None} if output else 0.5

    scorers = parse_scorers(["contains", "icontains", "equals", "regex:\\d", "json", shaky])
    items = [
        ("it is 4", {"expected": "4"}),
        ("IT IS FOUR", {"expected": "four"}),
        (" 4 ", {"expected": "4"}),
        (None, {"expected": "4"}),
        ("", {"expected": ""}),
        ("it is 4", {"expected": 4}),
        ("4", {"expected": float("nan")}),
        ("4", {"expected": pd.NA}),
        ("boom", {}),
        ('{"a": 1}', {"expected": "a"}),
    ]
    got = score_runs(scorers, items)
    want = [[score_output(s, out, row) for s in scorers] for out, row in items]
    assert len(got) == len(want) == len(items)
    for row_got, row_want in zip(got, want, strict=True):
        for a, b in zip(row_got, row_want, strict=True):
            assert (a.name, a.passed, a.reason, a.source, a.error) == (
                b.name, b.passed, b.reason, b.source, b.error
            )  # fmt: skip
            assert a.value == b.value or (math.isnan(a.value) and math.isnan(b.value))
    assert score_runs([], items[:2]) == [[], []]
    assert score_runs(scorers, []) == []
