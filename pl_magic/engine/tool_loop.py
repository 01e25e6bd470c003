"""The tool loop: call the model, run the tools it asks for here, call it again.

``run_tools(engine, options, tools)`` runs a prompt whose template offers function tools
(PromptLayer's ``tools``) with Python functions standing in for them::

    call ─▶ the reply asks for tools ─▶ each tool runs here with its arguments
      ▲                                          │
      └── the assistant's tool calls and the tool results are appended to the messages

until a reply asks for none (the result) or ``max_steps`` calls were made. Each call is a run
of its own, logged like any other; the caller puts them in one group (``group_id``).

The messages appended are PromptLayer's blueprint shapes, so the final result's
``prompt_blueprint`` is the whole conversation as PromptLayer would show it: the
assistant message with its ``tool_calls``, then one ``{"role": "tool", "tool_call_id",
"content"}`` message per call. They are appended after rendering and never rendered
themselves (a tool's result is data, not a template; see ``RunOptions.follow_up``).

A tool call is model output, so hostile: its name is looked up in the functions given (an
unknown name is an error result), its arguments are read with ``json.loads`` only and must be
an object (anything else is an error result), and the function is called with them as
keyword arguments. A function that raises does not end the loop: its error, as text, is the
tool's result, which the model sees and may act on.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core import notices
from ..core.blueprint import assistant_message, text_block
from ..core.errors import InvalidInputError, PlMagicError, redact, shown
from ..core.types import RunChunk, RunResult
from .engine import Engine, PreparedRun, RunOptions

#: The default most model calls of one loop.
DEFAULT_MAX_STEPS = 5


@dataclass
class ToolStep:
    """One model call of a loop: its result, the tool calls its reply asked for (none for
    the last step) and the tool messages sent back for them."""

    #: 1 for the first call.
    index: int
    result: RunResult
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: PromptLayer tool messages (``role``, ``tool_call_id``, ``content``), one per call.
    tool_messages: list[dict[str, Any]] = field(default_factory=list)


def check_tools(tools: Any) -> dict[str, Callable[..., Any]]:
    """``tools`` checked: a dict of tool name → plain (not async) function."""
    if not isinstance(tools, Mapping) or not tools:
        raise InvalidInputError(
            f"tools must be a dict of tool name to function, e.g. {{'get_weather': get_weather}}, "
            f"not {shown(tools, 60)}"
        )
    out: dict[str, Callable[..., Any]] = {}
    for name, fn in tools.items():
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"tools: each key must be a tool's name, not {shown(name, 40)}")
        if not callable(fn):
            raise InvalidInputError(f"tools[{name!r}] must be a function, not {shown(fn, 40)}")
        if inspect.iscoroutinefunction(fn):
            raise InvalidInputError(
                f"tools[{name!r}] is an async function: pass a plain function (e.g. one that "
                "calls asyncio.run on it)"
            )
        out[name] = fn
    return out


def check_max_steps(max_steps: Any) -> int:
    """``max_steps`` checked: a whole number of model calls, at least 1."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidInputError(
            f"max_steps must be a whole number of model calls, at least 1, not {shown(max_steps)}"
        )
    return max_steps


def tool_result_text(tools: Mapping[str, Callable[..., Any]], call: Mapping[str, Any]) -> str:
    """What the model is told for one of its tool calls: the function's return value as
    text (a str as it is, anything else as JSON), or an ``error: ...`` line when the name is
    unknown, the arguments are not a JSON object, or the function raises."""
    given = call.get("function")
    function: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    name = function.get("name")
    fn = tools.get(name) if isinstance(name, str) else None
    if fn is None:
        known = ", ".join(tools)
        return f"error: there is no tool {shown(name, 60)}; the tools are: {known}"
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    elif isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError) as exc:  # (hostile nesting: a RecursionError)
            return f"error: the arguments of {name} are not JSON ({exc})"
    if not isinstance(arguments, dict):
        return (
            f"error: the arguments of {name} must be a JSON object, not {type(arguments).__name__}"
        )
    try:
        value = fn(**arguments)
    except Exception as exc:  # the model is told, and may try again
        return redact(f"error: {name} raised {type(exc).__name__}: {exc}")
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def tool_message(call: Mapping[str, Any], text: str) -> dict[str, Any]:
    """PromptLayer's tool message answering ``call``."""
    return {
        "role": "tool",
        "content": [text_block(text)],
        "tool_call_id": call.get("id"),
        "input_variables": [],
        "template_format": "f-string",
    }


def _reply_calls(run: PreparedRun, result: RunResult) -> tuple[str, list[dict[str, Any]]]:
    """The reply's text and tool calls: the provider's reply (the result's blueprint may be
    PromptLayer's answer), else the blueprint's last message."""
    if run.reply is not None:
        calls = run.reply.tool_calls
        if isinstance(calls, str):  # (a replayed row's JSON text)
            calls = json.loads(calls)
        return run.reply.text, [c for c in calls or [] if isinstance(c, dict)]
    messages = (result.get("prompt_blueprint") or {}).get("prompt_template", {}).get("messages")
    last = messages[-1] if messages else {}
    text = "".join(b.get("text", "") for b in last.get("content") or [] if isinstance(b, dict))
    return text, [c for c in last.get("tool_calls") or [] if isinstance(c, dict)]


def _offered(run: PreparedRun) -> list[str]:
    """The names of the function tools the rendered template offers."""
    names = []
    for tool in run.rendered.get("tools") or []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        if isinstance(name, str):
            names.append(name)
    return names


def _check_offered(run: PreparedRun, tools: Mapping[str, Any]) -> None:
    """One notice when the template and the functions do not match (the loop still runs)."""
    offered = _offered(run)
    if not offered:
        notices.warn(
            f"prompt {run.options.prompt_name!r} offers the model no tools, so it cannot call "
            f"{', '.join(tools)}: add them to the template's tools"
        )
        return
    missing = [name for name in offered if name not in tools]
    if missing:
        notices.warn(
            f"the template's tool(s) {', '.join(missing)} have no function in tools=: a call "
            "to one is answered with an error"
        )


def run_tools(
    engine: Engine,
    options: RunOptions,
    tools: Mapping[str, Callable[..., Any]],
    max_steps: int = DEFAULT_MAX_STEPS,
    on_chunk: Callable[[int, RunChunk], None] | None = None,
    on_step: Callable[[ToolStep], None] | None = None,
) -> RunResult:
    """Run ``options``' prompt, answering its tool calls with ``tools`` until a reply asks
    for none; the last run's result (PromptLayer's ``run()`` shape, its blueprint holding
    the whole conversation).

    Streams each call when ``options.stream`` (``on_chunk(step, chunk)`` sees the chunks);
    ``on_step`` sees each step once its tools ran. After ``max_steps`` calls whose replies
    all asked for tools, a one-line notice says so and the last result is returned (its
    tool calls unanswered).
    """
    tools = check_tools(tools)
    max_steps = check_max_steps(max_steps)
    follow_up = list(options.follow_up)
    result: RunResult | None = None
    for index in range(1, max_steps + 1):
        run = engine.prepare(dataclasses.replace(options, follow_up=tuple(follow_up)))
        if index == 1:
            _check_offered(run, tools)
        if options.stream:
            final: RunChunk | None = None
            chunks = engine.stream_prepared(run)
            try:
                for chunk in chunks:
                    final = chunk
                    if on_chunk is not None:
                        on_chunk(index, chunk)
            finally:
                chunks.close()  # (an interrupt while showing a chunk: logged as cancelled)
            if final is None or final["request_id"] is None:
                raise PlMagicError("the stream ended without its result")
            result = final  # type: ignore[assignment]  # (the last chunk is the result)
        else:
            result = engine.run_prepared(run)
        assert result is not None
        text, calls = _reply_calls(run, result)
        step = ToolStep(index, result, calls)
        if not calls:
            if on_step is not None:
                on_step(step)
            return result
        if index == max_steps:
            if on_step is not None:
                on_step(step)
            break
        step.tool_messages = [tool_message(call, tool_result_text(tools, call)) for call in calls]
        if on_step is not None:
            on_step(step)
        follow_up += [assistant_message(text, calls), *step.tool_messages]
    notices.warn(
        f"stopped after max_steps={max_steps} model calls: the last reply still asks for "
        "tools (its calls are unanswered in the result); raise max_steps to let it go on"
    )
    assert result is not None
    return result
