"""B2: one streamed ``run()`` against raw openai SDK streaming of the same request.

Both sides send the request pl_magic builds (``stream=True`` with
``stream_options.include_usage``), with reused clients. Time to first token is the time to
the first chunk carrying non-empty text; total time runs until the iterator is exhausted
(for pl_magic that includes the final chunk: the log write and the ``request_id``). The
fake provider streams a 600-character reply as 150 deltas with no delay between them, the
hardest case for per-chunk overhead.
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
    prepared_request,
    publish_local,
    raw_openai_client,
    scratch_home,
    spread,
)

TARGET = 1.1
REPLY = ("Thanks for writing, Ada. Try resetting your password from the sign-in page. " * 8)[:600]


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B2."""
    import pl_magic
    from pl_magic.core.blueprint import reply_text

    servers.reset()
    servers.set("provider", reply_text=REPLY, chunk_size=4)
    servers.use_openai()
    with scratch_home():
        publish_local()
        request = prepared_request(stream=True)
        client = raw_openai_client()

        def ours() -> dict[str, float]:
            start = time.perf_counter()
            ttft = None
            final: Any = None
            chunks: Any = pl_magic.run("bench", input_variables=VARIABLES, stream=True)
            for chunk in chunks:
                if ttft is None and reply_text(chunk["prompt_blueprint"]):
                    ttft = time.perf_counter() - start
                final = chunk
            total = time.perf_counter() - start
            assert final["request_id"] and ttft is not None
            return {"ttft": ttft, "total": total}

        def raw() -> dict[str, float]:
            start = time.perf_counter()
            ttft = None
            parts = []
            for chunk in client.chat.completions.create(**request):
                if chunk.choices and chunk.choices[0].delta.content:
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    parts.append(chunk.choices[0].delta.content)
            total = time.perf_counter() - start
            assert "".join(parts) == REPLY and ttft is not None
            return {"ttft": ttft, "total": total}

        samples = interleave({"pl_magic": ours, "raw": raw}, repeat=30 if quick else 300, warmup=20)
    rows, details = [], []
    for metric, what in (("ttft", "time to first token"), ("total", "total time")):
        a, b = samples["pl_magic"][metric], samples["raw"][metric]
        ratio = paired_ratio(a, b)
        rows.append(
            Row(
                f"B2 {metric}",
                f"one streamed run() (150 chunks, no delay): {what}",
                ms(median(a)),
                f"{ms(median(b))} (raw openai SDK stream)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            )
        )
        details.append(f"B2 {metric} pl_magic: {spread(a)}; raw: {spread(b)}")
    return Outcome(rows, details)
