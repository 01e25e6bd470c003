"""The engine's own logic, fast: every run goes through the real engine with
``pl_magic.testing.fake_provider`` standing in for the provider (no server, no key).

Only public entry points are used (``pl_magic.run``, ``arun``, ``run_many``, ``runs()``,
the PromptLayer-shaped result), so these tests hold whatever the engine's insides become.
What each SDK sends and receives on the wire is tested against the fake servers in
tests/fakes (test_engine_openai.py, test_providers.py); here it is the engine's contract:
the result and chunks of PromptLayer's ``run()`` (reference/promptlayer-api.md §1, §5),
the log of every run, resolution, rendering, overrides and what is refused before a call.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import pl_magic
from pl_magic.core.errors import (
    InvalidInputError,
    LabelNotFoundError,
    MissingVariablesError,
    PromptNotFoundError,
    ProviderError,
)
from pl_magic.testing import fake_provider
from tests.helpers import chat, completion, model, publish

GREET = chat(("system", "Be brief."), ("user", "Hi {name}"))


@pytest.fixture
def greet() -> None:
    publish("greet", GREET, model(temperature=0.2, max_tokens=50))


def _reply(result: dict[str, Any]) -> str:
    """The reply text in a result's or chunk's blueprint (PromptLayer's own recipe, §6)."""
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]


def _log() -> list[dict[str, Any]]:
    """Every logged run, oldest first, as records of pl_magic.runs() (no value: None)."""
    df = pl_magic.runs()
    return df.astype(object).where(df.notna(), None).to_dict("records")


# -- the run() result -------------------------------------------------------------------------


def test_result_has_promptlayers_three_keys_and_the_reply_appended(greet):
    with fake_provider(["Hello Ada!"]):
        result = pl_magic.run("greet", input_variables={"name": "Ada"})

    assert set(result) == {"request_id", "raw_response", "prompt_blueprint"}
    assert re.fullmatch(r"[0-9a-f]{32}", result["request_id"])
    # raw_response is the provider's own response, untouched (the fake's is a dict)
    assert result["raw_response"]["object"] == "fake.response"
    assert result["raw_response"]["text"] == "Hello Ada!"
    bp = result["prompt_blueprint"]
    assert bp["prompt_template"]["messages"] == [
        {
            "role": "system",
            "content": [{"type": "text", "text": "Be brief."}],
            "template_format": "f-string",
            "input_variables": [],
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi Ada"}],
            "template_format": "f-string",
            "input_variables": ["name"],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Hello Ada!"}],
            "tool_calls": None,
            "input_variables": [],
            "template_format": "f-string",
        },
    ]
    assert bp["metadata"]["model"] == {
        "provider": "openai",
        "name": "gpt-4o-mini",
        "parameters": {"temperature": 0.2, "max_tokens": 50},
        "api_type": "chat-completions",
    }
    assert (bp["prompt_name"], bp["prompt_version"], bp["release_label"]) == ("greet", 1, None)
    (row,) = _log()
    assert row["request_id"] == result["request_id"]
    assert (row["status"], row["output"], row["input_tokens"], row["output_tokens"]) == (
        "ok",
        "Hello Ada!",
        4,
        2,
    )
    # the registry's template is left as published (the result holds a rendered copy)
    stored = pl_magic.get_template("greet")["prompt_template"]["messages"]
    assert stored[1]["content"][0]["text"] == "Hi {name}" and len(stored) == 2


def test_a_completion_template_gets_the_reply_as_its_last_block():
    publish("word", completion("Say {{ word }} twice", fmt="jinja2"))
    with fake_provider(["yes yes"]) as fake:
        result = pl_magic.run("word", input_variables={"word": "yes"})
    template = result["prompt_blueprint"]["prompt_template"]
    assert template["type"] == "completion"
    assert template["content"] == [
        {"type": "text", "text": "Say yes twice"},
        {"type": "text", "text": "yes yes"},
    ]
    assert result["prompt_blueprint"]["metadata"]["model"]["api_type"] == "completions"
    assert fake.requests[0].request["prompt"] == "Say yes twice"


# -- streaming --------------------------------------------------------------------------------


def test_stream_only_the_last_chunk_carries_the_request_id_and_blueprints_grow(greet):
    with fake_provider(["one two three four five six"], chunks=3) as fake:
        chunks = list(pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True))

    assert [c["request_id"] is None for c in chunks] == [True, True, True, True, False]
    assert [_reply(c) for c in chunks] == [
        "one two ",
        "one two three four ",
        "one two three four five six",
        "one two three four five six",
        "one two three four five six",
    ]
    # every chunk's blueprint is the rendered prompt followed by the reply so far
    for chunk in chunks:
        messages = chunk["prompt_blueprint"]["prompt_template"]["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert messages[1]["content"][0]["text"] == "Hi Ada"
    # raw_response: each the provider's own chunk; the last one is the last raw chunk again
    assert [c["raw_response"]["object"] for c in chunks] == [
        "fake.chunk",
        "fake.chunk",
        "fake.chunk",
        "fake.done",
        "fake.done",
    ]
    assert chunks[-1]["raw_response"] is chunks[-2]["raw_response"]
    assert fake.requests[0].stream is True and fake.requests[0].request["stream"] is True
    (row,) = _log()
    assert row["request_id"] == chunks[-1]["request_id"]
    assert (row["status"], row["output"], row["output_tokens"]) == (
        "ok",
        "one two three four five six",
        6,
    )


def test_a_stream_closed_early_is_logged_cancelled_with_the_text_so_far(greet):
    with fake_provider(["alpha beta gamma delta"], chunks=4):
        seen = []
        for chunk in pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True):
            seen.append(_reply(chunk))
            if len(seen) == 2:
                break
    assert seen == ["alpha ", "alpha beta "]
    (row,) = _log()
    assert (row["status"], row["output"], row["error_category"]) == (
        "cancelled",
        "alpha beta ",
        None,
    )


def test_a_streamed_run_calls_the_provider_before_the_first_chunk_is_asked_for(greet):
    # as PromptLayer's SDK: the provider call is made inside run(), so its failure is
    # raised there, not at the first next()
    failure = ProviderError("openai", "server", "overloaded", status_code=503)
    with fake_provider([failure]) as fake, pytest.raises(ProviderError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"}, stream=True)
    assert len(fake.requests) == 1 and fake.requests[0].stream is True
    assert info.value.category == "server"
    (row,) = _log()
    assert (row["status"], row["error_category"], row["output"]) == ("error", "server", "")


# -- every run is logged ------------------------------------------------------------------------


def test_a_provider_error_is_raised_and_logged_with_its_category_and_request_id(greet):
    failure = ProviderError("openai", "rate_limit", "slow down", status_code=429)
    with fake_provider([failure, "fine now"]):
        with pytest.raises(ProviderError) as info:
            pl_magic.run("greet", input_variables={"name": "Ada"})
        after = pl_magic.run("greet", input_variables={"name": "Ada"})

    error = info.value
    assert error.category == "rate_limit" and error.partial_text == ""
    first, second = _log()
    assert error.request_id == first["request_id"]
    assert (first["status"], first["error_category"], first["output"]) == (
        "error",
        "rate_limit",
        "",
    )
    assert "slow down" in first["error"]
    assert (first["input_tokens"], first["output_tokens"]) == (None, None)
    assert (second["status"], second["output"], second["error"]) == ("ok", "fine now", None)
    assert second["request_id"] == after["request_id"] != first["request_id"]


def test_an_unexpected_exception_from_the_provider_is_a_provider_error_of_unknown_kind(greet):
    failure = RuntimeError("socket went away")
    with fake_provider([failure]), pytest.raises(ProviderError) as info:
        pl_magic.run("greet", input_variables={"name": "Ada"})
    assert info.value.category == "unknown"
    assert info.value.__cause__ is failure  # the original is kept as the cause
    (row,) = _log()
    assert (row["status"], row["error_category"]) == ("error", "unknown")
    assert "socket went away" in row["error"]


def test_an_interrupt_during_the_call_is_logged_cancelled_and_propagates(greet):
    with fake_provider([KeyboardInterrupt()]), pytest.raises(KeyboardInterrupt):
        pl_magic.run("greet", input_variables={"name": "Ada"})
    (row,) = _log()
    assert (row["status"], row["output"], row["error_category"]) == ("cancelled", "", None)


def test_repeat_runs_are_logged_as_distinct_runs(greet):
    with fake_provider(["first", "second", "third"]):
        results = [pl_magic.run("greet", input_variables={"name": "Ada"}) for _ in range(3)]
    ids = [r["request_id"] for r in results]
    assert len(set(ids)) == 3
    rows = _log()
    assert [r["request_id"] for r in rows] == ids
    assert [r["output"] for r in rows] == ["first", "second", "third"]


def test_run_many_repeats_are_numbered_and_each_is_its_own_run(greet):
    with fake_provider(["a", "b", "c"]) as fake:
        df = pl_magic.run_many("greet", input_variables={"name": "Ada"}, repeat=3, concurrency=1)
    assert sorted(df["repeat"]) == [0, 1, 2]
    assert sorted(df["output"]) == ["a", "b", "c"]
    assert df["request_id"].nunique() == 3
    assert len(fake.requests) == 3 and not any(r.stream for r in fake.requests)
    assert sorted(r["repeat"] for r in _log()) == [0, 1, 2]


# -- resolution, rendering, overrides ---------------------------------------------------------


def test_input_variables_are_rendered_into_the_request_the_provider_gets():
    publish("fstr", chat(("system", "You answer in {lang}."), ("user", "{greeting}, {name}!")))
    publish(
        "jinja",
        chat(("user", "{{ greeting }}, {{ name | upper }}! You have {{ n }} new."), fmt="jinja2"),
    )
    with fake_provider(["ok", "ok"]) as fake:
        pl_magic.run("fstr", input_variables={"lang": "French", "greeting": "Hi", "name": "Bo"})
        pl_magic.run("jinja", input_variables={"greeting": "Hello", "name": "ada", "n": 3})
    first, second = fake.requests
    assert first.texts == ("You answer in French.", "Hi, Bo!")
    assert first.request["messages"][0]["content"] == "You answer in French."
    assert first.request["messages"][1]["content"][0]["text"] == "Hi, Bo!"
    assert second.texts == ("Hello, ADA! You have 3 new.",)
    assert second.request["messages"][0]["content"][0]["text"] == "Hello, ADA! You have 3 new."
    # the log keeps the variables as given, one column each (none where a run had none)
    fstr, jinja = _log()
    assert (fstr["var.lang"], fstr["var.name"], fstr["var.n"]) == ("French", "Bo", None)
    assert (jinja["var.greeting"], jinja["var.name"], jinja["var.n"]) == ("Hello", "ada", 3)


def test_version_and_label_resolution_is_what_runs_and_what_is_logged():
    for n in (1, 2, 3):
        publish("greet", chat(("user", f"v{n} hi {{name}}")))
    pl_magic.set_label("greet", "prod", 2)

    with fake_provider(["x"] * 4) as fake:
        latest = pl_magic.run("greet", input_variables={"name": "A"})
        pinned = pl_magic.run("greet", prompt_version=1, input_variables={"name": "A"})
        labelled = pl_magic.run("greet", prompt_release_label="prod", input_variables={"name": "A"})
        pl_magic.set_label("greet", "prod", 3)
        moved = pl_magic.run("greet", prompt_release_label="prod", input_variables={"name": "A"})

    assert [r.texts[-1] for r in fake.requests] == ["v3 hi A", "v1 hi A", "v2 hi A", "v3 hi A"]
    blueprints = [r["prompt_blueprint"] for r in (latest, pinned, labelled, moved)]
    assert [(b["prompt_version"], b["release_label"]) for b in blueprints] == [
        (3, None),
        (1, None),
        (2, "prod"),
        (3, "prod"),
    ]
    assert [(r["prompt_version"], r["release_label"]) for r in _log()] == [
        (3, None),
        (1, None),
        (2, "prod"),
        (3, "prod"),
    ]


def test_a_label_wins_over_a_version_with_a_one_line_warning(capsys):
    for n in (1, 2):
        publish("greet", chat(("user", f"v{n}")))
    pl_magic.set_label("greet", "prod", 2)
    with fake_provider(["x"]) as fake:
        result = pl_magic.run("greet", prompt_version=1, prompt_release_label="prod")
    assert fake.requests[0].texts == ("v2",)
    assert result["prompt_blueprint"]["prompt_version"] == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the label wins" in err[0]
    ((version, label),) = [(r["prompt_version"], r["release_label"]) for r in _log()]
    assert (version, label) == (2, "prod")


def test_tags_metadata_and_group_are_logged_and_filterable(greet):
    group = pl_magic.create_group()
    with fake_provider(["a", "b"]):
        pl_magic.run(
            "greet",
            input_variables={"name": "Ada"},
            tags=["exp", "v2"],
            metadata={"user": "u1", "ticket": 7},
            group_id=group,
        )
        pl_magic.run("greet", input_variables={"name": "Bo"})
    tagged, plain = _log()
    assert tagged["tags"] == ["exp", "v2"]
    assert tagged["metadata"] == {"user": "u1", "ticket": 7}
    assert tagged["group_id"] == group
    assert (plain["tags"], plain["metadata"]) == ([], {})
    assert pl_magic.runs(tag="exp")["output"].tolist() == ["a"]
    assert pl_magic.runs(group_id=group)["output"].tolist() == ["a"]


def test_model_parameter_overrides_reach_the_request_the_blueprint_and_the_log(greet):
    with fake_provider(["x"]) as fake:
        result = pl_magic.run(
            "greet",
            input_variables={"name": "Ada"},
            model_parameter_overrides={"temperature": 0.9, "seed": 7},
        )
    request = fake.requests[0].request
    assert (request["temperature"], request["max_tokens"], request["seed"]) == (0.9, 50, 7)
    expected = {"temperature": 0.9, "max_tokens": 50, "seed": 7}
    assert result["prompt_blueprint"]["metadata"]["model"]["parameters"] == expected
    assert _log()[0]["parameters"] == expected


def test_model_and_provider_overrides_carry_the_parameters_over(greet):
    with fake_provider(["x", "y"], provider=["openai", "anthropic"]) as fake:
        same = pl_magic.run("greet", input_variables={"name": "Ada"}, model="gpt-4.1-mini")
        other = pl_magic.run(
            "greet",
            input_variables={"name": "Ada"},
            provider="anthropic",
            model="claude-sonnet-4-5",
            model_parameter_overrides={"stop": ["END"], "seed": 1},
        )
    assert (fake.requests[0].provider, fake.requests[0].request["model"]) == (
        "openai",
        "gpt-4.1-mini",
    )
    assert same["prompt_blueprint"]["metadata"]["model"]["name"] == "gpt-4.1-mini"
    anthropic = fake.requests[1]
    assert (anthropic.provider, anthropic.model) == ("anthropic", "claude-sonnet-4-5")
    # the canonical "stop" is renamed to Anthropic's own; max_tokens carried over
    assert anthropic.request["stop_sequences"] == ["END"]
    assert anthropic.request["max_tokens"] == 50
    assert anthropic.request["system"] == "Be brief."
    meta = other["prompt_blueprint"]["metadata"]
    assert meta["model"]["provider"] == "anthropic"
    assert meta["dropped_parameters"] == ["seed"]  # Anthropic has no seed: dropped, and said so
    assert [(r["provider"], r["model"]) for r in _log()] == [
        ("openai", "gpt-4.1-mini"),
        ("anthropic", "claude-sonnet-4-5"),
    ]


# -- refused before any call ------------------------------------------------------------------


def test_missing_variables_are_refused_before_any_call(greet):
    with fake_provider(["never"]) as fake, pytest.raises(MissingVariablesError) as info:
        pl_magic.run("greet", input_variables={"nme": "Ada"})
    assert info.value.missing == ["name"]
    assert "did you mean name instead of 'nme'" in str(info.value)
    assert fake.requests == []
    assert _log() == []


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"prompt_release_label": "nope"}, LabelNotFoundError, "no release label 'nope'"),
        ({"model_parameter_overrides": {"model": "gpt-4.1"}}, InvalidInputError, "pass model="),
        ({"model_parameter_overrides": {"messages": []}}, InvalidInputError, "part of the prompt"),
        ({"model_parameter_overrides": {"stream": True}}, InvalidInputError, "stream=True"),
        ({"input_variables": ["Ada"]}, InvalidInputError, "input_variables must be a dict"),
        ({"tags": "exp"}, InvalidInputError, "tags must be a list of strings"),
        ({"prompt_version": "prod"}, InvalidInputError, "use prompt_release_label"),
        ({"group_id": -1}, InvalidInputError, "group_id must be an integer"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(greet, kwargs, error, words):
    arguments = {"input_variables": {"name": "Ada"}, **kwargs}
    with fake_provider(["never"]) as fake, pytest.raises(error) as info:
        pl_magic.run("greet", **arguments)
    assert words in str(info.value)
    assert fake.requests == []
    assert _log() == []


def test_an_unknown_prompt_is_refused_before_any_call():
    with fake_provider(["never"]) as fake, pytest.raises(PromptNotFoundError):
        pl_magic.run("nobody", input_variables={"name": "Ada"})
    assert fake.requests == []


# -- arun ---------------------------------------------------------------------------------------


def test_arun_result_stream_and_error_follow_the_same_contract(greet):
    failure = ProviderError("openai", "timeout", "too slow")

    async def main() -> tuple[dict[str, Any], list[dict[str, Any]], BaseException]:
        result = await pl_magic.arun("greet", input_variables={"name": "Ada"})
        stream = await pl_magic.arun("greet", input_variables={"name": "Bo"}, stream=True)
        chunks = [c async for c in stream]
        try:
            await pl_magic.arun("greet", input_variables={"name": "Cy"})
        except ProviderError as exc:
            return result, chunks, exc
        raise AssertionError("arun did not raise the provider's error")

    with fake_provider(["plain reply", "streamed reply here", failure], chunks=2) as fake:
        result, chunks, error = asyncio.run(main())

    assert set(result) == {"request_id", "raw_response", "prompt_blueprint"}
    assert _reply(result) == "plain reply"
    assert [c["request_id"] is None for c in chunks] == [True, True, True, False]
    assert [_reply(c) for c in chunks] == ["streamed reply ", *["streamed reply here"] * 3]
    assert [r.stream for r in fake.requests] == [False, True, False]
    assert [r.texts[-1] for r in fake.requests] == ["Hi Ada", "Hi Bo", "Hi Cy"]
    rows = _log()
    assert [(r["status"], r["output"]) for r in rows] == [
        ("ok", "plain reply"),
        ("ok", "streamed reply here"),
        ("error", ""),
    ]
    assert [r["request_id"] for r in rows] == [
        result["request_id"],
        chunks[-1]["request_id"],
        error.request_id,
    ]
    assert rows[2]["error_category"] == "timeout"
