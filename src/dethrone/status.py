"""What is in production and why: aliases, the last drift verdict and the last decision.

Read from MLflow only, so ``dethrone status`` and the demo summary show what the
pipeline actually recorded.
"""

from __future__ import annotations

import json
from typing import Any

from dethrone.settings import Settings


def _latest_run(client: Any, experiment: str, filter_string: str = "") -> Any | None:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=filter_string,
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def _load_json_artifact(client: Any, run_id: str, path: str) -> dict[str, Any] | None:
    import mlflow.artifacts

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except Exception:  # an artifact store hiccup must not break the status view
        return None
    return json.loads(text)


def collect_status(settings: Settings) -> dict[str, Any]:
    """Champion/challenger versions, the last drift check and the last A/B decision.

    Returns
    -------
    dict
        ``{"model", "aliases", "champion", "drift", "decision", "tracking_uri"}``; missing
        pieces are None.
    """
    from dethrone.registry import CHAMPION, Registry

    reg = Registry(settings)
    out: dict[str, Any] = {"model": settings.model_name, "aliases": reg.aliases(),
                           "tracking_uri": settings.mlflow_tracking_uri,
                           "champion": None, "drift": None, "decision": None}
    champ = reg.version(CHAMPION)
    if champ is not None:
        out["champion"] = {"version": str(champ.version), "run_id": champ.run_id,
                           "tags": {k: v for k, v in champ.tags.items()
                                    if k.startswith("dethrone.")}}
    drift_run = _latest_run(reg.client, settings.experiment_name,
                            "tags.`dethrone.role` = 'drift-check'")
    if drift_run is not None:
        report = _load_json_artifact(reg.client, drift_run.info.run_id, "drift/report.json")
        feats = (report or {}).get("features", {})
        out["drift"] = {
            "run_id": drift_run.info.run_id,
            "dag_run_id": drift_run.data.tags.get("dethrone.dag_run_id"),
            "drifted": drift_run.data.tags.get("dethrone.drifted") == "true",
            "drifted_features": [f for f in drift_run.data.tags.get(
                "dethrone.drifted_features", "").split(",") if f],
            "features": {name: {k: f.get(k) for k in ("drifted", "method", "statistic",
                                                      "pvalue", "pvalue_adjusted", "psi")}
                         for name, f in feats.items()},
        }
    cmp_run = _latest_run(reg.client, settings.comparison_name)
    if cmp_run is not None:
        tags, metrics = cmp_run.data.tags, cmp_run.data.metrics
        decision = _load_json_artifact(reg.client, cmp_run.info.run_id,
                                       "comparison/decision.json") or {}
        out["decision"] = {
            "run_id": cmp_run.info.run_id, "dag_run_id": tags.get("dethrone.dag_run_id"),
            "outcome": tags.get("dethrone.outcome"),
            "champion_version": tags.get("dethrone.champion_version"),
            "challenger_version": tags.get("dethrone.challenger_version"),
            "loss": cmp_run.data.params.get("loss"),
            "a_mean_loss": metrics.get("a_mean_loss"), "b_mean_loss": metrics.get("b_mean_loss"),
            "a_rows": metrics.get("a_rows"), "b_rows": metrics.get("b_rows"),
            "reasons": decision.get("reasons") or tags.get("dethrone.reasons", "").split(" | "),
        }
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_status(status: dict[str, Any]) -> str:
    """A readable multi-line summary of :func:`collect_status`'s result."""
    lines = [f"model {status['model']} at {status['tracking_uri']}"]
    aliases = status["aliases"]
    lines.append("  " + "   ".join(f"@{k}: {_fmt(v)}" for k, v in aliases.items()))
    drift = status.get("drift")
    if drift:
        verdict = "DRIFT in " + ", ".join(drift["drifted_features"]) if drift["drifted"] \
            else "no drift"
        lines.append(f"last drift check ({drift['dag_run_id']}): {verdict}")
        for name, f in drift["features"].items():
            if f.get("drifted"):
                lines.append(f"    {name:<10} {f.get('method'):<9} statistic {_fmt(f.get('statistic'))}"
                             f"  p(adj) {_fmt(f.get('pvalue_adjusted', f.get('pvalue')))}"
                             f"  PSI {_fmt(f.get('psi'))}")
    else:
        lines.append("last drift check: none yet")
    dec = status.get("decision")
    if dec:
        lines.append(f"last A/B decision ({dec['dag_run_id']}): {str(dec['outcome']).upper()} "
                     f"(champion v{dec['champion_version']} vs challenger "
                     f"v{dec['challenger_version']})")
        lines.append(f"    mean {dec['loss']}: A (champion) {_fmt(dec['a_mean_loss'])} on "
                     f"{_fmt(dec['a_rows'])} rows, B (challenger) {_fmt(dec['b_mean_loss'])} on "
                     f"{_fmt(dec['b_rows'])} rows")
        for reason in dec["reasons"]:
            lines.append(f"    - {reason}")
    else:
        lines.append("last A/B decision: none yet")
    return "\n".join(lines)
