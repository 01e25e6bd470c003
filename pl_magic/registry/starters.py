"""Starter prompts: what a fresh, empty local registry gets on first use.

Small prompts that run on the embedded local model (see :mod:`pl_magic.providers.local`),
each with two or three versions and ``prod`` / ``staging`` labels on different versions, so
that running by label and comparing versions has something to show from the first minute.
``max_tokens`` stays small and ``temperature`` low: a CPU answers in about a second.

Seeding happens once, when a read finds the registry empty (see
:meth:`pl_magic.PromptLayer.ensure_starters`): never when it already holds prompts, and
never on a publish or an import (whoever publishes first wants their own prompts).
``PL_MAGIC_STARTERS=0`` turns it off.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..core.file_lock import file_lock
from ..core.local_target import base_url_spec, model_metadata

if TYPE_CHECKING:
    from .local import LocalRegistry

ENV_SWITCH = "PL_MAGIC_STARTERS"
TAGS = ["starter"]


def _chat(system: str, user: str) -> dict[str, Any]:
    return {
        "type": "chat",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": [{"type": "text", "text": user}]},
        ],
    }


def _version(
    template: dict[str, Any], commit: str, labels: list[str], **parameters: Any
) -> dict[str, Any]:
    return {
        "prompt_template": template,
        "metadata": model_metadata(**parameters),
        "provider_base_url": base_url_spec(),
        "commit_message": commit,
        "tags": TAGS,
        "release_labels": labels,
    }


#: prompt name -> its versions in order (PromptLayer publish bodies without the name).
STARTERS: dict[str, list[dict[str, Any]]] = {
    "capital-city": [
        _version(
            _chat("You are a helpful assistant.", "What is the capital of {country}?"),
            "first version",
            [],
            temperature=0.2,
            max_tokens=48,
        ),
        _version(
            _chat(
                "You answer geography questions in one short sentence.",
                "What is the capital of {country}?",
            ),
            "one short sentence",
            ["prod"],
            temperature=0.2,
            max_tokens=32,
        ),
        _version(
            _chat(
                "You are a geography tutor. Name the capital, then add one short fact about it.",
                "What is the capital of {country}?",
            ),
            "add a fact",
            ["staging"],
            temperature=0.3,
            max_tokens=64,
        ),
    ],
    "summarize": [
        _version(
            _chat("You summarize text.", "Summarize in one sentence:\n\n{text}"),
            "one sentence",
            ["prod"],
            temperature=0.1,
            max_tokens=48,
        ),
        _version(
            _chat(
                "You summarize text as exactly three short bullet points.",
                "Summarize:\n\n{text}",
            ),
            "three bullets",
            ["staging"],
            temperature=0.1,
            max_tokens=64,
        ),
    ],
    "support-reply": [
        _version(
            _chat(
                "You are a support agent for Acme Cloud. Reply in two sentences.",
                "Customer {name} writes: {message}",
            ),
            "first version",
            ["prod"],
            temperature=0.3,
            max_tokens=64,
        ),
        _version(
            _chat(
                "You are a warm, concise support agent for Acme Cloud. Greet the customer by "
                "name, acknowledge the problem, and give one next step. At most three sentences.",
                "Customer {name} writes: {message}",
            ),
            "greet by name, one next step",
            ["staging"],
            temperature=0.3,
            max_tokens=64,
        ),
    ],
}

#: The judge starter: its reply is forced into ``{score, reason}`` when it runs as a judge
#: (see :mod:`pl_magic.engine.judges`), so even a small local model answers valid JSON.
JUDGE_STARTER = "judge-correct"
STARTERS[JUDGE_STARTER] = [
    _version(
        _chat(
            "You grade answers. Give score 1 when the answer to grade states the expected "
            "answer, 0 when it does not. Give the score and a reason of at most eight words.",
            "Expected answer: {expected}\n\nAnswer to grade: {output}",
        ),
        "grade against the expected answer",
        ["prod"],
        temperature=0.0,
        max_tokens=64,
    ),
    _version(
        _chat(
            "You grade answers. Give score 1 when the answer to grade means the same as the "
            "expected answer (other wording is fine), 0.5 when it is partly right, 0 when it "
            "is wrong. Give the score and a reason of at most eight words.",
            "Expected answer: {expected}\n\nAnswer to grade: {output}",
        ),
        "partial credit",
        ["staging"],
        temperature=0.0,
        max_tokens=64,
    ),
]

#: Input variables that make each starter run (the demo and the docs use them).
EXAMPLE_INPUTS: dict[str, dict[str, str]] = {
    "capital-city": {"country": "France"},
    "summarize": {
        "text": "pl_magic runs versioned prompts from a registry inside Jupyter, streams the "
        "reply into the cell, logs every run and compares versions and models side by side."
    },
    "support-reply": {"name": "Ada", "message": "I can't log in since this morning."},
    JUDGE_STARTER: {"expected": "Paris", "output": "The capital of France is Paris."},
}


def enabled() -> bool:
    """False when ``PL_MAGIC_STARTERS`` is 0, false, no or off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def seed(registry: LocalRegistry) -> list[str]:
    """Publish every starter version into ``registry`` (no checks); the names published."""
    for name, versions in STARTERS.items():
        for body in versions:
            registry.publish({"prompt_name": name, **body})
    return list(STARTERS)


def seed_one(registry: Any, name: str) -> bool:
    """Publish the starter ``name`` into ``registry`` if it is a starter; False otherwise.

    A registry seeded before a starter existed (``judge-correct``) gets it when a run
    asks for it by name (``PL_MAGIC_STARTERS`` is about seeding what nobody asked for).
    """
    if name not in STARTERS:
        return False
    for body in STARTERS[name]:
        registry.publish({"prompt_name": name, **body})
    return True


def seed_if_empty(registry: LocalRegistry) -> list[str]:
    """Seed the starters when the registry holds no prompt; the names published (or []).

    A file lock next to the database makes the check and the publishing one step, so two
    processes opening a fresh registry at once do not both seed it.
    """
    if not enabled() or registry.names():
        return []
    with file_lock(registry.db.path.parent / "starters.lock"):
        if registry.names():
            return []
        return seed(registry)
