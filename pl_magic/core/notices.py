"""One-line notices for the person at the keyboard (warnings that are not errors).

Written to stderr at call time as ``pl_magic: <message>`` so they show as one line in a
notebook cell, a terminal and captured test output alike. A notice can quote text from
outside (a server's error, a template's name): on a terminal its control characters are
escaped (:mod:`pl_magic.core.inert`).
"""

from __future__ import annotations

import sys

from .errors import redact
from .inert import for_stream


def warn(message: str) -> None:
    """Show a one-line notice on stderr."""
    line = f"pl_magic: {redact(' '.join(message.split()))}"
    print(for_stream(line, sys.stderr), file=sys.stderr, flush=True)
