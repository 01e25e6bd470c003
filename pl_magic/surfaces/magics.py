"""The notebook surface: ``%%plrun``, ``%plrun``, ``%plruns``, ``%plprompts``, ``%%plprompt``,
``%plpin``.

Thin by design (after jupysql's ``magic.py``): parse what the person wrote, call the
engine or the batch runner, render what comes back. Settings are traitlets, so
``%config PlMagic.concurrency = 4`` works. Errors show as one red line naming the problem
and the fix; ``%config PlMagic.short_errors = False`` shows full tracebacks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Enum, Float, Int, List, Unicode, observe, validate
from traitlets.config import Configurable

from ..core import config, inert
from ..core.errors import InvalidInputError, PlMagicError, in_words_of
from ..core.parsing import parse_body, parse_pairs, parse_target, positive_int
from ..core.types import RunChunk, RunResult
from ..ui import footer as footer_mod
from ..ui.display import GridCell, GridView, RunView
from ..ui.structured_view import ReplyParts, reply_parts

if TYPE_CHECKING:
    from ..client import ModuleClient
    from ..engine.engine import RunOptions


class RunCancelledError(PlMagicError):
    """The person interrupted the run; the partial text stays in the cell."""


def _parse(magic: Callable[..., Any], line: str, name: str) -> Any:
    """The magic's options; a line they cannot be read from is one usage line naming the fix."""
    try:
        return parse_argstring(magic, line)
    except UsageError as exc:  # argparse: an unknown option, a value of the wrong type
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))
        raise UsageError(f"{shown} (see %{name}? for the options)") from None
    except ValueError as exc:  # shlex: an unclosed quote, a trailing backslash
        fix = "close the quote" if "quotation" in str(exc) else "fix the quoting"
        raise UsageError(
            f"Cannot read the options of %{name} ({exc}): {fix} (see %{name}? for the options)"
        ) from None


def _short(exc: PlMagicError) -> PlMagicError:
    """Make IPython show ``exc`` as one red line (IPython honours ``_render_traceback_``)."""
    line = f"\x1b[0;31m{type(exc).__name__}: {in_words_of(str(exc), 'magic')}\x1b[0m"
    exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return exc


@magics_class
class PlMagic(Magics, Configurable):
    """pl_magic's magics and their settings."""

    default_provider = Unicode(
        None, allow_none=True, help="Provider for prompts whose template names no model."
    ).tag(config=True)
    default_model = Unicode(
        None, allow_none=True, help="Model for prompts whose template names no model."
    ).tag(config=True)
    concurrency = Int(8, min=1, help="Runs at once per provider in a comparison.").tag(config=True)
    stream = Bool(True, help="Stream replies into the cell as they arrive.").tag(config=True)
    refresh_rate = Float(15.0, help="Most display updates per second while streaming.").tag(
        config=True
    )
    short_errors = Bool(True, help="Show errors as one line; False shows the full traceback.").tag(
        config=True
    )
    output_format = Enum(
        ["text", "markdown"], "text", help="How replies are shown: escaped text or Markdown."
    ).tag(config=True)
    registry = Enum(
        ["auto", "local", "promptlayer"],
        "auto",
        help="Where prompts come from and runs go: PromptLayer (needs PROMPTLAYER_API_KEY), "
        "the local registry, or auto (PromptLayer when the key is set).",
    ).tag(config=True)
    trusted_base_urls = List(
        Unicode(),
        help="Origins (https://host[:port]) a template's provider_base_url may send your "
        "provider keys to, besides PL_MAGIC_TRUSTED_BASE_URLS.",
    ).tag(config=True)
    cache = Unicode(
        None,
        allow_none=True,
        help="Replay cache: off, record, replay (serve recorded runs, call on a miss) or "
        "replay-only (never call a model); unset, PL_MAGIC_CACHE decides (default off).",
    ).tag(config=True)

    def __init__(self, shell: Any) -> None:
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        shell.configurables.append(self)
        config.set_registry_backend(self.registry)
        config.set_trusted_base_urls(self.trusted_base_urls)
        if self.cache is not None:
            config.set_cache_mode(self.cache)

    @validate("cache")
    def _valid_cache(self, proposal: Any) -> str | None:
        value = proposal["value"]
        return None if value is None else config.check_cache_mode(value, "PlMagic.cache")

    @observe("cache")
    def _cache_changed(self, change: Any) -> None:
        config.set_cache_mode(change["new"])

    @observe("trusted_base_urls")
    def _trusted_base_urls_changed(self, change: Any) -> None:
        config.set_trusted_base_urls(change["new"])

    @observe("registry")
    def _registry_changed(self, change: Any) -> None:
        config.set_registry_backend(change["new"])  # a missing key shows at the next use

    # -- helpers -------------------------------------------------------------------------

    @property
    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None
        return self.shell.user_ns

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except PlMagicError as exc:
            if self.short_errors:
                raise _short(exc) from None
            raise

    def _namespace_value(self, name: str, local_ns: Mapping[str, Any] | None, what: str) -> Any:
        for ns in (local_ns or {}, self._user_ns):
            if name in ns:
                return ns[name]
        raise InvalidInputError(f"{what} {name!r} is not defined in the notebook: define it first")

    # -- %%plrun -------------------------------------------------------------------------

    @no_var_expand
    @needs_local_scope
    @line_cell_magic
    @magic_arguments()
    @argument("target", nargs="?", help="NAME, NAME@label or NAME:3")
    @argument("--version", type=int, help="Prompt version number.")
    @argument("--label", help="Release label (wins over a version).")
    @argument("--provider", help="Run on this provider instead of the template's.")
    @argument("--model", help="Run this model instead of the template's.")
    @argument("--param", action="append", help="Model parameter override k=v (repeatable).")
    @argument("--var", action="append", help="Input variable k=v (repeatable).")
    @argument("--vars", help="Name of a dict in the notebook holding input variables.")
    @argument("--tag", action="append", help="Tag for the run's log (repeatable).")
    @argument("--meta", action="append", help="Metadata k=v for the run's log (repeatable).")
    @argument("--group", type=int, help="Group id (pl_magic.create_group()).")
    @argument("--no-stream", action="store_true", help="Show the reply only when complete.")
    @argument("--no-log", action="store_true", help="Do not log this run.")
    @argument(
        "--cache",
        metavar="MODE",
        help="Replay cache for this cell: off, record, replay or replay-only.",
    )
    @argument("--out", help="Store the result (or the comparison DataFrame) in this variable.")
    @argument("--format", choices=["text", "markdown"], help="Show the reply as text or Markdown.")
    @argument("--versions", help="Compare versions/labels, e.g. 2,3,prod.")
    @argument("--models", help="Compare models, e.g. gpt-4o-mini,anthropic/claude-sonnet-4-6.")
    @argument("--repeat", type=int, default=1, help="Run each combination N times.")
    @argument("--inputs", help="Name of a DataFrame or list of dicts: one run per row.")
    @argument("--concurrency", type=positive_int, help="Runs at once per provider.")
    @argument(
        "--score",
        action="append",
        help="Score each run of a comparison: NAME[:ARG] (contains, regex:PATTERN, "
        "json_schema:VAR, length:1-200...), judge:PROMPT[@label] or a function's name "
        "(repeatable).",
    )
    @argument(
        "--judge-repeat", type=positive_int, default=1, help="Ask each judge N times per run."
    )
    @argument("--expected", help="Column of --inputs with the expected answer (default expected).")
    @argument(
        "--expand",
        action="store_true",
        help="A comparison's DataFrame gets a parsed.<field> column per field of a JSON reply.",
    )
    @argument(
        "--tools",
        metavar="NAME",
        help="Name of a dict of functions in the notebook ({'get_weather': fn}): answer the "
        "model's tool calls with them until it replies without any.",
    )
    @argument(
        "--max-steps",
        type=positive_int,
        default=5,
        help="With --tools: the most model calls (default 5).",
    )
    @argument(
        "--budget",
        type=float,
        help="USD: do not start a comparison that may cost more; skip runs once it is spent.",
    )
    @argument(
        "--fail-fast",
        action="store_true",
        help="Stop a comparison at its first run that fails in a way a retry would not cure.",
    )
    @argument(
        "--batch",
        action="store_true",
        help="Submit the comparison as provider batches (about half the price, within 24 h); "
        "the same cell again attaches to the job.",
    )
    def plrun(self, line: str, cell: str | None = None, local_ns: Any = None) -> Any:
        """Run a registry prompt; the cell body holds its input variables as YAML.

        ``%%plrun NAME@label`` streams one reply into the cell. With ``--versions``,
        ``--models``, ``--repeat`` or ``--inputs`` it runs every combination concurrently,
        shows a live grid, and returns a DataFrame with one row per run.
        """
        args = _parse(self.plrun, line, "plrun")
        return self._guard(lambda: self._plrun(args, cell, local_ns))

    def _plrun(self, args: Any, cell: str | None, local_ns: Any) -> Any:
        name, version, label = parse_target(args.target)
        version = args.version if args.version is not None else version
        label = args.label or label
        variables: dict[str, Any] = {}
        if args.vars:
            given = self._namespace_value(args.vars, local_ns, "--vars")
            if not isinstance(given, Mapping):
                raise InvalidInputError(f"--vars {args.vars!r} must be a dict of input variables")
            variables.update(given)
        variables.update(parse_body(cell))
        variables.update(parse_pairs(args.var, "--var"))
        run_kwargs: dict[str, Any] = {
            "tags": list(args.tag or []),
            "metadata": parse_pairs(args.meta, "--meta"),
            "group_id": args.group,
            "model_parameter_overrides": parse_pairs(args.param, "--param"),
            "log": not args.no_log,
            "default_provider": self.default_provider,
            "default_model": self.default_model,
            "cache": args.cache,
        }
        fmt = args.format or self.output_format
        is_batch = bool(args.versions or args.models or args.inputs or args.repeat != 1)
        is_batch = is_batch or args.budget is not None  # a budget: estimated as a comparison
        is_batch = is_batch or args.batch
        if (args.score or args.expected or args.judge_repeat != 1) and not is_batch:
            raise InvalidInputError(
                "--score, --expected and --judge-repeat score a comparison: add --inputs, "
                "--versions, --models or --repeat (or use pl_magic.score(df, scorers) on "
                "logged runs)"
            )
        if args.fail_fast and not is_batch:
            raise InvalidInputError(
                "--fail-fast stops a comparison: add --inputs, --versions, --models or --repeat"
            )
        if args.expand and not is_batch:
            raise InvalidInputError(
                "--expand adds columns to a comparison's DataFrame: add --inputs, --versions, "
                "--models or --repeat (a single run's JSON shows in the cell)"
            )
        if args.tools and is_batch:
            raise InvalidInputError(
                "--tools runs one prompt through its tool calls: drop --inputs, --versions, "
                "--models, --repeat and --budget (or call pl_magic.run_tools per input)"
            )
        if is_batch:
            df = self._compare(name, version, label, variables, args, run_kwargs)
            if args.expand:
                from ..engine.results import expand_parsed

                df = expand_parsed(df)
            if args.out:  # the grid and its summary line say how it went; the frame is kept
                self._user_ns[args.out] = df
                return None
            from ..ui.compact import RunsFrame

            return RunsFrame(df)
        from ..engine.engine import RunOptions

        options = RunOptions.build(
            name,
            prompt_version=version,
            prompt_release_label=label,
            input_variables=variables,
            provider=args.provider,
            model=args.model,
            stream=self.stream and not args.no_stream,
            **run_kwargs,
        )
        if args.tools:
            tools = self._namespace_value(args.tools, local_ns, "--tools")
            result = self._run_tools(options, fmt, tools, args.max_steps)
        else:
            result = self._run_one(options, fmt)
        if args.out:
            self._user_ns[args.out] = result
        return None

    def _run_one(self, options: RunOptions, fmt: str) -> RunResult | RunChunk:
        from ..ui.media_view import thumbnails_html

        engine = _client().engine
        view = RunView(fmt=fmt, refresh_hz=self.refresh_rate)
        run = engine.prepare(options)
        view.inputs_html = thumbnails_html(run.media.values())  # what the run read and checked
        if not options.stream:
            try:
                result = engine.run_prepared(run)
            except PlMagicError as exc:
                partial = getattr(exc, "partial_text", "")
                if partial:  # the model answered (a reply that is not the JSON asked for)
                    view.start()
                    view.finish(partial, f"failed: {exc}", "error")
                raise
            parts = reply_parts(result["prompt_blueprint"])
            view.start()
            view.finish(
                parts.text,
                footer_mod.footer(result),
                tool_calls=parts.tool_calls,
                structured=parts.structured,
            )
            return result
        stream = engine.stream_prepared(run)
        view.start()
        text = ""
        parts = ReplyParts()
        final: RunChunk | None = None
        try:
            for chunk in stream:
                parts = reply_parts(chunk["prompt_blueprint"])
                text = parts.text
                view.update(text, parts.tool_calls, parts.structured)
                final = chunk
        except KeyboardInterrupt:
            stream.close()
            view.finish(text, "cancelled — the partial reply above is logged", "cancelled")
            raise RunCancelledError("Run cancelled: the partial reply is kept and logged") from None
        except PlMagicError as exc:
            partial = getattr(exc, "partial_text", "") or text
            view.finish(partial, f"failed: {exc}", "error")
            raise
        assert final is not None
        view.finish(
            text, footer_mod.footer(final), tool_calls=parts.tool_calls, structured=parts.structured
        )
        return final

    def _run_tools(
        self, options: RunOptions, fmt: str, tools: Any, max_steps: int
    ) -> RunResult | RunChunk:
        """``--tools``: the tool loop (:mod:`pl_magic.engine.tool_loop`), one view per model
        call, each showing its tool calls with their results; the last call's result."""
        import dataclasses

        from ..engine.tool_loop import ToolStep, check_tools, run_tools

        functions = check_tools(tools)
        client = _client()
        if options.group_id is None:  # every call of the loop in one group
            options = dataclasses.replace(options, group_id=client.group.create())
        views: dict[int, RunView] = {}
        shown: dict[int, ReplyParts] = {}
        finished: set[int] = set()

        def view_for(index: int) -> RunView:
            view = views.get(index)
            if view is None:
                view = views[index] = RunView(fmt=fmt, refresh_hz=self.refresh_rate)
                view.start()
            return view

        def on_chunk(index: int, chunk: RunChunk) -> None:
            parts = shown[index] = reply_parts(chunk["prompt_blueprint"])
            view_for(index).update(parts.text, parts.tool_calls, parts.structured)

        def on_step(step: ToolStep) -> None:
            finished.add(step.index)
            parts = shown[step.index] = reply_parts(step.result["prompt_blueprint"])
            results = {
                m["tool_call_id"]: "".join(b.get("text", "") for b in m["content"])
                for m in step.tool_messages
            }
            view_for(step.index).finish(
                parts.text,
                footer_mod.footer(step.result),
                tool_calls=step.tool_calls or parts.tool_calls,
                structured=parts.structured,
                tool_results=results,
            )

        try:
            return run_tools(client.engine, options, functions, max_steps, on_chunk, on_step)
        except (KeyboardInterrupt, PlMagicError) as exc:
            # the call that failed: shown while it streamed, or (not streamed) not yet shown
            current = max(views) if views and max(views) not in finished else len(views) + 1
            text = getattr(exc, "partial_text", "") or (
                shown[current].text if current in shown else ""
            )
            if isinstance(exc, KeyboardInterrupt):
                if current in views:
                    views[current].finish(
                        text, "cancelled — the partial reply above is logged", "cancelled"
                    )
                raise RunCancelledError(
                    "Run cancelled: the partial reply is kept and logged"
                ) from None
            if current in views or text:
                view_for(current).finish(text, f"failed: {exc}", "error")
            raise

    def _compare(
        self,
        name: str,
        version: int | None,
        label: str | None,
        variables: dict[str, Any],
        args: Any,
        run_kwargs: dict[str, Any],
    ) -> Any:
        from ..engine.batch import Batch, plan
        from ..engine.estimate import before_start, check_budget_value
        from ..engine.judges import judge_factory
        from ..engine.labels import planned_cells
        from ..engine.results import frame_from_progress
        from ..engine.scoring import BUILT_IN, check_expected, parse_scorers

        specs: list[Any] = []
        for spec in args.score or []:  # a function of the notebook, by its name
            found = self._user_ns.get(spec)
            known = spec.partition(":")[0] in BUILT_IN
            specs.append((spec, found) if callable(found) and not known else spec)
        concurrency = args.concurrency if args.concurrency is not None else self.concurrency
        judge = judge_factory(_client().engine, args.judge_repeat, concurrency)
        scorers = parse_scorers(specs, namespace=self._user_ns, judge=judge)
        expected = check_expected(args.expected or "expected")

        versions = args.versions or (label if label else version)
        if args.provider and not args.models:
            models = f"{args.provider}/{args.model}" if args.model else None
            if models is None:
                raise InvalidInputError("--provider needs --model in a comparison: add --model M")
        else:
            models = args.models or (args.model if args.model else None)
        inputs = self._namespace_value(args.inputs, None, "--inputs") if args.inputs else None
        planned = plan(versions, models, args.repeat, inputs, variables)
        batch = Batch(
            _client().engine,
            name,
            planned,
            run_kwargs,
            concurrency,
            scorers=scorers,
            expected=expected,
            budget=check_budget_value(args.budget),
            track_spend=True,
            fail_fast=args.fail_fast,
        )
        if args.batch:  # submitted as provider batches, its progress shown while polling
            from ..api import run_batch

            return run_batch(batch)
        cost = before_start(batch, "--budget ")
        previews = _input_previews(name, planned)
        named = planned_cells(batch)
        cells = [
            GridCell(
                row=(f"row {p.input_index} · " if p.input_index is not None else "") + cell.name,
                column=f"#{p.repeat + 1}",
                inputs_html=previews.get(p.input_index, ""),
            )
            for p, cell in zip(planned, named, strict=True)
        ]
        grid = GridView(cells, refresh_hz=min(self.refresh_rate, 10.0))
        grid.header = f"Estimate: {cost.summary()}"
        grid.spent = 0.0
        if not grid.live:
            print(grid.header)
        grid.start()
        started = time.monotonic()

        def on_change(progress: list[Any], final: bool) -> None:
            for cell, item, expected in zip(cells, progress, named, strict=True):
                cell.text, cell.status = item.text, item.status
                if item.status == "error" and item.error is not None:
                    cell.footer = in_words_of(str(item.error), "magic")
                elif item.status == "skipped":
                    cell.footer = f"skipped: {item.error or 'budget'}"
                elif item.result is not None and item.run.version is None:
                    # asked by label (a split one may differ run by run) or latest: what ran,
                    # when the row's name says another version
                    ran = item.result["prompt_blueprint"]["prompt_version"]
                    cell.footer = f"ran v{ran}" if ran != expected.version else ""
            grid.spent = batch.spent
            grid.refresh(force=final)
            if not grid.live and final:
                done = sum(p.status != "pending" for p in progress)
                print(f"{done}/{len(progress)} runs in {time.monotonic() - started:.1f}s")

        progress = batch.execute(on_change)
        df = frame_from_progress(progress, name)
        grid.summary, grid.summary_status = footer_mod.comparison(df, args.out, "magic")
        if grid.live:
            grid.refresh(force=True)
        else:  # replies and registry names in the line: escaped on a terminal
            print(inert.for_stream(grid.summary, sys.stdout))
        return df

    # -- the form ------------------------------------------------------------------------

    @line_magic
    def plform(self, line: str) -> Any:
        """``%plform [NAME]``: the widget form (the same as ``pl_magic.form(NAME)``)."""
        from .widget import form

        return self._guard(lambda: form(line.strip() or None))

    # -- log and registry ----------------------------------------------------------------

    @line_magic
    @magic_arguments()
    @argument("--prompt", help="Only runs of this prompt.")
    @argument("--since", help="Only runs since this date/time.")
    @argument("--tag", help="Only runs with this tag.")
    @argument("--group", type=int, help="Only runs of this group.")
    @argument("--limit", type=int, help="Only the newest N runs.")
    def plruns(self, line: str) -> Any:
        """The run log as a DataFrame (``%plruns --prompt NAME --limit 20``)."""
        args = _parse(self.plruns, line, "plruns")
        from ..engine.results import runs

        def go() -> Any:
            from ..ui.compact import compact

            _client()
            return compact(runs(args.prompt, args.since, args.tag, args.group, args.limit))

        return self._guard(go)

    @line_magic
    def plprompts(self, line: str) -> Any:
        """Prompts in the registry with their versions and labels, as a DataFrame."""
        import pandas as pd

        def go() -> Any:
            rows = _client().registry.list_prompts()
            df = pd.DataFrame(
                rows,
                columns=[
                    "prompt_name",
                    "latest_version",
                    "versions",
                    "labels",
                    "provider",
                    "model",
                    "type",
                    "input_variables",
                    "tags",
                    "commit_message",
                ],
            )
            from ..ui.compact import compact

            return compact(df.set_index("prompt_name"))

        return self._guard(go)

    @line_magic
    @magic_arguments()
    @argument("--update", action="store_true", help="Re-pin every label to where it points now.")
    def plpin(self, line: str) -> Any:
        """Pin the release labels this notebook used to their versions now, in
        ``prompts.lock.json`` beside the notebook (``%plpin --update`` follows moved labels)."""
        args = _parse(self.plpin, line, "plpin")
        from ..engine.versions import read_pins

        def go() -> None:
            from ..api import pin

            path = pin(update=args.update)
            pins = read_pins() or {}
            shown = ", ".join(
                f"{prompt}@{label} → v{number}"
                for prompt, labels in sorted(pins.items())
                for label, number in sorted(labels.items())
            )
            # prompt and label names come from the registry: escaped on a terminal
            print(
                inert.for_stream(f"Pinned in {path}: {shown or '(no labels used yet)'}", sys.stdout)
            )

        return self._guard(go)

    @no_var_expand
    @line_cell_magic
    @magic_arguments()
    @argument("name", help="Prompt name.")
    @argument("--label", action="append", help="Release label for the new version (repeatable).")
    @argument("--model", help="provider/model for the new version.")
    @argument("--param", action="append", help="Model parameter k=v (repeatable).")
    @argument("--commit", help="Commit message.")
    @argument("--tag", action="append", help="Tag (repeatable).")
    @argument("--version", type=int, help="(showing) the version to show.")
    @argument("--diff", help="(showing) another version or label to diff against.")
    def plprompt(self, line: str, cell: str | None = None) -> Any:
        """``%%plprompt NAME``: publish a new version from a YAML body; ``%plprompt NAME``: show it.

        The body has ``messages:`` (a list of ``{role: text}`` items) or ``template:`` (a
        completion), and optionally ``model:``, ``parameters:``, ``labels:``.
        """
        args = _parse(self.plprompt, line, "plprompt")
        if cell is not None and cell.strip():
            return self._guard(lambda: self._publish(args, cell))
        return self._guard(lambda: self._show(args))

    def _publish(self, args: Any, cell: str) -> None:
        from .authoring import body_from_yaml

        body = body_from_yaml(
            cell,
            prompt_name=args.name,
            labels=args.label,
            model=args.model,
            parameters=parse_pairs(args.param, "--param"),
            commit_message=args.commit,
            tags=args.tag,
        )
        published = _client().templates.publish(body)
        if published is None:  # a client that does not throw: its notice said why
            return
        labels = published.get("release_labels") or []
        print(
            f"Published {published['prompt_name']} version {published['version_number']}"
            + (f" ({', '.join(labels)})" if labels else "")
        )

    def _show(self, args: Any) -> None:
        import difflib

        from .authoring import template_as_text

        name, version, label = parse_target(args.name)
        registry = _client().registry
        record = registry.get(name, version=args.version or version, label=label)
        text = template_as_text(record)
        # template text is from the registry: on a terminal its control characters are escaped
        print(inert.for_stream(text, sys.stdout))
        if args.diff:
            other_v, other_l = (int(args.diff), None) if args.diff.isdigit() else (None, args.diff)
            other = registry.get(name, version=other_v, label=other_l)
            diff = difflib.unified_diff(
                template_as_text(other).splitlines(),
                text.splitlines(),
                fromfile=f"{name} v{other['version']}",
                tofile=f"{name} v{record['version']}",
                lineterm="",
            )
            print(inert.for_stream("\n".join(diff) or "(no differences)", sys.stdout))


def load(ip: Any) -> None:
    """Register the magics with an IPython shell."""
    ip.register_magics(PlMagic)


def unload(ip: Any) -> None:
    """Remove the magics from an IPython shell."""
    config.set_registry_backend("auto")
    magics = ip.magics_manager.magics
    for kind, names in PlMagic.magics.items():
        for name in names:
            magics[kind].pop(name, None)
    ip.magics_manager.registry.pop("PlMagic", None)
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, PlMagic)]


def _input_previews(name: str, planned: Sequence[Any]) -> dict[int | None, str]:
    """Previews of each input row's media (the grid shows them beside the row), read from
    the media slots of the version the row runs first."""
    from ..ui.media_view import input_previews

    templates: dict[tuple[Any, Any], Any] = {}
    out: dict[int | None, str] = {}
    for p in planned:
        if p.input_index in out:
            continue
        key = (p.version, p.label)
        if key not in templates:
            try:
                record = _client().engine.registry.get(name, version=p.version, label=p.label)
                templates[key] = record["prompt_template"]
            except PlMagicError:  # the run itself will say why
                templates[key] = {}
        out[p.input_index] = input_previews(templates[key], p.input_variables)
    return out


def _client() -> ModuleClient:
    # The client, and with it the engine, loads at the first magic that runs, not at
    # %load_ext: loading the extension stays cheap.
    from ..client import default_client

    return default_client()
