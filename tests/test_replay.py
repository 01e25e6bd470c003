"""The replay cache: recorded runs served from the log with no call, no key, same shape.

The real SDKs talk HTTP to the fake provider server; ``fake_provider.requests`` counts what
reached it, so a replay hit is proven by that count not moving.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import pl_magic
from pl_magic.core import config, local_target
from pl_magic.core.errors import InvalidInputError, MissingApiKeyError, ReplayMissError
from pl_magic.engine import replay
from pl_magic.ui.footer import footer
from tests.helpers import chat, model, publish, runs
from tests.test_structured_output import IDS, ROUTES

GREET = chat(("system", "Be brief."), ("user", "hi {name}"))


@pytest.fixture(autouse=True)
def _no_configured_mode(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test starts with no process-wide mode set (PL_MAGIC_CACHE decides)."""
    monkeypatch.delenv("PL_MAGIC_CACHE", raising=False)
    config.set_cache_mode(None)
    yield
    config.set_cache_mode(None)


def _publish_route(request: pytest.FixtureRequest, route: Any) -> None:
    """Apply the route's environment and publish ``greet`` for it."""
    if route.env:
        request.getfixturevalue(route.env)
        publish("greet", GREET, model(route.model, route.provider, route.api_type))
        return
    fake = request.getfixturevalue("fake_provider")
    request.getfixturevalue("monkeypatch").setenv(local_target.ENV_BASE_URL, fake.openai_base_url)
    publish(
        "greet",
        GREET,
        local_target.model_metadata(),
        provider_base_url=local_target.base_url_spec(),
    )


def _text(result: dict[str, Any]) -> str:
    from pl_magic.ui.footer import result_reply_text

    return result_reply_text(result)


def _run(stream: bool = False, **kw: Any) -> dict[str, Any]:
    kw.setdefault("input_variables", {"name": "Ada"})
    if not stream:
        return pl_magic.run("greet", **kw)
    return list(pl_magic.run("greet", stream=True, **kw))[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_hit_is_served_from_the_log_and_a_miss_calls(request, fake_provider, route, stream):
    _publish_route(request, route)
    recorded = _run(stream)
    calls = len(fake_provider.requests)

    config.set_cache_mode("replay")
    served = _run(stream)

    assert len(fake_provider.requests) == calls  # no call
    assert _text(served) == _text(recorded) and _text(served)
    assert served["request_id"] != recorded["request_id"]
    first, second = runs()
    assert second["cached_from"] == first["request_id"] and first["cached_from"] is None
    assert second["cache_key"] == first["cache_key"] and len(first["cache_key"]) == 64
    assert second["output"] == first["output"] and second["cost_usd"] == 0.0
    assert second["input_tokens"] == first["input_tokens"]
    assert isinstance(served["raw_response"], dict)  # the recorded dump, not an SDK object
    assert "replayed from " in footer(served)

    missed = _run(stream, input_variables={"name": "Bo"})  # a changed variable misses
    assert len(fake_provider.requests) == calls + 1
    assert "Bo" in _text(missed)
    assert runs()[-1]["cached_from"] is None


def test_a_streamed_replay_comes_in_the_recorded_chunk_sizes(openai_env, fake_provider):
    publish("greet", GREET)
    fake_provider.chunk_size = 3
    live = list(pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True))
    (row,) = runs()
    sizes = json.loads(row["chunk_sizes"])
    assert len(sizes) >= 3 and sum(sizes) == len(row["output"])

    config.set_cache_mode("replay")
    chunks = list(pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True))

    texts = [_text(c) for c in chunks[:-1]]
    assert [len(b) - len(a) for a, b in zip(["", *texts], texts, strict=False)] == sizes
    assert all(c["request_id"] is None for c in chunks[:-1]) and chunks[-1]["request_id"]
    assert _text(chunks[-1]) == _text(live[-1])
    assert json.loads(runs()[-1]["chunk_sizes"]) == sizes


def test_a_plain_and_a_streamed_run_share_a_key(openai_env, fake_provider):
    publish("greet", GREET)
    _run(stream=False)
    calls = len(fake_provider.requests)
    config.set_cache_mode("replay")
    chunks = list(pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True))
    assert len(fake_provider.requests) == calls
    assert len(chunks) == 2  # no recorded sizes: the text in one chunk, then the result
    assert runs()[-1]["cached_from"] == runs()[0]["request_id"]


def test_repeats_are_distinct_runs_and_the_frame_says_cached(openai_env, fake_provider):
    publish("greet", GREET)
    first = pl_magic.run_many("greet", repeat=3, input_variables={"name": "Ada"}, cache="record")
    assert not first["cached"].any()
    keys = {r["cache_key"] for r in runs()}
    assert len(keys) == 3  # one key per repeat
    calls = len(fake_provider.requests)

    again = pl_magic.run_many("greet", repeat=3, input_variables={"name": "Ada"}, cache="replay")

    assert len(fake_provider.requests) == calls
    assert again["cached"].all() and list(again["repeat"]) == list(first["repeat"])
    rows = runs()
    source = {r["request_id"]: r["repeat_index"] for r in rows[:3]}
    assert all(source[r["cached_from"]] == r["repeat_index"] for r in rows[3:])
    assert list(pl_magic.runs()["cached"]) == [False] * 3 + [True] * 3

    more = pl_magic.run_many("greet", repeat=4, input_variables={"name": "Ada"}, cache="replay")
    assert len(fake_provider.requests) == calls + 1  # only the 4th repeat is new
    assert list(more["cached"]) == [True, True, True, False]


def test_a_replay_only_comparison_serves_its_hits_and_names_each_miss(openai_env, fake_provider):
    publish("greet", GREET)
    pl_magic.run_many("greet", repeat=2, input_variables={"name": "Ada"})
    calls = len(fake_provider.requests)

    df = pl_magic.run_many("greet", repeat=3, input_variables={"name": "Ada"}, cache="replay-only")

    assert len(fake_provider.requests) == calls
    assert list(df["status"]) == ["ok", "ok", "error"] and list(df["cached"][:2]) == [True] * 2
    assert "repeat 3" in df["error"][2] and "\n" not in df["error"][2]
    assert len([r for r in runs() if r["cached_from"]]) == 2  # the served runs are all logged


def test_a_changed_parameter_misses(openai_env, fake_provider):
    publish("greet", GREET, model(temperature=0.2))
    _run()
    config.set_cache_mode("replay")
    _run()
    calls = len(fake_provider.requests)
    _run(model_parameter_overrides={"temperature": 0.9})
    assert len(fake_provider.requests) == calls + 1
    _run(model="gpt-4o")  # another model misses too
    assert len(fake_provider.requests) == calls + 2


def test_a_hit_needs_no_key_and_a_miss_still_does(openai_env, fake_provider, monkeypatch):
    publish("greet", GREET)
    recorded = _run()
    monkeypatch.delenv("OPENAI_API_KEY")
    # (a server on this machine needs no key: a miss would call the fake without one)
    monkeypatch.delenv("OPENAI_BASE_URL")  # (not part of the key: the hit still hits)
    monkeypatch.setenv("PL_MAGIC_CACHE", "replay")

    assert _text(_run()) == _text(recorded)
    with pytest.raises(MissingApiKeyError):
        _run(input_variables={"name": "Bo"})


def test_replay_only_never_calls(openai_env, fake_provider, monkeypatch):
    publish("greet", GREET)
    _run()
    calls = len(fake_provider.requests)
    monkeypatch.setenv("PL_MAGIC_CACHE", "replay-only")

    _run()  # a hit
    with pytest.raises(ReplayMissError) as err:
        _run(input_variables={"name": "Bo"}, stream=True)

    message = str(err.value)
    assert "\n" not in message
    for part in ("greet", "v1", "openai/gpt-4o-mini", "repeat 1"):
        assert part in message
    assert len(fake_provider.requests) == calls


def test_the_async_api_replays(openai_env, fake_provider):
    publish("greet", GREET)
    recorded = _run()
    calls = len(fake_provider.requests)
    config.set_cache_mode("replay")

    async def go() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = await pl_magic.arun("greet", input_variables={"name": "Ada"})
        chunks = [
            c
            async for c in await pl_magic.arun(
                "greet", input_variables={"name": "Ada"}, stream=True
            )
        ]
        return result, chunks

    result, chunks = asyncio.run(go())
    assert len(fake_provider.requests) == calls
    assert _text(result) == _text(chunks[-1]) == _text(recorded)


def test_runs_logged_in_off_mode_replay(openai_env, fake_provider):
    publish("greet", GREET)
    assert config.cache_mode() == "off"
    _run()
    assert runs()[0]["cache_key"]  # stored in every mode
    config.set_cache_mode("record")
    _run()  # record always calls
    assert len(fake_provider.requests) == 2
    config.set_cache_mode("replay")
    _run()
    assert len(fake_provider.requests) == 2
    assert runs()[-1]["cached_from"] == runs()[1]["request_id"]  # the newest recording


def test_bad_modes_are_one_line_errors(openai_env, monkeypatch):
    publish("greet", GREET)
    with pytest.raises(InvalidInputError, match="off, record, replay, replay-only"):
        config.set_cache_mode("sometimes")
    with pytest.raises(InvalidInputError, match="cache must be one of"):
        pl_magic.run_many("greet", input_variables={"name": "Ada"}, cache="always")
    monkeypatch.setenv("PL_MAGIC_CACHE", "bogus")
    with pytest.raises(InvalidInputError, match="PL_MAGIC_CACHE must be one of"):
        _run()


def test_the_key_leaves_out_how_the_reply_is_delivered():
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    key = replay.cache_key("openai", "m", None, request, 0)
    streamed = {**request, "stream": True, "stream_options": {"include_usage": True}}
    assert replay.cache_key("openai", "m", None, streamed, 0) == key
    assert replay.cache_key("openai", "m", None, request, 1) != key
    assert replay.cache_key("openai", "m", "http://gw", request, 0) != key
    assert replay.cache_key("anthropic", "m", None, request, 0) != key


@pytest.mark.parametrize(
    ("provider", "model", "base_url", "request_", "repeat"),
    [
        ("openai", "gpt-4o-mini", None, {"model": "gpt-4o-mini", "temperature": 0.2}, 0),
        ("anthropic", 'c"1', 'http://gw/"x', {"b": [1, {"z": None, "a": "é\u2028"}]}, 7),
        ("openai", "m", None, {"when": __import__("datetime").date(2026, 1, 2)}, 3),
        # (values a template's URL should never be, keyed as JSON writes them all the same:
        # 1 and True are one key to a cache that ignores types, not to JSON)
        ("openai", "m", 1, {}, 0),
        ("openai", "m", True, {}, 0),
        ("openai", "m", ["http://gw"], {}, 0),
    ],
)
def test_the_key_is_the_sha256_of_the_documented_canonical_json(
    provider, model, base_url, request_, repeat
):
    """Keys recorded by earlier versions still hit: the key's text is exactly this JSON,
    however it is built (a batch job encodes each request once for all its repeats)."""
    import hashlib

    text = json.dumps(
        {
            "provider": provider,
            "model": model,
            "base_url": base_url,
            "request": request_,
            "repeat": repeat,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert replay.cache_key(provider, model, base_url, request_, repeat) == expected
    keys = replay.RequestKey(provider, model, base_url, {**request_, "stream": True})
    assert keys(repeat) == expected
    assert json.loads(keys.request_json) == json.loads(json.dumps(request_, default=str))


def test_the_magic_takes_the_mode(ip, fake_provider):
    publish("greet", GREET)
    ip.run_cell_magic("plrun", "greet --cache record", "name: Ada")
    calls = len(fake_provider.requests)
    ip.run_line_magic("config", 'PlMagic.cache = "replay"')
    assert config.cache_mode() == "replay"
    ip.run_cell_magic("plrun", "greet", "name: Ada")
    assert len(fake_provider.requests) == calls
    ip.run_cell_magic("plrun", "greet --cache off", "name: Ada")
    assert len(fake_provider.requests) == calls + 1
    ip.run_line_magic("config", "PlMagic.cache = None")


# -- PromptLayer --------------------------------------------------------------------------


@pytest.fixture
def pl_greet(promptlayer_env, openai_env, fake_promptlayer):
    fake_promptlayer.add_prompt("greet", GREET, model(temperature=0.2), labels=["prod"])
    return fake_promptlayer


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_served_runs_are_not_sent_to_promptlayer(pl_greet, fake_provider, stream):
    recorded = _run(stream)
    assert recorded["request_id"] == 101 and len(pl_greet.tracked) == 1
    calls = len(fake_provider.requests)

    config.set_cache_mode("replay")
    served = _run(stream)

    assert len(fake_provider.requests) == calls
    assert len(pl_greet.tracked) == 1  # not sent again
    first, second = runs()
    assert second["cached_from"] == first["request_id"]
    assert second["sync_state"] is None and second["sync_payload"] is None
    assert served["request_id"] == second["request_id"]  # the local id
    assert _text(served) == "echo: hi Ada"


def test_a_hit_on_anthropic_needs_no_key(anthropic_env, fake_provider, monkeypatch):
    publish("greet", GREET, model("claude-sonnet-4-5", "anthropic"))
    recorded = _run(stream=True)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    monkeypatch.setenv("PL_MAGIC_CACHE", "replay")
    calls = len(fake_provider.requests)

    assert _text(_run(stream=True)) == _text(recorded)
    assert len(fake_provider.requests) == calls
    with pytest.raises(MissingApiKeyError):
        _run(input_variables={"name": "Bo"})


# -- export / import ----------------------------------------------------------------------


def test_export_import_round_trip_replays_elsewhere(
    openai_env, fake_provider, tmp_path, monkeypatch, capsys
):
    from pl_magic.surfaces.cli import main

    publish("greet", GREET)
    fake_provider.chunk_size = 4
    _run(stream=True)
    _run()  # the same key, newer: the one exported
    _run(input_variables={"name": "Bo"})
    config.set_cache_mode("replay")
    _run()  # a served run: not exported
    path = tmp_path / "recording.jsonl"

    assert main(["replay", "export", str(path)]) == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    rows = runs()
    assert [r["request_id"] for r in lines] == [rows[1]["request_id"], rows[2]["request_id"]]

    # someone else: a fresh home, the same prompt, no key
    monkeypatch.setenv("PL_MAGIC_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("OPENAI_API_KEY")
    publish("greet", GREET)
    assert main(["replay", "import", str(path)]) == 0
    assert "Imported 2 recorded run(s)" in capsys.readouterr().out
    assert main(["replay", "import", str(path)]) == 0
    assert "Imported 0 recorded run(s) (2 already there)" in capsys.readouterr().out

    calls = len(fake_provider.requests)
    config.set_cache_mode("replay-only")
    assert _text(_run()) == lines[0]["output"]
    assert _text(_run(input_variables={"name": "Bo"})) == lines[1]["output"]
    assert len(fake_provider.requests) == calls
    imported = runs()[0]
    assert imported["sync_state"] is None and imported["cached_from"] is None


def test_a_bad_import_line_is_one_line_naming_it(tmp_path, capsys):
    from pl_magic.surfaces.cli import main

    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"request_id": "a", "cache_key": "k", "output": "x", "started_at": "t"}\n[1]\n'
    )
    assert main(["replay", "import", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 2" in err
    assert pl_magic.runs().empty  # nothing stored when a line is bad


def test_gemini_on_vertex_and_on_the_gemini_api_do_not_share_a_key(monkeypatch):
    request = {
        "model": "gemini-2.5-flash",
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    }
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_ENTERPRISE", raising=False)
    gemini = replay.cache_key("google", "gemini-2.5-flash", None, request, 0)
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    vertex = replay.cache_key("google", "gemini-2.5-flash", None, request, 0)
    assert gemini != vertex
    assert vertex == replay.cache_key("google", "gemini-2.5-flash", None, request, 0)
