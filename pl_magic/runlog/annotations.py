"""``client.track``: the score, metadata, group and prompt of a logged run.

Stored in the local log whatever the backend (so ``pl_magic.runs()`` shows them), and
with the PromptLayer backend sent there too, or queued on the run's row until PromptLayer
has the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidInputError
from .base import unknown_request_id
from .sqlite import RunLog

if TYPE_CHECKING:
    from .promptlayer import PromptLayerSink


def _check_score(score: Any, name: Any) -> None:
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
        raise InvalidInputError(f"score must be a whole number from 0 to 100, not {score!r}")
    if name is not None and not isinstance(name, str):
        raise InvalidInputError(f"the score name must be a string, not {name!r}")


def _check_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidInputError(
            "metadata must be a dict of strings, e.g. {'user': 'u1'} (as PromptLayer's)"
        )
    return dict(metadata)


class RunAnnotations:
    """``client.track``: score, metadata, group and prompt of a logged run.

    Takes either id of a run: the local log's or PromptLayer's. Everything is stored in
    the local log too (scores in ``scores``, metadata merged into ``metadata``), so the
    local backend keeps them and ``pl_magic.runs()`` shows them.
    """

    def __init__(self, runlog: RunLog, sink: PromptLayerSink | None = None) -> None:
        self.runlog = runlog
        self.sink = sink

    def _row(self, request_id: Any) -> dict[str, Any] | None:
        if request_id is None or isinstance(request_id, bool):
            raise InvalidInputError("a request_id is required: the one a run returned")
        row = self.runlog.get(str(request_id))
        if row is None and self.sink is None:
            raise unknown_request_id(request_id)  # the local backend knows only its own runs
        return row

    def _apply(self, request_id: Any, op: dict[str, Any], store: dict[str, Any]) -> bool:
        row = self._row(request_id)
        if row is not None:
            self.runlog.annotate(str(row["request_id"]), store)
        if self.sink is None:
            return True
        return self.sink.apply(row, request_id, op)

    def score(self, request_id: Any, score: int, score_name: str | None = None) -> bool:
        """Score a run from 0 to 100 (``/library-track-score``), optionally named."""
        _check_score(score, score_name)
        op = {"op": "score", "score": score, "name": score_name}
        return self._apply(request_id, op, {"score": score, "name": score_name})

    def metadata(self, request_id: Any, metadata: Mapping[str, str]) -> bool:
        """Add string metadata to a run (``/library-track-metadata``)."""
        values = _check_metadata(metadata)
        return self._apply(request_id, {"op": "metadata", "metadata": values}, {"metadata": values})

    def group(self, request_id: Any, group_id: int) -> bool:
        """Put a run into a group (``/track-group``)."""
        if isinstance(group_id, bool) or not isinstance(group_id, int):
            raise InvalidInputError("group_id must be an integer from pl_magic.create_group()")
        op = {"op": "group", "group_id": group_id}
        return self._apply(request_id, op, {"group_id": group_id})

    def prompt(
        self,
        request_id: Any,
        prompt_name: str,
        prompt_input_variables: Mapping[str, Any],
        version: int | None = None,
        label: str | None = None,
    ) -> bool:
        """Tie a run to a registry prompt (``/library-track-prompt``).

        Runs made by pl_magic are tied to their prompt already; this is for parity with
        the SDK, for requests logged elsewhere.
        """
        if not isinstance(prompt_input_variables, Mapping):
            raise InvalidInputError("prompt_input_variables must be a dict of input variables")
        op = {
            "op": "prompt",
            "prompt_name": prompt_name,
            "input_variables": dict(prompt_input_variables),
            "version": version,
            "label": label,
        }
        return self._apply(request_id, op, {})
