"""Model output made inert where it leaves pl_magic as plain text: a terminal, a CSV file.

A reply is untrusted. Written raw to a terminal, its control characters are commands: ESC
sequences move the cursor, rewrite lines, retitle the window, and OSC 52 writes the
clipboard. In a CSV file a spreadsheet opens, a cell that starts with ``=`` (or ``+ - @``,
a tab, a carriage return) is a formula: ``=HYPERLINK(...)`` can send the sheet's data away
(OWASP's "CSV injection").
"""

from __future__ import annotations

import json
import re
from typing import Any

#: C0 controls but the new line and the tab, DEL, and the C1 controls (U+0080-U+009F, which
#: terminals also read as commands: U+009B is CSI, U+009D is OSC).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: What starts a formula in a spreadsheet (OWASP's list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_controls(text: str) -> str:
    """``text`` with each control character (but new lines and tabs) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def for_stream(text: str, stream: Any) -> str:
    """``text`` as it may be written to ``stream``: escaped for a terminal, as is otherwise
    (a pipe or a file gets the reply exactly as the model wrote it)."""
    return escape_controls(text) if is_terminal(stream) else text


def json_text(value: Any, indent: int | None = 2) -> str:
    """JSON with every control character escaped (``json`` leaves DEL and C1 raw), so that
    it is safe on a terminal and stays the same JSON."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text that starts a formula gets a leading
    ``'`` (OWASP's advice); numbers and everything else stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
