"""B12b: 10,000 runs in batch mode against a live ``run_many`` of the same 10,000.

The fake provider (its own process) answers a batch at once: the upload and the create are
acknowledged as they arrive, and the first status read ends the batch, so what is timed is
pl_magic's own work.

- **submit**: ``run_many(..., batch=True, wait=False)``: every run prepared (resolved,
  rendered, its native request built), the comparison keyed, the job and its 10,000 planned
  runs written to the log, the JSONL payload built and uploaded, the batch created. Wall time
  and this process's CPU time (the client's own share; the fake runs in another process).
- **ingest**: ``job.wait()`` (one poll: the batch has ended; the output file streamed, each
  line parsed by the SDK's own model and the provider's parser, logged 500 rows per
  transaction) then ``job.frame()`` (the DataFrame): runs per second.
- **memory**: tracemalloc's peak while ingesting (``wait``) and while building the frame,
  for 1,000 and for 10,000 runs, in a pass of its own (tracemalloc slows everything).
- **reference**: ``run_many`` of the same runs live, concurrency 16, the fake answering at once.

The two sides are not interleaved (each is one long operation on a fresh job): they run one
after the other, after a warm-up of each.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from .harness import VARIABLES, Outcome, Row, Servers, publish_local, scratch_home, secs

RUNS = 10_000
CONCURRENCY = 16
SUBMIT_TARGET_S = 2.0
INGEST_TARGET = 5_000.0  # runs a second, into the log and the DataFrame


def _inputs(n: int) -> list[dict[str, Any]]:
    return [{**VARIABLES, "name": f"customer {i}"} for i in range(n)]


def _batch(inputs: list[dict[str, Any]]) -> dict[str, float]:
    """One batch comparison: submit, then ingest; its timings."""
    import pl_magic

    cpu, wall = time.process_time(), time.perf_counter()
    job = pl_magic.run_many("bench", inputs=inputs, batch=True, wait=False, reattach=False)
    submit_wall, submit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    start = time.perf_counter()
    status = job.wait()
    logged = time.perf_counter()
    df = job.frame()
    done = time.perf_counter()
    assert status.ok == len(inputs) and len(df) == len(inputs), status
    assert set(df["status"]) == {"ok"}
    return {
        "submit_wall": submit_wall,
        "submit_cpu": submit_cpu,
        "ingest_log": logged - start,
        "ingest_frame": done - logged,
        "ingest": done - start,
    }


def _memory(inputs: list[dict[str, Any]]) -> tuple[float, float]:
    """tracemalloc's peak (MB) while ingesting, and while building the frame."""
    import pl_magic

    job = pl_magic.run_many("bench", inputs=inputs, batch=True, wait=False, reattach=False)
    tracemalloc.start()
    try:
        job.wait()
        ingest = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        job.frame()
        frame = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return ingest / 1e6, frame / 1e6


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B12b."""
    import os

    import pl_magic

    n = 2_000 if quick else RUNS
    servers.reset()
    servers.use_openai()
    os.environ["PL_MAGIC_BATCH_POLL_S"] = "0.05"
    inputs = _inputs(n)
    try:
        with scratch_home():
            publish_local()
            _batch(_inputs(200))  # warm-up: imports, clients, the prices table
            pl_magic.run_many("bench", inputs=_inputs(50), concurrency=CONCURRENCY)
            servers.clear_log("provider")
            batch = _batch(inputs)
            servers.clear_log("provider")
            start = time.perf_counter()
            live_df = pl_magic.run_many("bench", inputs=inputs, concurrency=CONCURRENCY)
            live = time.perf_counter() - start
            assert set(live_df["status"]) == {"ok"}
            del live_df
            servers.clear_log("provider")
            small = _memory(_inputs(n // 10))
            large = _memory(inputs)
    finally:
        os.environ.pop("PL_MAGIC_BATCH_POLL_S", None)
    rate = n / batch["ingest"]
    total = batch["submit_wall"] + batch["ingest"]
    return Outcome(
        [
            Row(
                "B12b submit",
                f"{n:,} runs submitted in batch mode (run_many(batch=True, wait=False): "
                "prepare, key, log the job, build and upload the JSONL, create)",
                secs(batch["submit_wall"]),
                f"{secs(live)} (live run_many of the same runs, concurrency {CONCURRENCY})",
                f"{batch['submit_wall'] / live:.2f}×",
                f"≤ {SUBMIT_TARGET_S:g} s",
                batch["submit_wall"] <= SUBMIT_TARGET_S,
            ),
            Row(
                "B12b ingest",
                f"… their results ingested (job.wait() and job.frame(): parsed, logged 500 "
                "a transaction, the DataFrame)",
                f"{rate:,.0f} runs/s",
                f"{n / live:,.0f} runs/s (the live run_many end to end)",
                f"{rate / (n / live):.1f}×",
                f"≥ {INGEST_TARGET:,.0f} runs/s",
                rate >= INGEST_TARGET,
            ),
            Row(
                "B12b memory",
                f"… tracemalloc peak while ingesting {n:,} results (and {n // 10:,})",
                f"{large[0]:.1f} MB ({small[0]:.1f} MB)",
                f"building the {n:,}-row DataFrame: {large[1]:.1f} MB ({small[1]:.1f} MB)",
                f"{large[0] / max(small[0], 1e-9):.1f}× for 10× the runs",
                "flat (reported)",
                None,
            ),
        ],
        [
            f"B12b submit: {secs(batch['submit_wall'])} wall, {secs(batch['submit_cpu'])} CPU in "
            f"this process; batch total (submit + ingest) {secs(total)} against live "
            f"{secs(live)} ({live / total:.1f}× faster end to end with the provider answering "
            "at once; a real batch takes minutes to hours on the provider's side)",
            f"B12b ingest: {secs(batch['ingest_log'])} to poll, download and log {n:,} results "
            f"({n / batch['ingest_log']:,.0f} runs/s), {secs(batch['ingest_frame'])} for the "
            "DataFrame",
            f"B12b memory (tracemalloc peaks): ingesting {large[0]:.1f} MB for {n:,} runs, "
            f"{small[0]:.1f} MB for {n // 10:,}; the frame {large[1]:.1f} MB / {small[1]:.1f} MB",
        ],
    )
