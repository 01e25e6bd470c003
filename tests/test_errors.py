"""Each typed error of pl_magic.core.errors, provoked for real; every message is one line."""

from __future__ import annotations

import json

import pytest

import pl_magic
from pl_magic.core import errors
from pl_magic.registry.local import LocalRegistry
from tests.helpers import chat, model, publish, runs


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_unknown_prompt_suggests_close_names(openai_env):
    publish("support-reply", chat(("user", "hi")))
    with pytest.raises(errors.PromptNotFoundError) as info:
        pl_magic.run("suport-reply")
    assert "support-reply" in _one_line(info.value)


def test_unknown_version_lists_existing(openai_env):
    publish("p", chat(("user", "a")))
    publish("p", chat(("user", "b")))
    with pytest.raises(errors.VersionNotFoundError) as info:
        pl_magic.run("p", prompt_version=7)
    assert "1, 2" in _one_line(info.value)


def test_unknown_label_lists_existing(openai_env):
    publish("p", chat(("user", "a")), release_labels=["prod", "staging"])
    with pytest.raises(errors.LabelNotFoundError) as info:
        pl_magic.run("p", prompt_release_label="dev")
    assert "prod, staging" in _one_line(info.value)


def test_missing_variables_are_all_named(openai_env, fake_provider):
    publish("p", chat(("system", "Be {tone}"), ("user", "Hi {name}, {question}")))
    with pytest.raises(errors.MissingVariablesError) as info:
        pl_magic.run("p", input_variables={"tone": "kind"})
    text = _one_line(info.value)
    assert "name, question" in text and "'p'" in text
    assert fake_provider.requests == []
    assert runs() == []


def test_fstring_syntax_error_is_refused_at_publish(openai_env):
    with pytest.raises(errors.TemplateSyntaxError) as info:
        publish("p", chat(("user", "Hi {name")))
    assert "{{" in _one_line(info.value)
    assert pl_magic.prompts() == []


def test_jinja_syntax_error_in_an_imported_template_is_raised_at_run(openai_env, fake_provider):
    # imports keep PromptLayer's text as is; the error comes when the prompt runs
    LocalRegistry().import_templates(
        [
            {
                "prompt_name": "p",
                "prompt_template": chat(("user", "Hi {% if %}"), fmt="jinja2"),
                "metadata": model(),
            }
        ]
    )
    with pytest.raises(errors.TemplateSyntaxError) as info:
        pl_magic.run("p")
    assert "jinja2" in _one_line(info.value)
    assert fake_provider.requests == []


def test_jinja_sandbox_violation(openai_env, fake_provider):
    publish("p", chat(("user", "{{ x.__class__.__mro__[1].__subclasses__() }}"), fmt="jinja2"))
    with pytest.raises(errors.SandboxViolationError) as info:
        pl_magic.run("p", input_variables={"x": "s"})
    assert "sandbox" in _one_line(info.value)
    assert fake_provider.requests == []


def test_unknown_provider_lists_supported(openai_env):
    publish("p", chat(("user", "hi")), model("m", provider="cohere"))
    with pytest.raises(errors.UnknownProviderError) as info:
        pl_magic.run("p")
    assert "openai" in _one_line(info.value)
    with pytest.raises(errors.UnknownProviderError):
        pl_magic.run("p", provider="nope")


def test_missing_api_key_names_the_variable_before_any_network_call(fake_provider, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.example/v1")
    publish("p", chat(("user", "hi")))
    with pytest.raises(errors.MissingApiKeyError) as info:
        pl_magic.run("p")
    assert "OPENAI_API_KEY" in _one_line(info.value)
    assert fake_provider.requests == []


def test_provider_failure_keeps_the_sdk_exception_as_cause(openai_env):
    publish("p", chat(("user", "hi")), model("gpt-err-403"))
    with pytest.raises(errors.ProviderError) as info:
        pl_magic.run("p")
    assert info.value.category == "auth"
    assert type(info.value.__cause__).__module__.startswith("openai")
    _one_line(info.value)


def test_bad_argument_types_are_one_line_input_errors(openai_env):
    publish("p", chat(("user", "hi")))
    for kwargs in (
        {"input_variables": ["x"]},
        {"tags": "single"},
        {"prompt_version": "latest"},
        {"group_id": "g"},
        {"metadata": 3},
    ):
        with pytest.raises(errors.InvalidInputError) as info:
            pl_magic.run("p", **kwargs)
        _one_line(info.value)
    with pytest.raises(errors.InvalidInputError):
        pl_magic.run("")


def test_template_without_model_says_how_to_fix(openai_env):
    pl_magic.publish({"prompt_name": "bare", "prompt_template": chat(("user", "hi"))})
    with pytest.raises(errors.ConfigurationError) as info:
        pl_magic.run("bare")
    assert "metadata" in _one_line(info.value)
    # ... and provider=/model= make it runnable
    result = pl_magic.run("bare", provider="openai", model="gpt-4o-mini")
    assert result["prompt_blueprint"]["metadata"]["model"]["name"] == "gpt-4o-mini"


def test_redact_hides_secret_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    err = errors.ProviderError("openai", "auth", "Incorrect API key provided: sk-very-secret-value")
    assert "sk-very-secret-value" not in str(err) and "***" in str(err)


#: The variables redacted before secrets were recognised by name; each must still be.
_LISTED_BEFORE = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "PROMPTLAYER_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "MISTRAL_API_KEY",
    "OPENROUTER_API_KEY",
)


@pytest.mark.parametrize("name", [*_LISTED_BEFORE, "DEEPSEEK_API_KEY", "HF_ACCESS_TOKEN"])
def test_a_secret_is_known_by_its_name_with_no_list_of_providers(monkeypatch, name):
    assert errors.is_secret_name(name)
    monkeypatch.setenv(name, "k-" + "x7" * 12)
    assert errors.redact(f"key={'k-' + 'x7' * 12}.") == "key=***."


@pytest.mark.parametrize("name", ["FOO_KEY", "PL_MAGIC_TOKEN", "OPENAI_BASE_URL", "KEYS"])
def test_settings_that_are_not_secrets_are_left_alone(monkeypatch, name):
    assert not errors.is_secret_name(name)
    monkeypatch.setenv(name, "true")
    assert errors.redact("it is true") == "it is true"


def test_a_short_key_is_not_redacted_and_a_longer_one_wins(monkeypatch):
    import pl_magic.providers  # noqa: F401  (registers the providers' key names)

    monkeypatch.setenv("GEMINI_API_KEY", "abc")  # shorter than a word worth hiding
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcd")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-abcd-and-more")
    assert errors.redact("abc sk-abcd-and-more") == "abc ***"
    assert errors.redact("abc sk-abcd.") == "abc ***."


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("MINIO_SECRET_KEY", "minioadmin"),
        ("OLLAMA_API_KEY", "ollama"),
    ],
)
def test_development_defaults_of_other_secret_names_do_not_blank_words(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    message = f"Unknown prompt '{value}-summary'"
    assert errors.redact(message) == message
    monkeypatch.setenv(name, value + "-a-real-key-0123456789")
    assert errors.redact(f"k={value}-a-real-key-0123456789") == "k=***"


@pytest.mark.parametrize("key", ["null", "true", "1234", 'ab"cd'])
def test_redacted_json_is_still_json(monkeypatch, key):
    import pl_magic.providers  # noqa: F401

    monkeypatch.setenv("OPENAI_API_KEY", key)
    text = json.dumps({"a": None, "b": True, "n": 1234, "text": f"x {key} y", key: [key]})
    value = json.loads(errors.redact_json(text))
    assert value["text"] == "x *** y" and value["***"] == ["***"]
    assert value["a"] is None and value["b"] is True and value["n"] == 1234  # JSON's own words


def test_the_local_server_gets_no_secret(monkeypatch):
    from pl_magic.providers import local

    monkeypatch.setenv("SOME_NEW_API_KEY", "secret-value-1")
    monkeypatch.setenv("PL_MAGIC_SOMETHING", "kept")
    env = local._server_env()
    assert "SOME_NEW_API_KEY" not in env and env["PL_MAGIC_SOMETHING"] == "kept"
