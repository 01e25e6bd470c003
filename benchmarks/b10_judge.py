"""B10: a judge pass over 200 logged runs at concurrency 16, the provider adding 100 ms.

``pl_magic.score(df, ["judge:grader"], concurrency=16)`` over the 200 runs of a
``run_many``: per run the judge prompt is resolved, rendered with the judged output,
sent with its structured-output request, its JSON reply parsed, the judge run logged
(linked to the run it judged) and the score stored. Compared with the ideal
``ceil(200 / 16) × 100 ms`` (a client with no cost of its own). The fake OpenAI server
answers a structured-output request with JSON that fits the requested schema.
"""

from __future__ import annotations

import math
import time

from .harness import (
    METADATA,
    TEMPLATE,
    Outcome,
    Row,
    Servers,
    median,
    publish_local,
    scratch_home,
    secs,
)

RUNS = 200
CONCURRENCY = 16
DELAY_S = 0.1
TARGET = 1.3

JUDGE = {
    "type": "chat",
    "messages": [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Grade the reply: score 1 if it helps."}],
            "template_format": "f-string",
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "{message}\n\nReply: {output}"}],
            "template_format": "f-string",
        },
    ],
}


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B10."""
    import pl_magic

    servers.reset()
    servers.use_openai()
    inputs = [
        {"product": "pl_magic", "name": f"customer {i}", "message": "hi"} for i in range(RUNS)
    ]
    ideal = math.ceil(RUNS / CONCURRENCY) * DELAY_S
    with scratch_home():
        publish_local()
        pl_magic.publish({"prompt_name": "grader", "prompt_template": JUDGE, "metadata": METADATA})
        df = pl_magic.run_many("bench", inputs=inputs, concurrency=CONCURRENCY)
        assert set(df["status"]) == {"ok"}
        pl_magic.score(df.head(32), ["judge:grader"], concurrency=CONCURRENCY)  # warm-up
        servers.set("provider", delay_s=DELAY_S)
        walls = []
        for _ in range(2 if quick else 5):
            start = time.perf_counter()
            scored = pl_magic.score(df, ["judge:grader"], concurrency=CONCURRENCY)
            walls.append(time.perf_counter() - start)
            column = scored["score.judge:grader"]
            assert column.notna().all(), scored["score.judge:grader"].isna().sum()
        servers.set("provider", delay_s=0.0)
        judge_runs = len(pl_magic.runs(prompt="grader"))
    assert TEMPLATE  # the judged prompt is the harness's benchmark prompt
    wall = median(walls)
    ratio = wall / ideal
    return Outcome(
        [
            Row(
                "B10",
                f"a judge pass (pl_magic.score(df, ['judge:grader'])) over {RUNS} logged runs, "
                f"provider adding 100 ms each, concurrency {CONCURRENCY}",
                secs(wall),
                f"{secs(ideal)} (ideal ceil({RUNS}/{CONCURRENCY}) × 100 ms)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            )
        ],
        [
            f"B10 judge pass wall times: {', '.join(secs(w) for w in walls)} "
            f"(median {secs(wall)}); {judge_runs} judge runs logged, each linked to its run",
        ],
    )
