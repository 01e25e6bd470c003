"""Drop-in compatibility: ONE scenario list run through PromptLayer's own SDK
(``promptlayer.PromptLayer`` / ``promptlayer.AsyncPromptLayer``) and through pl_magic's
clients (``pl_magic.PromptLayer`` / ``pl_magic.AsyncPromptLayer``), against the same fake
PromptLayer and fake provider servers.

Each scenario runs twice from the same state (servers reset and seeded the same way, so
request ids and group ids match): once with the SDK, once with pl_magic. Every HTTP request
each client sends is recorded by the fakes; the test asserts the same requests (method,
path, query, where the key went, body), the same return values and the same exception
classes, modulo the normalisations listed in ``NORMALISATIONS`` (the README's drop-in
section lists the same).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import pl_magic
from pl_magic.core.errors import ProviderError
from tests.helpers import chat, model

# the SDK, and its exception classes (what ported code catches: pl_magic then raises them)
promptlayer = pytest.importorskip("promptlayer")
pytest.importorskip("promptlayer.exceptions")

#: Deliberate differences, applied below where named; README's drop-in section has them too.
NORMALISATIONS = {
    "times": "request_start_time/request_end_time of /track-request are clock readings",
    "response_ids": "a provider response's id/created differ per call (the fake counts)",
    "stream_deltas": "a stream chunk's prompt_blueprint is the reply so far (the SDK's: the "
    "chunk's delta), and the chunk before the last has no request_id (the SDK yields its last "
    "dict twice, filled in in between); the final chunk is the same",
    "stream_response": "the response pl_magic assembles from a stream for /track-request leaves "
    "out the keys the stream never set (the SDK's ChatCompletion carries them as null)",
    "not_found_hint": "an unknown prompt name costs pl_magic one listing request: its error "
    "names the closest prompt names",
    "async_sdk_gaps": "the async SDK has no templates.publish and its track.group also sends "
    "the key in the X-API-KEY header: pl_magic's async client does as the sync SDK's",
    "stream_metadata": "SDK 1.5.x drops run()'s metadata when it logs a stream; pl_magic sends it",
    "own_cache": "without cache_ttl_seconds pl_magic caches templates (its documented default) "
    "and fetches them unrendered (skip_input_variable_rendering), not with the inputs",
    "retries": "pl_magic retries PromptLayer 429/5xx PL_MAGIC_PROMPTLAYER_RETRIES times (2) "
    "with a short backoff; the SDK 3 times with 2/4/8 s waits",
    "log_id": "pl_magic's /track-request metadata carries pl_magic_request_id (its local id, so "
    "a log sent again is recognised, never doubled)",
    "error_message": "the logged error_message of a failed run is pl_magic's one-line message",
}

SUPPORT_V1 = chat(("system", "You are terse."), ("user", "Say hi to {name}"))
SUPPORT_V2 = chat(("system", "You are terse."), ("user", "Say hello to {name}"))
INPUTS = {"name": "Ada"}
PROVIDER_FAULTS = {"fail401": "err-401", "fail429": "err-429", "fail500": "err-500"}
#: The SDK class each provider fault raises, by scenario.
PROVIDER_ERROR_CLASS = {
    "fail401": "AuthenticationError",
    "fail429": "RateLimitError",
    "fail500": "InternalServerError",
}


def _seed(fake: Any) -> None:
    fake.add_prompt(
        "support",
        SUPPORT_V1,
        model(temperature=0.2, max_tokens=50),
        labels=["prod"],
        commit_message="first",
        tags=["demo"],
    )
    fake.add_prompt("support", SUPPORT_V2, model(temperature=0.2, max_tokens=50))
    # no temperature: anthropic>=2 refuses it as a keyword (the SDK passes llm_kwargs as them)
    fake.add_prompt("claude", SUPPORT_V1, model("claude-haiku-4-5", "anthropic", max_tokens=64))
    for name, fault in PROVIDER_FAULTS.items():
        fake.add_prompt(name, SUPPORT_V1, model(f"gpt-4o-mini-{fault}", max_tokens=20))


# -- the scenarios: plain SDK-style code, the same for every client --------------------


def run_by_version(c: Any) -> Any:
    return c.run("support", prompt_version=1, input_variables=INPUTS)


def run_by_label(c: Any) -> Any:
    return c.run(
        "support",
        prompt_release_label="prod",
        input_variables=INPUTS,
        tags=["t1"],
        metadata={"user": "u1"},
    )


def run_latest(c: Any) -> Any:
    return c.run("support", input_variables=INPUTS, group_id=None)


def run_stream(c: Any) -> Any:
    return list(c.run("support", input_variables=INPUTS, stream=True, tags=["s"]))


def run_overrides(c: Any) -> Any:
    return c.run("support", input_variables=INPUTS, model_parameter_overrides={"temperature": 0.9})


def run_model_override(c: Any) -> Any:
    return c.run("support", input_variables=INPUTS, provider="openai", model="gpt-4.1-mini")


def run_provider_override(c: Any) -> Any:
    return c.run("support", input_variables=INPUTS, provider="anthropic", model="claude-haiku-4-5")


def run_anthropic(c: Any) -> Any:
    return c.run("claude", input_variables=INPUTS)


def provider_401(c: Any) -> Any:
    return c.run("fail401", input_variables=INPUTS)


def provider_429(c: Any) -> Any:
    return c.run("fail429", input_variables=INPUTS)


def provider_500(c: Any) -> Any:
    return c.run("fail500", input_variables=INPUTS)


def unknown_prompt(c: Any) -> Any:
    return c.run("nope", input_variables=INPUTS)


def publish(c: Any) -> Any:
    return c.templates.publish(
        {
            "prompt_name": "greet",
            "prompt_template": chat(("user", "hi {name}")),
            "metadata": model(),
            "commit_message": "c1",
            "tags": ["demo"],
            "release_labels": ["prod"],
        }
    )


def publish_minimal(c: Any) -> Any:
    return c.templates.publish({"prompt_name": "bare", "prompt_template": chat(("user", "hi"))})


def templates_get_with_params(c: Any) -> Any:
    return [
        c.templates.get("support", {"label": "prod", "input_variables": INPUTS}),
        c.templates.get(
            "support",
            {"version": 1, "input_variables": INPUTS, "provider": "openai", "model": "gpt-4.1"},
        ),
    ]


def templates_all(c: Any) -> Any:
    return [c.templates.all(), c.templates.all(page=2, per_page=1), c.templates.all(label="prod")]


def group_create(c: Any) -> Any:
    return c.group.create()


def track_all(c: Any) -> Any:
    request_id = c.run("support", input_variables=INPUTS)["request_id"]
    group = c.group.create()
    return [
        c.track.score(request_id, 90, "accuracy"),
        c.track.score(request_id, 80),
        c.track.metadata(request_id, {"user": "u1"}),
        c.track.group(request_id, group),
    ]


def log_request(c: Any) -> Any:
    return c.log_request(
        provider="openai",
        model="gpt-4o-mini",
        input=chat(("user", "hi")),
        output=chat(("assistant", "hello")),
        request_start_time=1760000000.0,
        request_end_time=1760000001.5,
        parameters={"temperature": 0.2},
        tags=["ext"],
        metadata={"user": "u1"},
        input_tokens=3,
        output_tokens=1,
        price=0.001,
    )


def cache_0(c: Any) -> Any:
    first = c.run("support", prompt_release_label="prod", input_variables=INPUTS)
    second = c.run("support", prompt_release_label="prod", input_variables={"name": "Bob"})
    return [first, second]


def cache_60_and_invalidate(c: Any, fake: Any) -> Any:
    out = [c.run("support", prompt_release_label="prod", input_variables=INPUTS)]
    fake.set_label("support", "prod", 2)  # moved in the dashboard
    out.append(c.run("support", prompt_release_label="prod", input_variables=INPUTS))  # cached
    c.invalidate("support")
    out.append(c.run("support", prompt_release_label="prod", input_variables=INPUTS))  # fresh
    c.templates.invalidate()
    out.append(c.run("support", prompt_version=1, input_variables=INPUTS))
    return out


def promptlayer_5xx_once(c: Any, fake: Any) -> Any:
    fake.fail_next("template.get", 500)  # the SDK waits 2 s before its retry
    return c.run("support", input_variables=INPUTS)


def promptlayer_5xx(c: Any, fake: Any) -> Any:
    fake.outage = 503  # the SDK waits 2 + 4 + 8 s before giving up
    return c.run("support", input_variables=INPUTS)


def default_construction(c: Any) -> Any:
    return c.run("support", prompt_release_label="prod", input_variables=INPUTS)


@dataclass(frozen=True)
class Scenario:
    """One scenario: the code, the client options, and which normalisations apply."""

    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=lambda: {"cache_ttl_seconds": 0})
    normalise: frozenset[str] = frozenset()
    needs_fake: bool = False
    sync_only: bool = False  # the SDK's own retries make the async twin slow, not different


SCENARIOS = [
    Scenario(run_by_version),
    Scenario(run_by_label),
    Scenario(run_latest),
    Scenario(
        run_stream, normalise=frozenset({"stream_deltas", "stream_metadata", "stream_response"})
    ),
    Scenario(run_overrides),
    Scenario(run_model_override),
    Scenario(run_provider_override),
    Scenario(run_anthropic),
    Scenario(provider_401, normalise=frozenset({"error_message"})),
    Scenario(provider_429, normalise=frozenset({"error_message"})),
    Scenario(provider_500, normalise=frozenset({"error_message"})),
    Scenario(unknown_prompt, normalise=frozenset({"not_found_hint"})),
    Scenario(promptlayer_5xx_once, needs_fake=True, sync_only=True),
    Scenario(promptlayer_5xx, normalise=frozenset({"retries"}), needs_fake=True, sync_only=True),
    Scenario(publish, normalise=frozenset({"async_sdk_gaps"})),
    Scenario(publish_minimal, normalise=frozenset({"async_sdk_gaps"})),
    Scenario(templates_get_with_params),
    Scenario(templates_all),
    Scenario(group_create),
    Scenario(track_all, normalise=frozenset({"async_sdk_gaps"})),
    Scenario(log_request),
    Scenario(cache_0),
    Scenario(cache_60_and_invalidate, options={"cache_ttl_seconds": 60}, needs_fake=True),
    Scenario(default_construction, options={}, normalise=frozenset({"own_cache"})),
]
#: Calls the async SDK lacks (AsyncTemplateManager has no publish); the issue asks for them.
_NOT_IN_ASYNC_SDK = {publish, publish_minimal}
#: Scenarios whose exception class is issue 13.1's (provider errors as the SDK's classes)
#: and whose request log is 13.2's (the failed run logged before the raise).
PROVIDER_ERROR_SCENARIOS = {"provider_401", "provider_429", "provider_500"}


# -- running a scenario through one client ----------------------------------------------


class _Synced:
    """An async client seen through synchronous calls (one event loop per test), so one
    scenario function serves both twins. Awaitables are awaited; async iterators are
    collected into lists."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.ismethod(attr) or inspect.isfunction(attr):
            return self._wrap(attr)
        if isinstance(attr, str | int | float | bool | type(None) | dict | list):
            return attr
        return _Synced(attr, self._loop)

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            out = method(*args, **kwargs)
            if inspect.isawaitable(out):
                out = self._loop.run_until_complete(out)
            if hasattr(out, "__anext__"):
                out = self._loop.run_until_complete(_collect(out))
            return out

        return call


#: One event loop for the module: the SDK caches its async provider clients across calls,
#: and a client outlives the loop it was made on only if that loop stays open.
_LOOP: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(scope="module", autouse=True)
def _event_loop():
    _LOOP.append(asyncio.new_event_loop())
    yield
    _LOOP.pop().close()


async def _collect(chunks: Any) -> list[Any]:
    return [chunk async for chunk in chunks]


@dataclass
class Outcome:
    """What one client did: its value (normalised), its exception, every request sent."""

    value: Any
    error: BaseException | None
    promptlayer: list[tuple[Any, ...]]  # at the moment the call returned or raised
    provider: list[tuple[Any, ...]]


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    return obj


def _without(data: Any, keys: frozenset[str]) -> Any:
    if isinstance(data, dict):
        return {k: _without(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list):
        return [_without(v, keys) for v in data]
    return data


_VOLATILE = frozenset({"id", "created", "request_start_time", "request_end_time"})


def _value(value: Any, normalise: frozenset[str]) -> Any:
    """A result with the provider's native objects dumped and volatile ids taken out."""
    if isinstance(value, list):
        return [_value(v, normalise) for v in value]
    if isinstance(value, dict) and "raw_response" in value:
        out = {**value, "raw_response": _without(_dump(value["raw_response"]), _VOLATILE)}
        return out
    return value


def _without_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_without_nulls(v) for v in data]
    return data


def _promptlayer_request(rec: Any, key: str, normalise: frozenset[str]) -> tuple[Any, ...]:
    body = rec.body
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "api_key"}
        if rec.kind == "track.request":
            body = _without(body, _VOLATILE)
            # normalisation "log_id" (every run)
            metadata = {k: v for k, v in (body.get("metadata") or {}).items()}
            metadata.pop("pl_magic_request_id", None)
            body["metadata"] = metadata or None
            if "error_message" in normalise and "error_message" in body:
                body["error_message"] = "<message>"
            if "stream_metadata" in normalise:
                body.pop("metadata", None)
            if "stream_response" in normalise:
                body["request_response"] = _without_nulls(body.get("request_response"))
        if "own_cache" in normalise and rec.kind == "template.get":
            body = {"label": body.get("label"), "version": body.get("version")}
    header = rec.header_key == key
    if "async_sdk_gaps" in normalise and rec.kind == "track.group":
        header = False  # the async SDK's alone sends it in the header too
    return (rec.method, rec.path, rec.query, header, rec.body_key == key, body)


def _execute(
    scenario: Scenario,
    side: str,
    is_async: bool,
    key: str,
    fake_pl: Any,
    fake_provider: Any,
) -> Outcome:
    fake_pl.reset()
    fake_pl.api_keys = {key}
    fake_provider.reset()
    _seed(fake_pl)
    module = promptlayer if side == "sdk" else pl_magic
    if side == "sdk" and is_async and scenario.fn in _NOT_IN_ASYNC_SDK:
        is_async = False  # normalisation "async_sdk_gaps": the sync SDK is the reference
    cls = module.AsyncPromptLayer if is_async else module.PromptLayer
    loop = _LOOP[0]
    try:
        client = cls(api_key=key, base_url=fake_pl.url, **scenario.options)
        c = _Synced(client, loop) if is_async else client
        args = (fake_pl,) if scenario.needs_fake else ()
        value, error = None, None
        try:
            value = scenario.fn(c, *args)
        except Exception as exc:  # compared with the other side's below
            error = exc
        recorded = list(fake_pl.requests)
        if "not_found_hint" in scenario.normalise:
            recorded = [r for r in recorded if r.kind != "templates.list"]
        sent = [_promptlayer_request(r, key, scenario.normalise) for r in recorded]
        provider_sent = [
            (r.method, r.path, _without(r.body, frozenset())) for r in fake_provider.requests
        ]
    finally:
        fake_pl.outage = None
    return Outcome(_value(value, scenario.normalise), error, sent, provider_sent)


def _dedupe(requests: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for r in requests:
        if not out or out[-1] != r:
            out.append(r)
    return out


def _final_chunks_equal(sdk: list[dict[str, Any]], ours: list[dict[str, Any]]) -> None:
    assert len(ours) == len(sdk)
    assert all(set(c) == {"request_id", "raw_response", "prompt_blueprint"} for c in ours)
    # the SDK yields its last chunk twice (one dict, filled in before the second time)
    assert [c["request_id"] for c in ours[:-2]] == [c["request_id"] for c in sdk[:-2]]
    assert all(c["request_id"] is None for c in ours[:-1])
    assert ours[-1] == sdk[-1]  # PromptLayer's id and blueprint, the last raw chunk


def _diff(mine: Any, theirs: Any, where: str = "") -> str:
    """Where two request tuples/bodies first differ (for a readable failure)."""
    if isinstance(mine, tuple | list) and isinstance(theirs, tuple | list):
        if len(mine) != len(theirs):
            return f"{where}: length {len(mine)} != {len(theirs)}"
        for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            if a != b:
                return _diff(a, b, f"{where}[{i}]")
    if isinstance(mine, dict) and isinstance(theirs, dict):
        if set(mine) != set(theirs):
            only_ours, only_sdk = set(mine) - set(theirs), set(theirs) - set(mine)
            return f"{where}: keys only pl_magic {only_ours}, only SDK {only_sdk}"
        for k in mine:
            if mine[k] != theirs[k]:
                return _diff(mine[k], theirs[k], f"{where}.{k}")
    return f"{where}: pl_magic {mine!r} != SDK {theirs!r}"


def _params() -> list[Any]:
    out = []
    for scenario in SCENARIOS:
        name = scenario.fn.__name__
        for is_async in (False, True):
            if is_async and scenario.sync_only:
                continue
            out.append(
                pytest.param(scenario, is_async, id=f"{name}-{'async' if is_async else 'sync'}")
            )
    return out


@pytest.fixture
def compat_env(promptlayer_env, openai_env, anthropic_env, monkeypatch):
    """Keys for both sides; pl_magic's provider retries as the provider SDKs' defaults."""
    monkeypatch.setenv("PL_MAGIC_MAX_RETRIES", "2")
    return promptlayer_env


@pytest.mark.parametrize(("scenario", "is_async"), _params())
def test_same_requests_results_and_errors(
    scenario: Scenario, is_async: bool, compat_env, fake_promptlayer, fake_provider
):
    key = compat_env
    sdk = _execute(scenario, "sdk", is_async, key, fake_promptlayer, fake_provider)
    ours = _execute(scenario, "ours", is_async, key, fake_promptlayer, fake_provider)
    name = scenario.fn.__name__

    # the same exception classes (ours also pl_magic's own typed error)
    if sdk.error is not None:
        assert ours.error is not None, f"the SDK raised {sdk.error!r}; pl_magic did not"
        assert isinstance(ours.error, type(sdk.error)), (type(sdk.error), type(ours.error))
        assert isinstance(ours.error, pl_magic.errors.PlMagicError)
        assert "\n" not in str(ours.error)
        if name in PROVIDER_ERROR_SCENARIOS:
            assert isinstance(ours.error, ProviderError)
            assert (
                type(sdk.error).__name__ == PROVIDER_ERROR_CLASS[name.replace("provider_", "fail")]
            )
    else:
        assert ours.error is None, f"pl_magic raised {ours.error!r}; the SDK did not"

    # the same requests to the provider and to PromptLayer
    assert ours.provider == sdk.provider
    if "retries" in scenario.normalise:
        assert _dedupe(ours.promptlayer) == _dedupe(sdk.promptlayer)
    else:
        for mine, theirs in zip(ours.promptlayer, sdk.promptlayer, strict=False):
            assert mine == theirs, _diff(mine, theirs)
        assert len(ours.promptlayer) == len(sdk.promptlayer), (ours.promptlayer, sdk.promptlayer)

    # the same values
    if "stream_deltas" in scenario.normalise:
        _final_chunks_equal(sdk.value, ours.value)
    else:
        assert ours.value == sdk.value


def test_the_scenarios_cover_the_issue():
    """Every case the issue names has a scenario (so a deleted one fails here)."""
    names = {s.fn.__name__ for s in SCENARIOS}
    assert names >= {
        "run_by_version",
        "run_by_label",
        "run_latest",
        "run_stream",
        "run_overrides",
        "run_model_override",
        "run_provider_override",
        "provider_401",
        "provider_429",
        "provider_500",
        "promptlayer_5xx",
        "publish",
        "templates_get_with_params",
        "templates_all",
        "group_create",
        "track_all",
        "log_request",
        "cache_0",
        "cache_60_and_invalidate",
    }
    assert set(NORMALISATIONS) >= set().union(*(s.normalise for s in SCENARIOS))
