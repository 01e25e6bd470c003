"""Replaying the recorded PromptLayer exchanges (../shared/compat/promptlayer-cassettes)
against pl_magic's client: the same requests (paths, query, key placement, body fields)
and the recorded answers parsed.

Each cassette's PromptLayer interactions are served, in order, by an httpx2 MockTransport
that checks every request pl_magic makes against the recorded one. Provider calls go to
the fake provider server. Runs replay with ``PL_MAGIC_PROMPTLAYER_RENDERING=server``: the
official SDK's uncached protocol, the one the cassettes recorded.

Not replayed: the workflow cassettes (``run_workflow``: not a pl_magic feature) and
``test_openai_chat_completion_with_stream`` (no PromptLayer exchange in it).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

import pl_magic
from pl_magic.core.errors import ProviderError
from tests.conftest import new_secret

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "compat" / "promptlayer-cassettes"
PROMPTLAYER_HOST = "localhost:8000"

pytestmark = pytest.mark.skipif(not CASSETTES.is_dir(), reason="cassettes not available")


def _load(name: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text())
    return data["interactions"]


def _pl_interactions(name: str) -> list[dict[str, Any]]:
    return [i for i in _load(name) if PROMPTLAYER_HOST in i["request"]["uri"]]


class Replay:
    """Serves a cassette's PromptLayer answers; checks each request against the recorded one.

    ``subset`` (a set of paths): there the recorded body's fields must be among ours (the
    recording SDK was older and sent fewer); elsewhere the field sets are equal.
    ``extra``: answers for requests the recording did not have (``None``: not one of them).
    """

    def __init__(
        self,
        name: str,
        key: str,
        subset: frozenset[str] = frozenset(),
        extra: Callable[[str, str, Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self.expected = deque(_pl_interactions(name))
        self.subset = subset
        self.extra = extra
        self.checked: list[tuple[dict[str, Any], Any]] = []  # (recorded request, our body)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.raw_path.decode().split("?")[0]
        if self.extra is not None:
            answer = self.extra(request.method, path, body)
            if answer is not None:
                return httpx2.Response(200, json=answer)
        assert self.expected, f"{self.name}: unexpected {request.method} {path}"
        interaction = self.expected.popleft()
        recorded = interaction["request"]
        self._check(recorded, request, path, body)
        self.checked.append((recorded, body))
        response = interaction["response"]
        return httpx2.Response(
            response["status"]["code"],
            content=response["body"]["string"].encode(),
            headers={"content-type": "application/json"},
        )

    def _check(
        self, recorded: dict[str, Any], request: httpx2.Request, path: str, body: Any
    ) -> None:
        uri = httpx2.URL(recorded["uri"])
        where = f"{self.name}: {recorded['method']} {uri.raw_path.decode()}"
        assert request.method == recorded["method"], where
        assert path == uri.raw_path.decode().split("?")[0], where
        assert dict(request.url.params) == dict(uri.params), where
        headers = {k.lower() for k in recorded["headers"]}
        assert ("x-api-key" in headers) == ("x-api-key" in request.headers), f"{where}: header"
        if "x-api-key" in headers:
            assert request.headers["x-api-key"] == self.key
        want = json.loads(recorded["body"]) if recorded["body"] else None
        if want is None:
            assert body is None, f"{where}: body"
            return
        assert ("api_key" in want) == ("api_key" in body), f"{where}: api_key in the body"
        if "api_key" in want:
            assert body["api_key"] == self.key
        if path in self.subset:
            assert set(want) <= set(body), f"{where}: missing {set(want) - set(body)}"
        else:
            assert set(want) == set(body), f"{where}: {set(want) ^ set(body)}"

    def done(self) -> None:
        assert not self.expected, f"{self.name}: not replayed: {list(self.expected)}"


def _recorded_body(interaction_request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(interaction_request["body"])


def _sanitized(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: ("sanitized" if k == "api_key" and v == key else v) for k, v in body.items()}


@pytest.fixture
def replay_client(openai_env, fake_provider, monkeypatch):
    """(make(name, **replay options) -> Replay, the client), server rendering on."""
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", "server")
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_BACKOFF", "0.001")
    key = new_secret("pl_cassette_")
    client = pl_magic.PromptLayer(api_key=key, base_url=f"http://{PROMPTLAYER_HOST}")
    api = client.registry.api  # type: ignore[union-attr]

    def make(name: str, **options: Any) -> Replay:
        replay = Replay(name, key, **options)
        api.transport = httpx2.MockTransport(replay.handle)
        api.close()  # the next call opens a client on that transport
        return replay

    return make, client


def test_get_template(replay_client):
    make, client = replay_client
    replay = make("test_get_template_async")
    record = client.templates.get(
        "sample_template", {"provider": "openai", "model": "gpt-3.5-turbo"}
    )
    replay.done()
    assert (record["id"], record["version"], record["prompt_name"]) == (4, 1, "sample_template")
    assert record["llm_kwargs"]["model"] == "gpt-4o"
    ((recorded, ours),) = replay.checked
    assert _sanitized(ours, replay.key) == _recorded_body(recorded)


def test_get_all_templates(replay_client):
    make, client = replay_client
    replay = make("test_get_all_templates")
    items = client.templates.all()
    replay.done()
    assert [i["prompt_name"] for i in items] == ["sample_template", "simple", "Example: page_title"]


def _recorded_answer(name: str, index: int = 0) -> Any:
    return json.loads(_pl_interactions(name)[index]["response"]["body"]["string"])


def test_publish_template(replay_client):
    """One request, the body as given (the SDK's), PromptLayer's answer as it is (the
    recorded server's lacks version_number: the drop-in does not go and ask)."""
    make, client = replay_client
    replay = make("test_publish_template_async")
    (interaction,) = _pl_interactions("test_publish_template_async")
    body = _recorded_body(interaction["request"])["prompt_template"]

    published = client.templates.publish(body)

    replay.done()
    ((recorded, ours),) = replay.checked
    assert ours == _recorded_body(recorded)
    assert published == _recorded_answer("test_publish_template_async")


def test_publish_with_provider_base_url_name_then_get(replay_client):
    make, client = replay_client
    replay = make("test_get_prompt_template_provider_base_url_name")
    publish_body = _recorded_body(
        _pl_interactions("test_get_prompt_template_provider_base_url_name")[0]["request"]
    )["prompt_template"]

    published = client.templates.publish(publish_body)
    record = client.templates.get(
        "test_template:test", {"provider": "openai", "model": "gpt-3.5-turbo"}
    )

    replay.done()
    ours = replay.checked[0][1]
    assert ours == _recorded_body(replay.checked[0][0])
    assert ours["prompt_version"]["provider_base_url_name"] == "does_not_exist"
    assert published == _recorded_answer("test_get_prompt_template_provider_base_url_name")
    assert record["provider_base_url"] is None and record["metadata"] is None
    assert replay.checked[1][1]["model"] == "gpt-3.5-turbo"  # path quoted: test_template%3Atest


def test_run_prompt(replay_client, fake_provider):
    make, client = replay_client
    replay = make("test_run_prompt_async")

    result = client.run("sample_template")

    replay.done()
    (fetch, track) = replay.checked
    assert fetch[1] == {"api_key": replay.key}
    want, ours = _recorded_body(track[0]), track[1]
    for field in set(want) - {
        "request_start_time",
        "request_end_time",
        "request_response",
        "api_key",
        "metadata",
    }:
        assert ours[field] == want[field], field
    # pl_magic's local request id, so that a log sent again is recognised
    assert set(ours["metadata"]) == {"pl_magic_request_id"} and want["metadata"] is None
    assert fake_provider.requests[0].body["model"] == "gpt-4o"  # llm_kwargs, as the SDK sent
    assert result["request_id"] == 129
    assert result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"] == (
        "Hello! Yes, I'm trained on data up to October 2023. How can I assist you today?"
    )


def test_run_logs_error_on_llm_auth_failure(replay_client, fake_provider):
    make, client = replay_client
    replay = make("test_run_logs_error_on_llm_auth_failure")
    fake_provider.fail_next("err-401")

    with pytest.raises(ProviderError):
        client.run("error_tracking_test")
    client.tracker.wait_idle(5)

    replay.done()
    want, ours = _recorded_body(replay.checked[1][0]), replay.checked[1][1]
    for field in ("function_name", "provider_type", "args", "kwargs", "prompt_id", "status"):
        assert ours[field] == want[field], field
    assert (ours["error_type"], ours["request_response"]) == ("PROVIDER_AUTH_ERROR", {})
    assert client.runlog.get("5")["status"] == "error"  # synced: PromptLayer's id 5


def test_track_score_metadata_and_groups(replay_client, fake_provider):
    """The older SDK's run (fewer /track-request fields), then score, metadata, groups."""
    make, client = replay_client
    replay = make("test_track_and_templates", subset=frozenset({"/track-request"}))

    result = client.run("sample_template", provider="openai", model="gpt-3.5-turbo")
    assert result["request_id"] == 132
    assert result["prompt_blueprint"]["prompt_template"]["messages"]  # null upstream: ours
    assert client.track.score(132, 10, "accuracy") is True
    assert client.track.metadata(132, {"test": "test"}) is True
    group = client.group.create()
    assert client.track.group(132, group) is True

    replay.done()
    for recorded, ours in replay.checked[2:]:  # score, metadata, create-group, track-group
        assert _sanitized(ours, replay.key) == _recorded_body(recorded)
    assert replay.checked[0][1] == {
        "provider": "openai",
        "model": "gpt-3.5-turbo",
        "api_key": replay.key,
    }


def test_log_request(replay_client):
    """The recording SDK was older: it sent a subset of today's fields, all of them the same."""
    make, client = replay_client
    replay = make("test_log_request_async", subset=frozenset({"/log-request"}))
    template = client.templates.get("sample_template")
    recorded = _recorded_body(_pl_interactions("test_log_request_async")[1]["request"])
    logged = client.log_request(**recorded)
    replay.done()
    assert template["id"] == 4
    assert logged == _recorded_answer("test_log_request_async", 1)
    ours = replay.checked[1][1]
    assert {k: ours[k] for k in recorded} == recorded
    assert (ours["status"], ours["prompt_id"], ours["score_name"]) == ("SUCCESS", None, None)


TRACK_ONLY = [
    "test_openai_chat_completion",
    "test_openai_chat_completion_async",
    "test_openai_chat_completion_with_pl_id",
    "test_openai_chat_completion_async_stream_with_pl_id",
    "test_openai_chat_completion_with_stream_and_pl_id",
    "test_anthropic_chat_completion",
    "test_anthropic_chat_completion_async",
    "test_anthropic_chat_completion_with_pl_id",
    "test_anthropic_chat_completion_with_stream",
    "test_anthropic_chat_completion_with_stream_and_pl_id",
    "test_anthropic_chat_completion_async_stream_with_pl_id",
]


@pytest.mark.parametrize("name", TRACK_ONLY)
def test_track_request_bodies(replay_client, name):
    """The SDK's provider proxies logged these; pl_magic's client sends the same body (key in
    the body only) and parses the answers."""
    make, client = replay_client
    replay = make(name)
    (interaction,) = _pl_interactions(name)
    body = _recorded_body(interaction["request"])
    body.pop("api_key")

    answer = client.registry.api.track_request(body)

    replay.done()
    ((_, ours),) = replay.checked
    assert _sanitized(ours, replay.key) == _recorded_body(interaction["request"])
    assert (
        answer["request_id"] == json.loads(interaction["response"]["body"]["string"])["request_id"]
    )
