"""run_many whose templates render for hours, interrupted by a real SIGINT (used by
test_templates_bounded.py).

    python -m tests.reliability.render_child

The environment names the home, the OpenAI key and base URL (never reached: no render
ends) and raises the template limits so that only the interrupt can stop a render. A
watcher thread sends SIGINT to this process once two worker threads are inside a render;
after run_many returns, the worker threads get 20 s to end. Prints one JSON line: whether
the signal came during rendering, the run statuses and the worker threads still alive.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pl_magic

SLOW = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}{{ n }}"


def _rendering(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside a template render (its stack runs compiled template code)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        name = frame.f_code.co_filename
        if name == "<template>" or name.endswith(os.path.join("pl_magic", "templates.py")):
            return True
        frame = frame.f_back
    return False


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pl_magic-run")]


def main() -> int:
    pl_magic.publish(
        {
            "prompt_name": "slow",
            "prompt_template": {
                "type": "chat",
                "messages": [
                    {"role": "user", "content": SLOW, "template_format": "jinja2"},
                ],
            },
            "metadata": {"model": {"provider": "openai", "name": "gpt-4o-mini"}},
        }
    )
    seen = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(_rendering(t) for t in _workers()) >= 2:
                seen.set()
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    df = pl_magic.run_many("slow", inputs=[{"n": i} for i in range(4)], concurrency=2)
    workers = _workers()
    for thread in workers:
        thread.join(timeout=20)
    report = {
        "interrupted_while_rendering": seen.is_set(),
        "statuses": df["status"].tolist(),
        "alive": [t.name for t in workers if t.is_alive()],
    }
    print(json.dumps(report), flush=True)
    sys.stderr.flush()
    os._exit(0)  # a worker still rendering must not keep the process alive


if __name__ == "__main__":
    sys.exit(main())
