"""The official promptlayer SDK against the fake PromptLayer (keeps the fake honest), and
pl_magic running the same prompts against it: the same provider requests, the same
/track-request payloads, the same result shape."""

from __future__ import annotations

import pytest

import pl_magic
from pl_magic.core.errors import InvalidInputError, PromptNotFoundError
from tests.conftest import new_secret
from tests.helpers import chat, completion, model

promptlayer = pytest.importorskip("promptlayer")

SUPPORT = chat(("system", "You are terse."), ("user", "Say hi to {name}"))
#: Fields of /track-request the SDK sends for a run (reference §6).
SDK_TRACK_FIELDS = {
    "function_name",
    "provider_type",
    "args",
    "kwargs",
    "tags",
    "request_start_time",
    "request_end_time",
    "metadata",
    "prompt_id",
    "prompt_version",
    "prompt_input_variables",
    "group_id",
    "return_prompt_blueprint",
    "span_id",
    "request_response",
}


@pytest.fixture
def anthropic_keys(fake_provider, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", new_secret("sk-ant-test-"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_provider.anthropic_base_url)


def _sdk(key, fake):
    return promptlayer.PromptLayer(api_key=key, base_url=fake.url)


def _final(result, stream):
    if not stream:
        return result
    chunks = list(result)
    assert all(c["request_id"] is None for c in chunks[:-2])
    return chunks[-1]


def _reply(result):
    return result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][-1]["text"]


def _seed(fake, provider="openai"):
    meta = (
        model(temperature=0.2, max_tokens=50)
        if provider == "openai"
        # no temperature: see test_sdk_cannot_pass_anthropic_parameters_pl_magic_can
        else model("claude-haiku-4-5", "anthropic", max_tokens=64)
    )
    fake.add_prompt("support", SUPPORT, meta, labels=["prod"], commit_message="first")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_official_sdk_runs_against_the_fake(
    promptlayer_env, openai_env, anthropic_keys, fake_promptlayer, fake_provider, provider, stream
):
    _seed(fake_promptlayer, provider)

    result = _sdk(promptlayer_env, fake_promptlayer).run(
        "support",
        prompt_release_label="prod",
        input_variables={"name": "Ada"},
        tags=["t1"],
        metadata={"user": "u1"},
        stream=stream,
    )
    final = _final(result, stream)

    assert final["request_id"] == 101
    assert _reply(final) == "echo: Say hi to Ada"
    (fetch,) = fake_promptlayer.requests_for("template.get")
    assert fetch.header_key == promptlayer_env and fetch.body_key == promptlayer_env
    assert {k: v for k, v in fetch.body.items() if k != "api_key"} == {
        "label": "prod",
        "input_variables": {"name": "Ada"},
        "metadata_filters": {"user": "u1"},
    }
    (call,) = fake_provider.requests
    assert call.stream is stream and "Say hi to Ada" in str(call.body)
    (track,) = fake_promptlayer.requests_for("track.request")
    assert track.header_key is None and track.body_key == promptlayer_env
    payload = fake_promptlayer.tracked[101]
    assert set(payload) >= SDK_TRACK_FIELDS
    assert payload["provider_type"] == provider
    assert payload["function_name"] == (
        "openai.chat.completions.create" if provider == "openai" else "anthropic.messages.create"
    )
    assert payload["tags"] == ["t1"]
    # SDK 1.5.16 drops run()'s metadata when it logs a stream (its after_stream callable is
    # built without it); pl_magic sends it either way.
    assert payload["metadata"] == (None if stream else {"user": "u1"})
    assert (payload["prompt_id"], payload["prompt_version"]) == (1, 1)
    assert payload["prompt_input_variables"] == {"name": "Ada"}


def test_official_sdk_with_its_cache_renders_the_unrendered_template(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    _seed(fake_promptlayer)
    sdk = promptlayer.PromptLayer(
        api_key=promptlayer_env, base_url=fake_promptlayer.url, cache_ttl_seconds=60
    )
    for name in ("Ada", "Bob"):
        assert (
            _reply(sdk.run("support", input_variables={"name": name})) == f"echo: Say hi to {name}"
        )
    (fetch,) = fake_promptlayer.requests_for("template.get")  # the second run was cached
    assert fetch.body["skip_input_variable_rendering"] is True


def test_official_sdk_completion_template(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    fake_promptlayer.add_prompt(
        "complete", completion("Finish: {text}"), model("gpt-3.5-turbo-instruct")
    )
    result = _sdk(promptlayer_env, fake_promptlayer).run(
        "complete", input_variables={"text": "abc"}
    )
    assert fake_provider.requests[0].path == "/v1/completions"
    assert (
        result["prompt_blueprint"]["prompt_template"]["content"][-1]["text"] == "echo: Finish: abc"
    )


def test_official_sdk_unknown_prompt_and_bad_key(promptlayer_env, fake_promptlayer):
    with pytest.raises(promptlayer.exceptions.PromptLayerNotFoundError):
        _sdk(promptlayer_env, fake_promptlayer).run("nope")
    with pytest.raises(promptlayer.exceptions.PromptLayerAuthenticationError):
        _sdk(new_secret("pl_bad_"), fake_promptlayer).run("nope")


def test_official_sdk_registry_calls(promptlayer_env, openai_env, fake_promptlayer, fake_provider):
    sdk = _sdk(promptlayer_env, fake_promptlayer)
    body = {
        "prompt_name": "greet",
        "prompt_template": chat(("user", "hi {name}")),
        "metadata": model(),
        "commit_message": "c1",
        "tags": ["demo"],
        "release_labels": ["prod"],
    }
    published = sdk.templates.publish(body)
    assert published["version_number"] == 1 and published["release_labels"] == ["prod"]
    (item,) = sdk.templates.all()
    assert item["prompt_name"] == "greet" and item["version"] == 1
    request_id = sdk.run("greet", input_variables={"name": "Ada"})["request_id"]
    group = sdk.group.create()
    assert sdk.track.score(request_id, 90, "accuracy") is True
    assert sdk.track.metadata(request_id, {"user": "u1"}) is True
    assert sdk.track.group(request_id, group) is True
    assert fake_promptlayer.scores == [{"request_id": request_id, "score": 90, "name": "accuracy"}]
    assert fake_promptlayer.metadata == [{"request_id": request_id, "metadata": {"user": "u1"}}]
    assert fake_promptlayer.groups[group] == [request_id]


# -- pl_magic, the same prompts ---------------------------------------------------------


def _without_stream_false(body):
    return {k: v for k, v in body.items() if not (k == "stream" and v is False)}


def _sdk_then_pl_magic(fake_promptlayer, fake_provider, key, stream, **run):
    """Run with the SDK, then pl_magic; (sdk result, pl_magic result, both provider bodies,
    both track payloads)."""
    sdk_final = _final(_sdk(key, fake_promptlayer).run("support", stream=stream, **run), stream)
    ours = _final(pl_magic.run("support", stream=stream, **run), stream)
    bodies = [r.body for r in fake_provider.requests]
    payloads = [fake_promptlayer.tracked[i] for i in sorted(fake_promptlayer.tracked)]
    return sdk_final, ours, bodies, payloads


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("rendering", ["local", "server"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_pl_magic_runs_the_same_prompts_as_the_sdk(
    promptlayer_env,
    openai_env,
    anthropic_keys,
    fake_promptlayer,
    fake_provider,
    monkeypatch,
    provider,
    rendering,
    stream,
):
    """``local``: pl_magic fetches unrendered and renders (no metadata: metadata with a label
    is PromptLayer's A/B routing, rendered there); ``server``: PromptLayer renders."""
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", rendering)
    _seed(fake_promptlayer, provider)
    metadata = {"user": "u1"} if rendering == "server" else None

    sdk_final, ours, bodies, payloads = _sdk_then_pl_magic(
        fake_promptlayer,
        fake_provider,
        promptlayer_env,
        stream,
        prompt_release_label="prod",
        input_variables={"name": "Ada"},
        tags=["t1"],
        metadata=metadata,
    )

    sdk_fetch, our_fetch = (r.body for r in fake_promptlayer.requests_for("template.get"))
    if rendering == "server":  # the SDK's fetch, field for field
        assert our_fetch == sdk_fetch
    else:
        assert our_fetch == {
            "label": "prod",
            "skip_input_variable_rendering": True,
            "api_key": promptlayer_env,
        }

    # the provider saw the same request (the SDK also spells out "stream": false)
    assert _without_stream_false(bodies[0]) == _without_stream_false(bodies[1])
    # PromptLayer got the same /track-request payload (but for times and the response ids)
    sdk_payload, our_payload = payloads
    assert set(our_payload) == set(sdk_payload)
    local_id = our_payload["metadata"].pop("pl_magic_request_id")  # a resent log is recognised
    assert pl_magic.runs().iloc[0]["request_id"] == local_id
    our_payload["metadata"] = our_payload["metadata"] or None
    for field in SDK_TRACK_FIELDS - {"request_start_time", "request_end_time", "request_response"}:
        if field == "metadata" and stream:
            assert (sdk_payload[field], our_payload[field]) == (None, metadata)
            continue  # the SDK drops it for streams; pl_magic does not
        assert our_payload[field] == sdk_payload[field], field
    assert our_payload["request_start_time"] <= our_payload["request_end_time"]
    # and the result is PromptLayer's: its request id and its blueprint
    assert ours["request_id"] == 102 and sdk_final["request_id"] == 101
    extra = {"prompt_name": "support", "prompt_version": 1, "release_label": "prod"}
    assert ours["prompt_blueprint"] == {**sdk_final["prompt_blueprint"], **extra}
    # the local log has the run too, tied to PromptLayer's id
    row = pl_magic.runs().iloc[0]
    assert row["output"] == "echo: Say hi to Ada"


def test_pl_magic_unknown_prompt_is_one_line(promptlayer_env, fake_promptlayer):
    fake_promptlayer.add_prompt("support", SUPPORT, model())
    with pytest.raises(
        PromptNotFoundError, match=r"Unknown prompt 'suport': did you mean support\?"
    ):
        pl_magic.run("suport")


@pytest.mark.parametrize("rendering", ["local", "server"])
def test_sdk_cannot_pass_anthropic_parameters_pl_magic_can(
    promptlayer_env, anthropic_keys, fake_promptlayer, fake_provider, monkeypatch, rendering
):
    """anthropic>=2 takes temperature only through extra_body: the SDK's messages.create(
    **llm_kwargs) raises TypeError; pl_magic's provider sends it and the run is logged."""
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", rendering)
    fake_promptlayer.add_prompt(
        "support", SUPPORT, model("claude-haiku-4-5", "anthropic", max_tokens=64, temperature=0.5)
    )
    with pytest.raises(TypeError, match="temperature"):
        _sdk(promptlayer_env, fake_promptlayer).run("support", input_variables={"name": "Ada"})

    result = pl_magic.run("support", input_variables={"name": "Ada"})

    assert _reply(result) == "echo: Say hi to Ada"
    (call,) = fake_provider.requests
    assert call.body["temperature"] == 0.5 and call.body["max_tokens"] == 64
    payload = fake_promptlayer.tracked[result["request_id"]]
    assert payload["kwargs"]["temperature"] == 0.5  # logged flat, as PromptLayer expects


@pytest.mark.parametrize("rendering", ["local", "server"])
def test_pl_magic_runs_gemini_prompts_from_promptlayer(
    promptlayer_env, gemini_env, fake_promptlayer, fake_provider, monkeypatch, rendering
):
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", rendering)
    fake_promptlayer.add_prompt(
        "support", SUPPORT, model("gemini-2.5-flash", "google", temperature=0.4)
    )
    result = pl_magic.run("support", input_variables={"name": "Ada"})
    assert _reply(result) == "echo: Say hi to Ada"
    (call,) = fake_provider.requests
    assert call.kind == "gemini" and call.body["generationConfig"]["temperature"] == 0.4
    payload = fake_promptlayer.tracked[result["request_id"]]
    assert payload["function_name"] == "google.model.generate_content"
    assert payload["provider_type"] == "google"


# -- the drop-in's options and shapes (issue 13) -----------------------------------------


def _both(key, fake, **options):
    return (
        promptlayer.PromptLayer(api_key=key, base_url=fake.url, **options),
        pl_magic.PromptLayer(api_key=key, base_url=fake.url, **options),
    )


def test_throw_on_error_false_gives_the_sdks_fallbacks(promptlayer_env, fake_promptlayer):
    """PromptLayer failing: the SDK warns and answers None / [] / False; so does pl_magic."""
    _seed(fake_promptlayer)
    answers = []
    for client in _both(promptlayer_env, fake_promptlayer, throw_on_error=False):
        fake_promptlayer.outage = 400  # a 4xx: the SDK does not retry it either
        try:
            answers.append(
                (
                    client.templates.get("support", {"label": "prod"}),
                    client.templates.all(),
                    client.group.create(),
                    client.track.score(101, 90),
                    client.track.metadata(101, {"a": "b"}),
                    client.track.group(101, 1),
                    client.templates.publish(
                        {"prompt_name": "x", "prompt_template": chat(("user", "hi"))}
                    ),
                    client.log_request(
                        provider="openai",
                        model="gpt-4o-mini",
                        input=chat(("user", "hi")),
                        output=chat(("assistant", "hello")),
                        request_start_time=1.0,
                        request_end_time=2.0,
                    ),
                )
            )
        finally:
            fake_promptlayer.outage = None
    sdk, ours = answers
    assert ours == sdk == (None, [], False, False, False, False, None, None)


def test_throw_on_error_true_raises_the_sdks_classes(promptlayer_env, fake_promptlayer):
    _seed(fake_promptlayer)
    for client in _both(promptlayer_env, fake_promptlayer):
        with pytest.raises(promptlayer.exceptions.PromptLayerNotFoundError):
            client.templates.get("nope", {"label": "prod"})
        fake_promptlayer.fail_next("templates.list", 400)
        with pytest.raises(promptlayer.exceptions.PromptLayerBadRequestError):
            client.templates.all()


def test_templates_all_bad_page_is_one_line(promptlayer_env, fake_promptlayer):
    client = pl_magic.PromptLayer()
    for page in ("x", 0, 1.5, None):
        with pytest.raises(InvalidInputError, match=r"page must be a whole number ≥ 1") as info:
            client.templates.all(page=page)
        assert "\n" not in str(info.value)
    assert fake_promptlayer.requests_for("templates.list") == []


@pytest.mark.parametrize("ttl", [-1, "60", True])
def test_bad_cache_ttl_is_one_line(promptlayer_env, ttl):
    with pytest.raises(InvalidInputError, match="cache_ttl_seconds must be a number"):
        pl_magic.PromptLayer(cache_ttl_seconds=ttl)


def test_publish_is_one_request_and_answers_as_promptlayer(promptlayer_env, fake_promptlayer):
    """An older server's answer lacks version_number: the drop-in returns it as is (one
    request); the module-level publish still tells the version (it asks)."""
    fake_promptlayer.omit_version_number = True
    body = {"prompt_name": "greet", "prompt_template": chat(("user", "hi {name}"))}
    answer = pl_magic.PromptLayer().templates.publish(body)
    (request,) = fake_promptlayer.requests
    assert request.body == {"prompt_template": body, "prompt_version": body, "release_labels": None}
    assert "version_number" not in answer and answer["release_labels"] is None
    assert pl_magic.publish(body)["version_number"] == 2


def test_drop_in_results_have_the_sdks_keys_module_level_keeps_its_own(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    _seed(fake_promptlayer)
    extra = {"prompt_name", "prompt_version", "release_label"}
    dropin = pl_magic.PromptLayer().run("support", input_variables={"name": "Ada"})
    assert not extra & set(dropin["prompt_blueprint"])
    chunks = list(
        pl_magic.PromptLayer().run("support", input_variables={"name": "Ada"}, stream=True)
    )
    assert not any(extra & set(c["prompt_blueprint"]) for c in chunks)
    module_level = pl_magic.run("support", input_variables={"name": "Ada"})
    assert extra <= set(module_level["prompt_blueprint"])


def test_async_client_is_exported_lazily():
    import subprocess
    import sys

    code = (
        "import sys, pl_magic; assert 'pl_magic.async_client' not in sys.modules; "
        "print(pl_magic.AsyncPromptLayer.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pl_magic.async_client"
