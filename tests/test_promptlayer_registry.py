"""The PromptLayer registry: fetching and caching templates, listing, labels, publishing."""

from __future__ import annotations

import pytest

import pl_magic
from pl_magic.core.errors import (
    InvalidInputError,
    LabelNotFoundError,
    PromptLayerAuthError,
    PromptLayerUnavailableError,
    PromptNotFoundError,
    VersionNotFoundError,
)
from tests.conftest import new_secret
from tests.helpers import chat, model

GREET = chat(("user", "hi {name}"))


@pytest.fixture
def client(promptlayer_env, fake_promptlayer):
    fake_promptlayer.add_prompt(
        "greet", chat(("user", "v1 hi {name}")), model(), commit_message="v1"
    )
    fake_promptlayer.add_prompt(
        "greet", chat(("user", "v2 hello {name}")), model(), labels=["prod"]
    )
    fake_promptlayer.add_prompt(
        "greet", chat(("user", "v3 hey {name}")), model(), labels=["staging"]
    )
    fake_promptlayer.add_prompt("other", chat(("user", "other {topic}")), model("gpt-4.1-mini"))
    from pl_magic.client import default_client

    return default_client()  # the one pl_magic.publish, set_label... use


def _text(record):
    return record["prompt_template"]["messages"][0]["content"][0]["text"]


def test_the_client_picks_the_promptlayer_backend(client):
    assert client.backend == "promptlayer" and client.registry.kind == "promptlayer"
    assert pl_magic.PromptLayer(backend="local").backend == "local"


def test_get_by_label_version_and_latest(client, fake_promptlayer):
    registry = client.registry
    assert _text(registry.get("greet", label="prod")) == "v2 hello {name}"
    assert _text(registry.get("greet", version=1)) == "v1 hi {name}"
    latest = registry.get("greet")
    assert (_text(latest), latest["version"]) == ("v3 hey {name}", 3)
    assert _text(registry.get("greet", version=1, label="prod")) == "v2 hello {name}"  # label wins
    fetch = fake_promptlayer.requests_for("template.get")[0]
    assert fetch.body["skip_input_variable_rendering"] is True  # cached copies are unrendered


def test_reads_used_by_the_widget(client):
    registry = client.registry
    assert registry.names() == ["greet", "other"]
    assert registry.versions("greet") == [1, 2, 3]
    assert registry.labels("greet") == {"prod": 2, "staging": 3}
    (greet, other) = registry.list_prompts()
    assert greet["prompt_name"] == "greet" and greet["latest_version"] == 3
    assert greet["labels"] == {"prod": 2, "staging": 3} and greet["input_variables"] == ["name"]
    assert (other["provider"], other["model"]) == ("openai", "gpt-4.1-mini")


def test_listing_follows_pages(promptlayer_env, fake_promptlayer):
    for i in range(205):
        fake_promptlayer.add_prompt(f"p{i:03d}", GREET, model())
    names = pl_magic.PromptLayer().registry.names()
    assert len(names) == 205 and names[0] == "p000"
    assert [r.query["page"] for r in fake_promptlayer.requests_for("templates.list")] == [
        "1",
        "2",
        "3",
    ]


def test_a_pinned_version_is_cached_for_good_a_label_for_a_ttl(
    client, fake_promptlayer, monkeypatch
):
    registry = client.registry
    registry.get("greet", version=1)
    registry.get("greet", label="prod")
    registry.get("greet", version=2)  # known from the label's fetch: pinned
    assert len(fake_promptlayer.requests_for("template.get")) == 2
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_TTL", "0")  # every label entry is now expired
    fake_promptlayer.set_label("greet", "prod", 3)
    assert _text(registry.get("greet", label="prod")) == "v3 hey {name}"  # asked again
    registry.get("greet", version=1)  # still pinned
    assert len(fake_promptlayer.requests_for("template.get")) == 3


def test_stale_copy_is_used_when_promptlayer_is_down(client, fake_promptlayer, monkeypatch, capsys):
    registry = client.registry
    registry.get("greet", label="prod")
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_TTL", "0")
    fake_promptlayer.outage = 503
    record = registry.get("greet", label="prod")
    assert _text(record) == "v2 hello {name}"
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("pl_magic: PromptLayer unreachable; using the copy of 'greet'")
    asked = len(fake_promptlayer.requests)
    assert _text(registry.get("greet", label="prod")) == "v2 hello {name}"
    assert len(fake_promptlayer.requests) == asked  # not asked again right away
    assert capsys.readouterr().err == ""


def test_stale_copy_when_the_connection_drops(client, fake_promptlayer, monkeypatch):
    client.registry.get("greet", label="prod")
    monkeypatch.setenv("PL_MAGIC_TEMPLATE_TTL", "0")
    fake_promptlayer.outage = "drop"
    assert _text(client.registry.get("greet", label="prod")) == "v2 hello {name}"


def test_promptlayer_down_with_nothing_cached_is_one_line(client, fake_promptlayer):
    fake_promptlayer.outage = 503
    with pytest.raises(PromptLayerUnavailableError) as info:
        client.registry.get("greet", label="prod")
    message = str(info.value)
    assert "HTTP 503" in message and "no copy of 'greet' (label 'prod')" in message
    assert "\n" not in message


def test_unknown_prompt_label_and_version(client):
    with pytest.raises(PromptNotFoundError, match="did you mean greet"):
        client.registry.get("gret")
    with pytest.raises(LabelNotFoundError, match="existing labels are prod, staging"):
        client.registry.get("greet", label="nope")
    with pytest.raises(VersionNotFoundError, match="existing versions are 1, 2, 3"):
        client.registry.get("greet", version=9)


def test_a_bad_key_is_one_line(promptlayer_env, fake_promptlayer, monkeypatch):
    bad = new_secret("pl_bad_")
    monkeypatch.setenv("PROMPTLAYER_API_KEY", bad)
    with pytest.raises(PromptLayerAuthError) as info:
        pl_magic.run("greet")
    assert "PROMPTLAYER_API_KEY" in str(info.value) and bad not in str(info.value)


def test_publish_uses_rest_prompt_templates(client, fake_promptlayer):
    published = pl_magic.publish(
        {
            "prompt_name": "greet",
            "prompt_template": chat(("user", "v4 yo {name}")),
            "metadata": model(temperature=0.3),
            "commit_message": "v4",
            "tags": ["demo"],
            "release_labels": ["prod"],
            "provider_base_url_name": "proxy",
        }
    )
    assert (published["version_number"], published["release_labels"]) == (4, ["prod"])
    (req,) = fake_promptlayer.requests_for("template.publish")
    assert req.header_key is not None and req.body_key is None
    assert req.body["prompt_template"] == req.body["prompt_version"]  # the body twice, as the SDK
    assert req.body["release_labels"] == ["prod"]
    assert req.body["prompt_version"]["provider_base_url_name"] == "proxy"
    assert req.body["prompt_version"]["prompt_template"]["input_variables"] == ["name"]
    assert client.registry.labels("greet")["prod"] == 4


def test_publish_answer_without_version_number_is_completed(client, fake_promptlayer):
    fake_promptlayer.omit_version_number = True  # the cassettes' older server
    published = client.templates.publish({"prompt_name": "greet", "prompt_template": GREET})
    assert published["version_number"] == 4


def test_a_raw_base_url_is_a_local_registry_feature(client, fake_promptlayer):
    with pytest.raises(InvalidInputError, match="provider_base_url_name"):
        pl_magic.publish(
            {"prompt_name": "x", "prompt_template": GREET, "provider_base_url": "http://h/v1"}
        )
    assert fake_promptlayer.requests_for("template.publish") == []


def test_provider_base_url_name_reaches_the_run(
    promptlayer_env, fake_promptlayer, fake_provider, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", new_secret("sk-test-"))
    fake_promptlayer.provider_base_urls = {"proxy": fake_provider.openai_base_url}
    fake_promptlayer.add_prompt("greet", GREET, model(), provider_base_url_name="proxy")
    result = pl_magic.run("greet", input_variables={"name": "Ada"})
    assert result["prompt_blueprint"]["prompt_template"]["messages"][-1]["content"][0]["text"] == (
        "echo: hi Ada"
    )
    assert fake_provider.requests[0].path == "/v1/chat/completions"


def test_set_and_delete_labels(client, fake_promptlayer):
    pl_magic.set_label("greet", "prod", 1)  # moves it
    pl_magic.set_label("greet", "canary", 3)  # creates it
    assert client.registry.labels("greet") == {"canary": 3, "prod": 1, "staging": 3}
    assert _text(pl_magic.get_template("greet", label="prod")) == "v1 hi {name}"
    pl_magic.delete_label("greet", "canary")
    assert "canary" not in client.registry.labels("greet")
    with pytest.raises(LabelNotFoundError):
        pl_magic.delete_label("greet", "canary")
    with pytest.raises(VersionNotFoundError):
        pl_magic.set_label("greet", "prod", 7)
    kinds = [r.kind for r in fake_promptlayer.requests if r.kind.startswith("label.")]
    assert kinds == ["label.move", "label.create", "label.delete"]


def test_templates_get_with_inputs_is_promptlayers_own_answer(client, fake_promptlayer):
    record = client.templates.get("greet", {"label": "prod", "input_variables": {"name": "Ada"}})
    assert _text(record) == "v2 hello Ada"
    assert record["llm_kwargs"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "v2 hello Ada"}]}
    ]
    req = fake_promptlayer.requests_for("template.get")[-1]
    assert (
        req.body["input_variables"] == {"name": "Ada"}
        and "skip_input_variable_rendering" not in req.body
    )
    record = client.templates.get("greet")
    assert _text(record) == "v3 hey {name}" and "release_label" not in record


def test_templates_all_and_group_create(client, fake_promptlayer):
    items = client.templates.all(per_page=1)
    assert [i["prompt_name"] for i in items] == ["other"]
    assert client.group.create() == 1 and pl_magic.create_group() == 2
    assert [r.kind for r in fake_promptlayer.requests][-2:] == ["group.create", "group.create"]


def test_registry_setting_without_a_key_is_one_line(monkeypatch):
    from pl_magic.client import default_client, set_backend
    from pl_magic.core.errors import ConfigurationError

    set_backend("promptlayer")
    try:
        with pytest.raises(
            ConfigurationError, match="set the environment variable PROMPTLAYER_API_KEY"
        ):
            default_client()
    finally:
        set_backend("auto")
    with pytest.raises(ConfigurationError, match="must be one of"):
        set_backend("cloud")


def test_missing_variables_strict_locally_empty_when_promptlayer_renders(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider, monkeypatch
):
    from pl_magic.core.errors import MissingVariablesError

    fake_promptlayer.add_prompt("greet", GREET, model())
    with pytest.raises(MissingVariablesError, match="name"):
        pl_magic.run("greet")  # pl_magic renders: strict, before any call
    assert fake_provider.requests == [] and fake_promptlayer.tracked == {}

    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", "server")
    pl_magic.run("greet")  # PromptLayer renders: a missing variable is "", as in its SDK
    assert fake_provider.requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi "}]}
    ]
