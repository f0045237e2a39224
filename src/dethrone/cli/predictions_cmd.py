"""``dethrone predictions export|stats|prune``: the prediction log and its labels."""

from __future__ import annotations

import argparse
import json
import sys

from dethrone.cli.common import NoDatabase, database_url, emit, exists_or_raise, read_only_engine
from dethrone.settings import Settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``predictions`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "predictions",
        help="export, summarise or prune the prediction log",
        description="Read the router's database (--database-url, ROUTER_DATABASE_URL, the "
        "stack's state file, or the SQLite file under ROUTER_DATA_DIR); export and stats "
        "only read it, and none of them creates one. Times: ISO (2026-11-01T00:00Z) or a duration "
        "before now (7d, 12h).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    e = sub.add_parser("export", help="write predictions joined to their labels to Parquet")
    s = sub.add_parser("stats", help="per-arm rows, label coverage and live loss")
    for q in (e, s):
        q.add_argument("--experiment", help="only rows of this experiment id")
        q.add_argument("--since", help="only rows logged at or after this time")
        q.add_argument("--until", help="only rows logged before this time")
    e.add_argument(
        "--out",
        required=True,
        metavar="FILE.parquet|DIR",
        help="output file (with --by-day: a folder or an s3://bucket/prefix)",
    )
    e.add_argument(
        "--by-day",
        action="store_true",
        help="write OUT/date=YYYY-MM-DD/part-N.parquet (a day written again is replaced)",
    )
    e.add_argument(
        "--features",
        action="store_true",
        help="with --by-day: each logged feature as a column too (a drift source)",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    r = sub.add_parser("prune", help="delete predictions (and their labels) older than AGE")
    r.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h")
    return p


def run(args: argparse.Namespace) -> int:
    """0 on success, 1 when the database cannot be reached, 2 on bad input."""
    # lazy: sqlalchemy, pandas and pyarrow (~1 s), kept off `dethrone --help`
    from sqlalchemy.exc import ArgumentError

    from dethrone.store import StoreUnavailable, make_engine
    from dethrone.store import export as ex

    engine = None
    try:
        url = database_url()
        if args.action == "prune":  # the one writer: the database must exist already
            exists_or_raise(url)
            engine = make_engine(url)
            emit(json.dumps(ex.prune(engine, older_than=args.older_than).to_dict()))
            return 0
        window = {
            "experiment": args.experiment,
            "since": ex.to_epoch(args.since),
            "until": ex.to_epoch(args.until),
        }
        engine = read_only_engine(url)
        if args.action == "export" and (args.by_day or args.out.startswith("s3://")):
            done = ex.export_by_day(
                engine, args.out, features=args.features, settings=Settings.from_env(), **window
            )
            emit(json.dumps(done.to_dict()))
            return 0
        if args.action == "export":
            if args.features:
                raise ValueError("--features needs --by-day")
            emit(json.dumps(ex.export(engine, args.out, **window).to_dict()))
            return 0
        arms = ex.stats(engine, **window)
    except (StoreUnavailable, NoDatabase) as exc:
        print(f"dethrone predictions: {exc}", file=sys.stderr)
        return 1
    except (ValueError, ArgumentError) as exc:
        print(f"dethrone predictions: {exc}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine.dispose()
    if args.json:
        emit(json.dumps([a.to_dict() for a in arms], indent=2))
    else:
        emit(format_stats(arms))
    return 0


def format_stats(arms) -> str:
    """A plain table of :func:`dethrone.store.export.stats`."""
    lines = [f"{'arm':<20} {'rows':>10} {'labelled':>10} {'coverage':>9} {'live loss':>12}"]
    for a in arms:
        loss = "-" if a.mean_loss is None else f"{a.mean_loss:.6g}"
        lines.append(f"{a.arm:<20} {a.rows:>10} {a.labelled:>10} {a.coverage:>9.1%} {loss:>12}")
    if not arms:
        lines.append("(no logged predictions)")
    return "\n".join(lines)
