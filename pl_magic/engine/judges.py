"""Judges: registry prompts that score another run's output.

``judge:NAME`` (``judge:NAME@label``, ``judge:NAME@3``) names a prompt of the registry,
versioned and labelled like any other. The label is resolved once, when the scorer is
made, so that every run of a comparison is judged by the same version even if the label
moves meanwhile; that version is the score's ``scorer_version``.

A judge's template sees the judged reply as ``output``, the expected answer as
``expected`` (when the row has one) and the run's input variables under their own names.
Its reply is forced into :data:`JUDGEMENT_SCHEMA` (``{score, reason}``) through
PromptLayer's ``response_format``, which each provider adapter turns into its own
structured output. A judge run is logged like any run, with the judged run's local id in
its metadata (:data:`JUDGED_RUN_KEY`) and the tag :data:`JUDGE_TAG`.

A reply that is not such an object is asked for once more; a second bad reply, or a
failed call, is that row's error score. With ``repeat=k`` each output is judged k times:
the score is the mean, and ``<name>.agreement`` (the share of the k verdicts that agree
with the majority) shows a judge that cannot make up its mind.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import notices
from ..core.blueprint import reply_text
from ..core.errors import (
    InvalidInputError,
    InvalidOutputError,
    PlMagicError,
    redact,
    redact_data,
    shown,
)
from ..core.plain_data import is_missing
from ..registry import starters
from ..runlog.scores import AGREEMENT_SUFFIX
from .scoring import Item, Score, Scorer, one_line

if TYPE_CHECKING:
    from .engine import Engine

#: What a judge's reply must be: a score from 0 to 1 and one line of reason.
JUDGEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "description": "from 0 (wrong) to 1 (right)"},
        "reason": {"type": "string", "description": "one short sentence"},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
#: PromptLayer's ``response_format`` asking for :data:`JUDGEMENT_SCHEMA`.
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "judgement", "schema": JUDGEMENT_SCHEMA, "strict": True},
}
#: The metadata key of a judge run that holds the judged run's local id.
JUDGED_RUN_KEY = "pl_magic_judged_run"
#: The tag of every judge run.
JUDGE_TAG = "pl_magic-judge"
#: A judge's score at or above this passes.
PASS_AT = 0.5
#: Replies asked for per judgement: the first, and one more when it was not valid.
ATTEMPTS = 2


def parse_judge_target(arg: str) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME@label`` or ``NAME@3`` → (name, version, label)."""
    name, sep, at = str(arg).strip().partition("@")
    name, at = name.strip(), at.strip()
    if not name or (sep and not at):
        raise InvalidInputError(
            f"judge:{arg} needs a registry prompt: write judge:NAME, judge:NAME@label or "
            "judge:NAME@3 (e.g. judge:judge-correct)"
        )
    if not sep:
        return name, None, None
    if at.isascii() and at.isdigit():  # "²".isdigit() is True too, and int() refuses it
        return name, int(at), None
    return name, None, at


def judgement_of(text: str) -> tuple[float, str | None]:
    """A judge's reply → (score, reason); ValueError naming what is wrong (quoting the
    reply with secrets redacted before it is cut, so no part of a key is quoted)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"not JSON: {shown(redact(text), 60)}") from None
    if not isinstance(data, Mapping) or "score" not in data:
        raise ValueError(f"not an object with a score: {shown(redact(text), 60)}")
    value = data["score"]
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    if not isinstance(value, int | float) or math.isnan(value) or not 0 <= value <= 1:
        raise ValueError(f"score {shown(redact_data(value), 20)} is not a number from 0 to 1")
    reason = data.get("reason")
    return float(value), None if reason is None else one_line(str(reason))


@dataclass(frozen=True)
class JudgeScorer(Scorer):
    """A judge as a scorer. Its scores carry the scorer's name, also once renamed with
    ``("strict", "judge:NAME")`` (``dataclasses.replace`` builds a new one, and
    :meth:`__post_init__` binds the batch to the new name)."""

    judge: Judge | None = None

    def __post_init__(self) -> None:
        if self.judge is not None:
            object.__setattr__(self, "score_many", self._score_many)

    def _score_many(self, items: Sequence[Item], expected: str) -> list[list[Score]]:
        assert self.judge is not None
        verdicts = self.judge.score_many(items, expected)
        spec = self.judge.name
        if self.name == spec:
            return verdicts
        # "judge:NAME" -> "strict", "judge:NAME.agreement" -> "strict.agreement"
        return [
            [dataclasses.replace(s, name=self.name + s.name[len(spec) :]) for s in scores]
            for scores in verdicts
        ]


class Judge:
    """One judge prompt, pinned to a version, scoring outputs through the engine."""

    def __init__(
        self,
        engine: Engine,
        spec: str,
        repeat: int = 1,
        concurrency: int = 8,
        run_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise InvalidInputError(
                f"judge_repeat must be a whole number of at least 1, not {shown(repeat, 20)}"
            )
        self.engine = engine
        self.name = spec
        self.prompt_name, version, label = parse_judge_target(spec.partition(":")[2])
        self.repeat = repeat
        self.concurrency = max(1, int(concurrency))
        #: Passed to every judge run (e.g. ``group_id``).
        self.run_kwargs = dict(run_kwargs or {})
        try:
            record = self._find(version, label)
        except PlMagicError as exc:
            raise InvalidInputError(
                f"scorer {spec}: {exc}".rstrip(".")
                + " (a judge is a registry prompt: publish it first, e.g. the starter "
                "judge-correct)"
            ) from None
        self.version: int | None = record.get("version")

    def _find(self, version: int | None, label: str | None) -> dict[str, Any]:
        """The judge's template; a local registry seeded before the judge starter existed
        gets it now."""
        registry = self.engine.registry
        try:
            return registry.get(self.prompt_name, version=version, label=label)
        except PlMagicError:
            if registry.kind != "local" or self.prompt_name in registry.names():
                raise
            if not starters.seed_one(registry, self.prompt_name):
                raise
            notices.warn(f"added the starter judge {self.prompt_name!r} to the registry")
            return registry.get(self.prompt_name, version=version, label=label)

    def scorer(self) -> Scorer:
        """This judge as a scorer (``source`` judge, ``version`` the prompt version)."""
        return JudgeScorer(
            self.name,
            lambda output, expected, row: self._judge_once(None, output, expected, row),
            source="judge",
            version=None if self.version is None else str(self.version),
            judge=self,
        )

    def _run(
        self,
        request_id: str | None,
        output: str,
        expected: Any,
        row: Mapping[str, Any],
        repeat_index: int = 0,
    ) -> str:
        from .engine import RunOptions

        variables = {str(k): v for k, v in row.items()}
        variables["output"] = output
        if is_missing(expected):
            variables.pop("expected", None)
        else:
            variables["expected"] = expected
        metadata = dict(self.run_kwargs.get("metadata") or {})
        if request_id is not None:
            metadata[JUDGED_RUN_KEY] = str(request_id)
        options = RunOptions.build(
            self.prompt_name,
            prompt_version=self.version,
            input_variables=variables,
            model_parameter_overrides={"response_format": RESPONSE_FORMAT},
            metadata=metadata,
            tags=[*(self.run_kwargs.get("tags") or []), JUDGE_TAG],
            group_id=self.run_kwargs.get("group_id"),
            repeat_index=repeat_index,
        )
        try:
            result = self.engine.run(options)
        except InvalidOutputError as exc:  # not JSON: the caller asks again, then says so
            return exc.partial_text
        return reply_text(result["prompt_blueprint"])

    def _judge_once(
        self,
        request_id: str | None,
        output: str,
        expected: Any,
        row: Mapping[str, Any],
        repeat_index: int = 0,
    ) -> dict[str, Any]:
        """One judgement, asked for again once when the reply is not valid; raises the
        reason when neither reply is (the caller makes it an error score)."""
        problem = ""
        for _ in range(ATTEMPTS):
            text = self._run(request_id, output, expected, row, repeat_index)
            try:
                value, reason = judgement_of(text)
            except ValueError as exc:
                problem = str(exc)
                continue
            return {"score": value, "reason": reason}
        raise ValueError(f"the judge answered {problem} twice; its last reply is logged")

    def _verdict(self, item: Item, expected_column: str) -> list[Score]:
        request_id, output, row = item
        expected = row.get(expected_column)
        version = None if self.version is None else str(self.version)
        values: list[float] = []
        reasons: list[str | None] = []
        for index in range(self.repeat):
            try:
                outcome = self._judge_once(request_id, output or "", expected, row, index)
            except Exception as exc:  # the row's error, never the comparison's
                message = (
                    str(exc)
                    if isinstance(exc, PlMagicError | ValueError)
                    else (f"{type(exc).__name__}: {exc}")
                )
                # the message may quote the judge's reply, which may quote anything it saw
                error = Score(
                    self.name, math.nan, None, one_line(redact(message)), "judge", version, True
                )
                return [error] if self.repeat == 1 else [error, self._agreement(None)]
            values.append(outcome["score"])
            reasons.append(outcome["reason"])
        mean = sum(values) / len(values)
        passed = mean >= PASS_AT
        reason = reasons[0]
        if self.repeat == 1:
            return [Score(self.name, mean, passed, reason, "judge", version)]
        votes = [v >= PASS_AT for v in values]
        agree = max(votes.count(True), votes.count(False))
        summary = f"{agree}/{self.repeat} agree" + (f"; {reason}" if reason else "")
        return [
            Score(self.name, mean, passed, one_line(summary), "judge", version),
            self._agreement(agree / self.repeat),
        ]

    def _agreement(self, share: float | None) -> Score:
        version = None if self.version is None else str(self.version)
        if share is None:
            return Score(
                f"{self.name}{AGREEMENT_SUFFIX}",
                math.nan,
                None,
                "the judge failed",
                "judge",
                version,
                True,
            )
        return Score(f"{self.name}{AGREEMENT_SUFFIX}", share, None, None, "judge", version)

    def score_many(self, items: Sequence[Item], expected: str) -> list[list[Score]]:
        """Judge every item, :attr:`concurrency` at a time; one list of scores per item
        (with ``repeat`` > 1, the score and its agreement)."""
        if not items:
            return []
        workers = min(self.concurrency, len(items))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pl_magic-judge")
        futures = [pool.submit(self._verdict, item, expected) for item in items]
        interrupted = False
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            # The kernel's interrupt (or a call that raised it) stops the pass, not the
            # comparison: the runs and the other scorers' scores are kept with what the judge
            # said so far; calls not started are cancelled, those in flight are not awaited.
            interrupted = True
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        out = [_done(future) for future in futures]
        missed = sum(1 for scores in out if not scores)
        notices.warn(
            f"interrupted: {self.name} judged {len(out) - missed} of {len(out)} runs; "
            "pl_magic.score(df, [...]) judges them again"
        )
        return out


def _done(future: Future[list[Score]]) -> list[Score]:
    """A judgement that ended before the interrupt; no score for one that did not."""
    if not future.done() or future.cancelled() or future.exception() is not None:
        return []
    return future.result()


def judge_factory(
    engine: Engine,
    repeat: int = 1,
    concurrency: int = 8,
    run_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """What :func:`~pl_magic.engine.scoring.parse_scorers` calls for a ``judge:`` spec."""

    def make(spec: str) -> Scorer:
        return Judge(engine, spec, repeat, concurrency, run_kwargs).scorer()

    return make
