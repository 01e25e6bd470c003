"""The embedded registry: prompts, integer versions and movable release labels in SQLite.

Templates are stored exactly as PromptLayer shapes them, so ``export`` gives PromptLayer
JSON and ``import_templates`` takes it back unchanged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from ..core import blueprint
from ..core.errors import (
    InvalidInputError,
    LabelNotFoundError,
    PromptNotFoundError,
    VersionNotFoundError,
)
from ..core.store import OnDatabase, dumps, utcnow_iso
from .base import (
    PreRendered,
    check_label,
    check_provider_base_url,
    check_publish_body,
    check_version,
)

#: A prompt version with its prompt id and its labels (``get``'s one query).
_GET_SQL = (
    "SELECT p.id AS pid, v.*, (SELECT json_group_array(label) FROM release_labels "
    "WHERE version_id = v.id) AS labels_json "
    "FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.id WHERE p.name = ? "
)
#: Versions are 64-bit integers in SQLite: a bigger number cannot exist (nor be queried).
_MAX_VERSION = 2**63 - 1


class LocalRegistry(OnDatabase):
    """Prompt registry in the local SQLite file."""

    kind = "local"

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def run_context(options: Any) -> dict[str, Any]:
        """Nothing: the local registry's templates are rendered by the engine."""
        return {}

    def prerendered(self, record: Mapping[str, Any], stream: bool) -> PreRendered | None:
        """Never: the engine renders local templates."""
        return None

    def names(self) -> list[str]:
        """Every prompt name, sorted."""
        return [r["name"] for r in self.db.query("SELECT name FROM prompts ORDER BY name")]

    def _prompt_id(self, name: str) -> int:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError("A prompt name is required: give the registry prompt's name")
        rows = self.db.query("SELECT id FROM prompts WHERE name = ?", (name,))
        if not rows:
            raise PromptNotFoundError(name, self.names())
        return int(rows[0]["id"])

    def versions(self, name: str) -> list[int]:
        """The version numbers of a prompt, ascending."""
        pid = self._prompt_id(name)
        rows = self.db.query(
            "SELECT version FROM prompt_versions WHERE prompt_id = ? ORDER BY version", (pid,)
        )
        return [int(r["version"]) for r in rows]

    def labels(self, name: str) -> dict[str, int]:
        """Release labels of a prompt and the version each points at."""
        pid = self._prompt_id(name)
        rows = self.db.query(
            "SELECT l.label, v.version FROM release_labels l "
            "JOIN prompt_versions v ON v.id = l.version_id WHERE l.prompt_id = ? ORDER BY l.label",
            (pid,),
        )
        return {r["label"]: int(r["version"]) for r in rows}

    def get(
        self, name: str, version: int | str | None = None, label: str | None = None, **run: Any
    ) -> dict[str, Any]:
        """A template record by name and label, or name and version, or the latest version.

        The label wins when both are given (the engine warns about it). ``run`` (the run's
        context) is not needed: local templates are rendered by the engine.
        """
        found = self._get_found(name, version, label)
        if found is not None:
            return found
        pid = self._prompt_id(name)  # not found: the queries below name what is missing
        if label is not None:
            rows = self.db.query(
                "SELECT v.* FROM release_labels l JOIN prompt_versions v ON v.id = l.version_id "
                "WHERE l.prompt_id = ? AND l.label = ?",
                (pid, label),
            )
            if not rows:
                raise LabelNotFoundError(name, label, list(self.labels(name)))
        elif version is not None:
            number = check_version(version)
            rows = (
                self.db.query(
                    "SELECT * FROM prompt_versions WHERE prompt_id = ? AND version = ?",
                    (pid, number),
                )
                if number <= _MAX_VERSION
                else []
            )
            if not rows:
                raise VersionNotFoundError(name, number, self.versions(name))
        else:
            rows = self.db.query(
                "SELECT * FROM prompt_versions WHERE prompt_id = ? ORDER BY version DESC LIMIT 1",
                (pid,),
            )
        return self._record(name, pid, rows[0], label)

    def _get_found(
        self, name: str, version: int | str | None, label: str | None
    ) -> dict[str, Any] | None:
        """``get`` in one query (every run makes one); None when something is not found."""
        if not isinstance(name, str) or not name.strip():
            return None
        sql = _GET_SQL
        params: tuple[Any, ...] = (name,)
        if label is not None:
            sql += (
                "AND v.id = "
                "(SELECT version_id FROM release_labels WHERE prompt_id = p.id AND label = ?)"
            )
            params += (label,)
        elif version is not None:
            number = check_version(version)
            if number > _MAX_VERSION:
                return None
            sql += "AND v.version = ?"
            params += (number,)
        else:
            sql += "ORDER BY v.version DESC LIMIT 1"
        rows = self.db.query(sql, params)
        if not rows:
            return None
        labels = sorted(json.loads(rows[0]["labels_json"]))
        return self._record(name, int(rows[0]["pid"]), rows[0], label, labels)

    def _record(
        self,
        name: str,
        pid: int,
        row: sqlite3.Row,
        label: str | None,
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        if labels is None:
            labels = [
                r["label"]
                for r in self.db.query(
                    "SELECT label FROM release_labels WHERE version_id = ? ORDER BY label",
                    (row["id"],),
                )
            ]
        return {
            "id": pid,
            "prompt_name": name,
            "prompt_version_id": int(row["id"]),
            "version": int(row["version"]),
            "prompt_template": json.loads(row["prompt_template"]),
            "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
            "provider_base_url": json.loads(row["provider_base_url"])
            if row["provider_base_url"]
            else None,
            "commit_message": row["commit_message"],
            "tags": json.loads(row["tags"]),
            "created_at": row["created_at"],
            "release_labels": labels,
            "release_label": label,
        }

    def list_prompts(self) -> list[dict[str, Any]]:
        """One summary per prompt: name, versions, labels, latest version's model and tags."""
        out = []
        for name in self.names():
            latest = self.get(name)
            model = (latest.get("metadata") or {}).get("model") or {}
            out.append(
                {
                    "id": latest["id"],
                    "prompt_name": name,
                    "versions": self.versions(name),
                    "latest_version": latest["version"],
                    "labels": self.labels(name),
                    "provider": model.get("provider"),
                    "model": model.get("name"),
                    "type": latest["prompt_template"].get("type"),
                    "input_variables": blueprint.input_variables(latest["prompt_template"]),
                    "tags": latest["tags"],
                    "commit_message": latest["commit_message"],
                }
            )
        return out

    # -- writing -------------------------------------------------------------------------

    def publish(self, body: Mapping[str, Any], check_syntax: bool = True) -> dict[str, Any]:
        """Add a new version (creating the prompt if needed), as PromptLayer's templates.publish.

        ``body``: ``prompt_name``, ``prompt_template``, optional ``metadata``,
        ``commit_message``, ``tags``, ``release_labels`` and ``provider_base_url``.
        A template whose text does not parse is refused, unless ``check_syntax`` is False
        (imports keep what PromptLayer holds; the error then comes when it runs).
        """
        checked = check_publish_body(body, check_syntax)
        name, template, metadata = checked.name, checked.template, checked.metadata
        tags, labels = checked.tags, checked.labels
        base_url = check_provider_base_url(body.get("provider_base_url"))
        now = utcnow_iso()
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM prompts WHERE name = ?", (name,)).fetchone()
            if row is None:
                pid = conn.execute(
                    "INSERT INTO prompts (name, created_at) VALUES (?, ?)", (name, now)
                ).lastrowid
            else:
                pid = row["id"]
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM prompt_versions WHERE prompt_id = ?",
                (pid,),
            ).fetchone()
            version = int(last) + 1
            vid = conn.execute(
                "INSERT INTO prompt_versions (prompt_id, version, prompt_template, metadata, "
                "provider_base_url, commit_message, tags, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    pid,
                    version,
                    dumps(template),
                    dumps(metadata) if metadata is not None else None,
                    dumps(base_url) if base_url else None,
                    checked.commit_message,
                    dumps(tags),
                    now,
                ),
            ).lastrowid
            for label in labels:
                self._upsert_label(conn, int(pid or 0), label, int(vid or 0), now)
        return {
            "id": pid,
            "prompt_name": name,
            "prompt_version_id": vid,
            "version_number": version,
            "tags": tags,
            "release_labels": labels,
            "prompt_template": template,
            "metadata": metadata,
            "commit_message": checked.commit_message,
            "provider_base_url": base_url,
        }

    @staticmethod
    def _upsert_label(
        conn: sqlite3.Connection, pid: int, label: str, version_id: int, now: str
    ) -> None:
        conn.execute(
            "INSERT INTO release_labels (prompt_id, label, version_id, updated_at) "
            "VALUES (?,?,?,?) ON CONFLICT (prompt_id, label) DO UPDATE SET "
            "version_id = excluded.version_id, updated_at = excluded.updated_at",
            (pid, label, version_id, now),
        )

    def set_label(self, name: str, label: str, version: int | str) -> None:
        """Point ``label`` at ``version`` of ``name`` (creating or moving the label)."""
        check_label(label)
        number = check_version(version)
        pid = self._prompt_id(name)
        if number > _MAX_VERSION:
            raise VersionNotFoundError(name, number, self.versions(name))
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT id FROM prompt_versions WHERE prompt_id = ? AND version = ?",
                (pid, number),
            ).fetchone()
            if row is None:
                raise VersionNotFoundError(name, number, self.versions(name))
            self._upsert_label(conn, pid, label, int(row["id"]), utcnow_iso())

    def delete_label(self, name: str, label: str) -> None:
        """Remove a release label."""
        pid = self._prompt_id(name)
        existing = self.labels(name)
        if label not in existing:
            raise LabelNotFoundError(name, label, list(existing))
        with self.db.write() as conn:
            conn.execute(
                "DELETE FROM release_labels WHERE prompt_id = ? AND label = ?", (pid, label)
            )

    # -- PromptLayer JSON in and out -----------------------------------------------------

    def export(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """PromptLayer-shaped records of one version, or of every version when none is given."""
        numbers = [version] if version is not None else self.versions(name)
        records = []
        for number in numbers:
            record = self.get(name, version=number)
            record.pop("release_label", None)
            records.append(record)
        return records

    def import_templates(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Publish PromptLayer template records (as returned by its API) as new versions.

        Records are applied in version order per prompt; their release labels come along.
        """
        items = sorted(records, key=lambda r: (str(r.get("prompt_name")), r.get("version") or 0))
        results = []
        for rec in items:
            if "prompt_template" not in rec:
                raise InvalidInputError(
                    "An imported record has no prompt_template: give PromptLayer template JSON"
                )
            labels = rec.get("release_labels") or []
            if labels and isinstance(labels[0], dict):  # GET /prompt-templates/{id}/labels shape
                labels = [lbl["release_label"] for lbl in labels]
            results.append(
                self.publish(
                    {
                        "prompt_name": rec.get("prompt_name"),
                        "prompt_template": rec["prompt_template"],
                        "metadata": rec.get("metadata"),
                        "commit_message": rec.get("commit_message"),
                        "tags": rec.get("tags") or [],
                        "release_labels": labels,
                        "provider_base_url": rec.get("provider_base_url"),
                    },
                    check_syntax=False,
                )
            )
        return results
