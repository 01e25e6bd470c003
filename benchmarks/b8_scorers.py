"""B8: the ``contains`` rule scorer over 100,000 logged outputs, against a plain pandas check.

What is timed on the pl_magic side is the scorer application of ``pl_magic.score(df,
["contains"])``: :func:`pl_magic.engine.scoring.score_runs` over the ``(output, input
variables)`` items that ``score()`` builds from the log, giving one :class:`Score` (value,
pass/fail, reason) per run. Reading the log and writing the ``scores`` table are not timed
(they are the database's cost, the same for any scorer). The baseline is the same check in
plain pandas over a frame with ``output`` and ``expected`` columns: each row's expected answer
differs, so ``str.contains`` (one pattern for a whole column) does not apply, and the
row-wise ``[exp in out for out, exp in zip(df["output"], df["expected"])]`` into a boolean
Series is its fastest plain form (``df.apply(..., axis=1)`` is far slower; see the details).
"""

from __future__ import annotations

import random
import time

from .harness import Outcome, Row, Servers, interleave, median, ms, paired_ratio, spread, timed

OUTPUTS = 100_000
TARGET = 1.5


def items(count: int = OUTPUTS, seed: int = 8) -> list[tuple[str, dict[str, str]]]:
    """``count`` (output, input variables) pairs as ``score()`` reads them from the log: a
    question, an expected answer found in about a third of the replies."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        text = f"Reply {i}: the answer is {i % 7}, as far as I can tell from the context."
        out.append((text, {"question": f"What is {i} mod 7?", "expected": str(rng.randrange(9))}))
    return out


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B8 (the servers are not used)."""
    import pandas as pd

    from pl_magic.engine.scoring import parse_scorers, score_runs

    pairs = items()
    frame = pd.DataFrame(
        {"output": [o for o, _ in pairs], "expected": [row["expected"] for _, row in pairs]}
    )
    scorers = parse_scorers(["contains"])

    def ours() -> None:
        assert len(score_runs(scorers, pairs)) == OUTPUTS

    def baseline() -> None:
        hits = pd.Series(
            [e in o for o, e in zip(frame["output"], frame["expected"], strict=True)],
            index=frame.index,
        )
        assert len(hits) == OUTPUTS

    verdicts = [s.passed for (s,) in score_runs(scorers, pairs)]
    expected = [e in o for o, e in zip(frame["output"], frame["expected"], strict=True)]
    assert verdicts == expected  # the same answers on both sides
    samples = interleave(
        {"pl_magic": timed(ours), "pandas": timed(baseline)},
        repeat=5 if quick else 15,
        warmup=2,
    )
    started = time.perf_counter()
    frame.apply(lambda r: r["expected"] in r["output"], axis=1)
    apply_once = time.perf_counter() - started
    started = time.perf_counter()
    frame["output"].str.contains("4", regex=False)
    contains_once = time.perf_counter() - started
    a, b = samples["pl_magic"]["total"], samples["pandas"]["total"]
    ratio = paired_ratio(a, b)
    return Outcome(
        [
            Row(
                "B8",
                f'rule scorer "contains" over {OUTPUTS:,} logged outputs '
                "(score_runs: the scoring in score(df), no database)",
                ms(median(a)),
                f"{ms(median(b))} (pandas row-wise `exp in out` into a bool Series)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            )
        ],
        [
            f"B8 score_runs(['contains']) over {OUTPUTS:,} outputs: {spread(a)} "
            f"({sum(verdicts):,} pass)",
            f"B8 pandas row-wise: {spread(b)}",
            f"B8 for scale, measured once: df.apply(..., axis=1) {ms(apply_once)}; "
            f'str.contains("4", regex=False), one pattern for every row, {ms(contains_once)}',
        ],
    )
