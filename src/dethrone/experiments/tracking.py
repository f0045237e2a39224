"""MLflow record of live experiments: one run per experiment, one row and point per look.

The run (in ``LIVE_EXPERIMENT_NAME``) carries the experiment record as tags; each look
appends a row to ``looks/looks.json`` (also logged as an MLflow table), its statistics as
metrics with ``step`` = look number, and redraws ``looks/interval.png``: the always-valid
interval of the improvement over time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pandas as pd
from mlflow.tracking import MlflowClient

from dethrone.registry.records import LiveExperiment, Look
from dethrone.settings import Settings

LOOKS_JSON, LOOKS_TABLE, LOOKS_PLOT = "looks/looks.json", "looks/table.json", "looks/interval.png"


class Tracker:
    """Writes live experiments and their looks to MLflow (configured by the caller)."""

    def __init__(self, settings: Settings, *, client: Any = None):
        if client is None:
            client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        self.settings, self.client = settings, client

    def _experiment_id(self) -> str:
        name = self.settings.live_experiment_name
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.client.create_experiment(name)

    def start_run(self, rec: LiveExperiment) -> str:
        """The run of ``rec`` (found by its id when a retry already created it)."""
        exp = self._experiment_id()
        found = self.client.search_runs(
            [exp], f"tags.`{LiveExperiment.tag('id')}` = '{rec.id}'", max_results=1
        )
        if found:
            return found[0].info.run_id
        run = self.client.create_run(exp, run_name=rec.id, tags=rec.to_tags())
        return run.info.run_id

    def update(self, rec: LiveExperiment) -> None:
        """Mirror the record's tags onto its run."""
        for key, value in rec.to_tags().items():
            self.client.set_tag(rec.run_id, key, value)

    def looks(self, rec: LiveExperiment) -> list[dict[str, Any]]:
        """Every look logged so far (oldest first)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=rec.run_id,
                    artifact_path=LOOKS_JSON,
                    dst_path=tmp,
                    tracking_uri=self.settings.mlflow_tracking_uri,
                )
            except Exception:  # noqa: BLE001 - no looks yet: MLflow raises several types
                return []
            return json.loads(Path(path).read_text())

    def log_look(self, rec: LiveExperiment, look: Look) -> list[dict[str, Any]]:
        """Append ``look``: the JSON list, the table, the metrics and the plot."""
        rows = [*self.looks(rec), look.to_dict()]
        step = len(rows)
        self.client.log_dict(rec.run_id, rows, LOOKS_JSON)
        self.client.log_table(rec.run_id, pd.DataFrame(rows), LOOKS_TABLE)
        for name in ("ci_low", "ci_high", "pvalue", "units_a", "units_b", "mean_a", "mean_b"):
            value = getattr(look, name)
            if value is not None:
                self.client.log_metric(rec.run_id, f"{look.phase}_{name}", float(value), step=step)
        self.client.log_figure(rec.run_id, interval_figure(rows), LOOKS_PLOT)
        return rows


def interval_figure(rows: list[dict[str, Any]]) -> Any:
    """The always-valid interval of each phase over the looks (a matplotlib figure)."""
    # lazy: pyplot picks its backend at import; Agg first, so a worker never opens a display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"), see above

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for phase, color in (("experiment", "tab:blue"), ("guardrail", "tab:red")):
        pts = [
            (i + 1, r["ci_low"], r["ci_high"])
            for i, r in enumerate(rows)
            if r["phase"] == phase and r["ci_low"] is not None
        ]
        if pts:
            x, low, high = zip(*pts, strict=True)
            ax.fill_between(x, low, high, alpha=0.3, color=color, label=f"{phase} interval")
            ax.plot(x, [(lo + hi) / 2 for lo, hi in zip(low, high, strict=True)], color=color)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("look")
    ax.set_ylabel("champion-arm loss - other arm's")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
