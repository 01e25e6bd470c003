"""One of the processes of the concurrency test (test_concurrency.py).

    python -m tests.reliability.concurrent_runs RUNS THREADS TAG [--publish]

Makes RUNS ``pl_magic.run()`` calls of the prompt ``count`` (THREADS at a time) into the
PL_MAGIC_HOME and against the OPENAI_BASE_URL of its environment, each tagged TAG, and
prints one JSON line: how many returned a result, and the message of every error.
``--publish`` first publishes ``count`` itself (a new version), so that two processes
can also create and migrate a new file at the same moment.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pl_magic


def _one(i: int, tag: str) -> str | None:
    try:
        result = pl_magic.run("count", input_variables={"i": i}, tags=[tag])
        assert isinstance(result, dict) and result["request_id"]
        return None
    except Exception as exc:  # reported, never raised: the test reads every one of them
        return f"{type(exc).__name__}: {exc}"


def main(runs: int, threads: int, tag: str, publish: bool = False) -> None:
    started = time.perf_counter()
    if publish:
        pl_magic.publish(
            {
                "prompt_name": "count",
                "prompt_template": {
                    "type": "chat",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "{i}"}]}],
                },
                "metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}},
            }
        )
    with ThreadPoolExecutor(threads) as pool:
        errors = [e for e in pool.map(lambda i: _one(i, tag), range(runs)) if e]
    print(
        json.dumps(
            {"ok": runs - len(errors), "errors": errors, "seconds": time.perf_counter() - started}
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], "--publish" in sys.argv[4:])
