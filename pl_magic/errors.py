"""Typed errors. Every message is one line that names the problem and the fix.

Surfaces (the magic, the widget, the CLI) show ``str(error)`` as is, so a message
must make sense on its own, without the traceback. Messages never contain secrets:
:func:`redact` is applied to every message built from outside text (SDK errors,
server bodies).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence

# Environment variables whose values must never be shown anywhere.
SECRET_ENV_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "PROMPTLAYER_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "MISTRAL_API_KEY",
    "OPENROUTER_API_KEY",
)


def redact(text: str) -> str:
    """Replace every secret environment value found in ``text`` with ``***``."""
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4 and value in text:
            text = text.replace(value, "***")
    return text


#: Longest message kept whole; longer ones keep their start and their end (where the fix is).
MAX_MESSAGE = 1000


def _one_line(text: str) -> str:
    line = " ".join(redact(text).split())
    if len(line) > MAX_MESSAGE:
        line = line[: MAX_MESSAGE // 2] + " … " + line[-(MAX_MESSAGE // 2) :]
    return line


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters (a 100 kB name
    given by mistake must not make a 100 kB message)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(str(value))} characters)"


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
    """The provider call failed. The SDK's exception is kept as ``__cause__``."""

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
