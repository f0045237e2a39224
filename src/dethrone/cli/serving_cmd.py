"""``dethrone serving``: which model versions each router worker serves right now."""

from __future__ import annotations

import argparse
import json
import sys
import time

from dethrone.cli.common import emit
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``serving`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "serving",
        help="versions served by each router worker (GET /health/ready)",
        description="Asks FLASK_URL's /health/ready on new connections until every worker "
        "answered (or --tries ran out) and prints one line per worker.",
    )
    p.add_argument("--tries", type=int, default=40, help="requests at most (default 40)")
    p.add_argument("--json", action="store_true", help="print the workers' views as JSON")
    return p


def collect(url: str, tries: int, *, get=None) -> dict[str, dict]:
    """``pid -> /health/ready body`` of every worker that answered within ``tries``."""
    import requests  # lazy: requests costs ~0.15 s at CLI start

    get = get or requests.get
    views: dict[str, dict] = {}
    quiet = 0
    for _ in range(max(1, tries)):
        # A new connection each time: gunicorn hands it to whichever worker accepts it.
        body = get(
            f"{url.rstrip('/')}/health/ready", timeout=5, headers={"Connection": "close"}
        ).json()
        pid = str(body.get("pid"))
        quiet = quiet + 1 if pid in views else 0
        views[pid] = body
        if quiet >= 10:  # ten answers in a row from known workers: likely all seen
            break
        time.sleep(0.02)
    return views


def run(args: argparse.Namespace) -> int:
    """Print one line per worker; 1 when the router cannot be reached."""
    import requests  # lazy: requests costs ~0.15 s at CLI start

    url = Settings.from_env().flask_url
    try:
        views = collect(url, args.tries)
    except (requests.RequestException, ValueError) as exc:
        print(f"dethrone serving: {url} did not answer /health/ready: {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit(json.dumps(views, indent=2))
        return 0
    emit(f"{'worker pid':>10}  {'status':11} {'champion':>8} {'challenger':>10}  registry")
    for pid, view in sorted(views.items()):
        models = view.get("models", {})
        emit(
            f"{pid:>10}  {view.get('status', '?'):11} {models.get('champion') or '-':>8} "
            f"{models.get('challenger') or '-':>10}  {view.get('registry', '?')}"
            + (f"  refused {view['refused']}" if view.get("refused") else "")
        )
    return 0
