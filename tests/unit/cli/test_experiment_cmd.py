"""``dethrone experiment``: each action on the fakes, recorded with who and why; a failed or
refused start leaves nothing served and no orphan copy; status by model version; look says why.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from dethrone.cli import experiment_cmd, main
from dethrone.experiments import operator as ops
from dethrone.experiments.lifecycle import ExperimentContext, current
from dethrone.slices.router_client import RouterError
from tests.unit.experiments.test_lifecycle import log_rows, make_ctx, rng_losses


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    made = make_ctx(tmp_path)
    monkeypatch.setattr(
        ExperimentContext, "from_settings", classmethod(lambda cls, settings, check=True: made)
    )
    monkeypatch.setenv("DETHRONE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ROUTER_DATABASE_URL", f"sqlite:///{tmp_path / 'log.sqlite3'}")
    monkeypatch.setenv("EXPERIMENT_CHECK_MINUTES", "5")
    yield made
    made.engine.dispose()


def run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["experiment", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 and out.strip() else None, err


def test_start_status_stop(ctx, capsys):
    code, out, err = run(
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
    # how looks will happen and the page, on stderr (stdout is the JSON alone)
    assert "looks:" in err and f"/ui/experiments/{out['id']}" in err
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0 and out["experiment"]["challenger_version"] == "2"
    assert [v["version"] for v in out["versions"]] == ["1", "2"]
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
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("split", ["1.5", "0", "1", "-0.1", "abc"])
def test_split_out_of_range_refused_before_any_service(monkeypatch, capsys, split):
    """Issue 18.7: `--split 1.5` ran the 7-11 s pre-screen before refusing."""

    def no_services(cls, settings, check=True):
        raise AssertionError("a service was asked before the split was checked")

    monkeypatch.setattr(ExperimentContext, "from_settings", classmethod(no_services))
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "start", "--challenger", "2", "--split", split])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--split" in err and len(err.strip().splitlines()) == 1


def test_failed_start_does_not_leave_the_challenger_served(ctx, capsys):
    """Issue 18.6: router unreachable at the start: exit 1, @challenger NOT left set; the
    same key finishes the start later, or `stop` undoes it."""

    def down(**config):
        raise RouterError("router at http://127.0.0.1:9 is not reachable")

    real = ctx.router.set_traffic
    ctx.router.set_traffic = down
    code, _, err = run(capsys, "start", "--challenger", "2", "--skip-prescreen", "--key", "k1")
    assert code == 1 and "not reachable" in err and "Traceback" not in err
    assert ctx.registry.aliases()["challenger"] is None  # no router serves it
    assert current(ctx).state == "starting"
    assert "--key k1" in err  # how to finish it
    ctx.router.set_traffic = real
    code, out, _ = run(capsys, "start", "--challenger", "2", "--skip-prescreen", "--key", "k1")
    assert code == 0 and out["state"] == "running"
    assert ctx.registry.aliases()["challenger"] == "2"


def test_failed_start_undone_by_stop(ctx, capsys):
    def down(**config):
        raise RouterError("router down")

    real = ctx.router.set_traffic
    ctx.router.set_traffic = down
    assert run(capsys, "start", "--challenger", "2", "--skip-prescreen")[0] == 1
    ctx.router.set_traffic = real
    code, out, _ = run(capsys, "stop", "--reason", "failed start")
    assert code == 0 and out["state"] == "stopped"
    assert ctx.registry.aliases()["challenger"] is None


def _foreign_model(ctx):
    """A second registered model 'other' with version 1 and a copy_model_version."""
    fake = ctx.registry.fake
    fake.add_version("other", "run-other")
    copies = []

    def copy_model_version(src, dst):
        copies.append(src)
        return SimpleNamespace(version=fake.add_version(dst, "run-copy"))

    fake.copy_model_version = copy_model_version
    return copies


def test_refused_prescreen_copies_nothing_and_copy_happens_once(ctx, capsys, monkeypatch):
    """Issue 18.6: each refused start copied the model into MODEL_NAME again."""
    copies = _foreign_model(ctx)
    outcome = {"outcome": "keep", "reasons": ["challenger not better"]}
    seen = []

    def prescreen(settings, challenger, key, foreign):
        seen.append((challenger, foreign))
        return {**outcome, "_recorded": None}

    monkeypatch.setattr(experiment_cmd, "_prescreen", prescreen)
    for _ in range(2):
        code, _, err = run(capsys, "start", "--challenger", "models:/other/1")
        assert code == 1 and "pre-screen says 'keep'" in err
    assert copies == []  # nothing copied while the pre-screen refuses
    assert seen[0] == ("models:/other/1", ("other", "1"))  # screened where it is
    outcome["outcome"] = "promote"
    code, out, _ = run(capsys, "start", "--challenger", "models:/other/1")
    assert code == 0 and out["challenger_version"] == "3" and copies == ["models:/other/1"]
    assert run(capsys, "stop")[0] == 0
    code, out, _ = run(capsys, "start", "--challenger", "models:/other/1")
    assert code == 0 and out["challenger_version"] == "3" and copies == ["models:/other/1"]


def test_unknown_model_is_one_line_exit_2(ctx, capsys):
    """Issue 18.7: `--challenger models:/no-such-model/1` ended in an MlflowException
    traceback."""
    code, _, err = run(capsys, "start", "--challenger", "models:/no-such-model/1")
    assert code == 2 and "no-such-model" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_look_says_why_it_continues(ctx, capsys):
    assert run(capsys, "start", "--challenger", "2", "--skip-prescreen")[0] == 0
    log_rows(ctx, "champion", "1", rng_losses(1, 9, 1.0), units=9)
    log_rows(ctx, "challenger", "2", rng_losses(2, 7, 1.0), units=7)
    code = main(["experiment", "look"])
    out = capsys.readouterr().out
    assert code == 0 and "continue: 9/7 units, need 20 per arm" in out
    assert ctx.tracker.looks and ctx.tracker.looks[-1]["units_a"] == 9  # the DAG's look


def test_look_decides_and_says_why(ctx, capsys):
    assert run(capsys, "start", "--challenger", "2", "--skip-prescreen")[0] == 0
    log_rows(ctx, "champion", "1", rng_losses(3, 600, 3.0), units=300)
    log_rows(ctx, "challenger", "2", rng_losses(4, 600, 1.0), units=300)
    code, out, _ = run(capsys, "look", "--json")
    assert code == 0 and out["action"] == "promoted" and out["why"].startswith("promoted: ")
    assert current(ctx).state == "guardrail"


def test_status_groups_by_version_across_a_promotion(ctx, capsys):
    """Issue 20: per-arm figures grouped by arm *name* mixed the versions after a
    promotion; the status shows each model version on its own line."""
    assert run(capsys, "start", "--challenger", "2", "--skip-prescreen")[0] == 0
    log_rows(ctx, "champion", "1", np.full(40, 5.0), units=40)
    log_rows(ctx, "challenger", "2", np.full(30, 1.0), units=30)
    ops.promote(ctx, by="ana", reason="clear win")
    ctx.clock.now += 10
    # after the promotion v2 serves on the champion arm, v1 is the holdback
    log_rows(ctx, "champion", "2", np.full(50, 1.0), units=50)
    log_rows(ctx, "challenger", "1", np.full(5, 5.0), units=5)
    code, out, _ = run(capsys, "status", "--json")
    by = {v["version"]: v for v in out["versions"]}
    assert code == 0 and out["phase"] == "guardrail"
    assert by["1"]["rows"] == 45 and by["2"]["rows"] == 80
    assert sorted(by["2"]["arms"]) == ["challenger", "champion"]
    code = main(["experiment", "status"])
    table = capsys.readouterr().out
    assert code == 0 and "state guardrail" in table and "page: " in table
    lines = {line.split()[0]: line for line in table.splitlines() if line.startswith("  v")}
    assert lines["v1"].split()[4:6] == ["45", "45"] and lines["v2"].split()[2:4] == ["80", "80"]


def test_status_without_a_log_database_creates_none(tmp_path, monkeypatch, capsys):
    db = tmp_path / "nowhere" / "router.sqlite3"
    monkeypatch.setenv("DETHRONE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ROUTER_DATABASE_URL", f"sqlite:///{db}")
    code = main(["experiment", "status"])
    err = capsys.readouterr().err
    assert code == 1 and "no prediction log" in err and len(err.strip().splitlines()) == 1
    assert not db.parent.exists()


def test_watch_refreshes(ctx, capsys, monkeypatch):
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(experiment_cmd.time, "sleep", sleep)
    assert main(["experiment", "status", "--watch", "0.5"]) == 130
    out = capsys.readouterr().out
    assert sleeps == [0.5, 0.5] and out.count("no live experiment") == 2


def test_prescreen_reads_a_foreign_version_in_place():
    """The pre-screen of models:/other/4 reads it from 'other' and keeps its decision for
    the copy; everything else goes to MODEL_NAME's registry."""
    calls = []

    class Reg:
        def __init__(self, name):
            self.name = name

        def model_info(self, v):
            calls.append((self.name, "info", v))

        def load_model(self, v):
            calls.append((self.name, "load", v))

        def record_decision(self, v, d):
            calls.append((self.name, "record", v))

        def alias_version(self, alias):
            return alias

    screen = experiment_cmd._ScreenRegistry(Reg("m"), Reg("other"), "models:/other/4", "4")
    screen.model_info("1")
    screen.model_info("models:/other/4")
    screen.load_model("models:/other/4")
    screen.record_decision("models:/other/4", "decision")
    screen.record_decision("1", "d1")
    assert screen.alias_version("champion") == "champion"
    assert calls == [
        ("m", "info", "1"),
        ("other", "info", "4"),
        ("other", "load", "4"),
        ("m", "record", "1"),
    ]
    assert screen.decision == "decision"
