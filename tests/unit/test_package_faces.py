"""Layout rule: a package uses another package only through its public names.

Each subpackage of ``dethrone`` and ``dethrone_router`` (``experiments``, ``drift``,
``gateway``, ...) keeps its internals to itself: another package may not import a name
with a leading underscore from it, nor reach into one through a module it imported.
Within a package anything goes. The test parses every module (no import needed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "dethrone": ROOT / "src" / "dethrone",
    "dethrone_router": ROOT / "app" / "dethrone_router",
}
MODULES = sorted(p for base in PACKAGES.values() for p in base.rglob("*.py"))


def _package_of(path: Path) -> str:
    """``dethrone.experiments`` for src/dethrone/experiments/rules.py; a top-level module
    is its own package (``dethrone.settings``)."""
    for top, base in PACKAGES.items():
        if base in path.parents:
            parts = path.relative_to(base).with_suffix("").parts
            return f"{top}.{parts[0]}" if parts[0] != "__init__" else top
    raise AssertionError(path)


def _owner(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(path: Path) -> list[str]:
    """Every use of another package's internals in ``path``, as ``line: what``."""
    own = _package_of(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    found, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            owner = _owner(node.module)
            if owner is None or owner == own:
                continue
            if any(_private(p) for p in node.module.split(".")):
                found.append(f"{node.lineno}: module {node.module}")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.lineno}: {node.module}.{alias.name}")
                else:  # may be a module: remember its local name
                    modules[alias.asname or alias.name] = owner
        elif isinstance(node, ast.Import):
            for alias in node.names:
                owner = _owner(alias.name)
                if owner is not None and owner != own and alias.asname:
                    modules[alias.asname] = owner
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_uses_another_packages_internals(path):
    assert violations(path) == [], f"{path.relative_to(ROOT)} uses another package's internals"


def test_the_rule_catches_both_forms(tmp_path, monkeypatch):
    bad = PACKAGES["dethrone"] / "cli" / "_probe_for_test.py"
    source = (
        "from dethrone.experiments.rules import _thresholds\n"
        "from dethrone.experiments import analysis\n"
        "x = analysis._num(1.0)\n"
        "from dethrone.cli.common import _ok\n"  # its own package: allowed
    )
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert violations(bad) == [
        "1: dethrone.experiments.rules._thresholds",
        "3: analysis._num",
    ]
