"""Which version ran: release-label drift within a process, and pins in ``prompts.lock.json``.

A release label is a pointer that moves. Two things keep a notebook honest about it:

- **Drift**: the engine remembers, per process, which version each ``(prompt, label)``
  resolved to and when. When a label used earlier resolves to another version, one notice
  says so: ``support-reply@prod is now v5 (was v4 at 10:42)``. Each change is reported once
  (a label that PromptLayer splits across versions, an A/B test, reports each direction once,
  not every run).
- **Pins**: :func:`pin` (``pl_magic.pin()``, ``%plpin``) writes ``prompts.lock.json`` in the
  working directory (a Jupyter kernel's is the notebook's folder), mapping each label this
  process used to the version it points at now. While the file exists, a run by label runs
  the pinned version; when the label points elsewhere, one notice says so instead of
  following it, until ``pin(update=True)`` (``%plpin --update``).

The pin file is JSON, small and diffable (sorted keys, two-space indents), versioned by its
``version`` field (:data:`LOCK_FORMAT`)::

    {"pins": {"support-reply": {"prod": 4, "staging": 5}}, "version": 1}

A file that cannot be read or has another shape is a one-line
:class:`~pl_magic.core.errors.InvalidInputError` naming the file and the fix.

Labels are tracked per registry (per client), so two clients' labels never mix.
The run's log keeps both: ``release_label`` is the label asked for, ``prompt_version`` the
version that ran.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import notices
from ..core.errors import InvalidInputError, VersionNotFoundError

#: The pin file's name, in the current working directory.
LOCK_FILE = "prompts.lock.json"
#: The pin file's format version.
LOCK_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Seen:
    """The version a label resolved to, and when (``time.time()``)."""

    version: int
    at: float


def _name(prompt: str, label: str) -> str:
    return f"{prompt}@{label}"


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


class VersionTracker:
    """What each ``(prompt, label)`` resolved to in this process (thread-safe: a
    comparison prepares its runs from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], Seen] = {}
        self._reported: set[tuple[str, str, int, int]] = set()
        self._pin_reported: set[tuple[str, str, int, int]] = set()

    def observe(self, prompt: str, label: str, version: int, report: bool = True) -> None:
        """Remember that ``prompt@label`` resolved to ``version`` now; with ``report``,
        one notice the first time it moves from one version to another."""
        now = time.time()
        with self._lock:
            key = (prompt, label)
            before = self._seen.get(key)
            self._seen[key] = Seen(version, now)
            if before is None or before.version == version or not report:
                return
            change = (prompt, label, before.version, version)
            if change in self._reported:
                return
            self._reported.add(change)
        notices.warn(
            f"{_name(prompt, label)} is now v{version} "
            f"(was v{before.version} at {_clock(before.at)})"
        )

    def pinned_elsewhere(self, prompt: str, label: str, pinned: int, current: int) -> None:
        """One notice per ``(label, pinned, current)``: the label moved away from its pin."""
        key = (prompt, label, pinned, current)
        with self._lock:
            if key in self._pin_reported:
                return
            self._pin_reported.add(key)
        notices.warn(
            f"{_name(prompt, label)} is pinned to v{pinned} in {LOCK_FILE}; the label now "
            f"points at v{current}: %plpin --update to follow it"
        )

    def used(self) -> dict[tuple[str, str], Seen]:
        """Every label seen in this process, with its latest version."""
        with self._lock:
            return dict(self._seen)

    def clear(self) -> None:
        """Forget everything (tests; a fresh kernel starts empty anyway)."""
        with self._lock:
            self._seen.clear()
            self._reported.clear()
            self._pin_reported.clear()


_TRACKERS: weakref.WeakKeyDictionary[Any, VersionTracker] = weakref.WeakKeyDictionary()
_TRACKERS_LOCK = threading.Lock()


def tracker_for(registry: Any) -> VersionTracker:
    """The tracker of one registry (a client's): labels of two registries are not the same
    labels, and a new client (a changed ``PlMagic.registry``) starts afresh."""
    with _TRACKERS_LOCK:
        tracker = _TRACKERS.get(registry)
        if tracker is None:
            tracker = _TRACKERS[registry] = VersionTracker()
        return tracker


# -- the pin file ------------------------------------------------------------------------


def lock_path() -> Path:
    """Where the pin file is: ``prompts.lock.json`` in the current working directory."""
    return Path.cwd() / LOCK_FILE


def _malformed(path: Path, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"{path} is not a valid pin file ({why}): fix it, or delete it and run %plpin "
        "(pl_magic.pin()) again"
    )


def _parse(path: Path, text: str) -> dict[str, dict[str, int]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _malformed(path, f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except ValueError as exc:  # (a number too long to read)
        raise _malformed(path, f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != LOCK_FORMAT:
        raise _malformed(path, f'expected {{"version": {LOCK_FORMAT}, "pins": {{...}}}}')
    pins = data.get("pins")
    if not isinstance(pins, dict):
        raise _malformed(path, '"pins" must map prompt names to {label: version}')
    out: dict[str, dict[str, int]] = {}
    for prompt, labels in pins.items():
        if not isinstance(labels, dict):
            raise _malformed(path, f"the pins of {prompt!r} must map labels to versions")
        for label, number in labels.items():
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise _malformed(path, f"{prompt}@{label} must be a version number")
        out[str(prompt)] = dict(labels)
    return out


class _PinCache:
    """The pin file as last read, re-read when its size or mtime changes (a comparison of
    1,000 runs stats it 1,000 times, and parses it once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, int, int] | None = None
        self._pins: dict[str, dict[str, int]] = {}

    def read(self, path: Path | None = None) -> dict[str, dict[str, int]] | None:
        path = path or lock_path()
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _malformed(path, f"cannot be read: {exc.strerror}") from None
        key = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            if key == self._key:
                return self._pins
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _malformed(path, f"cannot be read: {exc}") from None
        pins = _parse(path, text)
        with self._lock:
            self._key, self._pins = key, pins
        return pins


_PINS = _PinCache()


def read_pins(path: Path | None = None) -> dict[str, dict[str, int]] | None:
    """The pins in ``prompts.lock.json`` (``{prompt: {label: version}}``), ``None`` without
    the file; a malformed file is a one-line :class:`InvalidInputError`."""
    return _PINS.read(path)


def write_pins(pins: Mapping[str, Mapping[str, int]], path: Path | None = None) -> Path:
    """Write ``pins`` (sorted keys, atomically: a reader never sees half a file)."""
    path = path or lock_path()
    body = {
        "version": LOCK_FORMAT,
        "pins": {p: {lb: int(v) for lb, v in labels.items()} for p, labels in pins.items()},
    }
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


# -- the engine's step -------------------------------------------------------------------


def resolve(
    registry: Any,
    record: dict[str, Any],
    prompt: str,
    label: str | None,
    fetch_version: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """The template record a run by ``label`` runs: ``record`` (what the label points at
    now), or the pinned version's (``fetch_version(n)``) when ``prompts.lock.json`` pins
    the label elsewhere. Reports drift and pins moved away from (see the module docstring).
    """
    if label is None:
        return record
    current = record.get("version")
    if isinstance(current, bool) or not isinstance(current, int):
        return record
    pins = read_pins()
    pinned = (pins or {}).get(prompt, {}).get(label)
    tracker = tracker_for(registry)
    # A pinned label's moves are reported by the pin notice, not the drift one.
    tracker.observe(prompt, label, current, report=pinned is None)
    if pinned is None or pinned == current:
        return record
    try:
        found = fetch_version(pinned)
    except VersionNotFoundError as exc:
        # the pin, not the label, named the missing version: say where it came from
        exc.args = (
            f"{exc} ({_name(prompt, label)} is pinned to v{pinned} in {LOCK_FILE}; the label "
            f"points at v{current}: %plpin --update to pin it there)",
        )
        raise
    tracker.pinned_elsewhere(prompt, label, pinned, current)
    return found


def pin(registry: Any, update: bool = False) -> Path:
    """Write ``prompts.lock.json``: each label this process ran through ``registry`` (and
    each already pinned) mapped to the version it points at now (``registry.labels``).

    Without ``update`` a label already pinned keeps its pin; with it, every pin follows
    its label. A label the registry no longer has is pinned to the version it last ran
    (or keeps its pin). The file's path.
    """
    path = lock_path()
    tracker = tracker_for(registry)
    pins = {p: dict(labels) for p, labels in (read_pins(path) or {}).items()}
    wanted: dict[str, set[str]] = {}
    for prompt, label in tracker.used():
        wanted.setdefault(prompt, set()).add(label)
    if update:
        for prompt, labels in pins.items():
            wanted.setdefault(prompt, set()).update(labels)
    for prompt, names in wanted.items():
        missing = [lb for lb in names if update or lb not in pins.get(prompt, {})]
        if not missing:
            continue
        now = registry.labels(prompt)
        for label in missing:
            number = now.get(label)
            if number is None:  # the label was deleted: the last version it ran
                seen = tracker.used().get((prompt, label))
                if seen is None:
                    continue
                number = seen.version
            pins.setdefault(prompt, {})[label] = int(number)
    return write_pins(pins, path)
