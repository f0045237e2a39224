"""``dethrone experiment start|status|look|stop|promote|rollback``: the live experiment by hand.

Every action is recorded on the experiment with who (``--by``, default ``$USER``) and why
(``--reason``). ``start`` accepts any registered version, also one of another registered
model (``models:/NAME/VERSION``), after the same offline A/B pre-screen as the pipeline
unless ``--skip-prescreen``; a version of another model is pre-screened where it is and
copied into ``MODEL_NAME`` (so the gateway can serve it) once, after the pre-screen passed.
``look`` takes one look now through the lifecycle the ``live_experiment`` DAG runs, so a
hand-started experiment can be driven without Airflow.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import math
import re
import sys
import time
from typing import Any

from dethrone.cli.common import (
    database_url,
    emit,
    exists_or_raise,
    note,
    read_only_engine,
    share,
    sqlite_path,
)
from dethrone.cli.stackfile import current_state
from dethrone.registry.records import COPIED_FROM_TAG
from dethrone.settings import Settings

_URI = re.compile(r"models:/(?P<name>[^/]+)/(?P<version>\d+)")
#: the model-version tag that names the source of a copied version (copy once)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``experiment`` on the ``dethrone`` command."""
    p = subparsers.add_parser(
        "experiment",
        help="start, inspect, look at, stop, promote or roll back a live experiment",
        description="Live experiments on the gateway's traffic. Looks (and the decisions "
        "they lead to) are taken by the live_experiment DAG every EXPERIMENT_CHECK_MINUTES "
        "where an Airflow scheduler runs, or now by `dethrone experiment look`.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    start = sub.add_parser("start", help="start a live experiment of a registered version")
    start.add_argument("--challenger", required=True, metavar="VERSION|models:/NAME/VERSION")
    how = start.add_mutually_exclusive_group()
    how.add_argument(
        "--split",
        type=share,
        default=0.5,
        help="challenger's share of traffic, strictly between 0 and 1 (default 0.5)",
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
        "finishes or returns the experiment it started (default: new)",
    )
    status = sub.add_parser(
        "status",
        help="state, arms by model version, units, coverage, interval, p-value, looks",
    )
    status.add_argument("--json", action="store_true", help="print JSON (epoch times)")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until Ctrl-C",
    )
    look = sub.add_parser("look", help="take one look now, as the live_experiment DAG does")
    look.add_argument("--json", action="store_true", help="print the look as JSON")
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


# --- start ------------------------------------------------------------------------------
def _parse_challenger(spec: str) -> tuple[str | None, str]:
    """(model name or None for MODEL_NAME, version) of ``VERSION`` or ``models:/NAME/VERSION``."""
    if spec.isdigit():
        return None, spec
    m = _URI.fullmatch(spec)
    if m is None:
        raise ValueError(
            f"--challenger must be a version number or models:/NAME/VERSION, got {spec!r}"
        )
    return m["name"], m["version"]


def _existing_copy(ctx: Any, spec: str) -> str | None:
    found = ctx.registry.client.search_model_versions(
        f"name = '{ctx.registry.name}' and tags.`{COPIED_FROM_TAG}` = '{spec}'"
    )
    return str(min(int(v.version) for v in found)) if found else None


def _copy(ctx: Any, spec: str) -> str:
    """The version of ``spec`` in ``MODEL_NAME``: an earlier copy, or a new one (tagged)."""
    done = _existing_copy(ctx, spec)
    if done is not None:
        return done
    copied = ctx.registry.client.copy_model_version(spec, ctx.registry.name)
    version = str(copied.version)
    ctx.registry.client.set_model_version_tag(ctx.registry.name, version, COPIED_FROM_TAG, spec)
    return version


class _ScreenRegistry:
    """The pipeline's registry, reading one foreign version (``models:/NAME/V``) in place.

    The pre-screen of a version of another model must not copy it first (a refused start
    would leave an orphan copy); its decision is kept here and recorded on the copy.
    """

    def __init__(self, base: Any, foreign: Any, spec: str, version: str):
        self._base, self._foreign, self._spec, self._version = base, foreign, spec, version
        self.decision = None

    def model_info(self, version):
        if str(version) == self._spec:
            return self._foreign.model_info(self._version)
        return self._base.model_info(version)

    def load_model(self, version):
        if str(version) == self._spec:
            return self._foreign.load_model(self._version)
        return self._base.load_model(version)

    def record_decision(self, version, decision):
        if str(version) == self._spec:
            self.decision = decision
        else:
            self._base.record_decision(version, decision)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


def _prescreen(settings: Any, challenger: str, key: str, foreign: tuple | None) -> dict:
    # lazy: the pipeline pulls in pandas, sklearn and mlflow (~2 s), kept off `dethrone --help`
    from dethrone.pipeline import steps as pipeline
    from dethrone.pipeline.context import PipelineContext
    from dethrone.registry.client import Registry

    pctx = PipelineContext.from_settings(settings, check=False)
    screen_reg = None
    if foreign is not None:
        name, version = foreign
        screen_reg = _ScreenRegistry(
            pctx.registry, Registry(settings.replace(model_name=name)), challenger, version
        )
        pctx = dataclasses.replace(pctx, registry=screen_reg)
    champion = pipeline.check_champion(pctx)["champion_version"]
    if champion is None:
        raise ValueError("there is no @champion to pre-screen against")
    note(f"pre-screen: offline A/B test of {challenger} against v{champion} on /ab_data ...")
    out = pipeline.ab_test(
        pctx, champion_version=champion, challenger_version=challenger, dag_run_id=key
    )
    out["_recorded"] = None if screen_reg is None else screen_reg.decision
    return out


def _start(ctx: Any, args: argparse.Namespace) -> dict[str, Any]:
    # lazy: the lifecycle pulls in pandas, scipy and sqlalchemy (~1 s), kept off `--help`
    from dethrone.experiments.lifecycle import start_experiment

    key = args.key or f"cli-{args.by}-{time.time_ns()}"
    name, version = _parse_challenger(args.challenger)
    foreign = (name, version) if name is not None and name != ctx.registry.name else None
    if foreign is not None:
        # the version must exist before anything else happens (exit 2 when it does not)
        ctx.registry.client.get_model_version(name, version)
    screen = None
    if not args.skip_prescreen:
        screen = _prescreen(ctx.settings, args.challenger if foreign else version, key, foreign)
        if screen["outcome"] != "promote":
            raise PrescreenRejected(screen)
        note(f"pre-screen: promote ({'; '.join(screen.get('reasons', [])[:1])})")
    if foreign is not None:
        version = _copy(ctx, args.challenger)
        note(f"copied {args.challenger} into {ctx.registry.name} as version {version}")
        recorded = None if screen is None else screen.get("_recorded")
        if recorded is not None:
            ctx.registry.record_decision(
                version, dataclasses.replace(recorded, challenger_version=version)
            )
    try:
        return start_experiment(
            ctx,
            challenger_version=version,
            key=key,
            mode="shadow" if args.shadow else "ab",
            split=args.split,
            by=args.by,
            reason=args.reason,
        )
    except Exception:
        note(
            f"the start did not finish; the challenger is not served. Finish it with "
            f"`dethrone experiment start --challenger {args.challenger} --key {key} "
            f"--skip-prescreen`, or undo it with `dethrone experiment stop`"
        )
        raise


class PrescreenRejected(RuntimeError):
    def __init__(self, decision: dict[str, Any]):
        super().__init__(
            f"offline pre-screen says {decision['outcome']!r}, not 'promote': "
            + "; ".join(decision.get("reasons", []))
        )


# --- where looks come from, the page ---------------------------------------------------
def scheduler_running() -> bool | None:
    """True/False for the local stack's Airflow scheduler; None without a local stack."""
    # lazy: localstack pulls in requests (~0.15 s), kept off `dethrone --help`
    from dethrone.devstack.localstack import LocalStack

    state = current_state()
    if state is None or not state.get("stack_home"):
        return None
    info = LocalStack(state["stack_home"]).info("airflow-scheduler")
    return bool(info is not None and info.alive())


def how_looks_happen(settings: Any) -> str:
    """One line: whether a scheduler will take looks, and how to take one by hand."""
    running = scheduler_running()
    every = f"every {settings.experiment_check_minutes} min"
    if running:
        return f"looks: the local Airflow scheduler runs the live_experiment DAG {every}"
    if running is False:
        return (
            "looks: no Airflow scheduler runs in the local stack, so nothing looks at this "
            "experiment by itself: run `dethrone experiment look` (or `dethrone up` for the "
            f"scheduler, {every})"
        )
    return (
        f"looks: the live_experiment DAG looks {every} where an Airflow scheduler runs; "
        "`dethrone experiment look` takes one now"
    )


def page_url(settings: Any, experiment: str) -> str:
    """The experiment's page on the router."""
    return f"{settings.flask_url.rstrip('/')}/ui/experiments/{experiment}"


# --- explaining a look ------------------------------------------------------------------
def why(
    action: str, look: dict[str, Any] | None, rec: Any, reasons: list[str] | None = None
) -> str:
    """``ACTION: why`` of a look, e.g. ``continue: 71/60 units, need 100 per arm``."""
    thresholds = getattr(rec, "thresholds", None) or {}
    need = thresholds.get("min_units_per_arm")
    margin = thresholds.get("margin", 0.0)
    look = look or {}
    ua, ub = look.get("units_a") or 0, look.get("units_b") or 0
    if action in ("continue", "none") and look.get("ci_low") is None:
        if need and (ua < need or ub < need):
            return f"{action}: {ua}/{ub} units, need {need} per arm"
        return f"{action}: no labelled rows in one of the arms yet ({ua}/{ub} units)"
    if action == "continue" and need and (ua < need or ub < need):
        return f"{action}: {ua}/{ub} units, need {need} per arm"
    interval = ""
    if look.get("ci_low") is not None:
        interval = f"interval [{look['ci_low']:.4g}, {look['ci_high']:.4g}]" + (
            f", p = {look['pvalue']:.3g}" if look.get("pvalue") is not None else ""
        )
    if action == "continue":
        return (
            f"continue: {ua}/{ub} units, {interval} includes the margin {margin:g}"
            if interval
            else f"continue: {ua}/{ub} units"
        )
    first = reasons[0] if reasons else None
    detail = first or interval or f"{ua}/{ub} units"
    return f"{action}: {detail}"


# --- status -----------------------------------------------------------------------------
def _when(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(t)))


def _arm_rows(engine: Any, rec: Any) -> list[dict[str, Any]]:
    """Rows, labelled rows and units per (model version, arm) since the experiment began."""
    # lazy: sqlalchemy costs ~0.4 s, kept off `dethrone --help`
    from sqlalchemy import and_, distinct, func, select

    from dethrone.store.errors import unavailable_as_typed
    from dethrone.store.schema import feedback, predictions

    p, f = predictions, feedback
    query = (
        select(
            p.c.model_version,
            p.c.arm,
            func.count(),
            func.count(f.c.label),
            func.count(distinct(p.c.unit)),
        )
        .select_from(p.outerjoin(f, and_(f.c.request_id == p.c.request_id, f.c.row == p.c.row)))
        .where(p.c.ts >= float(rec.started_at or 0.0))
        .group_by(p.c.model_version, p.c.arm)
    )
    with unavailable_as_typed(), engine.connect() as conn:
        found = conn.execute(query).all()
    return [
        {"version": str(v), "arm": arm, "rows": n, "labelled": lab, "units": units}
        for v, arm, n, lab, units in found
    ]


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def collect_status(ctx: Any) -> dict[str, Any]:
    """Everything ``experiment status`` shows, as plain data (epoch times).

    The interval, p-value and figures are a look taken now through the same code as the
    DAG (:func:`dethrone.experiments.analysis.take_look`), without acting on it.
    """
    # lazy: pandas, scipy and sqlalchemy (~1 s), kept off `dethrone --help`
    from dethrone.experiments import analysis
    from dethrone.experiments.lifecycle import current

    rec = current(ctx)
    if rec is None:
        return {"experiment": None}
    guard = rec.state in ("guardrail", "rolling-back")
    result = None
    if rec.active and rec.state != "rolling-back":
        result, _ = analysis.take_look(ctx.engine, rec, ctx.settings, now=time.time())
    now = {} if result is None else {**analysis.look_record(result).to_dict(), **result.to_dict()}
    figures = {} if result is None else {a.model_version: a for a in result.arms}
    versions = _versions(ctx.engine, rec, figures)
    decision = result
    looks_taken = _looks(ctx, rec)
    last = looks_taken[-1]["time"] if looks_taken else None
    every = 60.0 * ctx.settings.experiment_check_minutes
    running = scheduler_running()
    action = "continue"
    if decision is not None and decision.outcome not in ("continue",):
        action = decision.outcome
    from dethrone.store.export import stats  # lazy: pandas and pyarrow, kept off `--help`

    return {
        "experiment": rec.to_dict(),
        # per arm *name* since the start, as before (kept for scripts); versions is per model
        "arms": [a.to_dict() for a in stats(ctx.engine, since=rec.started_at)],
        "phase": "guardrail" if guard else "experiment",
        "versions": versions,
        "now": now,
        "loss": None if result is None else f"{result.loss} ({result.loss_unit})",
        "why": why(action, now, rec, list(decision.reasons) if decision is not None else [])
        if rec.active
        else None,
        "last_look": last,
        "next_look": (last or time.time()) + every if rec.active and running else None,
        "scheduler": running,
        "page": page_url(ctx.settings, rec.id),
    }


def _versions(engine: Any, rec: Any, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows, labels and units per version since the start (both phases); the mean loss is
    the current look's, per version (whichever arm serves it now)."""
    by_version: dict[str, dict[str, Any]] = {}
    for row in _arm_rows(engine, rec):
        if row["version"] not in (rec.champion_version, rec.challenger_version):
            continue
        v = by_version.setdefault(
            row["version"],
            {"version": row["version"], "rows": 0, "labelled": 0, "units": 0, "arms": []},
        )
        v["rows"] += row["rows"]
        v["labelled"] += row["labelled"]
        v["units"] += row["units"]
        v["arms"].append(row["arm"])
    versions = []
    for version, role in (
        (rec.champion_version, "champion at start"),
        (rec.challenger_version, "challenger"),
    ):
        v = by_version.get(
            version, {"version": version, "rows": 0, "labelled": 0, "units": 0, "arms": []}
        )
        f = figures.get(str(version))
        v["role"] = role
        v["coverage"] = v["labelled"] / v["rows"] if v["rows"] else None
        v["mean_loss"] = _finite(f.mean_loss) if f is not None else None
        versions.append(v)
    return versions


def _looks(ctx: Any, rec: Any) -> list[dict[str, Any]]:
    looks = getattr(ctx.tracker, "looks", None)
    if callable(looks) and rec.run_id:
        try:
            return list(looks(rec))
        except Exception:  # noqa: BLE001 - the looks are a nicety of the status
            return []
    if isinstance(looks, list):  # in-memory trackers keep them as a list
        return [x for x in looks if x.get("experiment") in (None, rec.id)]
    return []


def format_status(s: dict[str, Any]) -> str:
    """The readable table of :func:`collect_status` (local times)."""
    e = s.get("experiment")
    if e is None:
        return "no live experiment has been started"
    how = f"{e['split']:.0%} of units on the challenger" if e["mode"] == "ab" else "shadow mode"
    lines = [
        f"experiment {e['id']}  state {e['state']}  ({e['mode']}: {how})",
        f"  started {_when(e['started_at'])}"
        + (f", ended {_when(e['ended_at'])}" if e.get("ended_at") else "")
        + (f", outcome {e['outcome']}" if e.get("outcome") else ""),
        f"  {'version':<9}{'role':<19}{'rows':>8}{'labelled':>10}{'coverage':>10}"
        f"{'units':>8}{'mean loss':>12}",
    ]
    for v in s["versions"]:
        cov = "-" if v["coverage"] is None else f"{v['coverage']:.1%}"
        loss = "-" if v["mean_loss"] is None else f"{v['mean_loss']:.4g}"
        lines.append(
            f"  {'v' + v['version']:<9}{v['role']:<19}{v['rows']:>8}{v['labelled']:>10}"
            f"{cov:>10}{v['units']:>8}{loss:>12}"
        )
    now = s["now"]
    if now.get("ci_low") is not None:
        lines.append(
            f"  {s['phase']} interval of the improvement (champion-arm loss minus "
            f"challenger-arm loss): [{now['ci_low']:.4g}, {now['ci_high']:.4g}]"
            + (f", p = {now['pvalue']:.3g}" if now.get("pvalue") is not None else "")
        )
    if s.get("why"):
        lines.append(f"  now: {s['why']}")
    for reason in e.get("reasons") or []:
        lines.append(f"  - {reason}")
    lines.append(
        f"  looks: {e['looks']}, last {_when(s['last_look'])}; next "
        + (
            _when(s["next_look"])
            if s.get("next_look")
            else "none scheduled here (`dethrone experiment look` takes one)"
            if e["state"] in ("running", "guardrail")
            else "-"
        )
    )
    lines.append(f"  page: {s['page']}")
    return "\n".join(lines)


# --- run ----------------------------------------------------------------------------------
def _context(read_only: bool) -> Any:
    """The experiment context. The CLI never creates the router's database (the router
    does): an SQLite file must exist, and ``status`` opens it read-only. (A look writes the
    experiment page's copy of the look, and a start the experiment's row, so they write.)"""
    # lazy: the lifecycle pulls in pandas, scipy and sqlalchemy (~1 s), kept off `--help`
    from dethrone.experiments.lifecycle import ExperimentContext

    url = database_url()
    exists_or_raise(url)
    ctx = ExperimentContext.from_settings(Settings.from_env())
    if read_only and sqlite_path(url) is not None:
        if ctx.engine is not None:  # from_settings always makes one
            ctx.engine.dispose()
        ctx = dataclasses.replace(ctx, engine=read_only_engine(url))
    return ctx


def _look(ctx: Any) -> dict[str, Any]:
    """One look through the lifecycle (the DAG's code): the experiment or its window."""
    from dethrone.experiments import lifecycle  # lazy: pandas, scipy, sqlalchemy (~1 s)

    rec = lifecycle.current(ctx)
    if rec is not None and rec.state in ("guardrail", "rolling-back"):
        out = lifecycle.check_rollback(ctx)
    else:
        out = lifecycle.evaluate_experiment(ctx)
    after = lifecycle.current(ctx)
    out["why"] = why(
        out["action"], out.get("look"), after, after.reasons if after is not None else []
    )
    return out


def run(args: argparse.Namespace) -> int:
    """JSON (or the status table) on stdout; 1 when refused or unreachable, 2 for bad input."""
    # lazy: these pull in pandas, scipy, sqlalchemy and mlflow, kept off `dethrone --help`
    from dethrone.experiments import operator as experiment_ops
    from dethrone.experiments.lifecycle import ExperimentError
    from dethrone.registry.client import RegistryError
    from dethrone.slices.router_client import RouterError

    try:
        if args.action == "start":
            _parse_challenger(args.challenger)  # bad input before any service is asked
        ctx = _context(read_only=args.action == "status")
        if args.action == "start":
            out = _start(ctx, args)
            note(how_looks_happen(ctx.settings))
            note(f"page: {page_url(ctx.settings, out['id'])}")
        elif args.action == "status":
            return _status(ctx, args)
        elif args.action == "look":
            out = _look(ctx)
            if not args.json:
                emit(
                    f"experiment {out['experiment']} ({out['state']}): {out['why']}"
                    if out.get("experiment")
                    else "no live experiment has been started"
                )
                return 0
        else:
            out = getattr(experiment_ops, args.action)(ctx, by=args.by, reason=args.reason)
    except ValueError as exc:
        print(f"dethrone experiment {args.action}: {exc}", file=sys.stderr)
        return 2
    except (ExperimentError, PrescreenRejected, RegistryError, RouterError) as exc:
        print(f"dethrone experiment {args.action}: {exc}", file=sys.stderr)
        return 1
    emit(json.dumps(out, indent=2, default=str))
    return 0


def _status(ctx: Any, args: argparse.Namespace) -> int:
    while True:
        s = collect_status(ctx)
        if args.json:
            emit(json.dumps(s, indent=2, default=str))
        else:
            if args.watch:
                emit("\033[2J\033[H" + time.strftime("%H:%M:%S") + f"  (every {args.watch:g} s)")
            emit(format_status(s))
        if not args.watch:
            return 0
        time.sleep(args.watch)
