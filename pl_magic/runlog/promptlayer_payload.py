"""The ``/track-request`` body the official PromptLayer SDK sends for a run (minus the key).

PromptLayer files a request by its ``function_name`` and reads ``kwargs`` as the SDK
function's arguments, so both are what the SDK would send for the same call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..core import local_target
from ..core.errors import PlMagicError
from ..core.store import dumps
from .base import ProviderCall, RunRecord

#: The error category of a reply that is not the JSON its run asked for, and the metadata key
#: that marks such a run on PromptLayer.
INVALID_OUTPUT = "invalid_output"
INVALID_OUTPUT_KEY = "pl_magic_error"


def error_type(error: PlMagicError | None) -> str:
    """The SDK's ``error_type`` category (``categorize_error``) for a failed run."""
    category = getattr(error, "category", None)
    status = getattr(error, "status_code", None)
    message = str(error).lower()
    if category == "rate_limit" or status == 429:
        return "PROVIDER_RATE_LIMIT"
    if status == 402:
        return "PROVIDER_QUOTA_LIMIT"
    if category == "timeout":
        return "PROVIDER_TIMEOUT"
    if status == 401 or (category == "auth" and status is None):
        return "PROVIDER_AUTH_ERROR"
    if category in (None, "unknown"):
        return "UNKNOWN_ERROR"
    return "PROVIDER_QUOTA_LIMIT" if "quota" in message else "PROVIDER_ERROR"


def wire_kwargs(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as it went on the wire: JSON only, ``extra_body`` merged in."""
    out = json.loads(dumps(request))
    extra = out.pop("extra_body", None)
    if isinstance(extra, dict):
        out.update(extra)
    return out


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return time.time()


def track_payload(
    record: RunRecord, call: ProviderCall, error: PlMagicError | None
) -> dict[str, Any]:
    """The body the official SDK posts to ``/track-request`` for this run (minus the key)."""
    kwargs = wire_kwargs(call.request)
    kwargs.setdefault("stream", call.stream)  # the SDK always passes it
    raw = record.raw_response
    payload: dict[str, Any] = {
        "function_name": call.function_name,
        "provider_type": local_target.wire_provider(record.provider),
        "args": [],
        "kwargs": kwargs,
        "tags": list(record.tags) or None,
        "request_start_time": _epoch(record.started_at) if record.started_at else time.time(),
        "request_end_time": time.time(),
        "metadata": dict(record.metadata) or None,
        "prompt_id": record.prompt_id,
        "prompt_version": record.prompt_version,
        "prompt_input_variables": record.input_variables,
        "group_id": record.group_id,
        "return_prompt_blueprint": True,
        "span_id": None,
        "request_response": json.loads(dumps(raw)) if raw else {},
    }
    if record.status == "error" and record.error_category == INVALID_OUTPUT:
        # The provider answered, and PromptLayer's SDK (which does not parse replies) would
        # log the reply: PromptLayer gets it, marked in the metadata (an ERROR would drop
        # the response, and with it the paid-for text).
        payload["metadata"] = {**(payload["metadata"] or {}), INVALID_OUTPUT_KEY: INVALID_OUTPUT}
    elif record.status == "error":
        payload.update(
            status="ERROR",
            error_type=error_type(error),
            error_message=(record.error_message or "")[:1024],
            request_response={},
        )
    elif record.status == "cancelled":
        # The SDK logs nothing for an abandoned stream; PromptLayer gets it as a warning.
        payload.update(
            status="WARNING",
            error_type="UNKNOWN_ERROR",
            error_message=f"cancelled before the end of the reply ({len(record.output)} "
            "characters received)",
            request_response={},
        )
    return payload
