"""The one-command demo: two real ``main_pipeline`` runs against a fresh local stack.

Run 1 trains and promotes the first champion; drift on ``carat`` and ``color`` is then
set through POST /traffic (the only way drift enters); run 2 detects it, trains a
challenger, A/B tests it and decides.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dethrone.localstack import DEFAULT_PORTS, LocalStack, StackError
from dethrone.process import free_port, port_free
from dethrone.settings import Settings

BASELINE = {"a": 0.5, "b": 0.5, "data_size": 5000, "drift_cols": []}
DEMO_DRIFT = ["carat", "color"]
# What a demo folder may contain; anything else means it is not ours to delete.
_DEMO_ENTRIES = {"run", "logs", "mlflow", "router", "airflow", "staging", "mlruns"}


def _port(name: str, wanted: int | None, say: Callable[[str], None]) -> int:
    if wanted:
        return wanted
    default = DEFAULT_PORTS[name]
    if port_free(default):
        return default
    port = free_port()
    say(f"  port {default} is busy, {name} uses {port} instead")
    return port


def run_demo(home: str | Path, *, mlflow_port: int | None = None,
             router_port: int | None = None, seed: int = 7, stop: bool = False,
             say: Callable[[str], None] = print) -> dict[str, Any]:
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

    Raises
    ------
    StackError
        When a server does not start or a DAG run fails (the message names the log).
    """
    from dethrone.context import configure_mlflow
    from dethrone.registry import Registry
    from dethrone.router_client import RouterClient
    from dethrone.status import collect_status, format_status

    stack = LocalStack(home)
    stack.stop_all()
    if stack.home.exists():
        unknown = {p.name for p in stack.home.iterdir()} - _DEMO_ENTRIES
        if unknown:
            raise StackError(f"refusing to wipe {stack.home}: it holds {sorted(unknown)}, "
                             f"which the demo did not create; pass another --home")
        shutil.rmtree(stack.home)  # a demo always starts without a champion
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        out = fn()
        timings[name] = time.monotonic() - start
        say(f"  {name}: {timings[name]:.1f} s")
        return out

    say(f"dethrone demo: state in {stack.home}")
    try:
        # The three start-ups overlap: MLflow's first start (DB migrations) is the slowest.
        stack.start_mlflow(_port("mlflow", mlflow_port, say), wait=False)
        stack.start_router(_port("router", router_port, say), wait=False)
        step("airflow db migrate", stack.migrate_airflow)
        router = step("router ready", lambda: stack.wait_ready("router"))
        mlflow = step("MLflow ready", lambda: stack.wait_ready("mlflow"))
        say(f"  MLflow {mlflow.url}   router {router.url}")
        client = RouterClient(router.url, timeout=30)
        client.set_traffic(**BASELINE)
        for label, conf in (("run 1 (no champion yet)", {"seed": seed}),
                            ("run 2 (drift on carat, color)", {"seed": seed})):
            if label.startswith("run 2"):
                cfg = client.set_traffic(drift_cols=DEMO_DRIFT)
                say(f"  POST /traffic drift_cols={cfg['drift_cols']}")
            rc, log = step(label, lambda conf=conf, label=label: stack.run_dag(
                conf, log_name=label.split(" (")[0].replace(" ", "_")))
            if rc != 0:
                raise StackError(f"main_pipeline {label} failed (exit {rc}); see {log}")
        settings = Settings.from_env().replace(mlflow_tracking_uri=mlflow.url,
                                               flask_url=router.url,
                                               dethrone_home=str(stack.home))
        configure_mlflow(settings)
        status = collect_status(settings, Registry(settings))
    except BaseException:
        if stop:
            stack.stop_all()
        raise
    say("")
    say(format_status(status))
    say("")
    say(f"total {time.monotonic() - t0:.1f} s")
    say(f"MLflow UI: {mlflow.url}  (experiments '{settings.experiment_name}': training runs "
        f"and drift reports with report.html; '{settings.comparison_name}': the A/B "
        f"comparison with decision.json and errors.png; Models > {settings.model_name} "
        f"for the aliases)")
    if stop:
        stack.stop_all()
        say("servers stopped")
    else:
        say(f"servers keep running; stop them with: dethrone down --home {stack.home}")
    status["timings"] = timings
    return status
