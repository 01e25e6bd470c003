"""B7: ``pl_magic.runs()`` over 10,000 logged runs, against ``pandas.read_sql`` of the table.

The log is filled with realistic rows through :class:`pl_magic.runlog.sqlite.RunLog` (a rendered
chat template, three input variables, parameters, tags, metadata, usage, cost and the
provider's raw response), spread over four prompts, two models and three statuses. The
baseline reads the same table with ``pandas.read_sql("SELECT * FROM runs", conn)`` on a
sqlite3 connection of its own — no JSON decoding, no typed columns; ``runs()`` returns
the tidy frame (decoded parameters/tags/metadata, one ``var.*`` column per input
variable, timestamps, nullable integers).
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

from .harness import (
    TEMPLATE,
    Outcome,
    Row,
    Servers,
    interleave,
    median,
    ms,
    paired_ratio,
    scratch_home,
    spread,
    timed,
)

RUNS = 10_000
TARGET = 1.5


def fill_log(count: int = RUNS, seed: int = 9) -> None:
    """Write ``count`` realistic runs to the current PL_MAGIC_HOME's log (one transaction
    each, as runs are logged)."""
    from pl_magic.core.blueprint import render
    from pl_magic.runlog.sqlite import RunLog, RunRecord, run_key

    rng = random.Random(seed)
    log = RunLog()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prompts = ["support-reply", "summarize", "capital-city", "haiku"]
    models = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]
    params = {"temperature": 0.2, "max_tokens": 256}
    for i in range(count):
        variables = {
            "product": "pl_magic",
            "name": f"customer {i % 97}",
            "message": f"Message number {i}: I cannot log in since this morning.",
        }
        rendered = render(TEMPLATE, variables, "bench")
        provider, model = models[i % 2]
        status = "ok" if i % 20 else rng.choice(["error", "cancelled"])
        text = f"Reply {i}: try resetting your password from the sign-in page."
        prompt = prompts[i % 4]
        started = start + timedelta(seconds=i * 7)
        log.record(
            RunRecord(
                request_id=f"{i:032x}",
                run_key=run_key(prompt, 1 + i % 3, rendered, provider, model, params, 0),
                prompt_name=prompt,
                prompt_id=1 + i % 4,
                prompt_version=1 + i % 3,
                release_label="prod" if i % 3 == 0 else None,
                provider=provider,
                model=model,
                api_type=None,
                parameters=params,
                input_variables=variables,
                rendered_input=rendered,
                started_at=started.isoformat(timespec="microseconds"),
                ended_at=(started + timedelta(seconds=1.2)).isoformat(timespec="microseconds"),
                status=status,
                output=text if status == "ok" else text[:20],
                error_category="server" if status == "error" else None,
                error_message="HTTP 500 from openai" if status == "error" else None,
                finish_reason="stop" if status == "ok" else None,
                tags=["bench", f"batch-{i % 10}"],
                metadata={"user": f"u{i % 13}"},
                group_id=None,
                repeat_index=i % 2,
                ttft_s=0.2 + rng.random() / 10,
                latency_s=1.0 + rng.random(),
                input_tokens=40 + i % 7,
                output_tokens=12 + i % 5,
                cost_usd=0.000012,
                raw_response={
                    "id": f"chatcmpl-{i}",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 12},
                },
            )
        )


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B7 (the servers are not used)."""
    import pandas as pd

    import pl_magic
    from pl_magic.core import config

    with scratch_home():
        fill_log()
        conn = sqlite3.connect(config.db_path())
        try:

            def ours() -> None:
                assert len(pl_magic.runs()) == RUNS

            def baseline() -> None:
                assert len(pd.read_sql("SELECT * FROM runs", conn)) == RUNS

            samples = interleave(
                {"pl_magic": timed(ours), "read_sql": timed(baseline)},
                repeat=5 if quick else 15,
                warmup=2,
            )
            columns = len(pl_magic.runs().columns)
        finally:
            conn.close()
    a, b = samples["pl_magic"]["total"], samples["read_sql"]["total"]
    ratio = paired_ratio(a, b)
    return Outcome(
        [
            Row(
                "B7",
                f"pl_magic.runs() over {RUNS:,} logged runs",
                ms(median(a)),
                f'{ms(median(b))} (pandas.read_sql("SELECT * FROM runs"))',
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            )
        ],
        [
            f"B7 pl_magic.runs(): {spread(a)} ({columns} columns)",
            f"B7 pandas.read_sql: {spread(b)}",
        ],
    )
