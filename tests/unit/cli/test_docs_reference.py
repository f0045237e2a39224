"""The generated reference pages cover every command, setting and HTTP path (so the docs
cannot go stale: ``make docs`` regenerates them from the code)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from dethrone.cli import COMMANDS
from dethrone.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _hook():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "docs/hooks/reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_cover_the_code():
    hook = _hook()
    cli = hook.cli_page()
    for name in COMMANDS:
        assert f"### `dethrone {name}`" in cli, name
    for action in ("start", "status", "look", "stop", "promote", "rollback"):
        assert f"`dethrone experiment {action}`" in cli
    assert "`--database-url URL`" in cli and "**Precedence**" in cli
    settings = hook.settings_page()
    for f in dataclasses.fields(Settings):
        assert f"| `{f.name.upper()}` |" in settings, f.name
    http, spec = hook.http_page()
    assert '"paths"' in spec
    for path in ("/traffic", "/predict", "/invocations", "/feedback", "/health"):
        assert f"## `{path}`" in http, path
