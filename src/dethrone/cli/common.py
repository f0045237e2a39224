"""What every command shares: where output goes, how failures read, read-only databases.

The rule for failures (``dethrone.cli.main`` applies it): bad input exits 2 with one line,
an unreachable or refusing service exits 1 with one line, no traceback unless ``--debug``.
A command's result (JSON, tables) goes to stdout through :func:`emit`; everything else
(progress, MLflow's run banners, warnings) goes to stderr, because ``main`` points
``sys.stdout`` at stderr while a command runs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

from dethrone.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

#: the real stdout while main() runs a command (sys.stdout then points at stderr)
_STDOUT: list[TextIO] = []


def emit(text: str = "") -> None:
    """Print a command's result on the real stdout."""
    out = _STDOUT[-1] if _STDOUT else sys.stdout
    out.write(text + "\n")
    out.flush()


def note(text: str) -> None:
    """Print a human note (progress, hints) on stderr."""
    print(text, file=sys.stderr, flush=True)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (exit 2), not usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def share(text: str) -> float:
    """argparse type of a share strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text (or its type)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


_BAD_INPUT_NAMES = {"ArgumentError", "ArgumentTypeError", "JSONDecodeError", "NoSuchModuleError"}
_MISSING_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def exit_code(exc: BaseException) -> int:
    """2 for bad input (including a model or version that does not exist), 1 otherwise."""
    if isinstance(exc, ValueError) or type(exc).__name__ in _BAD_INPUT_NAMES:
        return EXIT_BAD_INPUT
    if type(exc).__name__ == "MlflowException" and getattr(exc, "error_code", "") in (
        _MISSING_CODES
    ):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


# --- the prediction log, read only -------------------------------------------------------
class NoDatabase(RuntimeError):
    """A read command was pointed at a database that does not exist (it never creates one)."""


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///`` URL (None for other databases or in-memory)."""
    from sqlalchemy.engine import make_url  # lazy: sqlalchemy costs ~0.4 s at CLI start

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def read_only_engine(url: str) -> Any:
    """An engine that only reads ``url``; an SQLite file must exist (never created).

    Raises
    ------
    NoDatabase
        For an SQLite file that does not exist.
    ValueError
        For a URL SQLAlchemy cannot parse.
    """
    # lazy: sqlalchemy costs ~0.4 s at CLI start
    from sqlalchemy.exc import ArgumentError

    from dethrone.store.engine import make_engine

    try:
        path = sqlite_path(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r} ({one_line(exc)})") from None
    if path is None:
        return make_engine(url)
    if not path.is_file():
        raise NoDatabase(
            f"no prediction log at {path} (nothing has been served there yet, or this is "
            "not the stack's database: see `dethrone up`, DETHRONE_HOME or --database-url)"
        )
    from sqlalchemy import create_engine  # lazy: sqlalchemy costs ~0.4 s at CLI start

    target = f"file:{path.absolute()}?mode=ro"
    # SQLite's URI form opens the file read-only: nothing is created or migrated.
    return create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(target, uri=True, check_same_thread=False)
    )


def database_url() -> str:
    """The prediction log's URL by the settings in force (after the stack-file rule)."""
    from dethrone.store.engine import database_url as url_of  # lazy: sqlalchemy (~0.4 s)

    return url_of(Settings.from_env())


def exists_or_raise(url: str) -> None:
    """Raise :class:`NoDatabase` for an SQLite URL whose file does not exist."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise NoDatabase(
            f"no prediction log at {path} (see `dethrone up`, DETHRONE_HOME or --database-url)"
        )


def restore_stdout_on_broken_pipe() -> None:
    """After a closed pipe (``| head``): send further output to /dev/null, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (*_STDOUT, sys.__stdout__):
        if stream is None:  # no stdout at all (pythonw)
            continue
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass
