"""The core: the rules every layer shares and nothing else of pl_magic.

Errors and redaction, settings, blueprints, template rendering, input parsing, the key
policy, the SQLite store and its migrations, and the PromptLayer REST client. Modules here
import only each other (the import contract in ``pyproject.toml`` checks it).
"""

#: pl_magic's version (also ``pl_magic.__version__``; the User-Agent sent to PromptLayer).
__version__ = "0.1.0"
