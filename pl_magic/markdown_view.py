"""Model output rendered as Markdown in the kernel, into HTML that is safe to show.

JupyterLab treats the outputs a kernel has just produced as trusted: their HTML (and the
HTML inside their Markdown) is not sanitized, so anything a model writes must reach the
browser as text. Escaping Markdown by guessing where its code blocks are cannot be trusted
(the front end's parser may close a fence that the guess thinks open), so the reply is
parsed here by a real CommonMark parser (markdown-it-py) with raw HTML off, and only the
HTML that parser builds from escaped text is sent:

- raw HTML (``<script>``, ``<img onerror>``, ``<svg onload>``, ``<iframe srcdoc>``, comments)
  is shown as text; HTML entities are decoded to text and escaped again, so ``&lt;script&gt;``
  shows as ``<script>`` and never becomes a tag;
- images are never loaded (a remote image is a beacon that leaks what the model was told):
  each one becomes a link showing its alt text;
- links, autolinks and link references are live only for ``http``, ``https`` and ``mailto``
  URLs; any other destination (``javascript:``, ``data:``, ``file:``, relative) leaves the
  Markdown as plain text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

#: URL schemes a rendered link may have; anything else stays text.
SAFE_SCHEMES = ("http:", "https:", "mailto:")
#: What a link from model output opens with: a new tab that cannot reach the notebook, and
#: no referrer telling the target where the reply was shown.
_LINK_REL = "noopener noreferrer nofollow"


def is_safe_url(url: str) -> bool:
    """True when ``url`` (as markdown-it normalised it) uses an allowed scheme."""
    return url.strip().lower().startswith(SAFE_SCHEMES)


def _link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    token = tokens[idx]
    token.attrSet("rel", _LINK_REL)
    token.attrSet("target", "_blank")
    return str(renderer.renderToken(tokens, idx, options, env))


def _image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    """An image as a link to it (its alt text, or its URL when it has none): never loaded."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or src
    label = html.escape(f"image: {alt}", quote=False)
    if not is_safe_url(src):  # unreachable with the link check on; kept as a second lock
        return label
    return (
        f'<a class="pl-magic-image" href="{html.escape(src)}" rel="{_LINK_REL}" '
        f'target="_blank">{label}</a>'
    )


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.validateLink = is_safe_url  # type: ignore[method-assign]
    md.add_render_rule("image", _image)
    md.add_render_rule("link_open", _link_open)
    return md


def render_markdown(text: str) -> str:
    """``text`` as Markdown, rendered to HTML holding no live markup from ``text``."""
    return str(_parser().render(text))
