"""Layers (docs/layers.md): a module imports from its own layer or lower ones, never higher.

Every ``import`` and ``from ... import`` of every module under src/proxylessnas counts, those
inside functions too; a layer is named by the first part of the module path below the package
(``proxylessnas.runtime.atomic`` is in ``runtime``; ``""`` is the package's ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "proxylessnas"

LAYERS = (  # lowest first; the same order as docs/layers.md
    ("errors", "version"),
    ("arguments", "convergence_measures", "figures", "overrides", "progress", "subcommands", "tables",
     "warning_lines"),
    ("runtime",),
    ("ops",),
    ("space",),
    ("nets",),
    ("supernet",),
    ("data",),
    ("hardware",),
    ("viz",),
    ("train",),
    ("search",),
    ("export",),
    ("", "zoo"),  # the package's public names (proxylessnas.get_space, proxylessnas.zoo.create, ...)
    ("cli", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

# (importing module, imported module) pairs that may go up, each with its reason; none today
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every import of the package in ``path``; ``from a import b`` names
    ``a.b`` when ``b`` is a module, else ``a``."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((name if is_module(name) else base, node.lineno))
    return [(name, line) for name, line in dict.fromkeys(found) if name.split(".")[0] == "proxylessnas"]


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    unplaced = sorted({layer(module_name(p)) for p in PACKAGE.rglob("*.py")} - set(RANK))
    assert not unplaced, f"place {unplaced} in LAYERS here and in docs/layers.md"


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for target, line in imported_modules(path):
            if RANK[layer(target)] > RANK[layer(module)] and (module, target) not in ALLOWED_UPWARD:
                upward.append(f"{module} imports {target} ({path.relative_to(PACKAGE.parent)}:{line}): "
                              f"layer '{layer(module)}' is below '{layer(target)}'")
    assert not upward, "imports from a higher layer (docs/layers.md):\n" + "\n".join(upward)


def test_the_checker_sees_every_kind_of_import(tmp_path, monkeypatch):
    """``import a.b``, ``from a import b`` (module or name), relative and in-function imports."""
    package = tmp_path / "proxylessnas"
    (package / "space").mkdir(parents=True)
    for name in ("__init__.py", "space/__init__.py", "space/arch.py", "cli.py"):
        (package / name).write_text("")
    source = package / "space" / "shapes.py"
    source.write_text("import proxylessnas.cli\nfrom proxylessnas import cli\nfrom . import arch\n"
                      "from .arch import Arch\n\ndef f():\n    from proxylessnas.cli import main\n")
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert sorted(imported_modules(source), key=lambda found: found[1]) == [
        ("proxylessnas.cli", 1), ("proxylessnas.cli", 2), ("proxylessnas.space.arch", 3),
        ("proxylessnas.space.arch", 4), ("proxylessnas.cli", 7)]
