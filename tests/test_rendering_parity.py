"""Rendering parity: the request pl_magic sends to the provider equals PromptLayer's
``llm_kwargs`` for the same template and variables, but for the deliberate
normalisations in ``NORMALISATIONS`` (listed in the README's drop-in section too).

pl_magic renders templates itself (its cache) and builds the provider request with its own
providers; PromptLayer's server builds ``llm_kwargs`` and its SDK sends them as they are
(plus ``stream``). Two sources of truth:

* every template PromptLayer's server answered in the recorded cassettes
  (``../shared/compat/promptlayer-cassettes``), with the ``llm_kwargs`` it computed;
* templates written here in PromptLayer's shape (jinja2, completion, tools, images,
  placeholders, tool calls; OpenAI, Anthropic, Google), with the ``llm_kwargs`` PromptLayer
  builds for them (shapes from reference/promptlayer-api.md §2 and the cassettes).

Each template is served by the fake PromptLayer and run with ``pl_magic.PromptLayer`` (its
default: fetched unrendered, rendered locally); the provider request is read off the fake
provider server, i.e. what went over the wire.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import pl_magic
from tests.helpers import chat, completion, model

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "compat" / "promptlayer-cassettes"

#: The deliberate differences between PromptLayer's llm_kwargs and pl_magic's request.
NORMALISATIONS = {
    "stream": 'the SDK adds "stream": false to llm_kwargs when it calls the provider; so does '
    "pl_magic (so the wire bodies are equal)",
    "model_named_in_run": "a model named in run(model=...) is the one sent; PromptLayer's "
    "llm_kwargs keep a `model` stored in the template's parameters, or leave `model` out when "
    "the template has none (the OpenAI call then fails)",
    "flat_parameters": "Anthropic parameters the SDK has no keyword for (temperature, top_k...) "
    "go in extra_body, which the SDK merges into the JSON body: the wire is flat, as llm_kwargs",
    "own_server": "an OpenAI-compatible server on this machine (the local model, Ollama, "
    "llama.cpp, a provider_base_url on loopback) gets text content as plain strings: some "
    "of their chat templates cannot take content parts",
    "google_generate_content": "Google: pl_magic calls models.generate_content with the whole "
    "conversation as `contents` and system_instruction + parameters as `config`; PromptLayer's "
    "llm_kwargs hold `history` and `generation_config` for chats.send_message",
}


# -- the recorded templates ---------------------------------------------------------------


def _recorded_cases() -> list[Any]:
    if not CASSETTES.is_dir():
        return []
    cases, seen = [], set()
    for path in sorted(CASSETTES.glob("*.yaml")):
        for interaction in yaml.safe_load(path.read_text())["interactions"]:
            request, response = interaction["request"], interaction["response"]
            if "/prompt-templates/" not in request["uri"] or request["method"] != "POST":
                continue
            try:
                answer = json.loads(response["body"]["string"])
            except (TypeError, ValueError):
                continue
            if not isinstance(answer, dict) or not answer.get("llm_kwargs"):
                continue
            sent = json.loads(request["body"]) if request["body"] else {}
            run = {k: sent[k] for k in ("provider", "model", "input_variables") if k in sent}
            key = json.dumps([answer["prompt_template"], answer["metadata"], run], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            cases.append(pytest.param(answer, run, id=f"{path.stem}"))
    return cases


RECORDED = _recorded_cases()


def test_every_recorded_template_is_covered():
    """Each cassette whose template fetch carries llm_kwargs is a case (3 distinct ones)."""
    assert len(RECORDED) >= 3


def _pl_magic_request(
    fake_promptlayer: Any, fake_provider: Any, key: str, answer: dict[str, Any], run: dict[str, Any]
) -> dict[str, Any]:
    name = str(answer["prompt_name"]).replace(":", "-")
    fake_promptlayer.add_prompt(name, answer["prompt_template"], answer["metadata"])
    client = pl_magic.PromptLayer(api_key=key, base_url=fake_promptlayer.url)
    client.run(
        name,
        input_variables=run.get("input_variables") or {},
        provider=run.get("provider"),
        model=run.get("model"),
    )
    (call,) = fake_provider.requests
    return dict(call.body)


@pytest.mark.parametrize(("answer", "run"), RECORDED)
def test_recorded_templates(
    answer, run, promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    sent = _pl_magic_request(fake_promptlayer, fake_provider, promptlayer_env, answer, run)
    expected = {**copy.deepcopy(answer["llm_kwargs"]), "stream": False}
    if run.get("model"):  # normalisation "model_named_in_run"
        expected["model"] = run["model"]
    assert sent == expected


# -- templates written in PromptLayer's shape ------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a city up",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def _msg(role: str, *blocks: Any, fmt: str = "f-string", **extra: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": b} if isinstance(b, str) else b for b in blocks]
    return {"role": role, "content": content, "template_format": fmt, **extra}


def _chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "chat", "messages": list(messages), **extra}


def _text(t: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t}]


WRITTEN = [
    pytest.param(
        chat(("system", "You help {who}."), ("user", "Hi {who}, {q}")),
        model(temperature=0.3, max_tokens=40),
        {"who": "Ada", "q": "how are you?"},
        {
            "messages": [
                {"role": "system", "content": "You help Ada."},
                {"role": "user", "content": _text("Hi Ada, how are you?")},
            ],
            "model": "gpt-4o-mini",
            "temperature": 0.3,
            "max_tokens": 40,
        },
        id="openai-fstring",
    ),
    pytest.param(
        chat(
            ("system", "{% if formal %}Be formal.{% else %}Be casual.{% endif %}"),
            ("user", "{{ items | join(', ') }}"),
            fmt="jinja2",
        ),
        model(),
        {"formal": True, "items": ["a", "b"]},
        {
            "messages": [
                {"role": "system", "content": "Be formal."},
                {"role": "user", "content": _text("a, b")},
            ],
            "model": "gpt-4o-mini",
        },
        id="openai-jinja2",
    ),
    pytest.param(
        completion("Finish this: {text}"),
        model("gpt-3.5-turbo-instruct", max_tokens=16),
        {"text": "abc"},
        {"prompt": "Finish this: abc", "model": "gpt-3.5-turbo-instruct", "max_tokens": 16},
        id="openai-completion",
    ),
    pytest.param(
        _chat(_msg("user", "Weather in {city}?"), tools=TOOLS, tool_choice="auto"),
        model(),
        {"city": "Paris"},
        {
            "messages": [{"role": "user", "content": _text("Weather in Paris?")}],
            "model": "gpt-4o-mini",
            "tools": TOOLS,
            "tool_choice": "auto",
        },
        id="openai-tools",
    ),
    pytest.param(
        _chat(_msg("user", "What is in this picture, {who}?", IMAGE)),
        model(),
        {"who": "Ada"},
        {
            "messages": [
                {"role": "user", "content": [*_text("What is in this picture, Ada?"), IMAGE]}
            ],
            "model": "gpt-4o-mini",
        },
        id="openai-image",
    ),
    pytest.param(
        _chat(
            _msg("system", "Be brief."),
            {"role": "placeholder", "name": "history", "content": []},
            _msg("user", "{q}"),
        ),
        model(),
        {
            "history": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
            "q": "and now?",
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": _text("hi")},
                {"role": "assistant", "content": _text("hello")},
                {"role": "user", "content": _text("and now?")},
            ],
            "model": "gpt-4o-mini",
        },
        id="openai-placeholder",
    ),
    pytest.param(
        _chat(
            _msg("user", "2+2?"),
            _msg(
                "assistant",
                tool_calls=[
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": "{}"},
                    }
                ],
            ),
            _msg("tool", "4", tool_call_id="call_1"),
            tools=TOOLS,
        ),
        model(),
        {},
        {
            "messages": [
                {"role": "user", "content": _text("2+2?")},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "content": _text("4"), "tool_call_id": "call_1"},
            ],
            "model": "gpt-4o-mini",
            "tools": TOOLS,
        },
        id="openai-tool-calls",
    ),
    pytest.param(
        chat(("system", "You help {who}."), ("user", "Hi {who}")),
        model("claude-haiku-4-5", "anthropic", max_tokens=64, temperature=0.5),
        {"who": "Ada"},
        {
            "model": "claude-haiku-4-5",
            "messages": [{"role": "user", "content": _text("Hi Ada")}],
            "system": "You help Ada.",
            "max_tokens": 64,
            "temperature": 0.5,
        },
        id="anthropic-chat",
    ),
    pytest.param(
        _chat(_msg("user", "Describe {what}", IMAGE), tools=TOOLS),
        model("claude-haiku-4-5", "anthropic", max_tokens=32),
        {"what": "this"},
        {
            "model": "claude-haiku-4-5",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        *_text("Describe this"),
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0KGgo=",
                            },
                        },
                    ],
                }
            ],
            "tools": [
                {
                    "name": "lookup",
                    "description": "Look a city up",
                    "input_schema": TOOLS[0]["function"]["parameters"],
                }
            ],
            "max_tokens": 32,
        },
        id="anthropic-image-tools",
    ),
]
GOOGLE_WRITTEN = [
    pytest.param(
        chat(("system", "You help {who}."), ("user", "Hi {who}")),
        model("gemini-2.5-flash", "google", temperature=0.4),
        {"who": "Ada"},
        {
            "model": "gemini-2.5-flash",
            "history": [{"role": "user", "parts": [{"text": "Hi Ada"}]}],
            "generation_config": {"temperature": 0.4, "system_instruction": "You help Ada."},
        },
        id="google-chat",
    ),
    pytest.param(
        completion("Finish: {text}"),
        model("gemini-2.5-flash", "google", max_output_tokens=20),
        {"text": "abc"},
        {
            "model": "gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": "Finish: abc"}]}],
            "generation_config": {"max_output_tokens": 20},
        },
        id="google-completion",
    ),
]


@pytest.mark.parametrize(("template", "meta", "variables", "llm_kwargs"), WRITTEN)
def test_written_templates(
    template,
    meta,
    variables,
    llm_kwargs,
    promptlayer_env,
    openai_env,
    anthropic_env,
    fake_promptlayer,
    fake_provider,
):
    fake_promptlayer.add_prompt("p", template, meta)
    pl_magic.PromptLayer().run("p", input_variables=variables)
    (call,) = fake_provider.requests
    assert call.body == {**llm_kwargs, "stream": False}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _google_wire(llm_kwargs: dict[str, Any]) -> dict[str, Any]:
    """What generateContent carries for PromptLayer's Google llm_kwargs (normalisation
    "google_generate_content"): the turns as contents, the config in camelCase."""
    config = dict(llm_kwargs.get("generation_config") or {})
    wire: dict[str, Any] = {"contents": llm_kwargs.get("history") or llm_kwargs["contents"]}
    system = config.pop("system_instruction", None)
    if system is not None:
        wire["systemInstruction"] = {"parts": [{"text": system}], "role": "user"}
    if config:
        wire["generationConfig"] = {_camel(k): v for k, v in config.items()}
    return wire


@pytest.mark.parametrize(("template", "meta", "variables", "llm_kwargs"), GOOGLE_WRITTEN)
def test_written_google_templates(
    template,
    meta,
    variables,
    llm_kwargs,
    promptlayer_env,
    gemini_env,
    fake_promptlayer,
    fake_provider,
):
    fake_promptlayer.add_prompt("p", template, meta)
    pl_magic.PromptLayer().run("p", input_variables=variables)
    (call,) = fake_provider.requests
    assert call.model == llm_kwargs["model"]
    assert call.body == _google_wire(llm_kwargs)


def test_own_server_on_loopback_gets_plain_strings(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    """Normalisation "own_server": PromptLayer's parts become strings for a loopback server."""
    fake_promptlayer.provider_base_urls = {"mine": fake_provider.openai_base_url}
    fake_promptlayer.add_prompt(
        "p",
        chat(("system", "Be brief."), ("user", "Hi {who}")),
        model(),
        provider_base_url_name="mine",
    )
    pl_magic.PromptLayer().run("p", input_variables={"who": "Ada"})
    (call,) = fake_provider.requests
    assert call.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi Ada"},  # llm_kwargs: [{"type": "text", ...}]
    ]
