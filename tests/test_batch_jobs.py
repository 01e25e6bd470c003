"""Batch mode (issue 17): comparisons submitted as provider batches through the real SDKs,
against the fake provider server's batch APIs on 127.0.0.1 (tests/fakes/provider_batches.py)."""

from __future__ import annotations

import pytest

import pl_magic
from tests.helpers import chat, model, publish, runs


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls milliseconds apart (the fake ends a batch after a few reads)."""
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_S", "0.01")
    monkeypatch.setenv("PL_MAGIC_BATCH_POLL_MAX_S", "0.05")


@pytest.fixture
def greet(openai_env, fast_polls):
    publish("greet", chat(("system", "Be brief."), ("user", "hi {name}")), model())


def test_openai_batch_submit_poll_results(greet, fake_provider):
    fake_provider.batches.processing_polls = 2
    df = pl_magic.run_many(
        "greet", inputs=[{"name": "Ada"}, {"name": "Bo"}], repeat=2, batch=True
    )
    assert list(df["status"]) == ["ok"] * 4
    assert list(df["output"]) == ["echo: hi Ada"] * 2 + ["echo: hi Bo"] * 2
    (job,) = fake_provider.batches.submitted("openai")
    assert len(job.requests) == 4
    assert fake_provider.requests_for("openai.chat") == []  # nothing went live
    rows = runs()
    assert len(rows) == 4 and {r["batch_id"] for r in rows} == {df["batch_id"][0]}
