"""Tool calls on every provider, checked on the wire, and the tool loop (``run_tools``).

The real SDKs talk HTTP to the fake provider server, whose ``tool_call_replies`` scripts the
tool calls a request that offers tools gets (in each dialect's shapes, streamed or not).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import pl_magic
from pl_magic.core import local_target
from pl_magic.errors import InvalidInputError
from tests.helpers import ROUTES, Route, chat, model, publish, runs

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
TEMPLATE = {
    **chat(("system", "You answer with tools."), ("user", "What is the weather in {city}?")),
    "tools": [WEATHER_TOOL, TIME_TOOL],
    "tool_choice": "auto",
}
INPUTS = {"city": "Paris"}
TWO_CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}},
    {"name": "get_time", "arguments": {"zone": "CET"}},
]


IDS = [r.id for r in ROUTES]
BY_ID = {r.id: r for r in ROUTES}


def _publish(request: pytest.FixtureRequest, route: Route, name: str = "weather") -> None:
    """Apply the route's environment and publish the weather prompt for it."""
    if route.env:
        request.getfixturevalue(route.env)
        publish(name, TEMPLATE, model(route.model, route.provider, route.api_type))
        return
    fake = request.getfixturevalue("fake_provider")
    request.getfixturevalue("monkeypatch").setenv(local_target.ENV_BASE_URL, fake.openai_base_url)
    publish(
        name,
        TEMPLATE,
        local_target.model_metadata(),
        provider_base_url=local_target.base_url_spec(),
    )


def _last(result: dict[str, Any]) -> dict[str, Any]:
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]


def _calls(message: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or []
    ]


def _bodies(fake: Any, route: Route) -> list[dict[str, Any]]:
    return [dict(r.body) for r in fake.requests_for(route.kind)]


def _check_tools_offered(route: Route, body: dict[str, Any]) -> None:
    """The template's function tools in the route's native shape."""
    if route.kind == "openai.chat":
        assert body["tools"] == [WEATHER_TOOL, TIME_TOOL] and body["tool_choice"] == "auto"
    elif route.kind == "openai.responses":
        fn = WEATHER_TOOL["function"]
        assert body["tools"][0] == {
            "type": "function",
            "name": "get_weather",
            "description": fn["description"],
            "parameters": fn["parameters"],
        }
        assert body["tool_choice"] == "auto"
    elif route.kind.startswith("anthropic"):
        assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]
        assert body["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
        assert body["tool_choice"] == {"type": "auto"}
    else:
        declared = body["tools"][0]["functionDeclarations"]
        assert [d["name"] for d in declared] == ["get_weather", "get_time"]


# -- a reply with tool calls, every route, streamed and not ----------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_tool_calls_reach_the_blueprint_the_log_and_the_frame(
    request, fake_provider, route, stream
):
    _publish(request, route)
    fake_provider.tool_call_replies = [TWO_CALLS]
    fake_provider.chunk_size = 5  # arguments streamed in several pieces
    if stream:
        chunks = list(pl_magic.run("weather", input_variables=INPUTS, stream=True))
        result = chunks[-1]
        # the calls grow in the chunks' blueprints as they stream (PromptLayer's shape)
        growing = [_last(c).get("tool_calls") for c in chunks[:-1]]
        assert any(growing)
        if route.kind != "gemini" and not route.kind.endswith("gemini"):
            partial = [c for calls in growing if calls for c in calls]
            assert any(not _parses(c["function"]["arguments"]) for c in partial)
    else:
        result = pl_magic.run("weather", input_variables=INPUTS)

    (body,) = _bodies(fake_provider, route)
    _check_tools_offered(route, body)
    message = _last(result)
    assert message["role"] == "assistant" and message["content"] == []
    assert _calls(message) == [
        ("get_weather", {"city": "Paris", "unit": "c"}),
        ("get_time", {"zone": "CET"}),
    ]
    assert all(c["id"] and c["type"] == "function" for c in message["tool_calls"])
    (row,) = runs()
    assert row["status"] == "ok" and row["output"] == ""
    assert json.loads(row["reply_tool_calls"]) == message["tool_calls"]
    df = pl_magic.runs()
    assert df["tool_calls"].iloc[0] == message["tool_calls"]
    assert df["parsed"].iloc[0] is None


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_a_plain_reply_has_no_tool_calls_in_the_frame(request, fake_provider):
    _publish(request, BY_ID["openai-chat"])
    pl_magic.run("weather", input_variables=INPUTS)
    df = pl_magic.runs()
    assert (
        df["tool_calls"].iloc[0] is None
        and df["output"].iloc[0] == "echo: What is the weather in Paris?"
    )


# -- the tool loop: two steps, every route ----------------------------------------------------


def _check_second_request(route: Route, body: dict[str, Any], call_id: str, result: str) -> None:
    """The assistant's tool call and the tool's result, in the route's native shape."""
    arguments = {"city": "Paris"}
    if route.kind == "openai.chat":
        *_, call, answer = body["messages"]
        assert call == {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps(arguments)},
                }
            ],
        }
        content = result if route.id == "local" else [{"type": "text", "text": result}]
        assert answer == {"role": "tool", "content": content, "tool_call_id": call_id}
    elif route.kind == "openai.responses":
        *_, call, answer = body["input"]
        assert call == {
            "type": "function_call",
            "call_id": call_id,
            "name": "get_weather",
            "arguments": json.dumps(arguments),
        }
        assert answer == {"type": "function_call_output", "call_id": call_id, "output": result}
    elif route.kind.startswith("anthropic"):
        *_, call, answer = body["messages"]
        assert call == {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call_id, "name": "get_weather", "input": arguments}
            ],
        }
        assert answer == {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}],
        }
    else:
        *_, call, answer = body["contents"]
        assert call == {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": arguments}}],
        }
        assert answer == {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": result}}}
            ],
        }


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_the_tool_loop_runs_the_tool_and_calls_again_with_its_result(
    request, fake_provider, route, stream
):
    _publish(request, route)
    fake_provider.tool_call_replies = [[{"name": "get_weather", "arguments": {"city": "Paris"}}]]
    fake_provider.reply_text = "Sunny in Paris."
    seen: list[str] = []

    def get_weather(city: str, unit: str = "c") -> dict[str, Any]:
        seen.append(city)
        return {"city": city, "sky": "sunny", "unit": unit}

    result = pl_magic.run_tools(
        "weather", tools={"get_weather": get_weather}, input_variables=INPUTS, stream=stream
    )

    assert seen == ["Paris"]
    _, second = _bodies(fake_provider, route)
    _check_tools_offered(route, second)  # the tools are offered again
    messages = result["prompt_blueprint"]["prompt_template"]["messages"]
    *_, user, call, tool, reply = messages
    assert user["role"] == "user"
    call_id = call["tool_calls"][0]["id"]
    assert call["role"] == "assistant" and _calls(call) == [("get_weather", {"city": "Paris"})]
    tool_text = json.dumps({"city": "Paris", "sky": "sunny", "unit": "c"})
    assert tool == {
        "role": "tool",
        "content": [{"type": "text", "text": tool_text}],
        "tool_call_id": call_id,
        "input_variables": [],
        "template_format": "f-string",
    }
    assert reply["content"] == [{"type": "text", "text": "Sunny in Paris."}]
    assert not reply["tool_calls"]
    _check_second_request(route, second, call_id, tool_text)

    rows = runs()
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["group_id"] is not None and rows[0]["group_id"] == rows[1]["group_id"]
    assert json.loads(rows[0]["reply_tool_calls"])[0]["id"] == call_id
    assert rows[1]["reply_tool_calls"] is None and rows[1]["output"] == "Sunny in Paris."
    assert result["request_id"] == rows[1]["request_id"]


# -- hostile tool calls ------------------------------------------------------------------------


@pytest.mark.parametrize("route_id", ["openai-chat", "anthropic", "gemini"])
def test_a_raising_tool_and_an_unknown_tool_become_error_results(request, fake_provider, route_id):
    _publish(request, BY_ID[route_id])
    fake_provider.tool_call_replies = [
        [
            {"name": "get_weather", "arguments": {"city": "Atlantis"}},
            {"name": "launch_missiles", "arguments": {"now": True}},
        ]
    ]

    def get_weather(city: str) -> str:
        raise LookupError(f"no such city: {city}")

    result = pl_magic.run_tools(
        "weather", tools={"get_weather": get_weather}, input_variables=INPUTS
    )
    tools = [
        m for m in result["prompt_blueprint"]["prompt_template"]["messages"] if m["role"] == "tool"
    ]
    assert [t["content"][0]["text"] for t in tools] == [
        "error: get_weather raised LookupError: no such city: Atlantis",
        "error: there is no tool 'launch_missiles'; the tools are: get_weather",
    ]
    assert _last(result)["content"][0]["text"].startswith("echo: ")
    assert [r["status"] for r in runs()] == ["ok", "ok"]


def test_arguments_that_are_not_a_json_object_are_never_evaluated(request, fake_provider):
    _publish(request, BY_ID["openai-chat"])
    fake_provider.tool_call_replies = [
        [
            {"name": "get_weather", "arguments": "__import__('os').system('echo owned')"},
            {"name": "get_weather", "arguments": "[1, 2]"},
            {"name": "get_weather", "arguments": '{"city": "Paris", "__class__": 1}'},
            {"name": "get_weather", "arguments": ""},
        ]
    ]
    calls: list[dict[str, Any]] = []

    def get_weather(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "ok"

    result = pl_magic.run_tools(
        "weather", tools={"get_weather": get_weather}, input_variables=INPUTS
    )
    texts = [
        m["content"][0]["text"]
        for m in result["prompt_blueprint"]["prompt_template"]["messages"]
        if m["role"] == "tool"
    ]
    assert texts[0].startswith("error: the arguments of get_weather are not JSON (")
    assert texts[1] == "error: the arguments of get_weather must be a JSON object, not list"
    assert texts[2:] == ["ok", "ok"]
    assert calls == [{"city": "Paris", "__class__": 1}, {}]  # keyword arguments, nothing else


def test_max_steps_stops_the_loop_with_a_one_line_notice(request, fake_provider, capsys):
    _publish(request, BY_ID["anthropic"])
    again = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    fake_provider.tool_call_replies = [again, again, again]
    result = pl_magic.run_tools(
        "weather", tools={"get_weather": lambda city: "rain"}, max_steps=2, input_variables=INPUTS
    )
    assert len(fake_provider.requests_for("anthropic.messages")) == 2
    assert _calls(_last(result)) == [("get_weather", {"city": "Paris"})]  # unanswered
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "max_steps" in line]
    assert len(lines) == 1 and "max_steps=2" in lines[0]
    assert len(runs()) == 2


def test_the_loop_uses_a_given_group_and_needs_functions(request, fake_provider):
    _publish(request, BY_ID["openai-chat"])
    group = pl_magic.create_group()
    fake_provider.tool_call_replies = [[{"name": "get_weather", "arguments": {"city": "Paris"}}]]
    pl_magic.run_tools(
        "weather",
        tools={"get_weather": lambda city: "rain"},
        group_id=group,
        input_variables=INPUTS,
    )
    assert [r["group_id"] for r in runs()] == [group, group]
    with pytest.raises(InvalidInputError, match="tools must be a dict"):
        pl_magic.run_tools("weather", tools=[print])
    with pytest.raises(InvalidInputError, match=r"tools\['x'\] must be a function"):
        pl_magic.run_tools("weather", tools={"x": 3})
    with pytest.raises(InvalidInputError, match="max_steps must be"):
        pl_magic.run_tools("weather", tools={"x": print}, max_steps=0)
    with pytest.raises(InvalidInputError, match="unknown argument"):
        pl_magic.run_tools("weather", tools={"x": print}, max_step=3)
    assert len(runs()) == 2  # refused before any call


def test_a_template_without_tools_gets_a_notice(request, fake_provider, capsys):
    request.getfixturevalue("openai_env")
    publish("plain", chat(("user", "Hi")), model())
    result = pl_magic.run_tools("plain", tools={"get_weather": lambda city: "rain"})
    assert _last(result)["content"][0]["text"] == "echo: Hi"
    assert "offers the model no tools" in capsys.readouterr().err


# -- with the PromptLayer backend, and replayed ------------------------------------------------


def test_the_loop_on_promptlayer_tracks_each_call_in_one_promptlayer_group(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    fake_promptlayer.add_prompt("weather", TEMPLATE, model())
    fake_provider.tool_call_replies = [[{"name": "get_weather", "arguments": {"city": "Paris"}}]]
    result = pl_magic.run_tools(
        "weather", tools={"get_weather": lambda city: "rain"}, input_variables=INPUTS
    )
    assert len(fake_promptlayer.requests_for("group.create")) == 1
    tracked = list(fake_promptlayer.tracked.values())
    assert len(tracked) == 2 and tracked[0]["group_id"] == tracked[1]["group_id"] is not None
    # the first call's tool calls came from the provider's reply, whatever PromptLayer answered
    *_, call, answer = fake_provider.requests_for("openai.chat")[1].body["messages"]
    assert call["tool_calls"][0]["function"]["name"] == "get_weather"
    assert answer["role"] == "tool" and answer["content"] == [{"type": "text", "text": "rain"}]
    assert result["request_id"] == max(fake_promptlayer.tracked)  # PromptLayer's id


def test_a_recorded_loop_replays_with_no_model_call(request, fake_provider, monkeypatch):
    _publish(request, BY_ID["anthropic"])
    fake_provider.tool_call_replies = [[{"name": "get_weather", "arguments": {"city": "Paris"}}]]
    tools = {"get_weather": lambda city: "rain"}
    monkeypatch.setenv("PL_MAGIC_CACHE", "record")
    recorded = pl_magic.run_tools("weather", tools=tools, input_variables=INPUTS)
    calls = len(fake_provider.requests)
    monkeypatch.setenv("PL_MAGIC_CACHE", "replay-only")
    replayed = pl_magic.run_tools("weather", tools=tools, input_variables=INPUTS)
    assert len(fake_provider.requests) == calls == 2  # served from the log: no call
    messages = replayed["prompt_blueprint"]["prompt_template"]["messages"]
    assert messages == recorded["prompt_blueprint"]["prompt_template"]["messages"]
    assert [r["cached_from"] is not None for r in runs()] == [False, False, True, True]


def test_deeply_nested_tool_arguments_are_an_error_result_not_a_crash():
    from pl_magic.engine.tool_loop import tool_result_text

    call = {"function": {"name": "f", "arguments": "[" * 100_000}}
    assert tool_result_text({"f": lambda **k: "ok"}, call).startswith("error: the arguments of f")


def test_deeply_nested_tool_arguments_sent_back_are_kept_as_text():
    from pl_magic.providers._turns import tool_calls

    hostile = "[" * 100_000
    (call,) = tool_calls([{"id": "c1", "function": {"name": "f", "arguments": hostile}}])
    assert call.arguments == {"arguments": hostile}
