"""Statistics over scored comparisons: per-cell summaries and the difference between two cells.

A *cell* is one model × prompt version of a comparison DataFrame (``run_many``, ``runs()``),
labelled as ``compare()`` labels its columns (``provider/model · vN (label)``). An *input* is
one row of the comparison's inputs, identified by its ``var.*`` values; its repeats are the
runs of a cell with those values. A score is a ``score.<name>`` column holding a float per
run (1.0/0.0 for pass/fail scorers, NaN when the scorer failed or the run has no score).

Repeats of one input are not independent samples (the same input is easy or hard for every
repeat), so the unit of every interval and test here is the input: a cell's repeats of an
input are averaged first. Only when a cell saw a single input are its runs the units.

numpy and pandas are imported on first use, never by ``import pl_magic``; scipy is not needed.
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.cell_names import cell_name
from ..core.errors import InvalidInputError, shown
from .labels import cell_label, version_label

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The prefix of score columns.
SCORE_PREFIX = "score."
#: Values drawn per batch of resamples (resamples × units), to bound memory on large frames.
_BATCH_VALUES = 1_000_000
#: Above this many degrees of freedom the t quantile comes from its Cornish-Fisher expansion
#: (error far below 1e-9 there); below, from the exact distribution function.
_T_EXPANSION_DF = 200


# -- the frame: cells, inputs, scores ------------------------------------------------------


def _check_frame(df: Any, caller: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or not {"model", "prompt_version"} <= set(df.columns):
        raise InvalidInputError(
            f"{caller}() takes a runs DataFrame (from run_many or runs()) with model and "
            "prompt_version columns"
        )


def _codes(values: pd.Series, merge_missing: bool = True) -> np.ndarray | None:
    """Integer codes of a column such that equal codes mean equal values (every missing
    value shares code -1 when ``merge_missing``), for the kinds of column where pandas'
    hashing agrees with that; None for other columns (mixed objects, lists)."""
    import numpy as np
    import pandas as pd

    kind = values.dtype
    types = pd.api.types
    if isinstance(kind, np.dtype) and kind.kind == "f":
        # By bit pattern: -0.0 and 0.0 stay apart (their JSON differs), NaN is missing.
        floats = values.to_numpy(dtype="float64")
        missing = np.isnan(floats)
        if missing.any() and not merge_missing:
            return None
        codes = pd.factorize(np.where(missing, 0.0, floats).view("int64"))[0]
        codes[missing] = -1
        return codes
    if types.is_bool_dtype(kind) or types.is_integer_dtype(kind):
        codes = pd.factorize(values)[0]
    elif isinstance(kind, pd.StringDtype):
        # Plain str objects hash faster than the string array's own factorize.
        codes = pd.factorize(values.to_numpy(dtype=object))[0]
    elif types.is_object_dtype(kind):
        found = types.infer_dtype(values, skipna=True)
        if found == "empty":  # every value missing (a release label nobody asked for)
            codes = np.full(len(values), -1, dtype="int64")
        elif found == "string":
            codes = pd.factorize(values.to_numpy(dtype=object))[0]
        else:
            return None
    else:
        return None
    if not merge_missing and (codes < 0).any():
        return None  # None, NaN and pd.NA print differently
    return codes


def _groups(df: pd.DataFrame, columns: Sequence[str], strict: Sequence[str] = ()) -> Any:
    """``(codes, firsts)``: each row's group of equal values in ``columns`` (numbered in order
    of first appearance) and the position of each group's first row; None when a column's
    values cannot be compared by hashing (see :func:`_codes`). Missing values are alike,
    except in the ``strict`` columns, where a missing value gives None."""
    import numpy as np
    import pandas as pd

    combined = np.zeros(len(df), dtype="int64")
    span = 1  # combined < span
    for column in columns:
        codes = _codes(df[column], merge_missing=column not in strict)
        if codes is None:
            return None
        width = int(codes.max(initial=-1)) + 2
        if span * width >= 2**62:  # numbered afresh so that the product never overflows
            combined = pd.factorize(combined)[0]
            span = int(combined.max(initial=0)) + 1
        combined = combined * width + (codes + 1)
        span *= width
    combined = pd.factorize(combined)[0]
    return combined, _firsts(combined)


def _firsts(codes: np.ndarray) -> np.ndarray:
    """The position of each code's first row, for codes numbered in order of first
    appearance: a row is the first of its code when its code is above every code before it
    (one pass, no sort)."""
    import numpy as np

    if not len(codes):
        return np.zeros(0, dtype="intp")
    first = np.empty(len(codes), dtype=bool)
    first[0] = True
    np.greater(codes[1:], np.maximum.accumulate(codes)[:-1], out=first[1:])
    return np.flatnonzero(first)


def _label_rows(df: pd.DataFrame) -> pd.Series:
    work = df if "release_label" in df.columns else df.assign(release_label=None)
    if "provider" in work.columns:
        return cell_label(work)
    return work["model"].astype(str) + " · " + version_label(work)


#: The columns a cell label is made of; provider and model print with str(), where None and
#: NaN differ, so a missing value there is not merged with another.
_CELL_COLUMNS = ("provider", "model", "prompt_version", "release_label")


def _cells(df: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """Each run's cell as ``(codes, labels)``: ``labels.iloc[codes]`` is
    :func:`cell_labels`, codes number the labels in order of first appearance. The labels
    are built once per distinct model · version, not once per run."""
    import numpy as np
    import pandas as pd

    columns = [c for c in _CELL_COLUMNS if c in df.columns]
    found = _groups(df, columns, strict=("provider", "model"))
    if found is None:
        labels = _label_rows(df)
        codes = pd.factorize(labels, use_na_sentinel=False)[0]
        firsts = np.unique(codes, return_index=True)[1]
        return codes, labels.iloc[firsts].reset_index(drop=True)
    codes, firsts = found
    plain = _plain_labels(df, columns, firsts)
    heads = (
        _label_rows(df.iloc[firsts][columns]) if plain is None else pd.Series(plain, dtype=object)
    )
    # Two groups may print alike (a missing release label and "").
    merged = pd.factorize(heads.to_numpy(dtype=object), use_na_sentinel=False)[0]
    return merged[codes], heads.iloc[_firsts(merged)].reset_index(drop=True)


def _plain_labels(df: pd.DataFrame, columns: list[str], firsts: np.ndarray) -> list[str] | None:
    """The labels of a few rows (one per cell) built in Python: what :func:`_label_rows`
    gives for the plain kinds of value (str provider and model, str or missing release label,
    integer version), without a dozen pandas string operations on a handful of rows. None
    for any other kind of value, which goes through :func:`_label_rows`."""
    import pandas as pd

    if not pd.api.types.is_integer_dtype(df["prompt_version"].dtype):
        return None
    heads = {c: df[c].array[firsts].tolist() for c in columns}
    numbers = ["?" if v is pd.NA else str(int(v)) for v in heads["prompt_version"]]
    models = heads["model"]
    providers = heads.get("provider")
    tags = heads.get("release_label", [None] * len(models))
    if not all(type(v) is str for v in models):
        return None
    if providers is not None and not all(type(v) is str for v in providers):
        return None
    labels = []
    for position, (model, number, tag) in enumerate(zip(models, numbers, tags, strict=True)):
        if tag is None or tag is pd.NA or (type(tag) is float and tag != tag):
            tag = ""
        elif type(tag) is not str:
            return None
        provider = None if providers is None else providers[position]
        labels.append(cell_name(model, number, tag, provider))
    return labels


def cell_labels(df: pd.DataFrame) -> pd.Series:
    """Each run's cell, labelled as ``compare()`` labels its columns:
    ``provider/model · vN`` (``· vN (label)`` when a release label was asked for);
    ``model · vN`` for a frame without a provider column."""
    codes, labels = _cells(df)
    return labels.iloc[codes].set_axis(df.index)


def _plain(value: Any) -> Any:
    """A var.* value as JSON sees it: every kind of missing (None, NaN, pd.NA, NaT) is null."""
    if value is None or isinstance(value, list | dict | tuple | str | bool):
        return value
    try:
        if value != value:  # NaN, NaT
            return None
    except (TypeError, ValueError):  # pd.NA, arrays
        return None if str(value) == "<NA>" else value
    return value


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)


def _var_columns(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if c.startswith("var."))


def _encode_inputs(df: pd.DataFrame, var_cols: list[str]) -> list[str]:
    """The JSON of each row's ``var.*`` values, encoding each distinct row once."""
    columns = [df[c].tolist() for c in var_cols]
    # json.dumps(..., sort_keys=True, ...) builds this encoder anew at every call.
    encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=_json_default).encode

    def key(values: tuple[Any, ...]) -> str:
        return encode({c: _plain(v) for c, v in zip(var_cols, values, strict=True)})

    # Inputs repeat across cells and repeats: each distinct row is encoded once.
    seen: dict[tuple[Any, ...], str] = {}
    keys = []
    for values in zip(*columns, strict=True):
        try:
            text = seen.get(values)
            if text is None:
                text = seen[values] = key(values)
        except TypeError:  # a list or dict value: not hashable
            text = key(values)
        keys.append(text)
    return keys


def input_keys(df: pd.DataFrame) -> list[str]:
    """Each run's input: the JSON of its ``var.*`` values (sorted keys, missing as null), so
    that runs of the same input row share a key whatever their cell."""
    import numpy as np

    var_cols = _var_columns(df)
    if not var_cols:
        return ["{}"] * len(df)
    found = _groups(df, var_cols)
    if found is None:
        return _encode_inputs(df, var_cols)
    # Rows of a group hold equal values: the group's first row speaks for all of them.
    codes, firsts = found
    heads = np.array(_encode_inputs(df.iloc[firsts], var_cols), dtype=object)
    return list(heads[codes])


def _input_codes(df: pd.DataFrame) -> np.ndarray:
    """Each run's input as a number: equal exactly where :func:`input_keys` are equal."""
    import numpy as np
    import pandas as pd

    var_cols = _var_columns(df)
    if not var_cols:
        return np.zeros(len(df), dtype="int64")
    exact = all(not pd.api.types.is_float_dtype(df[c].dtype) for c in var_cols)
    found = _groups(df, var_cols) if exact else None
    # Strings, integers and booleans: equal values, equal JSON. Floats (-0.0) and mixed
    # objects go through their JSON.
    return (
        found[0] if found is not None else pd.factorize(np.array(input_keys(df), dtype=object))[0]
    )


def score_column(df: pd.DataFrame, score: str) -> str:
    """The column of ``score`` (``"correct"`` or ``"score.correct"``); a one-line error
    naming the score columns there are when it is missing."""
    if not isinstance(score, str) or not score:
        raise InvalidInputError(
            f"score= takes the name of a score column, e.g. score='correct', not {shown(score, 40)}"
        )
    column = score if score.startswith(SCORE_PREFIX) else SCORE_PREFIX + score
    if column in df.columns:
        return column
    available = [str(c) for c in df.columns if str(c).startswith(SCORE_PREFIX)]
    if not available:
        raise InvalidInputError(
            f"No score column {column!r}: this DataFrame has no score.* columns; score its runs "
            "first (run_many(..., scorers=[...]) or pl_magic.score(df, [...]))"
        )
    raise InvalidInputError(
        f"No score column {column!r}: the score columns are {', '.join(available)}"
    )


def _scores(df: pd.DataFrame, column: str) -> pd.Series:
    """The score column as floats: NaN for a missing or non-numeric score."""
    import pandas as pd

    values = df[column]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(
        values.map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce"
    ).astype("float64")


def _is_pass_fail(scores: np.ndarray) -> bool:
    import numpy as np

    present = scores[~np.isnan(scores)]
    return bool(len(present)) and bool(((present == 0.0) | (present == 1.0)).all())


def _scored_frame(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """cell, input, score of every run (score NaN where there is none)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "cell": cell_labels(df).to_numpy(),
            "input": input_keys(df),
            "score": _scores(df, column).to_numpy(),
        }
    )


# -- intervals ------------------------------------------------------------------------------


def _t_two_sided_mass(t: float, dof: int) -> float:
    """P(|T| ≤ t) for Student's t with ``dof`` (a whole number) degrees of freedom: the
    closed forms of Abramowitz & Stegun 26.7.3–4."""
    theta = math.atan(t / math.sqrt(dof))
    cos2 = math.cos(theta) ** 2
    if dof % 2:
        total, term = 0.0, math.cos(theta)
        for j in range(1, (dof - 1) // 2 + 1):
            total += term
            term *= cos2 * (2 * j) / (2 * j + 1)
        return 2 / math.pi * (theta + math.sin(theta) * total)
    total, term = 0.0, 1.0
    for j in range(dof // 2):
        total += term
        term *= cos2 * (2 * j + 1) / (2 * j + 2)
    return math.sin(theta) * total


@functools.lru_cache(maxsize=256)
def t_quantile(confidence: float, dof: int) -> float:
    """The t multiplier of a two-sided ``confidence`` interval with ``dof`` degrees of freedom
    (``scipy.stats.t.ppf((1 + confidence) / 2, dof)``, without scipy)."""
    from statistics import NormalDist

    if dof > _T_EXPANSION_DF:
        z = NormalDist().inv_cdf((1 + confidence) / 2)
        g = (
            (z**3 + z) / 4,
            (5 * z**5 + 16 * z**3 + 3 * z) / 96,
            (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
            (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
        )
        return z + sum(gi / dof ** (i + 1) for i, gi in enumerate(g))
    low, high = 0.0, 2.0
    while _t_two_sided_mass(high, dof) < confidence:
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if _t_two_sided_mass(mid, dof) < confidence:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2


def _check_confidence(confidence: Any) -> float:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0 < confidence < 1
    ):
        raise InvalidInputError(
            f"confidence= takes a share between 0 and 1, e.g. 0.95, not {shown(confidence, 40)}"
        )
    return float(confidence)


def _sums(groups: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """The sum of ``weights`` in each of ``size`` groups, as floats (bincount gives integers
    when there is nothing to add)."""
    import numpy as np

    return np.bincount(groups, weights=weights, minlength=size).astype("float64", copy=False)


def _unit_moments(
    cells: np.ndarray, units: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: the number of units, their mean and the sum of their squared deviations
    from it (the two passes of a variance, over all cells at once)."""
    import numpy as np

    n = np.bincount(cells, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _sums(cells, units, size) / n
    squares = _sums(cells, (units - mean[cells]) ** 2, size)
    return n, mean, squares


def _t_bounds(
    n: np.ndarray, mean: np.ndarray, squares: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student t bounds of each cell's mean (NaN for fewer than two units)."""
    import numpy as np

    low, high = np.full(len(n), np.nan), np.full(len(n), np.nan)
    many = n >= 2
    if many.any():
        dof = n[many] - 1
        quantiles = {int(d): t_quantile(confidence, int(d)) for d in np.unique(dof)}
        q = np.array([quantiles[int(d)] for d in dof])
        half = q * np.sqrt(squares[many] / dof) / np.sqrt(n[many])
        low[many], high[many] = mean[many] - half, mean[many] + half
    return low, high


def _wilson_bounds(
    n: np.ndarray,
    mean: np.ndarray,
    squares: np.ndarray,
    runs: np.ndarray,
    binary: np.ndarray,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds of each cell's pass share ``mean`` (NaN for fewer than two
    units). ``binary`` cells have 0/1 units: n trials. Otherwise the units are per-input
    shares and the trials are the effective sample size p(1 − p)/(s²/n) — never fewer than
    the inputs (a share in 0–1 has s² ≤ p(1 − p)), capped at the ``runs``."""
    from statistics import NormalDist

    import numpy as np

    low, high = np.full(len(n), np.nan), np.full(len(n), np.nan)
    many = n >= 2
    if not many.any():
        return low, high
    p, units = mean[many], n[many].astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        effective = units * units * p * (1 - p) / squares[many]
    trials = np.where(binary[many], units, np.clip(effective, units, runs[many]))
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    denominator = 2 * (trials + z * z)
    centre = (2 * trials * p + z * z) / denominator
    half = z / denominator * np.sqrt(4 * trials * p * (1 - p) + z * z)
    # All passes or none: the bound on that side is exactly 1 or 0.
    low[many] = np.where(p == 0.0, 0.0, np.maximum(centre - half, 0.0))
    high[many] = np.where(p == 1.0, 1.0, np.minimum(centre + half, 1.0))
    return low, high


def _cell_totals(column: pd.Series, codes: np.ndarray, size: int, mean: bool) -> np.ndarray:
    """Each cell's mean (``mean``) or sum of a numeric column over its runs, missing values
    left out; NaN for a cell without any value."""
    import numpy as np
    import pandas as pd

    values = (
        column.to_numpy(dtype="float64", na_value=np.nan)
        if pd.api.types.is_float_dtype(column.dtype)
        else pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    )
    present = ~np.isnan(values)
    counts = np.bincount(codes[present], minlength=size)
    totals = _sums(codes[present], values[present], size)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = totals / counts if mean else totals
    out[counts == 0] = np.nan
    return out


# -- cell_summary ---------------------------------------------------------------------------


def cell_summary(
    df: pd.DataFrame,
    score: str,
    *,
    confidence: float = 0.95,
    threshold: float | None = None,
) -> pd.DataFrame:
    """One row per model · version cell, best first: how well it scores on ``score``.

    Columns:

    - ``runs``: the cell's runs; ``scored``: those with a score; ``inputs``: its input rows
      (distinct ``var.*`` values) with a score; ``k``: repeats per input (the most runs
      any input has in the cell).
    - ``mean``, ``ci_low``, ``ci_high``: the mean score and its ``confidence`` interval.
      Method: each input's scored repeats are averaged, then the mean of these per-input
      means gets a Student t interval (n = inputs, n − 1 degrees of freedom). Repeats of
      one input are correlated, so treating them as independent runs would give intervals
      too narrow. A cell that saw a single input uses its runs as the units instead; with
      fewer than two units the bounds are NaN. For a pass/fail score (every value 0 or 1)
      the interval is Wilson's score interval instead, which stays within 0–1 (3 passes of
      3 give 0.44–1, not 1–1): k passing units of n when every unit is 0 or 1 (one repeat
      per input, repeats that agree, or the runs of a single input); otherwise over the
      effective number of runs n·p(1 − p)/s² (p the mean, s² the population variance of
      the per-input means: Kish's design effect, kept between the inputs and the scored
      runs, as Korn & Graubard do).
    - ``pass rate``: the share of scored runs that pass; ``pass^k``: the share of inputs
      whose scored repeats all pass; ``pass@k``: the share of inputs with at least one
      passing repeat. A run passes when its score is 1 for a pass/fail score (every value of
      the column is 0 or 1), or when it is ≥ ``threshold`` if one is given; for other
      scores without a threshold these three are NaN.
    - ``mean latency_s`` and ``total cost_usd`` over all the cell's runs (when the frame has
      those columns).

    Rows are ordered by ``mean``, highest first (cells without a score last; ties keep the
    frame's order). The index is the cell label, as in ``compare()``'s columns.
    """
    import numpy as np
    import pandas as pd

    _check_frame(df, "cell_summary")
    confidence = _check_confidence(confidence)
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise InvalidInputError(
            f"threshold= takes a number (a run passes when its score is at least that), not "
            f"{shown(threshold, 40)}"
        )
    column = score_column(df, score)
    codes, labels = _cells(df)
    size = len(labels)
    values = _scores(df, column).to_numpy()
    zero_one = _is_pass_fail(values)
    pass_fail = threshold is not None or zero_one
    passed = (values >= threshold).astype("float64") if threshold is not None else values

    # Cells and inputs are numbered once for the whole frame and each (cell, input) pair is
    # an integer: every statistic below is a weighted count over those numbers.
    inputs = _input_codes(df)
    pair = pd.factorize(codes * (int(inputs.max(initial=0)) + 1) + inputs)[0]
    pairs = int(pair.max(initial=-1)) + 1
    pair_cell = np.zeros(pairs, dtype="int64")
    pair_cell[pair] = codes  # a pair lies in one cell
    runs = np.bincount(codes, minlength=size)
    k = np.zeros(size, dtype="int64")
    np.maximum.at(k, pair_cell, np.bincount(pair, minlength=pairs))

    has = ~np.isnan(values)
    scored_cell, scored_pair, scored_values = codes[has], pair[has], values[has]
    scored = np.bincount(scored_cell, minlength=size)
    tries = np.bincount(scored_pair, minlength=pairs)  # scored repeats of each pair
    seen = tries > 0
    unit_cell = pair_cell[seen]
    unit_means = _sums(scored_pair, scored_values, pairs)[seen] / tries[seen]
    n_inputs = np.bincount(unit_cell, minlength=size)
    units = _unit_moments(unit_cell, unit_means, size)
    single = n_inputs == 1
    if single.any():  # a cell that saw one input: its runs are the units
        by_run = _unit_moments(scored_cell, scored_values, size)
        units = (
            np.where(single, by_run[0], units[0]),
            np.where(single, by_run[1], units[1]),
            np.where(single, by_run[2], units[2]),
        )
    n, mean, squares = units
    if zero_one:
        binary = (unit_means == 0.0) | (unit_means == 1.0)
        every_unit_binary = single | (np.bincount(unit_cell[~binary], minlength=size) == 0)
        low, high = _wilson_bounds(n, mean, squares, scored, every_unit_binary, confidence)
    else:
        low, high = _t_bounds(n, mean, squares, confidence)

    rates = np.full((3, size), np.nan)  # pass rate, pass^k, pass@k
    if pass_fail:
        wins = _sums(scored_pair, passed[has] == 1.0, pairs)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[0] = _sums(scored_cell, passed[has], size) / scored
            rates[1] = np.bincount(pair_cell[seen & (wins == tries)], minlength=size) / n_inputs
            rates[2] = np.bincount(pair_cell[wins > 0], minlength=size) / n_inputs
        rates[:, scored == 0] = np.nan
    columns: dict[str, Any] = {
        "runs": runs.astype("int64"),
        "scored": scored.astype("int64"),
        "inputs": n_inputs.astype("int64"),
        "k": k,
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "pass rate": rates[0],
        "pass^k": rates[1],
        "pass@k": rates[2],
    }
    if "latency_s" in df.columns:
        columns["mean latency_s"] = _cell_totals(df["latency_s"], codes, size, mean=True)
    if "cost_usd" in df.columns:
        columns["total cost_usd"] = _cell_totals(df["cost_usd"], codes, size, mean=False)
    order = np.argsort(-np.where(np.isnan(mean), -np.inf, mean), kind="stable")
    out = pd.DataFrame(
        {name: values[order] for name, values in columns.items()},
        index=pd.Index(labels.to_numpy(dtype=object)[order], name="model · version"),
    )
    out.attrs.update(score=column, confidence=confidence)
    return out


# -- significance ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Significance:
    """The difference between two cells on one score: ``b``'s mean minus ``a``'s.

    ``difference`` = mean(b) − mean(a), with its ``confidence`` interval ``ci_low``–
    ``ci_high`` (percentile bootstrap) and the two-sided ``p_value`` of a permutation test.
    ``paired``: the units were input rows seen by both cells (``n`` pairs); otherwise
    ``n = n_a + n_b`` units of the two cells. ``verdict`` says it in words; ``str()`` is it.
    """

    a: str
    b: str
    score: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_a: int
    n_b: int
    paired: bool
    unit: str
    confidence: float
    method: str
    verdict: str

    def __str__(self) -> str:
        return self.verdict

    def _repr_html_(self) -> str:
        details = (
            f"{self.score}: mean({self.b}) − mean({self.a}) = {self.difference:.4g}; {self.method}"
        )
        return (
            f"<div><p>{html.escape(self.verdict)}</p>"
            f'<p style="font-size:smaller">{html.escape(details)}</p></div>'
        )


def _resolve(df: pd.DataFrame, labels: pd.Series, which: str, name: Any) -> str:
    """The cell ``name`` designates: a cell label, a version (3, "3", "v3"), a release label,
    a model, ``provider/model`` or ``model · vN`` — whichever matches exactly one cell."""
    cells = list(dict.fromkeys(labels))
    listing = "; ".join(cells)
    if isinstance(name, bool) or not isinstance(name, str | int) or name == "":
        raise InvalidInputError(
            f"{which}= takes a cell (a version number, a model or a label: {listing}), not "
            f"{shown(name, 40)}"
        )
    firsts = [i for i, dup in enumerate(labels.duplicated().to_numpy()) if not dup]
    heads = df.iloc[firsts]
    heads = heads if "release_label" in heads.columns else heads.assign(release_label=None)
    versions = version_label(heads).tolist()
    matches = []
    for position, (index, version) in enumerate(zip(firsts, versions, strict=True)):
        row = heads.iloc[position]
        number = version.split(" ", 1)[0][1:]  # "v3 (prod)" → "3"
        if isinstance(name, int):
            hit = number == str(name)
        else:
            model, provider, tag = str(row["model"]), row.get("provider"), row["release_label"]
            names = {labels.iloc[index], model, version, f"{model} · {version}", number}
            names.add(f"v{number}")
            if isinstance(provider, str):
                names.add(f"{provider}/{model}")
            if isinstance(tag, str) and tag:
                names.add(tag)
            hit = name in names
        if hit:
            matches.append(labels.iloc[index])
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InvalidInputError(f"{which}={name!r} matches no cell: the cells are {listing}")
    raise InvalidInputError(
        f"{which}={name!r} matches {len(matches)} cells ({'; '.join(matches)}): give one of "
        f"{listing}"
    )


def _short_names(a: str, b: str) -> tuple[str, str]:
    """The parts of two labels that tell them apart (``v3`` and ``v2`` for one model)."""
    pa, pb = a.split(" · ", 1), b.split(" · ", 1)
    if len(pa) == len(pb) == 2:
        if pa[0] == pb[0]:
            return pa[1], pb[1]
        if pa[1] == pb[1]:
            return pa[0], pb[0]
    return a, b


def _units(scored: pd.DataFrame) -> pd.Series:
    """A cell's per-input mean scores, indexed by input."""
    return scored.groupby("input", sort=False)["score"].mean()


def _p_value(null: np.ndarray, observed: float, exact: bool) -> float:
    """Two-sided p: twice the smaller one-sided share (scipy's convention), with the +1 of a
    random sample of the null distribution."""
    gamma = 1e-10 * max(1.0, abs(observed))  # equal statistics computed in another order
    greater = int((null >= observed - gamma).sum())
    less = int((null <= observed + gamma).sum())
    total = len(null)
    if not exact:
        greater, less, total = greater + 1, less + 1, total + 1
    return min(1.0, 2 * min(greater, less) / total)


def _batches(resamples: int, width: int) -> list[int]:
    size = max(1, _BATCH_VALUES // max(1, width))
    return [min(size, resamples - start) for start in range(0, resamples, size)]


def _paired_test(
    d: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float, np.ndarray, bool]:
    import numpy as np

    n = len(d)
    observed = float(d.mean())
    if 2**n <= resamples:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        return _p_value(signs @ d / n, observed, exact=True), _paired_boot(d, resamples, rng), True
    null = np.concatenate(
        [(rng.integers(0, 2, size=(m, n)) * 2 - 1) @ d / n for m in _batches(resamples, n)]
    )
    return _p_value(null, observed, exact=False), _paired_boot(d, resamples, rng), False


def _paired_boot(d: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    n = len(d)
    return np.concatenate(
        [d[rng.integers(0, n, size=(m, n))].mean(axis=1) for m in _batches(resamples, n)]
    )


def _unpaired_test(
    xa: np.ndarray, xb: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float, np.ndarray, bool]:
    import numpy as np

    na, nb = len(xa), len(xb)
    pooled = np.concatenate([xa, xb])
    total = float(pooled.sum())
    observed = float(xb.mean() - xa.mean())
    exact = math.comb(na + nb, na) <= resamples
    if exact:
        picks = np.array(list(itertools.combinations(range(na + nb), na)), dtype=np.intp)
        sum_a = pooled[picks].sum(axis=1)
        null = (total - sum_a) / nb - sum_a / na
    else:
        parts = []
        for m in _batches(resamples, na + nb):
            shuffled = rng.permuted(np.broadcast_to(pooled, (m, na + nb)), axis=1)
            parts.append(shuffled[:, na:].mean(axis=1) - shuffled[:, :na].mean(axis=1))
        null = np.concatenate(parts)
    boot = np.concatenate(
        [
            xb[rng.integers(0, nb, size=(m, nb))].mean(axis=1)
            - xa[rng.integers(0, na, size=(m, na))].mean(axis=1)
            for m in _batches(resamples, na + nb)
        ]
    )
    return _p_value(null, observed, exact), boot, exact


def _number(value: float) -> str:
    if value == 0:
        return "0.00"
    return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.2g}"


def _interval(low: float, high: float) -> str:
    if low >= 0 and high >= 0:
        return f"{_number(low)}–{_number(high)}"
    return f"{_number(low)} to {_number(high)}"


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _verdict(result: dict[str, Any], short_a: str, short_b: str) -> str:
    diff, low, high = result["difference"], result["ci_low"], result["ci_high"]
    if diff > 0:
        head = f"{short_b} scores {_number(diff)} higher than {short_a}"
    elif diff < 0:
        head = f"{short_b} scores {_number(-diff)} lower than {short_a}"
        low, high = -high, -low  # the interval of how much lower
    else:
        head = f"{short_b} scores the same as {short_a}"
    level = f"{result['confidence'] * 100:g} %"
    if result["paired"]:
        count = f"{result['n']} paired {result['unit']}{'s' if result['n'] != 1 else ''}"
    else:
        count = f"{result['n_a']} vs {result['n_b']} {result['unit']}s, unpaired"
    return f"{head} ({level} CI {_interval(low, high)}, {_p_text(result['p_value'])}, {count})"


def significance(
    df: pd.DataFrame,
    score: str,
    a: str | int,
    b: str | int,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int | None = 0,
) -> Significance:
    """How much higher cell ``b`` scores than cell ``a`` on ``score``, and how sure that is.

    ``a``/``b``: a cell label as in ``compare()``'s columns, or anything that names exactly
    one cell: a version (``3``, ``"v3"``), a release label, a model. The difference is
    mean(b) − mean(a) over per-input mean scores (repeats of an input averaged first).

    - **Paired** when both cells saw the same input rows (``var.*`` values): the units are
      the inputs scored in both cells, d = b − a per input; the p-value comes from a
      sign-flip permutation test of mean(d) (every sign pattern when there are at most
      ``resamples`` of them, else ``resamples`` random ones), the interval from a percentile
      bootstrap of mean(d) over inputs.
    - **Unpaired** otherwise: a permutation test of the cell labels (exact when the
      rearrangements are at most ``resamples``) and a percentile bootstrap resampling each
      cell on its own. A cell that saw one input uses its runs as units.

    p-values are two-sided (twice the smaller one-sided share, as
    ``scipy.stats.permutation_test``; a random sample counts the observed statistic once
    more). The same ``seed`` gives the same result; ``seed=None`` draws a fresh one.
    """
    import numpy as np

    _check_frame(df, "significance")
    confidence = _check_confidence(confidence)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InvalidInputError(
            f"resamples= takes a whole number ≥ 1, e.g. 10_000, not {shown(resamples, 40)}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInputError(f"seed= takes a whole number or None, not {shown(seed, 40)}")
    column = score_column(df, score)
    work = _scored_frame(df, column)
    labels = work["cell"]
    cell_a = _resolve(df, labels, "a", a)
    cell_b = _resolve(df, labels, "b", b)
    if cell_a == cell_b:
        raise InvalidInputError(
            f"a={a!r} and b={b!r} are the same cell ({cell_a}): give two different cells"
        )
    seen_a = set(work.loc[labels == cell_a, "input"])
    seen_b = set(work.loc[labels == cell_b, "input"])
    scored = work[work["score"].notna()]
    rows_a, rows_b = scored[scored["cell"] == cell_a], scored[scored["cell"] == cell_b]
    for cell, rows in ((cell_a, rows_a), (cell_b, rows_b)):
        if rows.empty:
            raise InvalidInputError(f"Cell {cell} has no {column} scores to compare")
    rng = np.random.default_rng(seed)
    means_a, means_b = _units(rows_a), _units(rows_b)
    paired = seen_a == seen_b and len(seen_a) > 1
    common = [key for key in means_a.index if key in means_b.index] if paired else []
    if paired and len(common) >= 1:
        d = means_b[common].to_numpy(dtype="float64") - means_a[common].to_numpy(dtype="float64")
        p, boot, exact = _paired_test(d, resamples, rng)
        difference, n, n_a, n_b, unit = float(d.mean()), len(d), len(common), len(common), "input"
        test = "paired sign-flip permutation test"
    else:
        paired = False
        one_input = len(means_a) == 1 or len(means_b) == 1
        unit = "run" if one_input else "input"
        if one_input:
            xa, xb = rows_a["score"].to_numpy("float64"), rows_b["score"].to_numpy("float64")
        else:
            xa, xb = means_a.to_numpy("float64"), means_b.to_numpy("float64")
        p, boot, exact = _unpaired_test(xa, xb, resamples, rng)
        difference, n_a, n_b = float(xb.mean() - xa.mean()), len(xa), len(xb)
        n = n_a + n_b
        test = "permutation test of the cell labels"
    alpha = (1 - confidence) / 2
    low, high = (float(v) for v in np.percentile(boot, [100 * alpha, 100 * (1 - alpha)]))
    method = (
        f"{test} ({'exact' if exact else f'{resamples} random rearrangements'}), "
        f"{confidence * 100:g} % percentile bootstrap interval ({resamples} resamples), "
        f"over per-{unit} mean scores"
    )
    result: dict[str, Any] = dict(
        a=cell_a,
        b=cell_b,
        score=column,
        difference=difference,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n=n,
        n_a=n_a,
        n_b=n_b,
        paired=paired,
        unit=unit,
        confidence=confidence,
        method=method,
    )
    return Significance(**result, verdict=_verdict(result, *_short_names(cell_a, cell_b)))


__all__: Sequence[str] = (
    "Significance",
    "cell_labels",
    "cell_summary",
    "input_keys",
    "score_column",
    "significance",
    "t_quantile",
)
