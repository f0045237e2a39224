"""The ``dethrone`` console command.

Each subcommand lives in its own module of this package and provides
``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand name -> module in this package
COMMANDS: dict[str, str] = {
    "drift": "drift_cmd",
    "router": "router_cmd",
    "demo": "demo_cmd",
    "up": "up_cmd",
    "down": "down_cmd",
    "status": "status_cmd",
    "rollback": "rollback_cmd",
    "traffic": "traffic_cmd",
    "trigger": "trigger_cmd",
    "predictions": "predictions_cmd",
    "experiment": "experiment_cmd",
    "serving": "serving_cmd",
    "simulate": "simulate_cmd",
}

EXIT_OK, EXIT_FOUND, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dethrone",
        description="Champion/challenger A/B testing with drift detection.",
    )
    from dethrone import __version__

    parser.add_argument("--version", action="version", version=f"dethrone {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS.values():
        mod = importlib.import_module(f"dethrone.cli.{module}")
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dethrone`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
