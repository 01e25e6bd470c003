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

import re
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import SandboxViolationError, TemplateError, TemplateSyntaxError

if TYPE_CHECKING:
    import jinja2.sandbox

FORMATS = ("f-string", "jinja2")
_formatter = string.Formatter()
#: The most characters one format spec or one jinja2 operator may produce: "{x:>999999999}"
#: or "{{ 'a' * 10**9 }}" would otherwise take the kernel's memory.
MAX_CHARS = 1_000_000
_SPEC_NUMBER = re.compile(r"\d+")


def _check_format(template_format: str) -> str:
    fmt = template_format or "f-string"
    if fmt not in FORMATS:
        raise TemplateSyntaxError(
            f"Unknown template_format {template_format!r}: use 'f-string' or 'jinja2'"
        )
    return fmt


@lru_cache(maxsize=1024)  # every run parses its template's texts twice (variables, render)
def _fstring_parts(text: str) -> tuple[tuple[str, str | None, str | None, str | None], ...]:
    try:
        return tuple(_formatter.parse(text))
    except ValueError as exc:
        raise TemplateSyntaxError(
            f"Invalid f-string template ({exc}): write literal braces as {{{{ and }}}}"
        ) from None


@lru_cache(maxsize=1)
def _jinja_env() -> jinja2.sandbox.SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment, SecurityError

    class Sandbox(SandboxedEnvironment):
        """The sandbox guards attributes, not sizes: ``*`` and ``**`` are bounded too."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            ints = isinstance(left, int) and isinstance(right, int)
            if operator == "**" and ints and abs(left) > 1 and right > 64 * 1024:
                raise SecurityError(f"{left} ** {right} is too large a number")
            for seq, n in ((left, right), (right, left)) if operator == "*" else ():
                sequence = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sequence and len(seq) * n > MAX_CHARS:
                    raise SecurityError(
                        f"repeating a sequence {n} times is more than {MAX_CHARS} items"
                    )
            return super().call_binop(context, operator, left, right)

    return Sandbox(undefined=StrictUndefined, autoescape=False)


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
        if spec and any(int(n) > MAX_CHARS for n in _SPEC_NUMBER.findall(spec)):
            raise TemplateSyntaxError(
                f"The format spec ':{spec[:40]}' of variable {field!r} asks for more than "
                f"{MAX_CHARS} characters: use a smaller width or precision"
            )
        try:
            if conversion == "r":
                value = repr(value)
            elif conversion == "a":
                value = ascii(value)
            elif conversion == "s":
                value = str(value)
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
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # what the template's own expressions raise: 1/0, 'a' + 1, range(10**9), x[99]...
        raise TemplateError(
            f"The jinja2 template failed ({type(exc).__name__}: {exc}): fix the template"
        ) from None
