"""B5: a 5,000-chunk stream shown by ``%%plrun`` in a real kernel, against the same stream
consumed without display.

One kernel (jupyter_client, as tests/test_notebook_kernel.py drives it) runs, interleaved,
a ``%%plrun`` cell and a cell that iterates ``pl_magic.run(..., stream=True)`` and shows
nothing. Each cell's time runs from the execute request to the kernel going idle, as the
person at the notebook sees it. The display rate while streaming is the number of
``update_display_data`` messages before the final one (the complete reply and its
footer, always sent) over the time from the view's first display to that final update;
the details also give the rate counting the final update.
"""

from __future__ import annotations

import json

from .harness import (
    VARIABLES,
    Outcome,
    Row,
    Servers,
    interleave,
    median,
    ms,
    paired_ratio,
    publish_local,
    scratch_home,
    spread,
)
from .kernel import Kernel

CHUNKS = 5000
TARGET = 1.2
TARGET_RATE = 20.0

_BODY = "".join(f"{k}: {v}\n" for k, v in VARIABLES.items())
MAGIC_CELL = "%%plrun bench@prod\n" + _BODY
PLAIN_CELL = (
    "for _chunk in pl_magic.run('bench', prompt_release_label='prod', "
    f"input_variables={json.dumps(VARIABLES)}, stream=True):\n    pass\n"
    "assert _chunk['request_id']"
)


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B5."""
    servers.reset()
    servers.use_openai()
    servers.set("provider", stream_chunks=[str(i % 10) for i in range(CHUNKS)])
    rates: list[float] = []
    all_rates: list[float] = []
    counts: list[float] = []
    with scratch_home() as home:
        publish_local()
        kernel = Kernel(env={"PL_MAGIC_HOME": str(home), "PL_MAGIC_STARTERS": "0"})
        try:
            kernel.execute("%load_ext pl_magic\nimport pl_magic")

            def magic() -> dict[str, float]:
                _, messages = kernel.execute(MAGIC_CELL)
                sent, end = messages[0][0], messages[-1][0]
                shown = [t for t, m in messages[1:] if m["msg_type"] == "display_data"]
                updates = [t for t, m in messages[1:] if m["msg_type"] == "update_display_data"]
                final = messages[-2][1] if len(messages) > 1 else None
                assert updates and final is not None
                duration = max(updates[-1] - shown[0], 1e-9)
                rates.append((len(updates) - 1) / duration)
                all_rates.append(len(updates) / duration)
                counts.append(len(updates))
                return {"total": end - sent}

            def plain() -> dict[str, float]:
                _, messages = kernel.execute(PLAIN_CELL)
                return {"total": messages[-1][0] - messages[0][0]}

            samples = interleave(
                {"plrun": magic, "plain": plain}, repeat=4 if quick else 15, warmup=2
            )
        finally:
            kernel.stop()
    warm = len(rates) - len(samples["plrun"]["total"])
    rates, all_rates, counts = rates[warm:], all_rates[warm:], counts[warm:]
    a, b = samples["plrun"]["total"], samples["plain"]["total"]
    ratio = paired_ratio(a, b)
    rate = max(rates)
    return Outcome(
        [
            Row(
                "B5 time",
                f"a {CHUNKS:,}-chunk stream shown by %%plrun in a real kernel: total time",
                ms(median(a)),
                f"{ms(median(b))} (the same stream consumed without display)",
                f"{ratio:.2f}×",
                f"≤ {TARGET}×",
                ratio <= TARGET,
            ),
            Row(
                "B5 rate",
                "… display updates a second while streaming, the final one aside (highest of "
                "the runs)",
                f"{rate:.1f}/s",
                f"{median(counts):.0f} updates a run, the final one included",
                "—",
                f"≤ {TARGET_RATE:.0f}/s",
                rate <= TARGET_RATE,
            ),
        ],
        [
            f"B5 %%plrun cell: {spread(a)}; display updates a run: {sorted(counts)}; "
            f"rates/s while streaming: {', '.join(f'{r:.1f}' for r in rates)}; counting "
            f"the final update too: {', '.join(f'{r:.1f}' for r in all_rates)}",
            f"B5 plain stream cell: {spread(b)}",
        ],
    )
