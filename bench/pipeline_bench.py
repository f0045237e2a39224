"""Wall time of each pipeline task and of a whole drift -> decision run.

Starts a local MLflow server (SQLite + local artifacts) and the router under gunicorn on
127.0.0.1 in a temporary folder, then, for each data size, runs the same functions the
DAG's tasks call (``dethrone.pipeline.steps``): the first-champion path, then, with seed-style
drift on carat and color, the drift -> challenger -> A/B -> decision path. With
``--airflow`` it also times one real ``airflow dags test`` drift run at the first size
(task functions plus Airflow's own start-up and bookkeeping).

    python bench/pipeline_bench.py [--sizes 5000 50000] [--airflow]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from datetime import datetime

from dethrone.devstack.localstack import LocalStack
from dethrone.devstack.process import free_port
from dethrone.pipeline import steps as pipeline
from dethrone.pipeline.context import PipelineContext
from dethrone.settings import Settings
from dethrone.slices.router_client import RouterClient


def timed(times: dict, name: str, fn):
    start = time.perf_counter()
    out = fn()
    times[name] = time.perf_counter() - start
    return out


def bench_size(settings: Settings, router: RouterClient, size: int) -> tuple[dict, dict]:
    s = PipelineContext.from_settings(settings.replace(model_name=f"bench-{size}"))
    router.set_traffic(a=0.5, b=0.5, data_size=size, drift_cols=[])
    first: dict[str, float] = {}
    run1 = f"bench-{size}-first"
    data = timed(
        first,
        "fetch_training_data",
        lambda: pipeline.fetch_data(s, dag_run_id=run1, purpose="training", seed=1),
    )
    trained = timed(
        first,
        "train_model",
        lambda: pipeline.train_model(s, data_uri=data["uri"], dag_run_id=run1, role="champion"),
    )
    reg = timed(
        first,
        "register_model",
        lambda: pipeline.register_model(
            s, run_id=trained["run_id"], dag_run_id=run1, role="champion"
        ),
    )
    timed(
        first,
        "set_champion",
        lambda: pipeline.first_champion(s, version=reg["version"], dag_run_id=run1),
    )

    router.set_traffic(drift_cols=["carat", "color"])
    drift: dict[str, float] = {}
    run2 = f"bench-{size}-drift"
    start = time.perf_counter()
    champ = timed(drift, "check_champion", lambda: pipeline.check_champion(s))
    current = timed(
        drift,
        "fetch_current_data",
        lambda: pipeline.fetch_data(s, dag_run_id=run2, purpose="current", seed=1),
    )
    verdict = timed(
        drift,
        "detect_drift",
        lambda: pipeline.check_drift(
            s, data_uri=current["uri"], champion_version=champ["champion_version"], dag_run_id=run2
        ),
    )
    chall = timed(
        drift,
        "train_challenger",
        lambda: pipeline.train_model(
            s, data_uri=current["uri"], dag_run_id=run2, role="challenger", holdout_share=0.2
        ),
    )
    creg = timed(
        drift,
        "register_challenger",
        lambda: pipeline.register_model(
            s, run_id=chall["run_id"], dag_run_id=run2, role="challenger", alias="challenger"
        ),
    )
    decision = timed(
        drift,
        "ab_test",
        lambda: pipeline.ab_test(
            s,
            champion_version=champ["champion_version"],
            challenger_version=creg["version"],
            dag_run_id=run2,
            holdout_uri=chall["holdout_uri"],
            seed=1,
        ),
    )
    if decision["outcome"] == "promote":
        timed(
            drift, "promote_challenger", lambda: pipeline.promote_challenger(s, decision=decision)
        )
    drift["TOTAL drift->decision"] = time.perf_counter() - start
    drift["_outcome"] = decision["outcome"]
    drift["_drifted"] = ",".join(verdict["drifted_features"])
    return first, drift


def airflow_run(stack: LocalStack, router: RouterClient, size: int) -> dict[str, float]:
    """Time one real `airflow dags test` drift run (needs a champion: runs twice)."""
    router.set_traffic(a=0.5, b=0.5, data_size=size, drift_cols=[])
    os.environ["MODEL_NAME"] = f"bench-airflow-{size}"
    try:
        stack.migrate_airflow()
        rc, _ = stack.run_dag({"seed": 3}, log_name="airflow_first")
        router.set_traffic(drift_cols=["carat", "color"])
        start = time.perf_counter()
        rc2, log = stack.run_dag({"seed": 3}, log_name="airflow_drift")
        wall = time.perf_counter() - start
    finally:
        os.environ.pop("MODEL_NAME", None)
    if rc or rc2:
        raise SystemExit(f"airflow run failed, see {log}")
    out = {"airflow dags test (wall, incl. start-up)": wall}
    stamps: dict[str, list[datetime]] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"(\S+Z) .*\[DAG TEST\] (?:starting|end task) task_id=(\S+)", line)
        if m:
            stamps.setdefault(m.group(2), []).append(
                datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
            )
    for task, ts in stamps.items():
        if len(ts) == 2:
            out[f"  task {task}"] = (ts[1] - ts[0]).total_seconds()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--airflow", action="store_true", help="also time airflow dags test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dethrone-bench-") as home:
        stack = LocalStack(home)
        try:
            t = time.perf_counter()
            stack.start_mlflow(free_port(), wait=False)
            stack.start_router(free_port(), workers=2, wait=False)
            stack.wait_ready("router")
            stack.wait_ready("mlflow")
            print(
                f"servers ready in {time.perf_counter() - t:.1f} s "
                f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
            )
            settings = Settings.from_env().replace(
                mlflow_tracking_uri=stack.info("mlflow").url,
                flask_url=stack.info("router").url,
                dethrone_home=home,
            )
            os.environ.update(
                MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri, FLASK_URL=settings.flask_url
            )
            router = RouterClient.from_settings(settings)
            results = {}
            for size in args.sizes:
                results[size] = bench_size(settings, router, size)
            print(f"\n{'task (seconds)':<40}" + "".join(f"{f'N={n:,}':>14}" for n in args.sizes))
            for part, label in ((0, "first champion"), (1, "drift -> decision")):
                print(f"-- {label}")
                for name in results[args.sizes[0]][part]:
                    if name.startswith("_"):
                        continue
                    row = "".join(
                        f"{results[n][part].get(name, float('nan')):>14.2f}" for n in args.sizes
                    )
                    print(f"{name:<40}{row}")
            for n in args.sizes:
                d = results[n][1]
                print(f"N={n:,}: drifted [{d['_drifted']}], outcome {d['_outcome']}")
            if args.airflow:
                print(f"\n-- real Airflow run, N={args.sizes[0]:,}")
                for name, sec in airflow_run(stack, router, args.sizes[0]).items():
                    print(f"{name:<44}{sec:>8.2f}")
        finally:
            stack.stop_all()


if __name__ == "__main__":
    main()
