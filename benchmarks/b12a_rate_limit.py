"""B12a: 1,000 runs at concurrency 64 against a provider enforcing a requests-a-minute limit.

The fake provider admits a number of requests a minute (a token bucket holding one second's
worth) and answers the others 429 at once with ``retry-after`` / ``retry-after-ms`` and
OpenAI's ``x-ratelimit-*`` headers. Each admitted request takes a delay chosen so that
the limit admits :data:`AT_ONCE` calls at a time: concurrency 64 asks for about ten times
what the provider takes.

Two modes, side by side in one run, each from a fresh limiter and a full bucket:

- **adaptive** (pl_magic's default): the limiter backs off on 429s, pauses for their
  ``retry-after`` and grows back as calls succeed (:mod:`pl_magic.engine.limiter`);
- **fixed**: ``PL_MAGIC_ADAPTIVE_CONCURRENCY=0``, 64 runs at a time whatever the answers,
  each run relying on the SDK's own retries (``PL_MAGIC_MAX_RETRIES``, 2) as before.

Reported: the throughput of runs that ended ok as a share of the limit's (the best any client
could do: ``(runs − burst) / rate + delay`` seconds for all of them), the runs lost (not ok)
and the 429s the provider sent.

The limit is the issue's, 600 requests a minute (the adaptive mode then takes about 100 s);
``--quick`` doubles it (1,200 a minute, half the delay: the same shape in half the time) and
``PL_MAGIC_BENCH_B12A_RPM`` sets it. Scaled ten times (6,000 a minute) it measures nothing on a
2-core machine: the client alone tops out near 100 runs a second there, so the limit is never
reached (no 429 in either mode).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .harness import (
    VARIABLES,
    Outcome,
    Row,
    Servers,
    publish_local,
    scratch_home,
    secs,
)

RUNS = 1000
CONCURRENCY = 64
#: The limit, requests a minute: the issue's, and ``--quick``'s.
RPM, QUICK_RPM = 600, 1200
#: How many calls the limit admits at a time: the provider's delay is chosen for it.
AT_ONCE = 6
TARGET = 0.90


@dataclass(frozen=True)
class Shape:
    """The provider's limit and delay."""

    rpm: float

    @property
    def rate(self) -> float:
        """Requests a second."""
        return self.rpm / 60

    @property
    def delay_s(self) -> float:
        """Each admitted request's time: the limit admits ``AT_ONCE`` at a time."""
        return AT_ONCE / self.rate

    @property
    def burst(self) -> float:
        """The bucket: one second's worth of requests."""
        return self.rate

    @property
    def ideal_s(self) -> float:
        """The least time any client needs for every run under this limit."""
        return (RUNS - self.burst) / self.rate + self.delay_s


def _mode(
    servers: Servers, shape: Shape, adaptive: bool, inputs: list[dict[str, str]]
) -> dict[str, float]:
    """One comparison of RUNS runs in one mode: wall time, runs ok, 429s sent."""
    import pl_magic
    from pl_magic.engine import limiter

    servers.reset()  # a full bucket, no log
    servers.set(
        "provider", rate_limit_rpm=shape.rpm, rate_limit_burst=shape.burst, delay_s=shape.delay_s
    )
    limiter.reset()  # nothing learnt from the previous mode
    os.environ["PL_MAGIC_ADAPTIVE_CONCURRENCY"] = "1" if adaptive else "0"
    try:
        start = time.perf_counter()
        df = pl_magic.run_many("bench", inputs=inputs, concurrency=CONCURRENCY)
        wall = time.perf_counter() - start
    finally:
        os.environ.pop("PL_MAGIC_ADAPTIVE_CONCURRENCY", None)
    ok = int((df["status"] == "ok").sum())
    requests = servers.count("provider")
    state = next(iter(limiter.limiters().values())).snapshot()
    return {
        "wall": wall,
        "ok": ok,
        "lost": RUNS - ok,
        "rate_limited": requests - ok,  # every other request was answered 429
        "throughput": ok / wall,
        "decreases": float(state["decreases"] or 0),
    }


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B12a."""
    import pl_magic

    servers.reset()
    servers.use_openai()
    rpm = os.environ.get("PL_MAGIC_BENCH_B12A_RPM")
    shape = Shape(float(rpm) if rpm else QUICK_RPM if quick else RPM)
    inputs = [{**VARIABLES, "name": f"customer {i}"} for i in range(RUNS)]
    rate, ideal = shape.rate, shape.ideal_s
    with scratch_home():
        publish_local()
        pl_magic.run_many("bench", inputs=inputs[:16], concurrency=16)  # warm-up, no limit
        measured = {adaptive: _mode(servers, shape, adaptive, inputs) for adaptive in (True, False)}
    limit = (
        f"{secs(ideal)}, {RUNS / ideal:.1f} runs/s (the limit: ({RUNS} − {shape.burst:g} burst) "
        f"/ {rate:g} a second + {shape.delay_s * 1000:.0f} ms)"
    )
    rows, details = [], []
    for adaptive, m in measured.items():
        share = m["throughput"] / (RUNS / ideal)
        lost = int(m["lost"])
        how = (
            "adaptive concurrency (the default)"
            if adaptive
            else "fixed concurrency (PL_MAGIC_ADAPTIVE_CONCURRENCY=0: the SDK's retries only)"
        )
        rows.append(
            Row(
                f"B12a {'adaptive' if adaptive else 'fixed'}",
                f"{RUNS} runs through run_many at concurrency {CONCURRENCY}, provider admitting "
                f"{shape.rpm:,.0f} requests a minute (429 + retry-after beyond), {how}: "
                "throughput of the runs that ended ok, as a share of the limit's",
                f"{secs(m['wall'])}, {m['throughput']:.1f} ok runs/s, "
                + (f"{lost} of {RUNS} runs lost" if lost else "no run lost"),
                limit,
                f"{share:.0%}",
                "≥ 90 %, no run lost" if adaptive else "reported",
                share >= TARGET and lost == 0 if adaptive else None,
            )
        )
        details.append(
            f"B12a {'adaptive' if adaptive else 'fixed'}: {secs(m['wall'])}, {int(m['ok'])} ok, "
            f"{lost} lost (rate_limit after the SDK's retries), "
            f"{int(m['rate_limited'])} 429s sent by the provider"
            + (f", {int(m['decreases'])} window decreases" if adaptive else "")
        )
    return Outcome(rows, details)
