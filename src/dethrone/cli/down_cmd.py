"""``dethrone down``: stop the services ``dethrone up``/``demo`` started (by PID)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dethrone.cli.common import emit
from dethrone.cli.stackfile import STATE_FILE, find_home, read_state
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``down`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "down",
        help="stop the local services started by dethrone up / demo",
        description="Stop every service recorded under DETHRONE_HOME/run, "
        "DETHRONE_HOME/demo/run and the stack of DETHRONE_HOME/stack.json by its PID "
        "(SIGTERM, then SIGKILL after 20 s), and remove stack.json.",
    )
    p.add_argument("--home", default=None, help="state folder (default DETHRONE_HOME)")
    return p


def run(args: argparse.Namespace) -> int:
    """Stop the services; always 0 (nothing running is not an error)."""
    # lazy: localstack pulls in requests (~0.15 s), kept off `dethrone --help`
    from dethrone.devstack.localstack import LocalStack

    home = Path(args.home or Settings.from_env().dethrone_home)
    folders = [home, home / "demo"]
    state = read_state(find_home()) if args.home is None else None
    if state and state.get("stack_home"):
        folders.append(Path(state["stack_home"]))
    stopped, seen = [], set()
    for folder in folders:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            stopped += LocalStack(folder).stop_all()
    if state is not None:
        (find_home() / STATE_FILE).unlink(missing_ok=True)
    emit("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0
