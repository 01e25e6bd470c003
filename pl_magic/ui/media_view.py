"""Small previews of a run's media inputs, for the cell, the comparison grid and the form.

A preview is built only from the media pl_magic read and checked itself (the user's own
input, see :mod:`pl_magic.core.media`): an image becomes an ``<img>`` whose ``src`` is a
``data:`` URL of those bytes (PNG, JPEG, GIF or WebP, told by their first bytes; never SVG,
never an image URL from a model's reply or a remote record). An http(s) URL is shown as
escaped text, never loaded; a PDF as its name and size. Every attribute is escaped.

With Pillow installed the image is shrunk to a thumbnail first; without it, an image of up
to :data:`MAX_INLINE_BYTES` is shown as is (scaled by the browser) and a larger one by its
name only, so that a notebook does not store megabytes per output.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.media import IMAGE_TYPES, PNG, Media, size_text, sniff

#: Largest image shown without shrinking it (when Pillow is not installed).
MAX_INLINE_BYTES = 256 * 1024
#: Larger images get no preview (decoding one takes memory: 3-4 bytes a pixel).
MAX_PIXELS = 40_000_000
#: The preview's size in CSS pixels (the thumbnail is made twice as large, for sharp screens).
SIZE_PX = 96


def _thumbnail(media: Media) -> tuple[str, bytes] | None:
    """``(type, bytes)`` of a small version of an image, or None when none can be shown."""
    if media.data is None or media.mime_type not in IMAGE_TYPES:
        return None
    try:
        from PIL import Image
    except ImportError:
        return (media.mime_type, media.data) if media.size <= MAX_INLINE_BYTES else None
    try:
        with Image.open(io.BytesIO(media.data)) as opened:
            width, height = opened.size
            if width * height > MAX_PIXELS:  # decoding it would take too much memory
                return None
            opened.thumbnail((SIZE_PX * 2, SIZE_PX * 2))
            small = (
                opened if opened.mode in ("RGB", "RGBA", "L", "LA", "P") else opened.convert("RGBA")
            )
            out = io.BytesIO()
            small.save(out, format="PNG")
    except Exception:  # a file PIL cannot decode (or a decompression bomb): no preview
        return (media.mime_type, media.data) if media.size <= MAX_INLINE_BYTES else None
    data = out.getvalue()
    return (PNG, data) if sniff(data) == PNG else None


def _label(media: Media) -> str:
    kind = "PDF" if media.is_pdf else media.mime_type.removeprefix("image/").upper()
    name = f"{media.name}, " if media.name else ""
    return f"{media.variable}: {name}{kind}, {size_text(media.size)}"


def thumbnails_html(media: Iterable[Media]) -> str:
    """HTML previews of ``media`` (empty when there is none)."""
    import base64

    items = []
    for item in media:
        if item.data is None:  # a URL the provider fetches: text only
            items.append(
                '<span class="pl-magic-media-url" style="font-size:0.85em;color:#555">'
                f"{html.escape(item.variable)}: {html.escape(str(item.url))}</span>"
            )
            continue
        thumb = _thumbnail(item)
        label = html.escape(_label(item), quote=True)
        if thumb is None:
            items.append(
                f'<span class="pl-magic-media-file" style="font-size:0.85em;color:#555">'
                f"{label}</span>"
            )
            continue
        mime_type, data = thumb
        src = f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"
        items.append(
            '<figure class="pl-magic-thumb" style="margin:0;display:inline-block;'
            'text-align:center;font-size:0.75em;color:#555">'
            f'<img src="{html.escape(src, quote=True)}" alt="{label}" title="{label}" '
            f'style="max-width:{SIZE_PX}px;max-height:{SIZE_PX}px;border:1px solid #ddd;'
            'border-radius:3px;display:block">'
            f"<figcaption>{html.escape(item.variable)}</figcaption></figure>"
        )
    if not items:
        return ""
    return (
        '<div class="pl-magic-inputs" style="display:flex;gap:6px;flex-wrap:wrap;'
        f'align-items:flex-end;margin-bottom:4px">{"".join(items)}</div>'
    )


def input_previews(prompt_template: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """Previews of the media ``values`` put in the template's media slots (empty when there
    is none, or when a value is not media: the run itself says why, in one line).

    Only the values of the template's media slots are read, as a run reads them.
    """
    from ..core.blueprint import media_slots
    from ..core.errors import PlMagicError
    from ..core.media import resolve_slots
    from ..core.plain_data import plain_variables

    slots = media_slots(prompt_template)
    if not slots:
        return ""
    try:
        found = resolve_slots(slots, plain_variables(values), None)
    except PlMagicError:
        return ""
    return thumbnails_html(found.values())
