"""B11: a replayed ``run()`` against a live one; a replayed 1,000-run comparison.

Both sides are ``pl_magic.run()`` on the same prompt and inputs, against the fake provider
answering with no delay (so the live side's time is pl_magic's own work plus one local HTTP
round trip): the replayed side (``PL_MAGIC_CACHE=replay`` semantics, set with
:func:`pl_magic.core.config.set_cache_mode`) resolves and renders the prompt, looks the key
up in the log, and logs the served run, with no call. B11b times ``run_many(repeat=1000,
cache="replay")`` once every repeat is recorded.
"""

from __future__ import annotations

import time
from typing import Any

from .harness import (
    VARIABLES,
    Outcome,
    Row,
    Servers,
    interleave,
    median,
    ms,
    paired_ratio,
    publish_local,
    scratch_home,
    secs,
    spread,
    timed,
)

TARGET = 0.5
TARGET_COMPARISON_S = 1.0


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B11."""
    import pl_magic
    from pl_magic.core import config

    servers.reset()
    servers.use_openai()
    repeats = 200 if quick else 1000
    try:
        with scratch_home():
            publish_local()
            pl_magic.run("bench", input_variables=VARIABLES)  # the recording

            def live() -> None:
                config.set_cache_mode("off")
                result: Any = pl_magic.run("bench", input_variables=VARIABLES)
                assert result["request_id"]

            def replayed() -> None:
                config.set_cache_mode("replay")
                result: Any = pl_magic.run("bench", input_variables=VARIABLES)
                assert result["raw_response"] is None or isinstance(result["raw_response"], dict)

            calls_before = servers.count("provider")
            samples = interleave(
                {"replay": timed(replayed), "live": timed(live)},
                repeat=40 if quick else 300,
                warmup=10,
            )
            live_calls = servers.count("provider") - calls_before

            config.set_cache_mode(None)
            pl_magic.run_many("bench", repeat=repeats, input_variables=VARIABLES, cache="record")
            calls_before = servers.count("provider")
            start = time.perf_counter()
            df = pl_magic.run_many(
                "bench", repeat=repeats, input_variables=VARIABLES, cache="replay"
            )
            comparison_s = time.perf_counter() - start
            assert bool(df["cached"].all()) and servers.count("provider") == calls_before
    finally:
        config.set_cache_mode(None)
    a, b = samples["replay"]["total"], samples["live"]["total"]
    ratio = paired_ratio(a, b)
    return Outcome(
        [
            Row(
                "B11",
                "a replayed run() against a live one, provider with no delay",
                ms(median(a)),
                f"{ms(median(b))} (live pl_magic.run(), same prompt)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            ),
            Row(
                "B11b",
                f"a replayed {repeats:,}-run comparison (run_many, cache='replay')",
                secs(comparison_s),
                "—",
                "—",
                f"≤ {TARGET_COMPARISON_S:.0f} s" + (" (at 1,000 runs)" if quick else ""),
                comparison_s <= TARGET_COMPARISON_S if not quick else None,
            ),
        ],
        [
            f"B11 replayed run(): {spread(a)}",
            f"B11 live run(): {spread(b)} ({live_calls} provider calls)",
        ],
    )
