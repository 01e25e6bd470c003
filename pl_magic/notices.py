"""One-line notices for the person at the keyboard (warnings that are not errors).

Written to stderr at call time as ``pl_magic: <message>`` so they show as one line in a
notebook cell, a terminal and captured test output alike.
"""

from __future__ import annotations

import sys

from .errors import redact


def warn(message: str) -> None:
    """Show a one-line notice on stderr."""
    print(f"pl_magic: {redact(' '.join(message.split()))}", file=sys.stderr, flush=True)
