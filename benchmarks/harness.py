"""What the benchmarks share: the fake servers, a scratch PL_MAGIC_HOME, side-by-side timing,
medians, the machine's description and the rows of the results table.

Every figure is a ratio of two things measured in the same run, against the same fake
servers on 127.0.0.1: the pl_magic side and its baseline are *interleaved* (A B, B A,
A B, ...) after a warm-up, so both see the same machine state, and the medians of the
repeated measurements are compared.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The fake keys the benchmarks use (the fakes accept anything for providers).
OPENAI_KEY = "sk-bench-not-a-secret"
PROMPTLAYER_KEY = "pl_bench_not_a_secret"


def offline_environment() -> None:
    """The tests' offline safety net (tests/fakes/offline.py), for the benchmark run."""
    from tests.fakes.offline import apply_offline_environment

    apply_offline_environment()


# -- results -------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    id: str
    what: str
    ours: str  # pl_magic's absolute figure, formatted
    baseline: str  # the baseline's absolute figure, formatted
    ratio: str  # formatted
    target: str
    met: bool | None  # None: reported, no target


@dataclass
class Outcome:
    """What one benchmark module returns: its rows and a few lines of detail."""

    rows: list[Row]
    details: list[str] = field(default_factory=list)


def ms(seconds: float) -> str:
    """Seconds as milliseconds with sensible precision."""
    value = seconds * 1000
    return (
        f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    )


def secs(seconds: float) -> str:
    """Seconds, 2 decimals (or ms when small)."""
    return ms(seconds) if seconds < 1 else f"{seconds:.2f} s"


def spread(samples: list[float]) -> str:
    """``median (min–max, n=N)`` in ms, for the details section."""
    return (
        f"median {ms(statistics.median(samples))} "
        f"(min {ms(min(samples))}, max {ms(max(samples))}, n={len(samples)})"
    )


# -- timing --------------------------------------------------------------------------------

Measure = Callable[[], Mapping[str, float]]


def timed(fn: Callable[[], Any]) -> Measure:
    """A measure returning ``{"total": seconds}`` for one call of ``fn``."""

    def measure() -> dict[str, float]:
        start = time.perf_counter()
        fn()
        return {"total": time.perf_counter() - start}

    return measure


def interleave(
    sides: Mapping[str, Measure], repeat: int, warmup: int = 3
) -> dict[str, dict[str, list[float]]]:
    """Run each side ``warmup`` times, then ``repeat`` times interleaved.

    The order alternates every round (A B, then B A) so that neither side always runs
    right after the other. After the warm-up the heap is collected once and frozen (what
    exists then is never scanned again), so that the collections during the measurements
    are those each side's own garbage causes. No collection is forced between
    measurements: that flushes the CPU caches, and every run would then start cold.
    Returns ``{side: {metric: [samples]}}``.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            sides[name]()
    gc.collect()
    gc.freeze()
    out: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for i in range(repeat):
        for name in names if i % 2 == 0 else reversed(names):
            for metric, value in sides[name]().items():
                out[name].setdefault(metric, []).append(value)
    gc.unfreeze()
    return out


def median(samples: list[float]) -> float:
    """The median."""
    return statistics.median(samples)


def paired_ratio(ours: list[float], baseline: list[float]) -> float:
    """The median of the per-round ratios ``ours[i] / baseline[i]``.

    Each pl_magic measurement is set against the baseline measured next to it in the same
    round of :func:`interleave`, so a machine that is busier for a while (or switches
    between two speeds) moves both sides of a pair alike; a ratio of the two medians can
    pair a fast sample with a slow one.
    """
    return statistics.median(a / b for a, b in zip(ours, baseline, strict=True))


# -- a scratch home ------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_home(prefix: str = "pl_magic_bench_") -> Iterator[Path]:
    """A fresh, empty PL_MAGIC_HOME (no starter prompts) for the duration of the block."""
    saved = {k: os.environ.get(k) for k in ("PL_MAGIC_HOME", "PL_MAGIC_STARTERS")}
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        os.environ["PL_MAGIC_HOME"] = home
        os.environ["PL_MAGIC_STARTERS"] = "0"
        try:
            yield Path(home)
        finally:
            from pl_magic.core import store

            with store._open_lock:  # close this home's database before it is deleted
                for key in [k for k in store._open if k[1].startswith(str(Path(home)))]:
                    store._open.pop(key).close()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


# -- the fake servers ----------------------------------------------------------------------


class Servers:
    """The fake provider and PromptLayer servers, running in a subprocess (see serve.py)."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake servers did not start (see the error above)")
        urls = json.loads(line)
        self.provider_url: str = urls["provider"]
        self.openai_base_url: str = urls["openai_base_url"]
        self.promptlayer_url: str = urls["promptlayer"]
        self.set("promptlayer", api_keys=[PROMPTLAYER_KEY])

    def _call(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if not answer["ok"]:
            raise RuntimeError(f"fake servers: {answer['error']}")
        return answer["value"]

    def set(self, server: str, **knobs: Any) -> None:
        """Set knobs of the ``provider`` or the ``promptlayer`` fake."""
        self._call(op="set", server=server, knobs=knobs)

    def reset(self) -> None:
        """Both fakes back to their defaults (the benchmark key stays accepted)."""
        self._call(op="reset")

    def add_prompt(self, **args: Any) -> int:
        """A prompt version on the fake PromptLayer; its version number."""
        return int(self._call(op="add_prompt", args=args))

    def count(self, server: str, kind: str | None = None) -> int:
        """Requests the fake received (of one kind, or all)."""
        return int(self._call(op="count", server=server, kind=kind))

    def last_body(self, server: str, kind: str) -> Any:
        """The JSON body of the latest request of ``kind``."""
        return self._call(op="last_body", server=server, kind=kind)

    def clear_log(self, server: str) -> None:
        """Forget the requests received so far (long benchmarks keep memory flat)."""
        self._call(op="clear_log", server=server)

    def use_openai(self) -> None:
        """OPENAI_API_KEY and OPENAI_BASE_URL for this process (and its kernels)."""
        os.environ["OPENAI_API_KEY"] = OPENAI_KEY
        os.environ["OPENAI_BASE_URL"] = self.openai_base_url

    def close(self) -> None:
        """Stop the subprocess."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the benchmark prompt ------------------------------------------------------------------

#: A realistic chat template: a system message and a user message with two variables.
TEMPLATE = {
    "type": "chat",
    "messages": [
        {
            "role": "system",
            "content": [{"type": "text", "text": "You are a concise support agent for {product}."}],
            "template_format": "f-string",
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "Customer {name} writes: {message}"}],
            "template_format": "f-string",
        },
    ],
}
METADATA = {
    "model": {
        "provider": "openai",
        "name": "gpt-4o-mini",
        "parameters": {"temperature": 0.2, "max_tokens": 256},
    }
}
VARIABLES = {"product": "pl_magic", "name": "Ada", "message": "I cannot log in since this morning."}


def publish_local(name: str = "bench", labels: tuple[str, ...] = ("prod",)) -> None:
    """Publish the benchmark prompt to the local registry of the current PL_MAGIC_HOME."""
    import pl_magic

    pl_magic.publish(
        {
            "prompt_name": name,
            "prompt_template": TEMPLATE,
            "metadata": METADATA,
            "release_labels": list(labels),
        }
    )


def prepared_request(name: str = "bench", stream: bool = False, **run: Any) -> dict[str, Any]:
    """The native request pl_magic sends for a run (``Engine.prepare(...).request``)."""
    from pl_magic.client import default_client
    from pl_magic.engine.engine import RunOptions

    options = RunOptions.build(name, input_variables=VARIABLES, stream=stream, **run)
    return dict(default_client().engine.prepare(options).request)


def raw_openai_client() -> Any:
    """An OpenAI client configured as pl_magic configures its own (retries, timeout)."""
    import openai

    from pl_magic.core.config import provider_max_retries, provider_timeout_s

    return openai.OpenAI(
        api_key=os.environ["OPENAI_API_KEY"],
        base_url=os.environ["OPENAI_BASE_URL"],
        max_retries=provider_max_retries(),
        timeout=provider_timeout_s(),
    )


# -- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else platform)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of some distributions."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, str]:
    """What the results were measured on."""
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
