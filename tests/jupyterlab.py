"""JupyterLab on 127.0.0.1 for the real-browser tests (Debian's chromium, Playwright), see
reference/notebook-testing.md. Shared by tests/test_widget_browser.py,
tests/reliability/test_escaping_browser.py and docs/screenshots.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TOKEN = "e2e-token"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def skip_without_browser() -> None:
    """Skip the test when chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


@contextmanager
def serve(state: Path, root: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """JupyterLab serving ``root`` with its state under ``state``; yields its base URL.

    The kernels inherit this process's environment plus ``env``. The server's log is
    ``state/lab.log``; the news toast is turned off (notebook-testing P3), and so is the
    notebook's windowing: every cell is attached and rendered, also out of view (otherwise
    an output below the fold is never painted, and what it would load or run never shows).
    """
    settings = state / "settings" / "@jupyterlab"
    for plugin, values in (
        ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False}),
        ("notebook-extension/tracker", {"windowingMode": "none"}),
    ):
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = _free_port()
    full_env = {
        **os.environ,
        **(env or {}),
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = state / "lab.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(log_path.read_text()[-2000:]) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def notebook_url(base: str, name: str) -> str:
    """The URL that opens notebook ``name`` with a fresh layout (``?reset``)."""
    return f"{base}/lab/tree/{name}?reset&token={TOKEN}"


@contextmanager
def lab(tmp_path: Path, cells: list[str], name: str = "form.ipynb") -> Iterator[str]:
    """JupyterLab serving a notebook of ``cells`` (not yet run); yields the notebook's URL.

    The kernel inherits this process's environment (PL_MAGIC_HOME, provider keys and base
    URLs pointing at the fake servers). The server's log is ``tmp_path/jupyter/lab.log``.
    """
    skip_without_browser()
    root = tmp_path / "nbroot"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, root / name)
    with serve(tmp_path / "jupyter", root) as base:
        yield notebook_url(base, name)


def run_all_cells(page) -> None:  # type: ignore[no-untyped-def]
    """Open the notebook in ``page`` (already at its URL), wait for the kernel, run all."""
    from playwright.sync_api import expect

    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


@contextmanager
def notebook_page(url: str, failure: str | None = None, height: int = 1000) -> Iterator[Any]:
    """A headless chromium page on the notebook at ``url``, its cells run; closed after.

    ``failure``: on an exception inside the block, the page is saved first as
    ``test-artifacts/<failure>.png`` and ``.html`` (what the browser showed when it failed).
    """
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        try:
            page.goto(url)
            run_all_cells(page)
            yield page
        except BaseException:
            if failure is not None:
                page.screenshot(path=str(ARTIFACTS / f"{failure}.png"), full_page=True)
                (ARTIFACTS / f"{failure}.html").write_text(page.content())
            raise
        finally:
            browser.close()
