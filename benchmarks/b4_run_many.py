"""B4: 200 runs through ``pl_magic.run_many`` at concurrency 16, provider adding 100 ms each.

Compared with the ideal ``ceil(200 / 16) × 100 ms`` (a client with no cost of its own),
and with what the official ``promptlayer`` SDK offers for the same work: a loop of
``run()`` calls (it has no concurrent batch runner). The loop runs against the same
provider delay with PromptLayer answering at once (latency 0), so it costs at least
``200 × 100 ms``; it is measured on ``SDK_LOOP_RUNS`` runs and extrapolated to 200.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .harness import (
    METADATA,
    PROMPTLAYER_KEY,
    TEMPLATE,
    VARIABLES,
    Outcome,
    Row,
    Servers,
    median,
    prepared_request,
    publish_local,
    raw_openai_client,
    scratch_home,
    secs,
)

RUNS = 200
CONCURRENCY = 16
DELAY_S = 0.1
TARGET = 1.3


def _wall(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B4."""
    import promptlayer

    import pl_magic

    servers.reset()
    servers.use_openai()
    servers.add_prompt(name="bench", template=TEMPLATE, metadata=METADATA, labels=["prod"])
    inputs = [{**VARIABLES, "name": f"customer {i}"} for i in range(RUNS)]
    ideal = math.ceil(RUNS / CONCURRENCY) * DELAY_S
    with scratch_home():
        publish_local()
        pl_magic.run_many("bench", inputs=inputs[:32], concurrency=CONCURRENCY)  # warm-up
        servers.set("provider", delay_s=DELAY_S)
        walls = []
        for _ in range(2 if quick else 5):
            servers.clear_log("provider")
            start = time.perf_counter()
            df = pl_magic.run_many("bench", inputs=inputs, concurrency=CONCURRENCY)
            walls.append(time.perf_counter() - start)
            assert len(df) == RUNS and set(df["status"]) == {"ok"}, df["status"].value_counts()

        # for reference: the same runs streamed, and a bare thread pool of raw SDK calls
        streamed = _wall(
            lambda: pl_magic.run_many("bench", inputs=inputs, concurrency=CONCURRENCY, stream=True)
        )
        client = raw_openai_client()
        raw_walls = {}
        for stream in (False, True):
            request = prepared_request(stream=stream)

            def one(_: int, request: dict[str, Any] = request) -> None:
                answer = client.chat.completions.create(**request)
                if request.get("stream"):
                    for _chunk in answer:
                        pass

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                start = time.perf_counter()
                list(pool.map(one, range(RUNS)))
                raw_walls[stream] = time.perf_counter() - start

        sdk = promptlayer.PromptLayer(api_key=PROMPTLAYER_KEY, base_url=servers.promptlayer_url)
        loop_runs = 20 if quick else 50
        sdk.run("bench", prompt_release_label="prod", input_variables=VARIABLES)  # warm-up
        start = time.perf_counter()
        for row in inputs[:loop_runs]:
            sdk.run("bench", prompt_release_label="prod", input_variables=row)
        loop = (time.perf_counter() - start) * RUNS / loop_runs
    wall = median(walls)
    ratio = wall / ideal
    return Outcome(
        [
            Row(
                "B4",
                f"{RUNS} runs through pl_magic.run_many, provider adding 100 ms each, "
                f"concurrency {CONCURRENCY}",
                secs(wall),
                f"{secs(ideal)} (ideal ceil({RUNS}/{CONCURRENCY}) × 100 ms)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            ),
            Row(
                "B4 loop",
                f"the same {RUNS} runs as a loop of official-SDK run() calls "
                "(PromptLayer latency 0)",
                secs(wall),
                f"{secs(loop)} (measured on {loop_runs} runs, × {RUNS // loop_runs})",
                f"{loop / wall:.1f}× faster",
                "reported",
                None,
            ),
        ],
        [
            f"B4 run_many wall times: {', '.join(secs(w) for w in walls)} (median {secs(wall)})",
            f"B4 for reference: run_many(stream=True) {secs(streamed)}; a pool of "
            f"{CONCURRENCY} threads calling the raw openai SDK: {secs(raw_walls[False])} "
            f"(non-streamed), {secs(raw_walls[True])} (streamed)",
            f"B4 official SDK loop: {secs(loop / RUNS)} a run, {secs(loop)} for {RUNS} "
            f"(extrapolated from {loop_runs})",
        ],
    )
