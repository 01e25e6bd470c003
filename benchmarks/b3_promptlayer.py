"""B3: one ``run()`` on the PromptLayer backend against the official ``promptlayer`` SDK.

Both clients talk to the same fake PromptLayer, which answers every request 50 ms late (a
nearby PromptLayer region), and to the same fake provider (no delay), with the same
prompt and label. The official SDK, as configured by default, fetches the template
(rendered by PromptLayer), calls the provider, then logs to ``/track-request``. pl_magic
keeps the template cached (a label: ``PL_MAGIC_TEMPLATE_TTL``, 60 s), renders it itself,
calls the provider and waits for the same ``/track-request`` so that its result carries
PromptLayer's ``request_id``, as the SDK's does.
"""

from __future__ import annotations

from typing import Any

from .harness import (
    METADATA,
    PROMPTLAYER_KEY,
    TEMPLATE,
    VARIABLES,
    Outcome,
    Row,
    Servers,
    interleave,
    median,
    ms,
    paired_ratio,
    scratch_home,
    spread,
    timed,
)

TARGET = 1.8
LATENCY_S = 0.05


def run(servers: Servers, quick: bool = False) -> Outcome:
    """Measure B3."""
    import promptlayer

    import pl_magic

    servers.reset()
    servers.use_openai()
    servers.add_prompt(name="bench", template=TEMPLATE, metadata=METADATA, labels=["prod"])
    servers.set("promptlayer", latency_s=LATENCY_S)
    with scratch_home():
        ours_client = pl_magic.PromptLayer(
            api_key=PROMPTLAYER_KEY, base_url=servers.promptlayer_url
        )
        sdk = promptlayer.PromptLayer(api_key=PROMPTLAYER_KEY, base_url=servers.promptlayer_url)

        def call(client: Any) -> None:
            result = client.run(
                "bench", prompt_release_label="prod", input_variables=VARIABLES, tags=["bench"]
            )
            assert isinstance(result["request_id"], int), result["request_id"]

        before = servers.count("promptlayer")
        call(ours_client)  # fills pl_magic's template cache
        ours_requests = servers.count("promptlayer") - before
        samples = interleave(
            {"pl_magic": timed(lambda: call(ours_client)), "sdk": timed(lambda: call(sdk))},
            repeat=12 if quick else 60,
            warmup=3,
        )
        # PromptLayer requests of one more run each, cache warm
        before = servers.count("promptlayer")
        call(ours_client)
        ours_warm = servers.count("promptlayer") - before
        before = servers.count("promptlayer")
        call(sdk)
        sdk_requests = servers.count("promptlayer") - before
    a, b = samples["pl_magic"]["total"], samples["sdk"]["total"]
    speedup = paired_ratio(b, a)
    return Outcome(
        [
            Row(
                "B3",
                "one run() on the PromptLayer backend (template cached), PromptLayer answering "
                "in 50 ms",
                ms(median(a)),
                f"{ms(median(b))} (official promptlayer SDK run())",
                f"{speedup:.2f}× faster",
                f"≥ {TARGET}× faster",
                speedup >= TARGET,
            )
        ],
        [
            f"B3 pl_magic: {spread(a)}; PromptLayer requests a run: {ours_warm} "
            f"(first run, template not cached yet: {ours_requests})",
            f"B3 official SDK: {spread(b)}; PromptLayer requests a run: {sdk_requests}",
        ],
    )
