"""A real Jupyter kernel driven over jupyter_client, as tests/test_notebook_kernel.py does."""

from __future__ import annotations

import os
import queue
import time
from typing import Any

from .harness import ROOT


class Kernel:
    """A fresh ``python3`` kernel (this interpreter) and a blocking client."""

    def __init__(self, cwd: str | None = None, env: dict[str, str] | None = None) -> None:
        from jupyter_client.manager import KernelManager

        # IPC: no TCP ports, and no warning about unencrypted TCP
        self.km = KernelManager(kernel_name="python3", transport="ipc")
        kernel_env = {**os.environ, **(env or {})}
        kernel_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), kernel_env.get("PYTHONPATH", "")) if p
        )
        self.km.start_kernel(cwd=cwd or str(ROOT), env=kernel_env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str, timeout: float = 300) -> tuple[dict[str, Any], list[tuple]]:
        """Run ``code``; the execute_reply content and ``(monotonic time, iopub msg)`` pairs.

        The list starts with ``(send time, None)``: when the request went out.
        """
        sent = time.monotonic()
        msg_id = self.kc.execute(code)
        messages: list[tuple[float, Any]] = [(sent, None)]
        deadline = sent + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append((time.monotonic(), msg))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        else:
            raise TimeoutError(f"the kernel did not finish {code[:40]!r} in {timeout} s")
        reply = self.kc.get_shell_msg(timeout=60)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(
                f"the kernel failed running {code[:60]!r}: "
                f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
            )
        return reply["content"], messages

    def stdout(self, code: str) -> str:
        """Run ``code``; what it printed."""
        _, messages = self.execute(code)
        return "".join(
            m["content"]["text"]
            for _, m in messages
            if m is not None and m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    def stop(self) -> None:
        """Shut the kernel down."""
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
