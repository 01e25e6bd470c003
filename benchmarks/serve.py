"""The fake servers for the benchmarks, in a process of their own.

A real provider or PromptLayer does not share the client's interpreter: run in the
benchmark's own process, the fakes' uvicorn loops would compete with the code being timed
for the GIL (and on a 2-core machine for the CPU). :class:`benchmarks.harness.Servers`
starts this module as a subprocess and drives it over stdin/stdout, one JSON object a line:

* on start it prints ``{"provider": URL, "openai_base_url": URL, "promptlayer": URL}``;
* then it answers each command with ``{"ok": true, "value": ...}`` or ``{"ok": false,
  "error": ...}``. Commands: ``{"op": "set", "server": "provider"|"promptlayer", "knobs":
  {...}}`` (the fakes' knob attributes), ``{"op": "reset"}``, ``{"op": "add_prompt",
  "args": {...}}`` (:meth:`FakePromptLayerServer.add_prompt`), ``{"op": "count", "server":
  ..., "kind": ...}`` (requests received, of one kind or all), ``{"op": "last_body",
  "server": ..., "kind": ...}`` (the JSON body of the latest request of a kind).

Closing stdin stops both servers.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _answer(provider: Any, promptlayer: Any, cmd: dict[str, Any]) -> Any:
    op = cmd["op"]
    server = promptlayer if cmd.get("server") == "promptlayer" else provider
    if op == "set":
        for name, value in cmd["knobs"].items():
            if not hasattr(server, name):
                raise AttributeError(f"the fake has no knob {name!r}")
            setattr(server, name, set(value) if name == "api_keys" else value)
        return None
    if op == "reset":
        keys = promptlayer.api_keys
        provider.reset()
        promptlayer.reset()
        promptlayer.api_keys = keys
        return None
    if op == "add_prompt":
        return promptlayer.add_prompt(**cmd["args"])
    if op == "count":
        kind = cmd.get("kind")
        return len(server.requests_for(kind) if kind else server.requests)
    if op == "last_body":
        found = server.requests_for(cmd["kind"])
        return found[-1].body if found else None
    if op == "clear_log":
        with server._lock:
            server.requests.clear()
        return None
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    """Start both fakes, print their URLs, answer commands until stdin closes."""
    from tests.fakes.promptlayer_server import FakePromptLayerServer
    from tests.fakes.provider_server import FakeProviderServer

    with FakeProviderServer() as provider, FakePromptLayerServer() as promptlayer:
        urls = {
            "provider": provider.url,
            "openai_base_url": provider.openai_base_url,
            "promptlayer": promptlayer.url,
        }
        print(json.dumps(urls), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                out = {"ok": True, "value": _answer(provider, promptlayer, json.loads(line))}
            except Exception as exc:  # report, keep serving
                out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
