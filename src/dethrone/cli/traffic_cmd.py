"""``dethrone traffic get|set``: read or change the router's traffic config."""

from __future__ import annotations

import argparse
import json
import sys

from dethrone.cli.common import emit
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``traffic`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "traffic",
        help="get or set the router's a/b split, data size and drift",
        description="GET or POST /traffic on FLASK_URL (POST sends ROUTER_TOKEN).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("get", help="print the current config as JSON")
    s = sub.add_parser("set", help="update some keys (the router validates the result)")
    s.add_argument("--a", type=float, help="share of arm A (b becomes 1 - a)")
    s.add_argument("--data-size", type=int, help="rows per slice")
    s.add_argument(
        "--drift",
        metavar="COL[,COL...]",
        help="columns to drift with the seed's kind; '' clears drift",
    )
    s.add_argument("--json", dest="raw", metavar="BODY", help="a raw JSON body instead")
    s.add_argument(
        "--source",
        metavar="TEXT",
        help="who or what makes the change (X-Dethrone-Source; GET /traffic/history keeps it)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Print the (new) config; 1 when the router refuses or cannot be reached."""
    # lazy: pandas and requests (~1 s), kept off `dethrone --help`
    from dethrone.slices.router_client import RouterClient, RouterError

    client = RouterClient.from_settings(Settings.from_env(), retries=1)
    try:
        if args.action == "get":
            out = client.get_traffic()
        else:
            body = json.loads(args.raw) if args.raw else {}
            if not isinstance(body, dict) or "source" in body:
                # the source of a change is a header (GET /traffic/history keeps it), not a key
                print(
                    "dethrone traffic set: BODY must be a JSON object of config keys "
                    "(give the source of the change with --source)",
                    file=sys.stderr,
                )
                return 2
            if args.a is not None:
                body.update(a=args.a, b=round(1.0 - args.a, 12))
            if args.data_size is not None:
                body["data_size"] = args.data_size
            if args.drift is not None:
                body["drift_cols"] = [c.strip() for c in args.drift.split(",") if c.strip()]
            if not body:
                print("dethrone traffic set: nothing to set (see --help)", file=sys.stderr)
                return 2
            out = client.set_traffic(source=args.source, **body)
    except (RouterError, json.JSONDecodeError) as exc:
        print(f"dethrone traffic: {exc}", file=sys.stderr)
        return 1
    emit(json.dumps(out, indent=2))
    return 0
