"""``dethrone status``: champion/challenger versions, last drift verdict, last decision."""

from __future__ import annotations

import argparse
import json
import sys

from dethrone.cli.common import emit
from dethrone.cli.experiment_cmd import _when
from dethrone.registry.status import collect_status, format_status
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``status`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "status",
        help="show the champion, challenger, last drift check, last decision, live experiment",
        description="Read the registry aliases and the latest drift and comparison runs "
        "from MLflow (MLFLOW_TRACKING_URI).",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def live_experiment(registry) -> dict | None:
    """The live experiment's record (running or the last one), or None."""
    from dethrone.experiments.state import stored_record  # lazy: pandas and scipy (~1 s)

    rec = stored_record(registry)
    return None if rec is None else rec.to_dict()


def format_live(rec: dict | None, flask_url: str) -> str:
    """The lines of ``dethrone status`` about the live experiment."""
    if rec is None:
        return "live experiment: none started"
    how = f"{rec['split']:.0%} of units on the challenger" if rec["mode"] == "ab" else "shadow"
    head = (
        f"live experiment {rec['id']}: {rec['state'].upper()} - champion "
        f"v{rec['champion_version']} vs challenger v{rec['challenger_version']} ({how}), "
        f"started {_when(rec['started_at'])}, {rec['looks']} looks"
    )
    lines = [head]
    if rec["state"] in ("starting", "running", "promoting", "guardrail", "rolling-back"):
        lines.append(
            "    the live experiment decides; an A/B decision above is the offline "
            "pre-screen. Interval and looks: dethrone experiment status"
        )
    elif rec.get("outcome"):
        lines.append(f"    outcome {rec['outcome']}, ended {_when(rec.get('ended_at'))}")
    lines.append(f"    page: {flask_url.rstrip('/')}/ui/experiments/{rec['id']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the status; 1 with one clear line when MLflow cannot be reached."""
    # lazy: mlflow and pandas (~2 s), kept off `dethrone --help`
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import Registry, RegistryError

    settings = Settings.from_env()
    try:
        configure_mlflow(settings)
        registry = Registry(settings)
        status = collect_status(settings, registry)
        status["live_experiment"] = live_experiment(registry)
    except RegistryError as exc:
        print(f"dethrone status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit(json.dumps(status, indent=2, default=str))
    else:
        emit(format_status(status))
        emit(format_live(status["live_experiment"], settings.flask_url))
    return 0
