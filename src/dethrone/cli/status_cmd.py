"""``dethrone status``: champion/challenger versions, last drift verdict, last decision."""

from __future__ import annotations

import argparse
import json
import sys

from dethrone.cli.common import emit


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``status`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "status",
        help="show the champion, challenger, last drift check and last decision",
        description="Read the registry aliases and the latest drift and comparison runs "
        "from MLflow (MLFLOW_TRACKING_URI).",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Print the status; 1 with one clear line when MLflow cannot be reached."""
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import Registry, RegistryError
    from dethrone.registry.status import collect_status, format_status
    from dethrone.settings import Settings

    settings = Settings.from_env()
    try:
        configure_mlflow(settings)
        status = collect_status(settings, Registry(settings))
    except RegistryError as exc:
        print(f"dethrone status: {exc}", file=sys.stderr)
        return 1
    emit(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return 0
