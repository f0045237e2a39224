"""The one-command demo: two real ``main_pipeline`` runs against a fresh local stack.

Run 1 trains and promotes the first champion; drift on two columns of the data set
(:func:`choose_drift`: ``carat`` and ``color`` for diamonds, or ``--drift COLS``) is then
set through POST /traffic (the only way drift enters); run 2 detects it, trains a
challenger and pre-screens it with the offline A/B test. With the gateway's prediction log
and the simulator present, run 2 starts a live experiment instead of promoting, and the
live loop (:mod:`dethrone.simulation.demo_live`) decides it on simulated traffic.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from dethrone.cli.stackfile import write_state
from dethrone.devstack.localstack import DEFAULT_PORTS, LocalStack, StackError
from dethrone.devstack.process import free_port, port_free
from dethrone.experiments import lifecycle as ex
from dethrone.experiments import operator as experiment_ops
from dethrone.experiments.state import stored_record
from dethrone.pipeline.context import configure_mlflow
from dethrone.registry.client import Registry
from dethrone.registry.status import collect_status, format_status
from dethrone.settings import Settings
from dethrone.simulation.demo_live import LIVE_ENV, ROUTER_ENV, format_summary, live_loop
from dethrone.slices.datasets import load_dataset
from dethrone.slices.router_client import RouterClient
from dethrone.store.engine import default_url

BASELINE: dict[str, Any] = {"a": 0.5, "b": 0.5, "data_size": 5000, "drift_cols": []}
DEMO_DRIFT = ["carat", "color"]


def choose_drift(frame: Any, target: str, wanted: list[str] | None = None) -> list[str]:
    """The columns the demo drifts: ``wanted`` (checked), else carat and color when the
    data set has them (diamonds), else its first numeric and first categorical feature
    (two numeric ones when it has no categorical).

    Raises
    ------
    ValueError
        When ``wanted`` names a column the data set lacks, or there is no feature.
    """
    features = [c for c in frame.columns if c != target]
    if wanted:
        unknown = [c for c in wanted if c not in features]
        if unknown:
            raise ValueError(
                f"--drift names {unknown}, not features of the data set (it has {features})"
            )
        return list(wanted)
    if all(c in features for c in DEMO_DRIFT):
        return list(DEMO_DRIFT)
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    other = [c for c in features if c not in numeric]
    chosen = (numeric[:1] + other[:1]) if numeric and other else (numeric or other)[:2]
    if not chosen:
        raise ValueError("the data set has no feature column to drift")
    return chosen


# What a demo folder may contain; anything else means it is not ours to delete.
_DEMO_ENTRIES = {"run", "logs", "mlflow", "router", "airflow", "staging", "mlruns", "stack.json"}


def _port(name: str, wanted: int | None, say: Callable[[str], None]) -> int:
    if wanted:
        return wanted
    default = DEFAULT_PORTS[name]
    if port_free(default):
        return default
    port = free_port()
    say(f"  port {default} is busy, {name} uses {port} instead")
    return port


def _live_capable(url: str) -> bool:
    """The simulator is installed and the router logs predictions (its health says so)."""
    if importlib.util.find_spec("dethrone.simulation.traffic") is None:  # the simulator
        return False
    try:
        return "log" in requests.get(f"{url}/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        return False


def _live(
    settings: Settings,
    stack: LocalStack,
    url: str,
    say: Callable[[str], None],
    step: Callable[[str, Callable[[], Any]], Any],
) -> dict[str, Any] | None:
    """The live loop when run 2 started an experiment (the pre-screen said promote)."""
    ctx = ex.ExperimentContext.from_settings(
        settings.replace(router_data_dir=str(stack.home / "router")), check=False
    )
    try:
        rec = ex.current(ctx)
        if rec is None or rec.state != "running":
            say("  no live experiment: the offline pre-screen did not promote the challenger")
            return None
        summary = step("live experiment", lambda: live_loop(ctx, url=url, say=say))
        if summary.get("state") == "running":
            # Undecided after the demo's rounds: stop it, so that the user's own first
            # experiment is not refused ("stop it first") and all traffic is on the champion.
            why = f"the demo ended undecided after {summary['looks']} looks"
            experiment_ops.stop(ctx, by="dethrone demo", reason=why)
            summary.update(state="stopped", decision="stopped")
            say(f"  {why}: experiment stopped, all live traffic back on the champion")
        return summary
    finally:
        if ctx.engine is not None:  # from_settings always makes one
            ctx.engine.dispose()


def run_demo(
    home: str | Path,
    *,
    mlflow_port: int | None = None,
    router_port: int | None = None,
    seed: int = 7,
    stop: bool = False,
    drift: list[str] | None = None,
    state_home: str | Path | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo in ``home`` (wiped first) and return the final status.

    Parameters
    ----------
    home : path
        State folder of the demo stack (MLflow DB and artifacts, router store, Airflow).
    mlflow_port, router_port : int, optional
        Ports on 127.0.0.1 (default 5000 and 8000, or a free port when those are busy).
    seed : int
        Base seed of the router slices (DAG param ``seed``), so the demo repeats exactly.
    stop : bool
        Stop the servers at the end (default: leave them up for the MLflow UI).
    drift : list of str, optional
        Columns to drift for run 2 (default :func:`choose_drift`).
    state_home : path, optional
        Where to write the stack's state file (``stack.json``) that every ``dethrone``
        command reads; default: not written.

    Raises
    ------
    StackError
        When a server does not start or a DAG run fails (the message names the log).
    """
    stack = _fresh_stack(home, drift)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    step = _stepper(timings, say)
    say(f"dethrone demo: state in {stack.home}")

    saved_env = {k: os.environ.get(k) for k in LIVE_ENV}
    os.environ.update(LIVE_ENV)  # the Airflow runs inherit the demo experiment's settings
    try:
        router, mlflow = _start_services(stack, mlflow_port, router_port, say, step)
        if state_home is not None:
            _record(stack, state_home)
        client = RouterClient(router.url, timeout=30)
        live = _pipeline_runs(stack, client, router.url, seed, drift, say, step)
        settings = Settings.from_env().replace(
            mlflow_tracking_uri=mlflow.url, flask_url=router.url, dethrone_home=str(stack.home)
        )
        configure_mlflow(settings)
        live_summary = _live(settings, stack, router.url, say, step) if live else None
        status = collect_status(settings, Registry(settings))
        # what a user starts from: the offline split even, no drift (the demo's drift and
        # the experiment's holdback would make the first pre-screen of your own model fail)
        left = client.set_traffic(source="dethrone demo: reset for your experiments", **BASELINE)
    except BaseException:
        if stop:
            stack.stop_all()
        else:
            say(_left_running(stack))
        raise
    finally:
        for key, value in saved_env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    _closing_lines(status, live_summary, settings, router.url, mlflow.url, left, t0, say)
    _stop_or_leave(stack, stop, say)
    status["timings"] = timings
    return status


def _fresh_stack(home: str | Path, drift: list[str] | None) -> LocalStack:
    """The demo's stack, stopped and wiped (only of what a demo creates)."""
    if drift:  # refuse a column the data set lacks before anything starts
        env = Settings.from_env()
        choose_drift(load_dataset(env.dataset_path or None).head(5), env.target, drift)
    stack = LocalStack(home)
    stack.stop_all()
    if stack.home.exists():
        unknown = {p.name for p in stack.home.iterdir()} - _DEMO_ENTRIES
        if unknown:
            raise StackError(
                f"refusing to wipe {stack.home}: it holds {sorted(unknown)}, "
                f"which the demo did not create; pass another --home"
            )
        shutil.rmtree(stack.home)  # a demo always starts without a champion
    return stack


def _stepper(
    timings: dict[str, float], say: Callable[[str], None]
) -> Callable[[str, Callable[[], Any]], Any]:
    """``step(name, fn)``: run ``fn``, record and say how long it took."""

    def step(name: str, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        out = fn()
        timings[name] = time.monotonic() - start
        say(f"  {name}: {timings[name]:.1f} s")
        return out

    return step


def _start_services(
    stack: LocalStack,
    mlflow_port: int | None,
    router_port: int | None,
    say: Callable[[str], None],
    step: Callable[[str, Callable[[], Any]], Any],
) -> tuple[Any, Any]:
    """Start MLflow and the router and migrate Airflow's database; the two services' info."""
    # The three start-ups overlap: MLflow's first start (DB migrations) is the slowest.
    stack.start_mlflow(_port("mlflow", mlflow_port, say), wait=False)
    stack.start_router(_port("router", router_port, say), wait=False, extra_env=ROUTER_ENV)
    step("airflow db migrate", stack.migrate_airflow)
    router = step("router ready", lambda: stack.wait_ready("router"))
    mlflow = step("MLflow ready", lambda: stack.wait_ready("mlflow"))
    say(f"  MLflow {mlflow.url}   router {router.url}")
    return router, mlflow


def _pipeline_runs(
    stack: LocalStack,
    client: RouterClient,
    router_url: str,
    seed: int,
    drift: list[str] | None,
    say: Callable[[str], None],
    step: Callable[[str, Callable[[], Any]], Any],
) -> bool:
    """The two pipeline runs (no champion yet, then drift); whether run 2 could go live."""
    client.set_traffic(**BASELINE)
    target = Settings.from_env().target
    drift_cols = choose_drift(client.get_data(seed=seed), target, drift)
    live = _live_capable(router_url)
    for label, conf in (
        ("run 1 (no champion yet)", {"seed": seed}),
        (f"run 2 (drift on {', '.join(drift_cols)})", {"seed": seed, "live": live}),
    ):
        if label.startswith("run 2"):
            cfg = client.set_traffic(drift_cols=drift_cols)
            say(f"  POST /traffic drift_cols={cfg['drift_cols']}")
        rc, log = step(
            label,
            functools.partial(stack.run_dag, conf, log_name=label.split(" (")[0].replace(" ", "_")),
        )
        if rc != 0:
            raise StackError(f"main_pipeline {label} failed (exit {rc}); see {log}")
    return live


def _closing_lines(
    status: dict[str, Any],
    live_summary: dict[str, Any] | None,
    settings: Settings,
    router_url: str,
    mlflow_url: str,
    left: dict[str, Any],
    t0: float,
    say: Callable[[str], None],
) -> None:
    """The status, the live loop's summary (added to ``status``), where to look next."""
    say("")
    say(format_status(status))
    say("")
    if live_summary is not None:
        say(format_summary(live_summary))
        say("")
        status["live"] = live_summary
    say(f"total {time.monotonic() - t0:.1f} s")
    say(
        f"MLflow UI: {mlflow_url}  (experiments '{settings.experiment_name}': training runs "
        f"and drift reports with report.html; '{settings.comparison_name}': the A/B "
        f"comparison with decision.json and errors.png; Models > {settings.model_name} "
        f"for the aliases)"
    )
    experiment = (status.get("live") or {}).get("experiment_id") or _experiment_id(settings)
    if experiment:
        say(f"experiment page: {router_url}/ui/experiments/{experiment}")
    say(f"experiments: {router_url}/ui/")
    mode = left.get("mode", "champion")
    say(
        f"left for you: /traffic a={left.get('a')} b={left.get('b')} (the offline A/B split), "
        f"drift_cols={left.get('drift_cols')} (no drift), serving mode {mode}"
        + (" (all live traffic to @champion)" if mode == "champion" else "")
    )


def _stop_or_leave(stack: LocalStack, stop: bool, say: Callable[[str], None]) -> None:
    """Stop the servers, or say what is left running and how looks happen without Airflow."""
    if stop:
        stack.stop_all()
        say("servers stopped")
    else:
        say(_left_running(stack))
        say(
            "no Airflow scheduler runs: look at an experiment you start with "
            "`dethrone experiment look`, or add the scheduler with "
            f"`dethrone up --home {stack.home}`"
        )


def _experiment_id(settings: Settings) -> str | None:
    try:
        rec = stored_record(Registry(settings))
    except Exception:  # noqa: BLE001 - only a link in the closing lines
        return None
    return None if rec is None else rec.id


def _left_running(stack: LocalStack) -> str:
    """What the demo leaves running (name, URL, PID) and how to stop it."""
    running = [
        f"{name} {info.url or ''} (pid {info.pid})".replace("  ", " ")
        for name, info in stack.services().items()
        if info is not None and info.alive()
    ]
    if not running:
        return "nothing left running"
    return (
        "left running: " + ", ".join(running) + "\nstop them with: dethrone down"
        f"   (or dethrone down --home {stack.home})"
    )


def _record(stack: LocalStack, state_home: str | Path) -> None:
    """Write the state file every ``dethrone`` command reads."""
    write_state(
        state_home,
        stack_home=stack.home,
        router_url=stack.require("router").url,
        mlflow_uri=stack.require("mlflow").url,
        database_url=os.environ.get("ROUTER_DATABASE_URL") or default_url(stack.home / "router"),
        written_by="dethrone demo",
        scheduler=False,
    )
