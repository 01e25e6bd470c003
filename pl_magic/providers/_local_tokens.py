"""Token counts for streams from a local server that sends no usage.

llama-cpp-python's server (the embedded local model) ignores ``stream_options.include_usage``:
its streams end without a usage chunk, so a streamed run would log no tokens. When a stream
from a local server ends without usage, its tokens are counted here and one last chunk with
``usage`` is added, shaped as a server that honours ``include_usage`` sends it:

- llama.cpp's own server puts ``timings`` (``prompt_n``, ``predicted_n``) in its last chunk:
  those are the counts, no request needed;
- otherwise the server's tokenizer is asked: ``POST /extras/tokenize/count`` (llama-cpp-python)
  or ``POST /tokenize`` (llama.cpp). The output is the reply's text; the input is the chat
  written in ChatML (``<|im_start|>role\\ncontent<|im_end|>``, then the assistant's turn), the
  chat template of SmolLM2 and of many small models: exact for them, close for the others.

A server that answers neither leaves the tokens unknown, as before (never an error).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ..core.blueprint import content_text
from ..core.local_target import LOCAL_MODEL_NAME

#: Seconds to wait for the server's tokenizer.
TIMEOUT_S = 3.0


def _root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _post(url: str, body: Mapping[str, Any]) -> Any:
    import httpx2

    # a loopback server: no proxy from the environment (trust_env) may see the prompt
    response = httpx2.post(url, json=body, timeout=TIMEOUT_S, trust_env=False)
    response.raise_for_status()
    return response.json()


def count_text(base_url: str, text: str, model: str | None = None) -> int | None:
    """The server's token count of ``text`` (no special tokens added), or None."""
    root = _root(base_url)
    try:
        answer = _post(f"{root}/extras/tokenize/count", {"input": text, "model": model})
        if isinstance(answer, Mapping) and isinstance(answer.get("count"), int):
            return int(answer["count"])
    except Exception:  # not llama-cpp-python: try llama.cpp's endpoint
        pass
    try:
        answer = _post(f"{root}/tokenize", {"content": text, "add_special": False})
        tokens = answer.get("tokens") if isinstance(answer, Mapping) else None
        return len(tokens) if isinstance(tokens, list) else None
    except Exception:
        return None


#: What SmolLM2's chat template (in the embedded model's GGUF) puts first when a chat has no
#: system message.
SMOLLM2_DEFAULT_SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n"
)


def prompt_text(request: Mapping[str, Any]) -> str:
    """The input the server sees, as ChatML (chat) or the prompt itself (completions).

    For the embedded model a chat with no system message starts with SmolLM2's default one,
    as its template writes it (without it the count was 21 tokens short).
    """
    if "prompt" in request:
        return str(request["prompt"])
    messages = request.get("messages") or []
    parts = []
    first_role = messages[0].get("role") if messages else None
    if request.get("model") == LOCAL_MODEL_NAME and first_role != "system":
        parts.append(SMOLLM2_DEFAULT_SYSTEM)
    for message in messages:
        role = str(message.get("role", "user"))
        parts.append(f"<|im_start|>{role}\n{content_text(message.get('content'))}<|im_end|>\n")
    return "".join(parts) + "<|im_start|>assistant\n"


class _Seen:
    """What a stream said so far: its text, whether it sent usage, its last chunk."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage = False
        self.last: Any = None
        self.timings: Mapping[str, Any] | None = None

    def add(self, chunk: Any) -> None:
        self.last = chunk
        if getattr(chunk, "usage", None) is not None:
            self.usage = True
        timings = (getattr(chunk, "model_extra", None) or {}).get("timings")
        if isinstance(timings, Mapping):
            self.timings = timings
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            piece = delta.content if delta is not None else getattr(choice, "text", None)
            if piece:
                self.parts.append(piece)
            for call in (getattr(delta, "tool_calls", None) or []) if delta is not None else []:
                if call.function is not None and call.function.arguments:
                    self.parts.append(call.function.arguments)

    def counts(self, base_url: str, request: Mapping[str, Any]) -> tuple[int, int] | None:
        """(input, output) tokens, from the timings or the server's tokenizer."""
        if self.timings is not None:
            prompt_n, predicted_n = self.timings.get("prompt_n"), self.timings.get("predicted_n")
            if isinstance(prompt_n, int) and isinstance(predicted_n, int):
                return prompt_n, predicted_n
        model = request.get("model")
        model = str(model) if model is not None else None
        prompt = count_text(base_url, prompt_text(request), model)
        if prompt is None:
            return None
        output = count_text(base_url, "".join(self.parts), model) if self.parts else 0
        return None if output is None else (prompt, output)

    def usage_chunk(self, counts: tuple[int, int] | None) -> Any:
        """The last chunk again, with no choices and the usage (None: nothing to add)."""
        copy = getattr(self.last, "model_copy", None)
        if counts is None or not callable(copy):
            return None
        from openai.types import CompletionUsage

        usage = CompletionUsage(
            prompt_tokens=counts[0], completion_tokens=counts[1], total_tokens=sum(counts)
        )
        return copy(update={"choices": [], "usage": usage})


class CountingStream:
    """A local server's stream (sync), with a usage chunk added when it sent none."""

    def __init__(self, native: Any, base_url: str, request: Mapping[str, Any]) -> None:
        self.native, self.base_url, self.request = native, base_url, request

    def __iter__(self) -> Iterator[Any]:
        seen = _Seen()
        for chunk in self.native:
            seen.add(chunk)
            yield chunk
        if not seen.usage:
            extra = seen.usage_chunk(seen.counts(self.base_url, self.request))
            if extra is not None:
                yield extra

    def close(self) -> None:
        """Close the native stream."""
        self.native.close()


class AsyncCountingStream:
    """Async twin of :class:`CountingStream` (the count runs off the event loop)."""

    def __init__(self, native: Any, base_url: str, request: Mapping[str, Any]) -> None:
        self.native, self.base_url, self.request = native, base_url, request

    async def __aiter__(self) -> AsyncIterator[Any]:
        seen = _Seen()
        async for chunk in self.native:
            seen.add(chunk)
            yield chunk
        if not seen.usage:
            counts = await asyncio.to_thread(seen.counts, self.base_url, self.request)
            extra = seen.usage_chunk(counts)
            if extra is not None:
                yield extra

    async def aclose(self) -> None:
        """Close the native stream."""
        close = getattr(self.native, "aclose", None) or self.native.close
        result = close()
        if hasattr(result, "__await__"):
            await result
