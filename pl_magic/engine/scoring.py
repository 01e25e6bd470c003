"""Scorers: rules that score a run's output, with no model call.

A scorer has a ``name`` (its column is ``score.<name>``), a ``source`` (``rule`` here;
``judge`` and ``human`` scores are stored the same way) and a ``version`` (None for rules; a
judge's prompt version). :func:`parse_scorers` turns what the person wrote into scorers and
refuses a bad spec before any run, with a one-line :class:`InvalidInputError`;
:func:`score_output` applies one scorer to one output and never raises: a scorer that fails
gives an error :class:`Score` (value NaN, the reason a one-line error) and the others go on.

Built in: ``equals``, ``contains``, ``icontains`` (the output contains the expected answer),
``regex:PATTERN``, ``json`` (valid JSON), ``json_schema:NAME``, ``length:MIN-MAX`` and
``similarity`` (0..1, no pass/fail), and any callable ``(output, row) -> bool | float |
dict(score=..., reason=...)``. ``(NAME, ARG)`` is ``"NAME:ARG"`` with ARG an object (a schema
dict for ``json_schema``), and ``(name, callable)`` names a callable.

Regular expressions: the pattern is the person's own, the output is not. When the
``regex`` package is installed its timeout (:data:`REGEX_TIMEOUT_S`) bounds a search;
otherwise :mod:`re` searches at most :data:`MAX_SCORED_CHARS` characters of the output,
which bounds a slow pattern's cost on a huge reply but not a catastrophic (exponential) one.

``jsonschema`` and ``rapidfuzz`` are imported when a scorer needs them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInputError, redact, shown
from ..core.plain_data import is_missing

#: The built-in scorers (``NAME`` or ``NAME:ARG``).
BUILT_IN = (
    "equals",
    "contains",
    "icontains",
    "regex",
    "json",
    "json_schema",
    "length",
    "similarity",
)
#: Built-ins that compare with the expected answer.
NEEDS_EXPECTED = frozenset({"equals", "contains", "icontains", "similarity"})
#: Where a score comes from.
SOURCES = ("rule", "judge", "human")
#: Characters of an output a regular expression searches (without the ``regex`` package).
MAX_SCORED_CHARS = 100_000
#: Seconds one regular-expression search may take (with the ``regex`` package).
REGEX_TIMEOUT_S = 1.0

#: What a scorer's function returns: a bool, a number or dict(score=..., reason=...).
Outcome = Any
#: ``(output, expected, row) -> Outcome``; ``expected`` is None when the row has none.
ScoreFn = Callable[[str, Any, Mapping[str, Any]], Outcome]
#: One logged run to score: its local id (None when it has none), output and row.
Item = tuple[str | None, str | None, Mapping[str, Any]]
#: Scores every item at once (a judge: concurrently); one list of scores per item.
ScoreMany = Callable[[Sequence[Item], str], list[list["Score"]]]
#: Makes the scorer of a ``judge:NAME`` spec (see :mod:`pl_magic.engine.judges`).
JudgeFactory = Callable[[str], "Scorer"]


@dataclass(frozen=True)
class Scorer:
    """One way to score an output."""

    name: str
    fn: ScoreFn
    source: str = "rule"
    version: str | None = None
    #: The scorer compares with the expected answer (a row without one is an error row).
    needs_expected: bool = False
    #: Scores a whole batch itself (a judge, which calls a model per run).
    score_many: ScoreMany | None = None


@dataclass(frozen=True)
class Score:
    """One scorer's verdict on one run."""

    name: str
    value: float  # NaN when the scorer failed
    passed: bool | None  # None where pass/fail does not apply (or on error)
    reason: str | None
    source: str = "rule"
    version: str | None = None
    error: bool = False


def _unknown(spec: str) -> InvalidInputError:
    return InvalidInputError(
        f"unknown scorer {spec!r}: use one of {', '.join(BUILT_IN)} (NAME or NAME:ARG), "
        "judge:PROMPT[@label] or a callable (output, row) -> bool | float | dict"
    )


def parse_scorers(
    specs: Any,
    namespace: Mapping[str, Any] | None = None,
    judge: JudgeFactory | None = None,
) -> list[Scorer]:
    """``specs`` (one spec or a list of them) → scorers, checked before any run.

    ``namespace`` is where ``json_schema:NAME`` looks for a variable NAME first (the user's
    namespace in a notebook); otherwise NAME is a ``.json`` file. ``judge`` makes the
    scorer of a ``judge:NAME[@label]`` spec (it resolves the judge prompt now, so a
    missing one fails before any run).
    """
    if specs is None:
        return []
    if isinstance(specs, str | Scorer) or callable(specs) or isinstance(specs, tuple):
        specs = [specs]
    if not isinstance(specs, list | Sequence):
        raise InvalidInputError(
            f"scorers must be a list, e.g. ['contains', 'json'], not {type(specs).__name__}"
        )
    out = [_one(spec, namespace or {}, judge) for spec in specs]
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInputError(
            f"two scorers are named {dupes[0]!r}: name one with ('other-name', scorer)"
        )
    return out


def _one(spec: Any, namespace: Mapping[str, Any], judge: JudgeFactory | None) -> Scorer:
    if isinstance(spec, Scorer):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        head, arg = spec
        if isinstance(arg, Scorer | str) or (callable(arg) and not isinstance(arg, type)):
            inner = _one(arg, namespace, judge)
            return dataclasses.replace(inner, name=head)
        return _built_in(head, arg, head, namespace)
    if isinstance(spec, str):
        if spec.strip().startswith("judge:"):
            if judge is None:
                raise InvalidInputError(
                    f"scorer {spec.strip()!r}: judges run through pl_magic's client; use "
                    "pl_magic.run_many, pl_magic.score or %%plrun --score"
                )
            return judge(spec.strip())
        head, sep, arg = spec.strip().partition(":")
        return _built_in(head.strip(), arg if sep else None, spec.strip(), namespace)
    if callable(spec):
        name = getattr(spec, "__name__", None) or type(spec).__name__
        return Scorer("lambda" if name == "<lambda>" else name, _callable(spec))
    raise InvalidInputError(
        f"a scorer is a name such as 'contains' or 'regex:^\\d+$', or a callable, not "
        f"{shown(spec, 40)}"
    )


def _callable(fn: Callable[[str, Mapping[str, Any]], Outcome]) -> ScoreFn:
    return lambda output, expected, row: fn(output, row)


def _built_in(kind: str, arg: Any, name: str, namespace: Mapping[str, Any]) -> Scorer:
    if kind not in BUILT_IN:
        raise _unknown(name)
    takes_arg = kind in ("regex", "json_schema", "length")
    if takes_arg and (arg is None or arg == ""):
        example = {"regex": "regex:^\\d+$", "json_schema": "json_schema:person",
                   "length": "length:1-200"}[kind]  # fmt: skip
        raise InvalidInputError(f"scorer {kind!r} needs an argument: write e.g. {example}")
    if not takes_arg and arg is not None:
        raise InvalidInputError(f"scorer {kind!r} takes no argument: write just {kind!r}")
    needs = kind in NEEDS_EXPECTED
    fn: ScoreFn
    if kind == "equals":
        fn = _equals
    elif kind == "contains":
        fn = _contains
    elif kind == "icontains":
        fn = _icontains
    elif kind == "json":
        fn = _json_valid
    elif kind == "regex":
        fn = _regex(str(arg))
    elif kind == "length":
        fn = _length(str(arg))
    elif kind == "json_schema":
        fn = _json_schema(arg, namespace)
    else:
        fn = _similarity()
    return Scorer(name, fn, needs_expected=needs)


def _equals(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
    return output.strip() == str(expected).strip()


def _contains(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
    return str(expected) in output


def _icontains(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
    return str(expected).casefold() in output.casefold()


def _json_valid(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
    try:
        json.loads(output)
    except ValueError as exc:
        return {"score": False, "reason": f"not JSON: {exc}"}
    return True


def _regex(pattern: str) -> ScoreFn:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidInputError(
            f"scorer regex:{pattern} is not a valid regular expression ({exc}): fix the pattern"
        ) from None
    try:
        timed = importlib.import_module("regex").compile(pattern)
    except Exception:  # not installed, or a pattern only re reads: re with the length cap
        timed = None

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
        if timed is not None:
            try:
                return timed.search(output, timeout=REGEX_TIMEOUT_S) is not None
            except TimeoutError:
                raise TimeoutError(
                    f"the pattern took over {REGEX_TIMEOUT_S:g} s on this output"
                ) from None
        return compiled.search(output[:MAX_SCORED_CHARS]) is not None

    return fn


def _length(arg: str) -> ScoreFn:
    low, sep, high = arg.partition("-")
    try:
        lo = int(low) if low.strip() else 0
        hi = int(high) if sep and high.strip() else (math.inf if sep else lo)
    except ValueError:
        lo, hi = -1, -1
    if lo < 0 or hi < lo:
        raise InvalidInputError(
            f"scorer length:{arg} needs MIN-MAX characters: write e.g. length:1-200 "
            "(length:10- for at least 10)"
        )

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
        n = len(output)
        return {"score": lo <= n <= hi, "reason": f"{n} characters"}

    return fn


def _load_schema(arg: Any, namespace: Mapping[str, Any]) -> Any:
    if isinstance(arg, Mapping | bool):
        return arg
    name = str(arg).strip()
    if name in namespace:
        return namespace[name]
    path = Path(name).expanduser()
    if name.endswith(".json") or path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(
                f"scorer json_schema:{name}: cannot read {path} as JSON ({exc}): fix the file"
            ) from None
    raise InvalidInputError(
        f"scorer json_schema:{name}: no variable {name!r} and no file {name}: define the schema "
        "as a dict variable or give a .json file path"
    )


def _json_schema(arg: Any, namespace: Mapping[str, Any]) -> ScoreFn:
    schema = _load_schema(arg, namespace)
    try:
        jsonschema = importlib.import_module("jsonschema")
        importlib.import_module("jsonschema.exceptions")
    except ImportError:
        raise InvalidInputError(
            "the json_schema scorer needs the jsonschema package: pip install jsonschema"
        ) from None
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        validator.check_schema(schema)
    except (jsonschema.exceptions.SchemaError, TypeError, AttributeError) as exc:
        message = getattr(exc, "message", str(exc))
        raise InvalidInputError(
            f"scorer json_schema: not a valid JSON schema ({message})"
        ) from None

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
        try:
            data = json.loads(output)
        except ValueError as exc:
            return {"score": False, "reason": f"not JSON: {exc}"}
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is None:
            return True
        where = "/".join(str(p) for p in error.absolute_path)
        return {"score": False, "reason": (f"{where}: " if where else "") + error.message}

    return fn


def _similarity() -> ScoreFn:
    try:
        fuzz = importlib.import_module("rapidfuzz.fuzz")
    except ImportError:
        raise InvalidInputError(
            "the similarity scorer needs the rapidfuzz package: pip install rapidfuzz"
        ) from None

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Outcome:
        return float(fuzz.ratio(output, str(expected))) / 100.0

    return fn


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs become one space), at most ``limit`` long."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _error(scorer: Scorer, reason: str) -> Score:
    # A scorer's exception may quote anything it saw, a key included: redacted before it is
    # cut to one line (a cut key no longer matches any spelling redact() knows).
    reason = one_line(redact(reason))
    return Score(scorer.name, math.nan, None, reason, scorer.source, scorer.version, True)


def score_output(
    scorer: Scorer, output: str | None, row: Mapping[str, Any], expected: str = "expected"
) -> Score:
    """Apply ``scorer`` to one run's ``output``; ``row`` holds its input variables (the
    expected answer under ``expected``). Never raises: a failure is an error :class:`Score`."""
    exp = row.get(expected)
    if scorer.needs_expected and is_missing(exp):
        return _error(
            scorer,
            f"no expected answer: add a column {expected!r} to inputs or choose one with "
            "expected=COLUMN",
        )
    try:
        outcome = scorer.fn(output or "", exp, row)
        return _outcome(scorer, outcome)
    except Exception as exc:  # a scorer's failure is that row's error, never the batch's
        return _error(scorer, f"{type(exc).__name__}: {exc}")


def _outcome(scorer: Scorer, outcome: Any) -> Score:
    reason = None
    if isinstance(outcome, Mapping):
        if "score" not in outcome:
            return _error(scorer, f"returned a dict without 'score': {shown(outcome, 60)}")
        reason = None if outcome.get("reason") is None else one_line(outcome["reason"])
        outcome = outcome["score"]
    if isinstance(outcome, bool):
        passed: bool | None = outcome
        value = 1.0 if outcome else 0.0
    elif isinstance(outcome, int | float) and not isinstance(outcome, bool):
        passed, value = None, float(outcome)
    else:
        return _error(
            scorer,
            f"returned {shown(outcome, 40)}: return a bool, a number or "
            "dict(score=..., reason=...)",
        )
    return Score(scorer.name, value, passed, reason, scorer.source, scorer.version)


def score_runs(
    scorers: Sequence[Scorer],
    items: Sequence[tuple[str | None, Mapping[str, Any]]],
    expected: str = "expected",
    request_ids: Sequence[str | None] | None = None,
) -> list[list[Score]]:
    """Each scorer on each ``(output, row)``: one list of scores per item.

    The same verdicts as :func:`score_output` item by item; a scorer's pass and fail
    scores are immutable and shared between its runs, so a batch allocates none per run.
    ``request_ids`` (the runs' local ids, in order) link a judge's runs to the runs they
    judge. A judge may give more than one score per item (its agreement, when repeated).
    """
    if not scorers:
        return [[] for _ in items]
    out: list[list[Score]] = [[] for _ in items]
    for scorer in scorers:
        if scorer.score_many is not None:
            ids = request_ids if request_ids is not None else [None] * len(items)
            batch = [(rid, output, row) for rid, (output, row) in zip(ids, items, strict=True)]
            for scores, more in zip(out, scorer.score_many(batch, expected), strict=True):
                scores.extend(more)
        else:
            for scores, score in zip(out, _score_column(scorer, items, expected), strict=True):
                scores.append(score)
    return out


#: Built-in scorers that compare two strings with ``in`` or ``==`` and never raise on str.
_STRING_RULES: dict[Any, Callable[[str, str], bool]] = {
    _contains: lambda out, exp: exp in out,
    _icontains: lambda out, exp: exp.casefold() in out.casefold(),
    _equals: lambda out, exp: out.strip() == exp.strip(),
}


def _score_column(
    scorer: Scorer, items: Sequence[tuple[str | None, Mapping[str, Any]]], expected: str
) -> list[Score]:
    """One scorer over every item, as :func:`score_output` scores each."""
    verdicts = {
        True: Score(scorer.name, 1.0, True, None, scorer.source, scorer.version),
        False: Score(scorer.name, 0.0, False, None, scorer.source, scorer.version),
    }
    passed, failed = verdicts[True], verdicts[False]
    out: list[Score] = []
    append = out.append
    rule = _STRING_RULES.get(scorer.fn)
    if rule is _STRING_RULES[_contains]:  # the common case, inlined: a string in a string
        for output, row in items:
            exp = row.get(expected)
            if type(exp) is str and type(output) is str:
                append(passed if exp in output else failed)
            else:
                append(score_output(scorer, output, row, expected))
        return out
    if rule is not None:  # str(exp) is exp and ``output or ""`` is output for exact str
        for output, row in items:
            exp = row.get(expected)
            if type(exp) is str and type(output) is str:
                append(passed if rule(output, exp) else failed)
            else:
                append(score_output(scorer, output, row, expected))
        return out
    for output, row in items:
        score = score_output(scorer, output, row, expected)
        if score.reason is None and not score.error and score.passed is not None:
            score = verdicts[score.passed]  # an equal, shared instance: less to keep alive
        append(score)
    return out


def check_expected(expected: Any) -> str:
    """``expected=`` names a column: a one-line error otherwise."""
    if not isinstance(expected, str) or not expected.strip():
        raise InvalidInputError(
            f"expected must name the column of the expected answer, e.g. expected='answer', "
            f"not {shown(expected, 40)}"
        )
    return expected.strip()
