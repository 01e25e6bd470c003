"""What makes the drop-in clients answer as PromptLayer's SDK does, shared by
:class:`pl_magic.PromptLayer` and :class:`pl_magic.AsyncPromptLayer`.

* **Result shapes.** ``run()`` results carry exactly the SDK's keys; the blueprint's
  ``prompt_name``/``prompt_version``/``release_label`` (kept for the module-level API and
  the DataFrames) are left out.
* **Exception classes.** When the program has imported ``promptlayer.exceptions`` (code
  ported from the SDK that still catches its classes), a PromptLayer failure is raised as
  a class that is both pl_magic's error and the SDK's class for that status, so
  ``except PromptLayerNotFoundError`` keeps working. Without that import nothing changes
  (and the SDK, heavy to import, is never imported by pl_magic).
* **throw_on_error=False.** PromptLayer failures become a one-line notice and the SDK's
  fallback value (``None``, ``[]`` or ``False``).
* **Constructor options** checked as the SDK's are (``cache_ttl_seconds``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

from .core import notices
from .core.errors import (
    InvalidInputError,
    LabelNotFoundError,
    PromptLayerError,
    PromptLayerUnavailableError,
    PromptNotFoundError,
    RegistryError,
    VersionNotFoundError,
    shown,
)
from .core.types import RunChunk, RunResult

_T = TypeVar("_T")
#: A run's result or one of its stream chunks (the same keys).
_Shape = TypeVar("_Shape", RunResult, RunChunk)

#: Blueprint keys pl_magic adds for its own surfaces; PromptLayer's results have none.
PL_MAGIC_BLUEPRINT_KEYS = ("prompt_name", "prompt_version", "release_label")

#: The SDK's exception class for each PromptLayer HTTP status (its raise_on_bad_response).
_SDK_CLASS_BY_STATUS = {
    400: "PromptLayerBadRequestError",
    401: "PromptLayerAuthenticationError",
    403: "PromptLayerPermissionDeniedError",
    404: "PromptLayerNotFoundError",
    409: "PromptLayerConflictError",
    422: "PromptLayerUnprocessableEntityError",
    429: "PromptLayerRateLimitError",
}
_COMBINED: dict[tuple[type, type], type] = {}


def sdk_result(result: _Shape) -> _Shape:
    """A run result (or stream chunk) with exactly the SDK's keys."""
    blueprint = result.get("prompt_blueprint")
    if isinstance(blueprint, Mapping) and any(k in blueprint for k in PL_MAGIC_BLUEPRINT_KEYS):
        sdk_blueprint = {k: v for k, v in blueprint.items() if k not in PL_MAGIC_BLUEPRINT_KEYS}
        return cast("_Shape", {**result, "prompt_blueprint": sdk_blueprint})
    return result


def sdk_stream(chunks: Iterator[RunChunk]) -> Iterator[RunChunk]:
    """The chunks of a streamed run, each with the SDK's keys."""
    try:
        for chunk in chunks:
            yield sdk_result(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # an early break logs the run as cancelled, as pl_magic's own stream


async def sdk_astream(chunks: AsyncIterator[RunChunk]) -> AsyncIterator[RunChunk]:
    """The async twin of :func:`sdk_stream`."""
    try:
        async for chunk in chunks:
            yield sdk_result(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _sdk_class_name(exc: BaseException) -> str | None:
    if isinstance(exc, PromptNotFoundError | VersionNotFoundError | LabelNotFoundError):
        return "PromptLayerNotFoundError"
    if not isinstance(exc, PromptLayerError):
        return None
    status = exc.status_code
    if status is None:
        return (
            "PromptLayerAPIConnectionError"
            if isinstance(exc, PromptLayerUnavailableError)
            else None
        )
    if status >= 500:
        return "PromptLayerInternalServerError"
    return _SDK_CLASS_BY_STATUS.get(status, "PromptLayerAPIStatusError")


def sdk_error(exc: BaseException) -> BaseException:
    """``exc``, catchable as the SDK's class too when the program uses the SDK's classes."""
    module = sys.modules.get("promptlayer.exceptions")
    name = _sdk_class_name(exc) if module is not None else None
    theirs = getattr(module, name, None) if name else None
    if not isinstance(theirs, type) or isinstance(exc, theirs):
        return exc
    ours = type(exc)
    combined = _COMBINED.get((ours, theirs))
    if combined is None:
        # Exception's __str__: the SDK's returns self.message, which on pl_magic's side is str()
        namespace = {"__module__": ours.__module__, "__str__": Exception.__str__}
        combined = type(ours.__name__, (ours, theirs), namespace)
        combined.__qualname__ = ours.__qualname__
        _COMBINED[(ours, theirs)] = combined
    new: BaseException = Exception.__new__(combined)
    new.__dict__.update(exc.__dict__)
    new.args = exc.args
    # the SDK's attributes: its message (a property on pl_magic's side), response, body
    new.__dict__.update(response=None, body=None)
    return new


def reraise_as_sdk(exc: BaseException) -> None:
    """Raise ``exc`` as :func:`sdk_error` makes it (same message, same cause)."""
    new = sdk_error(exc)
    if new is exc:
        raise exc
    raise new.with_traceback(exc.__traceback__) from exc.__cause__


def guarded(throw_on_error: bool, fallback: Any, action: str, call: Callable[[], _T]) -> _T:
    """``call()``; with ``throw_on_error=False`` a PromptLayer failure is a notice and
    ``fallback`` (the SDK's ``None``/``[]``/``False``). Bad input always raises.

    Typed as ``call``'s result: the fallback exists only for code that asked for it."""
    try:
        return call()
    except RegistryError as exc:
        if throw_on_error:
            reraise_as_sdk(exc)
        notices.warn(f"PromptLayer had an error {action}: {exc}")
        return fallback


#: The constructor options of the drop-in clients (the SDK's, plus pl_magic's ``backend``).
CLIENT_OPTIONS = (
    "api_key",
    "base_url",
    "backend",
    "enable_tracing",
    "throw_on_error",
    "cache_ttl_seconds",
    "tracer_provider",
    "tracing_providers",
)


def refuse_unknown_options(unknown: Mapping[str, Any]) -> None:
    """A one-line error for constructor options neither the SDK nor pl_magic has."""
    if unknown:
        raise InvalidInputError(
            f"PromptLayer() got unknown option(s) {', '.join(sorted(unknown))}: use "
            f"{', '.join(CLIENT_OPTIONS)}"
        )


def check_cache_ttl(value: Any) -> float | None:
    """``cache_ttl_seconds``: None (pl_magic's default) or seconds ≥ 0 (0: no cache)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInputError(
            f"cache_ttl_seconds must be a number of seconds ≥ 0, not {shown(value)}: "
            "0 fetches the template on every run, as PromptLayer's SDK"
        )
    return float(value)


def check_page(page: Any, per_page: Any) -> None:
    """``templates.all`` paging: positive integers."""
    for name, value in (("page", page), ("per_page", per_page)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(
                f"templates.all() {name} must be a whole number ≥ 1, not {shown(value)}: "
                f"e.g. templates.all(page=1, per_page=30)"
            )


#: ``log_request``'s fields in the SDK's order, with its defaults for the mutable ones.
_LOG_REQUEST_DEFAULTS: dict[str, Any] = {
    "parameters": {},
    "tags": [],
    "metadata": {},
    "prompt_input_variables": {},
}
LOG_REQUEST_FIELDS = (
    "provider",
    "model",
    "input",
    "output",
    "request_start_time",
    "request_end_time",
    "parameters",
    "tags",
    "metadata",
    "prompt_name",
    "prompt_version_number",
    "prompt_input_variables",
    "input_tokens",
    "output_tokens",
    "price",
    "function_name",
    "score",
    "prompt_id",
    "score_name",
    "api_type",
    "status",
    "error_type",
    "error_message",
)
#: The async SDK's ``log_request`` has neither (it sends neither).
ASYNC_LOG_REQUEST_MISSING = ("score_name", "api_type")


def log_request_body(arguments: Mapping[str, Any], is_async: bool = False) -> dict[str, Any]:
    """The ``/log-request`` body the SDK sends for these ``log_request`` arguments."""
    for name in ("provider", "model"):
        if not isinstance(arguments.get(name), str) or not arguments[name].strip():
            raise InvalidInputError(
                f"log_request() needs {name}= as text, e.g. provider='openai', model='gpt-4o-mini'"
            )
    for name in ("input", "output"):
        if not isinstance(arguments.get(name), Mapping):
            raise InvalidInputError(
                f"log_request() {name}= must be a prompt template dict, e.g. "
                "{'type': 'chat', 'messages': [...]}"
            )
    body: dict[str, Any] = {}
    for name in LOG_REQUEST_FIELDS:
        if is_async and name in ASYNC_LOG_REQUEST_MISSING:
            continue
        value = arguments.get(name)
        if value is None and name in _LOG_REQUEST_DEFAULTS:
            value = _LOG_REQUEST_DEFAULTS[name]
        body[name] = value
    return body
