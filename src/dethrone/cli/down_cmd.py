"""``dethrone down``: stop the services ``dethrone up``/``demo`` started (by PID)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dethrone.cli.common import emit
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``down`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "down",
        help="stop the local services started by dethrone up / demo",
        description="Stop every service recorded under DETHRONE_HOME/run and "
        "DETHRONE_HOME/demo/run by its PID (SIGTERM, then SIGKILL after 20 s).",
    )
    p.add_argument("--home", default=None, help="state folder (default DETHRONE_HOME)")
    return p


def run(args: argparse.Namespace) -> int:
    """Stop the services; always 0 (nothing running is not an error)."""
    from dethrone.devstack.localstack import LocalStack

    home = Path(args.home or Settings.from_env().dethrone_home)
    stopped = []
    for folder in (home, home / "demo"):
        stopped += LocalStack(folder).stop_all()
    emit("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0
