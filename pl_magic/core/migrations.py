"""Numbered schema migrations for the SQLite file (registry and run log share it).

As in simonw/llm's ``migrations.py``: each migration is a function registered in order;
the names of applied migrations are kept in ``_migrations`` so each runs exactly once.
Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every migration not yet applied, each in its own transaction.

    The connection is in autocommit mode; each migration runs between BEGIN IMMEDIATE and
    COMMIT, so two processes opening a new file at once cannot both apply it. A file that
    is up to date is only read: opening it does not wait for another process's write lock.
    """
    if _applied(conn) >= {name for name, _ in MIGRATIONS}:
        return
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    for name, fn in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
            if not done:
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))",
                    (name,),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _applied(conn: sqlite3.Connection) -> set[str]:
    """The names of the migrations applied to the file (none for a new file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not exists:
        return set()
    return {row[0] for row in conn.execute("SELECT name FROM _migrations")}


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run several statements inside the current transaction.

    (``executescript`` would COMMIT first and break the migration's transaction.)
    """
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


@migration
def m001_registry(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        );
        CREATE TABLE prompt_versions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            prompt_id INTEGER NOT NULL REFERENCES prompts(id),
            version INTEGER NOT NULL,
            prompt_template TEXT NOT NULL,   -- PromptLayer's prompt_template JSON, as given
            metadata TEXT,                   -- PromptLayer's metadata JSON (metadata.model ...)
            provider_base_url TEXT,          -- JSON {"url": ...} or NULL
            commit_message TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            UNIQUE (prompt_id, version)
        );
        CREATE TABLE release_labels (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            prompt_id INTEGER NOT NULL REFERENCES prompts(id),
            label TEXT NOT NULL,
            version_id INTEGER NOT NULL REFERENCES prompt_versions(id),
            updated_at TEXT NOT NULL,
            UNIQUE (prompt_id, label)
        );
        """,
    )


@migration
def m002_runs(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE run_groups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE runs (
            request_id TEXT PRIMARY KEY,
            run_key TEXT NOT NULL,           -- hash of the run identity (see engine.run_key)
            prompt_name TEXT,
            prompt_id INTEGER,
            prompt_version INTEGER,
            release_label TEXT,
            provider TEXT,
            model TEXT,
            api_type TEXT,
            parameters TEXT,                 -- JSON
            input_variables TEXT,            -- JSON
            rendered_input TEXT,             -- JSON: the rendered prompt_template
            output TEXT,
            status TEXT NOT NULL,            -- ok | error | cancelled
            error_category TEXT,
            error_message TEXT,
            finish_reason TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            metadata TEXT NOT NULL DEFAULT '{}',
            group_id INTEGER,
            repeat_index INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,        -- ISO-8601 UTC
            ended_at TEXT,
            ttft_s REAL,
            latency_s REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost_usd REAL,
            raw_response TEXT,               -- JSON of the SDK's response (or assembled stream)
            backend TEXT NOT NULL DEFAULT 'local',
            remote_request_id TEXT,          -- PromptLayer's request id, when logged there
            sync_state TEXT                  -- NULL (local only) | sent | unsent
        );
        CREATE INDEX runs_started ON runs (started_at);
        CREATE INDEX runs_prompt ON runs (prompt_name, started_at);
        CREATE INDEX runs_group ON runs (group_id);
        """,
    )


@migration
def m003_promptlayer_sync(conn: sqlite3.Connection) -> None:
    # What the PromptLayer backend needs to never lose a run (see runlog/promptlayer.py), and the
    # scores pl_magic.score() gives a run with either backend.
    _script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN sync_payload TEXT;       -- JSON {account, payload}: the
                                                            -- /track-request body, no key
        ALTER TABLE runs ADD COLUMN sync_attempted_at REAL;  -- epoch of the last send (claims)
        ALTER TABLE runs ADD COLUMN sync_error TEXT;         -- why the last send failed
        ALTER TABLE runs ADD COLUMN pending_ops TEXT;        -- JSON list: scores, metadata...
                                                            -- waiting for the run to be sent
        ALTER TABLE runs ADD COLUMN scores TEXT;             -- JSON {name: 0..100}
        CREATE INDEX runs_remote ON runs (remote_request_id);
        CREATE INDEX runs_sync ON runs (sync_state)
        """,
    )


@migration
def m004_scores(conn: sqlite3.Connection) -> None:
    # One row per run × score name × source (rule, judge, human): scoring a run again with
    # the same scorer replaces its row, while a judge and a person may score it under the
    # same name. The run's id is the local request_id (no foreign key: a run kept in memory
    # while the file was locked may be written after its scores). See runlog/scores.py.
    _script(
        conn,
        """
        CREATE TABLE scores (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL,        -- runs.request_id (the local id)
            name TEXT NOT NULL,              -- the column score.<name>
            value REAL,                      -- NULL when the scorer failed (see reason)
            passed INTEGER,                  -- 1 / 0 for pass-fail scorers, else NULL
            reason TEXT,
            source TEXT NOT NULL,            -- rule | judge | human
            scorer_version TEXT,             -- a judge's prompt version (NULL for rules)
            created_at TEXT NOT NULL,        -- ISO-8601 UTC
            UNIQUE (request_id, name, source) -- also the index reads by request_id use
        )
        """,
    )


@migration
def m005_replay(conn: sqlite3.Connection) -> None:
    # The replay cache (see engine/replay.py): every logged run keeps the key of the request it
    # sent, the lengths of its streamed text pieces and its reply's tool calls, so that it can
    # be served again; a served run names the run it was served from.
    _script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN cache_key TEXT;        -- sha256 of the native request
        ALTER TABLE runs ADD COLUMN chunk_sizes TEXT;      -- JSON list of ints, or NULL
        ALTER TABLE runs ADD COLUMN reply_tool_calls TEXT; -- JSON list, or NULL
        ALTER TABLE runs ADD COLUMN cached_from TEXT;      -- request_id of the run served
        CREATE INDEX runs_cache_key ON runs (cache_key, started_at)
        """,
    )


@migration
def m006_batches(conn: sqlite3.Connection) -> None:
    # Provider batch jobs (see engine/batch_jobs.py): a job outlives the kernel, so everything
    # needed to ingest its results after a restart is here the moment it is submitted. One
    # ``batch_jobs`` row per comparison run in batch mode; one ``batch_parts`` row per provider
    # job (a provider/model/base URL group, split at the API's size limits); one
    # ``batch_requests`` row per planned run, with its rendered input and the native request
    # (never a key). A run logged from a job names it in ``runs.batch_id``.
    _script(
        conn,
        """
        CREATE TABLE batch_jobs (
            id TEXT PRIMARY KEY,             -- pl_magic's job id
            job_key TEXT NOT NULL,           -- sha256 over the planned runs (re-attach)
            prompt_name TEXT NOT NULL,
            status TEXT NOT NULL,            -- submitting | running | cancelling | done | cancelled
            total INTEGER NOT NULL,          -- planned runs
            options TEXT NOT NULL DEFAULT '{}', -- JSON: the comparison's arguments (no key)
            submitted_at TEXT NOT NULL,      -- ISO-8601 UTC
            finished_at TEXT
        );
        CREATE INDEX batch_jobs_key ON batch_jobs (job_key, submitted_at);
        CREATE TABLE batch_parts (
            job_id TEXT NOT NULL REFERENCES batch_jobs(id),
            part INTEGER NOT NULL,           -- 0, 1, ... within the job
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            api_type TEXT,
            base_url TEXT,                   -- where it was sent (the template's or the SDK's)
            provider_job_id TEXT,            -- NULL until the provider accepted it
            status TEXT NOT NULL,            -- submitting | running | cancelling | ended |
                                             -- cancelled | failed | expired
            total INTEGER NOT NULL,
            succeeded INTEGER,               -- as the provider counts them
            errored INTEGER,
            message TEXT,                    -- why a job failed as a whole
            ingested INTEGER NOT NULL DEFAULT 0, -- 1 once its results are runs
            submitted_at TEXT,
            finished_at TEXT,
            PRIMARY KEY (job_id, part)
        );
        CREATE TABLE batch_requests (
            request_id TEXT PRIMARY KEY,     -- the run's request_id once logged (custom_id)
            job_id TEXT NOT NULL REFERENCES batch_jobs(id),
            position INTEGER NOT NULL,       -- the run's place in the comparison
            part INTEGER,                    -- batch_parts.part (NULL: a run not batched)
            route TEXT NOT NULL,             -- batch | live | served | failed
            planned TEXT,                    -- JSON: version, label, provider, model, repeat,
                                             -- input_index, input_variables (as asked),
                                             -- NULL for a batched run (its run says it)
            run TEXT,                        -- JSON: the log row's scalar fields known
                                             -- before the call (prompt, version, model...)
            parameters TEXT,                 -- JSON text, as runs stores them
            input_variables TEXT,
            rendered_input TEXT,
            tags TEXT,
            metadata TEXT,
            request TEXT,                    -- JSON: the native request (no key)
            error_category TEXT,             -- a run that failed before any call
            error_message TEXT
        );
        CREATE INDEX batch_requests_job ON batch_requests (job_id, position);
        ALTER TABLE runs ADD COLUMN batch_id TEXT;   -- batch_jobs.id of the run's job
        CREATE INDEX runs_batch ON runs (batch_id)
        """,
    )
