"""``dethrone rollback``: point @champion back to @previous-champion."""

from __future__ import annotations

import argparse
import sys

from dethrone.cli.common import emit
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``rollback`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "rollback",
        help="restore the previous champion",
        description="Re-point @champion to @previous-champion in one step; the rolled-back "
        "version becomes @previous-champion and is tagged with the reason. An "
        "interrupted promotion is finished first.",
    )
    p.add_argument("--reason", default="manual rollback", help="recorded on the versions")
    return p


def run(args: argparse.Namespace) -> int:
    """Roll back; 1 when there is nothing to roll back to or MLflow is unreachable."""
    # lazy: mlflow and pandas (~2 s), kept off `dethrone --help`
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import Registry, RegistryError

    settings = Settings.from_env()
    try:
        configure_mlflow(settings)
        out = Registry(settings).rollback(args.reason)
    except RegistryError as exc:
        print(f"dethrone rollback: {exc}", file=sys.stderr)
        return 1
    emit(f"@champion -> version {out['champion']} (was {out['previous']})")
    return 0
