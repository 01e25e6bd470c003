"""Images and PDFs as input variables, over HTTP against the fake provider server.

The real SDKs send each request to the fake, which reads every image and document block in
its provider's dialect (and answers a malformed one with a native 400): the tests assert the
exact native block the fake received, per provider and per kind of input, and that the log
(runs table, PromptLayer's payload) keeps a marker (type, size, SHA-256) instead of the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import sqlite3
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pl_magic
from pl_magic.core import config, local_target, media
from pl_magic.core.blueprint import input_variables, media_slots, reply_text
from pl_magic.core.errors import InvalidInputError
from tests.helpers import ROUTES as ALL_ROUTES
from tests.helpers import Route, model, publish, runs

# -- media -------------------------------------------------------------------------------------


def png(width: int = 2, height: int = 2, seed: int | None = None) -> bytes:
    """A valid PNG; with ``seed``, of random pixels (bytes no other test image has)."""
    rng = random.Random(seed)
    rows = b"".join(
        b"\x00"
        + (bytes(rng.randrange(256) for _ in range(3 * width)) if seed else b"\xff\0\0" * width)
        for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
IMAGE = png()
B64 = base64.b64encode(IMAGE).decode()
DATA_URL = f"data:image/png;base64,{B64}"
PDF_B64 = base64.b64encode(PDF).decode()
URL = "https://images.example.test/cat.png"


def _user(*blocks: dict[str, Any], fmt: str = "f-string") -> dict[str, Any]:
    return {
        "type": "chat",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is this?"}, *blocks],
                "template_format": fmt,
            },
        ],
    }


LOOK = _user({"type": "image_url", "image_url": {"url": "{photo}"}})
#: PromptLayer's own spelling: the block names its variable.
LOOK_PL = _user(
    {"type": "image_url", "image_variable": "photo", "image_url": {"url": "", "detail": "low"}}
)
LOOK_JINJA = _user({"type": "image_url", "image_url": {"url": "{{ photo }}"}}, fmt="jinja2")
READ = _user({"type": "media_variable", "name": "doc"})


#: The provider routes (the local model takes no images).
ROUTES = [r for r in ALL_ROUTES if r.env]
IDS = [r.id for r in ROUTES]
BY_ID = {r.id: r for r in ROUTES}


def _publish(request: pytest.FixtureRequest, route: Route, template: dict[str, Any]) -> None:
    request.getfixturevalue(route.env)
    publish("look", template, model(route.model, route.provider, route.api_type))


def _user_blocks(route: Route, body: dict[str, Any]) -> list[Any]:
    """The blocks of the request's (last) user turn, in the route's dialect."""
    if route.kind == "openai.chat":
        return body["messages"][-1]["content"]
    if route.kind == "openai.responses":
        return body["input"][-1]["content"]
    if route.kind.startswith("anthropic"):
        return body["messages"][-1]["content"]
    return body["contents"][-1]["parts"]


def _image_block(route: Route, data: bytes, mime: str = "image/png") -> dict[str, Any]:
    """The native block each dialect must carry for image bytes."""
    encoded = base64.b64encode(data).decode()
    if route.kind == "openai.chat":
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{encoded}"}}
    if route.kind == "openai.responses":
        return {"type": "input_image", "image_url": f"data:{mime};base64,{encoded}"}
    if route.kind.startswith("anthropic"):
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": encoded}}
    # genai sends bytes in protobuf JSON's URL-safe base64
    return {"inlineData": {"data": base64.urlsafe_b64encode(data).decode(), "mime_type": mime}}


def _pdf_block(route: Route, name: str) -> dict[str, Any]:
    if route.kind == "openai.chat":
        url = f"data:application/pdf;base64,{PDF_B64}"
        return {"type": "file", "file": {"filename": name, "file_data": url}}
    if route.kind == "openai.responses":
        url = f"data:application/pdf;base64,{PDF_B64}"
        return {"type": "input_file", "filename": name, "file_data": url}
    if route.kind.startswith("anthropic"):
        source = {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}
        return {"type": "document", "source": source}
    encoded = base64.urlsafe_b64encode(PDF).decode()
    return {"inlineData": {"data": encoded, "mime_type": "application/pdf"}}


def _url_block(route: Route, url: str) -> dict[str, Any]:
    if route.kind == "openai.chat":
        return {"type": "image_url", "image_url": {"url": url}}
    if route.kind == "openai.responses":
        return {"type": "input_image", "image_url": url}
    if route.kind.startswith("anthropic"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    return {"fileData": {"file_uri": url, "mime_type": "image/png"}}  # (genai's spelling)


def _text(result: dict[str, Any]) -> str:
    return reply_text(result["prompt_blueprint"])


def _run(name: str = "look", stream: bool = False, **variables: Any) -> dict[str, Any]:
    if stream:
        return list(pl_magic.run(name, input_variables=variables, stream=True))[-1]
    return pl_magic.run(name, input_variables=variables)


# -- every provider ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_an_image_reaches_each_provider_as_its_native_block(
    request, fake_provider, route, stream, tmp_path
):
    _publish(request, route, LOOK)
    photo = tmp_path / "cat.png"
    photo.write_bytes(IMAGE)

    result = _run(stream=stream, photo=photo)

    (sent,) = fake_provider.requests_for(route.kind)
    blocks = _user_blocks(route, sent.body)
    assert blocks[-1] == _image_block(route, IMAGE)
    assert len(blocks) == 2  # the text, then the image
    assert [(p.kind, p.mime_type, p.size) for p in sent.media] == [
        ("image", "image/png", len(IMAGE))
    ]
    assert sent.media[0].sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert fake_provider.media_counts == {"image/base64": 1}
    assert "echo: What is this?" in json.dumps(result["prompt_blueprint"])


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_pdf_reaches_each_provider_as_a_document(request, fake_provider, route, tmp_path):
    _publish(request, route, READ)
    report = tmp_path / "report.pdf"
    report.write_bytes(PDF)

    _run(doc=str(report))

    (sent,) = fake_provider.requests_for(route.kind)
    assert _user_blocks(route, sent.body)[-1] == _pdf_block(route, "report.pdf")
    assert [(p.kind, p.mime_type, p.size) for p in sent.media] == [
        ("document", "application/pdf", len(PDF))
    ]
    assert fake_provider.media_counts == {"document/base64": 1}


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_an_http_url_is_passed_on_never_fetched(request, fake_provider, route):
    _publish(request, route, LOOK)

    _run(photo=URL)

    (sent,) = fake_provider.requests_for(route.kind)
    assert _user_blocks(route, sent.body)[-1] == _url_block(route, URL)
    assert [p.source for p in sent.media] == ["url"]
    assert len(fake_provider.requests) == 1  # nothing fetched the URL through the fake


# -- each kind of input ------------------------------------------------------------------------


def _pil_image() -> Any:
    pil = pytest.importorskip("PIL.Image")
    image = pil.new("RGB", (3, 2), (10, 200, 30))
    return image


@pytest.mark.parametrize(
    "kind",
    ["path", "path-string", "bytes", "bytearray", "memoryview", "data-url", "pil", "pil-jpeg"],
)
def test_each_kind_of_input_becomes_the_same_image(
    openai_env, fake_provider, tmp_path, monkeypatch, kind
):
    publish("look", LOOK, model())
    photo = tmp_path / "cat.png"
    photo.write_bytes(IMAGE)
    expected, mime = IMAGE, "image/png"
    if kind == "path":
        value: Any = photo
    elif kind == "path-string":
        monkeypatch.chdir(tmp_path)
        value = "cat.png"  # relative to the working directory
    elif kind == "bytes":
        value = IMAGE
    elif kind == "bytearray":
        value = bytearray(IMAGE)
    elif kind == "memoryview":
        value = memoryview(IMAGE)
    elif kind == "data-url":
        value = DATA_URL
    else:
        value = _pil_image()
        buffer = io.BytesIO()
        if kind == "pil-jpeg":  # an image opened from a JPEG file stays a JPEG
            value.save(buffer, "JPEG")
            value = __import__("PIL.Image").Image.open(io.BytesIO(buffer.getvalue()))
            buffer = io.BytesIO()
            value.save(buffer, "JPEG")
            mime = "image/jpeg"
        else:
            value.save(buffer, "PNG")
        expected = buffer.getvalue()

    _run(photo=value)

    (sent,) = fake_provider.requests
    url = sent.body["messages"][-1]["content"][-1]["image_url"]["url"]
    assert url == f"data:{mime};base64,{base64.b64encode(expected).decode()}"
    assert sent.media[0].mime_type == mime


@pytest.mark.parametrize("template", [LOOK_PL, LOOK_JINJA], ids=["image_variable", "jinja2"])
def test_promptlayers_image_variable_and_a_jinja_url_are_media_slots(
    openai_env, fake_provider, template
):
    publish("look", template, model())

    _run(photo=IMAGE)

    part = fake_provider.requests[0].body["messages"][-1]["content"][-1]
    expected = {"url": DATA_URL, "detail": "low"} if template is LOOK_PL else {"url": DATA_URL}
    assert part == {"type": "image_url", "image_url": expected}  # the slot's detail is kept


def test_a_media_slot_is_an_input_variable_of_the_template():
    assert input_variables(LOOK_PL) == ["photo"] == media_slots(LOOK_PL)
    assert input_variables(LOOK_JINJA) == ["photo"] == media_slots(LOOK_JINJA)
    assert media_slots(READ) == ["doc"]
    # a URL that merely contains a variable is a URL, as before
    fixed = _user({"type": "image_url", "image_url": {"url": "https://x.test/{name}.png"}})
    assert media_slots(fixed) == [] and input_variables(fixed) == []


def test_pdf_url_goes_to_anthropic_as_a_url_document_and_openai_chat_refuses_it(
    anthropic_env, openai_env, fake_provider
):
    publish("read", READ, model("claude-sonnet-4-5", "anthropic"))
    pl_magic.run("read", input_variables={"doc": "https://docs.example.test/a.pdf"})
    last = fake_provider.requests[0].body["messages"][-1]["content"][-1]
    assert last == {
        "type": "document",
        "source": {"type": "url", "url": "https://docs.example.test/a.pdf"},
    }

    with pytest.raises(InvalidInputError, match="takes PDFs only as bytes") as info:
        pl_magic.run(
            "read",
            input_variables={"doc": "https://docs.example.test/a.pdf"},
            provider="openai",
            model="gpt-4o-mini",
        )
    assert "\n" not in str(info.value)
    assert len(fake_provider.requests) == 1  # refused before any call


def test_comparison_inputs_and_plrun_vars_take_media(ip, fake_provider, tmp_path, capsys):
    publish("look", LOOK, model())
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    one.write_bytes(png(seed=1))
    two.write_bytes(png(seed=2))

    df = pl_magic.run_many("look", inputs=[{"photo": one}, {"photo": str(two)}])
    assert list(df["status"]) == ["ok", "ok"], list(df["error"])
    assert sorted(r.media[0].sha256 for r in fake_provider.requests) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (one, two)
    )

    fake_provider.reset()
    ip.user_ns["inputs"] = {"photo": one.read_bytes()}
    ip.run_line_magic("plrun", "look --vars inputs --no-stream")
    ip.run_cell_magic("plrun", "look --no-stream", f"photo: {two}\n")  # a path in the body
    assert [r.media[0].sha256 for r in fake_provider.requests] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (one, two)
    ]
    assert "echo: What is this?" in capsys.readouterr().out


# -- refusals, before any call ---------------------------------------------------------------


def _refused(fake_provider: Any, match: str, **variables: Any) -> str:
    with pytest.raises(InvalidInputError, match=match) as info:
        pl_magic.run("look", input_variables=variables)
    message = str(info.value)
    assert "\n" not in message
    assert fake_provider.requests == []  # nothing was sent
    return message


@pytest.mark.parametrize(
    ("route_id", "limit"),
    [
        ("anthropic", "3.75 MB limit per image"),
        ("claude-vertex", "3.75 MB limit per image"),
        ("gemini-vertex", "7 MB limit per image"),
        ("openai-chat", "20 MB limit per image"),
    ],
)
def test_an_image_over_the_providers_limit_is_refused_in_one_line(
    request, fake_provider, tmp_path, route_id, limit
):
    route = BY_ID[route_id]
    _publish(request, route, LOOK)
    size = {"anthropic": 4, "claude-vertex": 4, "gemini-vertex": 8, "openai-chat": 21}[route_id]
    big = IMAGE + b"\0" * (size * 1024 * 1024)

    message = _refused(fake_provider, limit, photo=big)
    assert "smaller image" in message and media.ENV_MAX_MB in message

    # a file that big is refused from its size, before it is read
    path = tmp_path / "big.png"
    path.write_bytes(big)
    _refused(fake_provider, "limit per image", photo=path)


def test_the_limit_can_be_moved_and_counts_all_the_media_of_a_request(
    gemini_env, fake_provider, monkeypatch
):
    two = _user(
        {"type": "image_url", "image_url": {"url": "{a}"}},
        {"type": "image_url", "image_url": {"url": "{b}"}},
    )
    publish("look", two, model("gemini-2.5-flash", "google"))
    monkeypatch.setenv(media.ENV_MAX_MB, "0.001")  # 1 KB
    with pytest.raises(InvalidInputError, match="set by PL_MAGIC_MEDIA_MAX_MB"):
        pl_magic.run("look", input_variables={"a": png(30, 30, seed=3), "b": IMAGE})
    monkeypatch.setenv(media.ENV_MAX_MB, "0.0001")  # 104 bytes: each fits, not both
    with pytest.raises(InvalidInputError, match="for all the media of one request"):
        pl_magic.run("look", input_variables={"a": IMAGE, "b": IMAGE})
    monkeypatch.delenv(media.ENV_MAX_MB)
    pl_magic.run("look", input_variables={"a": IMAGE, "b": IMAGE})
    assert fake_provider.media_counts == {"image/base64": 2}


def test_gemini_refuses_a_gif_and_the_completions_api_any_image(
    gemini_env, openai_env, fake_provider
):
    publish("look", LOOK, model("gemini-2.5-flash", "google"))
    _refused(fake_provider, "takes PNG, JPEG, WebP images", photo=GIF)
    pl_magic.run("look", input_variables={"photo": GIF}, provider="openai", model="gpt-4o-mini")
    assert fake_provider.requests[0].media[0].mime_type == "image/gif"  # OpenAI takes GIFs

    fake_provider.reset()
    publish("look", LOOK, model("gpt-3.5-turbo-instruct", "openai", "completions"))
    _refused(fake_provider, "completions API takes no images or files", photo=IMAGE)


def test_the_embedded_local_model_refuses_images_a_server_of_your_own_takes_them(
    fake_provider, monkeypatch
):
    publish(
        "look",
        LOOK,
        local_target.model_metadata(),
        provider_base_url=local_target.base_url_spec(),
    )
    monkeypatch.delenv(local_target.ENV_BASE_URL, raising=False)
    message = _refused(fake_provider, "embedded local model", photo=IMAGE)
    assert "reads text only" in message and local_target.ENV_BASE_URL in message

    monkeypatch.setenv(local_target.ENV_BASE_URL, fake_provider.openai_base_url)
    pl_magic.run("look", input_variables={"photo": IMAGE})
    assert fake_provider.requests[0].media[0].mime_type == "image/png"
    fake_provider.reset()
    publish(
        "read", READ, local_target.model_metadata(), provider_base_url=local_target.base_url_spec()
    )
    with pytest.raises(InvalidInputError, match="takes no PDFs"):
        pl_magic.run("read", input_variables={"doc": PDF})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("notes.txt", "not an image or a PDF"),
        ("/etc/passwd", "not an image or a PDF"),
        ("missing.png", "neither an http.s. URL nor the path of a file"),
        (".", "not a regular file"),
        (b"plain text, not an image", "not an image or a PDF"),
        ("data:image/png;base64,@@@", "base64 is invalid"),
        ("data:image/png,raw", "not base64"),
        (42, "holds a int"),
        ("", "is empty"),
    ],
)
def test_what_is_not_media_is_refused_in_one_line(
    openai_env, fake_provider, tmp_path, monkeypatch, value, problem
):
    publish("look", LOOK, model())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    message = _refused(fake_provider, problem, photo=value)
    assert "fills a media slot" in message


def test_a_fifo_is_refused_without_blocking(openai_env, fake_provider, tmp_path):
    publish("look", LOOK, model())
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    _refused(fake_provider, "not a regular file", photo=fifo)


def test_a_path_is_read_only_in_a_media_slot_and_media_is_never_text(
    openai_env, fake_provider, tmp_path
):
    note = {
        "type": "chat",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Note: {note}"}]}],
    }
    publish("note", note, model())
    pl_magic.run("note", input_variables={"note": "/etc/passwd"})
    (sent,) = fake_provider.requests
    content = sent.body["messages"][0]["content"]
    assert content == [{"type": "text", "text": "Note: /etc/passwd"}]  # text, never the file

    with pytest.raises(InvalidInputError, match="only fills a media slot") as info:
        pl_magic.run("note", input_variables={"note": IMAGE})
    assert B64[:20] not in str(info.value)
    assert len(fake_provider.requests) == 1


def test_a_run_promptlayer_renders_refuses_bytes_before_sending_them(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider, monkeypatch
):
    fake_promptlayer.add_prompt("look", LOOK, model())
    monkeypatch.setenv("PL_MAGIC_PROMPTLAYER_RENDERING", "server")
    with pytest.raises(InvalidInputError, match="takes media only as URLs"):
        pl_magic.run("look", input_variables={"photo": IMAGE})
    assert fake_promptlayer.requests_for("template.get") == []
    assert fake_provider.requests == []


# -- the log -----------------------------------------------------------------------------------


def _marker(data: bytes, mime: str = "image/png") -> str:
    return f"pl_magic-media:{mime};bytes={len(data)};sha256={hashlib.sha256(data).hexdigest()}"


def _db_text() -> str:
    path = config.db_path()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM runs").fetchall()
    finally:
        conn.close()
    return json.dumps([[str(v) for v in row] for row in rows])


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_the_log_keeps_a_marker_never_the_bytes(request, fake_provider, route, tmp_path):
    two = _user(
        {"type": "image_url", "image_url": {"url": "{photo}"}},
        {"type": "media_variable", "name": "doc"},
    )
    _publish(request, route, two)
    photo = png(40, 40, seed=7)  # bytes no other run has
    (tmp_path / "r.pdf").write_bytes(PDF)

    result = _run(photo=photo, doc=tmp_path / "r.pdf")

    (row,) = runs()
    assert json.loads(row["input_variables"]) == {
        "photo": _marker(photo),
        "doc": _marker(PDF, "application/pdf"),
    }
    rendered = json.loads(row["rendered_input"])
    blocks = rendered["messages"][-1]["content"]
    assert blocks[1] == {"type": "image_url", "image_url": {"url": _marker(photo)}}
    assert blocks[2]["media"]["url"] == _marker(PDF, "application/pdf")
    stored = _db_text()
    for secret in (base64.b64encode(photo).decode()[:40], PDF_B64[:40], "\\x89PNG"):
        assert secret not in stored
    raw_db = Path(config.db_path()).read_bytes()
    assert base64.b64encode(photo)[:40] not in raw_db and photo[16:60] not in raw_db
    # the caller's own result still holds the image it sent
    assert base64.b64encode(photo).decode() in json.dumps(result["prompt_blueprint"])


def test_promptlayer_gets_the_markers_not_the_bytes(
    promptlayer_env, openai_env, fake_promptlayer, fake_provider
):
    fake_promptlayer.add_prompt("look", LOOK, model())
    photo = png(20, 20, seed=11)

    result = pl_magic.run("look", input_variables={"photo": photo})

    assert isinstance(result["request_id"], int)  # sent, PromptLayer's id
    (tracked,) = fake_promptlayer.requests_for("track.request")
    sent = json.dumps(tracked.body)
    assert base64.b64encode(photo).decode()[:40] not in sent
    assert tracked.body["prompt_input_variables"] == {"photo": _marker(photo)}
    image = tracked.body["kwargs"]["messages"][-1]["content"][-1]
    assert image == {"type": "image_url", "image_url": {"url": _marker(photo)}}
    # the provider itself got the bytes
    assert fake_provider.requests[0].media[0].size == len(photo)

    # a run PromptLayer cannot take now keeps its payload on its log row, markers only
    fake_promptlayer.fail_next("track.request", 503, times=1000)
    other = png(20, 20, seed=12)
    pl_magic.run("look", input_variables={"photo": other})
    (unsent,) = [row for row in runs() if row["sync_state"] == "unsent"]
    assert _marker(other) in unsent["sync_payload"]
    assert base64.b64encode(other).decode()[:40] not in unsent["sync_payload"]
    fake_promptlayer.clear_faults()


def test_replay_hits_the_same_image_and_misses_another(openai_env, fake_provider, tmp_path):
    publish("look", LOOK, model())
    one, two = png(seed=21), png(seed=22)
    path = tmp_path / "one.png"
    path.write_bytes(one)

    first = pl_magic.run("look", input_variables={"photo": one})
    config.set_cache_mode("replay")
    try:
        again = pl_magic.run("look", input_variables={"photo": path})  # the same bytes
        other = pl_magic.run("look", input_variables={"photo": two})
    finally:
        config.set_cache_mode(None)

    assert len(fake_provider.requests) == 2  # the second run was served from the log
    assert _text(again) == _text(first)
    assert [r.media[0].sha256 for r in fake_provider.requests] == [
        hashlib.sha256(one).hexdigest(),
        hashlib.sha256(two).hexdigest(),
    ]
    served = [row for row in runs() if row["cached_from"]]
    assert len(served) == 1 and json.loads(served[0]["input_variables"]) == {"photo": _marker(one)}
    assert other["request_id"] != first["request_id"]


# -- what the cell shows -----------------------------------------------------------------------


def test_thumbnails_are_built_from_the_checked_bytes_and_escaped():
    from pl_magic.ui.display import GridCell, GridView, run_bundle
    from pl_magic.ui.media_view import thumbnails_html

    image = media.resolve(png(300, 200, seed=5), 'x"><script>alert(1)</script>')
    url = media.resolve('https://x.test/a.png?"><img/src=x/onerror=alert(1)>', "u")
    pdf = media.resolve(PDF, "doc")

    html_text = thumbnails_html([image, url, pdf])

    assert "<script>" not in html_text and "<img/" not in html_text
    assert "&lt;script&gt;" in html_text and "&lt;img/src=x/onerror" in html_text
    assert html_text.count("<img") == 1  # the URL is text, never loaded; the PDF a label
    src = html_text.split('src="', 1)[1].split('"', 1)[0]
    assert src.startswith("data:image/png;base64,")
    thumb = base64.b64decode(src.removeprefix("data:image/png;base64,"))
    assert media.sniff(thumb) == "image/png" and len(thumb) < len(image.data)  # shrunk
    assert "doc: PDF" in html_text

    bundle = run_bundle("<b>reply</b>", "footer", inputs_html=html_text)
    assert bundle["text/html"].index("pl-magic-inputs") < bundle["text/html"].index("&lt;b&gt;")
    grid = GridView([GridCell("row 0", "#1", inputs_html=html_text)], live=False)
    assert "pl-magic-thumb" in grid._html()


def test_the_form_has_an_upload_field_per_media_variable(openai_env, fake_provider, tmp_path):
    from pl_magic.surfaces.widget import PromptForm

    two = {
        **LOOK,
        "messages": [
            *LOOK["messages"],
            {"role": "user", "content": [{"type": "text", "text": "And {note}"}]},
        ],
    }
    publish("look", two, model())
    form = PromptForm("look")
    assert list(form.media_inputs) == ["photo"]
    upload, link = form.media_inputs["photo"]
    assert "image/png" in upload.accept and "application/pdf" in upload.accept
    notes = [b for b in form.variables.children if getattr(b, "description", None) == "note"]
    notes[0].value = "a note"

    uploaded = png(seed=41)
    upload.value = (
        {
            "name": "up.png",
            "type": "image/png",
            "size": len(uploaded),
            "content": memoryview(uploaded),
            "last_modified": datetime.now(UTC),
        },
    )
    form.stream.value = False
    form.run()
    assert form.last_error is None
    assert fake_provider.requests[-1].media[0].sha256 == hashlib.sha256(uploaded).hexdigest()
    assert 'class="pl-magic-thumb"' in form.reply.value
    assert "photo: up.png, PNG" in form.reply.value

    upload.value = ()
    path = tmp_path / "typed.png"
    path.write_bytes(png(seed=42))
    link.value = str(path)  # a path typed instead
    form.run()
    assert (
        fake_provider.requests[-1].media[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    )


@pytest.mark.parametrize("route_id", ["anthropic", "gemini"])
def test_the_async_api_sends_and_logs_media_the_same_way(request, fake_provider, route_id):
    import asyncio

    route = BY_ID[route_id]
    _publish(request, route, LOOK)
    photo = png(seed=51)

    async def go() -> Any:
        return await pl_magic.arun("look", input_variables={"photo": photo})

    asyncio.run(go())
    (sent,) = fake_provider.requests_for(route.kind)
    assert _user_blocks(route, sent.body)[-1] == _image_block(route, photo)
    assert json.loads(runs()[0]["input_variables"]) == {"photo": _marker(photo)}


def test_a_batch_comparison_refuses_images_before_storing_anything(openai_env, fake_provider):
    publish("look", LOOK)
    photo = png(3, 3, seed=17)
    with pytest.raises(InvalidInputError, match="batch=True does not take images") as err:
        pl_magic.run_many("look", inputs=[{"photo": photo}] * 2, batch=True)

    assert "\n" not in str(err.value)
    assert not fake_provider.requests and not fake_provider.batches.calls
    raw_db = Path(config.db_path()).read_bytes()
    assert base64.b64encode(photo)[:40] not in raw_db and photo[16:60] not in raw_db
