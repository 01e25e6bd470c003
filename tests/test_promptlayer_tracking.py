"""Logging runs on PromptLayer: never losing a result, unsent runs, sync, scores, metadata."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.errors import InvalidInputError, ProviderError
from pl_magic.ui.footer import footer
from tests.helpers import chat, model, runs

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "compat" / "promptlayer-cassettes"

GREET = chat(("system", "Be brief."), ("user", "hi {name}"))


@pytest.fixture
def greet(promptlayer_env, openai_env, fake_promptlayer):
    fake_promptlayer.add_prompt("greet", GREET, model(temperature=0.2), labels=["prod"])
    return fake_promptlayer


def _reply(result):
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]


def _run(stream=False, **kw):
    kw.setdefault("input_variables", {"name": "Ada"})
    result = pl_magic.run("greet", stream=stream, **kw)
    return list(result)[-1] if stream else result


def _tracking_down(fake, fault=503):
    """/track-request fails (templates still come); ``fake.clear_faults()`` ends it."""
    fake.fail_next("track.request", fault, times=1000)


def _wait_synced():
    tracker = default_client().tracker
    assert tracker is not None
    tracker.wait_idle(5)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_result_carries_promptlayers_id_and_blueprint(greet, fake_provider, stream):
    result = _run(stream)

    assert result["request_id"] == 101
    assert result["prompt_blueprint"]["prompt_template"]["messages"][-1][
        "raw_request_display_role"
    ] == ("assistant")  # the server's blueprint, not the local one
    assert _reply(result) == "echo: hi Ada"
    (row,) = runs()
    assert (row["backend"], row["sync_state"], row["remote_request_id"]) == (
        "promptlayer",
        "sent",
        "101",
    )
    assert row["sync_payload"] is None and row["output"] == "echo: hi Ada"
    assert "greet v1" in footer(result)  # the footer finds the run by PromptLayer's id


def test_promptlayer_down_during_tracking_keeps_the_result(greet, fake_provider, capsys):
    greet.fail_next("track.request", 503, times=3)  # the first attempt and its 2 retries

    result = _run()

    assert _reply(result) == "echo: hi Ada"  # the LLM result is never lost
    (row,) = runs()
    assert result["request_id"] == row["request_id"]  # the local id
    assert row["sync_state"] == "unsent" and "HTTP 503" in row["sync_error"]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"pl_magic: PromptLayer did not log run {row['request_id'][:8]} (HTTP 503)"
    )
    payload = json.loads(row["sync_payload"])["payload"]
    assert "api_key" not in payload and payload["prompt_input_variables"] == {"name": "Ada"}

    assert pl_magic.sync() == {"sent": 1, "failed": 0, "unsent": 0}

    (row,) = runs()
    assert (row["sync_state"], row["remote_request_id"]) == ("sent", "101")
    assert greet.tracked[101]["kwargs"] == payload["kwargs"]
    assert pl_magic.sync() == {"sent": 0, "failed": 0, "unsent": 0}


def test_unsent_runs_are_sent_at_the_next_run(greet, fake_provider):
    _tracking_down(greet, "drop")
    first = _run()
    assert isinstance(first["request_id"], str)
    greet.clear_faults()

    second = _run()
    _wait_synced()

    assert second["request_id"] in (101, 102)
    assert {r["sync_state"] for r in runs()} == {"sent"}, [
        (r["sync_state"], r["sync_error"], r["sync_payload"]) for r in runs()
    ]
    assert len(greet.tracked) == 2


def test_a_slow_promptlayer_does_not_stall_the_cell(greet, fake_provider, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", "0.3")
    _run()  # (the SDK imported, the log created, the template cached: only the wait is timed)
    greet.hang_s = 3.0
    greet.fail_next("track.request", "hang", times=5)

    started = time.monotonic()
    result = _run()
    elapsed = time.monotonic() - started

    assert elapsed < 1.5, elapsed  # the SDK would wait forever (sync) or retry for ~14 s
    assert _reply(result) == "echo: hi Ada"
    assert isinstance(result["request_id"], str)  # the local id: PromptLayer had not answered
    assert runs()[1]["sync_state"] == "sending"  # its send carries on


def test_a_track_request_answered_after_the_budget_is_recorded_not_sent_twice(
    greet, fake_provider, monkeypatch
):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", "0.3")
    greet.hang_s = 1.5  # past the 3 s-style budget, within the per-call timeout (15 s)
    greet.fail_next("track.request", "hang")

    result = _run()
    local_id = result["request_id"]
    assert isinstance(local_id, str)
    _wait_synced()  # the late answer comes

    (row,) = runs()
    assert (row["sync_state"], row["remote_request_id"]) == ("sent", "101")
    assert pl_magic.sync() == {"sent": 0, "failed": 0, "unsent": 0}
    assert list(greet.tracked) == [101], "logged once"
    assert greet.tracked[101]["metadata"] == {"pl_magic_request_id": local_id}
    assert len(greet.requests_for("track.request")) == 1


def test_a_send_with_no_answer_is_looked_up_before_it_is_sent_again(
    greet, fake_provider, monkeypatch
):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", "0.3")
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TIMEOUT", "0.6")
    greet.hang_s = 1.2  # PromptLayer logs it after pl_magic stopped waiting for the answer
    greet.fail_next("track.request", "hang")

    local_id = _run(metadata={"user": "u1"})["request_id"]
    deadline = time.monotonic() + 10
    while runs()[0]["sync_state"] != "sent" and time.monotonic() < deadline:
        pl_magic.sync()
        time.sleep(0.1)

    (row,) = runs()
    assert (row["sync_state"], row["remote_request_id"]) == ("sent", "101")
    assert list(greet.tracked) == [101], "found by its pl_magic_request_id, not sent again"
    assert greet.tracked[101]["metadata"] == {"user": "u1", "pl_magic_request_id": local_id}
    (search,) = greet.requests_for("requests.search")
    assert search.header_key and search.body["filter_group"]["filters"] == [
        {
            "field": "metadata",
            "operator": "key_equals",
            "value": local_id,
            "nested_key": "pl_magic_request_id",
        }
    ]


def test_a_dropped_send_not_found_by_the_search_is_sent_again_once(greet, fake_provider):
    greet.fail_next("track.request", "drop")  # the connection closes: PromptLayer has nothing

    local_id = _run()["request_id"]
    assert pl_magic.sync()["sent"] == 1

    assert len(greet.requests_for("requests.search")) == 1
    assert list(greet.tracked) == [101]
    assert greet.tracked[101]["metadata"] == {"pl_magic_request_id": local_id}
    assert runs()[0]["remote_request_id"] == "101"


def test_a_timer_sends_unsent_runs_while_the_kernel_lives(greet, fake_provider, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_SYNC_INTERVAL", "0.2")
    greet.fail_next("track.request", 503, times=6)  # the run's sends, and the first retry

    _run()
    assert runs()[0]["sync_state"] != "sent"
    deadline = time.monotonic() + 10  # no run, no sync(): the timer alone
    while runs()[0]["sync_state"] != "sent" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert runs()[0]["sync_state"] == "sent"
    assert list(greet.tracked) == [101]
    thread = default_client().tracker._thread  # type: ignore[union-attr]
    assert thread is not None and thread.daemon


def test_the_next_logged_run_sends_the_backlog_at_once(greet, fake_provider, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_SYNC_INTERVAL", "0.2")
    greet.fail_next("track.request", 503, times=3 * 5)  # down for the first run and 4 retries
    _run()
    deadline = time.monotonic() + 10
    while len(greet.requests_for("track.request")) < 15 and time.monotonic() < deadline:
        time.sleep(0.05)  # the timer's retries use up the faults, backing off each time
    # the 15th refusal reached the server: its answer may still be on its way back
    while runs()[0]["sync_state"] == "sending" and time.monotonic() < deadline:
        time.sleep(0.05)
    first = runs()[0]
    assert first["sync_state"] == "unsent"  # the timer now waits its longest so far

    started = time.monotonic()
    second = _run(input_variables={"name": "Bob"})
    _wait_synced()

    assert second["request_id"] == 101  # PromptLayer answers again...
    assert time.monotonic() - started < 1.5
    assert {r["sync_state"] for r in runs()} == {"sent"}  # ...and the backlog went at once
    assert sorted(greet.tracked) == [101, 102]


def test_while_promptlayer_is_down_runs_do_not_wait_on_it(greet, fake_provider, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_SYNC_INTERVAL", "30")
    _tracking_down(greet, "drop")
    first = _run()
    attempts = len(greet.requests_for("track.request"))
    assert attempts == 1  # the first run tried (a dropped send is not retried blindly)
    second = _run()
    assert len(greet.requests_for("track.request")) == attempts  # the second did not wait
    assert isinstance(first["request_id"], str) and isinstance(second["request_id"], str)
    greet.clear_faults()
    assert pl_magic.sync()["sent"] == 2
    assert _run()["request_id"] == 103  # back: runs carry PromptLayer's ids again


def test_a_5xx_from_track_request_is_retried_within_the_wait(greet, fake_provider):
    greet.fail_next("track.request", 500)
    assert _run()["request_id"] == 101
    assert len(greet.requests_for("track.request")) == 2


def test_a_provider_failure_is_logged_as_an_error(greet, fake_provider):
    fake_provider.fail_next("err-401")
    with pytest.raises(ProviderError) as info:
        _run()

    (payload,) = greet.tracked.values()
    assert payload["status"] == "ERROR" and payload["error_type"] == "PROVIDER_AUTH_ERROR"
    assert payload["request_response"] == {} and "401" in payload["error_message"]
    (row,) = runs()
    assert row["sync_state"] == "sent" and info.value.request_id == row["request_id"]


def _sdk_failure_payload() -> dict:
    """What PromptLayer's SDK sent to /track-request for an OpenAI 401 (its cassette)."""
    import yaml

    path = CASSETTES / "test_run_logs_error_on_llm_auth_failure.yaml"
    for exchange in yaml.safe_load(path.read_text())["interactions"]:
        if exchange["request"]["uri"].endswith("/track-request"):
            body = json.loads(exchange["request"]["body"])
            body.pop("api_key")
            return body
    raise AssertionError("no /track-request in the cassette")


@pytest.mark.parametrize("how", ["run", "stream", "arun", "astream"])
def test_a_failed_run_is_on_promptlayer_before_the_error_is_raised(greet, fake_provider, how):
    _run()  # (the template cached)
    greet.latency_s = 0.3  # a send left to the background would still be on its way
    fake_provider.fail_next("err-401")

    async def go() -> None:
        result = await pl_magic.arun(
            "greet", input_variables={"name": "Ada"}, stream=how == "astream"
        )
        if how == "astream":
            [c async for c in result]  # type: ignore[union-attr]

    with pytest.raises(ProviderError) as info:
        if how.startswith("a"):
            asyncio.run(go())
        else:
            _run(stream=how == "stream")
    assert sorted(greet.tracked) == [101, 102]  # already there when the error is caught
    payload = greet.tracked[102]

    sdk = _sdk_failure_payload()
    assert set(payload) == set(sdk)
    assert (payload["status"], payload["error_type"], payload["request_response"]) == (
        sdk["status"],
        sdk["error_type"],
        {},
    )
    assert "401" in payload["error_message"]
    row = runs()[-1]
    assert (row["sync_state"], row["remote_request_id"]) == ("sent", "102")
    assert info.value.request_id == row["request_id"]


def test_a_failed_run_waits_for_promptlayer_no_longer_than_the_budget(
    greet, fake_provider, monkeypatch
):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_TRACK_TIMEOUT", "0.3")
    _run()  # (the SDK imported, the template cached: only the wait on PromptLayer is timed)
    greet.hang_s = 1.0
    greet.fail_next("track.request", "hang")
    fake_provider.fail_next("err-401")

    started = time.monotonic()
    with pytest.raises(ProviderError):
        _run()
    assert time.monotonic() - started < 0.9
    _wait_synced()
    assert list(greet.tracked) == [101, 102], "the late answer recorded, not sent again"
    assert [r["sync_state"] for r in runs()] == ["sent", "sent"]


def test_a_cancelled_stream_is_logged_as_a_warning(greet, fake_provider):
    fake_provider.reply_text = "one two three four five six"
    stream = pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True)
    next(stream)
    stream.close()
    _wait_synced()

    (payload,) = greet.tracked.values()
    assert payload["status"] == "WARNING" and "cancelled" in payload["error_message"]
    assert runs()[0]["status"] == "cancelled"


def test_score_and_metadata_take_either_id(greet, fake_provider):
    result = _run()
    local_id = runs()[0]["request_id"]

    assert pl_magic.score(result["request_id"], 90) is True
    assert pl_magic.score(local_id, 40, name="accuracy") is True
    assert pl_magic.add_metadata(local_id, {"user": "u1"}) is True

    assert greet.scores == [
        {"request_id": 101, "score": 90},
        {"request_id": 101, "score": 40, "name": "accuracy"},
    ]
    assert greet.metadata == [{"request_id": 101, "metadata": {"user": "u1"}}]
    (row,) = runs()
    assert json.loads(row["scores"]) == {"default": 90, "accuracy": 40}
    assert json.loads(row["metadata"]) == {"user": "u1"}
    assert pl_magic.runs()["metadata"].iloc[0] == {"user": "u1"}


def test_a_score_for_an_unsent_run_is_queued_and_sent_with_it(greet, fake_provider, capsys):
    _tracking_down(greet)
    local_id = _run()["request_id"]
    assert pl_magic.score(local_id, 80) is True
    assert pl_magic.add_metadata(local_id, {"k": "v"}) is True
    _wait_synced()
    assert "queued" in capsys.readouterr().err
    greet.clear_faults()

    pl_magic.sync()

    assert greet.scores == [{"request_id": 101, "score": 80}]
    assert greet.metadata == [{"request_id": 101, "metadata": {"k": "v"}}]
    assert runs()[0]["pending_ops"] is None


def test_group_ids_come_from_promptlayer(greet, fake_provider):
    group = pl_magic.create_group()
    result = _run(group_id=group)
    assert greet.tracked[result["request_id"]]["group_id"] == group
    assert greet.groups[group] == [result["request_id"]]


def test_arun_plain_and_streamed(greet, fake_provider):
    async def go():
        plain = await pl_magic.arun("greet", input_variables={"name": "Ada"})
        stream = await pl_magic.arun("greet", input_variables={"name": "Bob"}, stream=True)
        chunks = [c async for c in stream]
        return plain, chunks

    plain, chunks = asyncio.run(go())
    assert plain["request_id"] == 101 and chunks[-1]["request_id"] == 102
    assert _reply(chunks[-1]) == "echo: hi Bob"
    assert all(c["request_id"] is None for c in chunks[:-1])


def test_two_clients_never_send_a_run_twice(greet, fake_provider):
    _tracking_down(greet)
    for _ in range(4):
        _run()
    _wait_synced()  # the default client's own background retry (it fails: still down)
    greet.clear_faults()
    clients = [pl_magic.PromptLayer(), pl_magic.PromptLayer()]  # two trackers, one log
    threads = [threading.Thread(target=c.sync) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(greet.tracked) == 4
    assert {r["sync_state"] for r in runs()} == {"sent"}


def test_runs_of_another_account_are_not_sent_with_this_key(greet, fake_provider, monkeypatch):
    _tracking_down(greet)
    _run()
    greet.clear_faults()
    other = "pl_other_" + "0" * 8
    greet.api_keys.add(other)
    monkeypatch.setenv("PROMPTLAYER_API_KEY", other)
    assert pl_magic.sync() == {"sent": 0, "failed": 0, "unsent": 0}
    assert greet.tracked == {}


def test_run_many_rows_match_promptlayer_ids(greet, fake_provider):
    df = pl_magic.run_many("greet", versions=["prod", 1], input_variables={"name": "Ada"})
    assert list(df["status"]) == ["ok", "ok"]
    assert df["latency_s"].notna().all()  # the log rows were found by PromptLayer's ids
    assert len(greet.tracked) == 2


def test_local_backend_keeps_scores_and_metadata_locally(openai_env, fake_provider):
    from tests.helpers import publish

    publish("greet", GREET)
    result = pl_magic.run("greet", input_variables={"name": "Ada"})
    assert pl_magic.score(result["request_id"], 70, "acc") is True
    assert pl_magic.add_metadata(result["request_id"], {"who": "me"}) is True
    (row,) = runs()
    assert json.loads(row["scores"]) == {"acc": 70}
    assert json.loads(row["metadata"]) == {"who": "me"}
    assert row["sync_state"] is None and row["sync_payload"] is None
    with pytest.raises(InvalidInputError, match="Unknown request id"):
        pl_magic.score("nope", 1)
    with pytest.raises(InvalidInputError, match="0 to 100"):
        pl_magic.score(result["request_id"], 101)
    with pytest.raises(InvalidInputError, match="dict of strings"):
        pl_magic.add_metadata(result["request_id"], {"n": 1})
    assert pl_magic.sync() == {"sent": 0, "failed": 0, "unsent": 0}


def test_the_key_never_reaches_the_log(greet, fake_provider, promptlayer_env):
    _tracking_down(greet)
    _run()
    from pl_magic.core import config

    for path in config.home_dir().iterdir():
        assert promptlayer_env.encode() not in path.read_bytes()
