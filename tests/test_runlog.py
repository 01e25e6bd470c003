"""RunLog, the one owner of the ``runs`` table: writes, filtered reads, reads by id, the
PromptLayer sync's claims and queued ops, and annotations, against a real SQLite file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pl_magic.core.store import dumps, open_db
from pl_magic.runlog.sqlite import RunFilter, RunLog, RunRecord, run_key

ACCOUNT = "acct-1"


@pytest.fixture
def log(tmp_path: Path) -> RunLog:
    return RunLog(open_db(tmp_path / "runs.db"))


def _record(n: int, **values: Any) -> RunRecord:
    """The n-th run: started n minutes after 2026-01-01 (so the order is n's)."""
    fields: dict[str, Any] = {
        "request_id": f"local-{n:04d}",
        "run_key": run_key("greet", 1, {"n": n}, "openai", "gpt-4o-mini", {}, 0),
        "prompt_name": "greet",
        "prompt_id": 1,
        "prompt_version": 1,
        "release_label": None,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "api_type": None,
        "parameters": {"temperature": 0.1},
        "input_variables": {"name": f"n{n}"},
        "rendered_input": {"type": "chat", "messages": []},
        "started_at": f"2026-01-01T{n // 60:02d}:{n % 60:02d}:00.000000+00:00",
        "output": f"reply {n}",
    }
    fields.update(values)
    return RunRecord(**fields)


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["request_id"] for r in rows]


def _sync_row(n: int, state: str = "unsent", account: str = ACCOUNT, **values: Any) -> RunRecord:
    payload = dumps({"account": account, "payload": {"n": n}})
    return _record(n, backend="promptlayer", sync_state=state, sync_payload=payload, **values)


# -- writes and get ---------------------------------------------------------------------


def test_record_and_get_decode_json_and_take_either_id(log):
    log.record(_record(1, tags=["a"], metadata={"k": "v"}, raw_response={"x": [1]}))
    row = log.get("local-0001")
    assert row is not None
    assert row["tags"] == ["a"] and row["metadata"] == {"k": "v"}
    assert row["parameters"] == {"temperature": 0.1} and row["raw_response"] == {"x": [1]}
    assert row["ended_at"]  # filled in when the run had none
    assert log.update("local-0001", remote_request_id="77", tags=["b"])
    assert log.get("77")["request_id"] == "local-0001"
    assert log.get("77")["tags"] == ["b"]
    assert log.get("nope") is None


def test_a_key_that_is_a_json_word_leaves_the_stored_response_readable(log, monkeypatch):
    import pl_magic.providers  # noqa: F401  (registers the providers' key names)

    monkeypatch.setenv("OPENAI_API_KEY", "null")
    log.record(_record(1, raw_response={"refusal": None, "text": "a null reply"}))
    row = log.get("local-0001")
    assert row is not None
    assert row["raw_response"] == {"refusal": None, "text": "a *** reply"}


def test_grouped_rows_are_written_together_and_before_any_other_write(log, monkeypatch):
    from pl_magic.runlog import sqlite

    monkeypatch.setattr(sqlite, "GROUP_ROWS", 3)
    ids = lambda: [r["request_id"] for r in log.query(RunFilter())]  # noqa: E731
    with log.grouping():
        log.record(_record(1), deferrable=True)
        log.record(_record(2), deferrable=True)
        assert ids() == []  # deferred: not written yet
        log.record(_record(3), deferrable=True)  # a full group: written in one transaction
        assert ids() == ["local-0001", "local-0002", "local-0003"]
        log.record(_record(4), deferrable=True)
        log.record(_record(5))  # not deferrable: written now, after what was deferred
        assert ids() == ["local-0001", "local-0002", "local-0003", "local-0004", "local-0005"]
        log.record(_record(6), deferrable=True)
    assert ids()[-1] == "local-0006"  # the rest, when the block ends
    log.record(_record(7), deferrable=True)  # outside a block: written at once
    assert ids()[-1] == "local-0007"


def test_record_refuses_an_unknown_status(log):
    with pytest.raises(ValueError, match="status must be one of"):
        log.record(_record(1, status="done"))
    assert log.query() == []


# -- filtered reads ---------------------------------------------------------------------


@pytest.fixture
def six(log):
    """Six runs: two prompts, tags, a group, three statuses."""
    group = log.create_group()
    log.record(_record(1, tags=["x"]))
    log.record(_record(2, prompt_name="other", status="error", error_message="boom"))
    log.record(_record(3, tags=["x", "y"], group_id=group))
    log.record(_record(4, status="cancelled", group_id=group))
    log.record(_record(5, prompt_name="other", tags=["y"]))
    log.record(_record(6))
    return group


def test_query_is_oldest_first_and_filters_combine(log, six):
    assert _ids(log.query()) == [f"local-{n:04d}" for n in range(1, 7)]
    assert _ids(log.query(RunFilter(prompt="other"))) == ["local-0002", "local-0005"]
    assert _ids(log.query(RunFilter(tag="y"))) == ["local-0003", "local-0005"]
    assert _ids(log.query(RunFilter(tag="x", prompt="greet"))) == ["local-0001", "local-0003"]
    assert _ids(log.query(RunFilter(group_id=six))) == ["local-0003", "local-0004"]
    assert _ids(log.query(RunFilter(status="error"))) == ["local-0002"]
    since = "2026-01-01T00:04:00.000000+00:00"
    assert _ids(log.query(RunFilter(since=since))) == ["local-0004", "local-0005", "local-0006"]
    assert log.query(RunFilter(prompt="nope")) == []


def test_query_limit_keeps_the_newest(log, six):
    assert _ids(log.query(RunFilter(limit=2))) == ["local-0005", "local-0006"]
    assert _ids(log.query(RunFilter(prompt="greet", limit=3))) == [
        "local-0003",
        "local-0004",
        "local-0006",
    ]
    assert log.query(RunFilter(limit=0)) == []


def test_query_rows_are_as_stored(log, six):
    (row,) = log.query(RunFilter(status="error"))
    assert row["tags"] == "[]" and json.loads(row["parameters"]) == {"temperature": 0.1}
    assert row["error_message"] == "boom" and "raw_response" in row
    (row,) = log.query(RunFilter(status="error"), columns=("request_id", "status"))
    assert row == {"request_id": "local-0002", "status": "error"}


def test_columns_are_the_query_column_by_column(log, six):
    filters = RunFilter(tag="y")
    cols = log.columns(filters, ("request_id", "output", "tags"))
    assert list(cols) == ["request_id", "output", "tags"]
    assert list(cols["request_id"]) == ["local-0003", "local-0005"]
    assert list(cols["output"]) == ["reply 3", "reply 5"]
    assert list(cols["tags"]) == ['["x","y"]', '["y"]']
    rows = log.query(filters, columns=("request_id", "output", "tags"))
    by_row = zip(*cols.values(), strict=True)
    assert [dict(zip(cols, values, strict=True)) for values in by_row] == rows
    empty = log.columns(RunFilter(prompt="nope"), ("request_id", "output"))
    assert {k: list(v) for k, v in empty.items()} == {"request_id": [], "output": []}


def test_reads_name_only_columns_of_runs(log, six):
    with pytest.raises(ValueError, match="not columns of runs"):
        log.query(columns=("request_id", "1; DROP TABLE runs"))
    with pytest.raises(ValueError, match="not columns of runs"):
        log.by_ids(["local-0001"], columns=("nope",))
    assert len(log.query()) == 6


# -- reads by id ------------------------------------------------------------------------


def test_by_ids_takes_either_id_once_oldest_first(log, six):
    log.update("local-0005", remote_request_id="105")
    rows = log.by_ids(["105", "local-0003", "local-0001", "unknown", "local-0005", 105])
    assert _ids(rows) == ["local-0001", "local-0003", "local-0005"]  # each run once
    assert rows[2]["remote_request_id"] == "105" and rows[2]["tags"] == '["y"]'
    assert log.by_ids([]) == []
    (row,) = log.by_ids(["local-0002"], columns=("status", "error_message"))
    assert row == {"status": "error", "error_message": "boom"}


def test_by_ids_over_many_ids_keeps_one_order(log):
    # more ids than one IN list holds: read in chunks, merged back in started_at order
    with log.db.write() as conn:
        for n in range(1, 1001):
            record = _record(n)
            conn.execute(
                "INSERT INTO runs (request_id, run_key, started_at, status) VALUES (?,?,?,?)",
                (record.request_id, record.run_key, record.started_at, "ok"),
            )
    ids = [f"local-{n:04d}" for n in range(1000, 0, -1)]  # newest first, on purpose
    rows = log.by_ids(ids, columns=("request_id",))
    assert _ids(rows) == [f"local-{n:04d}" for n in range(1, 1001)]


# -- the PromptLayer sync ---------------------------------------------------------------


def test_unsent_lists_this_accounts_waiting_rows_oldest_first(log):
    now = time.time()
    log.record(_sync_row(1))
    log.record(_sync_row(2, account="other"))
    log.record(_sync_row(3, state="sending", sync_attempted_at=now))  # being sent now
    log.record(_sync_row(4, state="sending", sync_attempted_at=now - 600))  # claimer died
    log.record(_sync_row(5, state="sent"))
    log.record(_sync_row(6, state="failed"))
    log.record(_record(7))  # local backend: never synced
    rows = log.unsent(ACCOUNT, stale_before=now - 300)
    assert _ids(rows) == ["local-0001", "local-0004"]
    assert set(rows[0]) == {"request_id", "sync_state", "sync_attempted_at", "sync_payload"}
    assert json.loads(rows[0]["sync_payload"])["payload"] == {"n": 1}
    assert log.count_unsent(ACCOUNT) == 1 and log.count_unsent("other") == 1
    assert log.count_unsent("nobody") == 0


def test_claim_unsent_wins_once(log):
    log.record(_sync_row(1))
    log.record(_sync_row(2, state="sending", sync_attempted_at=1.0))
    first, stale = log.unsent(ACCOUNT, stale_before=time.time() - 300)
    before = time.time()
    assert log.claim_unsent(first)
    row = log.get("local-0001")
    assert row["sync_state"] == "sending" and row["sync_attempted_at"] >= before
    assert not log.claim_unsent(first)  # as listed no more: another claim took it
    assert log.claim_unsent(stale)  # a stale claim is taken over once
    assert not log.claim_unsent(stale)
    assert log.unsent(ACCOUNT, stale_before=time.time() - 300) == []


def test_mark_sent_drops_the_payload_and_the_error(log):
    log.record(_sync_row(1))
    assert log.update("local-0001", sync_error="HTTP 503")
    assert log.mark_sent("local-0001", 42)
    row = log.get("42")
    assert row["request_id"] == "local-0001" and row["remote_request_id"] == "42"
    assert row["sync_state"] == "sent"
    assert row["sync_payload"] is None and row["sync_error"] is None
    assert log.count_unsent(ACCOUNT) == 0


def test_queued_ops_are_taken_once(log):
    log.record(_sync_row(1))
    log.record(_sync_row(2))
    log.queue_op("local-0001", {"op": "score", "score": 80})
    log.queue_op("local-0001", {"op": "metadata", "metadata": {"k": "v"}})
    log.queue_op("local-0002", {"op": "group", "group_id": 3})
    assert log.with_queued_ops() == []  # not on PromptLayer yet: nothing to send them to
    log.mark_sent("local-0001", 101)
    assert log.with_queued_ops() == [("local-0001", "101")]
    assert log.take_ops("local-0001") == [
        {"op": "score", "score": 80},
        {"op": "metadata", "metadata": {"k": "v"}},
    ]
    assert log.take_ops("local-0001") == []
    assert log.with_queued_ops() == []
    assert log.take_ops("unknown") == []
    assert log.take_ops("local-0002") == [{"op": "group", "group_id": 3}]


# -- annotations ------------------------------------------------------------------------


def test_annotate_merges_scores_and_metadata_and_sets_the_group(log):
    log.record(_record(1, metadata={"a": "1"}))
    log.annotate("local-0001", {"score": 70, "name": None})
    log.annotate("local-0001", {"score": 90, "name": "style"})
    log.annotate("local-0001", {"score": 75, "name": None})
    log.annotate("local-0001", {"metadata": {"b": "2", "a": "3"}})
    group = log.create_group()
    assert log.create_group() == group + 1
    log.annotate("local-0001", {"group_id": group})
    (row,) = log.query()
    assert json.loads(row["scores"]) == {"default": 75, "style": 90}
    assert json.loads(row["metadata"]) == {"a": "3", "b": "2"}
    assert row["group_id"] == group
    assert _ids(log.query(RunFilter(group_id=group))) == ["local-0001"]
