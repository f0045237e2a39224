"""Where every ``dethrone`` command finds the services and the prediction log.

The rule, in one place:

1. **Home.** ``DETHRONE_HOME`` when set. Otherwise, when dethrone runs from a checkout
   (``<root>/src/dethrone`` next to ``<root>/pyproject.toml``), that checkout's
   ``.dethrone/``. Otherwise (an installed package), the nearest ``.dethrone/`` holding a
   ``stack.json`` in the current folder or one of its parents, as git finds ``.git``;
   failing that, ``./.dethrone``.
2. **State file.** ``dethrone up`` and ``dethrone demo`` (so ``make demo``) write
   ``<home>/stack.json``: the router URL, the MLflow URI, the database URL of the
   prediction log, the folder of the stack and whether an Airflow scheduler runs.
3. **Precedence** for each of the three locations: a command-line flag
   (``--router-url``, ``--mlflow-uri``, ``--database-url``) > the environment
   (``FLASK_URL``, ``MLFLOW_TRACKING_URI``, ``ROUTER_DATABASE_URL``/``ROUTER_DATA_DIR``) >
   the state file > the defaults of :class:`dethrone.settings.Settings`.
   The state file counts as one unit: an environment that names any of the stack's
   locations describes its own stack, and the file is then not read at all, so one
   command never mixes two stacks (a test stack's MLflow with the demo's router).

:func:`resolve` applies the rule; :func:`dethrone.cli.main` calls it once per command.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STATE_FILE = "stack.json"
#: the environment variables that name the stack's services and log
STACK_ENV = ("FLASK_URL", "MLFLOW_TRACKING_URI", "ROUTER_DATABASE_URL", "ROUTER_DATA_DIR")
#: global flag (argparse dest) -> the environment variable it sets for the command
FLAG_ENV = {
    "router_url": "FLASK_URL",
    "mlflow_uri": "MLFLOW_TRACKING_URI",
    "database_url": "ROUTER_DATABASE_URL",
}
#: state-file key -> environment variable
STATE_ENV = {
    "router_url": "FLASK_URL",
    "mlflow_uri": "MLFLOW_TRACKING_URI",
    "database_url": "ROUTER_DATABASE_URL",
}


def checkout_root() -> Path | None:
    """The checkout this package runs from, or None for an installed package."""
    root = Path(__file__).resolve().parents[3]
    pyproject = root / "pyproject.toml"
    if (root / "src" / "dethrone").is_dir() and pyproject.exists():
        try:
            if 'name = "dethrone"' in pyproject.read_text(encoding="utf-8"):
                return root
        except OSError:
            return None
    return None


def find_home(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The dethrone home folder by the rule in this module's docstring."""
    environ = os.environ if environ is None else environ
    if environ.get("DETHRONE_HOME"):
        return Path(environ["DETHRONE_HOME"]).expanduser().absolute()
    root = checkout_root()
    if root is not None:
        return root / ".dethrone"
    here = (cwd or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / ".dethrone" / STATE_FILE).is_file():
            return folder / ".dethrone"
    return here / ".dethrone"


def read_state(home: Path) -> dict[str, Any] | None:
    """The state file under ``home`` (None when missing or unreadable)."""
    try:
        data = json.loads((Path(home) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(
    home: str | os.PathLike,
    *,
    stack_home: str | os.PathLike,
    router_url: str,
    mlflow_uri: str,
    database_url: str,
    written_by: str,
    scheduler: bool = False,
    airflow_url: str | None = None,
) -> Path:
    """Write ``<home>/stack.json`` (atomically) and return its path."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    data = {
        "router_url": router_url,
        "mlflow_uri": mlflow_uri,
        "database_url": database_url,
        "stack_home": str(Path(stack_home).absolute()),
        "scheduler": bool(scheduler),
        "airflow_url": airflow_url,
        "written_by": written_by,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = home / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def resolve(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    *,
    use_state: bool = True,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The environment updates for one command, and the state file that was used.

    Parameters
    ----------
    flags : mapping
        The global flags' values (``router_url``, ``mlflow_uri``, ``database_url``);
        None for a flag not given.
    environ : mapping
        The process environment.
    use_state : bool
        False for commands that create a stack (``up``, ``demo``) or need none.

    Returns
    -------
    (updates, state)
        ``updates`` always holds ``DETHRONE_HOME`` (the home by :func:`find_home`), the
        state file's locations when it applies, and the flags over everything.
    """
    home = find_home(environ)
    updates: dict[str, str] = {"DETHRONE_HOME": str(home)}
    state = None
    if use_state and not any(environ.get(name) for name in STACK_ENV):
        state = read_state(home)
        if state is not None:
            for key, name in STATE_ENV.items():
                if state.get(key):
                    updates[name] = str(state[key])
    for dest, name in FLAG_ENV.items():
        if flags.get(dest):
            updates[name] = str(flags[dest])
    return updates, state


def current_state(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The state file of the home in force (for commands that show where they look)."""
    return read_state(find_home(environ))
