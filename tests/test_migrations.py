"""Schema migrations of the SQLite file: a new file gets the latest schema, an older file is
upgraded in place without losing a row, and running them again changes nothing.

An older file is made the way an older pl_magic made it: by the first migrations alone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

import pl_magic
from pl_magic.core import config, migrations
from tests.helpers import chat

#: Tables an older file holds rows in.
OLD_TABLES = ("prompts", "prompt_versions", "runs")
#: Columns the newest migration so far (m003) adds to ``runs``.
SYNC_COLUMNS = {"sync_payload", "sync_attempted_at", "sync_error", "pending_ops", "scores"}


def connect(path: Path) -> sqlite3.Connection:
    """A connection as the store opens one: autocommit, so each migration owns its BEGIN."""
    return sqlite3.connect(str(path), isolation_level=None, timeout=5)


def migrate_first(conn: sqlite3.Connection, count: int) -> None:
    """Apply only the first ``count`` migrations, recorded as ``migrate`` records them."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    for name, fn in migrations.MIGRATIONS[:count]:
        conn.execute("BEGIN")
        fn(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
        conn.execute("COMMIT")


def schema(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str, int, object]]]:
    """Every table and index with its columns (name, type, not null, default)."""
    out: dict[str, list[tuple[str, str, int, object]]] = {}
    for kind, name in conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ):
        pragma = "table_info" if kind == "table" else "index_info"
        rows = conn.execute(f"PRAGMA {pragma}({name})").fetchall()
        out[f"{kind} {name}"] = [tuple(r[1:5]) if kind == "table" else tuple(r) for r in rows]
    return out


def applied(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


@pytest.fixture
def fresh(tmp_path: Path) -> sqlite3.Connection:
    """A new file with every migration applied."""
    conn = connect(tmp_path / "fresh.db")
    migrations.migrate(conn)
    yield conn
    conn.close()


def test_migrations_are_numbered_in_order_and_unique():
    names = [name for name, _ in migrations.MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert names[:3] == ["m001_registry", "m002_runs", "m003_promptlayer_sync"]


def test_a_new_file_gets_every_migration_and_the_latest_schema(fresh):
    assert applied(fresh) == [name for name, _ in migrations.MIGRATIONS]
    tables = {r[0] for r in fresh.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"prompts", "prompt_versions", "release_labels", "run_groups", "runs"} <= tables
    assert columns(fresh, "runs") >= SYNC_COLUMNS
    indexes = {r[1] for r in fresh.execute("PRAGMA index_list(runs)")}
    assert {"runs_started", "runs_prompt", "runs_group", "runs_remote", "runs_sync"} <= indexes


@pytest.mark.parametrize("already", [0, 1, 2])
def test_an_older_file_upgrades_to_the_same_schema_as_a_new_one(tmp_path, fresh, already):
    conn = connect(tmp_path / "old.db")
    migrate_first(conn, already)
    migrations.migrate(conn)
    assert applied(conn) == applied(fresh)
    assert schema(conn) == schema(fresh)
    conn.close()


def test_upgrading_keeps_every_row(tmp_path):
    conn = connect(tmp_path / "old.db")
    conn.row_factory = sqlite3.Row
    migrate_first(conn, 2)  # registry and run log, before the PromptLayer sync columns
    conn.execute("INSERT INTO prompts (name, created_at) VALUES ('greet', '2024-01-01')")
    conn.execute(
        "INSERT INTO prompt_versions (prompt_id, version, prompt_template, created_at) "
        "VALUES (1, 1, '{\"type\": \"completion\"}', '2024-01-01')"
    )
    conn.execute(
        "INSERT INTO runs (request_id, run_key, prompt_name, output, status, tags, started_at, "
        "sync_state) VALUES ('r1', 'k', 'greet', 'hello', 'ok', '[\"a\"]', '2024-01-02', 'sent')"
    )
    before = {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t}")] for t in OLD_TABLES}

    migrations.migrate(conn)

    after = {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t}")] for t in OLD_TABLES}
    assert {t: [{k: r[k] for k in before[t][0]} for r in rows] for t, rows in after.items()} == (
        before
    )
    (run,) = after["runs"]
    assert (run["output"], run["sync_state"]) == ("hello", "sent")
    assert {k: run[k] for k in SYNC_COLUMNS} == dict.fromkeys(SYNC_COLUMNS)  # new: NULL
    conn.close()


def test_running_again_changes_nothing_and_takes_no_write_lock(tmp_path, fresh):
    path = tmp_path / "fresh.db"
    before = (schema(fresh), fresh.execute("SELECT * FROM _migrations").fetchall())
    writer = connect(path)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        reader = connect(path)
        reader.execute("PRAGMA busy_timeout = 0")
        migrations.migrate(reader)  # up to date: only reads, so it does not wait
        assert (schema(reader), reader.execute("SELECT * FROM _migrations").fetchall()) == before
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_failing_migration_is_rolled_back_and_not_recorded(tmp_path, monkeypatch):
    def m999_broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("m999", m999_broken)])
    conn = connect(tmp_path / "new.db")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        migrations.migrate(conn)
    assert not conn.in_transaction
    assert "m999" not in applied(conn) and len(applied(conn)) == len(migrations.MIGRATIONS) - 1
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    conn.close()


def test_two_connections_migrating_a_new_file_at_once_apply_each_migration_once(tmp_path):
    path = tmp_path / "shared.db"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_and_migrate() -> None:
        conn = connect(path)
        try:
            start.wait()
            migrations.migrate(conn)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=open_and_migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    conn = connect(path)
    assert applied(conn) == [name for name, _ in migrations.MIGRATIONS]
    conn.close()


def test_pl_magic_opens_an_older_file_and_reads_what_it_holds():
    """Through the public API: a home whose file predates the run log's sync columns."""
    path = config.db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate_first(conn, 2)
    template = json.dumps(chat(("user", "hi {name}")))
    conn.execute("INSERT INTO prompts (name, created_at) VALUES ('greet', '2024-01-01')")
    conn.execute(
        "INSERT INTO prompt_versions (prompt_id, version, prompt_template, metadata, created_at) "
        "VALUES (1, 1, ?, NULL, '2024-01-01')",
        (template,),
    )
    conn.execute(
        "INSERT INTO runs (request_id, run_key, prompt_name, prompt_version, output, status, "
        "started_at) VALUES ('r1', 'k', 'greet', 1, 'hello', 'ok', '2024-01-02T00:00:00')"
    )
    conn.close()

    record = pl_magic.get_template("greet")
    assert record["version"] == 1
    assert record["prompt_template"]["messages"] == chat(("user", "hi {name}"))["messages"]
    df = pl_magic.runs()
    assert list(df["request_id"]) == ["r1"] and list(df["output"]) == ["hello"]
    conn = connect(path)
    assert columns(conn, "runs") >= SYNC_COLUMNS
    assert applied(conn) == [name for name, _ in migrations.MIGRATIONS]
    conn.close()


#: Columns of the ``scores`` table (m004).
SCORE_COLUMNS = {
    "id",
    "request_id",
    "name",
    "value",
    "passed",
    "reason",
    "source",
    "scorer_version",
    "created_at",
}


def test_a_new_file_has_the_scores_table(fresh):
    assert [n for n, _ in migrations.MIGRATIONS][3] == "m004_scores"
    assert columns(fresh, "scores") == SCORE_COLUMNS
    unique = [r for r in fresh.execute("PRAGMA index_list(scores)") if r[2]]
    assert [[c[2] for c in fresh.execute(f"PRAGMA index_info({u[1]})")] for u in unique] == [
        ["request_id", "name", "source"]
    ]


def test_a_file_from_before_scores_upgrades_keeping_its_runs_and_scores_work(tmp_path, fresh):
    conn = connect(tmp_path / "old.db")
    migrate_first(conn, 3)  # everything before the scores table
    conn.execute(
        "INSERT INTO runs (request_id, run_key, prompt_name, output, status, started_at, scores) "
        "VALUES ('r1', 'k', 'greet', 'hello', 'ok', '2024-01-02', '{\"acc\": 90}')"
    )
    migrations.migrate(conn)
    assert schema(conn) == schema(fresh) and applied(conn) == applied(fresh)
    assert conn.execute("SELECT output, scores FROM runs").fetchall() == [("hello", '{"acc": 90}')]
    row = "('r1', 'contains', 1.0, 1, NULL, 'rule', NULL, '2024-01-03')"
    insert = (
        "INSERT INTO scores (request_id, name, value, passed, reason, source, scorer_version, "
        "created_at) VALUES "
    )
    conn.execute(insert + row)
    with pytest.raises(sqlite3.IntegrityError):  # one score per run, name and source
        conn.execute(insert + row)
    conn.execute(insert + row.replace("'rule'", "'judge'"))
    assert conn.execute("SELECT count(*) FROM scores").fetchone() == (2,)
    conn.close()


def test_pl_magic_reads_an_older_file_without_scores_through_runs():
    path = config.db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate_first(conn, 3)
    conn.execute(
        "INSERT INTO runs (request_id, run_key, prompt_name, output, status, started_at) "
        "VALUES ('r1', 'k', 'greet', 'hello', 'ok', '2024-01-02T00:00:00')"
    )
    conn.close()
    df = pl_magic.runs()
    assert list(df["output"]) == ["hello"]
    assert not [c for c in df.columns if c.startswith("score.")]
    conn = connect(path)
    assert columns(conn, "scores") == SCORE_COLUMNS
    conn.close()
