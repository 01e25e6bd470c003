"""Human review of a comparison's runs, without the widget: which runs, in what order, what
is already labelled, and saving a label (``pl_magic.review(df)`` is the surface over this).

A label is what one person said about one run: thumbs up or down, a rating from 1 to 5, a
note; any of them, at least one. It is stored as scores of source ``human`` (see
:mod:`pl_magic.runlog.scores`), so it shows as ``score.<name>`` columns and goes to
PromptLayer as ``track.score`` with the other scores:

- ``human``: 1.0 for thumbs up, 0.0 for down (pass/fail), the note as its reason; with no
  thumbs (a rating or a note alone) its value is None (NaN in ``score.human``);
- ``human.rating``: the rating r on 0–1 as ``(r - 1) / 4`` (so PromptLayer's 0–100 scale
  gets it: 1 → 0, 3 → 50, 5 → 100), with ``"r/5"`` as its reason.

A label replaces the run's earlier one as a whole: the table keeps one row per run, name and
source, and a rating that the new label leaves out is overwritten with an empty one (value
None), never left standing. What a run's label is gets read back from those rows, so a
review resumes after a kernel restart.

The queue is the frame's runs that ended ok and are in the log, in the frame's order (sort
the frame to review in another order), each once. Alongside each run it keeps its input
variables, its expected answer (the frame's ``expected`` column, else the run's input
variable of that name) and the outputs the frame's other runs gave for the same input
variables (the other cells, and other repeats), labelled as ``compare()`` names cells.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidInputError, shown
from ..runlog.scores import ScoreLog, ScoreRow
from ..runlog.sqlite import RunLog
from .labels import cell_label
from .results import _id_text
from .scoring import check_expected

if TYPE_CHECKING:
    import pandas as pd

    from .engine import Engine

#: The score names a label is stored under.
THUMBS = "human"
RATING = "human.rating"
SOURCE = "human"
#: A note longer than this is refused (a note is a sentence or two, not a document).
MAX_NOTE_CHARS = 10_000

_LOG_COLUMNS = (
    "request_id",
    "remote_request_id",
    "prompt_name",
    "prompt_version",
    "release_label",
    "provider",
    "model",
    "input_variables",
    "output",
    "status",
    "error_message",
    "repeat_index",
)


@dataclass(frozen=True)
class Label:
    """One person's label of one run: any of thumbs, a 1–5 rating and a note."""

    thumbs: bool | None = None
    rating: int | None = None
    note: str | None = None

    @property
    def empty(self) -> bool:
        """True when it says nothing (the run is not reviewed)."""
        return self.thumbs is None and self.rating is None and not self.note


def check_label(thumbs: Any = None, score: Any = None, note: Any = None) -> Label:
    """What the person gave as a :class:`Label`; a one-line error naming the fix otherwise."""
    if thumbs is not None and not _is_bool(thumbs):
        raise InvalidInputError(
            f"thumbs= takes True (up), False (down) or None, not {shown(thumbs, 40)}"
        )
    rating: int | None = None
    if score is not None:
        # numpy's numbers too: a rating read back from a DataFrame is np.int64, not int
        whole = isinstance(score, numbers.Integral) or (
            isinstance(score, numbers.Real) and float(score).is_integer()
        )
        if _is_bool(score) or not whole or not 1 <= score <= 5:
            raise InvalidInputError(
                f"score= takes a whole number from 1 to 5 (or None), not {shown(score, 40)}: "
                "e.g. score=4"
            )
        rating = int(score)
    if note is not None and not isinstance(note, str):
        raise InvalidInputError(f"note= takes a string (or None), not {shown(note, 40)}")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise InvalidInputError(
            f"note= is {len(note)} characters: keep a note under {MAX_NOTE_CHARS} characters"
        )
    text = note.strip() if note else None
    label = Label(None if thumbs is None else bool(thumbs), rating, text or None)
    if label.empty:
        raise InvalidInputError(
            "label() needs thumbs=True/False, score=1..5 or a note, e.g. "
            "reviewer.label(request_id, thumbs=True, score=4, note='clear')"
        )
    return label


def _is_bool(value: Any) -> bool:
    """True for True and False, and numpy's (a thumbs column of a DataFrame holds those)."""
    if isinstance(value, bool):
        return True
    return type(value).__module__ == "numpy" and getattr(value, "dtype", None) == "bool"


def label_rows(request_id: str, label: Label, earlier: Label | None = None) -> list[ScoreRow]:
    """The score rows that store ``label`` for a run (its local id), replacing ``earlier``."""
    rows: list[ScoreRow] = []
    if label.thumbs is not None or label.note or (earlier is not None and not earlier.empty):
        value = None if label.thumbs is None else float(label.thumbs)
        rows.append(ScoreRow(request_id, THUMBS, value, label.thumbs, label.note, SOURCE))
    if label.rating is not None:
        value = (label.rating - 1) / 4
        rows.append(ScoreRow(request_id, RATING, value, None, f"{label.rating}/5", SOURCE))
    elif earlier is not None and earlier.rating is not None:  # overwrite the old rating
        rows.append(ScoreRow(request_id, RATING, None, None, None, SOURCE))
    return rows


def read_labels(log: RunLog, request_ids: Sequence[str]) -> dict[str, Label]:
    """The stored label of each of these runs (local ids) that has one."""
    thumbs: dict[str, bool | None] = {}
    notes: dict[str, str | None] = {}
    ratings: dict[str, int | None] = {}
    for r in ScoreLog(log.db).for_runs(request_ids):  # oldest first: the latest wins
        if r.source != SOURCE:
            continue
        if r.name == THUMBS:
            thumbs[r.request_id] = None if r.value is None else r.value >= 0.5
            notes[r.request_id] = r.reason or None
        elif r.name == RATING:
            ratings[r.request_id] = None if r.value is None else round(r.value * 4) + 1
    out = {}
    for rid in dict.fromkeys([*thumbs, *ratings]):
        label = Label(thumbs.get(rid), ratings.get(rid), notes.get(rid))
        if not label.empty:
            out[rid] = label
    return out


@dataclass(frozen=True)
class Other:
    """Another run of the frame with the same input variables."""

    request_id: str
    cell: str
    output: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    """One run to review, with what the reviewer sees beside its output."""

    request_id: str  # the local id (the scores' key)
    frame_id: Any  # the id as the frame has it (PromptLayer's with that backend)
    prompt_name: str
    cell: str
    output: str
    inputs: dict[str, Any]
    expected: Any = None
    others: tuple[Other, ...] = field(default_factory=tuple)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA and NaT equal nothing
    except (TypeError, ValueError):  # pd.NA's comparison is ambiguous
        return True


def _cells(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each log row's cell name, as compare() names it (one rule: engine/labels)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "provider": [r["provider"] for r in rows],
            "model": [r["model"] for r in rows],
            "release_label": [r["release_label"] for r in rows],
            "prompt_version": pd.array([r["prompt_version"] for r in rows], dtype="Int64"),
        }
    )
    return list(cell_label(frame)) if rows else []


class ReviewQueue:
    """The runs of a runs DataFrame to review, their labels, and saving one."""

    def __init__(
        self,
        df: pd.DataFrame,
        engine: Engine | None = None,
        expected: str = "expected",
        log: RunLog | None = None,
    ) -> None:
        import pandas as pd

        if not isinstance(df, pd.DataFrame) or "request_id" not in df.columns:
            raise InvalidInputError(
                "review() takes a runs DataFrame (from run_many() or runs()), not "
                f"{type(df).__name__}: e.g. pl_magic.review(pl_magic.runs(prompt='greet'))"
            )
        expected = check_expected(expected)
        self.engine = engine
        self.log = log or (engine.runlog if engine is not None else RunLog())
        texts = [_id_text(i) for i in df["request_id"]]
        frame_expected = list(df[expected]) if expected in df.columns else [None] * len(texts)
        by_id = self.log.by_either_id([t for t in texts if t is not None], _LOG_COLUMNS)
        logged = list({r["request_id"]: r for r in by_id.values()}.values())
        cells = dict(zip((r["request_id"] for r in logged), _cells(logged), strict=True))
        # the frame's runs (each once, in the frame's order) with their frame id and expected
        runs: dict[str, tuple[Any, Any]] = {}
        for raw, text, given in zip(df["request_id"], texts, frame_expected, strict=True):
            row = by_id.get(text or "")
            if row is not None and row["request_id"] not in runs:
                runs[row["request_id"]] = (raw, given)
        inputs = {rid: json.loads(by_id[rid]["input_variables"] or "{}") for rid in runs}
        same_input: dict[str, list[str]] = {}
        for rid in runs:
            same_input.setdefault(_input_key(inputs[rid]), []).append(rid)
        items = []
        for rid, (raw, given) in runs.items():
            row = by_id[rid]
            if row["status"] != "ok":
                continue
            variables = inputs[rid]
            expect = given if not _missing(given) else variables.get(expected)
            others = tuple(
                Other(
                    o,
                    _cell_with_repeat(cells[o], by_id[o]["repeat_index"]),
                    by_id[o]["output"] or "",
                    by_id[o]["status"],
                    by_id[o]["error_message"],
                )
                for o in same_input[_input_key(variables)]
                if o != rid
            )
            items.append(
                ReviewItem(
                    rid,
                    raw,
                    row["prompt_name"],
                    _cell_with_repeat(cells[rid], row["repeat_index"]),
                    row["output"] or "",
                    variables,
                    None if _missing(expect) else expect,
                    others,
                )
            )
        if not items:
            raise InvalidInputError(
                f"review() found no run to review among the frame's {len(df)} rows (only runs "
                "that ended ok and are in this log can be labelled): e.g. "
                "df = pl_magic.run_many('greet', models=[...], inputs=[...])"
            )
        self.items: list[ReviewItem] = items
        self._index = {item.request_id: i for i, item in enumerate(items)}
        for item in items:
            frame_text = _id_text(item.frame_id)
            if frame_text is not None:
                self._index.setdefault(frame_text, self._index[item.request_id])
        self.labels: dict[str, Label] = read_labels(self.log, [i.request_id for i in items])

    def __len__(self) -> int:
        return len(self.items)

    @property
    def reviewed(self) -> int:
        """How many of the queue's runs have a label."""
        return sum(1 for item in self.items if item.request_id in self.labels)

    def first_unlabelled(self) -> int:
        """The position of the first run without a label (the last run when all have one)."""
        for i, item in enumerate(self.items):
            if item.request_id not in self.labels:
                return i
        return len(self.items) - 1

    def position(self, request_id: Any) -> int:
        """The queue position of a run given by either of its ids; a one-line error if it
        is not in the queue."""
        text = _id_text(request_id)
        if text is None or text not in self._index:
            raise InvalidInputError(
                f"{shown(request_id, 60)} is not a run of this review (runs that ended ok in "
                "the frame): pass a request_id from the frame's request_id column"
            )
        return self._index[text]

    def save(self, request_id: Any, label: Label) -> Label:
        """Store ``label`` for a run (replacing its earlier one) and return it.

        Through the engine when the queue has one, so that with the PromptLayer backend the
        label goes there as ``track.score`` too.
        """
        item = self.items[self.position(request_id)]
        rows = label_rows(item.request_id, label, self.labels.get(item.request_id))
        if self.engine is not None:
            self.engine.record_scores(rows)
        else:
            ScoreLog(self.log.db).record(rows)
        if label.empty:
            self.labels.pop(item.request_id, None)
        else:
            self.labels[item.request_id] = label
        return label

    def frame(self) -> pd.DataFrame:
        """The labels given so far, one row per labelled run in queue order."""
        import pandas as pd

        records = [
            {
                "request_id": item.frame_id,
                "cell": item.cell,
                "thumbs": label.thumbs,
                "rating": label.rating,
                "note": label.note,
            }
            for item in self.items
            if (label := self.labels.get(item.request_id)) is not None
        ]
        df = pd.DataFrame.from_records(
            records, columns=["request_id", "cell", "thumbs", "rating", "note"]
        )
        df["thumbs"] = df["thumbs"].astype("boolean")
        df["rating"] = df["rating"].astype("Int64")
        return df


def _input_key(variables: Mapping[str, Any]) -> str:
    return json.dumps(variables, sort_keys=True, default=str)


def _cell_with_repeat(cell: str, repeat: Any) -> str:
    if repeat is None or (isinstance(repeat, float) and math.isnan(repeat)) or not repeat:
        return cell
    return f"{cell} · repeat {int(repeat)}"
