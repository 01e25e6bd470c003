"""The registry port: what the engine and the surfaces need of a prompt registry.

Two adapters implement it: :class:`pl_magic.registry.local.LocalRegistry` (SQLite) and
:class:`pl_magic.registry.promptlayer.PromptLayerRegistry`. Their shared input checks live
here too, so that a publish body or a label is refused with the same words by both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..core import blueprint
from ..core.blueprint import ModelSpec
from ..core.errors import InvalidInputError, TemplateSyntaxError, shown


@dataclass(frozen=True)
class PreRendered:
    """A prompt the registry rendered itself for a run's inputs (PromptLayer can).

    ``spec.name`` is empty when the registry named no model (the provider's default is
    used); ``request`` is the native request when the registry built it, else ``None`` and
    the provider builds it from ``template`` and ``spec``.
    """

    spec: ModelSpec
    template: dict[str, Any]
    request: dict[str, Any] | None


class Registry(Protocol):
    """A prompt registry: named prompts, integer versions, movable release labels."""

    #: ``local`` or ``promptlayer`` (the run log's ``backend`` column).
    kind: str

    def get(
        self, name: str, version: int | str | None = None, label: str | None = None, **run: Any
    ) -> dict[str, Any]:
        """A template record in PromptLayer's shape; the label wins over the version."""
        ...

    def run_context(self, options: Any) -> dict[str, Any]:
        """What :meth:`get` is also given for a run (its inputs, for server rendering)."""
        ...

    def prerendered(self, record: Mapping[str, Any], stream: bool) -> PreRendered | None:
        """The run already rendered by the registry, or ``None`` to render it locally."""
        ...

    def names(self) -> list[str]:
        """Every prompt name."""
        ...

    def versions(self, name: str) -> list[int]:
        """A prompt's version numbers, oldest first."""
        ...

    def labels(self, name: str) -> dict[str, int]:
        """A prompt's release labels and the version each points at."""
        ...

    def list_prompts(self) -> list[dict[str, Any]]:
        """Every prompt with its versions and labels (``pl_magic.prompts()``)."""
        ...

    def publish(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new version (a ``templates.publish`` body); the stored record."""
        ...

    def set_label(self, name: str, label: str, version: int | str) -> None:
        """Point a release label at a version (creating the label)."""
        ...

    def delete_label(self, name: str, label: str) -> None:
        """Remove a release label."""
        ...


_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_provider_base_url(value: Any) -> dict[str, Any] | None:
    """PromptLayer's ``provider_base_url`` as ``{"url": ...}`` (accepts a plain URL string)."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        return {"url": value}
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        return dict(value)
    raise InvalidInputError(f"provider_base_url must be a URL or {{'url': ...}}, not {value!r}")


def check_label(label: str) -> str:
    """A release label as given, or a one-line error naming the characters allowed."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise InvalidInputError(
            f"Invalid release label {shown(label)}: use letters, digits, '-', '_' or '.'"
        )
    return label


def check_version(version: Any) -> int:
    """A version number (``3`` or ``"3"``) as an int, or a one-line error."""
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise InvalidInputError(f"Invalid version {shown(version)}: give a number like 3")
    try:
        number = int(version)
    except ValueError:
        raise InvalidInputError(
            f"Invalid version {shown(version)}: give a number like 3 (or use a release label)"
        ) from None
    if number < 1:
        raise InvalidInputError(f"Invalid version {shown(version)}: versions start at 1")
    return number


@dataclass
class PublishBody:
    """A publish body, checked: what both registries store."""

    name: str
    template: dict[str, Any]
    metadata: dict[str, Any] | None
    tags: list[str]
    labels: list[str]
    commit_message: str | None


def check_publish_body(body: Any, check_syntax: bool = True) -> PublishBody:
    """Check a ``templates.publish`` body as both registries require; bad input is one line.

    The template gets :func:`pl_magic.core.blueprint.validate` and its input variables filled in
    (a template whose text does not parse is refused unless ``check_syntax`` is False).
    """
    if not isinstance(body, Mapping):
        raise InvalidInputError("publish() takes a dict with prompt_name and prompt_template")
    name = body.get("prompt_name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("publish() needs a 'prompt_name': give the prompt a name")
    name = name.strip()
    blueprint.check_utf8(dict(body), f"The body of prompt {shown(name)}")
    template = blueprint.validate(body.get("prompt_template"), name)
    try:
        template = blueprint.with_input_variables(template)
    except TemplateSyntaxError:
        if check_syntax:
            raise
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a dict like {'model': {...}}")
    blueprint.validate_metadata(metadata, name)
    tags = _names(body.get("tags"), "tags", "['support']")
    labels = [check_label(lbl) for lbl in _names(body.get("release_labels"), "release_labels")]
    commit = body.get("commit_message")
    if commit is not None and not isinstance(commit, str):
        raise InvalidInputError(
            f"commit_message must be text, not {type(commit).__name__}: e.g. 'shorter replies'"
        )
    return PublishBody(name, template, metadata, tags, labels, commit)


def _names(value: Any, what: str, example: str = "['prod']") -> list[str]:
    """A list of strings (``None`` is none); a bare string is refused, not split in letters."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"{what} must be a list of strings, e.g. {example}")
    return list(value)
