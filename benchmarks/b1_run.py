"""B1: one non-streamed ``run()`` (local registry and run log) against the raw openai SDK.

The baseline sends the very request pl_magic sends (``Engine.prepare(...).request``) with
a reused ``openai.OpenAI`` client configured like pl_magic's (retries, timeout), and reads
the reply's text. pl_magic's side is everything ``pl_magic.run()`` does: registry lookup,
render, the call, parsing, cost, the SQLite log write and the result's blueprint. The fake
provider answers with no delay, so the ratio shows pl_magic's whole overhead.
"""

from __future__ import annotations

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
    timed,
)

TARGET = 1.3


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B1."""
    import pl_magic

    servers.reset()
    servers.use_openai()
    with scratch_home():
        publish_local()
        request = prepared_request()
        client = raw_openai_client()

        def ours() -> None:
            result: Any = pl_magic.run("bench", input_variables=VARIABLES)
            assert result["request_id"]

        def raw() -> None:
            reply = client.chat.completions.create(**request)
            assert reply.choices[0].message.content

        samples = interleave(
            {"pl_magic": timed(ours), "raw": timed(raw)}, repeat=40 if quick else 500, warmup=20
        )
        logged = len(pl_magic.runs())
    a, b = samples["pl_magic"]["total"], samples["raw"]["total"]
    ratio = paired_ratio(a, b)
    return Outcome(
        [
            Row(
                "B1",
                "one non-streamed run(), local registry + log, provider with no delay",
                ms(median(a)),
                f"{ms(median(b))} (raw openai SDK, same request)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            )
        ],
        [
            f"B1 pl_magic.run(): {spread(a)}",
            f"B1 raw client.chat.completions.create(): {spread(b)}",
            f"B1 overhead: {ms(median(a) - median(b))} a run ({logged} runs logged)",
        ],
    )
