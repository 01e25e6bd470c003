"""Word-level differences between two cells' outputs of a comparison, for each input row.

A cell is one model × prompt version of a comparison DataFrame (from ``run_many()``,
``%%plrun --out`` or ``runs()``), named as ``compare()`` names its columns. An input row is
identified by its ``var.*`` values; with repeats, repeat *i* of one cell is compared with
repeat *i* of the other (a repeat only one cell has shows the other side as missing).

Model output is untrusted: the HTML escapes every piece of it (``html.escape``, quotes
included) and shows its control characters as ``\\xNN``; nothing a model wrote becomes a tag
or an attribute. The terminal text shows control characters the same way
(:func:`pl_magic.core.inert.escape_controls`), so a reply cannot move the cursor or write
the clipboard. pandas is never imported here: the DataFrame is read column by column.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.cell_names import cell_name
from ..core.errors import InvalidInputError, shown
from ..core.inert import escape_controls
from ..core.plain_data import is_missing

__all__ = ["DiffView", "cells", "diff", "tokens"]

#: A word, a run of whitespace, or one other character (punctuation): every character of a
#: text falls in exactly one token, so joining the tokens gives the text back exactly.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)
#: What a missing output (an error run, a repeat the other cell lacks) is shown as.
MISSING = "—"
_REQUIRED = ("output", "model", "prompt_version")
_CELL_STYLE = "vertical-align:top;text-align:left;padding:4px 8px;border:1px solid #d0d7de"
_PRE_STYLE = (
    "white-space:pre-wrap;word-break:break-word;margin:0;"
    "font-family:var(--jp-code-font-family,monospace)"
)
_DEL_STYLE = "background:#ffebe9;color:#82071e"
_INS_STYLE = "background:#dafbe1;color:#116329"
#: An input value longer than this is cut in the table (the row dicts keep all of it).
_INPUT_CHARS = 300


def tokens(text: str) -> list[str]:
    """``text`` cut into words, whitespace runs and punctuation; ``"".join`` gives it back."""
    return _TOKEN.findall(text)


def _column(df: Any, name: str, count: int) -> list[Any]:
    return list(df[name]) if name in df.columns else [None] * count


def _labels(df: Any, count: int) -> list[str]:
    """Each row's cell, as ``compare()`` names its columns (the rule is
    :func:`pl_magic.core.cell_names.cell_name`)."""
    has_provider = "provider" in df.columns
    return [
        cell_name(model, version, release, provider if has_provider else None)
        for provider, model, version, release in zip(
            _column(df, "provider", count),
            _column(df, "model", count),
            _column(df, "prompt_version", count),
            _column(df, "release_label", count),
            strict=True,
        )
    ]


def _short(label: str) -> str:
    """A cell's label without its ``provider/`` prefix (``model · vVERSION``)."""
    head, sep, tail = label.partition(" · ")
    return head.split("/", 1)[-1] + sep + tail


def _check_frame(df: Any) -> int:
    columns = getattr(df, "columns", None)
    if columns is None or not all(c in columns for c in _REQUIRED):
        raise InvalidInputError(
            "diff() takes a runs DataFrame (from run_many, %%plrun --out or runs()) with "
            "output, model and prompt_version columns"
        )
    return len(df)


def cells(df: Any) -> list[str]:
    """The cells of a comparison DataFrame, in order of first appearance (``compare()``'s
    column names)."""
    return list(dict.fromkeys(_labels(df, _check_frame(df))))


def _resolve(name: Any, known: Sequence[str], which: str) -> str:
    """The cell ``name`` stands for: a full label, or one without ``provider/`` if unique."""
    if isinstance(name, str):
        if name in known:
            return name
        matches = [k for k in known if _short(k) == name]
        if len(matches) == 1:
            return matches[0]
    listing = ", ".join(repr(k) for k in known) or "none (the DataFrame has no runs)"
    raise InvalidInputError(
        f"diff({which}={shown(name, 60)}): no such cell; the cells are: {listing}"
    )


def _key(value: Any) -> str:
    """A hashable, comparable form of an input value (lists and dicts included)."""
    if is_missing(value):
        return "null"
    return json.dumps(value, sort_keys=True, default=repr)


def _plain(value: Any) -> Any:
    return None if is_missing(value) else value


def _output(output: Any, status: Any) -> str | None:
    """The reply to compare, or None: an error or cancelled run has none to compare."""
    if not isinstance(output, str):
        return None
    if not is_missing(status) and str(status) != "ok":
        return None
    return output


def _opcodes(a: str, b: str) -> list[tuple[str, str, str]]:
    ta, tb = tokens(a), tokens(b)
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    return [
        (tag, "".join(ta[i1:i2]), "".join(tb[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    ]


@dataclass
class DiffView:
    """The differences between cells ``a`` and ``b``, one entry of :attr:`rows` per input
    row and repeat.

    Each row is a plain dict: ``inputs`` (variable name → value), ``repeat``, ``a`` and ``b``
    (the two outputs, None when missing) and ``opcodes``: a list of ``(tag, a_text, b_text)``
    with ``tag`` one of difflib's ``equal``, ``replace``, ``delete``, ``insert``; joining the
    ``a_text`` pieces gives ``a`` back, the ``b_text`` pieces ``b``. ``opcodes`` is None when
    either output is missing.
    """

    a: str
    b: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def _variables(self) -> list[str]:
        return list(dict.fromkeys(name for row in self.rows for name in row["inputs"]))

    def _repeats(self) -> bool:
        return any(row["repeat"] for row in self.rows)

    def _repr_html_(self) -> str:
        variables = self._variables()
        repeats = self._repeats()
        head = [*variables, *(["repeat"] if repeats else []), self.a, self.b]
        thead = "".join(f'<th style="{_CELL_STYLE}">{_text(h)}</th>' for h in head)
        body = []
        for row in self.rows:
            tds = [_td(_text(_input_text(row["inputs"].get(v)))) for v in variables]
            if repeats:
                tds.append(_td(_text(str(row["repeat"]))))
            tds.append(_td(_pre(_side(row, "a"))))
            tds.append(_td(_pre(_side(row, "b"))))
            body.append("<tr>" + "".join(tds) + "</tr>")
        if not body:
            body.append(
                f'<tr><td colspan="{len(head)}" style="{_CELL_STYLE}">no input rows</td></tr>'
            )
        return (
            '<div class="pl-magic-diff"><table style="border-collapse:collapse">'
            f"<thead><tr>{thead}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )

    def __str__(self) -> str:
        lines = [escape_controls(f"--- {self.a}"), escape_controls(f"+++ {self.b}")]
        for row in self.rows:
            inputs = ", ".join(f"{k}={_input_text(v)}" for k, v in row["inputs"].items())
            repeat = f" #{row['repeat']}" if row["repeat"] else ""
            lines.append(escape_controls(f"@@ {inputs or '(no inputs)'}{repeat}"))
            lines.append("- " + _terminal_side(row, "a"))
            lines.append("+ " + _terminal_side(row, "b"))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<DiffView {self.a!r} → {self.b!r}: {len(self.rows)} rows>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else str(self))


def _text(value: str) -> str:
    """Untrusted text as HTML text: control characters visible, then escaped."""
    return html.escape(escape_controls(value), quote=True)


def _td(inner: str) -> str:
    return f'<td style="{_CELL_STYLE}">{inner}</td>'


def _pre(inner: str) -> str:
    return f'<pre style="{_PRE_STYLE}">{inner}</pre>'


def _input_text(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= _INPUT_CHARS else text[: _INPUT_CHARS - 1] + "…"


def _side(row: dict[str, Any], side: str) -> str:
    """One side of a row as escaped HTML: a's deletions in <del>, b's insertions in <ins>."""
    text = row[side]
    if text is None:
        return MISSING
    if row["opcodes"] is None:
        return _text(text)
    mark, style, index = ("del", _DEL_STYLE, 1) if side == "a" else ("ins", _INS_STYLE, 2)
    pieces = []
    for op in row["opcodes"]:
        piece = op[index]
        if not piece:
            continue
        escaped = _text(piece)
        pieces.append(
            escaped if op[0] == "equal" else f'<{mark} style="{style}">{escaped}</{mark}>'
        )
    return "".join(pieces)


def _terminal_side(row: dict[str, Any], side: str) -> str:
    """One side for a terminal: a's deletions as ``[-…-]``, b's insertions as ``{+…+}``."""
    text = row[side]
    if text is None:
        return MISSING
    if row["opcodes"] is None:
        return escape_controls(text)
    opening, closing, index = ("[-", "-]", 1) if side == "a" else ("{+", "+}", 2)
    out = []
    for op in row["opcodes"]:
        piece = escape_controls(op[index])
        if piece:
            out.append(piece if op[0] == "equal" else opening + piece + closing)
    return "".join(out)


def diff(df: Any, a: str, b: str) -> DiffView:
    """Word-level differences between the outputs of cells ``a`` and ``b`` of a comparison.

    ``a`` and ``b`` are cells as ``compare()`` names its columns (``"openai/gpt-4o · v3"``,
    ``"openai/gpt-4o · v3 (prod)"``), or without the ``provider/`` when that names one cell.
    One row per input (its ``var.*`` values) and repeat, repeat *i* against repeat *i*; where
    several runs share a cell, input and repeat (``runs()`` over many comparisons), the first
    is used. An error run's output is missing and shows as ``—``. Displayed in a notebook as
    an HTML table, escaped; ``str()`` gives the terminal form; ``.rows`` the data.
    """
    count = _check_frame(df)
    labels = _labels(df, count)
    known = list(dict.fromkeys(labels))
    a = _resolve(a, known, "a")
    b = _resolve(b, known, "b")
    var_cols = [c for c in df.columns if isinstance(c, str) and c.startswith("var.")]
    var_values = [list(df[c]) for c in var_cols]
    outputs = _column(df, "output", count)
    statuses = _column(df, "status", count)
    repeats = _column(df, "repeat", count)
    found: dict[tuple[tuple[str, ...], int], dict[str, Any]] = {}
    for i, label in enumerate(labels):
        if label not in (a, b):
            continue
        values = [column[i] for column in var_values]
        repeat = 0 if is_missing(repeats[i]) else int(repeats[i])
        key = (tuple(_key(v) for v in values), repeat)
        row = found.setdefault(
            key,
            {
                "inputs": {c[4:]: _plain(v) for c, v in zip(var_cols, values, strict=True)},
                "repeat": repeat,
            },
        )
        for side, name in (("a", a), ("b", b)):
            if label == name and f"has_{side}" not in row:
                row[f"has_{side}"] = True
                row[side] = _output(outputs[i], statuses[i])
    rows = []
    for row in found.values():
        out_a, out_b = row.get("a"), row.get("b")
        rows.append(
            {
                "inputs": row["inputs"],
                "repeat": row["repeat"],
                "a": out_a,
                "b": out_b,
                "opcodes": None if out_a is None or out_b is None else _opcodes(out_a, out_b),
            }
        )
    return DiffView(a=a, b=b, rows=rows)
