"""A fake provider for your own tests: prompts run through the real engine, and the reply
comes from a list or a function, with no network and no key.

Like httpx's ``MockTransport`` or llm's ``MockModel``, the fake replaces one thing, the
provider: :func:`fake_provider` puts it in pl_magic's provider table for the block, so
``pl_magic.run`` (streamed or not, sync or async), ``%%plrun``, ``run_many`` and the widget
find it there as they would find OpenAI. The template is resolved, rendered and turned into
the real provider's request; the run is logged as usual. Only the call is answered here::

    import pl_magic
    from pl_magic.testing import fake_provider

    def test_greeting():
        pl_magic.publish({
            "prompt_name": "greet",
            "prompt_template": {"type": "chat", "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi {name}"}]}]},
            "metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}},
        })
        with fake_provider(["Hello Ada!"]) as fake:
            result = pl_magic.run("greet", input_variables={"name": "Ada"})
        assert result["prompt_blueprint"]["prompt_template"]["messages"][-1][
            "content"][0]["text"] == "Hello Ada!"
        assert fake.requests[0].text == "Hi Ada"
        assert fake.requests[0].request["messages"][0]["content"][0]["text"] == "Hi Ada"

What the fake does:

- **Replies**: a list (one reply per call, in order; an exception in it is raised by that
  call, as the provider's failure would be), one string (every call), a function
  ``(FakeRequest) -> str`` (it may raise), or nothing (each call answers with the last text
  of its own prompt). When a list runs out, the call fails with :class:`NoReplyLeftError`.
- **Which provider**: ``provider="openai"`` by default; a name or a list of names from
  ``pl_magic.providers.supported()``. Templates of other providers still go to their real
  provider. On exit the table is as it was.
- **Requests**: ``fake.requests`` lists a :class:`FakeRequest` per call, in the order the
  calls were made: the provider it stood in for, the model, the native request the real
  provider would have been sent (built by the real adapter), whether it streamed.
- **No key, no server**: the fake reads no key and sends nothing, so neither the key check
  nor the rule on where a key may go applies; a template's ``provider_base_url`` is recorded
  (:attr:`FakeRequest.base_url`), never contacted. While the fake stands in for ``openai``,
  templates marked as the embedded local model reach it too (instead of starting the
  model's server): unless set, ``PL_MAGIC_LOCAL_BASE_URL`` points at an unused loopback
  address for the block.
- **One table per process**: the substitution is seen by every thread. While blocks
  overlap (nested, or in threads), the newest open one answers for a provider; a block
  that ends takes out only its own fake, whatever the order blocks end in.
- **Streaming**: the reply comes in up to ``chunks`` pieces, cut between words; the last
  chunk carries the usage.
- **Usage**: tokens are counted words: ``input_tokens`` the words of the prompt's texts,
  ``output_tokens`` those of the reply. The cost is None, as for a server pl_magic cannot
  price (nothing was paid).
- **Raw response**: ``raw_response`` is a plain dict (``{"object": "fake.response", "text":
  ..., "usage": ...}``; stream chunks ``{"object": "fake.chunk", "text": ...}``), not an SDK
  object.

The PromptLayer backend (``PROMPTLAYER_API_KEY`` set) is not faked: unset the key to run on
the local registry.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import providers
from .core.blueprint import ModelSpec
from .core.errors import InvalidInputError, PlMagicError, ProviderError, StreamTruncatedError
from .core.local_target import ENV_BASE_URL
from .providers.base import ParameterMap, Provider, Reply, StreamState

__all__ = ["FakeProvider", "FakeRequest", "NoReplyLeftError", "fake_provider"]

#: Where templates marked as the local model are sent while the fake stands in for openai
#: (port 9, "discard": never contacted, the fake answers first).
_UNUSED_LOCAL_URL = "http://127.0.0.1:9/v1"

# Keys of a native request whose string values are prompt text (every provider's shape), and
# those read first because the system prompt comes before the turns.
_TEXT_KEYS = frozenset(
    {"text", "content", "prompt", "input", "system", "instructions", "system_instruction"}
)
_FIRST_KEYS = ("system", "instructions", "system_instruction", "config")

Replies = str | Iterable[str | BaseException] | Callable[["FakeRequest"], str] | None


@dataclass(frozen=True)
class FakeRequest:
    """One call the fake received."""

    #: The provider it stood in for (``"openai"``).
    provider: str
    #: The model asked for.
    model: str
    #: The native request (the SDK call's keyword arguments) the real provider would get.
    request: dict[str, Any]
    #: Whether the call streamed.
    stream: bool
    #: The texts of the prompt, in order (system prompt first, then each turn's text).
    texts: tuple[str, ...]
    #: The template's ``provider_base_url``, if any (not contacted).
    base_url: str | None = None

    @property
    def text(self) -> str:
        """The prompt's texts joined by newlines."""
        return "\n".join(self.texts)


class NoReplyLeftError(ProviderError):
    """The fake was given a list of replies and every one has been used."""

    def __init__(self, provider: str, given: int) -> None:
        self.provider = provider
        # (PlMagicError's init: the message is the whole story, with no provider fix appended)
        PlMagicError.__init__(
            self,
            f"pl_magic.testing.fake_provider has no reply left for call {given + 1} to "
            f"{provider}: it was given {given}; give it more replies, or a function "
            "(request) -> str",
        )


def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value, key=lambda k: k not in _FIRST_KEYS):  # stable: system first
            item = value[key]
            if key in _TEXT_KEYS and isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping | list | tuple):
                _texts(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _texts(item, out)


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str, count: int) -> list[str]:
    """``text`` cut between words into at most ``count`` pieces that join back to it."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    size = max(1, -(-len(words) // max(1, count)))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class _FakeStream(StreamState):
    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider
        self.raw: dict[str, Any] | None = None

    def feed(self, chunk: Any) -> str:
        if chunk.get("object") == "fake.done":
            self.complete = True
            self.finish_reason = chunk["finish_reason"]
            self.input_tokens = chunk["usage"]["input_tokens"]
            self.output_tokens = chunk["usage"]["output_tokens"]
            self.raw = chunk["response"]
            return ""
        piece = str(chunk["text"])
        self.parts.append(piece)
        return piece

    def finish(self) -> Reply:
        if not self.complete:
            raise StreamTruncatedError(self.provider, self.text)
        return Reply(
            self.text, self.finish_reason, self.input_tokens, self.output_tokens, None, self.raw
        )


class FakeProvider:
    """What :func:`fake_provider` yields: the calls it received, in :attr:`requests`."""

    def __init__(self, replies: Replies, names: tuple[str, ...], chunks: int) -> None:
        #: Every call received, in order.
        self.requests: list[FakeRequest] = []
        #: The providers it stands in for.
        self.providers = names
        self.chunks = chunks
        self._lock = threading.Lock()
        self._function: Callable[[FakeRequest], str] | None = None
        self._replies: Iterator[str | BaseException] | None = None
        self._given = 0
        if callable(replies):
            self._function = replies
        elif isinstance(replies, str):
            self._replies = itertools.repeat(replies)
        elif replies is not None:
            self._replies = iter(replies)

    def _answer(
        self, provider: str, request: dict[str, Any], spec: ModelSpec, stream: bool
    ) -> tuple[FakeRequest, str]:
        """Record one call and pick its reply; raise what the replies say to raise."""
        texts: list[str] = []
        _texts(request, texts)
        received = FakeRequest(
            provider, spec.name, copy.deepcopy(request), stream, tuple(texts), spec.base_url
        )
        reply: str | BaseException
        with self._lock:
            self.requests.append(received)
            if self._replies is not None:
                try:
                    reply = next(self._replies)
                except StopIteration:
                    raise NoReplyLeftError(provider, self._given) from None
                self._given += 1
        if self._function is not None:
            reply = self._function(received)
        elif self._replies is None:
            reply = texts[-1] if texts else ""
        if isinstance(reply, BaseException):
            raise reply
        if not isinstance(reply, str):
            raise InvalidInputError(
                f"a fake_provider reply must be a string, not {type(reply).__name__}"
            )
        return received, reply

    def response(
        self, provider: str, request: dict[str, Any], spec: ModelSpec, stream: bool
    ) -> Any:
        """The native response for one call: a dict, or an iterator of chunk dicts."""
        received, reply = self._answer(provider, request, spec, stream)
        usage = {
            "input_tokens": sum(_words(t) for t in received.texts),
            "output_tokens": _words(reply),
        }
        whole = {
            "object": "fake.response",
            "provider": provider,
            "model": spec.name,
            "text": reply,
            "finish_reason": "stop",
            "usage": usage,
        }
        if not stream:
            return whole
        chunks: list[dict[str, Any]] = [
            {"object": "fake.chunk", "text": piece} for piece in _pieces(reply, self.chunks)
        ]
        chunks.append(
            {"object": "fake.done", "finish_reason": "stop", "usage": usage, "response": whole}
        )
        return iter(chunks)


class _FakeAdapter(Provider):
    """The provider object registered in the table: the real adapter builds the request,
    the fake answers it."""

    def __init__(self, fake: FakeProvider, real: Provider, name: str) -> None:
        super().__init__()
        self.name = name
        self.parameters: ParameterMap = real.parameters
        self.fake, self.real = fake, real

    def parameters_for(self, api_type: str | None, model: str) -> ParameterMap:
        return self.real.parameters_for(api_type, model)

    def warm(self, spec: ModelSpec, is_async: bool) -> None:
        pass  # no client

    def check_credentials(self, spec: ModelSpec) -> None:
        pass  # no key read, nothing sent

    def resolve_api_type(self, spec: ModelSpec, rendered: Mapping[str, Any]) -> str | None:
        return self.real.resolve_api_type(spec, rendered)

    def build_request(
        self, rendered: Mapping[str, Any], spec: ModelSpec, stream: bool
    ) -> dict[str, Any]:
        return self.real.build_request(rendered, spec, stream)

    def call(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        return self.fake.response(self.name, request, spec, stream)

    async def acall(self, request: dict[str, Any], spec: ModelSpec, stream: bool) -> Any:
        response = self.fake.response(self.name, request, spec, stream)
        return _aiter(response) if stream else response

    def parse(self, response: Any, spec: ModelSpec) -> Reply:
        usage = response["usage"]
        return Reply(
            response["text"],
            response["finish_reason"],
            usage["input_tokens"],
            usage["output_tokens"],
            None,
            response,
        )

    def stream_state(self, spec: ModelSpec) -> StreamState:
        return _FakeStream(self.name)

    def classify(self, exc: BaseException) -> ProviderError | None:
        return None  # what a reply raises is not an SDK error: an "unknown" failure

    def pricing_provider_id(self, spec: ModelSpec) -> str | None:
        return None  # counted words are not tokens: no price


async def _aiter(chunks: Iterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


@contextlib.contextmanager
def fake_provider(
    replies: Replies = None, *, provider: str | Iterable[str] = "openai", chunks: int = 3
) -> Iterator[FakeProvider]:
    """Stand in for ``provider`` (one name or several) for the block: runs go through the
    real engine, the calls are answered from ``replies`` (see the module's documentation).

    ``with fake_provider(["hello", "world"]) as fake:`` answers the next two calls to OpenAI
    with "hello" then "world" and records them in ``fake.requests``.
    """
    names = (provider,) if isinstance(provider, str) else tuple(provider)
    if not names:
        raise InvalidInputError("fake_provider needs at least one provider name, e.g. 'openai'")
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise InvalidInputError(f"chunks must be a whole number of at least 1, not {chunks!r}")
    fake = FakeProvider(replies, names, chunks)
    entries = []
    for name in dict.fromkeys(names):
        real_info = providers.info(name)  # an unknown name is a one-line error
        adapter = _FakeAdapter(fake, providers.get_provider(name), name)
        entries.append(dataclasses.replace(real_info, adapter=_constant(adapter)))
    with contextlib.ExitStack() as stack:
        if "openai" in names:
            stack.enter_context(_local_model_answered_here())
        stack.enter_context(providers.registered(*entries))
        yield fake


def _constant(adapter: Provider) -> Callable[[], Provider]:
    return lambda: adapter


_local_url_lock = threading.Lock()
_local_url_blocks = 0  # fake_provider blocks for openai open now
_local_url_set_here = False


@contextlib.contextmanager
def _local_model_answered_here() -> Iterator[None]:
    """Templates of the embedded local model reach the fake, not a started server: unless
    the user set it, ``PL_MAGIC_LOCAL_BASE_URL`` names an unused loopback address while any
    block is open (counted, so blocks in threads may end in any order)."""
    global _local_url_blocks, _local_url_set_here
    with _local_url_lock:
        if _local_url_blocks == 0:
            _local_url_set_here = not os.environ.get(ENV_BASE_URL)
            if _local_url_set_here:
                os.environ[ENV_BASE_URL] = _UNUSED_LOCAL_URL
        _local_url_blocks += 1
    try:
        yield
    finally:
        with _local_url_lock:
            _local_url_blocks -= 1
            if _local_url_blocks == 0 and _local_url_set_here:
                if os.environ.get(ENV_BASE_URL) == _UNUSED_LOCAL_URL:
                    del os.environ[ENV_BASE_URL]
                _local_url_set_here = False
