"""``dethrone experiment start|status|stop|promote|rollback``: the live experiment by hand.

Every action is recorded on the experiment with who (``--by``, default ``$USER``) and why
(``--reason``). ``start`` accepts any registered version, also one of another registered
model (``models:/NAME/VERSION``, copied into ``MODEL_NAME`` so the gateway can serve it),
after the same offline A/B pre-screen as the pipeline unless ``--skip-prescreen``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
import time
from typing import Any

_URI = re.compile(r"models:/(?P<name>[^/]+)/(?P<version>\d+)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``experiment`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "experiment",
        help="start, inspect, stop, promote or roll back a live experiment",
        description="Live experiments on the gateway's traffic (see README 'Live "
        "experiments'). Decisions are also taken by the live_experiment DAG.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    start = sub.add_parser("start", help="start a live experiment of a registered version")
    start.add_argument("--challenger", required=True, metavar="VERSION|models:/NAME/VERSION")
    how = start.add_mutually_exclusive_group()
    how.add_argument(
        "--split", type=float, default=0.5, help="challenger's share of traffic (default 0.5)"
    )
    how.add_argument(
        "--shadow",
        action="store_true",
        help="shadow mode: the champion serves, the challenger is scored too",
    )
    start.add_argument(
        "--skip-prescreen",
        action="store_true",
        help="skip the offline A/B pre-screen on the router's /ab_data",
    )
    start.add_argument(
        "--key",
        help="idempotency key: repeating a start with the same key "
        "returns the experiment it started (default: new)",
    )
    sub.add_parser("status", help="the experiment and its rows, labels and loss per arm")
    for name, text in (
        ("stop", "end the experiment; all traffic to the champion"),
        ("promote", "promote the challenger now (with the guardrail window)"),
        ("rollback", "undo the experiment's promotion"),
    ):
        sub.add_parser(name, help=text)
    for action in sub.choices.values():
        action.add_argument("--by", default=getpass.getuser(), help="who acts (default $USER)")
        action.add_argument("--reason", default="", help="why; recorded on the experiment")
    return p


def _challenger(ctx: Any, spec: str) -> str:
    """The version number in ``MODEL_NAME`` of ``VERSION`` or ``models:/NAME/VERSION``."""
    if spec.isdigit():
        return spec
    m = _URI.fullmatch(spec)
    if m is None:
        raise ValueError(
            f"--challenger must be a version number or models:/NAME/VERSION, got {spec!r}"
        )
    if m["name"] == ctx.registry.name:
        return m["version"]
    copied = ctx.registry.client.copy_model_version(spec, ctx.registry.name)
    return str(copied.version)


def _prescreen(settings: Any, challenger: str, key: str) -> dict[str, Any]:
    from dethrone.pipeline import steps as pipeline
    from dethrone.pipeline.context import PipelineContext

    pctx = PipelineContext.from_settings(settings, check=False)
    champion = pipeline.check_champion(pctx)["champion_version"]
    if champion is None:
        raise ValueError("there is no @champion to pre-screen against")
    return pipeline.ab_test(
        pctx, champion_version=champion, challenger_version=challenger, dag_run_id=key
    )


def _start(ctx: Any, args: argparse.Namespace) -> dict[str, Any]:
    from dethrone.experiments.lifecycle import start_experiment

    key = args.key or f"cli-{args.by}-{time.time_ns()}"
    challenger = _challenger(ctx, args.challenger)
    if not args.skip_prescreen:
        screen = _prescreen(ctx.settings, challenger, key)
        if screen["outcome"] != "promote":
            raise PrescreenRejected(screen)
    return start_experiment(
        ctx,
        challenger_version=challenger,
        key=key,
        mode="shadow" if args.shadow else "ab",
        split=args.split,
        by=args.by,
        reason=args.reason,
    )


class PrescreenRejected(RuntimeError):
    def __init__(self, decision: dict[str, Any]):
        super().__init__(
            f"offline pre-screen says {decision['outcome']!r}, not 'promote': "
            + "; ".join(decision.get("reasons", []))
        )


def run(args: argparse.Namespace) -> int:
    """Print the experiment as JSON; 1 when refused or unreachable, 2 for bad input."""
    from dethrone.experiments import operator as experiment_ops
    from dethrone.experiments.lifecycle import ExperimentContext, ExperimentError
    from dethrone.registry.client import RegistryError
    from dethrone.settings import Settings
    from dethrone.slices.router_client import RouterError

    try:
        ctx = ExperimentContext.from_settings(Settings.from_env())
        if args.action == "start":
            out = _start(ctx, args)
        elif args.action == "status":
            out = experiment_ops.status(ctx)
        else:
            out = getattr(experiment_ops, args.action)(ctx, by=args.by, reason=args.reason)
    except ValueError as exc:
        print(f"dethrone experiment {args.action}: {exc}", file=sys.stderr)
        return 2
    except (ExperimentError, PrescreenRejected, RegistryError, RouterError) as exc:
        print(f"dethrone experiment {args.action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0
