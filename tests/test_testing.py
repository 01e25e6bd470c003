"""pl_magic.testing.fake_provider: the public test double, used as a user would, through
pl_magic.run (streamed or not, sync and async), run_many and %%plrun, with no key and no
server."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

import pl_magic
from pl_magic import providers
from pl_magic.core import local_target
from pl_magic.core.errors import MissingApiKeyError, ProviderError, UnknownProviderError
from pl_magic.testing import FakeRequest, NoReplyLeftError, fake_provider
from tests.helpers import chat, model, publish, runs

GREET = chat(("system", "Be brief."), ("user", "Hi {name}"))


@pytest.fixture
def greet():
    assert not os.environ.get("OPENAI_API_KEY")  # the fake needs none
    publish("greet", GREET, model(temperature=0.2))


def _reply(result: dict) -> str:
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"]


def test_run_answers_from_the_list_and_records_the_real_request(greet):
    with fake_provider(["Hello Ada, welcome", "second"]) as fake:
        first = pl_magic.run("greet", input_variables={"name": "Ada"})
        second = pl_magic.run("greet", input_variables={"name": "Bo"})
    assert (_reply(first), _reply(second)) == ("Hello Ada, welcome", "second")
    assert first["raw_response"]["text"] == "Hello Ada, welcome"
    received = fake.requests[0]
    assert (received.provider, received.model, received.stream) == ("openai", "gpt-4o-mini", False)
    assert received.texts == ("Be brief.", "Hi Ada") and received.text == "Be brief.\nHi Ada"
    # the request OpenAI would have been sent, built by the real adapter
    assert received.request["messages"][1]["content"][0]["text"] == "Hi Ada"
    assert received.request["temperature"] == 0.2
    row = runs()[0]
    assert (row["status"], row["provider"], row["output"]) == ("ok", "openai", "Hello Ada, welcome")
    # tokens are counted words (prompt texts, reply); no price
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (4, 3, None)
    assert json.loads(row["raw_response"])["object"] == "fake.response"


def test_stream_yields_the_reply_in_pieces(greet):
    with fake_provider(["one two three four five six"], chunks=3) as fake:
        chunks = list(pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True))
    texts = [_reply(c) for c in chunks]
    assert texts == ["one two ", "one two three four ", *["one two three four five six"] * 3]
    assert [c["request_id"] is not None for c in chunks] == [False] * 4 + [True]
    assert fake.requests[0].stream and fake.requests[0].request["stream"] is True
    (row,) = runs()
    assert (row["status"], row["output"], row["output_tokens"]) == (
        "ok",
        "one two three four five six",
        6,
    )


def test_async_run_and_stream(greet):
    async def main() -> tuple[dict, list[dict]]:
        result = await pl_magic.arun("greet", input_variables={"name": "Ada"})
        stream = await pl_magic.arun("greet", input_variables={"name": "Bo"}, stream=True)
        return result, [c async for c in stream]

    with fake_provider(["plain", "streamed reply"]):
        result, chunks = asyncio.run(main())
    assert _reply(result) == "plain" and _reply(chunks[-1]) == "streamed reply"
    assert [r["status"] for r in runs()] == ["ok", "ok"]


def test_a_reply_function_sees_each_request_and_run_many_goes_through_it(greet):
    threads = set()

    def reply(request: FakeRequest) -> str:
        threads.add(threading.get_ident())
        return f"{request.model}: {request.texts[-1].upper()}"

    with fake_provider(reply) as fake:
        df = pl_magic.run_many(
            "greet", models=["gpt-4o-mini", "gpt-4.1-mini"], inputs=[{"name": "Ada"}], repeat=2
        )
    assert list(df["status"]) == ["ok"] * 4
    assert sorted(df["output"]) == ["gpt-4.1-mini: HI ADA"] * 2 + ["gpt-4o-mini: HI ADA"] * 2
    assert len(fake.requests) == 4


def test_without_replies_each_call_echoes_its_prompt(greet):
    with fake_provider():
        assert _reply(pl_magic.run("greet", input_variables={"name": "Ada"})) == "Hi Ada"


def test_one_string_answers_every_call(greet):
    with fake_provider("same"):
        replies = [_reply(pl_magic.run("greet", input_variables={"name": n})) for n in "abc"]
    assert replies == ["same"] * 3


def test_an_exhausted_list_is_a_clear_error_and_a_logged_failure(greet):
    with fake_provider(["only one"]) as fake:
        pl_magic.run("greet", input_variables={"name": "Ada"})
        with pytest.raises(NoReplyLeftError) as info:
            pl_magic.run("greet", input_variables={"name": "Bo"})
    message = str(info.value)
    assert "no reply left for call 2 to openai" in message and "it was given 1" in message
    assert isinstance(info.value, ProviderError) and info.value.request_id
    assert len(fake.requests) == 2
    assert [r["status"] for r in runs()] == ["ok", "error"]


def test_an_exception_in_the_list_is_the_provider_failing(greet):
    failure = ProviderError("openai", "rate_limit", "slow down", status_code=429)
    with fake_provider([failure, "after the retry"]):
        with pytest.raises(ProviderError) as info:
            pl_magic.run("greet", input_variables={"name": "Ada"})
        assert _reply(pl_magic.run("greet", input_variables={"name": "Ada"})) == "after the retry"
    assert info.value.category == "rate_limit"
    assert [(r["status"], r["error_category"]) for r in runs()] == [
        ("error", "rate_limit"),
        ("ok", None),
    ]


def test_the_table_is_restored_even_after_an_error(greet):
    before = dict(providers.PROVIDERS)
    real = providers.get_provider("openai")
    with pytest.raises(RuntimeError), fake_provider(["x"]):
        assert providers.get_provider("openai") is not real
        assert providers.get_provider("anthropic") is providers.get_provider("anthropic")
        raise RuntimeError("the test failed inside the block")
    assert before == providers.PROVIDERS
    assert all(providers.PROVIDERS[n] is before[n] for n in before)
    assert providers.get_provider("openai") is real


def test_blocks_in_threads_may_end_in_any_order(greet, monkeypatch):
    # A opens, B opens, A ends, B runs: B's fake still answers (never the real provider),
    # and once both end the table and the environment are as they were.
    monkeypatch.delenv(local_target.ENV_BASE_URL, raising=False)
    before = dict(providers.PROVIDERS)
    real = providers.get_provider("openai")
    a_open, b_open, a_closed, b_done = (threading.Event() for _ in range(4))
    answers: list[str] = []

    def block_a() -> None:
        with fake_provider(["A"]):
            a_open.set()
            b_open.wait(5)
        a_closed.set()

    def block_b() -> None:
        a_open.wait(5)
        with fake_provider(["B"]) as fake:
            b_open.set()
            a_closed.wait(5)
            result = pl_magic.run("greet", input_variables={"name": "Ada"})
            answers.append(
                result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"]
            )
            answers.append(str(len(fake.requests)))
            answers.append(os.environ.get(local_target.ENV_BASE_URL, ""))
        b_done.set()

    threads = [threading.Thread(target=block_a), threading.Thread(target=block_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert b_done.is_set()
    assert answers[:2] == ["B", "1"]
    assert answers[2]  # the local model still pointed away from a real server inside B
    assert (
        all(providers.PROVIDERS[n] is before[n] for n in before) and before == providers.PROVIDERS
    )
    assert providers.get_provider("openai") is real
    assert local_target.ENV_BASE_URL not in os.environ


def test_standing_in_for_several_providers_and_only_those(greet):
    publish("claude", GREET, model("claude-sonnet-4-6", "anthropic"))
    with fake_provider(provider=["openai", "anthropic"]) as fake:
        pl_magic.run("claude", input_variables={"name": "Ada"})
        pl_magic.run("greet", input_variables={"name": "Bo"}, provider="anthropic")
    assert [r.provider for r in fake.requests] == ["anthropic", "anthropic"]
    assert fake.requests[0].request["system"] == "Be brief."  # Anthropic's own shape
    with fake_provider(provider="google"), pytest.raises(MissingApiKeyError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})  # openai is not faked
    assert "OPENAI_API_KEY" in str(info.value)


def test_an_unknown_provider_name_is_refused():
    with pytest.raises(UnknownProviderError), fake_provider(provider="nope"):
        pass


def test_no_key_and_no_trust_rule_a_base_url_is_only_recorded():
    publish("gw", GREET, model(), provider_base_url={"url": "https://gateway.example.com/v1"})
    with fake_provider(["fine"]) as fake:
        assert _reply(pl_magic.run("gw", input_variables={"name": "Ada"})) == "fine"
    assert fake.requests[0].base_url == "https://gateway.example.com/v1"


def test_a_local_model_template_reaches_the_fake_without_starting_a_server():
    publish(
        "loc",
        GREET,
        local_target.model_metadata(),
        provider_base_url=local_target.base_url_spec(),
    )
    with fake_provider(["from the fake"]) as fake:
        assert _reply(pl_magic.run("loc", input_variables={"name": "Ada"})) == "from the fake"
    assert fake.requests[0].model == local_target.LOCAL_MODEL_NAME
    assert fake.requests[0].base_url == "http://127.0.0.1:9/v1"
    assert local_target.ENV_BASE_URL not in os.environ


def test_plrun_runs_on_the_fake(shell, greet, capsys):
    shell.run_line_magic("load_ext", "pl_magic")
    try:
        with fake_provider(["from the magic"]) as fake:
            shell.run_cell_magic("plrun", "greet", "name: Ada\n")
    finally:
        shell.run_line_magic("unload_ext", "pl_magic")
    assert "from the magic" in capsys.readouterr().out
    assert fake.requests[0].texts[-1] == "Hi Ada"
