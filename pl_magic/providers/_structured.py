"""Structured output: PromptLayer's (OpenAI's) ``response_format`` read once for every provider.

A run asks for a JSON reply with the ``response_format`` model parameter, in OpenAI's shape::

    {"type": "json_schema", "json_schema": {"name": "judgement", "schema": {...}, "strict": True}}
    {"type": "json_object"}                      # any JSON object
    {"type": "text"}                             # plain text (the default)

Each provider turns the :class:`StructuredOutput` read here into its own request fields
(OpenAI chat: as is; the Responses API: ``text.format``; llama.cpp's server:
``{"type": "json_object", "schema": ...}``; Anthropic: a forced tool whose input is the reply;
Gemini: ``response_mime_type`` plus ``response_json_schema``), and the reply text is the JSON.
llama.cpp's own form (``{"type": "json_object", "schema": {...}}``) is accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidInputError

#: The model parameter that asks for structured output.
PARAMETER = "response_format"
#: The tool (Anthropic) name when the format names none.
DEFAULT_NAME = "json_output"
#: The schema of ``{"type": "json_object"}``: any JSON object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}

_EXAMPLE = (
    '{"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", '
    '"properties": {...}}}}'
)


@dataclass(frozen=True)
class StructuredOutput:
    """What a ``response_format`` asks for: a JSON object, matching ``schema`` when one is given."""

    name: str
    schema: dict[str, Any] | None  # None: any JSON object (``json_object``)
    strict: bool | None = None
    description: str | None = None

    @property
    def schema_or_any(self) -> dict[str, Any]:
        """The schema, or one that any JSON object matches."""
        return self.schema if self.schema is not None else dict(ANY_OBJECT)


def _bad(problem: str) -> InvalidInputError:
    return InvalidInputError(
        f"response_format {problem}: pass {_EXAMPLE} or {{'type': 'json_object'}}"
    )


def read(value: Any) -> StructuredOutput | None:
    """The structured output ``value`` (a ``response_format``) asks for; None for plain text.

    Raises :class:`InvalidInputError` (one line: the problem and the fix) for a value that is
    not a dict, has an unknown ``type``, or is ``json_schema`` without a ``schema`` dict.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(f"must be a dict, not {type(value).__name__}")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema = value.get("schema")  # llama.cpp's form
        if schema is not None and not isinstance(schema, Mapping):
            raise _bad(f"has a 'schema' that is a {type(schema).__name__}, not a dict")
        return StructuredOutput(DEFAULT_NAME, dict(schema) if schema is not None else None)
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, Mapping):
            raise _bad("of type 'json_schema' needs a 'json_schema' dict")
        schema = spec.get("schema")
        if not isinstance(schema, Mapping):
            raise _bad("of type 'json_schema' needs a 'schema' dict in its 'json_schema'")
        name = spec.get("name") or DEFAULT_NAME
        if not isinstance(name, str):
            raise _bad(f"has a name that is a {type(name).__name__}, not a str")
        strict = spec.get("strict")
        description = spec.get("description")
        return StructuredOutput(
            name,
            dict(schema),
            strict if isinstance(strict, bool) else None,
            description if isinstance(description, str) else None,
        )
    raise _bad(f"has an unknown type {kind!r} (use 'json_schema', 'json_object' or 'text')")


def take(parameters: dict[str, Any]) -> StructuredOutput | None:
    """Remove ``response_format`` from ``parameters`` and read it (see :func:`read`)."""
    return read(parameters.pop(PARAMETER, None))


def of(parameters: Mapping[str, Any]) -> StructuredOutput | None:
    """The structured output ``parameters`` ask for, or None (a malformed one is None here:
    requests are built, and malformed values refused, before any reply is parsed)."""
    try:
        return read(parameters.get(PARAMETER))
    except InvalidInputError:
        return None
