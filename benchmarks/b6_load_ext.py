"""B6: ``%load_ext pl_magic`` in a fresh kernel, against ``import pandas`` in a fresh kernel.

Each measurement starts its own kernel and times the one statement inside it with
``time.perf_counter()``, so kernel start-up is not counted and nothing is imported twice.
pl_magic and pandas kernels alternate.
"""

from __future__ import annotations

import time

from .harness import (
    Outcome,
    Row,
    Servers,
    interleave,
    median,
    ms,
    paired_ratio,
    scratch_home,
    spread,
)
from .kernel import Kernel

TARGET = 0.5


def _timed_in_fresh_kernel(statement: str, env: dict[str, str]) -> dict[str, float]:
    code = (
        f"import time as _t\n_t0 = _t.perf_counter()\n{statement}\nprint(_t.perf_counter() - _t0)"
    )
    with Kernel(env=env) as kernel:
        time.sleep(0.2)  # let the kernel finish starting up (its own background imports)
        return {"total": float(kernel.stdout(code).strip())}


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B6 (the servers are not used)."""
    with scratch_home() as home:
        env = {"PL_MAGIC_HOME": str(home), "PL_MAGIC_STARTERS": "0"}
        samples = interleave(
            {
                "pl_magic": lambda: _timed_in_fresh_kernel("%load_ext pl_magic", env),
                "pandas": lambda: _timed_in_fresh_kernel("import pandas", env),
            },
            repeat=3 if quick else 9,
            warmup=1,
        )
        with Kernel(env=env) as kernel:
            loaded = kernel.stdout(
                "import sys\n%load_ext pl_magic\n"
                "print(sorted(m for m in ('pandas', 'openai', 'anthropic', 'google.genai', "
                "'httpx2', 'ipywidgets', 'jinja2', 'yaml', 'genai_prices') if m in sys.modules))"
            ).strip()
    a, b = samples["pl_magic"]["total"], samples["pandas"]["total"]
    ratio = paired_ratio(a, b)
    return Outcome(
        [
            Row(
                "B6",
                "%load_ext pl_magic in a fresh kernel",
                ms(median(a)),
                f"{ms(median(b))} (import pandas in a fresh kernel)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            )
        ],
        [
            f"B6 %load_ext pl_magic: {spread(a)}",
            f"B6 import pandas: {spread(b)}",
            f"B6 heavy modules loaded by %load_ext pl_magic: {loaded}",
        ],
    )
