"""Bad-input rows for pl_magic's own files: a ``PL_MAGIC_HOME`` that is not a directory, and a
log file that is not a SQLite database. Each is a one-line ``ConfigurationError`` naming the
path and what to do, before any provider call (tests/reliability/test_storage_faults.py
covers the damaged file on every backend, and faults that come after the call)."""

from __future__ import annotations

from tests.reliability.case import Case

KINDS = ("unusable home or log file",)

_NOT_A_DIRECTORY = (("PL_MAGIC_HOME", "/dev/null"),)
_NOT_A_DATABASE = "this is not a SQLite database, just text in its place\n" * 8

CASES: list[Case] = [
    Case(
        "run-home-not-a-directory",
        "run()",
        "unusable home or log file",
        'pl_magic.run("greet", input_variables={"name": "Ada"})',
        "ConfigurationError",
        "PL_MAGIC_HOME (/dev/null) is not a directory: set PL_MAGIC_HOME to a directory",
        env=_NOT_A_DIRECTORY,
    ),
    Case(
        "plrun-home-not-a-directory",
        "%%plrun",
        "unusable home or log file",
        "%%plrun greet\nname: Ada",
        "ConfigurationError",
        "PL_MAGIC_HOME (/dev/null) is not a directory: set PL_MAGIC_HOME to a directory",
        env=_NOT_A_DIRECTORY,
    ),
    Case(
        "cli-home-not-a-directory",
        "cli",
        "unusable home or log file",
        "pl-magic run greet --var name=Ada",
        "ConfigurationError",
        "PL_MAGIC_HOME (home-file) is not a directory: set PL_MAGIC_HOME to a directory",
        env=(("PL_MAGIC_HOME", "home-file"),),
        files=(("home-file", "a file, not a directory\n"),),
    ),
    Case(
        "cli-log-file-not-a-database",
        "cli",
        "unusable home or log file",
        "pl-magic runs",
        "ConfigurationError",
        "is damaged (file is not a database): move it aside",
        env=(("PL_MAGIC_HOME", "."),),
        files=(("pl_magic.db", _NOT_A_DATABASE),),
    ),
]
