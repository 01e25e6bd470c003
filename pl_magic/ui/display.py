"""Live cell output: one streaming view per run, or a grid of views for a comparison.

Rules (from rgbkrk/genai's display.py, plus a throttle it lacks):
- updates go through one display handle per view, from the kernel's main thread only;
  worker threads never touch the cell (batch.py hands their chunks over through a queue);
- at most ``refresh_hz`` updates a second while streaming, and always one at the end;
- model output is escaped, never injected as HTML: ``--format markdown`` is rendered in the
  kernel by a CommonMark parser with raw HTML off (:mod:`pl_magic.ui.markdown_view`) and sent
  as that HTML, because Jupyter renders the HTML and Markdown of outputs the kernel just
  produced as trusted, without sanitizing them;
- rendering Markdown costs time on the kernel's main thread: while streaming, only the
  reply's last block is rendered again at each update, and when an update is slow anyway (a
  long list or code block) the next one waits longer, so updates take at most about a
  quarter of the time;
- in a terminal IPython (no display updates) text is printed as it streams.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.inert import for_stream
from .footer import format_cost
from .structured_view import json_html, tool_calls_html, tool_calls_text

FORMATS = ("text", "markdown")
#: Classes that keep JupyterLab's MathJax (and nbconvert's) off an output: two dollar amounts
#: in one line (``$0.0001–$0.02``) would otherwise be typeset as a formula.
NO_MATH = "mathjax_ignore tex2jax_ignore"
_CURSOR = "▌"
#: The statuses of a run that has ended (or will never start).
_ENDED = ("ok", "error", "cancelled", "skipped")
_RED = "#c62828"
_AMBER = "#b26a00"
#: The progress bar's segments: the statuses each counts, its colour and its name.
_BAR_SEGMENTS = (
    (("ok",), "#2e7d32", "ok"),
    (("error",), _RED, "failed"),
    (("cancelled", "skipped"), _AMBER, "stopped"),
)
_STATUS_ICONS = {
    "pending": "·",
    "running": "…",
    "ok": "✓",
    "error": "✗",
    "cancelled": "⊘",
    "skipped": "–",
}


def can_update_display() -> bool:
    """True in a Jupyter kernel (display updates work); False in a terminal or plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _pre(text: str) -> str:
    return (
        '<pre style="white-space:pre-wrap;word-break:break-word;margin:0;'
        'background-color:transparent;font-family:var(--jp-code-font-family,monospace)">'
        + html.escape(text)
        + "</pre>"
    )


def _footer_html(footer: str, status: str = "ok") -> str:
    color = {"error": _RED, "cancelled": _AMBER}.get(status, "#757575")
    return (
        f'<div class="pl-magic-footer" style="color:{color};font-size:0.85em;margin-top:4px">'
        f"{html.escape(footer)}</div>"
    )


def run_bundle(
    text: str,
    footer: str = "",
    fmt: str = "text",
    status: str = "ok",
    streaming: bool = False,
    render: Callable[[str], str] | None = None,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    structured: bool = False,
    tool_results: Mapping[Any, str] | None = None,
    inputs_html: str = "",
) -> dict[str, str]:
    """The MIME bundle of one run's view: its text (escaped) and footer line.

    ``fmt="markdown"`` renders the Markdown here (:mod:`pl_magic.ui.markdown_view`; ``render``
    is the renderer of a stream in progress) and sends the HTML, never ``text/markdown``:
    the front end would render that as trusted. A ``structured`` reply (JSON asked for)
    shows as formatted, foldable JSON once it parses; ``tool_calls`` show under the text,
    with their ``tool_results`` (by call id) when the tool loop ran them
    (:mod:`pl_magic.ui.structured_view`). ``inputs_html``: previews of the run's media
    inputs shown above the reply (built by :mod:`pl_magic.ui.media_view`, escaped there).
    """
    calls_text = tool_calls_text(tool_calls, tool_results) if tool_calls else ""
    plain = (
        text
        + (_CURSOR if streaming else "")
        + (f"\n{calls_text}" if calls_text else "")
        + (f"\n{footer}" if footer else "")
    )
    if structured:
        body = json_html(text, _CURSOR if streaming else "")
        kind = "pl-magic-run pl-magic-structured"
    elif fmt == "markdown":
        from .markdown_view import render_markdown

        body = (render or render_markdown)(text)
        if streaming:
            body += f'<span class="pl-magic-cursor">{_CURSOR}</span>'
        kind = "pl-magic-run pl-magic-markdown"
    else:
        body = _pre(text + (_CURSOR if streaming else ""))
        kind = "pl-magic-run"
    body = inputs_html + body
    body += tool_calls_html(tool_calls, tool_results) if tool_calls else ""
    body += _footer_html(footer, status) if footer else ""
    return {"text/plain": plain, "text/html": f'<div class="{kind}">{body}</div>'}


class Throttle:
    """Lets an update through at most ``hz`` times a second (less often when updates are slow)."""

    #: An update that took ``t`` seconds holds the next one back ``t * BACK_OFF`` after it.
    BACK_OFF = 3.0

    def __init__(self, hz: float) -> None:
        self.interval = 1.0 / hz if hz > 0 else 0.0
        self.gap = self.interval
        self.last = 0.0
        self.count = 0

    def ready(self) -> bool:
        """True (and counts an update) when enough time has passed since the last one."""
        now = time.monotonic()
        if now - self.last >= self.gap:
            self.last = now
            self.count += 1
            return True
        return False

    def took(self, seconds: float) -> None:
        """The update just let through took ``seconds``: the next waits ``BACK_OFF`` times that.

        Counted from the end of the slow update, so such updates take at most about
        ``1 / (1 + BACK_OFF)`` of the time.
        """
        if seconds * self.BACK_OFF > self.interval:
            self.last = time.monotonic()
            self.gap = seconds * self.BACK_OFF
        else:
            self.gap = self.interval


class RunView:
    """The live view of one run."""

    def __init__(
        self, fmt: str = "text", refresh_hz: float = 15.0, live: bool | None = None
    ) -> None:
        self.fmt = fmt if fmt in FORMATS else "text"
        self.live = can_update_display() if live is None else live
        self.throttle = Throttle(refresh_hz)
        self.handle: Any = None
        self.printed = 0  # terminal mode: characters already written
        #: Previews of the run's media inputs, above the reply (see ui/media_view.py).
        self.inputs_html = ""
        self._render: Callable[[str], str] | None = None
        if self.fmt == "markdown":
            from .markdown_view import MarkdownStream

            self._render = MarkdownStream().render

    def start(self, header: str = "") -> None:
        """Show the (empty) view."""
        if self.live:
            from IPython.display import display

            self.handle = display(
                run_bundle("", header, self.fmt, streaming=True, inputs_html=self.inputs_html),
                raw=True,
                display_id=True,
            )

    def update(
        self,
        text: str,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        structured: bool = False,
    ) -> None:
        """New text (and tool calls) so far; shown now if the throttle allows. A terminal
        gets the text as it comes, the tool calls at :meth:`finish`."""
        if self.live:
            if self.throttle.ready():
                began = time.monotonic()
                bundle = run_bundle(
                    text,
                    "",
                    self.fmt,
                    streaming=True,
                    render=self._render,
                    tool_calls=tool_calls,
                    structured=structured,
                    inputs_html=self.inputs_html,
                )
                self.handle.update(bundle, raw=True)
                self.throttle.took(time.monotonic() - began)
        else:
            sys.stdout.write(for_stream(text[self.printed :], sys.stdout))
            sys.stdout.flush()
            self.printed = len(text)

    def finish(
        self,
        text: str,
        footer: str,
        status: str = "ok",
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        structured: bool = False,
        tool_results: Mapping[Any, str] | None = None,
    ) -> None:
        """The final view: the whole text, its tool calls and the footer line (always shown)."""
        if self.live:
            self.throttle.count += 1
            bundle = run_bundle(
                text,
                footer,
                self.fmt,
                status,
                tool_calls=tool_calls,
                structured=structured,
                tool_results=tool_results,
                inputs_html=self.inputs_html,
            )
            self.handle.update(bundle, raw=True)
        else:
            sys.stdout.write(for_stream(text[self.printed :], sys.stdout))
            if tool_calls:
                calls = tool_calls_text(tool_calls, tool_results)
                sys.stdout.write(("\n" if text else "") + for_stream(calls, sys.stdout))
                text = text or calls
            sys.stdout.write(("\n" if text else "") + for_stream(footer, sys.stdout) + "\n")
            sys.stdout.flush()
            self.printed = len(text)


@dataclass
class GridCell:
    """One run of a comparison, as the grid shows it."""

    row: str
    column: str
    text: str = ""
    status: str = "pending"
    footer: str = ""
    #: Previews of the row's media inputs, beside its name (see ui/media_view.py).
    inputs_html: str = ""


class GridView:
    """A live table of runs: one row per version × model × input, one column per repeat."""

    def __init__(
        self,
        cells: Sequence[GridCell],
        refresh_hz: float = 10.0,
        live: bool | None = None,
        max_chars: int = 600,
    ) -> None:
        self.cells = list(cells)
        self.live = can_update_display() if live is None else live
        self.throttle = Throttle(refresh_hz)
        self.max_chars = max_chars
        self.handle: Any = None
        #: A line above the progress bar (the comparison's estimate).
        self.header = ""
        #: USD spent so far by finished runs, shown beside the progress; None: not shown.
        self.spent: float | None = None
        #: The line under the progress once the comparison ended (see ``footer.comparison``),
        #: and its status (``error`` shows it in red).
        self.summary = ""
        self.summary_status = "ok"

    def _spent_text(self) -> str:
        if self.spent is None:
            return ""
        return f" · spent {format_cost(self.spent) if self.spent else '$0.00'}"

    def _status_line(self) -> str:
        done = sum(c.status in _ENDED for c in self.cells)
        return f"{done}/{len(self.cells)} runs{self._spent_text()}"

    def _html(self) -> str:
        rows: dict[str, dict[str, GridCell]] = {}
        columns: list[str] = []
        previews: dict[str, str] = {}
        for cell in self.cells:
            rows.setdefault(cell.row, {})[cell.column] = cell
            if cell.column not in columns:
                columns.append(cell.column)
            if cell.inputs_html:
                previews.setdefault(cell.row, cell.inputs_html)
        done = sum(c.status in _ENDED for c in self.cells)
        errors = sum(c.status == "error" for c in self.cells)
        skipped = sum(c.status == "skipped" for c in self.cells)
        # why: "budget" or "fail-fast" (the footer of a skipped cell says "skipped: <why>")
        reasons = {c.footer.removeprefix("skipped: ") for c in self.cells if c.status == "skipped"}
        why = ", ".join(sorted(reasons))
        pct = int(100 * done / len(self.cells)) if self.cells else 100
        head = "".join(f'<th style="text-align:left">{html.escape(c)}</th>' for c in columns)
        body = []
        for row_name, by_column in rows.items():
            tds = []
            for col in columns:
                found = by_column.get(col)
                if found is None:
                    tds.append("<td></td>")
                    continue
                cell = found
                text = cell.text
                if len(text) > self.max_chars:
                    text = "…" + text[-self.max_chars :]
                icon = _STATUS_ICONS.get(cell.status, "")
                tds.append(
                    '<td style="vertical-align:top;text-align:left;min-width:12em">'
                    f"<div>{icon}</div>{_pre(text)}"
                    + (_footer_html(cell.footer, cell.status) if cell.footer else "")
                    + "</td>"
                )
            body.append(
                '<tr><th style="text-align:left;vertical-align:top;white-space:nowrap">'
                f"{html.escape(row_name)}{previews.get(row_name, '')}</th>" + "".join(tds) + "</tr>"
            )
        counts = ", ".join(
            part
            for part in (
                f'<span style="color:{_RED}">{errors} failed</span>' if errors else "",
                f"{skipped} skipped ({html.escape(why or 'budget')})" if skipped else "",
            )
            if part
        )
        progress = (
            '<div style="margin-bottom:4px;display:flex;align-items:center;gap:0.5em">'
            + self._bar()
            + f"<span>{done}/{len(self.cells)} runs ({pct}%)"
            + (f", {counts}" if counts else "")
            + html.escape(self._spent_text())
            + "</span></div>"
        )
        if self.summary:
            color = {"error": _RED, "cancelled": _AMBER}.get(self.summary_status, "inherit")
            progress += (
                f'<div class="pl-magic-summary" style="margin-bottom:4px;color:{color}">'
                f"{html.escape(self.summary)}</div>"
            )
        if self.header:
            progress = f'<div class="pl-magic-estimate">{html.escape(self.header)}</div>' + progress
        return (
            f'<div class="pl-magic-grid {NO_MATH}">{progress}<table>'
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )

    def _plain(self) -> str:
        lines = [self.header, self._status_line(), self.summary]
        return "\n".join(line for line in lines if line)

    def _bar(self) -> str:
        """The progress bar: one coloured segment per kind of ended run (ok, failed, stopped
        or skipped) over the runs still to come, so that failures show at a glance."""
        total = len(self.cells) or 1
        segments = []
        for statuses, color, title in _BAR_SEGMENTS:
            count = sum(c.status in statuses for c in self.cells)
            if count:
                segments.append(
                    f'<div class="pl-magic-bar-{title}" title="{count} {title}" '
                    f'style="width:{100 * count / total:.3f}%;background-color:{color}"></div>'
                )
        done = sum(c.status in _ENDED for c in self.cells)
        return (
            f'<div class="pl-magic-bar" role="progressbar" aria-valuemin="0" '
            f'aria-valuemax="{len(self.cells)}" aria-valuenow="{done}" '
            'style="display:flex;width:12em;height:0.8em;flex:none;border-radius:3px;'
            'overflow:hidden;background-color:var(--jp-layout-color3,#e0e0e0)">'
            + "".join(segments)
            + "</div>"
        )

    def start(self) -> None:
        """Show the grid."""
        if self.live:
            from IPython.display import display

            self.handle = display(
                {"text/plain": self._plain(), "text/html": self._html()},
                raw=True,
                display_id=True,
            )

    def refresh(self, force: bool = False) -> None:
        """Redraw if the throttle allows (or always, with ``force``)."""
        if self.live and (force or self.throttle.ready()):
            if force:
                self.throttle.count += 1
            self.handle.update({"text/plain": self._plain(), "text/html": self._html()}, raw=True)
