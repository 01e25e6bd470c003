"""One row of the bad-input catalogue, and the helpers rows are written with.

Rows live in :mod:`tests.reliability.catalogue` and in the ``cases_*.py`` modules beside it
(one per area, so that areas grow without touching each other); the catalogue gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass

SURFACES = ("run()", "%%plrun", "%%plprompt", "widget", "cli")

#: The kinds of bad input the catalogue covers (the issue's list).
KINDS: tuple[str, ...] = (
    "unknown name",
    "bad version",
    "bad label",
    "missing variable",
    "extra variable",
    "malformed YAML",
    "malformed JSON",
    "template syntax",
    "sandbox escape",
    "unknown option",
    "wrong type",
    "empty cell",
    "huge value",
    "unusual Unicode",
    "missing key",
)


def chat_template(*messages: tuple[str, str], fmt: str = "f-string") -> dict:
    return {
        "type": "chat",
        "messages": [
            {"role": r, "content": [{"type": "text", "text": t}], "template_format": fmt}
            for r, t in messages
        ],
    }


def model_metadata(provider: str, name: str) -> dict:
    return {"model": {"provider": provider, "name": name, "parameters": {}}}


@dataclass(frozen=True)
class Case:
    """One bad input and the error it must give."""

    id: str
    surface: str  # one of SURFACES
    kind: str  # one of KINDS
    input: str  # exactly what is typed (see the module docstring)
    error: str  # the error's class name
    fix: str  # fragment of the one-line message that names the fix
    env: tuple[tuple[str, str | None], ...] = ()  # environment changes (None unsets)
    files: tuple[tuple[str, str], ...] = ()  # files in the working directory
    kernel: bool = False  # also run in a real Jupyter kernel
    doc: str = ""  # the input as docs/errors.md shows it, when the input is long

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this error (2: what was typed is wrong; 1: the rest)."""
        usage = ("UsageError", "InvalidInputError", "MissingVariablesError")
        return 2 if self.error in usage else 1
