"""``pl_magic.errors``: the public home of pl_magic's exception classes.

The classes live in :mod:`pl_magic.core.errors`; this name is the same module object, so
``pl_magic.errors.ProviderError is pl_magic.core.errors.ProviderError``.
"""

import sys

from .core import errors as _errors

sys.modules[__name__] = _errors
