"""Media inputs in a real browser: the form's upload field, and the thumbnail beside the reply
in the form and in a %%plrun cell (JupyterLab on 127.0.0.1, Debian's chromium, Playwright;
the kernel talks to the fake provider server)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest

from tests import conftest
from tests.helpers import model, publish
from tests.jupyterlab import ARTIFACTS, notebook_page
from tests.jupyterlab import lab as jupyterlab
from tests.test_media import LOOK, png

pytestmark = pytest.mark.e2e

#: A file name a person could give an upload, and that must stay text.
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "cell.png"
    path.write_bytes(png(24, 16, seed=31))
    return path


@pytest.fixture
def lab(tmp_path, pl_home, openai_env, fake_provider, image_path) -> Iterator[str]:
    """A notebook with the form on ``look`` and a %%plrun cell with an image path."""
    conftest.audit_dir(tmp_path)
    cells = [
        "import pl_magic\n%load_ext pl_magic\nform = pl_magic.form('look')\nform",
        f"%%plrun look --no-stream\nphoto: {image_path}\n",
    ]
    with jupyterlab(tmp_path, cells) as url:
        yield url


def test_upload_field_and_thumbnails_render_escaped(lab, fake_provider, image_path):
    from playwright.sync_api import expect

    publish("look", LOOK, model())
    fake_provider.reply_text = "<b>not bold</b> a red square"
    uploaded = png(32, 32, seed=32)

    with notebook_page(lab, failure="media-failure", height=1400) as page:
        output = page.locator(".jp-OutputArea-output")
        # the %%plrun cell: the thumbnail of the path's image above the escaped reply
        cell_run = output.locator(".pl-magic-run", has=page.locator(".pl-magic-thumb")).first
        expect(cell_run).to_be_visible(timeout=60_000)
        thumb = cell_run.locator(".pl-magic-thumb img")
        assert thumb.get_attribute("src").startswith("data:image/png;base64,")
        expect(cell_run.locator("figcaption")).to_have_text("photo")
        expect(cell_run.locator("pre")).to_contain_text("<b>not bold</b>")  # text, not markup
        assert cell_run.locator("pre b").count() == 0

        # the form: an upload field for the media variable, then Run
        upload = output.locator(".widget-upload").first
        expect(upload).to_be_visible(timeout=60_000)
        expect(upload).to_contain_text("photo")
        with page.expect_file_chooser() as chooser:  # the widget's own file dialog
            upload.click()
        chooser.value.set_files(
            files=[{"name": HOSTILE_NAME, "mimeType": "image/png", "buffer": uploaded}]
        )
        expect(upload).to_contain_text("(1)")  # the widget counts the file
        output.locator(".widget-button", has_text="Run").click()

        footer = output.locator(".widget-html .pl-magic-footer").first
        expect(footer).to_contain_text("look v1", timeout=30_000)
        form_thumb = output.locator(".widget-html .pl-magic-thumb img").first
        expect(form_thumb).to_be_visible()
        assert form_thumb.get_attribute("src").startswith("data:image/png;base64,")
        title = form_thumb.get_attribute("title")
        assert title.startswith("photo: " + HOSTILE_NAME)  # the name is an attribute's text
        assert page.locator("img[src='x']").count() == 0  # never an element
        assert output.locator(".widget-html pre b").count() == 0
        page.screenshot(path=str(ARTIFACTS / "media-thumbnails.png"), full_page=True)

    sent = [r.media[0].sha256 for r in fake_provider.requests if r.media]
    assert sent == [
        hashlib.sha256(image_path.read_bytes()).hexdigest(),
        hashlib.sha256(uploaded).hexdigest(),
    ]
    body = fake_provider.requests[-1].body
    url = body["messages"][-1]["content"][-1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(uploaded).decode()
