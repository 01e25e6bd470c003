"""Images and PDFs as input variables: what a media slot accepts, how it is read and checked,
and what the log keeps of it instead of its bytes.

**Media slots.** A template asks for media in PromptLayer's two ways: an ``image_url`` block
whose URL is a variable (PromptLayer's ``"image_variable": "photo"`` on the block, or a URL that
is exactly ``{photo}``, ``{{ photo }}`` in jinja2) and a ``{"type": "media_variable", "name":
"doc"}`` block. Only these slots read media; everywhere else a value is text (or refused).

**What fills a slot** (:func:`resolve`), from the user's own input variables only:

- an ``http(s)://`` URL: passed on as a URL (pl_magic never downloads it; the provider does);
- a ``data:`` URL (base64), as PromptLayer's SDK takes media;
- a ``pathlib.Path`` or a path string: the file is read, and only when it fills a slot;
- ``bytes`` (also ``bytearray``, ``memoryview``) and a PIL image (found by duck typing; PIL is
  never imported here). These two are not plain data: :func:`input_value` wraps them in a
  :class:`MediaValue`, which text rendering refuses, so a media value never becomes text.

Whatever the source, the bytes must be a PNG, JPEG, GIF or WebP image or a PDF, told by their
first bytes (magic numbers), never by a file name or a declared type. A file is opened without
blocking, must be a regular file (not a FIFO or a device), and is read no further than its first
16 bytes unless those say image or PDF, nor past the provider's limit: a template that names
``/etc/passwd`` or ``~/.ssh/id_rsa`` gets a one-line refusal, not the file.

**Limits** (:class:`MediaLimits`, one per provider and API, given by the provider module) are
checked before any call: a one-line :class:`InvalidInputError` names the value, the limit and the
fix. ``PL_MAGIC_MEDIA_MAX_MB`` replaces every size limit (for a provider that raised its own).

**The log** never holds media bytes: :class:`Redactor` replaces each media value's bytes, base64
and ``data:`` URL by its :attr:`Media.marker` (type, size, SHA-256) wherever a run's input
variables, rendered template, request or raw response are stored, and the replay key is computed
over the redacted request (so a different image is a different key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .errors import InvalidInputError, shown

PNG, JPEG, GIF, WEBP, PDF = "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"
#: Every image type a slot accepts (each provider may accept fewer: :class:`MediaLimits`).
IMAGE_TYPES = (PNG, JPEG, GIF, WEBP)
#: What the log writes in place of a media value's bytes (see :attr:`Media.marker`).
MARKER_PREFIX = "pl_magic-media:"
#: ``PL_MAGIC_MEDIA_MAX_MB``: replaces every provider's size limits when set.
ENV_MAX_MB = "PL_MAGIC_MEDIA_MAX_MB"
#: Files are read no further than this when no provider limit applies (``blueprint.render``
#: called directly, e.g. by the drop-in client's ``templates.get``).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
_SNIFF_BYTES = 16
_MB = 1024 * 1024
_FSTRING_SLOT = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_JINJA_SLOT = re.compile(r"^\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}$")
_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*?);base64,", re.IGNORECASE)
_TYPE_NAMES = {PNG: "PNG", JPEG: "JPEG", GIF: "GIF", WEBP: "WebP", PDF: "PDF"}


def sniff(data: bytes) -> str | None:
    """The media type ``data`` starts like (PNG, JPEG, GIF, WebP or PDF), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def size_text(n: int) -> str:
    """A byte count for a message: ``812 bytes``, ``14.2 KB``, ``3.75 MB``."""
    if n < 1024:
        return f"{n:,} bytes"
    if n < _MB:
        return f"{n / 1024:.1f} KB"
    return f"{n / _MB:.2f}".rstrip("0").rstrip(".") + " MB"


# -- values that are not plain data ------------------------------------------------------------


class MediaValue:
    """Bytes (or a PIL image, encoded) given as an input variable: media, never text.

    Its ``repr`` and ``str`` name the kind and the size only, so that a log or a message that
    shows the value never holds its bytes.
    """

    __slots__ = ("data", "name", "source")

    def __init__(self, data: bytes, source: str, name: str | None = None) -> None:
        self.data = data
        self.source = source
        self.name = name

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"<{self.source}{named}, {size_text(len(self.data))}>"

    __str__ = __repr__


def is_pil_image(value: Any) -> bool:
    """True for a PIL image, told without importing PIL (its class lives in a ``PIL.`` module
    and it can ``save``)."""
    return any(
        cls.__module__.partition(".")[0] == "PIL" and cls.__name__ == "Image"
        for cls in type(value).__mro__
    ) and callable(getattr(value, "save", None))


def _pil_bytes(image: Any) -> bytes:
    """A PIL image encoded in its own format when a slot takes it (PNG, JPEG, GIF, WebP),
    else as PNG."""
    buffer = io.BytesIO()
    fmt = str(getattr(image, "format", None) or "PNG").upper()
    if fmt not in ("PNG", "JPEG", "GIF", "WEBP"):
        fmt = "PNG"
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode the format cannot hold (RGBA as JPEG)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def input_value(value: Any) -> MediaValue | None:
    """The :class:`MediaValue` for a top-level input variable that is one, bytes or a PIL image,
    else None (the value is plain data, or refused as such)."""
    if isinstance(value, MediaValue):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return MediaValue(bytes(value), "bytes")
    if is_pil_image(value):
        return MediaValue(_pil_bytes(value), "PIL image")
    return None


# -- slots -------------------------------------------------------------------------------------


def slot_name(block: Any, template_format: str = "f-string") -> str | None:
    """The variable a content block takes media from, or None when it is not a media slot."""
    if not isinstance(block, Mapping):
        return None
    kind = block.get("type")
    if kind == "media_variable":
        name = block.get("name")
        return name if isinstance(name, str) and name else None
    if kind != "image_url":
        return None
    named = block.get("image_variable")
    if isinstance(named, str) and named:
        return named
    image = block.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str):
        return None
    pattern = _JINJA_SLOT if template_format == "jinja2" else _FSTRING_SLOT
    found = pattern.match(url.strip())
    return found[1] if found else None


# -- resolved media ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Media:
    """One media value, read and checked: its bytes and type, or an http(s) URL."""

    #: The input variable it came from.
    variable: str
    #: PNG, JPEG, GIF, WebP or PDF (for a URL: guessed from its path, never fetched).
    mime_type: str
    #: The bytes; None for an http(s) URL.
    data: bytes | None = field(default=None, repr=False)
    #: The http(s) URL, for media the provider fetches itself.
    url: str | None = None
    #: Where it came from: ``url``, ``path``, ``data URL``, ``bytes``, ``PIL image``, ``upload``.
    source: str = "bytes"
    #: A file name (a path's last part, an upload's name): OpenAI's file inputs need one.
    name: str | None = None

    @property
    def is_pdf(self) -> bool:
        """True for a PDF."""
        return self.mime_type == PDF

    @property
    def size(self) -> int:
        """Bytes (0 for a URL)."""
        return len(self.data) if self.data is not None else 0

    @cached_property
    def sha256(self) -> str:
        """The SHA-256 of the bytes (of the URL's text for a URL)."""
        return hashlib.sha256(
            self.data if self.data is not None else str(self.url).encode()
        ).hexdigest()

    @cached_property
    def base64(self) -> str:
        """The bytes as base64 (empty for a URL)."""
        return base64.b64encode(self.data).decode("ascii") if self.data is not None else ""

    @cached_property
    def data_url(self) -> str:
        """A ``data:`` URL of the bytes, or the http(s) URL."""
        if self.data is None:
            return str(self.url)
        return f"data:{self.mime_type};base64,{self.base64}"

    @property
    def file_name(self) -> str:
        """A file name for providers that want one (``document.pdf`` when none was given)."""
        if self.name:
            return self.name
        extension = {PNG: "png", JPEG: "jpg", GIF: "gif", WEBP: "webp", PDF: "pdf"}
        return f"{self.variable}.{extension.get(self.mime_type, 'bin')}"

    @property
    def marker(self) -> str:
        """What the log keeps instead of the bytes: type, size and SHA-256 (a URL: itself)."""
        if self.data is None:
            return str(self.url)
        return f"{MARKER_PREFIX}{self.mime_type};bytes={self.size};sha256={self.sha256}"

    def block(self, original: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """PromptLayer's content block for this media in a rendered template: an image is an
        ``image_url`` block (the slot's other keys, e.g. ``detail``, kept); a PDF a ``media``
        block (``{"title", "type", "url"}``), for every provider to map to its own."""
        if self.is_pdf:
            return {
                "type": "media",
                "media": {"title": self.file_name, "type": self.mime_type, "url": self.data_url},
            }
        block: dict[str, Any] = {"type": "image_url"}
        image: dict[str, Any] = {}
        if original is not None and original.get("type") == "image_url":
            block.update({k: v for k, v in original.items() if k not in ("type", "image_url")})
            given = original.get("image_url")
            if isinstance(given, Mapping):
                image.update({k: v for k, v in given.items() if k != "url"})
        image["url"] = self.data_url
        block["image_url"] = image
        return block


def _kind(mime_type: str) -> str:
    return "PDF" if mime_type == PDF else f"{_TYPE_NAMES.get(mime_type, mime_type)} image"


_ACCEPTED = (
    "pass an http(s) URL, a pathlib.Path or path to a PNG, JPEG, GIF, WebP or PDF file, "
    "its bytes, or a PIL image"
)


def _not_media(variable: str, what: str) -> InvalidInputError:
    return InvalidInputError(
        f"Input variable {shown(variable, 40)} fills a media slot of the template and {what}: "
        f"{_ACCEPTED}"
    )


def _checked(data: bytes, variable: str, source: str, name: str | None = None) -> Media:
    mime_type = sniff(data[:_SNIFF_BYTES])
    if mime_type is None:
        raise _not_media(
            variable, f"holds {source} that are not an image or a PDF (told by their first bytes)"
        )
    return Media(variable, mime_type, data, source=source, name=name)


def _from_data_url(text: str, variable: str) -> Media:
    found = _DATA_URL.match(text)
    if found is None:
        raise _not_media(variable, "holds a data: URL that is not base64")
    try:
        data = base64.b64decode(text[found.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise _not_media(variable, "holds a data: URL whose base64 is invalid") from None
    return _checked(data, variable, "data URL bytes")


def _url_media(url: str, variable: str) -> Media:
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    mime_type = PDF if path.endswith(".pdf") else _guess_image_type(path)
    return Media(variable, mime_type, None, url=url, source="url")


def _guess_image_type(path: str) -> str:
    for ending, mime_type in ((".png", PNG), (".gif", GIF), (".webp", WEBP)):
        if path.endswith(ending):
            return mime_type
    return JPEG


def _read_file(text: str, variable: str, max_bytes: int) -> Media:
    """A file's bytes, read only when it is a regular file that starts like media and is no
    larger than ``max_bytes`` (the file is never read past its first bytes otherwise)."""
    shown_path = shown(text, 80)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(text, flags)
    except FileNotFoundError:
        raise _not_media(
            variable,
            f"holds {shown_path}, which is neither an http(s) URL nor the path of a file "
            f"(relative paths start at {os.getcwd()})",
        ) from None
    except OSError as exc:
        raise _not_media(
            variable, f"holds the path {shown_path}, which cannot be read ({exc.strerror})"
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a directory, a FIFO, a device: never read
        os.close(fd)
        raise _not_media(variable, f"holds the path {shown_path}, which is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
        mime_type = sniff(head)
        if mime_type is None:
            raise _not_media(
                variable,
                f"holds the path {shown_path}, a file that is not an image or a PDF (told by "
                "its first bytes)",
            )
        if info.st_size > max_bytes:
            raise InvalidInputError(
                f"Input variable {shown(variable, 40)} is a {size_text(info.st_size)} "
                f"{_kind(mime_type)} ({shown_path}), over the {size_text(max_bytes)} pl_magic "
                "reads for this provider: pass a smaller file, or an http(s) URL"
            )
        data = head + handle.read(max_bytes + 1 - len(head))
    if len(data) > max_bytes:  # the file grew while being read
        raise InvalidInputError(
            f"Input variable {shown(variable, 40)} ({shown_path}) grew past "
            f"{size_text(max_bytes)} while being read: pass a file that is not being written"
        )
    return Media(variable, mime_type, data, source="path", name=os.path.basename(text) or None)


def resolve(value: Any, variable: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Media:
    """The media an input variable's value fills a slot with (see the module's docstring);
    a one-line :class:`InvalidInputError` when it is not media. ``max_bytes`` bounds how much
    of a file is read."""
    if isinstance(value, Media):
        return value
    if isinstance(value, MediaValue):
        return _checked(value.data, variable, value.source, value.name)
    if isinstance(value, bytes | bytearray | memoryview) or is_pil_image(value):
        media = input_value(value)
        assert media is not None
        return _checked(media.data, variable, media.source)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes):
            value = os.fsdecode(value)
    if not isinstance(value, str):
        raise _not_media(variable, f"holds a {type(value).__name__}")
    text = value.strip()
    if not text:
        raise _not_media(variable, "is empty")
    lowered = text[:8].lower()
    if lowered.startswith(("http://", "https://")):
        if any(c.isspace() for c in text):
            raise _not_media(variable, f"holds {shown(text, 60)}, a URL with spaces in it")
        return _url_media(text, variable)
    if lowered.startswith("data:"):
        return _from_data_url(text, variable)
    return _read_file(value, variable, max_bytes)


# -- limits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaLimits:
    """What one provider (and API) takes, checked before any call.

    ``image_bytes`` / ``pdf_bytes`` None: it takes no images / no PDFs (``why`` says what to
    do instead). ``total_bytes``: all media of one request together. Sizes are of the bytes
    (not their base64, a third larger).
    """

    #: The provider as a person names it ("Anthropic", "Gemini on Vertex AI").
    who: str
    image_bytes: int | None
    pdf_bytes: int | None
    total_bytes: int | None = None
    image_types: tuple[str, ...] = IMAGE_TYPES
    #: False: a PDF must be sent as bytes, not as a URL.
    pdf_urls: bool = True
    #: Why it takes no images or PDFs, and what to do instead (a message's end).
    why: str = ""
    #: A note on the limit, e.g. "5 MB as base64".
    note: str = ""

    def most_bytes(self) -> int:
        """The most bytes one media value may have here (how much of a file to read)."""
        sizes = [s for s in (self.image_bytes, self.pdf_bytes) if s is not None]
        return max(sizes) if sizes else 0

    def overridden(self) -> MediaLimits:
        """These limits with ``PL_MAGIC_MEDIA_MAX_MB`` in place of every size, when it is set."""
        raw = os.environ.get(ENV_MAX_MB, "").strip()
        if not raw:
            return self
        try:
            most = int(float(raw) * _MB)
        except ValueError:
            raise InvalidInputError(
                f"{ENV_MAX_MB} must be a number of megabytes, not {shown(raw, 30)}"
            ) from None
        return MediaLimits(
            self.who,
            None if self.image_bytes is None else most,
            None if self.pdf_bytes is None else most,
            None if self.total_bytes is None else most,
            self.image_types,
            self.pdf_urls,
            self.why,
            f"set by {ENV_MAX_MB}",
        )


def _too_big(media: Media, limit: int, what: str, limits: MediaLimits) -> InvalidInputError:
    note = f" ({limits.note})" if limits.note else ""
    fix = (
        "pass a smaller file"
        if media.is_pdf
        else "pass a smaller image (e.g. with PIL: img.thumbnail((1568, 1568)))"
    )
    return InvalidInputError(
        f"Input variable {shown(media.variable, 40)} is a {size_text(media.size)} "
        f"{_kind(media.mime_type)}, over {limits.who}'s {size_text(limit)} limit {what}{note}: "
        f"{fix}, or an http(s) URL the provider fetches itself (or set {ENV_MAX_MB} if the "
        "provider's limit has grown)"
    )


def check(media: Iterable[Media], limits: MediaLimits) -> None:
    """Refuse, in one line, media ``limits`` does not take: a type, a size, the total."""
    total = 0
    for item in media:
        kind = _kind(item.mime_type)
        allowed = limits.pdf_bytes if item.is_pdf else limits.image_bytes
        if allowed is None:
            what = "PDFs" if item.is_pdf else "images"
            raise InvalidInputError(
                f"Input variable {shown(item.variable, 40)} is a {kind}, and {limits.who} takes "
                f"no {what}{': ' + limits.why if limits.why else ''}"
            )
        if not item.is_pdf and item.data is not None and item.mime_type not in limits.image_types:
            names = ", ".join(_TYPE_NAMES[t] for t in limits.image_types)
            raise InvalidInputError(
                f"Input variable {shown(item.variable, 40)} is a {kind}, and {limits.who} takes "
                f"{names} images: convert it (e.g. with PIL: img.save(buffer, 'PNG'))"
            )
        if item.data is None:
            if item.is_pdf and not limits.pdf_urls:
                raise InvalidInputError(
                    f"Input variable {shown(item.variable, 40)} is the URL of a PDF, and "
                    f"{limits.who} takes PDFs only as bytes: pass the file (a path or its bytes)"
                )
            continue
        if item.size > allowed:
            raise _too_big(item, allowed, "per " + ("PDF" if item.is_pdf else "image"), limits)
        total += item.size
        if limits.total_bytes is not None and total > limits.total_bytes:
            raise _too_big(item, limits.total_bytes, "for all the media of one request", limits)


def resolve_slots(
    slots: Iterable[str], values: Mapping[str, Any], limits: MediaLimits | None
) -> dict[str, Media]:
    """The media of each slot variable given in ``values`` (a missing one is left to the
    renderer's missing-variables error), checked against ``limits``.

    A provider that takes no media at all is refused before any file is read.
    """
    names = [name for name in dict.fromkeys(slots) if name in values]
    if not names:
        return {}
    if limits is not None:
        limits = limits.overridden()
        if limits.image_bytes is None and limits.pdf_bytes is None:
            raise InvalidInputError(
                f"Input variable {shown(names[0], 40)} fills a media slot, and {limits.who} "
                f"takes no images or files{': ' + limits.why if limits.why else ''}"
            )
    most = limits.most_bytes() if limits is not None else DEFAULT_MAX_BYTES
    found = {name: resolve(values[name], name, most) for name in names}
    if limits is not None:
        check(found.values(), limits)
    return found


def data_url_inputs(values: Mapping[str, Any]) -> dict[str, Media]:
    """The media of input variables that are ``data:`` URLs (a template PromptLayer renders
    puts them in the request as they are): for the log to keep their markers instead."""
    out = {}
    for name, value in values.items():
        if isinstance(value, str) and value[:5].lower() == "data:":
            try:
                out[name] = _from_data_url(value.strip(), name)
            except InvalidInputError:
                continue
    return out


def refuse_for_server(values: Mapping[str, Any]) -> None:
    """Refuse bytes and PIL images when PromptLayer renders the template: it would receive
    them as text. URLs (and ``data:`` URLs) go as they are, as PromptLayer's SDK sends them."""
    for name, value in values.items():
        if isinstance(value, MediaValue):
            raise InvalidInputError(
                f"Input variable {shown(name, 40)} holds {value}, and this run is rendered by "
                "PromptLayer (a release label with metadata, variable tools, or "
                "PL_MAGIC_PROMPTLAYER_RENDERING=server), which takes media only as URLs: pass "
                "an http(s) or data: URL, or let pl_magic render the template"
            )


# -- what the log keeps ------------------------------------------------------------------------


class Redactor:
    """Replaces the bytes of a run's media, wherever they appear, by their markers.

    A media value's bytes, its base64 and its ``data:`` URL are replaced wherever found in
    JSON-like data (dicts, lists, tuples); any other bytes, and any other base64 ``data:`` URL
    of an image or a PDF, by a marker computed on the spot (a provider may copy them).
    """

    def __init__(self, media: Iterable[Media]) -> None:
        self.known: dict[Any, str] = {}
        for item in media:
            if item.data is None:
                continue
            self.known[item.data_url] = item.marker
            self.known[item.base64] = item.marker
            self.known[item.data] = item.marker

    def __call__(self, value: Any) -> Any:
        """A copy of ``value`` with media replaced (the parts holding none are shared)."""
        return self._walk(value, 0)

    def _walk(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            known = self.known.get(value)
            if known is not None:
                return known
            if len(value) > 64 and value[:5].lower() == "data:":
                return self._data_url_marker(value)
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            known = self.known.get(data)
            if known is not None:
                return known
            mime_type = sniff(data[:_SNIFF_BYTES]) or "application/octet-stream"
            return Media("", mime_type, data).marker
        if depth > 200:
            return value
        if isinstance(value, Mapping):
            return {k: self._walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, depth + 1) for v in value]
        return value

    def _data_url_marker(self, value: str) -> str:
        found = _DATA_URL.match(value)
        if found is None:
            return value
        try:
            data = base64.b64decode(value[found.end() :], validate=True)
        except (binascii.Error, ValueError):
            return value
        mime_type = sniff(data[:_SNIFF_BYTES])
        if mime_type is None:
            return value
        return Media("", mime_type, data).marker

    def variables(self, values: Mapping[str, Any], media: Mapping[str, Media]) -> dict[str, Any]:
        """Input variables as logged: a slot's value is its media's marker (a URL stays as
        it is), bytes and PIL images that filled no slot are their description."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in media:
                out[name] = media[name].marker
            elif isinstance(value, MediaValue):
                out[name] = str(value)
            else:
                out[name] = self(value)
        return out


def is_marker(value: Any) -> bool:
    """True for a marker the log keeps in place of media bytes."""
    return isinstance(value, str) and value.startswith(MARKER_PREFIX)
