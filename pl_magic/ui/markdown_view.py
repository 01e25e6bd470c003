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

While a reply streams, :class:`MarkdownStream` renders only what changed: CommonMark never
reopens a top-level block once a later one has begun, so every block but the last is
rendered once and kept. Whatever the split, each piece goes through the same parser, so the
preview is as safe as the final view (which renders the whole reply again).
"""

from __future__ import annotations

import html
import re
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


_NEWLINES = re.compile(r"\r\n?")


class MarkdownStream:
    """Renders a growing reply, re-rendering only its last top-level block each time."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._done_source = ""  # complete blocks, newlines normalised as the parser does
        self._done_html = ""
        self._env: dict[str, Any] = {}  # link reference definitions seen so far

    def render(self, text: str) -> str:
        """The HTML of ``text``, which usually extends the text of the previous call."""
        text = _NEWLINES.sub("\n", text)
        if not text.startswith(self._done_source):
            self._reset()
        md = _parser()
        tail = text[len(self._done_source) :]
        env = {"references": dict(self._env.get("references", {}))}
        tokens = md.parse(tail, env)
        starts = [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map]
        if len(starts) >= 2:  # every block before the last one is complete: render it once
            last = starts[-1]
            line = tokens[last].map[0]  # type: ignore[index]
            # the parser counts lines by "\n" only (str.splitlines knows other breaks)
            done = "".join(f"{part}\n" for part in tail.split("\n")[:line])
            # parsed again alone, so that only its link definitions are kept (a definition
            # in the tail may still be growing, and the first definition of a name wins)
            self._done_html += md.render(done, self._env)
            self._done_source += done
            tokens = tokens[last:]
        return self._done_html + str(md.renderer.render(tokens, md.options, env))
