"""``dethrone status`` names the live experiment (issue 20: it showed the offline pre-screen's
"last A/B decision: PROMOTE" while v1 was still champion during a live experiment)."""

from __future__ import annotations

import json

from dethrone.cli import main
from dethrone.experiments.lifecycle import start_experiment
from tests.unit.experiments.test_lifecycle import make_ctx


def test_status_shows_the_live_experiment(tmp_path, monkeypatch, capsys):
    import dethrone.pipeline.context as pipeline_context
    import dethrone.registry.client as registry_client

    ctx = make_ctx(tmp_path)
    rec = start_experiment(ctx, challenger_version="2", key="k", split=0.3)
    monkeypatch.setattr(registry_client, "Registry", lambda settings: ctx.registry)
    monkeypatch.setattr(pipeline_context, "configure_mlflow", lambda settings: None)
    monkeypatch.setenv("DETHRONE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLASK_URL", "http://127.0.0.1:8123")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"live experiment {rec['id']}: RUNNING - champion v1 vs challenger v2" in out
    assert "30% of units on the challenger" in out and "offline pre-screen" in out
    assert f"http://127.0.0.1:8123/ui/experiments/{rec['id']}" in out
    assert main(["status", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["live_experiment"]["state"] == "running"
    ctx.engine.dispose()
