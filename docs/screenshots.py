"""Takes the README's screenshots: the streaming cell and the form, in JupyterLab.

    .venv/bin/python docs/screenshots.py

Needs the test tools (jupyterlab, playwright: ``pip install -e '.[dev,local]'``) and Debian's
chromium at /usr/bin/chromium (never ``playwright install``). Serves copies of
notebooks/quickstart.ipynb and notebooks/widget.ipynb from a temporary JupyterLab on
127.0.0.1, runs them on the real local model from a fresh temporary ``PL_MAGIC_HOME`` (no key,
no network; the model is started first, so no start notice shows), and writes
docs/streaming-cell.png and docs/form.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
TOKEN = "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_lab(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    root = tmp / "nbroot"
    root.mkdir()
    for name in ("quickstart", "widget"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root)
    port = free_port()
    env = {
        **os.environ,
        "PL_MAGIC_HOME": str(tmp / "pl_magic_home"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
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
    log = open(tmp / "lab.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            return proc, base
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((tmp / "lab.log").read_text()[-2000:]) from None
            time.sleep(0.2)


def run_all(page: Any, base: str, name: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/lab/tree/{name}.ipynb?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    from pl_magic import local_model

    tmp = Path(tempfile.mkdtemp(prefix="pl_magic_shots_"))
    local_model.start(tmp / "pl_magic_home")  # already running: no start notice in the shots
    proc, base = start_lab(tmp)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            # the streaming cell: a %%plrun with its reply and footer
            run_all(page, base, "quickstart")
            cell = page.locator(".jp-CodeCell", has_text="%%plrun capital-city@prod")
            expect(cell.locator(".pl-magic-footer")).to_contain_text("ttft", timeout=120_000)
            cell.scroll_into_view_if_needed()
            cell.screenshot(path=str(DOCS / "streaming-cell.png"))
            # the form, after the notebook's form.run()
            run_all(page, base, "widget")
            form = page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-vbox"))
            first = form.first
            expect(first.locator(".pl-magic-footer")).to_contain_text("ttft", timeout=120_000)
            expect(first.locator(".pl-magic-runs")).to_be_visible(timeout=30_000)
            first.scroll_into_view_if_needed()
            first.screenshot(path=str(DOCS / "form.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)
        local_model.stop(tmp / "pl_magic_home")
    for name in ("streaming-cell.png", "form.png"):
        print(f"wrote docs/{name} ({(DOCS / name).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
