"""Structured replies in the DataFrames (``parsed``, ``expand``) and replies that are not the
JSON asked for (status ``error``, category ``invalid_output``), in the log, the frames, the
magic and what PromptLayer receives. Real SDKs against the fake provider server."""

from __future__ import annotations

from typing import Any

import pytest

import pl_magic
from pl_magic.errors import InvalidInputError, InvalidOutputError
from tests.helpers import chat, model, publish, runs

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "score": {"type": "integer"},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["verdict", "score", "reasons"],
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "judgement", "schema": SCHEMA, "strict": True},
}
JUDGE = chat(("user", "Judge: {reply}"))
PASS = {"verdict": "pass", "score": 5, "reasons": ["short"]}
FAIL = {"verdict": "fail", "score": 1, "reasons": ["rude", "long"]}
BROKEN = '{"verdict": "pass", "score": '


def _judge(provider: str = "openai", name: str = "gpt-4o-mini") -> None:
    publish("judge", JUDGE, model(name, provider, response_format=RESPONSE_FORMAT))


def test_runs_parse_structured_replies_and_expand_their_fields(openai_env, fake_provider):
    _judge()
    publish("plain", chat(("user", "Hi {reply}")))
    fake_provider.structured_replies = [PASS, FAIL]
    pl_magic.run("judge", input_variables={"reply": "a"})
    list(pl_magic.run("judge", input_variables={"reply": "b"}, stream=True))
    pl_magic.run("plain", input_variables={"reply": "c"})

    df = pl_magic.runs()
    assert list(df["parsed"]) == [PASS, FAIL, None]
    assert "parsed.verdict" not in df.columns
    wide = pl_magic.runs(expand=True)
    at = list(wide.columns).index("parsed")
    assert list(wide.columns)[at : at + 5] == [
        "parsed",
        "parsed.verdict",
        "parsed.score",
        "parsed.reasons",
        "tool_calls",
    ]
    assert list(wide["parsed.verdict"]) == ["pass", "fail", None]
    assert list(wide["parsed.reasons"]) == [["short"], ["rude", "long"], None]


def test_run_many_parses_and_expands_on_every_provider(
    openai_env, anthropic_env, gemini_env, fake_provider
):
    _judge()
    fake_provider.structured_replies = [PASS, PASS, PASS]
    df = pl_magic.run_many(
        "judge",
        models=["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"],
        inputs=[{"reply": "x"}],
        expand=True,
        concurrency=1,
    )
    assert sorted(df["provider"]) == ["anthropic", "google", "openai"]  # the override keeps it
    assert list(df["status"]) == ["ok"] * 3
    assert list(df["parsed"]) == [PASS] * 3
    assert list(df["parsed.score"]) == [5, 5, 5]
    pl_magic.compare(df)  # the extra columns do not get in compare's way


def test_json_object_without_a_schema_expands_the_keys_the_replies_have(openai_env, fake_provider):
    publish("free", JUDGE, model(response_format={"type": "json_object"}))
    fake_provider.structured_replies = [{"a": 1}, {"b": 2}]
    pl_magic.run("free", input_variables={"reply": "x"})
    pl_magic.run("free", input_variables={"reply": "y"})
    wide = pl_magic.runs(expand=True)
    assert list(wide["parsed.a"]) == [1, None] and list(wide["parsed.b"]) == [None, 2]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    "provider, name, env",
    [
        ("openai", "gpt-4o-mini", "openai_env"),
        ("anthropic", "claude-sonnet-4-5", "anthropic_env"),
        ("google", "gemini-2.5-flash", "gemini_env"),
    ],
)
def test_an_invalid_reply_is_a_failed_run_that_keeps_its_text(
    request, fake_provider, provider, name, env, stream
):
    request.getfixturevalue(env)
    _judge(provider, name)
    fake_provider.structured_replies = [BROKEN]
    with pytest.raises(InvalidOutputError) as info:
        result = pl_magic.run("judge", input_variables={"reply": "x"}, stream=stream)
        if stream:
            list(result)
    error = info.value
    assert "\n" not in str(error) and "not the JSON its response_format asks for" in str(error)
    assert error.category == "invalid_output" and error.partial_text == BROKEN
    assert error.result["raw_response"] is not None
    (row,) = runs()
    assert error.request_id == row["request_id"]
    assert (row["status"], row["error_category"], row["output"]) == (
        "error",
        "invalid_output",
        BROKEN,
    )
    assert row["input_tokens"] and row["output_tokens"]  # paid for: counted
    df = pl_magic.runs()
    assert df["parsed"].iloc[0] is None and df["output"].iloc[0] == BROKEN


def test_run_many_shows_an_invalid_reply_as_a_failed_row(openai_env, fake_provider):
    _judge()
    fake_provider.structured_replies = [PASS, BROKEN]
    df = pl_magic.run_many("judge", inputs=[{"reply": "a"}, {"reply": "b"}], concurrency=1)
    by_input = df.set_index("var.reply")
    assert by_input.loc["a", "status"] == "ok" and by_input.loc["a", "parsed"] == PASS
    bad = by_input.loc["b"]
    assert (bad["status"], bad["error_category"], bad["output"]) == (
        "error",
        "invalid_output",
        BROKEN,
    )
    assert bad["parsed"] is None
    assert pl_magic.compare(df).data.loc["error rate"].iloc[0] == 0.5


def test_promptlayer_gets_the_invalid_reply_with_its_response_and_a_marker(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    fake_promptlayer.add_prompt("judge", JUDGE, model(response_format=RESPONSE_FORMAT))
    fake_provider.structured_replies = [BROKEN]
    with pytest.raises(InvalidOutputError):
        pl_magic.run("judge", input_variables={"reply": "x"})
    ((remote_id, payload),) = fake_promptlayer.tracked.items()
    # What PromptLayer's SDK would send (it does not parse replies): the reply is kept there.
    assert "status" not in payload
    message = payload["request_response"]["choices"][0]["message"]
    assert message["content"] == BROKEN
    assert payload["metadata"]["pl_magic_error"] == "invalid_output"
    (row,) = runs()
    assert (row["status"], row["error_category"], row["sync_state"]) == (
        "error",
        "invalid_output",
        "sent",
    )
    assert row["remote_request_id"] == str(remote_id)


# -- the magic -------------------------------------------------------------------------------


def test_the_magic_expands_a_comparison_and_shows_a_failed_reply(ip, fake_provider, capsys):
    _judge()
    ip.user_ns["rows"] = [{"reply": "a"}, {"reply": "b"}]
    fake_provider.structured_replies = [PASS, FAIL]
    ip.run_line_magic("plrun", "judge --inputs rows --expand --out df --concurrency 1")
    df = ip.user_ns["df"]
    assert sorted(df["parsed.verdict"]) == ["fail", "pass"]
    with pytest.raises(InvalidInputError, match="--expand adds columns to a comparison"):
        ip.run_cell_magic("plrun", "judge --expand", "reply: x\n")
    capsys.readouterr()
    fake_provider.structured_replies = [BROKEN]
    with pytest.raises(InvalidOutputError):
        ip.run_cell_magic("plrun", "judge --no-stream", "reply: x\n")
    out = capsys.readouterr().out
    assert BROKEN in out and "failed:" in out  # the text the model gave shows, as a failure


def test_the_async_api_raises_the_same_error_and_logs_once(openai_env, fake_provider):
    import asyncio

    _judge()
    fake_provider.structured_replies = [BROKEN, BROKEN]

    async def go() -> list[str]:
        texts = []
        with pytest.raises(InvalidOutputError) as plain:
            await pl_magic.arun("judge", input_variables={"reply": "x"})
        texts.append(plain.value.partial_text)
        with pytest.raises(InvalidOutputError) as streamed:
            async for _ in await pl_magic.arun(
                "judge", input_variables={"reply": "y"}, stream=True
            ):
                pass
        texts.append(streamed.value.partial_text)
        return texts

    assert asyncio.run(go()) == [BROKEN, BROKEN]
    assert [(r["status"], r["error_category"]) for r in runs()] == [("error", "invalid_output")] * 2


def test_a_deeply_nested_structured_reply_does_not_break_reading_the_log():
    from pl_magic.engine.results import parsed_reply

    parameters = {"response_format": {"type": "json_object"}}
    assert parsed_reply(parameters, "[" * 100_000, "ok") is None
