"""Layout rules: the library stays free of the web and scheduler frameworks, and every
MLflow tag name is spelled in dethrone.registry.records only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "dethrone"
FORBIDDEN = ("flask", "airflow", "dethrone_router", "gunicorn")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(LIBRARY))
)
def test_library_does_not_import_frameworks(path):
    if path.relative_to(LIBRARY).parts[0] == "cli" and path.name == "router_cmd.py":
        pytest.skip("dethrone router starts gunicorn as a command, by design")
    assert not _imports(path) & set(FORBIDDEN), path


# A quoted string starting with "dethrone." and a word that is not a module: a tag name.
_TAG_LITERAL = re.compile(r"""["'`]dethrone\.([a-z_]+)""")
_MODULES = {p.stem for p in LIBRARY.glob("*.py")} | {
    p.name for p in LIBRARY.iterdir() if (p / "__init__.py").exists()
}
_SCANNED = [
    *LIBRARY.rglob("*.py"),
    *(ROOT / "airflow" / "dags").glob("*.py"),
    *(ROOT / "bench").glob("*.py"),
    *(ROOT / "app" / "dethrone_router").rglob("*.py"),
]


@pytest.mark.parametrize("path", sorted(_SCANNED), ids=lambda p: str(p.relative_to(ROOT)))
def test_tag_names_are_spelled_only_in_records(path):
    if path == LIBRARY / "registry" / "records.py":
        pytest.skip("the one module that defines them")
    lines = [
        f"{i}: {line.strip()}"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if any(m not in _MODULES for m in _TAG_LITERAL.findall(line))
    ]
    assert lines == [], f"tag literals outside dethrone.registry.records in {path}: {lines}"
