"""The module-level API (``pl_magic.run`` and friends), over the default client.

Names and arguments follow PromptLayer's SDK so code written for it ports by changing
the import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .client import default_client

if TYPE_CHECKING:
    import pandas as pd

    from .core.types import RunChunk, RunResult


def _refuse_unknown(function: str, unknown: dict[str, Any]) -> None:
    """A misspelled or foreign keyword is a one-line error naming it (not a TypeError)."""
    if unknown:
        from .core.errors import InvalidInputError

        raise InvalidInputError(
            f"{function}() got unknown argument(s) {', '.join(sorted(unknown))}: "
            f"see help(pl_magic.{function})"
        )


def run(
    prompt_name: str,
    prompt_version: int | None = None,
    prompt_release_label: str | None = None,
    input_variables: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    group_id: int | None = None,
    model_parameter_overrides: dict[str, Any] | None = None,
    stream: bool = False,
    provider: str | None = None,
    model: str | None = None,
    **unknown: Any,
) -> RunResult | Iterator[RunChunk]:
    """Run a registry prompt, exactly as PromptLayer's ``run()``.

    Resolves ``prompt_name`` by ``prompt_release_label`` (which wins), ``prompt_version``
    or the latest version; renders it with ``input_variables``; calls the provider
    (``provider=`` / ``model=`` override the template's); logs the run. Returns
    ``{"request_id", "raw_response", "prompt_blueprint"}``, or with ``stream=True`` an
    iterator of such dicts whose last one alone carries the ``request_id``.
    """
    _refuse_unknown("run", unknown)
    return default_client()._run(locals())  # (its arguments by name: see client._run)


async def arun(
    prompt_name: str,
    prompt_version: int | None = None,
    prompt_release_label: str | None = None,
    input_variables: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    group_id: int | None = None,
    model_parameter_overrides: dict[str, Any] | None = None,
    stream: bool = False,
    provider: str | None = None,
    model: str | None = None,
    **unknown: Any,
) -> RunResult | AsyncIterator[RunChunk]:
    """Async twin of :func:`run`; with ``stream=True`` an async iterator."""
    _refuse_unknown("arun", unknown)
    return await default_client()._arun(locals())


def run_tools(
    prompt_name: str,
    tools: Mapping[str, Callable[..., Any]],
    max_steps: int = 5,
    prompt_version: int | None = None,
    prompt_release_label: str | None = None,
    input_variables: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    group_id: int | None = None,
    model_parameter_overrides: dict[str, Any] | None = None,
    stream: bool = False,
    provider: str | None = None,
    model: str | None = None,
    **unknown: Any,
) -> RunResult:
    """Run a prompt whose template offers function tools, calling ``tools`` (tool name →
    Python function) for the tool calls the model makes, until a reply makes none.

    Each model call is a run of its own, logged (and sent to PromptLayer) like any other,
    all in one group (``group_id``, or a new one). Between calls the assistant's tool calls
    and one tool message per call (the function's return value as text, JSON for anything
    but a str) are appended to the conversation. The arguments are the model's: read as
    JSON, passed as keyword arguments; a name with no function, arguments that are not a
    JSON object, or a function that raises give the model an ``error: ...`` result instead,
    and the loop goes on. After ``max_steps`` model calls that all asked for tools, a
    one-line notice says so.

    Returns the last run's result, as ``run()`` does (``request_id``, ``raw_response``,
    ``prompt_blueprint`` holding the whole conversation). The other arguments are
    ``run()``'s; ``stream=True`` streams each call.
    """
    _refuse_unknown("run_tools", unknown)
    from dataclasses import replace

    from .engine.engine import RunOptions
    from .engine.tool_loop import check_max_steps, check_tools
    from .engine.tool_loop import run_tools as tool_loop

    options = RunOptions.from_call(locals())  # (run()'s arguments, by name)
    functions, steps = check_tools(tools), check_max_steps(max_steps)
    client = default_client()
    if options.group_id is None:
        options = replace(options, group_id=client.group.create())
    return tool_loop(client.engine, options, functions, steps)


def publish(body: dict[str, Any]) -> dict[str, Any]:
    """Publish a new prompt version (PromptLayer's ``templates.publish`` body)."""
    return default_client().templates.publish(body)


def get_template(
    prompt_name: str, version: int | None = None, label: str | None = None
) -> dict[str, Any]:
    """A prompt template in PromptLayer's shape (latest version unless told otherwise)."""
    params: dict[str, Any] = {}
    if version is not None:
        params["version"] = version
    if label is not None:
        params["label"] = label
    return default_client().templates.get(prompt_name, params)


def set_label(prompt_name: str, label: str, version: int) -> None:
    """Point release label ``label`` of ``prompt_name`` at ``version`` (creates or moves it)."""
    default_client().registry.set_label(prompt_name, label, version)


def delete_label(prompt_name: str, label: str) -> None:
    """Remove a release label."""
    default_client().registry.delete_label(prompt_name, label)


def prompts() -> list[dict[str, Any]]:
    """Every prompt in the registry with its versions and labels.

    A fresh, empty local registry gets the starter prompts first (see
    ``pl_magic.registry.starters``).
    """
    return default_client().registry.list_prompts()


def pin(update: bool = False) -> str:
    """Pin the release labels this process used to the versions they point at now, in
    ``prompts.lock.json`` in the working directory (a notebook's folder); its path.

    While the file exists, a run by label runs its pinned version, and says so when the
    label has moved. ``update=True`` re-pins every label to where it points now.
    """
    from .engine.versions import pin as write_pins

    return str(write_pins(default_client().registry, update=bool(update)))


def create_group() -> int:
    """A new group id to tie runs together (pass it as ``group_id``)."""
    return default_client().group.create()


def score(
    request_id: Any,
    score: Any = None,
    name: str | None = None,
    expected: str = "expected",
    *,
    scorers: Any = None,
    judge_repeat: int = 1,
    concurrency: int = 8,
) -> Any:
    """Score a run from 0 to 100 (optionally a named score), as ``track.score``; or, given a
    runs DataFrame, score its logged runs again with scorers.

    ``score(request_id, 90, "accuracy")`` takes either id of a run (``run()``'s
    ``request_id``, local or PromptLayer's). With the PromptLayer backend it goes to
    PromptLayer too (queued until the run is there); returns True.

    ``score(df, ["contains", "json"], expected="expected")`` (or ``scorers=[...]``) applies
    the scorers (see :func:`run_many`) to the runs of a ``run_many()`` or ``runs()`` frame,
    with no model call, stores the scores and returns a copy of ``df`` with a
    ``score.<name>`` column per scorer. The expected answer is the frame's ``expected``
    column, else the run's input variable of that name. A judge (``judge:PROMPT``) calls
    its model, ``concurrency`` runs at a time, ``judge_repeat`` times per run.
    """
    if hasattr(request_id, "columns") and hasattr(request_id, "to_dict"):  # a DataFrame
        from .engine.results import score_frame

        client = default_client()  # the log lives where the default client's registry is
        if name is not None:
            from .core.errors import InvalidInputError

            raise InvalidInputError(
                "score(df, scorers) takes no name: each scorer names its column score.<name>"
            )
        from .engine.judges import judge_factory
        from .engine.scoring import parse_scorers

        parsed = parse_scorers(
            scorers if scorers is not None else score,
            judge=judge_factory(client.engine, judge_repeat, concurrency),
        )
        return score_frame(request_id, parsed, expected, engine=client.engine)
    return default_client().track.score(request_id, score, name)


def add_metadata(request_id: Any, metadata: dict[str, str]) -> bool:
    """Add string metadata to a run (merged into its logged metadata), as ``track.metadata``."""
    return default_client().track.metadata(request_id, metadata)


def sync() -> dict[str, int]:
    """Send the runs PromptLayer did not get yet (it was down or slow); counts of
    ``sent``, ``failed`` (refused) and ``unsent`` (still waiting)."""
    return default_client().sync()


#: The keywords run_many() passes on to every run, and what to use instead of run()'s others.
_RUN_MANY_PASSED = (
    "tags",
    "metadata",
    "group_id",
    "model_parameter_overrides",
    "stream",
    "cache",
)
_RUN_MANY_OWN = (
    "versions",
    "models",
    "repeat",
    "inputs",
    "input_variables",
    "concurrency",
    "scorers",
    "expected",
    "judge_repeat",
    "budget",
    "fail_fast",
    "expand",
    "batch",
    "wait",
    "reattach",
)
_RUN_MANY_INSTEAD = {
    "prompt_version": "versions=[3]",
    "prompt_release_label": "versions=['prod']",
    "provider": "models=['provider/model']",
    "model": "models=['provider/model']",
}


def _check_run_many_keywords(run_kwargs: dict[str, Any]) -> None:
    """Refuse keywords run_many() does not take, naming the one that was meant."""
    import difflib

    from .core.errors import InvalidInputError

    for key in sorted(run_kwargs):
        if key in _RUN_MANY_PASSED:
            continue
        if key in _RUN_MANY_INSTEAD:
            raise InvalidInputError(
                f"run_many() takes no {key}=: pass {_RUN_MANY_INSTEAD[key]} (a comparison runs "
                "each version and model given)"
            )
        close = difflib.get_close_matches(key, [*_RUN_MANY_PASSED, *_RUN_MANY_OWN], n=1)
        hint = f"did you mean {close[0]}?" if close else "see help(pl_magic.run_many)"
        raise InvalidInputError(f"run_many() got an unknown argument {key!r}: {hint}")
    stream = run_kwargs.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInputError(f"stream must be True or False, not {type(stream).__name__}")


def run_many(
    prompt_name: str,
    versions: Any = None,
    models: Any = None,
    repeat: int = 1,
    inputs: Any = None,
    input_variables: dict[str, Any] | None = None,
    concurrency: int = 8,
    scorers: Any = None,
    expected: str = "expected",
    judge_repeat: int = 1,
    budget: float | None = None,
    fail_fast: bool = False,
    expand: bool = False,
    batch: bool = False,
    wait: bool = True,
    reattach: bool = True,
    **run_kwargs: Any,
) -> Any:
    """Run every combination of versions × models × repeats × input rows; one row per run.

    ``versions``: numbers and labels (``[2, 3, "prod"]`` or ``"2,3,prod"``); ``models``:
    ``provider/model`` or bare names (gpt-… → openai, claude-… → anthropic, gemini-… →
    google); ``inputs``: a DataFrame or list of dicts, one run per row, over the shared
    ``input_variables``. Runs go ``concurrency`` at a time per provider. A failed run is a
    row with its error; the others still complete. Other keywords (tags, metadata,
    group_id, model_parameter_overrides) go to every run. Runs are not streamed (nothing
    shows them, and streams cost CPU): an interrupt lets the runs in flight finish and
    skips the rest; ``stream=True`` streams them, so that an interrupt stops them too.

    ``scorers`` score each run that ends ok (a ``score.<name>`` column each, stored in the
    log): ``equals``, ``contains``, ``icontains`` (the output holds the expected answer),
    ``regex:PATTERN``, ``json``, ``json_schema:FILE.json`` (or ``("json_schema", schema)``),
    ``length:MIN-MAX``, ``similarity`` (0..1), or a callable ``(output, row) -> bool | float |
    dict(score=..., reason=...)``. Pass/fail scores are 1.0/0.0; a scorer that raises gives
    that run NaN (the reason is stored). The expected answer is each input row's
    ``expected`` column (``expected=`` names another); like every column it is an input
    variable of the run, which a template that does not use it ignores.

    ``judge:PROMPT`` (``judge:PROMPT@label``, ``judge:PROMPT@3``) scores with a registry
    prompt (e.g. the starter ``judge-correct``): its template sees ``output``, ``expected``
    and the run's variables, and its reply is forced into ``{score, reason}`` (a score from
    0 to 1; 0.5 or more passes). Judge runs are logged, linked to the run they judged.
    ``judge_repeat=k`` asks each judge k times: the mean, and ``score.<judge>.agreement``.

    Before the runs start, their input tokens and cost range are estimated (see
    :mod:`pl_magic.engine.estimate`) and shown as one notice ("48 runs · ≈ 31k input tokens ·
    $0.04–$0.19") when the cost is known and above $0; otherwise nothing is printed.
    Without a budget it is scaled from a sample of the input rows (at most 16 per version ×
    model), so that it adds little to a large comparison.
    ``budget=USD``: a comparison whose estimated upper bound exceeds it (or whose cost is
    unknown) does not start; while running, once the logged cost of finished runs reaches it,
    the runs not yet started are skipped (status ``skipped``, error ``budget``).

    A run whose ``response_format`` asks for JSON has it parsed in the ``parsed`` column
    (a reply that is not JSON is a failed run: status ``error``, category ``invalid_output``,
    its text kept in ``output``); ``expand=True`` adds a ``parsed.<field>`` column per
    top-level field of the schema. ``tool_calls`` holds the tool calls a reply made.

    ``batch=True`` submits the comparison as provider batches (OpenAI's Batch API,
    Anthropic's Message Batches, the Gemini API's batch mode: run within 24 hours at about
    half the price), one job per provider and model, split at each API's limits. The job is
    in the run log from the moment it is submitted: running the same comparison again (in
    this kernel or after a restart) attaches to it instead of submitting again
    (``reattach=False`` submits anew). With ``wait=True`` (the default) this polls, showing
    the job's progress in a notebook, logs the results as they arrive and returns the
    DataFrame (runs still waiting are ``pending``; the kernel's interrupt stops the waiting,
    not the job); ``wait=False`` returns the job at once (``pl_magic.wait(job)`` later).
    Results are ordinary runs (``batch_id`` set, cost at batch rates), sent to PromptLayer
    with that backend and scored like live ones. A route that cannot batch (the local
    model, a template's own server, Vertex AI) runs live, with a one-line notice; in a
    replay mode, runs the log holds are served from it, not submitted. See
    :func:`batches`, :func:`wait` and :func:`cancel`.

    Calls wait their turn in one limiter per provider and base URL, shared by every run of
    the process: it backs off when the provider answers 429 (honouring ``retry-after`` and
    the rate-limit headers) and grows again as calls succeed, up to ``concurrency``; a run
    rate-limited past the SDK's retries waits its turn again rather than failing (see
    :mod:`pl_magic.engine.limiter`). ``fail_fast=True``: the first run that ends in an error
    a retry would not cure (a bad key, model or request, a template that does not render;
    not a rate limit, timeout, server error or a reply that is not the JSON asked for)
    stops the comparison: the runs not yet started are skipped (status ``skipped``, error
    ``fail_fast``) and one line names the run and its error.

    Arguments are checked before any run, as :func:`run` checks its own: a wrong type, an
    input row ``run()`` would refuse, an unknown keyword or a bad scorer is a one-line
    :class:`~pl_magic.core.errors.InvalidInputError`.
    """
    from .core import notices
    from .core.errors import InvalidInputError
    from .engine.batch import Batch, check_runs, plan
    from .engine.estimate import before_start, check_budget_value
    from .engine.judges import judge_factory
    from .engine.results import expand_parsed, frame_from_progress
    from .engine.scoring import check_expected, parse_scorers

    _check_run_many_keywords(run_kwargs)
    _check_flags(batch=batch, wait=wait, reattach=reattach)
    stream = run_kwargs.pop("stream", False)
    engine = default_client().engine
    parsed = parse_scorers(scorers, judge=judge_factory(engine, judge_repeat, concurrency))
    expected = check_expected(expected)
    limit = check_budget_value(budget)
    if not isinstance(fail_fast, bool):
        raise InvalidInputError(f"fail_fast must be True or False, not {type(fail_fast).__name__}")
    planned = plan(versions, models, repeat, inputs, input_variables)
    comparison = Batch(
        engine,
        prompt_name,
        planned,
        run_kwargs,
        concurrency,
        stream=stream,
        scorers=parsed,
        expected=expected,
        fail_fast=fail_fast,
    )
    comparison.budget = limit
    if batch:
        if stream:
            raise InvalidInputError("a batch is not streamed: drop stream=True to use batch=True")
        out = run_batch(comparison, reattach, wait)
        return expand_parsed(out) if expand and wait else out
    check_runs(comparison)
    cost = before_start(comparison)
    if cost.high_usd:  # a known, nonzero cost: worth a line; free or unknown: quiet
        notices.warn(f"estimate: {cost.summary()}")
    df = frame_from_progress(comparison.execute(), prompt_name)
    return expand_parsed(df) if expand else df


def _check_flags(**flags: Any) -> None:
    from .core.errors import InvalidInputError

    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InvalidInputError(
                f"{name} must be True or False, not {type(value).__name__}: e.g. {name}=True"
            )


def run_batch(runner: Any, reattach: bool = True, wait: bool = True) -> Any:
    """A planned comparison (an ``engine.batch.Batch``) submitted as provider batches, or
    attached to the job already submitted for it: ``run_many(batch=True)`` and
    ``%%plrun --batch``. With ``wait``, its progress shown while polling and its DataFrame
    returned; else the job."""
    import dataclasses

    from .core import notices
    from .engine import batch_submit
    from .engine.batch import check_runs
    from .engine.estimate import before_start

    # the arguments shared by every run; each input row is checked as its runs are prepared
    check_runs(dataclasses.replace(runner, runs=runner.runs[:1]))
    batch_submit.check_options(runner.run_kwargs)
    cost = before_start(runner)
    if cost.high_usd:
        notices.warn(
            f"estimate: {cost.summary()} at live prices (a provider batch is billed about half)"
        )
    job = batch_submit.start(
        runner.engine,
        runner.prompt_name,
        runner.runs,
        runner.run_kwargs,
        scorers=runner.scorers,
        expected=runner.expected,
        concurrency=runner.concurrency,
        reattach=reattach,
    )
    return _waited(job) if wait else job


def _waited(job: Any, timeout: float | None = None) -> pd.DataFrame:
    """Wait for a batch job with its progress shown; its DataFrame."""
    from .ui.batch_view import BatchView

    view = BatchView()
    view.start(job.status())
    job.wait(timeout=timeout, on_progress=view.update)
    return job.frame()


def batches(limit: int | None = None) -> pd.DataFrame:
    """Every batch job (``run_many(batch=True)``, ``%%plrun --batch``), newest first: its id,
    prompt, status (``running``, ``done``, ``cancelling``, ``cancelled``), its runs' counts
    (``ok``, ``error``, ``cancelled``, ``pending``) and its provider jobs with their ids and
    statuses, as the log holds them (:func:`wait` asks the providers)."""
    from .core.errors import InvalidInputError
    from .engine.batch_jobs import jobs_frame

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInputError(f"batches(limit=...) takes a whole number, not {limit!r}")
    return jobs_frame(default_client().engine, limit)


def wait(job: Any, timeout: float | None = None) -> pd.DataFrame:
    """Wait for a batch job (a job, its id, or a unique prefix of it): poll the provider with
    back-off, log the results as they arrive, and return the comparison's DataFrame. In a
    notebook its progress shows and updates. ``timeout`` (seconds): stop waiting then (the
    job goes on; runs still waiting are ``pending``); the kernel's interrupt does the same."""
    from .core.errors import InvalidInputError
    from .engine.batch_jobs import job_of

    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise InvalidInputError(f"timeout must be a number of seconds ≥ 0, not {timeout!r}")
    return _waited(job_of(default_client().engine, job), timeout)


def cancel(job: Any) -> Any:
    """Cancel a batch job (a job, its id, or a unique prefix of it): each provider job still
    running is asked to stop. What the providers had finished is logged as usual; the rest
    become ``cancelled`` runs once they have stopped (:func:`wait` logs them). Returns the
    job's status."""
    from .engine.batch_jobs import job_of

    return job_of(default_client().engine, job).cancel()


def runs(
    prompt: str | None = None,
    since: Any = None,
    tag: str | None = None,
    group_id: int | None = None,
    limit: int | None = None,
    expand: bool = False,
) -> pd.DataFrame:
    """Every logged run as a DataFrame (one row per run), optionally filtered.

    ``parsed`` holds a structured reply's JSON (runs whose ``response_format`` asks for it),
    ``tool_calls`` the tool calls of a reply; ``expand=True`` adds a ``parsed.<field>``
    column per top-level field of the schema."""
    from .engine.results import runs as read_runs

    default_client()  # the log lives where the default client's registry is
    return read_runs(
        prompt=prompt, since=since, tag=tag, group_id=group_id, limit=limit, expand=expand
    )


def compare(
    df: pd.DataFrame, chart: bool = False, diff: bool | tuple[str, str] = False
) -> pd.DataFrame:
    """Outputs side by side by model and version, with summary rows (latency, tokens, cost,
    error rate, and each score's statistics, cells best first); ``chart=True`` also draws
    mean latency per model and version and, when the frame has scores, each score's mean
    per cell with its 95 % interval. ``diff=True`` also shows, word by word, the first
    cell's outputs against each other cell's, ``diff=(a, b)`` one pair (see :func:`diff`).

    The table shows seconds, tokens, dollars and rates for reading and ``—`` for unknown;
    ``compare(df).data`` is the same table with its numbers as numbers."""
    from .engine.results import compare as compare_runs

    pairs: list[tuple[str, str]] = []
    if isinstance(diff, tuple | list):
        if len(diff) != 2 or not all(isinstance(c, str) for c in diff):
            from .core.errors import InvalidInputError

            raise InvalidInputError(
                "compare(diff=...) takes True or two cell names, e.g. "
                "diff=('openai/gpt-4o · v2', 'openai/gpt-4o · v3')"
            )
        pairs = [(diff[0], diff[1])]
    from .ui.compact import CompareFrame

    out = CompareFrame(compare_runs(df, chart=chart))
    if diff is True:
        cells = [str(c) for c in out.columns]
        pairs = [(cells[0], other) for other in cells[1:]]
    if pairs:
        from IPython.display import display

        from .ui.diff import diff as diff_view

        views = [diff_view(df, a, b) for a, b in pairs]  # a bad name fails before any output
        for view in views:
            display(view)
    return out
