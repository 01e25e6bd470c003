"""Bad-input rows for provider keys: a key with a newline, whitespace or a control character in
the environment, and a template whose ``provider_base_url`` points at a server the user has
not trusted with the key. Each is refused before any call, with a one-line error that never
shows the key (tests/reliability/test_keys.py covers every provider and spelling)."""

from __future__ import annotations

from tests import conftest
from tests.reliability.case import Case
from tests.reliability.case import chat_template as _chat
from tests.reliability.case import model_metadata as _model

KINDS = ("malformed key", "untrusted base URL")

#: ``collect`` sends its requests to a server nobody trusted with a key.
PROMPTS = [
    (
        "collect",
        _chat(("user", "hi {name}")),
        _model("openai", "gpt-4o-mini"),
        [],
        {"provider_base_url": "https://collector.example/v1"},
    ),
]

_NEWLINE = (("OPENAI_API_KEY", "sk-catalogue-key\n"),)
# (the audit after the suite proves no spelling of these keys reached a file or an output)
conftest.SECRETS_SET += ["sk-catalogue-key", "sk-catalogue key", "AIza\x07-catalogue"]
_UNTRUSTED = "trust it with PL_MAGIC_TRUSTED_BASE_URLS=https://collector.example"

CASES: list[Case] = [
    Case(
        "run-key-ends-with-newline",
        "run()",
        "malformed key",
        'pl_magic.run("greet", input_variables={"name": "Ada"})',
        "MalformedKeyError",
        "OPENAI_API_KEY ends with a newline: strip it",
        env=_NEWLINE,
    ),
    Case(
        "plrun-key-ends-with-newline",
        "%%plrun",
        "malformed key",
        "%%plrun greet\nname: Ada",
        "MalformedKeyError",
        "OPENAI_API_KEY ends with a newline: strip it",
        env=(("OPENAI_API_KEY", "sk-catalogue-key\r\n"),),
    ),
    Case(
        "cli-key-ends-with-newline",
        "cli",
        "malformed key",
        "pl-magic run greet --var name=Ada",
        "MalformedKeyError",
        "OPENAI_API_KEY ends with a newline: strip it",
        env=_NEWLINE,
    ),
    Case(
        "widget-key-with-a-space",
        "widget",
        "malformed key",
        'form = pl_magic.form("greet"); form.variables.children[0].value = "Ada"; form.run()',
        "MalformedKeyError",
        "OPENAI_API_KEY contains whitespace (U+0020 at position 13): set it to the key alone",
        env=(("OPENAI_API_KEY", "sk-catalogue key"),),
    ),
    Case(
        "run-gemini-key-control-character",
        "run()",
        "malformed key",
        'pl_magic.run("gemini", input_variables={"name": "Ada"})',
        "MalformedKeyError",
        "GOOGLE_API_KEY contains a control character (U+0007 at position 5)",
        env=(("GOOGLE_API_KEY", "AIza\x07-catalogue"),),
    ),
    Case(
        "run-untrusted-base-url",
        "run()",
        "untrusted base URL",
        'pl_magic.run("collect", input_variables={"name": "Ada"})',
        "UntrustedBaseUrlError",
        _UNTRUSTED,
    ),
    Case(
        "plrun-untrusted-base-url",
        "%%plrun",
        "untrusted base URL",
        "%%plrun collect\nname: Ada",
        "UntrustedBaseUrlError",
        _UNTRUSTED,
        kernel=True,
    ),
    Case(
        "cli-untrusted-base-url",
        "cli",
        "untrusted base URL",
        "pl-magic run collect --var name=Ada",
        "UntrustedBaseUrlError",
        _UNTRUSTED,
    ),
    Case(
        "cli-trusted-base-urls-not-an-origin",
        "cli",
        "untrusted base URL",
        "pl-magic run collect --var name=Ada",
        "ConfigurationError",
        "PL_MAGIC_TRUSTED_BASE_URLS has 'collector.example', which is not an http(s) origin",
        env=(("PL_MAGIC_TRUSTED_BASE_URLS", "collector.example"),),
    ),
]
