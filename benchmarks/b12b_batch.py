"""B12b: 10,000 runs in batch mode against a live ``run_many`` of the same 10,000.

The comparison: 2 prompt versions × 2,500 input rows × 2 repeats, one model (OpenAI's, on the
fake provider in its own process, answering at once: the upload and the create are
acknowledged as they arrive, and a status read ends the batch).

- **submit**: ``run_many(..., batch=True, wait=False)``: every run prepared (its template
  resolved, its input rendered, its native request built), the comparison keyed, the job and
  its 10,000 planned runs written to the log, the JSONL payload built and uploaded, the batch
  created. Wall time, and this process's CPU time (the client's own share: the fake runs in
  another process).
- **ingest**: once the batch has ended on the fake (a raw status read first, so that the fake's
  own work of answering 10,000 requests is not counted as the client's), ``job.wait()`` (one
  poll: the output file streamed, each line parsed by the SDK's model and the provider's own
  parser, logged 400 rows per transaction) then ``job.frame()`` (the DataFrame): runs a second.
- **memory**: tracemalloc's peak while ingesting (``wait``) and while building the frame, for
  a tenth of the runs and for all of them, in a pass of its own (tracemalloc slows everything).
- **reference**: ``run_many`` of the same runs live, concurrency 16, the fake answering at once.

The sides are not interleaved (each is one long operation on a fresh job): they run one
after the other, after a warm-up of each. The batch side runs three times, each a fresh job
of the same comparison; the table gives the medians, the details every pass.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from .harness import (
    VARIABLES,
    Outcome,
    Row,
    Servers,
    median,
    publish_local,
    raw_openai_client,
    scratch_home,
    secs,
)

RUNS = 10_000
#: Batch passes (submit + ingest, each a fresh job); the medians are reported (one pass
#: varied by a quarter from run to run on a shared machine).
PASSES = 3
CONCURRENCY = 16
SUBMIT_TARGET_S = 2.0
INGEST_TARGET = 5_000.0  # runs a second, into the log and the DataFrame


def _inputs(n: int) -> list[dict[str, Any]]:
    return [{**VARIABLES, "name": f"customer {i}"} for i in range(n)]


def _comparison(rows: int, **kwargs: Any) -> Any:
    import pl_magic

    return pl_magic.run_many(
        "bench", versions=[1, 2], inputs=_inputs(rows), repeat=2, concurrency=CONCURRENCY, **kwargs
    )


def _end_on_the_provider(job: Any) -> None:
    """Read each provider job's status with the raw SDK: the fake ends it (and answers its
    requests) now, before the client's ingest is timed."""
    client = raw_openai_client()
    for part in job.status().parts:
        assert client.batches.retrieve(part.provider_job_id).status == "completed"


def _batch(rows: int) -> dict[str, float]:
    """One batch comparison: submit, then ingest; its timings."""
    cpu, wall = time.process_time(), time.perf_counter()
    job = _comparison(rows, batch=True, wait=False, reattach=False)
    submit_wall, submit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    _end_on_the_provider(job)
    cpu, start = time.process_time(), time.perf_counter()
    status = job.wait()
    logged = time.perf_counter()
    df = job.frame()
    done = time.perf_counter()
    ingest_cpu = time.process_time() - cpu
    assert status.ok == rows * 4 and len(df) == rows * 4, status
    assert set(df["status"]) == {"ok"}
    return {
        "submit_wall": submit_wall,
        "submit_cpu": submit_cpu,
        "ingest_log": logged - start,
        "ingest_frame": done - logged,
        "ingest": done - start,
        "ingest_cpu": ingest_cpu,
    }


def _memory(rows: int) -> tuple[float, float]:
    """tracemalloc's peak (MB) while ingesting, and while building the frame."""
    job = _comparison(rows, batch=True, wait=False, reattach=False)
    _end_on_the_provider(job)
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

    rows = (2_000 if quick else RUNS) // 4
    n = rows * 4
    servers.reset()
    servers.use_openai()
    os.environ["PL_MAGIC_BATCH_POLL_S"] = "0.05"
    try:
        with scratch_home():
            publish_local()
            publish_local()  # version 2
            _batch(50)  # warm-up: imports, clients, the prices table
            _comparison(12)
            passes = []
            for _ in range(PASSES):
                servers.clear_log("provider")
                passes.append(_batch(rows))
            batch = {k: median([p[k] for p in passes]) for k in passes[0]}
            servers.clear_log("provider")
            start = time.perf_counter()
            live_df = _comparison(rows)
            live = time.perf_counter() - start
            assert set(live_df["status"]) == {"ok"} and len(live_df) == n
            del live_df
            servers.clear_log("provider")
            small = _memory(rows // 10)
            large = _memory(rows)
            assert len(pl_magic.batches()) == 3 + PASSES  # warm-up, passes, memory (2)
    finally:
        os.environ.pop("PL_MAGIC_BATCH_POLL_S", None)
    rate = n / batch["ingest"]
    total = batch["submit_wall"] + batch["ingest"]
    return Outcome(
        [
            Row(
                "B12b submit",
                f"{n:,} runs (2 versions × {rows:,} inputs × 2 repeats) submitted in batch "
                "mode: run_many(batch=True, wait=False), fake provider answering at once",
                f"{secs(batch['submit_wall'])} ({secs(batch['submit_cpu'])} CPU)",
                f"{secs(live)} (live run_many of the same runs, concurrency {CONCURRENCY})",
                f"{batch['submit_wall'] / live:.2f}×",
                f"≤ {SUBMIT_TARGET_S:g} s",
                batch["submit_wall"] <= SUBMIT_TARGET_S,
            ),
            Row(
                "B12b ingest",
                "… their results ingested into the log and the DataFrame (job.wait(), job.frame())",
                f"{rate:,.0f} runs/s ({n / batch['ingest_cpu']:,.0f}/s of CPU)",
                f"{n / live:,.0f} runs/s (the live run_many end to end)",
                f"{rate / (n / live):.1f}×",
                f"≥ {INGEST_TARGET:,.0f} runs/s",
                rate >= INGEST_TARGET,
            ),
            Row(
                "B12b memory",
                f"… tracemalloc peak while ingesting {n:,} results ({n // 10:,})",
                f"{large[0]:.1f} MB ({small[0]:.1f} MB)",
                f"the {n:,}-row DataFrame: {large[1]:.1f} MB ({small[1]:.1f} MB)",
                f"{large[0] / max(small[0], 1e-9):.1f}× for 10× the runs",
                "flat (reported)",
                None,
            ),
        ],
        [
            f"B12b submit: {secs(batch['submit_wall'])} wall, {secs(batch['submit_cpu'])} CPU in "
            f"this process; batch total (submit + ingest) {secs(total)} against live "
            f"{secs(live)} ({live / total:.1f}× less with the provider answering at once; a "
            "real batch takes minutes to hours on the provider's side)",
            f"B12b ingest: {secs(batch['ingest_log'])} to poll, download and log {n:,} results "
            f"({n / batch['ingest_log']:,.0f} runs/s), {secs(batch['ingest_frame'])} for the "
            f"DataFrame; {secs(batch['ingest_cpu'])} CPU in all",
            "B12b passes (submit s / ingest runs/s): "
            + ", ".join(f"{p['submit_wall']:.2f} / {n / p['ingest']:,.0f}" for p in passes)
            + f" (medians in the table, n={PASSES})",
            f"B12b memory (tracemalloc peaks): ingesting {large[0]:.1f} MB for {n:,} runs, "
            f"{small[0]:.1f} MB for {n // 10:,}; the frame {large[1]:.1f} MB / {small[1]:.1f} MB",
        ],
    )
