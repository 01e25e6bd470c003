"""Bad-input rows for the drop-in clients, ``pl_magic.PromptLayer`` and
``pl_magic.AsyncPromptLayer`` (gathered by :mod:`tests.reliability.catalogue`)."""

from __future__ import annotations

from tests.reliability.case import Case

CASES: list[Case] = [
    Case(
        "dropin-templates-all-page-text",
        "run()",
        "wrong type",
        'pl_magic.PromptLayer().templates.all(page="x")',
        "InvalidInputError",
        "e.g. templates.all(page=1, per_page=30)",
    ),
    Case(
        "dropin-templates-all-per-page-zero",
        "run()",
        "wrong type",
        "pl_magic.PromptLayer().templates.all(per_page=0)",
        "InvalidInputError",
        "e.g. templates.all(page=1, per_page=30)",
    ),
    Case(
        "dropin-cache-ttl-negative",
        "run()",
        "wrong type",
        "pl_magic.PromptLayer(cache_ttl_seconds=-5)",
        "InvalidInputError",
        "0 fetches the template on every run",
    ),
    Case(
        "dropin-unknown-option",
        "run()",
        "unknown option",
        "pl_magic.PromptLayer(cache_ttl=60)",
        "InvalidInputError",
        "use api_key, base_url, backend",
    ),
]
