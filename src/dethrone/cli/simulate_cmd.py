"""``dethrone simulate``: paced traffic through the router's /predict, labels to /feedback."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dethrone.cli.common import emit
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``simulate`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "simulate",
        help="send simulated prediction traffic and delayed labels to the router",
        description="Draws rows from FLASK_URL/get_data (with the router's drift), sends them "
        "to POST /predict at a fixed rate and posts the true labels (TARGET) to "
        "POST /feedback after a delay. Progress goes to stderr, the summary to "
        "stdout. Exit 0, 1 when the router is unreachable or answered nothing, "
        "2 on bad arguments.",
    )
    p.add_argument("--rate", type=float, required=True, metavar="R", help="requests per second")
    p.add_argument(
        "--duration",
        type=float,
        required=True,
        metavar="D",
        help="seconds during which requests are sent",
    )
    p.add_argument(
        "--units",
        type=int,
        metavar="N",
        help="draw a unit id (X-Dethrone-Unit) per request from N ids",
    )
    p.add_argument(
        "--label-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds from an answer to its labels (default 0)",
    )
    p.add_argument(
        "--label-coverage",
        type=float,
        default=1.0,
        metavar="P",
        help="share of rows that ever get a label (default 1)",
    )
    p.add_argument(
        "--rows-per-request", type=int, default=1, metavar="K", help="rows per request (default 1)"
    )
    p.add_argument("--max-requests", type=int, metavar="M", help="stop after M requests")
    p.add_argument("--seed", type=int, metavar="S", help="seed of rows, units and coverage")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _progress_line(view: dict[str, Any]) -> str:
    arms = ", ".join(f"{arm} {c['requests']}" for arm, c in sorted(view["per_arm"].items()))
    return (
        f"{view['seconds']:7.1f}s  requests {view['requests']}  rows {view['rows']}  "
        f"errors {view['errors']}  labels {view['feedback_sent']} accepted, "
        f"{view['feedback_errors']} refused, {view.get('pending_labels', 0)} pending"
        + (f"  arms: {arms}" if arms else "")
    )


def _summary(report) -> str:
    lines = [
        f"sent {report.requests} requests ({report.rows} rows answered) in "
        f"{report.seconds:.1f} s; {report.errors} errors; labels: "
        f"{report.feedback_sent} accepted, {report.feedback_errors} not accepted"
    ]
    if report.per_arm:
        lines.append(f"{'arm':<12}{'requests':>10}{'rows':>10}{'units':>8}")
        lines += [
            f"{arm:<12}{c['requests']:>10}{c['rows']:>10}{c['units']:>8}"
            for arm, c in sorted(report.per_arm.items())
        ]
    if report.per_version:
        lines.append(f"{'version':<12}{'requests':>10}{'rows':>10}")
        lines += [
            f"{v:<12}{c['requests']:>10}{c['rows']:>10}"
            for v, c in sorted(report.per_version.items())
        ]
    if report.error_statuses:
        lines.append(
            "errors: "
            + ", ".join(f"{kind} x{n}" for kind, n in sorted(report.error_statuses.items()))
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """0, 1 when the router cannot be reached or answered no request, 2 on bad arguments."""
    # lazy: pandas and requests (~1 s), kept off `dethrone --help`
    from dethrone.simulation.traffic import simulate
    from dethrone.slices.router_client import RouterClient, RouterError

    def progress(view: dict[str, Any]) -> None:
        if not view.get("done"):
            print(_progress_line(view), file=sys.stderr, flush=True)

    try:
        settings = Settings.from_env()
        client = RouterClient.from_settings(settings, retries=1, backoff=0.2)
        report = simulate(
            client,
            rate=args.rate,
            duration=args.duration,
            units=args.units,
            label_delay=args.label_delay,
            label_coverage=args.label_coverage,
            max_requests=args.max_requests,
            rows_per_request=args.rows_per_request,
            random_state=args.seed,
            progress=progress,
            settings=settings,
        )
    except ValueError as exc:
        print(f"dethrone simulate: {exc}", file=sys.stderr)
        return 2
    except RouterError as exc:
        print(f"dethrone simulate: {exc}", file=sys.stderr)
        return 1
    emit(json.dumps(report.to_dict(), indent=2) if args.json else _summary(report))
    if report.requests and not report.rows:
        print("dethrone simulate: the router answered no request", file=sys.stderr)
        return 1
    return 0
