"""Runs as pandas DataFrames: one row per run, the same columns everywhere.

``runs()`` reads the log; ``run_many()`` returns the rows of a comparison in the same
shape; ``compare()`` pivots outputs side by side with summary rows; ``plot()`` charts a
metric. The log is read through :class:`pl_magic.runlog.sqlite.RunLog` (no SQL here).
pandas is imported here, on first use, never by ``import pl_magic``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidInputError, first_message, shown
from ..providers import structured_output
from ..runlog.scores import AGREEMENT_SUFFIX, ScoreLog, ScoreRow
from ..runlog.sqlite import RunFilter, RunLog
from .labels import cell_label, version_label
from .scoring import Scorer, check_expected, parse_scorers, score_runs

if TYPE_CHECKING:
    import pandas as pd

    from .batch import Progress
    from .engine import Engine

#: Columns of every runs DataFrame, in order (``var.<name>`` columns go after ``parameters``).
#: ``prompt_version`` is the version that ran (a release label's, when one was asked for);
#: ``remote_request_id`` is PromptLayer's id of the run once it is there (else missing);
#: ``batch_id`` the batch job of a run of one (``pl_magic.batches()``; else missing).
COLUMNS = (
    "request_id",
    "started_at",
    "prompt_name",
    "prompt_version",
    "release_label",
    "provider",
    "model",
    "parameters",
    "output",
    "parsed",
    "tool_calls",
    "status",
    "error",
    "error_category",
    "ttft_s",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "tags",
    "metadata",
    "group_id",
    "repeat",
    "cached",
    "remote_request_id",
    "batch_id",
)
#: The log columns a runs DataFrame is built from, in order.
LOG_COLUMNS = (
    "request_id",
    "started_at",
    "prompt_name",
    "prompt_version",
    "release_label",
    "provider",
    "model",
    "parameters",
    "input_variables",
    "output",
    "reply_tool_calls",
    "status",
    "error_message",
    "error_category",
    "ttft_s",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "tags",
    "metadata",
    "group_id",
    "repeat_index",
    "cached_from",
    "remote_request_id",
    "batch_id",
)
#: Frame column ← log column, where the names differ.
_RENAMED = {
    "error": "error_message",
    "repeat": "repeat_index",
    "cached": "cached_from",
    "tool_calls": "reply_tool_calls",
}
#: Frame columns decoded from JSON text.
_JSON_FRAME_COLUMNS = ("parameters", "tags", "metadata", "tool_calls")
#: Frame columns computed from others, not read from the log.
_COMPUTED = frozenset({"parsed"})
#: The prefix of the columns :func:`expand_parsed` adds (one per top-level field).
PARSED_PREFIX = "parsed."
#: A variable a run did not have (as DataFrame.from_records leaves it).
_MISSING = float("nan")


def _frame(records: list[dict[str, Any]], variables: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    columns = [*COLUMNS[:8], *(f"var.{v}" for v in variables), *COLUMNS[8:]]
    return _typed(pd.DataFrame.from_records(records, columns=columns))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Timestamps, nullable integers and floats where the runs frame has them."""
    import pandas as pd

    if not df.empty:
        df["started_at"] = pd.to_datetime(df["started_at"], format="ISO8601", utc=True)
    for col in ("prompt_version", "input_tokens", "output_tokens", "group_id", "repeat"):
        df[col] = df[col].astype("Int64")
    for col in ("ttft_s", "latency_s", "cost_usd"):
        df[col] = df[col].astype("float64")
    # served by the replay cache: the log's cached_from (the recorded run's id) is set
    df["cached"] = df["cached"].notna().astype(bool)
    return df


def _row(values: Mapping[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    out = {k: values.get(k) for k in COLUMNS}
    for name, value in variables.items():
        out[f"var.{name}"] = value
    return out


def _variable_names(all_vars: Iterable[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for values in all_vars:
        for name in values:
            names.setdefault(name, None)
    return list(names)


def parsed_reply(parameters: Any, output: Any, status: Any) -> Any:
    """The parsed JSON of a run whose ``response_format`` asks for JSON and that ended ok;
    None for any other run (plain text, a failure, an invalid reply)."""
    if status != "ok" or not isinstance(parameters, Mapping) or not isinstance(output, str):
        return None
    if structured_output(parameters) is None:
        return None
    try:
        return json.loads(output)
    except (ValueError, RecursionError):  # (a reply nested past Python's stack: not read)
        return None


def _parsed_column(
    parameters: Sequence[Any], outputs: Sequence[Any], statuses: Sequence[Any]
) -> list[Any]:
    return [
        parsed_reply(p, o, s) if p else None
        for p, o, s in zip(parameters, outputs, statuses, strict=True)
    ]


def expand_parsed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with one ``parsed.<field>`` column per top-level field of its runs' structured
    replies, after ``parsed``: the fields of each run's ``response_format`` schema (in the
    schema's order), and for runs without a schema (``json_object``) the keys their replies
    have. A run without the field (or without a parsed reply) has None there."""
    import pandas as pd

    if "parsed" not in df.columns:
        raise InvalidInputError("expand takes a runs DataFrame (from run_many() or runs())")
    fields: dict[str, None] = {}
    for parameters, parsed in zip(df["parameters"], df["parsed"], strict=True):
        structured = structured_output(parameters) if isinstance(parameters, Mapping) else None
        if structured is None:
            continue
        properties = (structured.schema or {}).get("properties")
        if isinstance(properties, Mapping) and properties:
            fields.update(dict.fromkeys(str(name) for name in properties))
        elif isinstance(parsed, Mapping):
            fields.update(dict.fromkeys(str(name) for name in parsed))
    out = df.copy()
    at = list(out.columns).index("parsed") + 1
    for offset, name in enumerate(fields):
        column = f"{PARSED_PREFIX}{name}"
        if column in out.columns:
            continue
        values = [p.get(name) if isinstance(p, Mapping) else None for p in out["parsed"]]
        out.insert(at + offset, column, pd.Series(values, index=out.index, dtype=object))
    return out


def runs(
    prompt: str | None = None,
    since: Any = None,
    tag: str | None = None,
    group_id: int | None = None,
    limit: int | None = None,
    status: str | None = None,
    expand: bool = False,
) -> pd.DataFrame:
    """Logged runs as a DataFrame, newest last. Filters combine with AND.

    ``since``: a datetime, a date string (``"2026-11-01"``) or a pandas Timestamp;
    ``limit``: the newest N runs. ``parsed`` holds the JSON of a structured reply (a run
    whose ``response_format`` asks for JSON), ``tool_calls`` the calls a reply made;
    ``expand=True`` adds a ``parsed.<field>`` column per top-level field (see
    :func:`expand_parsed`).
    """
    for key, value in (("prompt", prompt), ("tag", tag), ("status", status)):
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(
                f"runs({key}=...) takes one name as a string, not {type(value).__name__}: "
                f"e.g. runs({key}='greet')"
                if key != "status"
                else f"runs(status=...) takes a string such as 'ok' or 'error', not "
                f"{type(value).__name__}"
            )
    if group_id is not None and (isinstance(group_id, bool) or not isinstance(group_id, int)):
        raise InvalidInputError(
            f"runs(group_id=...) takes a group id (a whole number from create_group()), not "
            f"{shown(group_id, 40)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInputError(
            f"runs(limit=...) takes a whole number of runs, not {shown(limit, 40)}: e.g. limit=20"
        )
    filters = RunFilter(
        prompt=prompt,
        since=None if since is None else _iso(since),
        tag=tag,
        group_id=group_id,
        status=status,
        limit=limit,
    )
    log = RunLog()
    columns = log.columns(filters, LOG_COLUMNS)
    df = with_scores(_frame_from_columns(columns, len(columns["request_id"])), log)
    return expand_parsed(df) if expand else df


def frame_from_log_rows(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Log rows (as stored: JSON text columns) → the runs DataFrame."""
    columns = {c: [r.get(c) for r in rows] for c in LOG_COLUMNS}
    return _frame_from_columns(columns, len(rows))


def frame_from_log_columns(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """Log columns (each of :data:`LOG_COLUMNS`, as stored, all of one length) → the runs
    DataFrame, built column by column."""
    return _frame_from_columns(columns, len(columns["request_id"]))


def _json_column(texts: Sequence[str | None], empty: str) -> list[Any]:
    """Decode a column of JSON texts (``empty`` stands for NULL or '').

    One ``json.loads`` of the whole column as an array runs at C speed; 10,000 calls of
    ``json.loads`` cost more than reading the rows. Each cell is JSON written by
    :func:`pl_magic.core.store.dumps`; should one not be, the column is decoded cell by cell.
    """
    cells = [t or empty for t in texts]
    try:
        values = json.loads("[" + ",".join(cells) + "]")
        if isinstance(values, list) and len(values) == len(cells):
            return values
    except ValueError:
        pass
    return [json.loads(cell) for cell in cells]


def _frame_from_columns(columns: Mapping[str, Sequence[Any]], count: int) -> pd.DataFrame:
    """The runs DataFrame from log columns (JSON text as stored), built column by column."""
    import pandas as pd

    if not count:
        return _frame([], [])
    variables = _json_column(columns["input_variables"], "{}")
    names = _variable_names(variables)
    data: dict[str, list[Any]] = {}
    for col in COLUMNS:
        if col in _COMPUTED:
            continue
        source = columns[_RENAMED.get(col, col)]
        data[col] = _json_column(source, "null") if col in _JSON_FRAME_COLUMNS else list(source)
        if col == "parameters":  # the var.* columns come next
            for name in names:
                data[f"var.{name}"] = [v.get(name, _MISSING) for v in variables]
    data["parsed"] = _parsed_column(data["parameters"], data["output"], data["status"])
    frame_columns = [*COLUMNS[:8], *(f"var.{v}" for v in names), *COLUMNS[8:]]
    return _typed(pd.DataFrame(data, columns=frame_columns))


def frame_from_progress(progress: Sequence[Progress], prompt_name: str) -> pd.DataFrame:
    """A comparison's rows: the log row of each run that reached the provider, else the plan."""
    ids = [p.request_id for p in progress if p.request_id]  # local ids or PromptLayer's
    logged = RunLog().by_either_id(ids, LOG_COLUMNS)
    # What a planned cell resolved to (version, provider, model), from any of its runs that
    # reached the log: a run of the same cell that never did (bad variables, a budget) is
    # shown in that cell rather than in one of its own.
    resolved: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in progress:
        row = logged.get(str(p.request_id or ""))
        if row is not None:
            resolved.setdefault(_planned_cell(p), row)
    records, all_vars = [], []
    for p in progress:
        if p.status == "pending":
            continue  # never started (interrupted): not a run
        variables = p.run.input_variables
        log_row = logged.get(str(p.request_id or ""))
        if log_row is not None:
            variables = json.loads(log_row["input_variables"] or "{}")
            values = dict(log_row)
            values["error"] = log_row.get("error_message")
            values["repeat"] = log_row.get("repeat_index")
            values["cached"] = log_row.get("cached_from")
            for col in ("parameters", "tags", "metadata"):
                values[col] = json.loads(values[col]) if values.get(col) else values.get(col)
            calls = log_row.get("reply_tool_calls")
            values["tool_calls"] = json.loads(calls) if calls else None
            values["parsed"] = parsed_reply(
                values["parameters"], values["output"], values["status"]
            )
        else:  # failed before any call (bad variables, missing key...): nothing was logged
            cell = resolved.get(_planned_cell(p), {})
            values = {
                "prompt_name": prompt_name,
                "prompt_version": cell.get("prompt_version", p.run.version),
                "release_label": p.run.label,
                "provider": cell.get("provider", p.run.provider),
                "model": cell.get("model", p.run.model),
                "output": p.text,
                "status": p.status,
                "error": str(p.error) if p.error else None,
                "error_category": getattr(p.error, "category", None) or "input",
                "repeat": p.run.repeat,
            }
        all_vars.append(variables)
        records.append(_row(values, variables))
    return with_scores(_frame(records, _variable_names(all_vars)))


def _planned_cell(p: Progress) -> tuple[Any, ...]:
    """The cell a run was planned in: its version or label, provider and model as asked."""
    return (p.run.version, p.run.label, p.run.provider, p.run.model)


def with_scores(
    df: pd.DataFrame, log: RunLog | None = None, local: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """``df`` with a ``score.<name>`` column per score its runs have (NaN where a run has
    none or its scorer failed), read with one query for all the runs.

    ``local``: the local id of each of the frame's ids (given when the frame holds
    PromptLayer's ids); without it the frame's ids are the local ones.
    """
    if df.empty or "request_id" not in df.columns:
        return df
    db = (log or RunLog()).db
    scores = ScoreLog(db)
    if scores.empty():  # runs() reads scores on every call: most logs have none
        return df
    if local is None:
        keys = df["request_id"]
        ids = [i for i in keys if isinstance(i, str)]
    else:
        keys = df["request_id"].map(lambda i: local.get(_id_text(i) or ""))
        ids = list(local.values())
    values = scores.values(ids)
    for name, by_id in values.items():
        df[f"score.{name}"] = keys.map(by_id).astype("float64")
    return df


def _id_text(value: Any) -> str | None:
    """A frame's request id as the log stores it: a local id, or PromptLayer's number
    (an integer, or a float when the column also holds NaN); None for a missing one."""
    if isinstance(value, str):
        return value or None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    try:
        return str(int(value))  # numpy's integers
    except (TypeError, ValueError):
        return None


def score_frame(
    df: pd.DataFrame, scorers: Any, expected: str = "expected", engine: Engine | None = None
) -> pd.DataFrame:
    """Score again the logged runs of a runs DataFrame (no model call); return a copy with
    the ``score.<name>`` columns.

    Each run's output and input variables are read from the log; its expected answer from
    the frame's ``expected`` column if it has one, else the run's variable of that name.
    The frame's ids may be local ones or PromptLayer's: the scores are stored under the
    runs' local ids. Runs that did not end ok, or are not in the log, are not scored.
    ``engine``: the scores go through :meth:`Engine.record_scores` (with the PromptLayer
    backend they are sent there too); without one they are stored in the local log only.
    """
    import pandas as pd

    expected = check_expected(expected)
    if not isinstance(df, pd.DataFrame) or "request_id" not in df.columns:
        raise InvalidInputError(
            "score() takes a runs DataFrame (from run_many() or runs()) and scorers, e.g. "
            "pl_magic.score(df, ['contains'])"
        )
    parsed: list[Scorer] = parse_scorers(scorers)
    if not parsed:
        raise InvalidInputError("score() needs at least one scorer, e.g. ['contains']")
    log = engine.runlog if engine is not None else RunLog()
    texts = [_id_text(i) for i in df["request_id"]]
    ids = [t for t in texts if t is not None]
    found = log.by_either_id(ids, ("output", "status", "input_variables"))
    local = {key: r["request_id"] for key, r in found.items()}  # either id -> local id
    logged = {r["request_id"]: r for r in found.values() if r["status"] == "ok"}
    given: dict[str, Any] = {}
    if expected in df:
        for text, value in zip(texts, df[expected], strict=False):
            if text in local:
                given[local[text]] = value
    wanted = [rid for rid in dict.fromkeys(local[t] for t in ids if t in local) if rid in logged]
    items = []
    for rid in wanted:
        row = json.loads(logged[rid]["input_variables"] or "{}")
        if rid in given:
            row[expected] = given[rid]
        items.append((logged[rid]["output"], row))
    verdicts = score_runs(parsed, items, expected, request_ids=wanted)
    rows = [
        ScoreRow(rid, s.name, s.value, s.passed, s.reason, s.source, s.version)
        for rid, scores in zip(wanted, verdicts, strict=True)
        for s in scores
    ]
    if engine is not None:
        engine.record_scores(rows)
    else:
        ScoreLog(log.db).record(rows)
    frame_is_local = all(local.get(t) == t for t in ids)
    # A judge asked once replaces the agreement of an earlier repeated pass (the log drops
    # it): so does the frame.
    stale = [f"score.{s.name}{AGREEMENT_SUFFIX}" for s in parsed if s.source == "judge"]
    out = df.drop(columns=[c for c in stale if c in df.columns])
    return with_scores(out, log, None if frame_is_local else local)


def _iso(value: Any) -> str:
    from datetime import UTC, date, datetime

    if isinstance(value, str):
        import pandas as pd

        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            raise InvalidInputError(
                f"since={shown(value, 40)} is not a date: give e.g. since='2026-11-01', "
                "'2026-11-01 14:30' or a datetime"
            )
        value = stamp.to_pydatetime()
    if isinstance(value, datetime):
        if value != value:  # pandas' NaT is a datetime that equals nothing
            raise InvalidInputError("since=NaT is not a date: give e.g. since='2026-11-01'")
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()
    raise InvalidInputError(
        f"since must be a date, a datetime or a date string, not {shown(value, 40)}: e.g. "
        "since='2026-11-01'"
    )


def compare(df: pd.DataFrame, chart: bool = False) -> pd.DataFrame:
    """Outputs side by side, one column per model × version, plus summary rows.

    Rows: one per input (its ``var.*`` values) and repeat; then ``mean latency_s``,
    ``p95 latency_s``, ``mean ttft_s``, ``mean output_tokens``, ``total cost_usd``,
    ``error rate`` and ``first error``; every planned cell has a column, even one whose
    runs all failed before the call; for each ``score.<name>`` column, ``mean <name>`` with
    its ``95% CI``, and ``pass rate``, ``pass^k`` and ``pass@k`` for pass/fail scores
    (columns then ordered best first, see :func:`pl_magic.engine.statistics.cell_summary`).
    With ``chart=True`` a bar chart of mean latency is drawn too and, when the frame has
    scores, a chart of each score's mean per cell with its 95 % interval (see
    :func:`plot_scores`).
    """
    import pandas as pd

    required = {"output", "model", "provider", "prompt_version", "status", "latency_s"}
    if not isinstance(df, pd.DataFrame) or not required <= set(df.columns):
        raise InvalidInputError("compare() takes a runs DataFrame (from run_many or runs())")
    work = df.copy()
    work["run"] = _cells_of_every_run(work)
    var_cols = [c for c in work.columns if c.startswith("var.")]
    inputs = work[var_cols].astype(str) if var_cols else None
    work["input"] = [
        ", ".join(f"{c[4:]}={v}" for c, v in zip(var_cols, values, strict=True)) + f" #{rep}"
        for values, rep in zip(
            inputs.itertuples(index=False) if inputs is not None else [()] * len(work),
            work["repeat"].astype("string").fillna("0"),
            strict=True,
        )
    ]
    # dropna=False: a cell whose runs all failed before the call (no output) still shows
    outputs = work.pivot_table(
        index="input", columns="run", values="output", aggfunc="first", sort=False, dropna=False
    )
    grouped = work.groupby("run", sort=False)
    summary = pd.DataFrame(
        {
            "mean latency_s": grouped["latency_s"].mean(),
            "p95 latency_s": grouped["latency_s"].quantile(0.95),
            "mean ttft_s": grouped["ttft_s"].mean(),
            "mean output_tokens": grouped["output_tokens"].mean(),
            "total cost_usd": grouped["cost_usd"].sum(min_count=1),
            "error rate": grouped["status"].apply(_error_rate),
            "first error": grouped["error"].agg(_first_error)
            if "error" in work.columns
            else grouped["status"].agg(lambda _: None),
        }
    ).T
    out = pd.concat([outputs.astype(object), summary[outputs.columns].astype(object)])
    scores = _score_columns(df)
    summaries: dict[str, pd.DataFrame] = {}
    if scores:
        out, summaries = _with_score_rows(out, df, scores)
    out.columns.name = "model · version"
    if chart:
        plot(df)
        if summaries:
            _chart_scores(summaries, [str(c) for c in out.columns])
    return out


def _cells_of_every_run(work: pd.DataFrame) -> pd.Series:
    """Each run's cell; a run that failed before its call has no provider or model in the
    frame: it joins the cell of its version's other runs, else a cell named ``— · vN``, so
    that a version whose runs all failed still shows (with its errors)."""
    cells = cell_label(work)
    lost = cells.isna()
    if not lost.any():
        return cells
    versions = version_label(work)
    known = dict(zip(versions[~lost], cells[~lost], strict=True))
    return cells.where(~lost, versions.map(lambda v: known.get(v, f"— · {v}")))


def _error_rate(statuses: pd.Series) -> float:
    """The share of a cell's runs that did not end ok; runs a budget skipped never ran."""
    ran = statuses[statuses != "skipped"]
    return float((ran != "ok").mean()) if len(ran) else float("nan")


def _first_error(errors: pd.Series) -> str | None:
    """A cell's first error message, on one line (None when its runs had none)."""
    return first_message(errors)


def _score_columns(df: pd.DataFrame) -> list[str]:
    """The score columns that hold at least one score."""
    return [c for c in df.columns if str(c).startswith("score.") and df[c].notna().any()]


def _with_score_rows(
    out: pd.DataFrame, df: pd.DataFrame, scores: list[str]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """``out`` with each score's per-cell statistics as rows (mean with its 95 % interval,
    pass rate, pass^k, pass@k), its columns ordered best first by the first score; and each
    score's :func:`~pl_magic.engine.statistics.cell_summary`."""
    import pandas as pd

    from . import statistics

    rows = {}
    order: list[str] = []
    summaries = {}
    for column in scores:
        name = column.removeprefix("score.")
        summary = summaries[column] = statistics.cell_summary(df, column)
        order = order or [c for c in summary.index if c in out.columns]
        rows[f"mean {name}"] = summary["mean"]
        rows[f"95% CI {name}"] = pd.Series(
            [
                "—" if pd.isna(low) else f"{low:.3g}–{high:.3g}"
                for low, high in zip(summary["ci_low"], summary["ci_high"], strict=True)
            ],
            index=summary.index,
        )
        for key in ("pass rate", "pass^k", "pass@k"):
            if summary[key].notna().any():
                rows[f"{key} {name}"] = summary[key]
    table = pd.DataFrame(rows).T.reindex(columns=out.columns)
    out = pd.concat([out, table.astype(object)])
    return out[order + [c for c in out.columns if c not in order]], summaries


def _literal(text: str) -> str:
    """``text`` as matplotlib draws it literally: a ``$`` in a model, prompt or scorer name
    would otherwise start mathtext (which renders, or raises on an unbalanced one)."""
    return str(text).replace("$", r"\$")


def plot(df: pd.DataFrame, metric: str = "latency_s") -> Any:
    """A bar chart of a metric's mean per model × version (pandas plotting); returns the Axes."""
    if metric not in df.columns:
        raise InvalidInputError(f"No column {metric!r} to chart: use e.g. latency_s or cost_usd")
    work = df.copy()
    work["run"] = cell_label(work)
    means = work.groupby("run", sort=False)[metric].mean()
    means.index = [_literal(c) for c in means.index]
    return means.plot.barh(
        title=_literal(f"mean {metric} per model and version"), xlabel=_literal(metric)
    )


def plot_scores(df: pd.DataFrame) -> list[Any]:
    """Each score's mean per model × version with its 95 % interval as error bars, one
    Axes per ``score.<name>`` column (scores without any value are left out), cells in
    ``compare()``'s order (best first on the first score, at the top); returns the Axes.
    The interval is :func:`~pl_magic.engine.statistics.cell_summary`'s: Student t over
    per-input means, Wilson's for pass/fail scores; a cell without one has no error bar."""
    import pandas as pd

    from . import statistics

    if not isinstance(df, pd.DataFrame) or not {"model", "prompt_version"} <= set(df.columns):
        raise InvalidInputError("plot_scores() takes a runs DataFrame (from run_many or runs())")
    scores = _score_columns(df)
    if not scores:
        raise InvalidInputError(
            "No scores to chart: this DataFrame has no score.* column with a value; score its "
            "runs first (run_many(..., scorers=[...]) or pl_magic.score(df, [...]))"
        )
    summaries = {column: statistics.cell_summary(df, column) for column in scores}
    return _chart_scores(summaries, [str(c) for c in summaries[scores[0]].index])


def _chart_scores(summaries: Mapping[str, pd.DataFrame], cells: list[str]) -> list[Any]:
    """One horizontal bar chart per score, of ``cells`` in that order from the top."""
    import matplotlib.pyplot as plt
    import numpy as np

    height = 1.2 + 0.4 * len(cells)
    figure, axes = plt.subplots(
        len(summaries), 1, figsize=(7.0, height * len(summaries)), squeeze=False
    )
    for ax, (column, summary) in zip(axes[:, 0], summaries.items(), strict=True):
        rows = summary.reindex(cells)
        means = rows["mean"].to_numpy(dtype="float64")
        # Distances from the mean to each bound; NaN (no interval) draws no error bar.
        below = means - rows["ci_low"].to_numpy(dtype="float64")
        above = rows["ci_high"].to_numpy(dtype="float64") - means
        labels = [_literal(c) for c in cells]
        ax.barh(labels, np.nan_to_num(means), xerr=np.vstack([below, above]), capsize=3)
        ax.invert_yaxis()  # the first cell (the best) at the top
        name = column.removeprefix("score.")
        level = f"{summary.attrs.get('confidence', 0.95) * 100:g} %"
        ax.set_title(_literal(f"mean {name} per model and version ({level} CI)"))
        ax.set_xlabel(_literal(f"mean {name}"))
        ax.set_ylabel("model · version")
    figure.tight_layout()
    return list(axes[:, 0])
