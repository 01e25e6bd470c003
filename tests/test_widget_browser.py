"""The widget form in a real browser: JupyterLab on 127.0.0.1, Debian's chromium driven by
Playwright (reference/notebook-testing.md). The kernel talks to the fake provider server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

import pl_magic
from tests.helpers import chat, model, publish

pytestmark = pytest.mark.e2e

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


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider) -> Iterator[str]:
    """JupyterLab with a notebook showing the form; yields the notebook's URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    state = tmp_path / "jupyter"
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    root = tmp_path / "nbroot"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell("import pl_magic\nform = pl_magic.form('greet')\nform")]
    nbformat.write(nb, root / "form.ipynb")
    port = _free_port()
    env = {
        **os.environ,
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
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "lab.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield f"{base}/lab/tree/form.ipynb?reset&token={TOKEN}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_form_streams_in_the_browser_and_shows_one_line_errors(lab, fake_provider):
    from playwright.sync_api import expect, sync_playwright

    publish("greet", chat(("user", "v1 hi {name}")), model())
    publish("greet", chat(("user", "v2 hello {name}")), model())
    pl_magic.set_label("greet", "prod", 2)
    publish("needs-topic", chat(("user", "tell me about {topic}")), model())
    fake_provider.stream_chunks = [f"word{i} " for i in range(40)]
    fake_provider.chunk_delay_s = 0.05  # a two-second stream, to watch it grow

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(lab)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible(
                timeout=60_000
            )
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            output = page.locator(".jp-OutputArea-output")
            selects = output.locator(".widget-dropdown select")
            expect(selects.first).to_be_visible(timeout=60_000)

            selects.nth(0).select_option("greet")
            selects.nth(1).select_option(label="prod → v2")
            output.locator(".widget-textarea textarea").first.fill("Ada")
            output.locator(".widget-button", has_text="Run").click()

            reply = output.locator(".pl-magic-run pre").first
            lengths = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                text = reply.inner_text() if reply.count() else ""
                lengths.append(len(text))
                if "word39" in text:
                    break
                time.sleep(0.05)
            growing = sorted(set(n for n in lengths if n))
            assert len(growing) >= 3, f"the reply did not grow while streaming: {growing}"
            footer = output.locator(".pl-magic-footer").first
            expect(footer).to_contain_text("greet v2 (prod)", timeout=30_000)
            expect(footer).to_contain_text("openai/gpt-4o-mini")
            page.screenshot(path=str(ARTIFACTS / "widget-streamed.png"), full_page=True)

            selects.nth(0).select_option("needs-topic")
            # wait for the form to rebuild its fields before clicking (the layout moves)
            expect(output.locator(".widget-textarea", has_text="topic")).to_be_visible()
            page.wait_for_timeout(300)
            output.locator(".widget-button", has_text="Run").click()
            error = output.locator(".pl-magic-error")
            expect(error).to_contain_text("topic", timeout=30_000)
            assert "\n" not in error.inner_text().strip()
            page.screenshot(path=str(ARTIFACTS / "widget-error.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "widget-failure.png"), full_page=True)
            (ARTIFACTS / "widget-failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
