"""The widget form: pick a prompt, a version or label, a model and its parameters, fill the
input variables, click Run; the reply streams into the form.

The run happens on a worker thread so that Stop stays clickable: a click is handled on the
kernel's main thread, which a streaming loop would otherwise block. The worker only sets
widget values (state syncs reach the browser from any thread); it never prints or uses
``with output:``, which from a thread shows nothing in the browser (notebook-testing P6).
Errors show as one line inside the form, never as a traceback.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..client import PromptLayer, default_client
from ..core.errors import InvalidInputError, PlMagicError, PromptNotFoundError
from ..core.media import IMAGE_TYPES, PDF, MediaValue
from ..core.parsing import parse_pairs
from ..core.store import utcnow_iso
from ..engine import limiter
from ..engine.engine import RunOptions
from ..providers import get_provider, suggested_models, supported
from ..runlog.sqlite import RunFilter
from ..ui import footer as footer_mod
from ..ui.display import NO_MATH, Throttle
from ..ui.media_view import thumbnails_html
from ..ui.structured_view import ReplyParts, reply_parts

if TYPE_CHECKING:
    import pandas as pd

_FORM_PARAMETERS = ("temperature", "max_tokens", "top_p")
#: Runs the form's table shows (the newest); ``form.runs`` has them all.
TABLE_ROWS = 20
_LATEST = ("latest", None)


def _split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _reply_html(
    text: str,
    footer: str = "",
    status: str = "ok",
    streaming: bool = False,
    parts: ReplyParts | None = None,
) -> str:
    """A reply's HTML (escaped); ``parts``: its tool calls, and whether it is JSON."""
    from ..ui.display import run_bundle

    calls = parts.tool_calls if parts is not None else None
    structured = parts.structured if parts is not None else False
    return run_bundle(
        text, footer, "text", status, streaming, tool_calls=calls, structured=structured
    )["text/html"]


def error_html(message: str) -> str:
    """A one-line error for a widget's status line, escaped (it may quote a reply)."""
    return (
        '<div class="pl-magic-error" style="color:#c62828">'
        + html.escape(" ".join(message.split()))
        + "</div>"
    )


def _notice_html(message: str) -> str:
    return f'<div class="pl-magic-notice" style="color:#b26a00">{html.escape(message)}</div>'


class PromptForm:
    """An ipywidgets form over the registry and the engine (``pl_magic.form()``)."""

    def __init__(
        self, name: str | None = None, client: PromptLayer | None = None, refresh_hz: float = 15.0
    ) -> None:
        import ipywidgets as w

        self.client = client or default_client()
        self.refresh_hz = refresh_hz
        self.request_ids: list[str | int] = []  # local ids or PromptLayer's (ints)
        #: The error the status line shows (None after a run that went well).
        self.last_error: Exception | None = None
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._state_lock = threading.Lock()
        #: True from a click on Run until that run's worker has finished everything.
        self._busy = False
        self._typed: dict[str, str] = {}
        #: The upload field (and its URL/path text field) of each media variable.
        self.media_inputs: dict[str, tuple[Any, Any]] = {}
        self._template_params: dict[str, Any] = {}
        wide = w.Layout(width="32em")
        # One label width for every field: the default (about 8 characters) cuts
        # "temperature" to "temperat…".
        label = {"description_width": "7em"}

        self.prompt = w.Dropdown(description="Prompt", layout=wide, style=label)
        self.refresh_button = w.Button(
            description="↻", tooltip="Reload the prompt list", layout=w.Layout(width="3em")
        )
        self.version = w.Dropdown(description="Version", layout=wide, style=label)
        self.provider = w.Dropdown(
            description="Provider", options=supported(), layout=wide, style=label
        )
        self.model = w.Combobox(description="Model", ensure_option=False, layout=wide, style=label)
        self.temperature = w.FloatSlider(
            description="temperature",
            min=0.0,
            max=2.0,
            step=0.05,
            value=1.0,
            readout_format=".2f",
            style=label,
        )
        self.max_tokens = w.IntText(description="max tokens", value=256, style=label)
        self.top_p = w.FloatSlider(
            description="top_p", min=0.0, max=1.0, step=0.05, value=1.0, style=label
        )
        self.extras = w.Text(description="extras", placeholder="k=v, k=v", layout=wide, style=label)
        self.variables = w.VBox()
        self.tags = w.Text(description="tags", placeholder="a, b", layout=wide, style=label)
        self.metadata = w.Text(
            description="metadata", placeholder="k=v, k=v", layout=wide, style=label
        )
        self.stream = w.Checkbox(description="stream", value=True)
        self.repeat = w.BoundedIntText(description="repeat", value=1, min=1, max=100)
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.reply = w.HTML(value="")
        self.status = w.HTML(value="")
        self.table = w.HTML(value="")

        self.refresh_button.on_click(lambda _: self.refresh())
        self.prompt.observe(self._on_prompt, names="value")
        self.version.observe(self._on_version, names="value")
        self.provider.observe(self._on_provider, names="value")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())

        self.widget = w.VBox(
            [
                w.HBox([self.prompt, self.refresh_button]),
                self.version,
                self.provider,
                self.model,
                w.HBox([self.temperature, self.top_p]),
                w.HBox([self.max_tokens, self.extras]),
                w.HTML("<b>Input variables</b>"),
                self.variables,
                self.tags,
                self.metadata,
                w.HBox([self.stream, self.repeat]),
                w.HBox([self.run_button, self.stop_button]),
                self.status,
                self.reply,
                self.table,
            ]
        )
        self.refresh(select=name)

    def _show_error(self, exc: Exception) -> None:
        """The error as the form's one-line status."""
        self.last_error = exc
        self.status.value = error_html(str(exc))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- filling the form ----------------------------------------------------------------

    def refresh(self, select: str | None = None) -> None:
        """Reload the prompt list from the registry (keeping the selection when possible)."""
        try:
            names = self.client.registry.names()
        except PlMagicError as exc:
            self._show_error(exc)
            return
        current = select or self.prompt.value
        self.prompt.options = names
        if current in names:
            self.prompt.value = current
        elif select:
            self._show_error(PromptNotFoundError(select, names))
        elif names:
            self.prompt.value = self._last_used(names) or names[0]
        else:
            self.status.value = _notice_html(
                "The registry has no prompt yet: publish one with %%plprompt NAME in a cell "
                "(or pl_magic.publish(...)), then click ↻"
            )
        if self.prompt.value is not None:
            self._on_prompt()

    def _last_used(self, names: Sequence[str]) -> str | None:
        """The prompt of the newest logged run, when it is still in the registry."""
        try:
            newest = self.client.engine.runlog.query(RunFilter(limit=1), ("prompt_name",))
        except PlMagicError:
            return None
        name = newest[0]["prompt_name"] if newest else None
        return name if name in names else None

    def _on_prompt(self, _: Any = None) -> None:
        name = self.prompt.value
        if name is None:
            return
        registry = self.client.registry
        labels = registry.labels(name)
        versions = registry.versions(name)
        options: list[tuple[str, Any]] = [
            (f"{label} → v{number}", ("label", label)) for label, number in labels.items()
        ]
        options += [
            (f"v{n}" + (" (latest)" if n == versions[-1] else ""), ("version", n))
            for n in reversed(versions)
        ]
        self.version.options = options
        self.version.value = ("label", "prod") if "prod" in labels else ("version", versions[-1])
        self._on_version()

    def _selected(self) -> tuple[int | None, str | None]:
        kind, value = self.version.value or _LATEST
        return (value, None) if kind == "version" else (None, value)

    def _on_version(self, _: Any = None) -> None:
        if self.prompt.value is None or self.version.value is None:
            return
        version, label = self._selected()
        record = self.client.registry.get(self.prompt.value, version=version, label=label)
        model = (record.get("metadata") or {}).get("model") or {}
        params = dict(model.get("parameters") or {})
        self._template_params = params
        if model.get("provider") in supported():
            self.provider.value = model["provider"]
        self._on_provider()
        if model.get("name"):
            self.model.value = model["name"]
        self.temperature.value = float(params.get("temperature", 1.0))
        self.top_p.value = float(params.get("top_p", 1.0))
        self.max_tokens.value = int(
            params.get("max_tokens") or params.get("max_output_tokens") or 256
        )
        self._rebuild_variables(record)

    def _on_provider(self, _: Any = None) -> None:
        models = suggested_models().get(self.provider.value, [])
        self.model.options = models
        if self.model.value not in models:
            self.model.value = models[0] if models else ""

    def _rebuild_variables(self, record: Mapping[str, Any]) -> None:
        import ipywidgets as w

        from ..core.blueprint import input_variables, media_slots

        for box in self.variables.children:
            if isinstance(box, w.Textarea):
                self._typed[box.description] = box.value
        for name, (_, link) in self.media_inputs.items():
            self._typed[name] = link.value
        names = input_variables(record["prompt_template"])
        media_names = set(media_slots(record["prompt_template"]))
        self.media_inputs = {}
        children = []
        for n in names:
            if n in media_names:
                children.append(self._media_field(n))
                continue
            children.append(
                w.Textarea(
                    description=n,
                    value=self._typed.get(n, ""),
                    layout=w.Layout(width="32em", height="3.5em"),
                    style={"description_width": "7em"},
                )
            )
        self.variables.children = children

    def _media_field(self, name: str) -> Any:
        """A media variable's fields: a file upload (an image or a PDF) and, instead, an
        http(s) URL or a path typed in."""
        import ipywidgets as w

        upload = w.FileUpload(
            description=name,
            accept=",".join((*IMAGE_TYPES, PDF)),
            multiple=False,
            tooltip=f"{name}: an image (PNG, JPEG, GIF, WebP) or a PDF",
            layout=w.Layout(width="14em"),
        )
        link = w.Text(
            value=self._typed.get(name, ""),
            placeholder="or an http(s) URL, or a file path",
            layout=w.Layout(width="17.5em"),
        )
        self.media_inputs[name] = (upload, link)
        return w.HBox(
            [w.Label(name, layout=w.Layout(width="7em")), upload, link],
            layout=w.Layout(align_items="center"),
        )

    def _media_values(self) -> dict[str, Any]:
        """Each media variable's value: the uploaded file's bytes, else the text typed."""
        out: dict[str, Any] = {}
        for name, (upload, link) in self.media_inputs.items():
            files = upload.value
            if files:
                first = files[0]
                out[name] = MediaValue(bytes(first["content"]), "upload", str(first["name"]))
            elif link.value.strip():
                out[name] = link.value.strip()
        return out

    # -- running -------------------------------------------------------------------------

    def options(self, repeat_index: int = 0) -> RunOptions:
        """The run the form describes (what Run will do)."""
        version, label = self._selected()
        template_model = (
            self.client.registry.get(self.prompt.value, version=version, label=label).get(
                "metadata"
            )
            or {}
        )
        template_provider = (template_model.get("model") or {}).get("provider")
        provider = self.provider.value
        overrides = self._parameter_overrides(provider)
        overrides.update(parse_pairs(_split_list(self.extras.value), "extra"))
        values: dict[str, Any] = {
            b.description: b.value
            for b in self.variables.children
            if getattr(b, "description", None) not in (None, *self.media_inputs) and b.value != ""
        }
        values.update(self._media_values())
        return RunOptions.build(
            self.prompt.value,
            prompt_version=version,
            prompt_release_label=label,
            input_variables=values,
            provider=provider if provider != template_provider else None,
            model=self.model.value or None,
            model_parameter_overrides=overrides,
            tags=_split_list(self.tags.value),
            metadata=parse_pairs(_split_list(self.metadata.value), "metadata"),
            stream=self.stream.value,
            repeat_index=repeat_index,
        )

    def _parameter_overrides(self, provider: str) -> dict[str, Any]:
        """The form's parameters under the provider's own names, when set or changed."""
        names = get_provider(provider).parameters_for(None, self.model.value or "").names
        chosen = {
            "temperature": self.temperature.value,
            "top_p": self.top_p.value,
            "max_tokens": self.max_tokens.value,
        }
        defaults = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 256}
        out = {}
        for key in _FORM_PARAMETERS:
            from_template = key in self._template_params or (
                key == "max_tokens" and "max_output_tokens" in self._template_params
            )
            if (from_template or chosen[key] != defaults[key]) and key in names:
                out[names[key]] = chosen[key]
        return out

    def start(self) -> None:
        """Run in the background (the Run button). Errors show in the form.

        A run is "in progress" from here until its worker has refreshed the runs table and
        re-enabled the Run button, the worker's last step: a click that arrives once the
        button is enabled always starts a run, and one that arrives before (a script calling
        ``start()``) is refused with a visible status line, never dropped silently.
        """
        with self._state_lock:
            if self._busy:
                self.status.value = _notice_html(
                    "A run is in progress: click Run again when it ends, or click Stop."
                )
                return
            self._busy = True
        try:
            self._cancel.clear()
            self.status.value, self.last_error = "", None
            if self.prompt.value is None:
                raise InvalidInputError(
                    "Choose a prompt in the Prompt list first (none yet? publish one with "
                    "%%plprompt NAME, then click ↻)"
                )
            planned = [self.options(i) for i in range(self.repeat.value)]
            self.run_button.disabled, self.stop_button.disabled = True, False
            self._worker = threading.Thread(
                target=self._run_all, args=(planned,), daemon=True, name="pl_magic-form"
            )
            self._worker.start()
        except BaseException as exc:
            self._end_run()
            if isinstance(exc, PlMagicError):
                self._show_error(exc)
                return
            raise

    def _end_run(self) -> None:
        """Leave the running state: the form takes the next click from here on."""
        with self._state_lock:
            self._busy = False
        self.stop_button.disabled = True
        self.run_button.disabled = False  # last: its change may start the next run at once

    def run(self, timeout: float = 120.0) -> None:
        """Run and wait (what a click does, for scripts and tests)."""
        self.start()
        self.wait(timeout)

    def wait(self, timeout: float = 120.0) -> None:
        """Wait until no run is in progress (a run a click started meanwhile included)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            worker = self._worker
            if worker is not None:
                worker.join(max(0.0, deadline - time.monotonic()))
            if worker is self._worker or time.monotonic() >= deadline:
                return

    def stop(self) -> None:
        """Cancel the run in progress; its partial text stays and it is logged as cancelled."""
        self._cancel.set()

    def _run_all(self, planned: list[RunOptions]) -> None:
        shown: list[str] = []
        try:
            # One run at a time; Stop also ends a run still waiting for its provider's turn.
            with limiter.comparison(1, self._cancel):
                for options in planned:
                    if self._cancel.is_set():
                        break
                    shown.append(self._run_one(options, shown))
        finally:
            try:
                self._refresh_table()
            finally:
                self._end_run()  # last: a click from now on starts the next run

    def _run_one(self, options: RunOptions, before: list[str]) -> str:
        """Stream one run into the reply area; return its final HTML."""
        engine = self.client.engine
        throttle = Throttle(self.refresh_hz)
        text = ""
        started = utcnow_iso()
        previews = ""
        try:
            run = engine.prepare(options)
            previews = thumbnails_html(run.media.values())  # what the run read and checked
            if options.stream:
                stream = engine.stream_prepared(run)
                final = None
                for chunk in stream:
                    if self._cancel.is_set():
                        stream.close()  # logged as cancelled, with the partial text
                        self._note_cancelled(options.prompt_name, started)
                        view = previews + _reply_html(
                            text, "cancelled — the partial reply is logged", "cancelled"
                        )
                        self.reply.value = "".join([*before, view])
                        return view
                    parts = reply_parts(chunk["prompt_blueprint"])
                    text = parts.text
                    final = chunk
                    if throttle.ready():
                        live = previews + _reply_html(text, streaming=True, parts=parts)
                        self.reply.value = "".join([*before, live])
                result = final
            else:
                result = engine.run_prepared(run)  # type: ignore[assignment]
            assert isinstance(result, dict) and result["request_id"]
            self.request_ids.append(result["request_id"])
            parts = reply_parts(result["prompt_blueprint"])
            text = parts.text
            view = previews + _reply_html(text, footer_mod.footer(result), parts=parts)
        except limiter.NotStarted:  # stopped while waiting for the provider: nothing sent
            view = _reply_html("", "stopped before it was sent", "cancelled")
        except PlMagicError as exc:
            if exc.request_id:
                self.request_ids.append(exc.request_id)
            self._show_error(exc)
            partial = getattr(exc, "partial_text", "") or text
            # a failure before any call (a missing variable...) has no reply to show
            view = previews + _reply_html(partial, "failed", "error") if exc.request_id else ""
        except Exception as exc:  # a surprise must not leave the form stuck in "running"
            self.last_error = exc
            self.status.value = error_html(f"{type(exc).__name__}: {exc}")
            view = ""
        self.reply.value = "".join([*before, view])
        return view

    def _note_cancelled(self, prompt_name: str, started: str) -> None:
        """Add the run just stopped to this form's runs: a closed stream returns no result,
        so its id is read from the log (the newest cancelled run of this prompt since the
        click; the form runs one at a time)."""
        rows = self.client.engine.runlog.query(
            RunFilter(prompt=prompt_name, since=started, status="cancelled", limit=1),
            ("request_id",),
        )
        if rows and rows[-1]["request_id"] not in self.request_ids:
            self.request_ids.append(rows[-1]["request_id"])

    # -- the runs table ------------------------------------------------------------------

    @property
    def runs(self) -> pd.DataFrame:
        """This form's runs as a DataFrame (same columns as ``pl_magic.runs()``)."""
        from ..engine.results import frame_from_log_rows
        from ..runlog.sqlite import RunLog

        if not self.request_ids:
            return frame_from_log_rows([])
        return frame_from_log_rows(RunLog().by_ids(self.request_ids))  # either id of a run

    def _refresh_table(self) -> None:
        df = self.runs
        if df.empty:
            self.table.value = ""
            return
        columns = [
            "started_at",
            "prompt_version",
            "release_label",
            "provider",
            "model",
            "status",
            "latency_s",
            "output_tokens",
            "cost_usd",
            "output",
        ]
        older = max(0, len(df) - TABLE_ROWS)
        shown = df[columns].tail(TABLE_ROWS).copy()
        shown["started_at"] = shown["started_at"].dt.strftime("%H:%M:%S")
        shown["output"] = (
            shown["output"].fillna("").map(lambda t: t if len(t) <= 48 else t[:47] + "…")
        )
        shown["latency_s"] = shown["latency_s"].map(_seconds)
        shown["cost_usd"] = shown["cost_usd"].map(footer_mod.format_cost)
        shown = shown.astype(object).where(shown.notna(), "—")  # pandas NA shows as <NA>
        shown = shown.rename(columns={"prompt_version": "version", "release_label": "label"})
        table = shown.to_html(index=False, escape=True, na_rep="—", border=0)
        more = (
            f'<div class="pl-magic-runs-more">{older} earlier runs not shown: form.runs has '
            "them all</div>"
            if older
            else ""
        )
        # A widget's HTML gets none of JupyterLab's table style: one line per run, as %plruns
        # shows it (white-space is inherited from the row).
        table = table.replace('<tr style="text-align: right;">', f"<tr {_ROW_STYLE}>")
        table = table.replace("<tr>", f"<tr {_ROW_STYLE}>").replace("<th>", '<th align="left">')
        table = table.replace('<table class="dataframe">', f"<table {_TABLE_SPACING}>")
        # Scrolls inside the output area rather than widening it past the cell.
        self.table.value = (
            f'<div class="pl-magic-runs {NO_MATH}" style="font-size:0.85em;max-width:100%;'
            f'overflow-x:auto;line-height:1.3">{more}{table}</div>'
        )


_ROW_STYLE = 'style="text-align:left;white-space:nowrap"'
_TABLE_SPACING = 'class="dataframe" cellspacing="0" cellpadding="3"'


def _seconds(value: Any) -> str:
    """Seconds as the footer writes them (``0.36s``); a dash when unknown."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if number != number else f"{number:.2f}s"


def form(name: str | None = None) -> PromptForm:
    """The widget form (``%plform [NAME]`` shows the same): run registry prompts with clicks."""
    if name is not None and not isinstance(name, str):
        raise InvalidInputError("form() takes a prompt name (or nothing)")
    return PromptForm(name)
