"""``dethrone experiment``: each action on the fakes, recorded with who and why."""

from __future__ import annotations

import json

import pytest

from dethrone.cli import main
from dethrone.experiments.lifecycle import ExperimentContext
from tests.unit.experiments.test_lifecycle import make_ctx


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    made = make_ctx(tmp_path)
    monkeypatch.setattr(
        ExperimentContext, "from_settings", classmethod(lambda cls, settings, check=True: made)
    )
    yield made
    made.engine.dispose()


def run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["experiment", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


def test_start_status_stop(ctx, capsys):
    code, out, _ = run(
        capsys,
        "start",
        "--challenger",
        "models:/m/2",
        "--skip-prescreen",
        "--split",
        "0.2",
        "--by",
        "ana",
        "--reason",
        "vendor model",
    )
    assert code == 0 and out["state"] == "running" and out["split"] == 0.2
    assert out["action"]["by"] == "ana" and out["action"]["reason"] == "vendor model"
    code, out, _ = run(capsys, "status")
    assert code == 0 and out["experiment"]["challenger_version"] == "2"
    code, out, _ = run(capsys, "stop", "--by", "bo", "--reason", "enough")
    assert code == 0 and out["state"] == "stopped" and out["action"]["by"] == "bo"
    assert ctx.registry.aliases()["challenger"] is None


def test_shadow_start_and_refused_rollback(ctx, capsys):
    code, out, _ = run(capsys, "start", "--challenger", "2", "--shadow", "--skip-prescreen")
    assert code == 0 and out["mode"] == "shadow" and out["split"] is None
    code, _, err = run(capsys, "rollback", "--reason", "x")
    assert code == 1 and "never promoted" in err


@pytest.mark.parametrize("spec", ["two", "models:/m", "runs:/abc/model"])
def test_bad_challenger_is_bad_input(ctx, capsys, spec):
    code, _, err = run(capsys, "start", "--challenger", spec, "--skip-prescreen")
    assert code == 2 and "--challenger" in err
