"""Takes the README's screenshots: the streaming cell, a comparison and the form, in JupyterLab.

    .venv/bin/python docs/screenshots.py

Needs the test tools (jupyterlab, playwright: ``pip install -e '.[dev,local]'``) and Debian's
chromium at /usr/bin/chromium (never ``playwright install``). Serves copies of
notebooks/quickstart.ipynb, notebooks/compare.ipynb and notebooks/widget.ipynb from a temporary
JupyterLab on 127.0.0.1, runs them on the real local model from a fresh temporary
``PL_MAGIC_HOME`` (no key, no network; the model is started first, so no start notice shows),
and writes docs/streaming-cell.png, docs/comparison.png and docs/form.png.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))  # run as a script: the shared JupyterLab launcher is in tests/

from tests.jupyterlab import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    notebook_url,
    run_all_cells,
    serve,
)


def run_all(page: Any, base: str, name: str) -> None:
    page.goto(notebook_url(base, f"{name}.ipynb"))
    run_all_cells(page)


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    from pl_magic.providers import local as local_model

    tmp = Path(tempfile.mkdtemp(prefix="pl_magic_shots_"))
    home = tmp / "pl_magic_home"
    root = tmp / "nbroot"
    root.mkdir()
    for name in ("quickstart", "compare", "widget"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", root)
    local_model.start(home)  # already running: no start notice in the shots
    try:
        with (
            serve(tmp / "jupyter", root, {"PL_MAGIC_HOME": str(home)}) as base,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            # the streaming cell: a %%plrun with its reply and footer
            run_all(page, base, "quickstart")
            cell = page.locator(".jp-CodeCell", has_text="%%plrun capital-city@prod")
            expect(cell.locator(".pl-magic-footer")).to_contain_text("ttft", timeout=120_000)
            cell.scroll_into_view_if_needed()
            cell.screenshot(path=str(DOCS / "streaming-cell.png"))
            # a comparison: the grid, named as compare() names its columns, and its summary
            run_all(page, base, "compare")
            cell = page.locator(".jp-CodeCell", has_text="%plrun capital-city --versions")
            summary = cell.locator(".pl-magic-summary")
            expect(summary).to_contain_text("→ df", timeout=300_000)
            cell.scroll_into_view_if_needed()
            cell.screenshot(path=str(DOCS / "comparison.png"))
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
        local_model.stop(home)
    for name in ("streaming-cell.png", "comparison.png", "form.png"):
        print(f"wrote docs/{name} ({(DOCS / name).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
