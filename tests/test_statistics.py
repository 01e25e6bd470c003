"""engine/statistics: cell summaries and significance over hand-built comparison frames, checked
against known answers and against scipy's implementations (scipy only in the tests)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pl_magic.core.errors import InvalidInputError
from pl_magic.engine import statistics as st


def frame(cells: dict[tuple[str, int], dict[str, list[float]]], **extra: object) -> pd.DataFrame:
    """A comparison frame: {(model, version): {input: [score of each repeat]}}."""
    rows = []
    for (model, version), inputs in cells.items():
        for question, scores in inputs.items():
            for repeat, value in enumerate(scores):
                rows.append(
                    {
                        "provider": "openai",
                        "model": model,
                        "prompt_version": version,
                        "release_label": None,
                        "repeat": repeat,
                        "status": "ok",
                        "output": f"answer to {question}",
                        "latency_s": 0.5 * version,
                        "cost_usd": 0.01,
                        "var.question": question,
                        "score.correct": value,
                        **extra,
                    }
                )
    df = pd.DataFrame(rows)
    df["prompt_version"] = df["prompt_version"].astype("Int64")
    return df


def two_versions(a: list[float], b: list[float], repeats: int = 1) -> pd.DataFrame:
    return frame(
        {
            ("gpt-4o", 2): {f"q{i}": [v] * repeats for i, v in enumerate(a)},
            ("gpt-4o", 3): {f"q{i}": [v] * repeats for i, v in enumerate(b)},
        }
    )


# -- t quantiles and intervals --------------------------------------------------------------


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for confidence in (0.8, 0.9, 0.95, 0.99):
        for dof in (1, 2, 3, 4, 5, 9, 10, 29, 30, 100, 199, 200, 201, 500, 10_000):
            expected = stats.t.ppf((1 + confidence) / 2, dof)
            assert st.t_quantile(confidence, dof) == pytest.approx(expected, rel=1e-8)


def test_cell_summary_interval_is_scipys_t_interval_over_per_input_means():
    stats = pytest.importorskip("scipy.stats")
    scores = {"q1": [1.0, 0.5], "q2": [0.25, 0.25], "q3": [0.8, 1.0], "q4": [0.0, 0.5]}
    out = st.cell_summary(frame({("m", 1): scores}), "correct")
    means = np.array([np.mean(v) for v in scores.values()])
    low, high = stats.t.interval(0.95, len(means) - 1, loc=means.mean(), scale=stats.sem(means))
    row = out.iloc[0]
    assert row["mean"] == pytest.approx(means.mean())
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert math.isnan(row["pass rate"])  # not a pass/fail score, no threshold
    with_threshold = st.cell_summary(frame({("m", 1): scores}), "correct", threshold=0.5)
    assert with_threshold.iloc[0]["pass rate"] == pytest.approx(5 / 8)


def test_cell_summary_single_input_uses_runs_and_one_unit_has_no_interval():
    out = st.cell_summary(frame({("m", 1): {"q": [1.0, 0.0, 1.0, 1.0]}}), "correct")
    assert out.iloc[0]["inputs"] == 1 and out.iloc[0]["mean"] == 0.75
    assert out.iloc[0]["ci_low"] < 0.75 < out.iloc[0]["ci_high"]
    one = st.cell_summary(frame({("m", 1): {"q": [1.0]}}), "correct")
    assert one.iloc[0]["mean"] == 1.0 and math.isnan(one.iloc[0]["ci_low"])


def wilson(k: int, n: int) -> tuple[float, float]:
    stats = pytest.importorskip("scipy.stats")
    interval = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return interval.low, interval.high


@pytest.mark.parametrize(
    ("scores", "k", "n"),
    [
        ({"q": [1.0, 1.0, 1.0]}, 3, 3),  # one input: its runs are the units
        ({"q": [1.0, 0.0, 1.0, 1.0]}, 3, 4),
        ({"q": [0.0, 0.0]}, 0, 2),
        ({f"q{i}": [1.0] for i in range(5)}, 5, 5),  # one repeat per input
        ({f"q{i}": [float(i % 3 == 0)] for i in range(10)}, 4, 10),
        ({"q1": [1.0, 1.0], "q2": [1.0, 1.0], "q3": [0.0, 0.0]}, 2, 3),  # repeats agree
    ],
)
def test_pass_fail_interval_is_wilsons_over_the_units(scores, k, n):
    row = st.cell_summary(frame({("m", 1): scores}), "correct").iloc[0]
    low, high = wilson(k, n)
    assert row["mean"] == pytest.approx(k / n)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert 0.0 <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= 1.0


def test_pass_fail_interval_over_repeats_uses_the_effective_number_of_runs():
    # Per-input shares 1, ½, ½, 0 (2 repeats): p = ½, s² = 1/8, n·p(1 − p)/s² = 8 = the runs,
    # as if the 8 runs were independent.
    scores = {"q1": [1.0, 1.0], "q2": [1.0, 0.0], "q3": [0.0, 1.0], "q4": [0.0, 0.0]}
    row = st.cell_summary(frame({("m", 1): scores}), "correct").iloc[0]
    low, high = wilson(4, 8)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    # Shares 1, 1, 0, ⅔, ⅓, 0 over 3 repeats: p = ½, s² = 19/108, 6·p(1 − p)/s² ≈ 8.5 trials,
    # between the 6 inputs and the 18 runs.
    shares = {"q1": 3, "q2": 3, "q3": 0, "q4": 2, "q5": 1, "q6": 0}
    scores = {q: [1.0] * w + [0.0] * (3 - w) for q, w in shares.items()}
    check_wilson(scores, trials=6 * 0.25 * 108 / 19)
    # Shares ⅔ and ⅓ alternating: s² = 1/36 would make 54 trials, more than the 18 runs.
    check_wilson({f"q{i}": [1.0, float(i % 2), 0.0] for i in range(6)}, trials=18)


def check_wilson(scores: dict[str, list[float]], trials: float) -> None:
    row = st.cell_summary(frame({("m", 1): scores}), "correct").iloc[0]
    p = row["mean"]
    assert p == 0.5
    z = 1.959963984540054
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    assert (row["ci_low"], row["ci_high"]) == (
        pytest.approx(centre - half),
        pytest.approx(centre + half),
    )


def test_non_pass_fail_scores_keep_the_t_interval_even_with_a_threshold():
    stats = pytest.importorskip("scipy.stats")
    values = [0.9, 0.4, 0.7]
    row = st.cell_summary(
        frame({("m", 1): {f"q{i}": [v] for i, v in enumerate(values)}}), "correct", threshold=0.5
    ).iloc[0]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))


# -- cell_summary: pass^k, pass@k, ordering -------------------------------------------------


def test_pass_k_and_pass_at_k_on_a_hand_computed_fixture():
    nan = float("nan")
    df = frame(
        {
            ("gpt-4o", 1): {
                "q1": [1.0, 1.0, 1.0],  # all pass
                "q2": [1.0, 0.0, 1.0],  # some pass
                "q3": [0.0, 0.0, 0.0],  # none pass
                "q4": [1.0, 1.0, nan],  # the scored repeats all pass
            },
            ("gpt-4o", 2): {"q1": [1.0] * 3, "q2": [1.0] * 3, "q3": [1.0] * 3, "q4": [0.0] * 3},
        }
    )
    out = st.cell_summary(df, "score.correct")
    assert list(out.index) == ["openai/gpt-4o · v2", "openai/gpt-4o · v1"]  # best first
    assert out.index.name == "model · version"
    v1 = out.loc["openai/gpt-4o · v1"]
    assert (v1["runs"], v1["scored"], v1["inputs"], v1["k"]) == (12, 11, 4, 3)
    assert v1["mean"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert v1["pass rate"] == pytest.approx(7 / 11)
    assert v1["pass^k"] == pytest.approx(2 / 4)
    assert v1["pass@k"] == pytest.approx(3 / 4)
    v2 = out.loc["openai/gpt-4o · v2"]
    assert (v2["mean"], v2["pass rate"], v2["pass^k"], v2["pass@k"]) == (0.75, 0.75, 0.75, 0.75)
    assert v1["mean latency_s"] == 0.5 and v2["mean latency_s"] == 1.0
    assert v1["total cost_usd"] == pytest.approx(0.12)
    assert out.attrs == {"score": "score.correct", "confidence": 0.95}


def test_cell_summary_orders_best_first_with_unscored_cells_last():
    nan = float("nan")
    df = frame(
        {
            ("a", 1): {"q1": [0.2], "q2": [0.4]},
            ("b", 1): {"q1": [nan], "q2": [nan]},
            ("c", 1): {"q1": [0.9], "q2": [0.7]},
            ("d", 1): {"q1": [0.5], "q2": [0.5]},
        }
    )
    out = st.cell_summary(df, "correct")
    assert list(out.index) == [
        "openai/c · v1",
        "openai/d · v1",
        "openai/a · v1",
        "openai/b · v1",
    ]
    assert out.loc["openai/b · v1", "scored"] == 0 and math.isnan(out.loc["openai/b · v1", "mean"])


def test_cell_labels_follow_compare_and_frames_without_provider():
    df = two_versions([1.0], [0.0])
    df.loc[df["prompt_version"] == 3, "release_label"] = "prod"
    assert list(dict.fromkeys(st.cell_labels(df))) == [
        "openai/gpt-4o · v2",
        "openai/gpt-4o · v3 (prod)",
    ]
    bare = df.drop(columns=["provider", "release_label"])
    assert list(dict.fromkeys(st.cell_labels(bare))) == ["gpt-4o · v2", "gpt-4o · v3"]


def test_input_keys_are_stable_and_nan_safe():
    df = pd.DataFrame(
        {"var.b": [1, 1, float("nan")], "var.a": ["x", "x", None], "model": ["m"] * 3}
    )
    keys = st.input_keys(df)
    assert keys[0] == keys[1] == '{"var.a": "x", "var.b": 1.0}'
    assert keys[2] == '{"var.a": null, "var.b": null}'
    assert st.input_keys(pd.DataFrame({"model": ["m", "m"]})) == ["{}", "{}"]


# -- significance: known answers ------------------------------------------------------------


def test_identical_cells_differ_by_zero_with_p_one():
    scores = [1.0, 0.0, 1.0, 1.0, 0.0, 0.5] * 5
    result = st.significance(two_versions(scores, scores, repeats=2), "correct", a=2, b=3)
    assert result.difference == 0 and result.p_value == 1.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.paired and result.n == 30
    assert str(result) == ("v3 scores the same as v2 (95 % CI 0.00–0.00, p = 1, 30 paired inputs)")


def test_verdict_format_on_an_exact_case():
    # Ten inputs, each 0.2 higher in v3: every sign pattern is enumerated (2^10 ≤ 10,000);
    # only the all-plus pattern reaches 0.2, so the two-sided p is 2 × 1/1024.
    a = [0.1 * i for i in range(10)]
    result = st.significance(two_versions(a, [x + 0.2 for x in a]), "correct", a="v2", b="v3")
    assert result.difference == pytest.approx(0.2)
    assert result.p_value == pytest.approx(2 / 1024)
    assert result.ci_low == pytest.approx(0.2) and result.ci_high == pytest.approx(0.2)
    assert result.verdict == (
        "v3 scores 0.20 higher than v2 (95 % CI 0.20–0.20, p = 0.002, 10 paired inputs)"
    )
    assert "exact" in result.method and "sign-flip" in result.method
    reverse = st.significance(two_versions(a, [x + 0.2 for x in a]), "correct", a=3, b=2)
    assert reverse.difference == pytest.approx(-0.2)
    assert reverse.verdict.startswith("v2 scores 0.20 lower than v3 (95 % CI 0.20–0.20")


def test_clear_difference_has_small_p_and_an_interval_around_it():
    rng = np.random.default_rng(7)
    a = list(rng.uniform(0.2, 0.5, 40))
    b = [x + 0.3 + rng.normal(0, 0.05) for x in a]
    result = st.significance(two_versions(a, b, repeats=3), "correct", a=2, b=3)
    assert result.paired and result.n == 40
    assert result.p_value < 0.001
    assert 0.25 < result.ci_low < result.difference < result.ci_high < 0.35
    assert "p < 0.001, 40 paired inputs)" in result.verdict


def test_same_seed_same_result_other_seed_other_draws():
    rng = np.random.default_rng(3)
    a, b = list(rng.random(30)), list(rng.random(30))
    df = two_versions(a, b)
    first = st.significance(df, "correct", a=2, b=3, seed=11)
    assert st.significance(df, "correct", a=2, b=3, seed=11) == first
    assert st.significance(df, "correct", a=2, b=3, seed=12).ci_low != first.ci_low


def test_unpaired_when_the_cells_saw_different_rows():
    df = frame(
        {
            ("gpt-4o", 1): {f"q{i}": [float(i % 2)] * 2 for i in range(6)},
            ("claude", 1): {f"r{i}": [1.0, 1.0] for i in range(5)},
        }
    )
    result = st.significance(df, "correct", a="gpt-4o", b="claude")
    assert not result.paired and (result.n_a, result.n_b, result.n) == (6, 5, 11)
    assert result.difference == pytest.approx(0.5)
    assert result.verdict.endswith(", 6 vs 5 inputs, unpaired)")
    assert result.verdict.startswith("openai/claude scores 0.50 higher than openai/gpt-4o")


# -- significance against scipy -------------------------------------------------------------


def _mean_difference(x, y, axis=-1):
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def test_paired_exact_p_equals_scipys_sign_flip_permutation_test():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    a = rng.random(12).round(2)
    b = (a + rng.normal(0.08, 0.15, 12)).round(2)
    ours = st.significance(two_versions(list(a), list(b)), "correct", a=2, b=3)
    theirs = stats.permutation_test(
        (a, b), _mean_difference, permutation_type="samples", vectorized=True, n_resamples=10_000
    )
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.difference == pytest.approx(theirs.statistic)


def test_paired_random_p_and_bootstrap_interval_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(9)
    a = rng.random(40)
    b = a + rng.normal(0.05, 0.2, 40)
    ours = st.significance(two_versions(list(a), list(b), repeats=2), "correct", a=2, b=3)
    assert "random" in ours.method
    perm = stats.permutation_test(
        (a, b),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=20_000,
        rng=1,
    )
    assert ours.p_value == pytest.approx(perm.pvalue, abs=0.015)
    boot = stats.bootstrap(
        (a, b), _mean_difference, paired=True, method="percentile", n_resamples=20_000, rng=1
    )
    assert ours.ci_low == pytest.approx(boot.confidence_interval.low, abs=0.01)
    assert ours.ci_high == pytest.approx(boot.confidence_interval.high, abs=0.01)


def test_unpaired_p_and_interval_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a, b = rng.random(6).round(2), (rng.random(5) + 0.3).round(2)
    df = frame(
        {
            ("m", 1): {f"q{i}": [v] for i, v in enumerate(a)},
            ("m", 2): {f"r{i}": [v] for i, v in enumerate(b)},
        }
    )
    ours = st.significance(df, "correct", a=1, b=2)  # C(11, 6) = 462: exact
    theirs = stats.permutation_test(
        (a, b), _mean_difference, permutation_type="independent", vectorized=True
    )
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    a, b = rng.random(30), rng.random(25) + 0.1
    df = frame(
        {
            ("m", 1): {f"q{i}": [v] for i, v in enumerate(a)},
            ("m", 2): {f"r{i}": [v] for i, v in enumerate(b)},
        }
    )
    ours = st.significance(df, "correct", a=1, b=2)
    perm = stats.permutation_test(
        (a, b), _mean_difference, permutation_type="independent", vectorized=True, rng=1
    )
    assert ours.p_value == pytest.approx(perm.pvalue, abs=0.015)
    boot = stats.bootstrap((a, b), _mean_difference, method="percentile", n_resamples=20_000, rng=1)
    assert ours.ci_low == pytest.approx(boot.confidence_interval.low, abs=0.01)
    assert ours.ci_high == pytest.approx(boot.confidence_interval.high, abs=0.01)


# -- names, errors, display -----------------------------------------------------------------


def test_cells_are_named_by_label_version_model_or_release_label():
    df = two_versions([0.0, 1.0], [1.0, 1.0])
    df.loc[df["prompt_version"] == 3, "release_label"] = "prod"
    for a, b in (
        (2, 3),
        ("v2", "prod"),
        ("2", "v3 (prod)"),
        ("openai/gpt-4o · v2", "gpt-4o · v3 (prod)"),
    ):
        result = st.significance(df, "correct", a=a, b=b)
        assert (result.a, result.b) == ("openai/gpt-4o · v2", "openai/gpt-4o · v3 (prod)")


def test_bad_and_ambiguous_cells_are_one_line_errors_listing_the_cells():
    df = two_versions([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(InvalidInputError) as info:
        st.significance(df, "correct", a="gpt-4o", b=3)
    assert str(info.value) == (
        "a='gpt-4o' matches 2 cells (openai/gpt-4o · v2; openai/gpt-4o · v3): give one of "
        "openai/gpt-4o · v2; openai/gpt-4o · v3"
    )
    with pytest.raises(InvalidInputError) as info:
        st.significance(df, "correct", a=2, b=7)
    assert str(info.value) == (
        "b=7 matches no cell: the cells are openai/gpt-4o · v2; openai/gpt-4o · v3"
    )
    with pytest.raises(InvalidInputError, match="same cell"):
        st.significance(df, "correct", a=2, b="v2")
    with pytest.raises(InvalidInputError, match=r"^a= takes a cell"):
        st.significance(df, "correct", a=None, b=2)  # type: ignore[arg-type]
    for bad in ({"confidence": 1.5}, {"resamples": 0}, {"seed": "x"}):
        with pytest.raises(InvalidInputError):
            st.significance(df, "correct", a=2, b=3, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="runs DataFrame"):
        st.significance([], "correct", a=2, b=3)  # type: ignore[arg-type]


def test_missing_score_column_names_the_score_columns():
    df = two_versions([0.0], [1.0]).assign(**{"score.length": 1.0})
    with pytest.raises(InvalidInputError) as info:
        st.significance(df, "judge", a=2, b=3)
    assert str(info.value) == (
        "No score column 'score.judge': the score columns are score.correct, score.length"
    )
    with pytest.raises(InvalidInputError, match=r"has no score\.\* columns"):
        st.cell_summary(df.drop(columns=["score.correct", "score.length"]), "correct")
    nan = float("nan")
    with pytest.raises(InvalidInputError, match=r"^Cell openai/gpt-4o · v3 has no score\.correct"):
        st.significance(two_versions([1.0, 0.0], [nan, nan]), "correct", a=2, b=3)


def test_html_is_escaped():
    df = frame({("<b>m</b>", 1): {"q": [1.0]}, ("<i>n</i>", 1): {"q": [0.0]}})
    result = st.significance(df, "correct", a="<b>m</b>", b="<i>n</i>")
    page = result._repr_html_()
    assert "<b>m" not in page and "&lt;b&gt;m&lt;/b&gt;" in page and "<i>" not in page


def test_importing_the_module_loads_neither_numpy_nor_pandas():
    code = (
        "import sys, pl_magic.engine.statistics as s; "
        "print('numpy' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_input_keys_and_cells_of_many_runs_are_each_runs_own():
    import json

    df = pd.DataFrame(
        {
            "provider": ["openai", "openai", "anthropic"] * 4,
            "model": ["m", "m", "c"] * 4,
            "prompt_version": pd.array([1, 2, None] * 4, dtype="Int64"),
            "release_label": [None, "", "prod"] * 4,
            "var.f": [0.5, float("nan"), 2.0, 0.5] * 3,
            "var.s": ["x", None, "y", "x", float("nan"), "y"] * 2,
            "var.o": [1, "1", [1], None] * 3,
        }
    )
    for frame in (df, df.drop(columns=["var.o"])):
        plain = [
            json.dumps(
                {c: (None if v is None or v != v else v) for c, v in row.items()},
                sort_keys=True,
                ensure_ascii=False,
            )
            for row in frame.filter(like="var.").astype(object).to_dict("records")
        ]
        assert st.input_keys(frame) == plain
    labels = st.cell_labels(df)
    assert labels.tolist()[:3] == ["openai/m · v1", "openai/m · v2", "anthropic/c · v? (prod)"]
    assert labels.index.equals(df.index)
