"""B9: score statistics over 10,000 scored runs, against a pandas ``groupby().agg``.

The frame is a comparison as ``run_many``/``runs()`` return it: 4 cells (2 models × 2 prompt
versions), 500 input rows (a question and an expected answer), 5 repeats each, a pass/fail
``score.contains`` column (NaN for the 3 % of runs that failed), latency and cost.

Two rows. ``cell_summary(df, "contains")`` is what ``compare()`` adds for a score: per cell
the mean with its 95 % interval over per-input means (Wilson's, the score being pass/fail),
pass rate, pass^k and pass@k; it is
set against ``df.groupby(["provider", "model", "prompt_version", "release_label"],
dropna=False, sort=False)["score.contains"].agg(["mean", "std", "count"])`` (per-run mean,
standard deviation and count: no per-input units, no intervals, no labels). ``compare(df)``
as a whole also pivots the 10,000 outputs into one column per cell, which costs more than the
statistics; it is reported against the same baseline, without a target.
"""

from __future__ import annotations

import random

from .harness import Outcome, Row, Servers, interleave, median, ms, paired_ratio, spread, timed

INPUTS = 500
REPEATS = 5
CELLS = (
    ("openai", "gpt-4o-mini", 1),
    ("openai", "gpt-4o-mini", 2),
    ("anthropic", "claude-haiku-4-5", 1),
    ("anthropic", "claude-haiku-4-5", 2),
)
RUNS = INPUTS * REPEATS * len(CELLS)
TARGET = 2.0


def scored_frame(seed: int = 9) -> object:
    """A scored comparison frame of :data:`RUNS` runs (typed as ``runs()`` types them)."""
    import numpy as np
    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for provider, model, version in CELLS:
        for i in range(INPUTS):
            for repeat in range(REPEATS):
                ok = rng.random() > 0.03
                rows.append(
                    {
                        "provider": provider,
                        "model": model,
                        "prompt_version": version,
                        "release_label": None,
                        "repeat": repeat,
                        "status": "ok" if ok else "error",
                        "output": f"Reply {i}: it is {i % 7}" if ok else None,
                        "latency_s": 1.0 + rng.random(),
                        "ttft_s": 0.2 + rng.random() / 10,
                        "output_tokens": 12 + i % 5,
                        "cost_usd": 0.000012,
                        "var.question": f"What is {i} mod 7?",
                        "var.expected": str(i % 7),
                        "score.contains": float(rng.random() < 0.7) if ok else np.nan,
                    }
                )
    df = pd.DataFrame(rows)
    for column in ("prompt_version", "repeat", "output_tokens"):
        df[column] = df[column].astype("Int64")
    return df


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B9 (the servers are not used)."""
    import pl_magic
    from pl_magic.engine.statistics import cell_summary

    df = scored_frame()
    keys = ["provider", "model", "prompt_version", "release_label"]

    def summary() -> None:
        assert len(cell_summary(df, "contains")) == len(CELLS)

    def whole() -> None:
        assert "mean contains" in pl_magic.compare(df).index

    def baseline() -> None:
        stats = df.groupby(keys, dropna=False, sort=False)["score.contains"].agg(
            ["mean", "std", "count"]
        )
        assert len(stats) == len(CELLS)

    repeat = 7 if quick else 21
    samples = interleave(
        {"cell_summary": timed(summary), "groupby": timed(baseline)}, repeat=repeat, warmup=3
    )
    compared = interleave(
        {"compare": timed(whole), "groupby": timed(baseline)},
        repeat=5 if quick else 15,
        warmup=2,
    )
    a, b = samples["cell_summary"]["total"], samples["groupby"]["total"]
    c, d = compared["compare"]["total"], compared["groupby"]["total"]
    ratio, whole_ratio = paired_ratio(a, b), paired_ratio(c, d)
    baseline_text = 'groupby(cell columns)["score.contains"].agg(["mean", "std", "count"])'
    return Outcome(
        [
            Row(
                "B9",
                f"score statistics (cell_summary: mean, 95 % CI over per-input means, pass "
                f"rate, pass^k, pass@k) over {RUNS:,} scored runs",
                ms(median(a)),
                f"{ms(median(b))} ({baseline_text})",
                f"{ratio:.2f}×",
                f"≤ {TARGET:g}×",
                ratio <= TARGET,
            ),
            Row(
                "B9b",
                f"compare(df) as a whole over {RUNS:,} scored runs (outputs pivoted "
                "side by side, summary rows, score statistics)",
                ms(median(c)),
                f"{ms(median(d))} (the same groupby)",
                f"{whole_ratio:.1f}×",
                "—",
                None,
            ),
        ],
        [
            f"B9 cell_summary: {spread(a)}",
            f"B9 groupby().agg: {spread(b)}",
            f"B9b compare(df): {spread(c)} (groupby next to it: {spread(d)})",
        ],
    )
