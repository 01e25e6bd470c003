"""Adaptive concurrency (engine/limiter.py, providers/traffic.py) and ``fail_fast``: the real
SDKs against the fake provider server enforcing a requests-a-minute limit (its
``rate_limit_rpm`` knob: native 429s with ``retry-after`` and the providers' rate-limit
headers)."""

from __future__ import annotations

import _thread
import threading
import time
from email.utils import formatdate
from typing import Any

import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.errors import InvalidInputError
from pl_magic.engine import batch, limiter
from pl_magic.engine.batch import Batch
from pl_magic.providers import traffic
from tests.helpers import chat, model, publish, runs


@pytest.fixture
def greet(openai_env):
    publish("greet", chat(("user", "hi {name}")), model(temperature=0.1))


def openai_limiter(fake_provider) -> limiter.Limiter:
    return limiter.limiters()[traffic.traffic_key("openai", fake_provider.openai_base_url)]


def names(n: int) -> list[dict[str, str]]:
    return [{"name": f"n{i}"} for i in range(n)]


# -- what the answers say ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after-ms": "250", "retry-after": "1"}, None, 0.25),  # ms wins, as in the SDKs
        ({"retry-after": "2"}, None, 2.0),
        ({"retry-after": "1.5"}, None, 1.5),
        (
            {},
            b'{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",'
            b'"retryDelay":"0.750s"}]}}',
            0.75,
        ),
        ({"retry-after": "soon"}, None, None),
        ({}, b"not json", None),
    ],
)
def test_how_long_a_429_asks_to_wait(headers, body, expected):
    assert traffic.retry_after_s(headers, body) == expected


def test_retry_after_as_an_http_date():
    wait = traffic.retry_after_s({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert wait is not None and 28 <= wait <= 31


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20ms", 0.02), ("1s", 1.0), ("6m0s", 360.0), ("1m30.5s", 90.5), ("2h", 7200.0), ("", None)],
)
def test_openai_reset_durations(value, expected):
    assert traffic.reset_s(value) == expected


def test_a_rate_limit_header_with_none_left_says_until_when():
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 20))
    anthropic = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": soon,
    }
    wait = traffic.exhausted_for_s(anthropic)
    assert wait is not None and 18 <= wait <= 21
    openai = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "150ms"}
    assert traffic.exhausted_for_s(openai) == 0.15
    left = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "150ms"}
    assert traffic.exhausted_for_s(left) is None


def test_aimd_halves_once_per_wave_and_adds_one_per_window_of_answers():
    gate = limiter.Limiter("test")
    with limiter.comparison(8):
        permits = [gate.acquire() for _ in range(8)]
    sent = time.monotonic()
    gate.answered(traffic.Answer(429, retry_after_s=None, sent_at=sent))
    assert gate.window == 4.0  # half of the 8 calls in flight
    # another 429 of the same wave (sent before the decrease) does not halve it again
    gate.answered(traffic.Answer(429, retry_after_s=None, sent_at=sent))
    assert gate.window == 4.0 and gate.decreases == 1 and gate.rate_limited == 2
    gate.answered(traffic.Answer(429, sent_at=time.monotonic()))  # a later wave does
    assert gate.window == 2.0 and gate.decreases == 2
    for _ in range(2):
        gate.answered(traffic.Answer(200))
    assert gate.window == pytest.approx(2.0 + 1 / 2 + 1 / 2.5)
    for _ in range(40):
        gate.answered(traffic.Answer(200))
    assert gate.window is None  # back at the ceiling (the comparison's concurrency): open
    for permit in permits:
        permit.release()
    assert gate.in_flight == 0


def test_a_pause_holds_every_call():
    gate = limiter.Limiter("test")
    gate.answered(traffic.Answer(200, exhausted_for_s=0.3, sent_at=time.monotonic() - 0.1))
    start = time.monotonic()
    gate.acquire().release()
    assert 0.15 <= time.monotonic() - start <= 0.5
    gate.answered(traffic.Answer(429, retry_after_s=0.3, sent_at=time.monotonic() - 0.1))
    start = time.monotonic()
    gate.acquire().release()
    assert 0.3 <= time.monotonic() - start <= 0.6  # a 429 came back at once: from now


# -- against the fake, through the SDKs ------------------------------------------------------


def test_a_429_shrinks_the_window_and_successes_open_it_again(greet, fake_provider):
    fake_provider.rate_limit_rpm = 600  # 10 a second, 1 at once: 9 of the first 10 get a 429
    fake_provider.rate_limit_burst = 1
    df = pl_magic.run_many("greet", inputs=names(10), concurrency=8)
    assert set(df["status"]) == {"ok"}  # no run lost
    gate = openai_limiter(fake_provider)
    seen = gate.snapshot()
    # every 429 reached the limiter, those the SDK retried and hid included
    assert fake_provider.rate_limited_count > 0
    assert seen["rate_limited"] == fake_provider.rate_limited_count
    assert seen["decreases"] >= 1 and seen["window"] is not None and seen["window"] < 8

    fake_provider.rate_limit_rpm = None
    df = pl_magic.run_many("greet", inputs=names(40), concurrency=8)
    assert set(df["status"]) == {"ok"}
    assert gate.window is None  # grown back to the concurrency: open


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_a_rate_limit_header_with_none_left_holds_the_next_call(
    sdk, request, fake_provider, openai_env
):
    # Both answers say how many requests are left: the first one's "0" holds the second
    # call until the limit resets, so the provider never has to refuse it.
    if sdk == "anthropic":
        request.getfixturevalue("anthropic_env")
    publish("p", chat(("user", "hi")), model("claude-x" if sdk == "anthropic" else "gpt-x", sdk))
    fake_provider.rate_limit_rpm = 120  # one every half second
    fake_provider.rate_limit_burst = 1
    pl_magic.run("p")
    pl_magic.run("p")
    first, second = fake_provider.requests[:2]
    # the second call's first attempt was held until the reset (not refused, then retried)
    assert second.retry_count == 0 and second.received_at - first.received_at >= 0.45
    assert fake_provider.rate_limited_count <= 1  # (0 but for a request a hair early)


def test_genai_retries_wait_for_the_retry_info_of_a_429(gemini_env, fake_provider):
    # genai's own backoff (milliseconds here) ignores Gemini's RetryInfo: its retries go
    # through the hooks, which hold them until the provider's delay is over.
    publish("p", chat(("user", "hi")), model("gemini-2.5-flash", "google"))
    fake_provider.rate_limit_rpm = 120
    fake_provider.rate_limit_burst = 1
    pl_magic.run("p")
    pl_magic.run("p")
    assert fake_provider.rate_limited_count == 1  # the second call's first attempt only
    refused, retried = fake_provider.requests[1:]
    assert retried.received_at - refused.received_at >= 0.4
    (gate,) = limiter.limiters().values()
    assert gate.rate_limited == 1 and gate.decreases == 1


def test_no_run_is_lost_under_the_rate_limit(greet, fake_provider):
    fake_provider.rate_limit_rpm = 1200  # 20 a second, 2 at once, each taking 50 ms
    fake_provider.rate_limit_burst = 2
    fake_provider.delay_s = 0.05
    df = pl_magic.run_many("greet", inputs=names(40), concurrency=16)
    assert len(df) == 40 and set(df["status"]) == {"ok"}, df["error"].dropna().tolist()
    assert fake_provider.rate_limited_count > 0  # the limit did bite
    assert len(runs()) == 40  # one row a run: a rate-limited run waited, it was not retried


def test_two_comparisons_at_once_share_one_limiter(greet, fake_provider):
    fake_provider.rate_limit_rpm = 1200
    fake_provider.rate_limit_burst = 2
    fake_provider.delay_s = 0.02
    frames: dict[str, Any] = {}

    def compare(name: str, models: str) -> None:
        frames[name] = pl_magic.run_many("greet", models=models, inputs=names(12), concurrency=8)

    threads = [
        threading.Thread(target=compare, args=("a", "gpt-4o-mini")),
        threading.Thread(target=compare, args=("b", "gpt-4.1-mini")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {name: set(df["status"]) for name, df in frames.items()} == {"a": {"ok"}, "b": {"ok"}}
    (gate,) = limiter.limiters().values()  # one limiter: one provider, one base URL
    assert gate.rate_limited == fake_provider.rate_limited_count > 0

    # What one comparison learnt holds the next one: with the window it left, a comparison
    # of 8 runs at concurrency 8 cannot send them all at once.
    window = gate.window
    assert window is not None and window < 8
    fake_provider.reset()
    fake_provider.delay_s = 0.2
    df = pl_magic.run_many("greet", inputs=names(8), concurrency=8)
    assert set(df["status"]) == {"ok"}
    first = fake_provider.requests[0].received_at
    at_once = sum(r.received_at - first < 0.1 for r in fake_provider.requests)
    assert at_once <= int(window) + 1 < 8


def test_adaptive_concurrency_can_be_turned_off(greet, fake_provider, monkeypatch):
    monkeypatch.setenv("PL_MAGIC_ADAPTIVE_CONCURRENCY", "0")
    gate = limiter.limiter_for(traffic.traffic_key("openai", fake_provider.openai_base_url))
    gate.answered(traffic.Answer(429, retry_after_s=30.0))  # would hold every call for 30 s
    start = time.monotonic()
    df = pl_magic.run_many("greet", inputs=names(8), concurrency=8)
    assert set(df["status"]) == {"ok"} and time.monotonic() - start < 10  # not held 30 s


# -- fail_fast -------------------------------------------------------------------------------


def test_fail_fast_stops_at_the_first_error_a_retry_would_not_cure(greet, fake_provider, capsys):
    df = pl_magic.run_many(
        "greet",
        models="gpt-4o-mini,gpt-x-err-404",
        repeat=3,
        concurrency=1,
        fail_fast=True,
        input_variables={"name": "A"},
    )
    assert list(df["status"]) == ["ok", "ok", "ok", "error", "skipped", "skipped"]
    assert list(df["error_category"].iloc[3:]) == ["not_found", "fail_fast", "fail_fast"]
    assert len(fake_provider.requests) == 4 and len(runs()) == 4
    lines = [line for line in capsys.readouterr().err.splitlines() if "fail-fast" in line]
    assert len(lines) == 1
    assert "run 4 of 6" in lines[0] and "openai/gpt-x-err-404" in lines[0]
    assert "not_found" in lines[0] and "2 runs not started" in lines[0]


def test_fail_fast_does_not_stop_at_a_retryable_error(greet, fake_provider, capsys):
    df = pl_magic.run_many(
        "greet",
        models="gpt-x-err-500,gpt-4o-mini",
        repeat=2,
        concurrency=1,
        fail_fast=True,
        input_variables={"name": "A"},
    )
    assert list(df["status"]) == ["error", "error", "ok", "ok"]
    assert set(df["error_category"].dropna()) == {"server"}
    assert "fail-fast" not in capsys.readouterr().err


def test_fail_fast_does_not_stop_at_a_reply_that_is_not_the_json_asked_for(
    openai_env, fake_provider
):
    # the model answered; another answer may parse
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}
    publish("judge", chat(("user", "judge {reply}")), model(response_format=response_format))
    fake_provider.structured_replies = ['{"ok": ', {"ok": True}]
    df = pl_magic.run_many(
        "judge", inputs=[{"reply": "a"}, {"reply": "b"}], concurrency=1, fail_fast=True
    )
    assert list(df["status"]) == ["error", "ok"]
    assert df["error_category"].iloc[0] == "invalid_output"


def test_fail_fast_skips_the_runs_waiting_for_their_turn(greet, fake_provider):
    # A provider that asked to wait 30 s holds every run but the failing one, which goes to
    # another provider: its error stops the comparison, and the waiting runs give up.
    gate = limiter.limiter_for(traffic.traffic_key("openai", fake_provider.openai_base_url))
    gate.answered(traffic.Answer(429, retry_after_s=30.0))
    planned = batch.plan(
        models="gpt-4o-mini,anthropic/claude-x", repeat=3, input_variables={"name": "A"}
    )
    comparison = Batch(default_client().engine, "greet", planned, concurrency=1, fail_fast=True)
    start = time.monotonic()
    progress = comparison.execute()  # no ANTHROPIC_API_KEY: claude-x fails before any call
    assert time.monotonic() - start < 5
    assert [p.status for p in progress] == ["skipped"] * 3 + ["error"] + ["skipped"] * 2
    assert fake_provider.requests == [] and runs() == []


def test_plrun_fail_fast(ip, greet, fake_provider):
    df = ip.run_cell_magic(
        "plrun", "greet --models gpt-x-err-401,gpt-4o-mini --concurrency 1 --fail-fast", "name: A"
    )
    assert list(df["status"]) == ["error", "skipped"]
    assert df["error_category"].iloc[0] == "auth"
    with pytest.raises(InvalidInputError, match="--fail-fast stops a comparison"):
        ip.run_cell_magic("plrun", "greet --fail-fast", "name: A")


# -- the interrupt -------------------------------------------------------------------------


def test_the_interrupt_stops_a_comparison_waiting_for_its_turn(greet, fake_provider):
    gate = limiter.limiter_for(traffic.traffic_key("openai", fake_provider.openai_base_url))
    gate.answered(traffic.Answer(429, retry_after_s=30.0))  # every call waits 30 s
    planned = batch.plan(repeat=6, input_variables={"name": "A"})
    comparison = Batch(default_client().engine, "greet", planned, concurrency=3)
    timer = threading.Timer(0.3, _thread.interrupt_main)  # the kernel's interrupt
    start = time.monotonic()
    timer.start()
    try:
        progress = comparison.execute()
    except KeyboardInterrupt:  # (only if execute had returned before it: then a failure)
        pytest.fail("the interrupt came after the comparison had ended")
    finally:
        timer.cancel()
    assert time.monotonic() - start < 3
    assert [p.status for p in progress] == ["pending"] * 6  # none had started
    assert fake_provider.requests == [] and runs() == []
    deadline = time.monotonic() + 2
    while any(t.name.startswith("pl_magic-run") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "worker threads still waiting"
        time.sleep(0.02)
    assert gate.in_flight == 0


def test_the_interrupt_stops_a_run_waiting_in_the_main_thread(greet, fake_provider):
    gate = limiter.limiter_for(traffic.traffic_key("openai", fake_provider.openai_base_url))
    gate.answered(traffic.Answer(429, retry_after_s=30.0))
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        try:
            pl_magic.run("greet", input_variables={"name": "A"})
        finally:
            timer.cancel()
    assert time.monotonic() - start < 3
    assert fake_provider.requests == [] and runs() == []  # nothing sent, nothing logged


def test_stop_ends_a_form_run_waiting_for_its_turn(greet, fake_provider):
    from pl_magic.surfaces.widget import PromptForm

    gate = limiter.limiter_for(traffic.traffic_key("openai", fake_provider.openai_base_url))
    gate.answered(traffic.Answer(429, retry_after_s=30.0))
    form = PromptForm("greet")
    form.variables.children[0].value = "Ada"
    form.repeat.value = 3
    start = time.monotonic()
    form.start()
    time.sleep(0.3)
    form.stop()
    assert form._worker is not None
    form._worker.join(5)
    assert not form._worker.is_alive() and time.monotonic() - start < 5
    assert "stopped before it was sent" in form.reply.value
    assert fake_provider.requests == [] and runs() == []
