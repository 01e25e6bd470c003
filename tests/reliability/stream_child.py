"""A long stream consumed in a process of its own, measured (used by test_size.py).

    python -m tests.reliability.stream_child api|magic PROMPT

The environment names the fake provider server (OPENAI_BASE_URL) and the home. Streams the
prompt once through ``pl_magic.run(stream=True)`` (``api``) or ``%%plrun`` in a terminal
IPython (``magic``: the RunView prints as text arrives) and prints one JSON line: chunks,
characters, seconds, the time per chunk near the start and near the end of the stream (a
cost that grows with the text so far shows as a late/early ratio well above 1), and the
resident memory before the stream and its peak during it (sampled every 1,000 chunks;
tracemalloc would slow the SDK's per-chunk parsing several times over).
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import statistics
import sys
import time
from typing import Any

import pl_magic

WARM = 2_000  # chunks (or writes) skipped before the first timing window
WINDOW = 5_000


def _rss_mb() -> float:
    """The resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


class _Clock:
    """Timestamps of every event; the early and late windows give the per-chunk costs.
    Samples the resident memory every 1,000 events."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.rss_max = _rss_mb()

    def tick(self) -> None:
        self.times.append(time.perf_counter())
        if len(self.times) % 1000 == 0:
            self.rss_max = max(self.rss_max, _rss_mb())

    def ratio(self) -> float:
        """Median time per chunk over the last window / over an early one (medians: a
        pause of the machine does not count, a cost paid by every late chunk does)."""
        t = self.times
        if len(t) < WARM + 2 * WINDOW:
            return 1.0
        early = statistics.median(
            b - a for a, b in zip(t[WARM : WARM + WINDOW], t[WARM + 1 :], strict=False)
        )
        late = statistics.median(
            b - a for a, b in zip(t[-WINDOW - 1 : -1], t[-WINDOW:], strict=True)
        )
        return late / early if early > 0 else float("inf")


class _Sink(io.TextIOBase):
    """Stands in for the terminal: counts what the magic prints, keeps the end of it."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.chars = 0
        self.tail = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self.clock.tick()
            self.chars += len(text)
            self.tail = (self.tail + text)[-300:]
        return len(text)


def _api(prompt: str, clock: _Clock) -> dict[str, Any]:
    chunks, text = 0, ""
    for chunk in pl_magic.run(prompt, stream=True):
        clock.tick()
        chunks += 1
        last = chunk
    text = last["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"]
    return {"chunks": chunks, "chars": len(text), "request_id": last["request_id"]}


def _magic(prompt: str, clock: _Clock) -> dict[str, Any]:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    sink = _Sink(clock)
    real, sys.stdout = sys.stdout, sink
    try:
        ip.run_line_magic("plrun", f"{prompt} --out result")
    finally:
        sys.stdout = real
    result = ip.user_ns["result"]
    return {
        "chunks": len(clock.times),
        "chars": sink.chars,
        "tail": sink.tail,
        "request_id": result["request_id"],
    }


def main(mode: str, prompt: str) -> None:
    # warm up (not measured): imports, the shell, the SDK client and its connection, with a
    # prompt whose model the fake server answers with a quick 404
    if mode == "magic":
        from IPython.core.interactiveshell import InteractiveShell

        InteractiveShell.instance().run_line_magic("load_ext", "pl_magic")
    with contextlib.suppress(pl_magic.errors.ProviderError):
        pl_magic.run(prompt + "-warm")
    before = _rss_mb()
    clock = _Clock()
    started = time.perf_counter()
    out = (_api if mode == "api" else _magic)(prompt, clock)
    out.update(
        seconds=time.perf_counter() - started,
        ratio=clock.ratio(),
        rss_before_mb=before,
        rss_peak_mb=max(clock.rss_max, _rss_mb()),
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
