"""The reviewer widget (``pl_magic.review(df)``): one output of a comparison at a time, with
its input variables, its expected answer and what the other cells answered to the same
input; thumbs up or down, a rating from 1 to 5 and a note; Previous and Next.

A label is saved the moment it is given (a click, or the note once the field loses focus)
as scores of source ``human`` (``score.human``, ``score.human.rating``: see
:mod:`pl_magic.engine.review_queue`), so a review survives a kernel restart: ``review(df)``
on the same frame opens at the first run without a label. ``Reviewer.label(...)`` does the
same from a script or a test, with no browser.

Everything shown that came from a model or from the inputs is escaped: it shows as text,
never as HTML (JupyterLab renders widget HTML of a live kernel unsanitized). Callbacks run
on the kernel's main thread and only set widget values.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from ..client import PromptLayer, default_client
from ..core.errors import InvalidInputError, PlMagicError
from ..engine.review_queue import MAX_NOTE_CHARS, Label, ReviewItem, ReviewQueue, check_label
from .widget import error_html

if TYPE_CHECKING:
    import pandas as pd

_BOX = (
    "white-space:pre-wrap;word-break:break-word;margin:0.2em 0 0.6em 0;padding:0.4em 0.6em;"
    "border-left:3px solid {color};background:rgba(127,127,127,0.06);font-family:monospace;"
    "max-height:{height};overflow:auto"
)


def _text(value: Any) -> str:
    """A value as escaped text (non-strings as JSON, as the person would have typed them)."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return html.escape(value)


def _block(text: str, css_class: str, color: str = "#1976d2", height: str = "24em") -> str:
    style = _BOX.format(color=color, height=height)
    return f'<div class="{css_class}" style="{style}">{_text(text)}</div>'


def _item_html(item: ReviewItem) -> str:
    """The run under review: inputs, expected answer, output, then the other cells'."""
    parts = [
        '<div class="pl-magic-review-run">'
        f"<b>{_text(item.prompt_name)}</b> · {_text(item.cell)}"
        f' <span style="opacity:0.6">{_text(item.frame_id)}</span></div>'
    ]
    if item.inputs:
        rows = "".join(
            f'<tr><td style="text-align:left;vertical-align:top;padding-right:1em">'
            f"<code>{_text(name)}</code></td>"
            f'<td style="text-align:left;white-space:pre-wrap">{_text(value)}</td></tr>'
            for name, value in item.inputs.items()
        )
        parts.append(
            '<div style="margin-top:0.5em"><b>Inputs</b></div>'
            f'<table class="pl-magic-review-inputs">{rows}</table>'
        )
    if item.expected is not None:
        parts.append("<div><b>Expected</b></div>")
        parts.append(_block(_text_of(item.expected), "pl-magic-review-expected", "#2e7d32"))
    parts.append("<div><b>Output</b></div>")
    parts.append(_block(item.output, "pl-magic-review-output"))
    if item.others:
        parts.append("<div><b>Other cells, same input</b></div>")
        others = []
        for other in item.others:
            if other.status == "ok":
                body = _block(other.output, "pl-magic-review-other", "#9e9e9e", "10em")
            else:
                reason = other.error or other.status
                body = _block(f"[{other.status}] {reason}", "pl-magic-review-other", "#c62828")
            others.append(f"<div>{_text(other.cell)}</div>{body}")
        parts.append(f'<div class="pl-magic-review-others">{"".join(others)}</div>')
    return "".join(parts)


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class Reviewer:
    """An ipywidgets reviewer over a runs DataFrame (``pl_magic.review(df)``)."""

    def __init__(
        self, df: pd.DataFrame, client: PromptLayer | None = None, expected: str = "expected"
    ) -> None:
        self.client = client or default_client()
        # the queue first: a frame that is not a runs DataFrame fails before any widget
        self.queue = ReviewQueue(df, self.client.engine, expected)
        import ipywidgets as w

        #: The error the status line shows (None when the last action went well).
        self.last_error: Exception | None = None
        self.index = 0
        self._loading = False  # set while the controls show a stored label (no save)
        self.progress_html = w.HTML(value="")
        self.run_html = w.HTML(value="")
        self.up = w.Button(description="Good", icon="thumbs-up", tooltip="Thumbs up")
        self.down = w.Button(description="Bad", icon="thumbs-down", tooltip="Thumbs down")
        self.ratings = [
            w.Button(description=str(r), tooltip=f"Rating {r} of 5", layout=w.Layout(width="3em"))
            for r in range(1, 6)
        ]
        self.note = w.Textarea(
            description="Note",
            placeholder="why (saved when you leave the field)",
            continuous_update=False,
            layout=w.Layout(width="40em", height="4em"),
        )
        self.previous_button = w.Button(description="Previous", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right")
        self.status = w.HTML(value="")

        self.up.on_click(lambda _: self._toggle_thumbs(True))
        self.down.on_click(lambda _: self._toggle_thumbs(False))
        for r, button in enumerate(self.ratings, start=1):
            button.on_click(lambda _, r=r: self._toggle_rating(r))
        self.note.observe(self._on_note, names="value")
        self.previous_button.on_click(lambda _: self.previous())
        self.next_button.on_click(lambda _: self.next())

        self.widget = w.VBox(
            [
                self.progress_html,
                self.run_html,
                w.HBox([self.up, self.down, w.HTML("&nbsp;&nbsp;Rating&nbsp;"), *self.ratings]),
                self.note,
                w.HBox([self.previous_button, self.next_button]),
                self.status,
            ]
        )
        self.show(self.queue.first_unlabelled())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- what is shown ---------------------------------------------------------------------

    @property
    def current(self) -> Any:
        """The request id (as the frame has it) of the run shown."""
        return self.queue.items[self.index].frame_id

    @property
    def progress(self) -> str:
        """``"12/48 reviewed"``: runs of this review with a label, of all its runs."""
        return f"{self.queue.reviewed}/{len(self.queue)} reviewed"

    @property
    def labels(self) -> pd.DataFrame:
        """The labels given so far (stored ones included): request_id, cell, thumbs,
        rating, note; one row per labelled run, in review order."""
        return self.queue.frame()

    def show(self, which: Any) -> None:
        """Show a run: its position in the review (0 is the first) or its request id."""
        if isinstance(which, int) and not isinstance(which, bool):
            if not 0 <= which < len(self.queue):
                raise InvalidInputError(
                    f"show() takes a position from 0 to {len(self.queue) - 1} or a request id, "
                    f"not {which}"
                )
            self.index = which
        else:
            self.index = self.queue.position(which)
        self._render()

    def next(self) -> None:
        """Show the next run (the Next button); the note typed so far is saved first."""
        self._save_typed_note()
        if self.index < len(self.queue) - 1:
            self.show(self.index + 1)

    def previous(self) -> None:
        """Show the previous run (the Previous button); the note typed so far is saved first."""
        self._save_typed_note()
        if self.index > 0:
            self.show(self.index - 1)

    def _render(self) -> None:
        item = self.queue.items[self.index]
        label = self.queue.labels.get(item.request_id, Label())
        self._loading = True
        try:
            self.note.value = label.note or ""
        finally:
            self._loading = False
        self._paint(label)
        self.run_html.value = _item_html(item)
        self.previous_button.disabled = self.index == 0
        self.next_button.disabled = self.index >= len(self.queue) - 1

    def _paint(self, label: Label) -> None:
        """The controls and the progress line as ``label`` (of the run shown) has them."""
        self.up.button_style = "success" if label.thumbs is True else ""
        self.down.button_style = "danger" if label.thumbs is False else ""
        for r, button in enumerate(self.ratings, start=1):
            button.button_style = "info" if label.rating == r else ""
        self.progress_html.value = (
            f'<div class="pl-magic-review-progress"><b>{html.escape(self.progress)}</b>'
            f" · run {self.index + 1} of {len(self.queue)}</div>"
        )

    # -- labelling ----------------------------------------------------------------------------

    def label(
        self,
        request_id: Any,
        thumbs: bool | None = None,
        score: int | None = None,
        note: str | None = None,
    ) -> Label:
        """Label a run and save it at once (what the buttons do, for scripts and tests).

        ``thumbs``: True (up) or False (down); ``score``: a rating from 1 to 5; ``note``: a
        string; at least one of them. The label replaces the run's earlier one as a whole.
        ``request_id``: either id of a run of this review. A bad value is a one-line
        :class:`~pl_magic.errors.InvalidInputError`.
        """
        label = check_label(thumbs, score, note)
        position = self.queue.position(request_id)
        self.queue.save(request_id, label)
        if position == self.index:
            self._render()
        else:
            self._paint(self.queue.labels.get(self.queue.items[self.index].request_id, Label()))
        return label

    def _shown_label(self) -> Label:
        return self.queue.labels.get(self.queue.items[self.index].request_id, Label())

    def _save_shown(self, label: Label) -> None:
        """Store the shown run's label as the controls now have it; errors show in the form."""
        try:
            self.queue.save(self.queue.items[self.index].request_id, label)
        except PlMagicError as exc:
            self.last_error = exc
            self.status.value = error_html(str(exc))
            return
        self.last_error, self.status.value = None, ""
        self._paint(label)

    def _toggle_thumbs(self, up: bool) -> None:
        now = self._shown_label()
        thumbs = None if now.thumbs is up else up  # a second click on the same one clears it
        self._save_shown(Label(thumbs, now.rating, self._typed_note()))

    def _toggle_rating(self, rating: int) -> None:
        now = self._shown_label()
        chosen = None if now.rating == rating else rating
        self._save_shown(Label(now.thumbs, chosen, self._typed_note()))

    def _typed_note(self) -> str | None:
        return self.note.value.strip() or None

    def _on_note(self, _: Any = None) -> None:
        if not self._loading:
            self._save_typed_note()

    def _save_typed_note(self) -> None:
        now = self._shown_label()
        typed = self._typed_note()
        if typed != now.note:
            if typed is not None and len(typed) > MAX_NOTE_CHARS:
                message = f"the note is too long: keep it under {MAX_NOTE_CHARS} characters"
                self.last_error = InvalidInputError(message)
                self.status.value = error_html(message)
                return
            self._save_shown(Label(now.thumbs, now.rating, typed))


def review(df: pd.DataFrame, expected: str = "expected") -> Reviewer:
    """Review a comparison's outputs by hand, one at a time (``pl_magic.review(df)``).

    ``df``: a runs DataFrame (``run_many()``, ``runs()``); its runs that ended ok are shown
    in the frame's order, each with its input variables, its expected answer (the
    ``expected`` column, else the input variable of that name) and the other cells' outputs
    for the same input. Thumbs up/down, a 1–5 rating and a note are saved as they are given
    (source ``human``): they show as ``score.human`` (1.0 up, 0.0 down; the note is its
    reason) and ``score.human.rating`` ((r - 1) / 4) in ``runs()``, and a later
    ``review(df)`` opens at the first run without a label. Script it with
    ``reviewer.label(request_id, thumbs=True, score=4, note="...")``.
    """
    return Reviewer(df, expected=expected)
