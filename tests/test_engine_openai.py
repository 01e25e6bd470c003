"""run() / arun() with the OpenAI provider, over HTTP against the fake provider server."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import threading
import typing

import openai
import pytest

import pl_magic
from pl_magic.client import default_client
from pl_magic.core.errors import ProviderError, StreamTruncatedError
from pl_magic.core.types import RUN_ARGUMENTS, RunArgs
from pl_magic.engine.engine import RunOptions
from tests.helpers import chat, completion, model, publish, runs

SUPPORT = chat(("system", "You are terse."), ("user", "Say hi to {name}"))


def _last_text(result: dict) -> str:
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]


@pytest.mark.parametrize(
    ("api_type", "template", "path", "native_type"),
    [
        (None, SUPPORT, "/v1/chat/completions", openai.types.chat.ChatCompletion),
        (None, completion("Say hi to {name}"), "/v1/completions", openai.types.Completion),
        ("responses", SUPPORT, "/v1/responses", openai.types.responses.Response),
    ],
    ids=["chat", "completion", "responses"],
)
def test_run_each_api_not_streamed(
    openai_env, fake_provider, api_type, template, path, native_type
):
    publish("support", template, model(api_type=api_type, temperature=0.2, max_tokens=50))

    result = pl_magic.run("support", input_variables={"name": "Ada"})

    assert set(result) == {"request_id", "raw_response", "prompt_blueprint"}
    assert isinstance(result["raw_response"], native_type)
    (req,) = fake_provider.requests
    assert req.path == path
    assert req.headers["authorization"] == f"Bearer {openai_env}"
    assert req.body["model"] == "gpt-4o-mini"
    assert req.body["temperature"] == 0.2
    assert "Say hi to Ada" in json.dumps(req.body)
    bp = result["prompt_blueprint"]
    assert bp["metadata"]["model"]["name"] == "gpt-4o-mini"
    if template["type"] == "chat":
        assert bp["prompt_template"]["messages"][-1]["role"] == "assistant"
        assert _last_text(result) == "echo: Say hi to Ada"
    else:
        assert bp["prompt_template"]["content"][-1]["text"] == "echo: Say hi to Ada"
    (row,) = runs()
    assert row["request_id"] == result["request_id"]
    assert row["status"] == "ok"
    assert row["output"] == "echo: Say hi to Ada"
    assert row["input_tokens"] > 0 and row["output_tokens"] == 5
    assert row["latency_s"] > 0 and row["ttft_s"] > 0
    assert row["prompt_version"] == 1 and row["prompt_name"] == "support"
    assert json.loads(row["input_variables"]) == {"name": "Ada"}
    assert row["cost_usd"] is not None  # gpt-4o-mini is in genai-prices


@pytest.mark.parametrize(
    ("api_type", "template", "path"),
    [
        (None, SUPPORT, "/v1/chat/completions"),
        (None, completion("Say hi to {name}"), "/v1/completions"),
        ("responses", SUPPORT, "/v1/responses"),
    ],
    ids=["chat", "completion", "responses"],
)
def test_run_each_api_streamed(openai_env, fake_provider, api_type, template, path):
    publish("support", template, model(api_type=api_type))

    chunks = list(pl_magic.run("support", input_variables={"name": "Ada"}, stream=True))

    (req,) = fake_provider.requests
    assert req.path == path and req.body["stream"] is True
    if api_type is None:
        assert req.body["stream_options"] == {"include_usage": True}
    assert len(chunks) >= 4
    assert all(c["request_id"] is None for c in chunks[:-1])
    assert chunks[-1]["request_id"]
    texts = [json.dumps(c["prompt_blueprint"]["prompt_template"]) for c in chunks]
    assert "echo: Say hi to Ada" in texts[-1]
    (row,) = runs()
    assert row["status"] == "ok" and row["output"] == "echo: Say hi to Ada"
    assert row["request_id"] == chunks[-1]["request_id"]
    assert row["input_tokens"] > 0 and row["output_tokens"] == 5
    assert row["ttft_s"] is not None and row["latency_s"] >= row["ttft_s"]


def test_stream_blueprint_grows_and_is_incremental(openai_env, fake_provider):
    publish("support", SUPPORT)
    fake_provider.reply_text = "one two three four five six seven eight"
    fake_provider.chunk_size = 4
    gate = threading.Event()
    fake_provider.hold_before_last = gate

    stream = pl_magic.run("support", input_variables={"name": "Ada"}, stream=True)
    seen = []
    for chunk in stream:
        seen.append(chunk)
        if len(seen) == 3:
            # three chunks reached us while the server still holds back its last one
            assert fake_provider.final_sent_count == 0
            gate.set()
    assert fake_provider.final_sent_count == 1
    texts = [
        c["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]
        for c in seen
        if c["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"]
    ]
    lengths = [len(t) for t in texts]
    assert lengths == sorted(lengths) and len(set(lengths)) >= 3
    assert texts[-1] == "one two three four five six seven eight"
    assert [c["request_id"] is not None for c in seen].count(True) == 1


def test_breaking_out_of_a_stream_logs_cancelled_with_partial_text(openai_env, fake_provider):
    publish("support", SUPPORT)
    fake_provider.reply_text = "alpha beta gamma delta epsilon"
    fake_provider.chunk_size = 5
    got = ""
    for chunk in pl_magic.run("support", input_variables={"name": "Ada"}, stream=True):
        msg = chunk["prompt_blueprint"]["prompt_template"]["messages"][-1]
        got = msg["content"][-1]["text"] if msg["content"] else ""
        if len(got) >= 10:
            break
    (row,) = runs()
    assert row["status"] == "cancelled"
    assert row["output"] == got and 10 <= len(got) < len("alpha beta gamma delta epsilon")


def test_provider_base_url_sends_the_request_there_without_a_key(fake_provider, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    publish("local", SUPPORT, provider_base_url=fake_provider.openai_base_url)

    result = pl_magic.run("local", input_variables={"name": "Bo"})

    (req,) = fake_provider.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer no-key-needed"
    assert _last_text(result) == "echo: Say hi to Bo"
    assert runs()[0]["cost_usd"] is None  # a local server is not billed


def test_labels_move_and_the_resolved_version_is_recorded(openai_env, fake_provider):
    for n in (1, 2, 3):
        publish("greet", chat(("user", f"v{n} hello {{name}}")))
    pl_magic.set_label("greet", "prod", 2)

    first = pl_magic.run("greet", prompt_release_label="prod", input_variables={"name": "A"})
    pl_magic.set_label("greet", "prod", 3)
    second = pl_magic.run("greet", prompt_release_label="prod", input_variables={"name": "A"})

    assert _last_text(first) == "echo: v2 hello A"
    assert _last_text(second) == "echo: v3 hello A"
    assert first["prompt_blueprint"]["prompt_version"] == 2
    assert second["prompt_blueprint"]["prompt_version"] == 3
    rows = runs()
    assert [(r["prompt_version"], r["release_label"]) for r in rows] == [(2, "prod"), (3, "prod")]
    assert pl_magic.get_template("greet", label="prod")["version"] == 3


def test_label_wins_over_version_with_a_one_line_warning(openai_env, fake_provider, capsys):
    for n in (1, 2):
        publish("greet", chat(("user", f"v{n}")))
    pl_magic.set_label("greet", "prod", 2)

    result = pl_magic.run("greet", prompt_version=1, prompt_release_label="prod")

    assert _last_text(result) == "echo: v2"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "label wins" in err[0]


def test_model_parameter_overrides_merge_over_the_template(openai_env, fake_provider):
    publish("p", chat(("user", "hi")), model(temperature=0.2, max_tokens=50))

    result = pl_magic.run("p", model_parameter_overrides={"temperature": 0.9, "seed": 7})

    body = fake_provider.requests[0].body
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.9, 50, 7)
    params = result["prompt_blueprint"]["metadata"]["model"]["parameters"]
    assert params == {"temperature": 0.9, "max_tokens": 50, "seed": 7}


def test_model_override_keeps_the_provider(openai_env, fake_provider):
    publish("p", chat(("user", "hi")))
    result = pl_magic.run("p", model="gpt-4.1-mini")
    assert fake_provider.requests[0].body["model"] == "gpt-4.1-mini"
    assert result["prompt_blueprint"]["metadata"]["model"]["name"] == "gpt-4.1-mini"
    assert runs()[0]["model"] == "gpt-4.1-mini"


def test_tags_metadata_and_group_are_logged(openai_env, fake_provider):
    publish("p", chat(("user", "hi")))
    group = pl_magic.create_group()
    pl_magic.run("p", tags=["exp"], metadata={"user": "u1"}, group_id=group)
    (row,) = runs()
    assert json.loads(row["tags"]) == ["exp"]
    assert json.loads(row["metadata"]) == {"user": "u1"}
    assert row["group_id"] == group
    assert pl_magic.create_group() == group + 1


def test_arun_not_streamed_and_streamed(openai_env, fake_provider):
    publish("p", SUPPORT)

    async def go():
        result = await pl_magic.arun("p", input_variables={"name": "Ada"})
        chunks = [
            c async for c in await pl_magic.arun("p", input_variables={"name": "Ed"}, stream=True)
        ]
        return result, chunks

    result, chunks = asyncio.run(go())
    assert _last_text(result) == "echo: Say hi to Ada"
    assert chunks[-1]["request_id"] and all(c["request_id"] is None for c in chunks[:-1])
    assert _last_text(chunks[-1]) == "echo: Say hi to Ed"
    assert [r["status"] for r in runs()] == ["ok", "ok"]


# -- the engine's own calls ------------------------------------------------------------------


def test_engine_run_returns_a_result_and_stream_the_chunks(openai_env, fake_provider):
    publish("p", SUPPORT)
    engine = default_client().engine
    options = RunOptions.build("p", input_variables={"name": "Ada"})

    result = engine.run(options)
    chunks = list(engine.stream(options))  # streams though the options say stream=False
    streamed_result = engine.run(RunOptions.build("p", input_variables={"name": "Ed"}, stream=True))

    assert set(result) == {"request_id", "raw_response", "prompt_blueprint"}
    assert _last_text(result) == "echo: Say hi to Ada"
    assert options.stream is False  # the options are not changed by stream()
    assert chunks[-1]["request_id"] and all(c["request_id"] is None for c in chunks[:-1])
    assert _last_text(chunks[-1]) == "echo: Say hi to Ada"
    # run() of stream options streams from the provider and returns the last chunk
    assert streamed_result["request_id"] and _last_text(streamed_result) == "echo: Say hi to Ed"
    assert [r.body.get("stream", False) for r in fake_provider.requests] == [False, True, True]
    assert [r["status"] for r in runs()] == ["ok", "ok", "ok"]


def test_engine_arun_returns_a_result_and_astream_the_chunks(openai_env, fake_provider):
    publish("p", SUPPORT)
    engine = default_client().engine

    async def go():
        result = await engine.arun(RunOptions.build("p", input_variables={"name": "Ada"}))
        options = RunOptions.build("p", input_variables={"name": "Ed"})
        chunks = [c async for c in await engine.astream(options)]
        return result, chunks

    result, chunks = asyncio.run(go())
    assert _last_text(result) == "echo: Say hi to Ada"
    assert chunks[-1]["request_id"] and all(c["request_id"] is None for c in chunks[:-1])
    assert _last_text(chunks[-1]) == "echo: Say hi to Ed"


def test_run_options_are_frozen():
    options = RunOptions.build("p", tags=["a"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.stream = True  # type: ignore[misc]


def _named_parameters(function: typing.Callable[..., object]) -> dict[str, object]:
    """A function's named parameters (not self, not **kwargs) with their evaluated types."""
    return {
        name: eval(p.annotation, {"Any": typing.Any})  # (annotations are strings here)
        for name, p in inspect.signature(function).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    }


@pytest.mark.parametrize(
    "function",
    [
        pl_magic.run,
        pl_magic.arun,
        pl_magic.PromptLayer.run,
        pl_magic.PromptLayer.arun,
        pl_magic.AsyncPromptLayer.run,
    ],
    ids=lambda f: f.__qualname__,
)
def test_every_public_run_takes_the_arguments_of_run_args(function):
    """The public signatures are PromptLayer's contract, spelled out for IDEs and help();
    RunArgs is the one list they forward by name (RunOptions.from_call): they must agree."""
    types = typing.get_type_hints(RunArgs)
    parameters = _named_parameters(function)
    assert set(parameters) == set(RUN_ARGUMENTS)
    assert parameters == {"prompt_name": str, **types}
    if function.__qualname__.split(".")[0] in ("PromptLayer", "AsyncPromptLayer"):
        assert list(parameters) == list(RUN_ARGUMENTS)  # PromptLayer's SDK order


# -- faults at the wire ----------------------------------------------------------------------


def test_429_is_retried_then_succeeds(openai_env, fake_provider):
    publish("p", chat(("user", "hi")), model("gpt-4o-mini-flaky-429"))
    result = pl_magic.run("p")
    assert _last_text(result) == "echo: hi"
    assert [r.retry_count for r in fake_provider.requests] == [0, 1]
    assert runs()[0]["status"] == "ok"


def test_401_is_not_retried_and_is_an_auth_error(openai_env, fake_provider):
    publish("p", chat(("user", "hi")), model("gpt-err-401"))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p")
    assert info.value.category == "auth" and info.value.status_code == 401
    assert isinstance(info.value.__cause__, openai.AuthenticationError)
    assert len(fake_provider.requests) == 1
    assert "\n" not in str(info.value) and openai_env not in str(info.value)
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "auth")


@pytest.mark.parametrize("api_type", [None, "responses"])
def test_stream_cut_midway_is_an_error_with_partial_text(openai_env, fake_provider, api_type):
    publish("p", chat(("user", "one two three four five six")), model("gpt-cut", api_type=api_type))
    got = []
    with pytest.raises(ProviderError) as info:
        for chunk in pl_magic.run("p", stream=True):
            got.append(chunk)
    assert info.value.category == "connection"
    (row,) = runs()
    assert row["status"] == "error" and row["error_category"] == "connection"
    assert row["output"] and "echo: one two three four five six".startswith(row["output"])
    assert row["output"] != "echo: one two three four five six"
    assert info.value.partial_text == row["output"]


@pytest.mark.parametrize("api_type", [None, "responses"])
def test_clean_early_end_of_stream_is_truncated_not_success(openai_env, fake_provider, api_type):
    publish("p", chat(("user", "one two three four five six")), model("gpt-eof", api_type=api_type))
    with pytest.raises(StreamTruncatedError):
        list(pl_magic.run("p", stream=True))
    (row,) = runs()
    assert (row["status"], row["error_category"]) == ("error", "truncated")
    assert row["output"] and row["output"] != "echo: one two three four five six"


@pytest.mark.parametrize("api_type", [None, "responses"])
def test_in_band_stream_error_is_a_server_error(openai_env, fake_provider, api_type):
    publish("p", chat(("user", "one two three four")), model("gpt-sse-error", api_type=api_type))
    with pytest.raises(ProviderError) as info:
        list(pl_magic.run("p", stream=True))
    assert info.value.category == "server"
    assert runs()[0]["status"] == "error"


def test_500_is_retried_then_reported_as_server_error(openai_env, fake_provider):
    publish("p", chat(("user", "hi")), model("gpt-err-500"))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p")
    assert info.value.category == "server"
    assert len(fake_provider.requests) == 3  # the SDK's own retries: 1 + 2


def test_404_model_is_not_found(openai_env, fake_provider):
    publish("p", chat(("user", "hi")), model("gpt-err-404"))
    with pytest.raises(ProviderError) as info:
        pl_magic.run("p")
    assert info.value.category == "not_found"


def test_keyboard_interrupt_while_waiting_logs_cancelled(openai_env, fake_provider):
    publish("p", chat(("user", "one two three four five six seven")))
    fake_provider.chunk_size = 3
    stream = pl_magic.run("p", stream=True)
    next(stream)
    next(stream)
    with pytest.raises(KeyboardInterrupt):
        stream.throw(KeyboardInterrupt)
    (row,) = runs()
    assert row["status"] == "cancelled" and row["output"]
