"""``pl-magic``: run registry prompts from a terminal, manage the registry and the local model.

    pl-magic run NAME [--label L | --version N] [--var k=v ...] [--param k=v ...]
                      [--provider P --model M] [--tag T ...] [--no-stream]
    pl-magic prompts list | show NAME | push FILE.yaml | export NAME | import FILE.json
    pl-magic labels set NAME LABEL VERSION | delete NAME LABEL
    pl-magic runs [--limit N] [--prompt NAME] [--csv FILE]
    pl-magic replay export FILE [--prompt NAME] | import FILE
    pl-magic batches list [--limit N] | wait ID [--timeout S] [--csv FILE] | cancel ID
    pl-magic local start | stop | status

``run`` streams the reply to stdout and prints the footer line (version, model, time to
first token, latency, tokens, cost, request id) on stderr, so that ``> reply.txt`` keeps
just the reply. Every error is one line ``pl-magic: error: ...`` on stderr; the exit code
is 2 for a bad argument, 1 for anything else that failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..core import __version__
from ..core.errors import (
    InvalidInputError,
    MissingVariablesError,
    PlMagicError,
    in_words_of,
    redact,
)
from ..core.inert import csv_cell, for_stream, json_text
from ..core.parsing import positive_int

PROG = "pl-magic"
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line argparse could not understand (reported as one line, exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse without the multi-line usage dump: an error is one line that names the fix."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# -- helpers --------------------------------------------------------------------------------


def _out(text: str = "") -> None:
    print(for_stream(text, sys.stdout), flush=True)


def _err(text: str) -> None:
    print(for_stream(text, sys.stderr), file=sys.stderr, flush=True)


def _error(exc: BaseException) -> None:
    """An error as one line: control and invisible characters (an argument may hold them)
    are shown escaped, so the line stays one line and shows what was typed."""
    said = in_words_of(str(exc), "cli")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in said)
    _err(f"{PROG}: error: {text}")


def parse_vars(items: Sequence[str] | None) -> dict[str, str]:
    """``--var k=v`` items → input variables (values stay text, as typed)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"--var {item!r} must look like name=value, e.g. --var name=Ada"
            )
        out[key.strip()] = value
    return out


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``--param k=v`` items → model parameters (values read as YAML scalars: 0.2 → 0.2)."""
    import yaml

    from ..core.parsing import load_yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"--param {item!r} must look like name=value, e.g. --param temperature=0.2"
            )
        try:
            out[key.strip()] = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _client() -> Any:
    from ..client import default_client

    return default_client()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _version_ranges(numbers: Sequence[int]) -> str:
    if not numbers:
        return "—"
    if list(numbers) == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 1:
        return f"{numbers[0]}-{numbers[-1]}"
    return ",".join(map(str, numbers))


# -- run ------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Run a prompt, streaming the reply to stdout; the footer goes to stderr."""
    from ..ui.footer import footer, result_reply_text

    kwargs: dict[str, Any] = {
        "prompt_version": args.version,
        "prompt_release_label": args.label,
        "input_variables": parse_vars(args.var),
        "model_parameter_overrides": parse_params(args.param),
        "tags": args.tag or None,
        "provider": args.provider,
        "model": args.model,
    }
    client = _client()
    if args.no_stream:
        result = client.run(args.name, stream=False, **kwargs)
        text = result_reply_text(result)
        _out(text)
        _err(footer(result, full_request_id=True))
        return 0
    stream = client.run(args.name, stream=True, **kwargs)
    shown = ""
    final: dict[str, Any] | None = None
    try:
        for chunk in stream:
            text = result_reply_text(chunk)
            delta = text[len(shown) :] if text.startswith(shown) else text
            if delta:  # (a control character is one code point: a delta never splits one)
                sys.stdout.write(for_stream(delta, sys.stdout))
                sys.stdout.flush()
            shown = text
            final = chunk
    except KeyboardInterrupt:
        stream.close()  # the engine logs the run as cancelled, with the partial reply
        if shown:
            _out()
        _err(f"{PROG}: cancelled (the partial reply is logged)")
        return EXIT_INTERRUPTED
    except BaseException:
        if shown:
            _out()  # end the partial reply's line before the one-line error
        raise
    _out()
    if final is not None:
        _err(footer(final, full_request_id=True))
    return 0


# -- prompts --------------------------------------------------------------------------------


def cmd_prompts_list(args: argparse.Namespace) -> int:
    """List every prompt with its versions, labels and model."""
    rows = _client().registry.list_prompts()
    if not rows:
        _out("No prompts yet: publish one with `pl-magic prompts push FILE.yaml`")
        return 0
    table = []
    for p in rows:
        labels = ", ".join(f"{k}→v{v}" for k, v in sorted(p["labels"].items())) or "—"
        model = f"{p['provider']}/{p['model']}" if p.get("provider") else "—"
        variables = ", ".join(p.get("input_variables") or []) or "—"
        table.append([p["prompt_name"], _version_ranges(p["versions"]), labels, model, variables])
    _out(_table(table, ["NAME", "VERSIONS", "LABELS", "MODEL", "VARIABLES"]))
    return 0


def cmd_prompts_show(args: argparse.Namespace) -> int:
    """Show one version of a prompt (latest unless --version/--label)."""
    from .authoring import template_as_text

    record = _client().registry.get(args.name, version=args.version, label=args.label)
    record.pop("release_label", None)
    if args.json:
        _out(json_text(record))
    else:
        _out(template_as_text(record))
    return 0


def cmd_prompts_push(args: argparse.Namespace) -> int:
    """Publish a new version from a YAML file."""
    from .authoring import body_from_file

    body = body_from_file(args.file, labels=args.label, commit_message=args.commit)
    published = _client().templates.publish(body)
    labels = published.get("release_labels") or []
    _out(
        f"Published {published['prompt_name']} version {published['version_number']}"
        + (f" ({', '.join(labels)})" if labels else "")
    )
    return 0


def cmd_prompts_export(args: argparse.Namespace) -> int:
    """Print (or write) PromptLayer JSON for every version of a prompt, or one version."""
    records = _client().registry.export(args.name, version=args.version)
    text = json_text(records)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        _err(f"Wrote {len(records)} version(s) of {args.name} to {args.out}")
    else:
        _out(text)
    return 0


def _records_in(data: Any) -> list[dict[str, Any]]:
    """PromptLayer JSON as exported: a list, one record, or ``{"items": [...]}``."""
    if isinstance(data, dict):
        for key in ("items", "prompt_templates", "templates"):
            if isinstance(data.get(key), list):
                return list(data[key])
        return [data]
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return data
    raise InvalidInputError(
        "The import file must hold PromptLayer template JSON: a record or a list of records"
    )


def cmd_prompts_import(args: argparse.Namespace) -> int:
    """Import PromptLayer template JSON (as `prompts export` writes it) as new versions."""
    from ..registry.local import LocalRegistry

    path = Path(args.file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidInputError(
            f"{str(path)!r} is not JSON ({exc}): give a file `pl-magic prompts export` wrote"
        ) from None
    _client()  # the backend check (PROMPTLAYER_API_KEY)
    # straight to the registry: an import is a write, it must not seed the starters first
    results = LocalRegistry().import_templates(_records_in(data))
    for r in results:
        labels = r.get("release_labels") or []
        _out(
            f"Imported {r['prompt_name']} as version {r['version_number']}"
            + (f" ({', '.join(labels)})" if labels else "")
        )
    return 0


# -- labels ---------------------------------------------------------------------------------


def cmd_labels_set(args: argparse.Namespace) -> int:
    """Point a release label at a version (creating or moving it)."""
    _client().registry.set_label(args.name, args.label, args.version)
    _out(f"{args.name}: {args.label} → v{args.version}")
    return 0


def cmd_labels_delete(args: argparse.Namespace) -> int:
    """Remove a release label."""
    _client().registry.delete_label(args.name, args.label)
    _out(f"{args.name}: removed {args.label}")
    return 0


# -- runs -----------------------------------------------------------------------------------

_RUN_COLUMNS_SKIPPED_IN_CSV = ("raw_response",)


def _one_line(text: Any, width: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def cmd_runs(args: argparse.Namespace) -> int:
    """The latest runs (oldest first), or every matching run written to a CSV file."""
    from ..runlog.sqlite import RunFilter, RunLog
    from ..ui.footer import format_cost, short_id

    _client()  # the backend check, and the log of the same PL_MAGIC_HOME
    limit = args.limit if args.limit is not None else (None if args.csv else 20)
    rows = RunLog().query(RunFilter(prompt=args.prompt or None, limit=limit))
    if args.csv:
        import csv

        columns = [c for c in (rows[0] if rows else {}) if c not in _RUN_COLUMNS_SKIPPED_IN_CSV]
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
        _err(f"Wrote {len(rows)} run(s) to {args.csv}")
        return 0
    if not rows:
        _out("No runs yet: try `pl-magic run capital-city --label prod --var country=France`")
        return 0
    table = []
    for r in rows:
        title = f"{r['prompt_name']} v{r['prompt_version']}"
        if r.get("release_label"):
            title += f" ({r['release_label']})"
        tokens = (
            f"{r['input_tokens']}→{r['output_tokens']}"
            if r.get("input_tokens") is not None or r.get("output_tokens") is not None
            else "—"
        )
        latency = f"{r['latency_s']:.2f}s" if r.get("latency_s") is not None else "—"
        table.append(
            [
                str(r["started_at"])[:19].replace("T", " "),
                title,
                f"{r['provider']}/{r['model']}",
                r["status"],
                latency,
                tokens,
                format_cost(r.get("cost_usd")),
                short_id(r["request_id"]),
                _one_line(r.get("output") or r.get("error_message"), 40),
            ]
        )
    header = ["STARTED (UTC)", "PROMPT", "MODEL", "STATUS", "LATENCY", "TOKENS", "COST"]
    _out(_table(table, [*header, "REQUEST", "OUTPUT"]))
    return 0


# -- batches --------------------------------------------------------------------------------


def cmd_batches_list(args: argparse.Namespace) -> int:
    """The batch jobs, newest first, with their status and counts (from the log)."""
    from ..engine.batch_jobs import listing

    jobs = listing(_client().engine, args.limit)
    if not jobs:
        _out("No batch jobs yet: pl_magic.run_many(..., batch=True) or %%plrun ... --batch")
        return 0
    table = [
        [
            j["job_id"],
            _one_line(j["prompt_name"], 30),
            j["status"],
            f"{j['ok']}/{j['runs']}",
            str(j["error"]),
            str(j["cancelled"]),
            str(j["pending"]),
            str(j["submitted_at"])[:19].replace("T", " "),
            _one_line(j["provider_jobs"], 80),
        ]
        for j in jobs
    ]
    header = ["JOB", "PROMPT", "STATUS", "OK", "FAILED", "CANCELLED", "PENDING"]
    _out(_table(table, [*header, "SUBMITTED (UTC)", "PROVIDER JOBS"]))
    return 0


def cmd_batches_wait(args: argparse.Namespace) -> int:
    """Wait for a batch job, logging its results as they arrive; its summary on stdout."""
    from ..engine.batch_jobs import job_of

    job = job_of(_client().engine, args.id)
    status = job.wait(
        timeout=args.timeout,
        on_progress=lambda s: _err(s.summary()),
        interruptible=False,
    )
    if args.csv:
        job.frame().to_csv(args.csv, index=False)
        _err(f"Wrote {status.total} run(s) to {args.csv}")
    _out(status.summary())
    if not status.finished:
        _err(f"{PROG}: batch job {job.id} is still running: `{PROG} batches wait {job.id}` later")
        return EXIT_FAILED
    return 0


def cmd_batches_cancel(args: argparse.Namespace) -> int:
    """Ask the providers to cancel a batch job."""
    from ..engine.batch_jobs import job_of

    status = job_of(_client().engine, args.id).cancel()
    _out(status.summary())
    return 0


# -- local ----------------------------------------------------------------------------------


def cmd_replay_export(args: argparse.Namespace) -> int:
    """Write the recorded runs a replay serves to FILE (JSON Lines), to ship with a notebook."""
    from ..engine.replay import export_recordings
    from ..runlog.sqlite import RunLog

    _client()  # the backend check, and the log of the same PL_MAGIC_HOME
    count = export_recordings(args.file, RunLog(), args.prompt or None)
    _err(f"Wrote {count} recorded run(s) to {args.file}")
    return 0


def cmd_replay_import(args: argparse.Namespace) -> int:
    """Add the recorded runs of FILE (as `replay export` wrote it) to the run log."""
    from ..engine.replay import import_recordings
    from ..runlog.sqlite import RunLog

    _client()
    added, present = import_recordings(args.file, RunLog())
    _out(f"Imported {added} recorded run(s)" + (f" ({present} already there)" if present else ""))
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    """Start, stop or report the local model's server."""
    from ..core import local_target
    from ..providers import local as local_model

    if args.action == "start":
        state, started = local_model.start()
        verb = "Started" if started else "Already running:"
        _out(
            f"{verb} the local model {state.model} at {state.url} (pid {state.pid}); "
            f"stop it with `{PROG} local stop`"
        )
    elif args.action == "stop":
        stopped = local_model.stop()
        if stopped is None:
            _out("The local model was not running")
        else:
            _out(f"Stopped the local model (pid {stopped.pid})")
    else:
        st = local_model.status()
        if st.running and st.state is not None:
            health = "running" if st.answering else "running but not answering"
            _out(
                f"{health} · {st.state.url} · pid {st.state.pid} · {st.state.model} · "
                f"since {st.state.started_at[:19].replace('T', ' ')} UTC"
            )
        elif st.stale is not None:
            _out(f"stopped (removed the stale record of pid {st.stale.pid})")
        else:
            _out("stopped")
        own = os.environ.get(local_target.ENV_BASE_URL)
        if own:
            _out(f"local-model prompts run on {own} ({local_target.ENV_BASE_URL})")
    return 0


# -- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``pl-magic`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Run versioned registry prompts; manage the registry and the local model.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run a prompt, streaming the reply")
    run.add_argument("name", help="prompt name")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--label", help="release label to run (e.g. prod)")
    which.add_argument("--version", type=positive_int, help="version number to run")
    run.add_argument("--var", action="append", metavar="K=V", help="input variable (repeatable)")
    run.add_argument("--param", action="append", metavar="K=V", help="model parameter override")
    run.add_argument("--provider", help="run on another provider (openai, anthropic, google...)")
    run.add_argument("--model", help="run on another model")
    run.add_argument("--tag", action="append", help="tag for the run log (repeatable)")
    run.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    run.set_defaults(func=cmd_run)

    prompts = commands.add_parser("prompts", help="list, show, push, export, import prompts")
    sub = prompts.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="every prompt with its versions and labels")
    p.set_defaults(func=cmd_prompts_list)
    p = sub.add_parser("show", help="one version of a prompt")
    p.add_argument("name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=positive_int)
    which.add_argument("--label")
    p.add_argument("--json", action="store_true", help="PromptLayer JSON instead of text")
    p.set_defaults(func=cmd_prompts_show)
    p = sub.add_parser("push", help="publish a new version from a YAML file")
    p.add_argument("file", help="prompt YAML (see pl_magic.surfaces.authoring)")
    p.add_argument("--label", action="append", help="release label for the new version")
    p.add_argument("--commit", help="commit message")
    p.set_defaults(func=cmd_prompts_push)
    p = sub.add_parser("export", help="PromptLayer JSON of a prompt's versions")
    p.add_argument("name")
    p.add_argument("--version", type=positive_int, help="only this version")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_prompts_export)
    p = sub.add_parser("import", help="import PromptLayer JSON as new versions")
    p.add_argument("file")
    p.set_defaults(func=cmd_prompts_import)

    labels = commands.add_parser("labels", help="set or delete release labels")
    sub = labels.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("set", help="point LABEL of NAME at VERSION")
    p.add_argument("name")
    p.add_argument("label")
    p.add_argument("version", type=positive_int)
    p.set_defaults(func=cmd_labels_set)
    p = sub.add_parser("delete", help="remove LABEL of NAME")
    p.add_argument("name")
    p.add_argument("label")
    p.set_defaults(func=cmd_labels_delete)

    runs = commands.add_parser("runs", help="the latest logged runs")
    runs.add_argument("--limit", type=positive_int, help="how many (default 20)")
    runs.add_argument("--prompt", help="only runs of this prompt")
    runs.add_argument("--csv", metavar="FILE", help="write the runs (all, unless --limit) as CSV")
    runs.set_defaults(func=cmd_runs)

    replay = commands.add_parser("replay", help="ship recorded runs to replay a notebook")
    sub = replay.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("export", help="the recorded runs a replay serves, as JSON Lines")
    p.add_argument("file")
    p.add_argument("--prompt", help="only runs of this prompt")
    p.set_defaults(func=cmd_replay_export)
    p = sub.add_parser("import", help="add recorded runs (JSON Lines) to the run log")
    p.add_argument("file")
    p.set_defaults(func=cmd_replay_import)

    batches = commands.add_parser("batches", help="list, wait for or cancel batch jobs")
    sub = batches.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="the batch jobs with their status and counts")
    p.add_argument("--limit", type=positive_int, help="only the newest N")
    p.set_defaults(func=cmd_batches_list)
    p = sub.add_parser("wait", help="wait for a job, logging its results as they arrive")
    p.add_argument("id", help="the job's id (or a unique prefix of it)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop waiting after S seconds")
    p.add_argument("--csv", metavar="FILE", help="write the job's runs as CSV")
    p.set_defaults(func=cmd_batches_wait)
    p = sub.add_parser("cancel", help="ask the providers to cancel a job")
    p.add_argument("id", help="the job's id (or a unique prefix of it)")
    p.set_defaults(func=cmd_batches_cancel)

    local = commands.add_parser("local", help="the local model's server")
    local.add_argument("action", choices=("start", "stop", "status"))
    local.set_defaults(func=cmd_local)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. Returns the exit code (0 ok, 1 failed, 2 bad usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_FAILED
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except (InvalidInputError, MissingVariablesError) as exc:  # what was typed is wrong
        _error(exc)
        return EXIT_USAGE
    except PlMagicError as exc:
        _error(exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (| head): quiet, and no second error when Python flushes it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        _err(f"{PROG}: error: cannot access{where}: {exc.strerror or exc}")
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("PL_MAGIC_DEBUG"):
            raise
        detail = " ".join(redact(str(exc)).split())[:300]
        _err(
            f"{PROG}: error: unexpected {type(exc).__name__}: {detail} "
            "(set PL_MAGIC_DEBUG=1 for the traceback)"
        )
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
