"""``dethrone trigger``: run main_pipeline once with real Airflow (``airflow dags test``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from dethrone.cli.common import emit
from dethrone.cli.stackfile import current_state
from dethrone.cli.status_cmd import live_experiment
from dethrone.registry.status import collect_status
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``trigger`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "trigger",
        help="run the main_pipeline DAG once against the local stack",
        description="Run main_pipeline in-process with `airflow dags test` (embedded "
        "Airflow home under DETHRONE_HOME/airflow), pointed at the services "
        "dethrone up started. Params override settings for this run only.",
    )
    p.add_argument("--home", default=None, help="state folder (default DETHRONE_HOME)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="DAG param, e.g. psi_threshold=0.2 or force_challenger=true",
    )
    p.add_argument("--echo", action="store_true", help="also stream Airflow's output to stderr")
    p.add_argument(
        "--quiet", action="store_true", help="(the default now: Airflow's output goes to a log)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _latest(settings) -> dict | None:
    """The status the summary compares (None when MLflow cannot be asked)."""
    # lazy: mlflow and pandas (~2 s), kept off `dethrone --help`
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import Registry, RegistryError

    try:
        configure_mlflow(settings)
        registry = Registry(settings)
        status = collect_status(settings, registry)
        status["live_experiment"] = live_experiment(registry)
        return status
    except (RegistryError, OSError):
        return None


def summarize(rc: int, seconds: float, log, before: dict | None, after: dict | None) -> dict:
    """State, drift found and decision of the run that just ended (not of earlier runs)."""

    def run_of(status, key):
        part = (status or {}).get(key) or {}
        return part.get("dag_run_id"), part

    out = {
        "state": "success" if rc == 0 else "failed",
        "exit_code": rc,
        "seconds": round(seconds, 1),
        "log": str(log),
        "champion": None,
        "drift": None,
        "decision": None,
        "live_experiment": None,
    }
    if after is None:
        return out
    out["champion"] = (after.get("aliases") or {}).get("champion")
    for key in ("drift", "decision"):
        new_id, part = run_of(after, key)
        if new_id is not None and new_id != run_of(before, key)[0]:
            out[key] = part
    live, old = after.get("live_experiment"), (before or {}).get("live_experiment")
    if live and (old is None or live["id"] != old["id"]):
        out["live_experiment"] = live
    return out


def format_summary(s: dict) -> str:
    """The few lines ``dethrone trigger`` prints."""
    lines = [
        f"main_pipeline {'succeeded' if s['state'] == 'success' else 'FAILED'} "
        f"(exit {s['exit_code']}) in {s['seconds']:.0f} s; Airflow log: {s['log']}"
    ]
    if s["state"] != "success":
        lines.append("  the failed task's error is in the log (search for ERROR)")
    lines.append(f"  @champion: v{s['champion']}" if s["champion"] else "  @champion: none")
    drift = s.get("drift")
    if drift:
        found = drift.get("drifted_features") or []
        lines.append("  drift: " + ("found in " + ", ".join(found) if found else "none found"))
    else:
        lines.append("  drift: not checked in this run (no champion before it, or it failed)")
    dec = s.get("decision")
    if dec:
        reasons = dec.get("reasons") or []
        lines.append(
            f"  decision: {str(dec['outcome']).upper()} (v{dec['challenger_version']} against "
            f"v{dec['champion_version']})" + (f": {reasons[0]}" if reasons else "")
        )
    else:
        lines.append("  decision: none in this run")
    live = s.get("live_experiment")
    if live:
        lines.append(
            f"  live experiment {live['id']} started ({live['state']}); follow it with "
            "dethrone experiment status"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the DAG; returns Airflow's exit code (0 when the run succeeded)."""
    # lazy: localstack pulls in requests (~0.15 s), kept off `dethrone --help`
    from dethrone.devstack.localstack import LocalStack, StackError

    conf = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"dethrone trigger: --param needs NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        conf[name.strip()] = _value(value.strip())
    state = current_state() or {}
    settings = Settings.from_env()
    stack = LocalStack(args.home or state.get("stack_home") or settings.dethrone_home)
    before = _latest(settings)
    began = time.monotonic()
    try:
        stack.migrate_airflow()
        print("main_pipeline running (airflow dags test) ...", file=sys.stderr, flush=True)
        rc, log = stack.run_dag(
            conf or None, echo=args.echo, log_name=time.strftime("trigger-%Y%m%dT%H%M%S")
        )
    except StackError as exc:
        print(f"dethrone trigger: {exc}", file=sys.stderr)
        return 1
    summary = summarize(rc, time.monotonic() - began, log, before, _latest(settings))
    emit(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return rc
