"""``dethrone demo``: a fresh local stack and two real pipeline runs, then a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``demo`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "demo",
        help="run the champion/challenger loop end to end on a local stack",
        description="Start MLflow (SQLite + local artifacts) and the router on 127.0.0.1, "
        "run main_pipeline with real Airflow (run 1: first champion), set drift "
        "on carat and color via POST /traffic, run it again (drift -> challenger "
        "-> A/B test -> decision) and print a summary. State: DETHRONE_HOME/demo, "
        "wiped at the start.",
    )
    p.add_argument("--home", default=None, help="state folder (default DETHRONE_HOME/demo)")
    p.add_argument("--mlflow-port", type=int, default=None, help="default 5000, or a free one")
    p.add_argument("--router-port", type=int, default=None, help="default 8000, or a free one")
    p.add_argument("--seed", type=int, default=7, help="base seed of the router slices")
    p.add_argument("--stop", action="store_true", help="stop the servers at the end")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when a step failed (with the reason on stderr)."""
    from dethrone.devstack.localstack import StackError
    from dethrone.simulation.demo import run_demo

    home = args.home or str(Path(Settings.from_env().dethrone_home) / "demo")
    try:
        run_demo(
            home,
            mlflow_port=args.mlflow_port,
            router_port=args.router_port,
            seed=args.seed,
            stop=args.stop,
        )
    except StackError as exc:
        print(f"dethrone demo: {exc}", file=sys.stderr)
        return 1
    return 0
