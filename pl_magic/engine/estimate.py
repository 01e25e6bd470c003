"""What a comparison will cost, before it starts.

Each distinct (version, model, input row) of a planned comparison is prepared once with
:meth:`Engine.prepare` (the template resolved and rendered, the request built: no provider
call) and its input counted; repeats of it cost the same.

- **Input tokens** are approximated as one token per four characters of the rendered text
  (message texts, and tool or schema definitions as JSON) plus
  :data:`TOKENS_PER_MESSAGE` per message. No exact tokenizer is used: tiktoken downloads its
  BPE files on first use, which a machine without internet cannot do, and no package on PyPI
  ships the ``o200k_base`` file that current OpenAI models use. For English text the
  approximation is usually within 10–20 % of the provider's count.
- **Output tokens** are counted at the template's maximum (``max_tokens``,
  ``max_output_tokens``, ``max_completion_tokens``: any name the provider maps to it), or
  :data:`DEFAULT_MAX_OUTPUT` when the template sets none.
- **Cost** comes from genai-prices: the low end is the input alone, the high end the input
  plus the maximum output. The embedded local model costs $0; a model with no known price
  (or a template pointing at its own server) makes the cost unknown. A run whose preparation
  fails (a missing variable or key) fails the same way before any call and costs nothing.
- ``run_many`` without a budget prepares at most :data:`ESTIMATE_SAMPLE` input rows of each
  version × model and scales them (the estimate is then only shown, and preparing every row
  would add a render per run); with a budget, and in ``%%plrun``, every row is prepared.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import render_budget
from ..core.errors import InvalidInputError, PlMagicError, shown
from . import pricing
from .engine import PreparedRun

if TYPE_CHECKING:
    from .batch import Batch, PlannedRun

#: Characters per token in the approximation.
CHARS_PER_TOKEN = 4
#: Tokens each chat message adds for its role and separators (OpenAI's chat format adds 3-4).
TOKENS_PER_MESSAGE = 3
#: The output tokens assumed for a template that sets no maximum.
DEFAULT_MAX_OUTPUT = 4096
#: The input rows of each version × model that ``run_many`` without a budget prepares for
#: its estimate (the rest are scaled from them).
ESTIMATE_SAMPLE = 16
#: Seconds all of an unbudgeted estimate's renders may take together (then it gives up).
ESTIMATE_TIME_S = 1.0

_TEXT_KEYS = frozenset({"text", "content", "template"})
_JSON_KEYS = frozenset({"tools", "functions", "tool_choice", "function_call", "output_schema"})


@dataclass(frozen=True)
class Estimate:
    """A comparison's estimated size and cost."""

    runs: int
    input_tokens: int
    #: Output tokens at each run's maximum (the high end).
    output_tokens: int
    #: USD, input only; None when some run's price is unknown.
    low_usd: float | None
    #: USD, input plus the maximum output; None when some run's price is unknown.
    high_usd: float | None
    #: ``provider/model`` of the runs with no known price.
    unpriced: tuple[str, ...] = field(default=())
    #: The templates took too long to render for an estimate (see ``time_limit_s``).
    gave_up: bool = False

    @property
    def known(self) -> bool:
        """True when every run has a price (the local model's is $0)."""
        return self.high_usd is not None

    def summary(self) -> str:
        """One line: ``48 runs · ≈ 31k input tokens · $0.04–$0.19``."""
        runs = f"{self.runs} run" + ("" if self.runs == 1 else "s")
        if self.gave_up:
            return f"{runs} · no estimate: the templates take too long to render"
        tokens = f"≈ {tokens_text(self.input_tokens)} input tokens"
        if self.low_usd is None or self.high_usd is None:
            cost = "cost unknown (no price for " + ", ".join(self.unpriced[:3])
            cost += ", …)" if len(self.unpriced) > 3 else ")"
        elif self.high_usd == 0:
            cost = "$0"
        else:
            cost = f"{usd_text(self.low_usd)}–{usd_text(self.high_usd)}"
        return f"{runs} · {tokens} · {cost}"


def tokens_text(n: int) -> str:
    """``812``, ``31k``, ``1.2M``."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def usd_text(value: float) -> str:
    """Dollars with cents, or two significant digits under a cent (``$0.0012``)."""
    if value <= 0:
        return "$0"
    if value < 0.01:
        digits = 1 - math.floor(math.log10(value))
        return f"${value:.{digits}f}".rstrip("0")
    return f"${value:,.2f}"


def count_tokens(rendered: Mapping[str, Any]) -> int:
    """The approximate input tokens of a rendered template (see the module's docstring)."""
    chars = 0
    for text in _texts(rendered):
        chars += len(text)
    messages = rendered.get("messages")
    count = len(messages) if isinstance(messages, list) else 1
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * count


def _texts(node: Any, key: str | None = None) -> Iterable[str]:
    if key in _JSON_KEYS and node:
        yield json.dumps(node, default=str, separators=(",", ":"))
    elif isinstance(node, str):
        if key in _TEXT_KEYS:
            yield node
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _texts(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item, key)


def max_output(provider: Any, spec: Any) -> int:
    """The template's maximum output tokens, or :data:`DEFAULT_MAX_OUTPUT`."""
    params: Mapping[str, Any] = spec.parameters or {}
    try:
        canonical, _ = provider.parameters_for(spec.api_type, spec.name).to_canonical(params)
    except Exception:  # an unusual template must not stop the estimate
        canonical = {}
    for value in (
        canonical.get("max_tokens"),
        *(params.get(k) for k in ("max_tokens", "max_output_tokens", "max_completion_tokens")),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_MAX_OUTPUT


def estimate(
    batch: Batch, sample: int | None = None, time_limit_s: float | None = None
) -> Estimate:
    """Estimate ``batch``'s tokens and cost; no provider is called.

    ``sample``: prepare at most this many input rows (evenly spaced) of each version ×
    model and scale their tokens and cost to all its runs, so that a large comparison is
    estimated in a bounded time (``run_many`` without a budget); None: every row.
    ``time_limit_s``: the most all the estimate's renders may take together; past it the
    estimate gives up (``gave_up``, no cost) rather than hold up the runs.
    """
    if time_limit_s is not None:
        with render_budget.render_budget(timeout_s=time_limit_s) as shared:
            found = estimate(batch, sample)
        if time.monotonic() > shared.deadline:
            return Estimate(len(batch.runs), 0, 0, None, None, gave_up=True)
        return found
    strata: dict[tuple[Any, ...], dict[Any, tuple[PlannedRun, int]]] = {}
    for planned in batch.runs:  # repeats of a run cost the same: prepared once
        rows = strata.setdefault(
            (planned.version, planned.label, planned.provider, planned.model), {}
        )
        seen = rows.get(planned.input_index)
        rows[planned.input_index] = (planned, 1) if seen is None else (seen[0], seen[1] + 1)
    total_in = total_out = 0.0
    low: float | None = 0.0
    high: float | None = 0.0
    unpriced: list[str] = []
    for rows in strata.values():
        chosen = list(rows.values())
        if sample is not None and len(chosen) > sample:
            step = len(chosen) / sample
            chosen = [chosen[int(i * step)] for i in range(sample)]
        # each chosen row stands for its share of the stratum's runs
        scale = sum(n for _, n in rows.values()) / sum(n for _, n in chosen)
        for planned, n in chosen:
            count = n * scale
            prepared = _prepare(batch, planned)
            if prepared is None:  # fails the same way when run, before any call: costs nothing
                continue
            in_tokens = count_tokens(prepared.rendered)
            out_tokens = max_output(prepared.provider, prepared.spec)
            total_in += in_tokens * count
            total_out += out_tokens * count
            if getattr(prepared.spec, "local_model", False):
                continue  # the embedded local model: $0
            price_id = prepared.provider.pricing_provider_id(prepared.spec)
            cheap = pricing.cost_usd(price_id, prepared.spec.name, in_tokens, 0)
            dear = pricing.cost_usd(price_id, prepared.spec.name, in_tokens, out_tokens)
            if cheap is None or dear is None:
                name = f"{prepared.spec.provider}/{prepared.spec.name}"
                if name not in unpriced:
                    unpriced.append(name)
                low = high = None
            elif low is not None and high is not None:
                low += cheap * count
                high += dear * count
    return Estimate(len(batch.runs), round(total_in), round(total_out), low, high, tuple(unpriced))


def _prepare(batch: Batch, planned: PlannedRun) -> PreparedRun | None:
    """``planned`` prepared as its run will be, or None when that fails (no call made)."""
    try:
        return batch.engine.prepare(batch.options_of(planned))
    except PlMagicError:
        return None


def check_budget_value(budget: Any) -> float | None:
    """``budget=`` / ``--budget``: None or a number of US dollars ≥ 0."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget >= 0:
        raise InvalidInputError(
            f"budget must be a number of US dollars ≥ 0, e.g. 0.50, not {shown(budget, 40)}"
        )
    return float(budget)


def before_start(batch: Batch, option: str = "budget=") -> Estimate:
    """What a comparison shows before it starts, checked against ``batch.budget`` (see
    :func:`check_budget`): with a budget every row is prepared, so that the check holds;
    without one, :data:`ESTIMATE_SAMPLE` rows of each version × model within
    :data:`ESTIMATE_TIME_S` (the estimate is only shown, and must not hold up the runs)."""
    if batch.budget is not None:
        found = estimate(batch)
    else:
        found = estimate(batch, sample=ESTIMATE_SAMPLE, time_limit_s=ESTIMATE_TIME_S)
    check_budget(found, batch.budget, option)
    return found


def check_budget(estimate: Estimate, budget: float | None, option: str = "budget=") -> None:
    """Refuse a comparison that may cost more than ``budget`` (USD), or whose cost is unknown.

    ``option`` names how the user raises the budget (``budget=`` or ``--budget``).
    """
    if budget is None:
        return
    if estimate.high_usd is None:
        raise InvalidInputError(
            f"Not started: with a budget the cost must be known, and it is not "
            f"({estimate.summary()}); leave out {option.rstrip('=')} to run it anyway"
        )
    if estimate.high_usd > budget:
        raise InvalidInputError(
            f"Not started: this comparison may cost up to {usd_text(estimate.high_usd)} "
            f"({estimate.summary()}), more than the budget {usd_text(budget)}: raise it, e.g. "
            f"{option}{_round_up(estimate.high_usd)}, or plan fewer runs or a lower max_tokens"
        )


def _round_up(value: float) -> str:
    """A budget just above ``value``, written simply."""
    for step in (0.01, 0.1, 1.0, 10.0, 100.0):
        if value < step * 100:
            return f"{math.ceil(value / step) * step:.2f}".rstrip("0").rstrip(".")
    return f"{math.ceil(value)}"
