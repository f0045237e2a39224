"""``dethrone demo``: a fresh local stack and two real pipeline runs, then a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dethrone.cli.stackfile import find_home
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``demo`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "demo",
        help="run the champion/challenger loop end to end on a local stack",
        description="Start MLflow (SQLite + local artifacts) and the router on 127.0.0.1, "
        "run main_pipeline with real Airflow (run 1: first champion), set drift "
        "on two columns via POST /traffic (carat and color for diamonds; for your own "
        "DATASET_PATH and TARGET its first numeric and first categorical feature, or "
        "--drift), run it again (drift -> challenger -> pre-screen -> live experiment "
        "-> decision) and print a summary. State: DETHRONE_HOME/demo, wiped at the "
        "start; the stack is recorded in DETHRONE_HOME/stack.json for every command. "
        "It ends with /traffic at a=b=0.5 and no drift, the servers left running "
        "(stop them with dethrone down).",
    )
    p.add_argument("--home", default=None, help="state folder (default DETHRONE_HOME/demo)")
    p.add_argument("--mlflow-port", type=int, default=None, help="default 5000, or a free one")
    p.add_argument("--router-port", type=int, default=None, help="default 8000, or a free one")
    p.add_argument("--seed", type=int, default=7, help="base seed of the router slices")
    p.add_argument("--stop", action="store_true", help="stop the servers at the end")
    p.add_argument(
        "--drift",
        metavar="COL[,COL...]",
        help="columns to drift in run 2 (default: chosen from the data set)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 when a step failed (with the reason on stderr)."""
    # lazy: the demo pulls in requests (~0.15 s), kept off `dethrone --help`
    from dethrone.devstack.localstack import StackError
    from dethrone.simulation.demo import run_demo

    home = args.home or str(Path(Settings.from_env().dethrone_home) / "demo")
    drift = [c.strip() for c in (args.drift or "").split(",") if c.strip()] or None
    try:
        run_demo(
            home,
            mlflow_port=args.mlflow_port,
            router_port=args.router_port,
            seed=args.seed,
            stop=args.stop,
            drift=drift,
            state_home=find_home(),
        )
    except StackError as exc:
        print(f"dethrone demo: {exc}", file=sys.stderr)
        return 1
    return 0
