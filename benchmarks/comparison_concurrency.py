"""A 48-run comparison at concurrency 8 against a fake server adding 100 ms per request.

Reports the wall time as a ratio of the ideal ``ceil(48 / 8) × 100 ms`` and of the serial
``48 × 100 ms``, measured side by side in one run (no timed asserts anywhere).

    .venv/bin/python -m benchmarks.comparison_concurrency
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time

DELAY_S = 0.1
RUNS = 48
CONCURRENCY = 8


def main() -> None:
    """Run the measurement and print the ratios."""
    from tests.fakes.provider_server import FakeProviderServer

    os.environ["PL_MAGIC_HOME"] = tempfile.mkdtemp(prefix="pl_magic_bench_")
    os.environ["OPENAI_API_KEY"] = "sk-bench"
    import pl_magic

    with FakeProviderServer() as server:
        os.environ["OPENAI_BASE_URL"] = server.openai_base_url
        pl_magic.publish(
            {
                "prompt_name": "bench",
                "prompt_template": {
                    "type": "chat",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi {n}"}]}],
                },
                "metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}},
            }
        )
        pl_magic.run_many("bench", input_variables={"n": 0}, repeat=2)  # warm clients up
        server.delay_s = DELAY_S
        times = []
        for _ in range(3):
            start = time.perf_counter()
            df = pl_magic.run_many(
                "bench",
                models="gpt-4o-mini,gpt-4.1-mini,gpt-4.1-nano",
                repeat=RUNS // 3,
                input_variables={"n": 1},
                concurrency=CONCURRENCY,
            )
            times.append(time.perf_counter() - start)
            assert len(df) == RUNS and set(df["status"]) == {"ok"}
    wall = statistics.median(times)
    ideal = math.ceil(RUNS / CONCURRENCY) * DELAY_S
    serial = RUNS * DELAY_S
    print(f"{RUNS} runs, concurrency {CONCURRENCY}, server delay {DELAY_S * 1000:.0f} ms")
    print(f"median wall time: {wall:.3f} s (runs: {', '.join(f'{t:.3f}' for t in times)})")
    print(
        f"ideal {ideal:.2f} s → ratio {wall / ideal:.2f}×; serial {serial:.1f} s → "
        f"{serial / wall:.1f}× faster than serial"
    )


if __name__ == "__main__":
    main()
