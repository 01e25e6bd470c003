"""The progress of a batch job in a cell: one display, updated at each poll.

It shows the job's id and status, a progress bar of the runs that have ended (ok, failed,
cancelled), and one line per provider job (provider and model, the provider's job id, its
status and the provider's counts). Everything in it comes from the log or from the provider
(ids, statuses, error messages): all of it is escaped. Updates go through one display handle
from the kernel's main thread (the thread that polls); in a terminal a line is printed when
the counts change.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from ..core.inert import for_stream
from .display import can_update_display


class PartLike(Protocol):
    """One provider job, as :class:`pl_magic.engine.batch_jobs.PartStatus` has it."""

    provider: str
    model: str
    provider_job_id: str | None
    status: str
    total: int
    succeeded: int | None
    errored: int | None
    ingested: bool


class StatusLike(Protocol):
    """A job's status, as :class:`pl_magic.engine.batch_jobs.JobStatus` has it."""

    id: str
    prompt_name: str
    status: str
    total: int
    ok: int
    error: int
    cancelled: int
    message: str | None

    @property
    def parts(self) -> Sequence[Any]: ...

    @property
    def done(self) -> int: ...

    def summary(self) -> str: ...


def _part_row(part: PartLike) -> str:
    counts = "—"
    if part.succeeded is not None or part.errored is not None:
        counts = f"{part.succeeded or 0} ok, {part.errored or 0} failed of {part.total}"
    elif part.total:
        counts = f"{part.total} requests"
    cells = (
        f"{part.provider}/{part.model}",
        part.provider_job_id or "(not accepted)",
        part.status + (" · logged" if part.ingested else ""),
        counts,
    )
    return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


def batch_html(status: StatusLike) -> str:
    """The view's HTML (every value escaped)."""
    total = status.total or 0
    done = status.done
    head = (
        f"Batch job <code>{html.escape(status.id)}</code> · {html.escape(status.prompt_name)} · "
        f"<b>{html.escape(status.status)}</b>"
    )
    counts = f"{done}/{total} runs ended: {status.ok} ok"
    if status.error:
        counts += f", {status.error} failed"
    if status.cancelled:
        counts += f", {status.cancelled} cancelled"
    bar = (
        f'<div><progress value="{done}" max="{max(total, 1)}"></progress> '
        f"{html.escape(counts)}</div>"
    )
    rows = "".join(_part_row(p) for p in status.parts)
    table = (
        "<table><thead><tr><th>model</th><th>provider job</th><th>status</th>"
        f"<th>provider's counts</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    note = (
        f'<div class="pl-magic-footer" style="color:#b26a00">{html.escape(status.message)}</div>'
        if status.message
        else ""
    )
    return f'<div class="pl-magic-batch"><div>{head}</div>{bar}{table}{note}</div>'


class BatchView:
    """The live view of one batch job."""

    def __init__(self, live: bool | None = None) -> None:
        self.live = can_update_display() if live is None else live
        self.handle: Any = None
        self._last = ""

    def _bundle(self, status: StatusLike) -> dict[str, str]:
        return {"text/plain": status.summary(), "text/html": batch_html(status)}

    def start(self, status: StatusLike) -> None:
        """Show the view."""
        if self.live:
            from IPython.display import display

            self.handle = display(self._bundle(status), raw=True, display_id=True)
        else:
            self._print(status)

    def update(self, status: StatusLike) -> None:
        """Show the job as it is now."""
        if self.live and self.handle is not None:
            self.handle.update(self._bundle(status), raw=True)
        elif not self.live:
            self._print(status)

    def _print(self, status: StatusLike) -> None:
        line = status.summary()
        if line != self._last:
            self._last = line
            print(for_stream(line, sys.stdout), flush=True)
