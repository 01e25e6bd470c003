"""Typed errors. Every message is one line that names the problem and the fix.

Surfaces (the magic, the widget, the CLI) show ``str(error)`` as is, so a message
must make sense on its own, without the traceback. Messages never contain secrets:
:func:`redact` is applied to every message built from outside text (SDK errors,
server bodies).
"""

from __future__ import annotations

import base64
import difflib
import functools
import json
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

#: Where users import these classes from (``pl_magic.errors`` is this module).
PUBLIC_MODULE = "pl_magic.errors"

#: Endings of the names of environment variables whose values must never be shown anywhere.
#: A rule on the name rather than a list of providers: every provider's key (``OPENAI_API_KEY``,
#: ``ANTHROPIC_AUTH_TOKEN``, ``GEMINI_API_KEY``...) and PromptLayer's are secrets with no edit
#: here when a provider is added. Plain ``_KEY`` or ``_TOKEN`` are left out on purpose: they
#: also end names of settings whose short values (``1``, ``true``) would be blanked in every
#: message.
SECRET_NAME_SUFFIXES = (
    "_API_KEY",
    "_API_TOKEN",
    "_AUTH_TOKEN",
    "_ACCESS_TOKEN",
    "_ACCESS_KEY",
    "_SECRET_KEY",
    "_CLIENT_SECRET",
)


def is_secret_name(name: str) -> bool:
    """True when the environment variable ``name`` holds a secret (its value is redacted
    everywhere and kept from child processes): see :data:`SECRET_NAME_SUFFIXES`."""
    return name.upper().endswith(SECRET_NAME_SUFFIXES)


#: The keys pl_magic itself sends (PromptLayer's here; each provider's, registered by the
#: provider table): redacted from 4 characters on, so that even a short test key is hidden.
_SENT_KEY_NAMES = {"PROMPTLAYER_API_KEY"}
_sent_key_names_lock = threading.Lock()


def register_key_names(names: Iterable[str]) -> None:
    """Mark ``names`` as variables whose keys pl_magic sends (see :func:`secret_values`)."""
    with _sent_key_names_lock:
        _SENT_KEY_NAMES.update(name.upper() for name in names)


#: The shortest value redacted: shorter ones would blank ordinary words.
_MIN_SECRET = 4
#: The shortest value redacted of other variables that are secrets by name: real keys are
#: long, while development defaults (``AWS_SECRET_ACCESS_KEY=testing``, ``minioadmin``,
#: ``OLLAMA_API_KEY=ollama``) are words that would be blanked in every message.
_MIN_OTHER_SECRET = 16
#: The shortest derived spelling (a piece of a base64 encoding) redacted.
_MIN_DERIVED = 8


def _base64_pieces(value: str) -> set[str]:
    """Pieces of the base64 encoding of any text containing ``value`` (``user:key`` in a
    Basic ``Authorization`` header): the part that does not depend on what stands around it,
    for each of the three alignments a prefix can give."""
    raw = value.encode("utf-8", "surrogatepass")
    pieces = set()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        start = 4 if pad else 0  # the first group mixes prefix and key bytes
        whole = (pad + len(raw)) // 3 * 4  # groups made only of known bytes
        piece = encoded[start:whole]
        if len(piece) >= _MIN_DERIVED:
            pieces.add(piece)
    return pieces


@functools.lru_cache(maxsize=64)
def spellings(value: str) -> tuple[str, ...]:
    """Every way ``value`` can appear in text: as is, stripped, escaped as Python and JSON
    write it, URL-encoded, and in base64 (``user:key``). Longest first."""
    found = {value, value.strip()}
    for text in (value, value.strip()):
        found.add(repr(text)[1:-1])
        found.add(json.dumps(text)[1:-1])
        found.add(json.dumps(text, ensure_ascii=False)[1:-1])
        found.add(quote(text, safe=""))
        found.add(quote_plus(text, safe=""))
        found |= _base64_pieces(text)
    return tuple(sorted((s for s in found if len(s) >= _MIN_SECRET), key=len, reverse=True))


def secret_values() -> list[str]:
    """The secret values set in the environment now (:func:`is_secret_name`), longest first
    (a key that contains another is replaced whole): from 4 characters for the keys pl_magic
    sends (:func:`register_key_names`), from 16 for other variables named as secrets."""
    found = set()
    for name in os.environ:  # (names first: decoding every value would cost more)
        if is_secret_name(name):
            value = os.environ.get(name) or ""
            shortest = _MIN_SECRET if name.upper() in _SENT_KEY_NAMES else _MIN_OTHER_SECRET
            if len(value.strip()) >= shortest:
                found.add(value)
    return sorted(found, key=len, reverse=True)


def redact_json(text: str) -> str:
    """JSON text with every secret replaced (:func:`redact`), still valid JSON: a secret
    that is also a JSON word or number (``null``, ``1234``) is redacted in the strings of
    the decoded value instead of in the text."""
    redacted = redact(text)
    if redacted == text:
        return text
    try:
        json.loads(redacted)
    except ValueError:
        return json.dumps(redact_data(json.loads(text)), ensure_ascii=False)
    return redacted


def redact(text: str) -> str:
    """Replace every spelling of every secret environment value in ``text`` with ``***``
    (see :func:`spellings`)."""
    for value in secret_values():
        for spelling in spellings(value):
            if spelling in text:
                text = text.replace(spelling, "***")
    return text


def redact_data(value: Any, depth: int = 0) -> Any:
    """``value`` with :func:`redact` applied to every string in it (dicts, lists, bytes)."""
    if depth > 50:
        return None
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("utf-8", "replace")).encode()
    if isinstance(value, dict):
        return {redact_data(k, depth + 1): redact_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v, depth + 1) for v in value)
    return value


#: Longest message kept whole; longer ones keep their start and their end (where the fix is).
MAX_MESSAGE = 1000


def _one_line(text: str) -> str:
    line = " ".join(redact(text).split())
    if len(line) > MAX_MESSAGE:
        line = line[: MAX_MESSAGE // 2] + " … " + line[-(MAX_MESSAGE // 2) :]
    return line


#: The fixes that messages name in Python's words, as a terminal (``cli``) and a notebook
#: cell's magics (``magic``) say them: an error names the fix in the words of the surface
#: where it appears.
SURFACE_WORDS: dict[str, dict[str, str]] = {
    "pl_magic.prompts()": {"cli": "`pl-magic prompts list`", "magic": "%plprompts"},
    "pl_magic.runs()": {"cli": "`pl-magic runs`", "magic": "%plruns"},
}


def in_words_of(message: str, surface: str) -> str:
    """``message`` with the fixes it names in Python's words said as ``surface`` says them
    (``cli`` or ``magic``; any other surface keeps Python's words)."""
    for python, said in SURFACE_WORDS.items():
        if surface in said:
            message = message.replace(python, said[surface])
    return message


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters (a 100 kB name
    given by mistake must not make a 100 kB message)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(str(value))} characters)"


def first_message(messages: Iterable[object], limit: int = 120) -> str | None:
    """The first non-empty message of ``messages`` on one line, cut to ``limit`` characters
    (None when there is none): a comparison's first error."""
    for message in messages:
        if isinstance(message, str) and message.strip():
            line = " ".join(message.split())
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return None


def _listing(items: Iterable[object], empty: str = "none") -> str:
    shown = [str(i) for i in items]
    return ", ".join(shown) if shown else empty


class PlMagicError(Exception):
    """Base class of every error pl_magic raises on purpose."""

    #: The run's request id when the failure was logged as a run (provider failures).
    request_id: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))

    @property
    def message(self) -> str:
        """The one-line message."""
        return str(self)


class ConfigurationError(PlMagicError):
    """A setting or environment variable is missing or wrong."""


class InvalidInputError(PlMagicError, ValueError):
    """An argument, option or cell body could not be understood."""


class ReplayMissError(ConfigurationError, LookupError):
    """``replay-only``: the log holds no recorded run for this request (no model is called)."""


# -- registry ----------------------------------------------------------------------------


class RegistryError(PlMagicError):
    """The prompt registry could not answer."""


class PromptNotFoundError(RegistryError, LookupError):
    """No prompt with that name."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        self.name = name
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = (
            f"did you mean {_listing(close)}?" if close else "list prompts with pl_magic.prompts()"
        )
        super().__init__(f"Unknown prompt {shown(name)}: {hint}")


class VersionNotFoundError(RegistryError, LookupError):
    """The prompt exists but not that version."""

    def __init__(self, name: str, version: int, existing: Sequence[int]) -> None:
        self.name, self.version = name, version
        super().__init__(
            f"Prompt {shown(name)} has no version {shown(version, 40)}: existing versions are "
            f"{_listing(existing)}"
        )


class LabelNotFoundError(RegistryError, LookupError):
    """The prompt exists but no release label of that name."""

    def __init__(self, name: str, label: str, existing: Sequence[str]) -> None:
        self.name, self.label = name, label
        super().__init__(
            f"Prompt {shown(name)} has no release label {shown(label)}: existing labels are "
            f"{_listing(existing)} (set one with pl_magic.set_label)"
        )


class InvalidTemplateError(RegistryError, ValueError):
    """A prompt template does not have PromptLayer's shape."""


# -- templates ---------------------------------------------------------------------------


class TemplateError(PlMagicError):
    """A template could not be rendered."""


class MissingVariablesError(TemplateError, KeyError):
    """Input variables the template needs were not given."""

    def __init__(self, prompt: str, missing: Iterable[str], given: Iterable[str] = ()) -> None:
        self.prompt = prompt
        self.missing = sorted(set(missing))
        names = ", ".join(self.missing)
        # a variable given under a slightly different name (a typo, an invisible character)
        unused = [g for g in given if g not in self.missing]
        guesses = []
        for name in self.missing:
            close = difflib.get_close_matches(name, unused, n=1, cutoff=0.6)
            if close:
                guesses.append(f"{name} instead of {shown(close[0], 40)}")
        hint = f"; did you mean {', '.join(guesses)}?" if guesses else ""
        super().__init__(
            f"Prompt {shown(prompt)} needs input variables that were not given: {names} "
            f"(give each one a value{hint})"
        )

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class TemplateSyntaxError(TemplateError):
    """The template text is not valid f-string or jinja2."""


class SandboxViolationError(TemplateError):
    """A jinja2 template tried something the sandbox forbids."""


class TemplateLimitError(TemplateError):
    """Rendering a template went past a limit (size, steps or time); the message names the
    setting that raises it."""


# -- providers ---------------------------------------------------------------------------


class UnknownProviderError(PlMagicError, ValueError):
    """The provider name is not one pl_magic serves."""

    def __init__(self, provider: str, supported: Sequence[str]) -> None:
        self.provider = provider
        super().__init__(f"Unknown provider {shown(provider)}: use one of {_listing(supported)}")


class MissingApiKeyError(ConfigurationError):
    """A provider's credentials are not in the environment. Raised before any network call."""

    def __init__(self, provider: str, variables: Sequence[str], why: str = "") -> None:
        self.provider = provider
        self.variables = list(variables)
        what = " or ".join(self.variables)
        extra = f" ({why})" if why else ""
        super().__init__(
            f"No credentials for {provider}{extra}: set the environment variable {what}"
        )


class MalformedKeyError(ConfigurationError):
    """A key in the environment holds whitespace or control characters (a pasted newline):
    refused before any call, as the SDKs would send it or fail echoing it."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        super().__init__(f"{variable} {problem}: {fix}")


class UntrustedBaseUrlError(ConfigurationError):
    """A template points a provider at a server the user has not trusted with the key."""

    def __init__(self, provider: str, origin: str, variable: str, setting: str) -> None:
        self.provider, self.origin = provider, origin
        super().__init__(
            f"The template sends {provider} requests to {origin}, which is not trusted with "
            f"{variable}: trust it with {setting}={origin} (or %config "
            f"PlMagic.trusted_base_urls = ['{origin}']), or remove the template's "
            "provider_base_url (provider_base_url_name on PromptLayer)"
        )


#: Error categories a provider failure can have (also stored in the run log).
ERROR_CATEGORIES = (
    "auth",
    "rate_limit",
    "timeout",
    "server",
    "bad_request",
    "not_found",
    "connection",
    "truncated",
    "cancelled",
    "invalid_output",
    "unknown",
)

_FIXES = {
    "auth": "check the API key in the environment",
    "rate_limit": "wait and retry, or lower the concurrency",
    "timeout": "retry, or raise the timeout",
    "server": "the provider failed; retry later",
    "bad_request": "check the model name and parameters",
    "not_found": "check the model name",
    "connection": "check the network and the provider's base URL",
    "truncated": "the stream ended before the reply was complete; retry",
    "unknown": "see the full traceback",
}


class ProviderError(PlMagicError):
    """The provider call failed.

    When the provider's SDK raised an exception, what pl_magic raises is also an instance of
    that exception's class (see :func:`provider_error_class`), so ``except
    openai.RateLimitError`` catches it as it would from the SDK; the SDK's exception, with its
    text redacted, is kept as ``__cause__``.
    """

    #: The category of failure (one of :data:`ERROR_CATEGORIES`).
    category: str = "unknown"
    #: The HTTP status the provider answered with, when it answered.
    status_code: int | None = None
    #: The text streamed before the failure.
    partial_text: str = ""
    #: The provider's own request id (an HTTP header of its answer), when it gave one.
    provider_request_id: str | None = None

    def __init__(
        self,
        provider: str,
        category: str,
        detail: str,
        status_code: int | None = None,
        partial_text: str = "",
    ) -> None:
        self.provider = provider
        self.category = category
        self.status_code = status_code
        self.partial_text = partial_text
        status = f" (HTTP {status_code})" if status_code else ""
        detail = _one_line(detail)
        if len(detail) > 300:
            detail = detail[:297] + "..."
        fix = _FIXES.get(category, _FIXES["unknown"])
        super().__init__(f"{provider} {category} error{status}: {detail} — {fix}")


_sdk_classes: dict[type[BaseException], type[ProviderError]] = {}
_sdk_classes_lock = threading.Lock()


def _plain_str(self: BaseException) -> str:
    return str(self.args[0]) if self.args else ""


def _plain_repr(self: BaseException) -> str:
    return f"{type(self).__name__}({_plain_str(self)!r})"


def provider_error_class(sdk_class: type[BaseException]) -> type[ProviderError] | None:
    """A subclass of both :class:`ProviderError` and ``sdk_class`` (made once per class), or
    None when the two cannot be combined. Its ``str`` is pl_magic's one-line message whatever
    the SDK's class defines."""
    if issubclass(sdk_class, ProviderError) or not issubclass(sdk_class, Exception):
        return None
    with _sdk_classes_lock:
        cls = _sdk_classes.get(sdk_class)
        if cls is None:
            try:
                cls = type(
                    sdk_class.__name__,
                    (ProviderError, sdk_class),
                    {
                        "__module__": PUBLIC_MODULE,
                        "__qualname__": f"ProviderError.{sdk_class.__name__}",
                        "__doc__": f"A ProviderError that is also {sdk_class.__module__}."
                        f"{sdk_class.__qualname__} (what the provider's SDK raised).",
                        "__str__": _plain_str,
                        "__repr__": _plain_repr,
                    },
                )
            except TypeError:  # incompatible layouts or metaclasses: ProviderError alone
                return None
            _sdk_classes[sdk_class] = cls
        return cls


def as_sdk_class(
    error: ProviderError, sdk_class: type[BaseException], attributes: dict[str, Any]
) -> ProviderError:
    """``error`` as an instance of :func:`provider_error_class` of ``sdk_class``, carrying the
    SDK exception's (already redacted) ``attributes`` and pl_magic's own; ``error`` itself
    when the classes cannot be combined."""
    cls = provider_error_class(sdk_class)
    if cls is None or type(error) is not ProviderError:
        return error
    combined = cls.__new__(cls)
    # (``message`` stays ProviderError's property, the one-line message)
    combined.__dict__.update(attributes)
    combined.__dict__.update(error.__dict__)
    combined.args = error.args
    return combined


class InvalidOutputError(PlMagicError):
    """The model answered, but not with what the run asked for: its ``response_format``
    asks for JSON and the reply does not parse.

    The run is logged with status ``error``, category ``invalid_output``, and its text,
    tokens and cost (the provider was paid). ``partial_text`` is the reply's text and
    ``result`` the run's result as ``run()`` would have returned it (``raw_response``,
    ``prompt_blueprint`` with the text as the reply).
    """

    category = "invalid_output"
    #: The reply's text.
    partial_text: str = ""
    #: The run's result (``request_id``, ``raw_response``, ``prompt_blueprint``).
    result: Any = None


class StreamTruncatedError(ProviderError):
    """The stream ended cleanly but without the provider's final marker."""

    def __init__(self, provider: str, partial_text: str = "") -> None:
        super().__init__(
            provider,
            "truncated",
            "the stream ended without its final event",
            partial_text=partial_text,
        )


class PromptLayerError(RegistryError):
    """PromptLayer's API answered with an error or could not be reached."""

    #: The HTTP status PromptLayer answered with (None when it could not be reached).
    status_code: int | None = None

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class PromptLayerAuthError(PromptLayerError):
    """PromptLayer refused the API key (HTTP 401 or 403)."""


class PromptLayerUnavailableError(PromptLayerError):
    """PromptLayer could not be reached, timed out, or answered 429/5xx after every retry."""


# Tracebacks, reprs and pickles name the classes where users import them from.
for _class in list(globals().values()):
    if isinstance(_class, type) and issubclass(_class, Exception) and _class.__module__ == __name__:
        _class.__module__ = PUBLIC_MODULE
del _class
