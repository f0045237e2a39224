"""``dethrone up``: local MLflow, router and Airflow UI on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import sys

from dethrone.cli.common import emit
from dethrone.cli.stackfile import find_home, write_state
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``up`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "up",
        help="start MLflow, the router and airflow standalone locally",
        description="Start the embedded stack on 127.0.0.1 with state under DETHRONE_HOME "
        "(PID files in run/, logs in logs/). Services already running are kept.",
    )
    p.add_argument("--home", default=None, help="state folder (default DETHRONE_HOME)")
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--router-port", type=int, default=8000)
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--router-workers", type=int, default=2)
    p.add_argument(
        "--no-airflow",
        action="store_true",
        help="skip airflow standalone (dethrone trigger works without it)",
    )
    return p


def record(stack, *, written_by: str, scheduler: bool) -> str:
    """Write the state file every command reads (``<home>/stack.json``); its path."""
    from dethrone.store.engine import default_url  # lazy: sqlalchemy costs ~0.4 s at CLI start

    mlflow, router, airflow = (stack.info(n) for n in ("mlflow", "router", "airflow"))
    path = write_state(
        find_home(),
        stack_home=stack.home,
        router_url=router.url,
        mlflow_uri=mlflow.url,
        database_url=os.environ.get("ROUTER_DATABASE_URL") or default_url(stack.home / "router"),
        written_by=written_by,
        scheduler=scheduler,
        airflow_url=None if airflow is None else airflow.url,
    )
    return str(path)


def run(args: argparse.Namespace) -> int:
    """Start the services; 1 with a clear message when one cannot start."""
    # lazy: localstack pulls in requests (~0.15 s), kept off `dethrone --help`
    from dethrone.devstack.localstack import LocalStack, StackError

    stack = LocalStack(args.home or Settings.from_env().dethrone_home)
    try:
        for name, start in (
            ("mlflow", lambda: stack.start_mlflow(args.mlflow_port)),
            ("router", lambda: stack.start_router(args.router_port, workers=args.router_workers)),
            (
                "airflow",
                None if args.no_airflow else lambda: stack.start_airflow(args.airflow_port),
            ),
        ):
            if start is None:
                continue
            info = start()
            emit(f"{name:<8} {info.url:<26} pid {info.pid}  log {info.log}")
    except StackError as exc:
        print(f"dethrone up: {exc}", file=sys.stderr)
        return 1
    if not args.no_airflow:
        emit(
            f"Airflow admin password: {stack.home / 'airflow'}/"
            "simple_auth_manager_passwords.json.generated"
        )
        emit(
            "the Airflow scheduler runs: live experiments are looked at every "
            f"{Settings.from_env().experiment_check_minutes} min (EXPERIMENT_CHECK_MINUTES)"
        )
    else:
        emit("no Airflow scheduler: take looks at a live experiment with dethrone experiment look")
    path = record(stack, written_by="dethrone up", scheduler=not args.no_airflow)
    emit(f"stack recorded in {path}: every dethrone command finds it, no exports needed")
    emit(f"stop everything with: dethrone down   (router page: {stack.require('router').url}/ui/)")
    return 0
