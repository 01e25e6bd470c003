"""Keys go only where the user sent them, and never into any text.

Every test drives the official SDKs over HTTP against the fake provider server on 127.0.0.1
and reads what reached it: the credential headers of each request, the error pl_magic
raised, its traceback as IPython shows it (``%xmode Verbose`` included) and, in a real
kernel, the cell's output.
"""

from __future__ import annotations

import asyncio
import base64
import json
import traceback
from typing import Any
from urllib.parse import quote

import pytest

import pl_magic
from pl_magic.core import errors
from tests import conftest
from tests.fakes.provider_server import PROVIDER_KINDS
from tests.helpers import chat, model, publish, runs

#: Every spelling of this machine's loopback (and unspecified) address the C library and
#: httpx accept, each reaching a listener on 127.0.0.1.
LOOPBACK_SPELLINGS = (
    "127.1",
    "2130706433",
    "0x7f.1",
    "0x7f000001",
    "017700000001",
    "0.0.0.0",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "localhost.",
    "LOCALHOST",
)
#: Those a connection reaches on this machine (``localhost.`` resolves only where the resolver
#: strips the root dot).
REACHABLE = tuple(s for s in LOOPBACK_SPELLINGS if s != "localhost.")

#: provider -> (env fixture, the SDK's own base-URL variable, the path the SDK expects)
PROVIDERS = {
    "openai": ("openai_env", "OPENAI_BASE_URL", "/v1", model("gpt-4o-mini")),
    "anthropic": (
        "anthropic_env",
        "ANTHROPIC_BASE_URL",
        "",
        model("claude-sonnet-4-5", provider="anthropic"),
    ),
    "google": ("gemini_env", "GOOGLE_GEMINI_BASE_URL", "", model("gemini-2.5-flash", "google")),
}

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


def _provider_requests(fake_provider: Any) -> list[Any]:
    return [r for r in fake_provider.requests if r.kind in PROVIDER_KINDS]


def _direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connect straight to the (loopback) URLs under test: the offline net's proxy would
    otherwise take every host it does not list."""
    for name in (*_PROXY_VARIABLES, "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _key_env(request: pytest.FixtureRequest, provider: str) -> str:
    return str(request.getfixturevalue(PROVIDERS[provider][0]))


# -- the loopback rule -----------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_loopback_spelling_is_loopback(host: str) -> None:
    from pl_magic.core.keys import is_loopback_url

    assert is_loopback_url(f"http://{host}:8080/v1")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost.evil.example/v1",
        "http://127.0.0.1.nip.io/v1",
        "http://10.0.0.1/v1",
        "http://[fe80::1]/v1",
        "https://api.openai.com/v1",
        "http://127.0.0.1\\@evil.example/",  # the client connects to evil.example
        "http://0177.0.0.1/",  # refused by httpx: no request could go there
        "not a url",
        "file:///etc/passwd",
    ],
)
def test_anything_else_counts_as_remote(url: str) -> None:
    from pl_magic.core.keys import is_loopback_url

    assert not is_loopback_url(url)


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("host", REACHABLE)
def test_a_template_url_on_loopback_gets_no_key_and_works(
    provider: str,
    host: str,
    request: pytest.FixtureRequest,
    fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = _key_env(request, provider)
    _, env_var, path, meta = PROVIDERS[provider]
    monkeypatch.delenv(env_var)  # the template's URL is the only one
    _direct(monkeypatch)
    port = fake_provider.url.rsplit(":", 1)[1]
    publish("local", chat(("user", "hi")), meta, provider_base_url=f"http://{host}:{port}{path}")
    result = pl_magic.run("local")
    assert result["prompt_blueprint"]["prompt_template"]["messages"][-1]["role"] == "assistant"
    (sent,) = _provider_requests(fake_provider)
    headers = json.dumps(sent.headers)
    assert key not in headers, f"{provider} sent the real key to {host}"
    assert "no-key-needed" in headers


@pytest.mark.parametrize("provider", [*PROVIDERS, "vertexai-gemini", "vertexai-claude"])
def test_a_template_url_elsewhere_is_refused_before_the_call(
    provider: str, request: pytest.FixtureRequest, fake_provider: Any
) -> None:
    if provider == "vertexai-gemini":
        request.getfixturevalue("vertex_env")
        meta, variable = model("gemini-2.5-flash", "vertexai"), "Google credentials"
    elif provider == "vertexai-claude":
        request.getfixturevalue("anthropic_vertex_env")
        meta, variable = model("claude-sonnet-4-5@20250929", "vertexai"), "Google credentials"
    else:
        _key_env(request, provider)
        meta = PROVIDERS[provider][3]
        variable = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}.get(
            provider, "GOOGLE_API_KEY"
        )
    publish("shared", chat(("user", "hi")), meta, provider_base_url="https://Collector.example/v1")
    with pytest.raises(errors.UntrustedBaseUrlError) as info:
        pl_magic.run("shared")
    message = str(info.value)
    conftest.audit_text(message)
    assert "\n" not in message
    assert "https://collector.example" in message and variable in message
    assert "PL_MAGIC_TRUSTED_BASE_URLS=https://collector.example" in message
    assert "PlMagic.trusted_base_urls" in message
    assert _provider_requests(fake_provider) == []
    assert [r for r in runs() if r["status"] == "ok"] == []


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_trusted_origin_gets_the_key(
    provider: str,
    request: pytest.FixtureRequest,
    fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = _key_env(request, provider)
    _, env_var, path, meta = PROVIDERS[provider]
    monkeypatch.delenv(env_var)
    publish("gateway", chat(("user", "hi")), meta, provider_base_url=fake_provider.url + path)
    monkeypatch.setenv("PL_MAGIC_TRUSTED_BASE_URLS", f"https://gw.example, {fake_provider.url}/")
    pl_magic.run("gateway")
    (sent,) = _provider_requests(fake_provider)
    assert key in json.dumps(sent.headers)


def test_trusted_base_urls_can_be_set_with_config_in_the_notebook(
    shell: Any, openai_env: str, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    publish("gateway", chat(("user", "hi")), model(), provider_base_url=fake_provider.url + "/v1")
    shell.run_line_magic("load_ext", "pl_magic")
    try:
        shell.run_line_magic("config", f"PlMagic.trusted_base_urls = [{fake_provider.url!r}]")
        pl_magic.run("gateway")
        (sent,) = _provider_requests(fake_provider)
        assert openai_env in json.dumps(sent.headers)
    finally:
        shell.run_line_magic("config", "PlMagic.trusted_base_urls = []")
        shell.run_line_magic("unload_ext", "pl_magic")
    pl_magic.run("gateway")  # no longer trusted: a loopback URL, so no key
    assert openai_env not in json.dumps(_provider_requests(fake_provider)[-1].headers)


def test_the_environments_base_url_gets_the_key_from_a_template_too(
    openai_env: str, fake_provider: Any
) -> None:
    publish("same", chat(("user", "hi")), model(), provider_base_url=fake_provider.openai_base_url)
    pl_magic.run("same")
    (sent,) = _provider_requests(fake_provider)
    assert openai_env in sent.headers["authorization"]


def test_a_malformed_trusted_origin_is_a_one_line_error(
    openai_env: str, fake_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish("shared", chat(("user", "hi")), model(), provider_base_url="https://gw.example/v1")
    monkeypatch.setenv("PL_MAGIC_TRUSTED_BASE_URLS", "gw.example")
    with pytest.raises(errors.ConfigurationError) as info:
        pl_magic.run("shared")
    assert "PL_MAGIC_TRUSTED_BASE_URLS has 'gw.example'" in str(info.value)
    assert _provider_requests(fake_provider) == []


# -- malformed keys --------------------------------------------------------------------------

KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}

MALFORMED = [
    ("{}\n", "ends with a newline: strip it"),
    ("{}\r\n", "ends with a newline: strip it"),
    ("{}\r", "ends with a newline: strip it"),
    (" {}", "starts with whitespace: strip it"),
    ("{}\t", "ends with whitespace: strip it"),
    ("{0}\n{0}", "contains whitespace (U+000A"),
    ("{}\x07x", "contains a control character (U+0007"),
    ("{}\u200bx", "contains a control character (U+200B"),
]


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize(("spelling", "says"), MALFORMED)
def test_a_key_with_whitespace_or_control_characters_is_refused_before_any_call(
    provider: str,
    spelling: str,
    says: str,
    request: pytest.FixtureRequest,
    fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = _key_env(request, provider)
    variable = KEY_VARIABLES[provider]
    bad = spelling.format(key)
    monkeypatch.setenv(variable, bad)
    publish("p", chat(("user", "hi")), PROVIDERS[provider][3])
    with pytest.raises(errors.MalformedKeyError) as info:
        pl_magic.run("p")
    message = str(info.value)
    conftest.audit_text(message)
    assert message.startswith(f"{variable} ") and says in message
    assert "\n" not in message and key not in message
    assert _provider_requests(fake_provider) == []
    assert [r for r in runs() if r["status"] == "ok"] == []


def test_redact_covers_every_spelling_of_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = conftest.new_secret("sk-test-") + "/+="
    monkeypatch.setenv("OPENAI_API_KEY", key + "\n")
    texts = [
        key,
        repr(key + "\n"),
        json.dumps(key + "\n"),
        quote(key, safe=""),
        f"https://gw.example/v1?key={quote(key, safe='')}",
    ]
    for user in ("u", "us", "usr", "apikey"):  # every base64 alignment of user:key
        texts.append("Basic " + base64.b64encode(f"{user}:{key}".encode()).decode())
    for text in texts:
        shown = errors.redact(f"before {text} after")
        assert key not in shown and "***" in shown, text
        assert all(piece not in shown for piece in errors.spellings(key)), text


# -- provider errors: catchable as the SDK's class, with nothing of the key ------------------


def _sdk_classes(provider: str) -> tuple[type[BaseException], ...]:
    if provider == "openai":
        import openai

        return (openai.AuthenticationError, openai.APIStatusError)
    if provider == "anthropic":
        import anthropic

        return (anthropic.AuthenticationError, anthropic.APIStatusError)
    from google.genai import errors as genai_errors

    return (genai_errors.ClientError, genai_errors.APIError)


def _verbose_traceback(exc: BaseException) -> str:
    """What ``%xmode Verbose`` prints for ``exc`` (locals of every frame included)."""
    from IPython.core.ultratb import VerboseTB

    return VerboseTB(theme_name="nocolor").text(type(exc), exc, exc.__traceback__)


def _all_text(exc: BaseException) -> str:
    """Every text reachable from the error a person may print."""
    parts = [str(exc), repr(exc), repr(exc.args)]
    parts += traceback.format_exception(exc)
    parts.append(_verbose_traceback(exc))
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        parts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        for name in ("body", "details", "message"):
            parts.append(repr(getattr(current, name, None)))
        response = getattr(current, "response", None)
        if response is not None:
            parts += [response.text, repr(dict(response.headers))]
            parts.append(repr(dict(response.request.headers)))
            parts.append(str(response.request.url))
        sent = getattr(current, "request", None)
        if sent is not None and hasattr(sent, "headers"):
            parts.append(repr(dict(sent.headers)))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _assert_no_key(text: str, key: str) -> None:
    conftest.audit_text(text)
    for spelling in getattr(errors, "spellings", lambda key: (key,))(key):
        assert spelling not in text, f"the key ({spelling[:6]}…) is in {text[:2000]}"


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_error_is_catchable_as_the_sdks_class_and_echoes_no_key(
    provider: str, stream: bool, request: pytest.FixtureRequest, fake_provider: Any
) -> None:
    key = _key_env(request, provider)
    meta = dict(PROVIDERS[provider][3])
    meta["model"] = {**meta["model"], "name": meta["model"]["name"] + "-err-401"}
    publish("leaky", chat(("user", "hi")), meta)
    fake_provider.echo_headers = True
    own_class, base_class = _sdk_classes(provider)
    with pytest.raises(own_class) as info:
        result = pl_magic.run("leaky", stream=stream)
        list(result)  # type: ignore[arg-type]
    error = info.value
    assert key in json.dumps(_provider_requests(fake_provider)[0].headers)  # it was sent...
    assert isinstance(error, errors.ProviderError) and isinstance(error, base_class)
    assert error.category == "auth" and error.status_code == 401
    assert error.request_id == runs()[-1]["request_id"]
    assert isinstance(error.__cause__, own_class) and not isinstance(
        error.__cause__, errors.ProviderError
    )
    assert error.response.status_code == 401 and "Request headers" in error.response.text
    _assert_no_key(_all_text(error), key)  # ... and is nowhere in what can be shown


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_async_path_raises_the_same(
    provider: str, request: pytest.FixtureRequest, fake_provider: Any
) -> None:
    key = _key_env(request, provider)
    meta = dict(PROVIDERS[provider][3])
    meta["model"] = {**meta["model"], "name": meta["model"]["name"] + "-err-429"}
    publish("busy", chat(("user", "hi")), meta)
    fake_provider.echo_headers = True

    async def go() -> None:
        await pl_magic.arun("busy")

    with pytest.raises(errors.ProviderError) as info:
        asyncio.run(go())
    error = info.value
    if provider == "openai":
        import openai

        assert isinstance(error, openai.RateLimitError)
    elif provider == "anthropic":
        import anthropic

        assert isinstance(error, anthropic.RateLimitError)
    else:
        from google.genai import errors as genai_errors

        assert isinstance(error, genai_errors.ClientError)
    assert error.category == "rate_limit" and error.status_code == 429
    _assert_no_key(_all_text(error), key)


# -- a real kernel ---------------------------------------------------------------------------


def test_no_key_reaches_the_notebook_with_verbose_tracebacks(
    openai_env: str, fake_provider: Any, tmp_path: Any
) -> None:
    from tests.test_notebook_kernel import Kernel

    publish("leaky", chat(("user", "hi")), model("gpt-4o-mini-err-401"))
    fake_provider.echo_headers = True
    kernel = Kernel(str(tmp_path))
    shown: list[str] = []
    try:
        cells = [
            "%xmode Verbose",
            "import pl_magic\npl_magic.run('leaky')",
            "%load_ext pl_magic\n%config PlMagic.short_errors = False",
            "%plrun leaky",
            "import openai\ntry:\n    pl_magic.run('leaky')\nexcept openai.AuthenticationError "
            "as e:\n    print('caught', type(e).__name__, e.status_code, e.category)\n    raise",
        ]
        for code in cells:
            _, messages = kernel.execute(code, timeout=90)
            for _stamp, message in messages:
                content = message["content"]
                shown.append(json.dumps(content))
                shown.extend(content.get("traceback", []))
        output = "\n".join(shown)
        (tmp_path / "kernel-output.txt").write_text(output)
        assert "AuthenticationError" in output and "caught AuthenticationError 401 auth" in output
        assert "Request headers" in output or "***" in output  # the body was shown, redacted
        assert "The above exception was the direct cause" in output  # the SDK's error is there
        _assert_no_key(output, openai_env)
    finally:
        kernel.stop()
    assert len(_provider_requests(fake_provider)) == 3


@pytest.mark.parametrize(
    ("fixture", "name", "path"),
    [
        ("vertex_env", "gemini-2.5-flash", ""),
        ("anthropic_vertex_env", "claude-sonnet-4-5@20250929", "/v1"),
    ],
)
def test_vertex_sends_no_google_token_to_a_template_url_on_loopback(
    fixture: str,
    name: str,
    path: str,
    request: pytest.FixtureRequest,
    fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = request.getfixturevalue(fixture)
    _direct(monkeypatch)
    port = fake_provider.url.rsplit(":", 1)[1]
    url = f"http://127.1:{port}{path}"
    publish("local", chat(("user", "hi")), model(name, "vertexai"), provider_base_url=url)
    pl_magic.run("local")
    sent = _provider_requests(fake_provider)
    assert sent and all(token not in json.dumps(r.headers) for r in sent)
    assert "Bearer no-key-needed" in json.dumps(sent[-1].headers)
    assert fake_provider.requests_for("token") == []  # the credentials were not even loaded


def test_a_promptlayer_workspace_cannot_collect_keys_with_a_named_base_url(
    promptlayer_env: str,
    openai_env: str,
    fake_promptlayer: Any,
    fake_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A template edited in a shared workspace to use a named base URL (PromptLayer's
    ``provider_base_url_name``) is refused; once the user trusts that origin it runs with the
    key, through ``pl_magic.PromptLayer(...).run`` as through ``pl_magic.run``."""
    fake_promptlayer.provider_base_urls = {"collector": "https://collector.example/v1"}
    fake_promptlayer.add_prompt(
        "greet", chat(("user", "hi {name}")), model(), provider_base_url_name="collector"
    )
    client = pl_magic.PromptLayer(api_key=promptlayer_env)
    for run in (pl_magic.run, client.run):
        with pytest.raises(errors.UntrustedBaseUrlError) as info:
            run("greet", input_variables={"name": "Ada"})
        conftest.audit_text(str(info.value))
        assert "https://collector.example" in str(info.value)
        assert "provider_base_url_name" in str(info.value)
    assert _provider_requests(fake_provider) == []
    fake_promptlayer.provider_base_urls = {"gateway": fake_provider.openai_base_url}
    fake_promptlayer.add_prompt(
        "gw", chat(("user", "hi {name}")), model(), provider_base_url_name="gateway"
    )
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("PL_MAGIC_TRUSTED_BASE_URLS", fake_provider.url)
    client.run("gw", input_variables={"name": "Ada"})
    (sent,) = _provider_requests(fake_provider)
    assert openai_env in sent.headers["authorization"]
