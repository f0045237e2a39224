"""What is in production and why: aliases, the last drift verdict and the last decision.

Read from MLflow only, so ``dethrone status`` and the demo summary show what the
pipeline actually recorded.
"""

from __future__ import annotations

import json
from typing import Any

from dethrone.registry.records import (
    CHAMPION,
    DECISION_JSON,
    DRIFT_REPORT_JSON,
    ROLE_AB_TEST,
    ROLE_DRIFT_CHECK,
    Decision,
    DriftVerdict,
    RunIdentity,
    dethrone_tags,
)
from dethrone.settings import Settings


def _latest_run(client: Any, experiment: str, role: str) -> Any | None:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{RunIdentity.tag('role')}` = '{role}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def _load_json_artifact(run_id: str, path: str) -> dict[str, Any] | None:
    """The JSON artifact, or None when the run has none; any other failure propagates."""
    # lazy: mlflow costs ~2 s; `dethrone status` and `trigger` import this at CLI start
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except FileNotFoundError:
        return None
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return json.loads(text)


def collect_status(settings: Settings, registry: Any) -> dict[str, Any]:
    """Champion/challenger versions, the last drift check and the last A/B decision.

    Parameters
    ----------
    settings : Settings
        Experiment names.
    registry : Registry
        Where the aliases live (its ``client`` also finds the runs).

    Returns
    -------
    dict
        ``{"model", "aliases", "champion", "drift", "decision", "tracking_uri",
        "pending_promotion"}``; missing pieces are None.
    """
    reg = registry
    pending = reg.pending_promotion()
    out: dict[str, Any] = {
        "model": settings.model_name,
        "aliases": reg.aliases(),
        "tracking_uri": settings.mlflow_tracking_uri,
        "champion": None,
        "drift": None,
        "decision": None,
        "pending_promotion": pending.intent if pending else None,
    }
    champ = reg.alias_version(CHAMPION)
    if champ is not None:
        out["champion"] = {
            "version": str(champ.version),
            "run_id": champ.run_id,
            "tags": dethrone_tags(champ.tags),
        }
    drift_run = _latest_run(reg.client, settings.experiment_name, ROLE_DRIFT_CHECK)
    if drift_run is not None:
        report = _load_json_artifact(drift_run.info.run_id, DRIFT_REPORT_JSON)
        feats = (report or {}).get("features", {})
        verdict = DriftVerdict.from_tags(drift_run.data.tags)
        out["drift"] = {
            "run_id": drift_run.info.run_id,
            "dag_run_id": RunIdentity.from_tags(drift_run.data.tags).dag_run_id,
            "drifted": bool(verdict.drifted),
            "drifted_features": verdict.drifted_features,
            "features": {
                name: {
                    k: f.get(k)
                    for k in ("drifted", "method", "statistic", "pvalue", "pvalue_adjusted", "psi")
                }
                for name, f in feats.items()
            },
        }
    cmp_run = _latest_run(reg.client, settings.comparison_name, ROLE_AB_TEST)
    if cmp_run is not None:
        metrics = cmp_run.data.metrics
        record = Decision.from_tags(cmp_run.data.tags)
        full = _load_json_artifact(cmp_run.info.run_id, DECISION_JSON) or {}
        out["decision"] = {
            "run_id": cmp_run.info.run_id,
            "dag_run_id": record.dag_run_id,
            "outcome": record.outcome,
            "champion_version": record.champion_version,
            "challenger_version": record.challenger_version,
            "expected_share_a": record.expected_share_a,
            "config_version": record.config_version,
            "loss": cmp_run.data.params.get("loss"),
            "a_mean_loss": metrics.get("a_mean_loss"),
            "b_mean_loss": metrics.get("b_mean_loss"),
            "a_rows": metrics.get("a_rows"),
            "b_rows": metrics.get("b_rows"),
            "reasons": full.get("reasons") or record.reasons,
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
    pending = status.get("pending_promotion")
    if pending:
        lines.append(
            f"  INTERRUPTED {pending.get('kind')} to version {pending.get('version')}"
            f" (was {pending.get('old_champion')}): run `dethrone rollback` or retry "
            f"the task to finish it"
        )
    drift = status.get("drift")
    if drift:
        verdict = (
            "DRIFT in " + ", ".join(drift["drifted_features"]) if drift["drifted"] else "no drift"
        )
        lines.append(f"last drift check ({drift['dag_run_id']}): {verdict}")
        for name, f in drift["features"].items():
            if f.get("drifted"):
                lines.append(
                    f"    {name:<10} {f.get('method'):<9} "
                    f"statistic {_fmt(f.get('statistic'))}"
                    f"  p(adj) {_fmt(f.get('pvalue_adjusted', f.get('pvalue')))}"
                    f"  PSI {_fmt(f.get('psi'))}"
                )
    else:
        lines.append("last drift check: none yet")
    dec = status.get("decision")
    if dec:
        lines.append(
            f"last A/B decision ({dec['dag_run_id']}): {str(dec['outcome']).upper()} "
            f"(champion v{dec['champion_version']} vs challenger "
            f"v{dec['challenger_version']})"
        )
        lines.append(
            f"    mean {dec['loss']}: A (champion) {_fmt(dec['a_mean_loss'])} on "
            f"{_fmt(dec['a_rows'])} rows, B (challenger) {_fmt(dec['b_mean_loss'])} on "
            f"{_fmt(dec['b_rows'])} rows"
        )
        for reason in dec["reasons"]:
            lines.append(f"    - {reason}")
    else:
        lines.append("last A/B decision: none yet")
    return "\n".join(lines)
