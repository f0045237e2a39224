"""``dethrone trigger``: run main_pipeline once with real Airflow (``airflow dags test``)."""

from __future__ import annotations

import argparse
import json
import sys
import time


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
    p.add_argument("--quiet", action="store_true", help="write Airflow's output to a log only")
    return p


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args: argparse.Namespace) -> int:
    """Run the DAG; returns Airflow's exit code (0 when the run succeeded)."""
    from dethrone.devstack.localstack import LocalStack, StackError
    from dethrone.settings import Settings

    conf = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"dethrone trigger: --param needs NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        conf[name.strip()] = _value(value.strip())
    stack = LocalStack(args.home or Settings.from_env().dethrone_home)
    try:
        stack.migrate_airflow()
        rc, log = stack.run_dag(
            conf or None, echo=not args.quiet, log_name=time.strftime("trigger-%Y%m%dT%H%M%S")
        )
    except StackError as exc:
        print(f"dethrone trigger: {exc}", file=sys.stderr)
        return 1
    print(
        f"main_pipeline {'succeeded' if rc == 0 else f'failed (exit {rc})'}"
        + (f"; log {log}" if args.quiet else "")
    )
    return rc
