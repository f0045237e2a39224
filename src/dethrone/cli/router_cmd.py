"""``dethrone router``: run the traffic router under gunicorn."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``router`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "router",
        help="serve the traffic router under gunicorn",
        description="Serve the traffic router (app/dethrone_router) under gunicorn. The data "
        "set, store folder and token come from DATASET_PATH, TARGET, "
        "ROUTER_DATA_DIR and ROUTER_TOKEN.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn workers (default ROUTER_WORKERS, else one per CPU core)",
    )
    return p


def command(args: argparse.Namespace) -> list[str]:
    """The gunicorn command line for ``args``."""
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:dethrone_router.gunicorn_conf",
        "--bind",
        f"{args.host}:{args.port}",
    ]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    return [*cmd, "dethrone_router.wsgi:app"]


def run(args: argparse.Namespace) -> int:
    """Run gunicorn in the foreground until it stops; returns its exit code."""
    if args.workers is not None and args.workers < 1:
        print("dethrone router: --workers must be at least 1", file=sys.stderr)
        return 2
    proc = subprocess.Popen(command(args), env=os.environ.copy())

    def forward(signum, frame):  # noqa: ARG001
        proc.send_signal(signum)

    # A container stop or a service manager sends SIGTERM to us, not to gunicorn.
    signal.signal(signal.SIGTERM, forward)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C already reached gunicorn (same process group); wait for its shutdown.
        return proc.wait()
