"""Faults: every provider's fault menu, and PromptLayer's, as a run log sees them.

tests/test_providers.py checks each fault's error per call; here a whole menu of faults
runs at once (a comparison, as people run them), and what matters is the log: one row per
run and none lost, the right error category, the partial text of a broken stream kept —
in the log, in the error, on the surface. Then PromptLayer down, slow, 5xx and 429 while
runs go on: every run is in the local log, and PromptLayer gets each exactly once later.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.errors import PromptLayerUnavailableError, ProviderError
from tests import conftest
from tests.helpers import chat, model, publish, runs
from tests.test_providers import FAULT_ROUTES, Route

PROMPT = chat(("user", "one two three four five six seven eight"))
FULL = "echo: one two three four five six seven eight"

#: fault (in the model's name) -> the error category its run is logged with
PROVIDER_FAULTS = {
    "err-401": "auth",
    "err-404": "not_found",
    "err-429": "rate_limit",
    "err-500": "server",
    "err-529": "server",
    "cut": "connection",  # the connection drops mid-stream
    "eof": "truncated",  # the stream ends cleanly without its final event
    "sse-error": "server",  # an error event inside the stream
}
STREAM_FAULTS = ("cut", "eof", "sse-error")


def _use(request: pytest.FixtureRequest, route: Route, monkeypatch: pytest.MonkeyPatch) -> None:
    request.getfixturevalue(route.env)
    monkeypatch.setenv("PL_MAGIC_MAX_RETRIES", "1")  # a retry happens; the test stays quick


def _log_by_id() -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in runs()}


#: Without streaming the stream faults are other faults: a body cut mid-way, a whole body
#: without its finish reason (accepted, as PromptLayer does), a plain 500.
NOT_STREAMED = {"cut": "connection", "eof": None, "sse-error": "server"}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@pytest.mark.parametrize("route", FAULT_ROUTES, ids=[r.id for r in FAULT_ROUTES])
def test_a_comparison_over_every_fault_logs_every_run(
    request, route, stream, fake_provider, monkeypatch
):
    _use(request, route, monkeypatch)
    publish("p", PROMPT, model(route.model, route.provider))
    models = [f"{route.provider}/{route.model}"] + [
        f"{route.provider}/{route.model}-{fault}" for fault in PROVIDER_FAULTS
    ]
    df = pl_magic.run_many("p", models=models, repeat=2, concurrency=4, stream=stream)

    assert len(df) == 2 * len(models)
    log = _log_by_id()
    assert len(log) == len(df), "a run is missing from the log"
    for _, row in df.iterrows():
        logged = log[row["request_id"]]
        assert (logged["status"], logged["output"]) == (row["status"], row["output"])
        fault = next((f for f in PROVIDER_FAULTS if row["model"].endswith(f)), None)
        if fault is None:
            assert (row["status"], row["output"]) == ("ok", FULL)
            continue
        category = (
            PROVIDER_FAULTS[fault] if stream else NOT_STREAMED.get(fault, PROVIDER_FAULTS[fault])
        )
        if category is None:  # a whole non-streamed body without its finish reason
            assert row["status"] == "ok" and FULL.startswith(row["output"])
            assert logged["finish_reason"] is None
            continue
        assert row["status"] == "error", (fault, row["error"])
        assert logged["error_category"] == category, (fault, row["error"])
        assert "\n" not in row["error"] and row["error"] == logged["error_message"]
        conftest.audit_text(row["error"])
        if stream and fault in STREAM_FAULTS:  # the text before the fault is kept
            assert row["output"] and FULL.startswith(row["output"]) and row["output"] != FULL
        else:
            assert row["output"] == ""


@pytest.mark.parametrize("route", FAULT_ROUTES, ids=[r.id for r in FAULT_ROUTES])
def test_a_stream_that_stalls_times_out_with_its_partial_text(
    request, route, fake_provider, monkeypatch
):
    _use(request, route, monkeypatch)
    monkeypatch.setenv("PL_MAGIC_TIMEOUT", "0.5")
    monkeypatch.setenv("PL_MAGIC_MAX_RETRIES", "0")
    publish("p", PROMPT, model(route.model, route.provider))
    gate = threading.Event()
    fake_provider.hold_before_last = gate  # the stream stops before its last delta
    try:
        seen = ""
        with pytest.raises(ProviderError) as info:
            for chunk in pl_magic.run("p", stream=True):
                seen = chunk["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"]
    finally:
        gate.set()
    assert info.value.category == "timeout", str(info.value)
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "timeout")
    assert row["output"] and FULL.startswith(row["output"]) and row["output"] != FULL
    assert info.value.partial_text == row["output"]
    assert seen and seen[-1]["text"] == row["output"]  # what the caller saw is what is kept


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_the_magic_keeps_the_partial_text_in_the_cell(
    fault, shell, openai_env, fake_provider, monkeypatch
):
    from pl_magic.ui.display import RunView

    publish("p", PROMPT, model(f"gpt-4o-mini-{fault}"))
    views: list[tuple[str, str, str]] = []
    real_finish = RunView.finish

    def spy(self: RunView, text: str, footer: str, status: str = "ok") -> None:
        views.append((text, footer, status))  # what the cell shows last
        real_finish(self, text, footer, status)

    monkeypatch.setattr(RunView, "finish", spy)
    shell.run_line_magic("load_ext", "pl_magic")
    try:
        result = shell.run_cell("%plrun p")
    finally:
        shell.run_line_magic("unload_ext", "pl_magic")
    exc = result.error_in_exec
    assert isinstance(exc, ProviderError) and len(exc._render_traceback_()) == 1
    (row,) = runs()
    ((text, footer, status),) = views
    assert status == "error" and footer.startswith("failed: ") and "\n" not in footer
    assert text == row["output"] == exc.partial_text and text and FULL.startswith(text)
    assert row["error_category"] == PROVIDER_FAULTS[fault]


def test_the_form_keeps_the_partial_text(openai_env, fake_provider):
    from pl_magic.surfaces.widget import PromptForm

    publish("p", PROMPT, model("gpt-4o-mini-cut"))
    form = PromptForm("p")
    form.run()
    (row,) = runs()
    assert row["status"] == "error" and row["error_category"] == "connection"
    assert row["output"] and row["output"] in form.reply.value
    assert "connection" in form.status.value and form.last_error.category == "connection"
    assert list(form.runs["request_id"]) == [row["request_id"]]


# -- PromptLayer -----------------------------------------------------------------------------

#: PromptLayer faults: down (the connection drops), slow (answers after hang_s), 5xx, 429
PL_FAULTS = ["drop", "hang", 500, 503, 429]
GREET = chat(("user", "one two three four five six seven eight"))


@pytest.fixture
def on_promptlayer(promptlayer_env, openai_env, fake_promptlayer, fake_provider, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", "0.3")
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TIMEOUT", "0.3")
    fake_promptlayer.hang_s = 1.0
    fake_promptlayer.add_prompt("greet", GREET, model(), labels=["prod"])
    fake_promptlayer.add_prompt("broken", GREET, model("gpt-4o-mini-cut"), labels=["prod"])
    return fake_promptlayer


def _settle(fake: Any) -> None:
    """PromptLayer is back: everything unsent goes, and background sends finish."""
    fake.clear_faults()
    fake.outage = None
    tracker = default_client().tracker
    assert tracker is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tracker.wait_idle(5)
        pl_magic.sync()
        tracker.wait_idle(5)
        if all(r["sync_state"] in ("sent", "failed") for r in runs()):
            return
        time.sleep(0.1)


@pytest.mark.parametrize("fault", PL_FAULTS, ids=[str(f) for f in PL_FAULTS])
def test_promptlayer_faults_while_logging_lose_no_run(on_promptlayer, fault, capsys):
    fake = on_promptlayer
    pl_magic.run("greet", prompt_release_label="prod")  # templates cached; PromptLayer fine
    fake.fail_next("track.request", fault, times=1000)

    ok = pl_magic.run("greet", prompt_release_label="prod")
    streamed = list(pl_magic.run("greet", prompt_release_label="prod", stream=True))[-1]
    with pytest.raises(ProviderError) as info:
        list(pl_magic.run("broken", prompt_release_label="prod", stream=True))

    # the results came back, with the local ids (PromptLayer did not give one)
    assert ok["request_id"] in _log_by_id() and streamed["request_id"] in _log_by_id()
    rows = runs()
    assert len(rows) == 4
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "error"]
    broken = rows[-1]
    assert broken["error_category"] == "connection" == info.value.category
    assert broken["output"] and FULL.startswith(broken["output"]) and broken["output"] != FULL
    if fault != "hang":  # (a slow answer may still arrive and be recorded)
        assert {r["sync_state"] for r in rows[1:]} <= {"unsent", "sending"}  # (a retry runs)
    conftest.audit_text(capsys.readouterr().err)

    _settle(fake)
    rows = runs()
    assert [r["sync_state"] for r in rows] == ["sent"] * 4, [r["sync_error"] for r in rows]
    assert len(fake.tracked) == 4, "each run reached PromptLayer exactly once"
    remote = {str(k): v for k, v in fake.tracked.items()}
    sent_broken = remote[rows[-1]["remote_request_id"]]
    assert sent_broken["status"] == "ERROR" and "connection" in sent_broken["error_message"]


@pytest.mark.parametrize("fault", PL_FAULTS, ids=[str(f) for f in PL_FAULTS])
def test_promptlayer_down_before_the_run_is_one_line_and_nothing_runs(
    on_promptlayer, fault, fake_provider
):
    fake = on_promptlayer
    fake.outage = fault  # nothing cached yet: the template cannot be had
    with pytest.raises(PromptLayerUnavailableError) as info:
        pl_magic.run("greet", prompt_release_label="prod")
    message = str(info.value)
    assert "\n" not in message and "PromptLayer" in message
    conftest.audit_text(message)
    assert fake_provider.requests == [] and runs() == []


@pytest.mark.parametrize("fault", PL_FAULTS, ids=[str(f) for f in PL_FAULTS])
def test_promptlayer_down_with_a_cached_template_runs_from_the_cache(
    on_promptlayer, fault, monkeypatch, capsys
):
    fake = on_promptlayer
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_TTL", "0")  # every run asks PromptLayer again
    pl_magic.run("greet", prompt_release_label="prod")
    fake.outage = fault
    result = pl_magic.run("greet", prompt_release_label="prod")
    assert (
        result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"] == FULL
    )
    err = capsys.readouterr().err
    conftest.audit_text(err)
    assert "PromptLayer" in err  # a one-line notice that a cached copy was used
    rows = runs()
    assert [r["status"] for r in rows] == ["ok", "ok"]
    _settle(fake)
    assert [r["sync_state"] for r in runs()] == ["sent", "sent"]
    assert len(fake.tracked) == 2
