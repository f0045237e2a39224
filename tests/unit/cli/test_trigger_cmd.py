"""``dethrone trigger``: a short summary of the run it started; Airflow's output in a file."""

from __future__ import annotations

from pathlib import Path

from dethrone.cli import main, trigger_cmd
from dethrone.devstack.localstack import LocalStack

BEFORE = {
    "aliases": {"champion": "1"},
    "drift": {"dag_run_id": "r1", "drifted_features": []},
    "decision": None,
    "live_experiment": None,
}
AFTER = {
    "aliases": {"champion": "1"},
    "drift": {"dag_run_id": "r2", "drifted_features": ["carat", "color"]},
    "decision": {
        "dag_run_id": "r2",
        "outcome": "promote",
        "champion_version": "1",
        "challenger_version": "2",
        "reasons": ["challenger's loss is lower: interval [3.1, 9.4] above margin 0"],
    },
    "live_experiment": {"id": "live-v2-x", "state": "running"},
}


def test_trigger_prints_a_summary_and_names_the_log(tmp_path, monkeypatch, capsys):
    lines = "".join(f"[2026-12-04] airflow line {i}\n" for i in range(164))
    calls = []

    def run_dag(self, conf=None, *, log_name="dag_run", echo=False, dag_id="main_pipeline"):
        calls.append(echo)
        path = self.home / "logs" / f"{log_name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(lines)
        return 0, path

    states = iter([BEFORE, AFTER])
    monkeypatch.setattr(LocalStack, "run_dag", run_dag)
    monkeypatch.setattr(LocalStack, "migrate_airflow", lambda self: None)
    monkeypatch.setattr(trigger_cmd, "_latest", lambda settings: next(states))
    assert main(["trigger", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 6 and "airflow line" not in out and calls == [False]
    log = Path(out.split("Airflow log: ")[1].split()[0])
    assert log.read_text() == lines
    assert "drift: found in carat, color" in out
    assert "decision: PROMOTE (v2 against v1): challenger's loss is lower" in out
    assert "live experiment live-v2-x started" in out


def test_summary_ignores_results_of_earlier_runs():
    s = trigger_cmd.summarize(1, 12.0, "x.log", AFTER, AFTER)
    text = trigger_cmd.format_summary(s)
    assert s["state"] == "failed" and "FAILED (exit 1)" in text
    assert "drift: not checked in this run" in text and "decision: none in this run" in text
