"""The ``dethrone`` console command.

Each subcommand lives in its own module of this package and provides
``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dethrone import __version__
from dethrone.cli import common, stackfile
from dethrone.cli.common import Parser, restore_stdout_on_broken_pipe

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
#: commands that create a stack or need none: they do not read the stack's state file
NO_STATE = {"up", "demo", "router", "drift"}
#: global options, accepted before the command and after its action alike
GLOBAL_OPTIONS = (
    ("--router-url", "URL", "the router (instead of FLASK_URL or the stack's state file)"),
    ("--mlflow-uri", "URI", "MLflow (instead of MLFLOW_TRACKING_URI or the state file)"),
    (
        "--database-url",
        "URL",
        "the prediction log (instead of ROUTER_DATABASE_URL or the state file)",
    ),
)


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # SUPPRESS below the top: a sub-parser's default must not overwrite a value given
    # before the command (argparse copies sub-parser defaults over the namespace).
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    for flag, metavar, text in GLOBAL_OPTIONS:
        group.add_argument(flag, metavar=metavar, default=default, help=text)
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show the traceback of a failure",
    )


def _walk(parser: argparse.ArgumentParser):
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                yield child
                yield from _walk(child)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = Parser(
        prog="dethrone",
        description="Champion/challenger A/B testing with drift detection. Commands find "
        "the stack by flag > environment > the state file `dethrone up`/`demo` write "
        "(DETHRONE_HOME/stack.json) > defaults.",
    )
    parser.add_argument("--version", action="version", version=f"dethrone {__version__}")
    _add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS.values():
        mod = importlib.import_module(f"dethrone.cli.{module}")
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    for child in _walk(parser):
        _add_globals(child, top=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dethrone`` command; returns the exit code.

    The stack's locations are resolved once (:func:`dethrone.cli.stackfile.resolve`) into
    the environment of this command, put back afterwards. While the command runs,
    ``sys.stdout`` is stderr; results reach stdout through :func:`dethrone.cli.common.emit`.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = {dest: getattr(args, dest, None) for dest in stackfile.FLAG_ENV}
    saved_env = dict(os.environ)
    real_stdout = sys.stdout
    common._STDOUT.append(real_stdout)  # noqa: SLF001 - this module owns the stack of outputs
    name = " ".join(x for x in (args.command, getattr(args, "action", None)) if x)
    try:
        updates, _ = stackfile.resolve(flags, os.environ, use_state=args.command not in NO_STATE)
        os.environ.update(updates)
        sys.stdout = sys.stderr
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        common.restore_stdout_on_broken_pipe()
        return EXIT_OK
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        if getattr(args, "debug", False):
            raise
        code = common.exit_code(exc)
        hint = "" if code == EXIT_BAD_INPUT else " (--debug shows the traceback)"
        print(f"dethrone {name}: {common.one_line(exc)}{hint}", file=sys.stderr)
        return code
    finally:
        sys.stdout = real_stdout
        common._STDOUT.pop()  # noqa: SLF001
        os.environ.clear()
        os.environ.update(saved_env)


def console() -> None:  # pragma: no cover - the console script
    """``dethrone``: :func:`main`, with a closed stdout at exit (``| head``) kept quiet."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        restore_stdout_on_broken_pipe()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
