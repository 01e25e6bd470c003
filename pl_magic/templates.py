"""Rendering template text: PromptLayer's ``f-string`` and ``jinja2`` formats.

Rendering is strict (a missing variable is an error naming every missing one), unlike
PromptLayer's server which renders missing variables as "". Variables a template does not
use are ignored, so one set of inputs can be shared across prompt versions.

f-string: ``{name}`` is replaced by the variable's value; ``{{`` and ``}}`` are literal
braces. Only whole names are looked up: ``{user.__class__}`` is treated as a variable
called ``user.__class__``, never as attribute access, so a template cannot reach into
Python objects. jinja2 always runs in its sandbox.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import SandboxViolationError, TemplateSyntaxError

if TYPE_CHECKING:
    import jinja2.sandbox

FORMATS = ("f-string", "jinja2")
_formatter = string.Formatter()


def _check_format(template_format: str) -> str:
    fmt = template_format or "f-string"
    if fmt not in FORMATS:
        raise TemplateSyntaxError(
            f"Unknown template_format {template_format!r}: use 'f-string' or 'jinja2'"
        )
    return fmt


def _fstring_parts(text: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(_formatter.parse(text))
    except ValueError as exc:
        raise TemplateSyntaxError(
            f"Invalid f-string template ({exc}): write literal braces as {{{{ and }}}}"
        ) from None


@lru_cache(maxsize=1)
def _jinja_env() -> jinja2.sandbox.SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=512)
def _jinja_variables(text: str) -> frozenset[str]:
    import jinja2
    from jinja2 import meta

    try:
        ast = _jinja_env().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            f"Invalid jinja2 template (line {exc.lineno}: {exc.message}): fix the template text"
        ) from None
    return frozenset(meta.find_undeclared_variables(ast))


def variables(text: str, template_format: str = "f-string") -> set[str]:
    """The input variables ``text`` uses, in the given format."""
    fmt = _check_format(template_format)
    if fmt == "jinja2":
        return set(_jinja_variables(text))
    return {field for _, field, _, _ in _fstring_parts(text) if field is not None and field}


def render(text: str, values: Mapping[str, Any], template_format: str = "f-string") -> str:
    """Render ``text`` with ``values``. Callers check for missing variables first."""
    fmt = _check_format(template_format)
    if fmt == "jinja2":
        return _render_jinja(text, values)
    out: list[str] = []
    for literal, field, spec, conversion in _fstring_parts(text):
        out.append(literal)
        if field is None:
            continue
        if not field:
            raise TemplateSyntaxError(
                "Empty {} in an f-string template: name the variable, or write {{}} for braces"
            )
        value = values[field]
        if conversion == "r":
            value = repr(value)
        elif conversion == "a":
            value = ascii(value)
        elif conversion == "s":
            value = str(value)
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError) as exc:
            raise TemplateSyntaxError(
                f"Cannot format variable {field!r} with ':{spec}' ({exc}): fix the format spec"
            ) from None
    return "".join(out)


def _render_jinja(text: str, values: Mapping[str, Any]) -> str:
    import jinja2
    from jinja2.sandbox import SecurityError

    try:
        return _jinja_env().from_string(text).render(**dict(values))
    except SecurityError as exc:
        raise SandboxViolationError(
            f"The jinja2 template did something the sandbox forbids ({exc}): "
            "use only variables, filters and loops"
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateSyntaxError(
            f"jinja2 template error ({exc.message}): give the variable or fix the template"
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateSyntaxError(f"jinja2 template error ({exc}): fix the template") from None
