"""The layering rules that import-linter cannot state, read from the source with ``ast``.

import-linter (``.ci/run``, ``[tool.importlinter]`` in pyproject.toml) checks which package
may import which. What it does not check is *what* one package takes from another: a
``_``-prefixed name is its module's own business, so reaching for one from another package
couples the two below their interface. Here every module of pl_magic is parsed and every
such reach is listed, so one run names every offender.

That ``import pl_magic`` loads no provider SDK, pandas or ipywidgets is checked in a fresh
interpreter by ``tests/test_import_and_secrets.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "pl_magic"


@dataclass(frozen=True)
class Module:
    """One source file of pl_magic: its dotted name and whether it is a package's __init__."""

    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package the module belongs to (a package's __init__ belongs to itself)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def modules() -> list[Module]:
    """Every module of pl_magic, found on disk."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found.append(Module(name, path, is_package))
    return found


MODULES = {m.name: m for m in modules()}


def package_of(dotted: str) -> str:
    """The package of ``dotted`` when it names a module; otherwise (a name inside a module)
    the package of the module that holds it."""
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return MODULES[dotted].package if dotted else ""


def is_private(name: str) -> bool:
    """``_x`` is private; ``__x__`` (``__version__``, ``__all__``) is not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def absolute(module: Module, level: int, target: str | None) -> str:
    """The absolute dotted name of ``from <dots><target> import …`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.package.split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def private_reaches(module: Module, source: str | None = None) -> Iterator[str]:
    """``path:line: what`` for each private name of another pl_magic package the module
    imports or reads as a module attribute (``source``: the module's text, read from its
    file when not given)."""
    if source is None:
        source = module.path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(module.path))
    where = module.path.relative_to(ROOT)
    # Local names bound to a pl_magic module, e.g. ``from ..core import config`` → config.
    aliases: dict[str, str] = {}

    def foreign(target: str) -> bool:
        return target.startswith("pl_magic") and package_of(target) != module.package

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("pl_magic"):
                    continue
                if alias.asname:
                    aliases[alias.asname] = alias.name
                dotted = alias.name.split(".")
                if foreign(alias.name) and any(is_private(p) for p in dotted):
                    yield f"{where}:{node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node.level, node.module)
            if not source.startswith("pl_magic"):
                continue
            private_source = any(is_private(p) for p in source.split("."))
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in MODULES:
                    aliases[alias.asname or alias.name] = full
                if foreign(full) and (private_source or is_private(alias.name)):
                    yield f"{where}:{node.lineno}: from {source} import {alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and foreign(f"{aliases[node.value.id]}.{node.attr}")
        ):
            yield f"{where}:{node.lineno}: {aliases[node.value.id]}.{node.attr}"


def test_the_walk_sees_every_layer():
    """A guard for the test below: it must be reading the real tree, not an empty one."""
    packages = {m.package for m in MODULES.values()}
    assert {"pl_magic", "pl_magic.core", "pl_magic.engine", "pl_magic.surfaces"} <= packages
    assert len(MODULES) > 30


def test_the_walk_finds_a_private_reach():
    """The detector itself: each spelling of a private reach is found, the allowed ones not."""
    source = (
        "from ..core import config\n"
        "from ..core.config import _hidden, public\n"
        "from . import _sibling_private\n"
        "from ..providers import _sdk_errors\n"
        "import pl_magic.core.config as cfg\n"
        "from pl_magic import __version__\n"
        "config._cache.clear()\n"
        "cfg._other\n"
        "config.public\n"
    )
    path = PACKAGE_DIR / "engine" / "_probe_for_test.py"
    fake = Module("pl_magic.engine._probe_for_test", path, is_package=False)
    found = sorted(line.split(": ", 1)[1] for line in private_reaches(fake, source))
    assert found == [
        "from pl_magic.core.config import _hidden",
        "from pl_magic.providers import _sdk_errors",
        "pl_magic.core.config._cache",
        "pl_magic.core.config._other",
    ]


def test_no_module_reaches_a_private_name_of_another_package():
    offenders = [line for module in MODULES.values() for line in private_reaches(module)]
    assert offenders == [], "private names reached across packages:\n" + "\n".join(offenders)
