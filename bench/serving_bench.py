"""Benchmark dethrone's prediction gateway against ``mlflow models serve`` in one run.

Both serve the same registered model from the same MLflow server on 127.0.0.1:

* dethrone: gunicorn, 2 workers, ``@champion`` and ``@challenger`` loaded, routing on
  (mode ``ab``, a = 0.5, a sticky unit header on every request);
* MLflow: ``mlflow models serve -m models:/<name>@champion -w 2 --env-manager local``.

The model is the demo's champion kind: dethrone's RandomForest pipeline trained on 5,000
diamonds (the challenger is the same pipeline with another seed). Prints req/s, p50 and
p99 of single-row ``/invocations`` requests at concurrency 1 and 16, rows/s for 100-row
batches, the ratios dethrone / MLflow, dethrone's mean requests per model call (the
micro-batching at work) and the resident memory of each worker.

    .venv/bin/python bench/serving_bench.py               # 10 s per cell
    .venv/bin/python bench/serving_bench.py --seconds 3
    .venv/bin/python bench/serving_bench.py --log-only    # only the prediction-log table

The prediction-log table compares, on SQLite and on PostgreSQL (the native stack's server),
a router with the log on against one with it off (``SERVING_LOG``), both running at once and
loaded in alternating halves: req/s and p99 of single-row requests at concurrency 16, and
feedback ingest (rows/s of ``POST /feedback`` with 1,000 labels per request).

The load generator is bounded: N threads, each with one keep-alive connection
(http.client) sending a request only after the previous answer arrived.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from dethrone.devstack.localstack import LocalStack, free_port, stop_process_group

NAME = "bench-serving"


def register(uri: str, n_rows: int) -> tuple[str, str, list[dict]]:
    """Train and register champion + challenger; return their versions and sample rows."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from dethrone.pipeline.training import prepare_features, train
    from dethrone.settings import Settings
    from dethrone.slices.datasets import load_diamonds

    frame = load_diamonds().sample(n_rows, random_state=0)
    mlflow.set_tracking_uri(uri)
    versions = []
    for seed in (42, 7):
        result = train(
            frame, Settings.from_env({}, random_state=seed, cv_folds=2), only=["random_forest"]
        )
        X = prepare_features(frame, result.features, result.categorical)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                result.model,
                name="model",
                input_example=X.head(5),
                signature=infer_signature(X.head(5), result.model.predict(X.head(5))),
                pip_requirements=["scikit-learn", "pandas"],
                serialization_format="cloudpickle",
            )
        versions.append(str(mlflow.register_model(info.model_uri, NAME).version))
    client = mlflow.MlflowClient(uri)
    client.set_registered_model_alias(NAME, "champion", versions[0])
    client.set_registered_model_alias(NAME, "challenger", versions[1])
    rows = X.sample(1000, random_state=1).to_dict(orient="records")
    return versions[0], versions[1], rows


def wait_http(port: int, path: str, timeout: float = 180.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"127.0.0.1:{port}{path} not ready in {timeout} s")


def load(
    port: int, bodies: list[bytes], concurrency: int, seconds: float, unit_header: bool
) -> dict[str, float]:
    """``concurrency`` keep-alive clients for ``seconds``; req/s, p50, p99 (ms), errors."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        k = i
        while time.monotonic() < stop:
            headers = {"Content-Type": "application/json"}
            if unit_header:
                headers["X-Dethrone-Unit"] = f"unit-{k}"
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body=bodies[k % len(bodies)], headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                ok = False
            latencies[i].append(time.perf_counter() - t0)
            errors[i] += not ok
            k += concurrency
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {
        "n": len(lat),
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "errors": int(sum(errors)),
    }


def alternate(
    dport: int, mport: int, bodies: list[bytes], conc: int, seconds: float
) -> tuple[dict, dict]:
    """Both servers in alternating halves, so a load spike on a shared machine hits both."""
    runs: dict[int, list[dict]] = {dport: [], mport: []}
    for _ in range(2):
        for port in (dport, mport):
            runs[port].append(load(port, bodies, conc, seconds / 2, unit_header=port == dport))
    out = []
    for port in (dport, mport):
        r = runs[port]
        out.append(
            {
                "rps": float(np.mean([x["rps"] for x in r])),
                "p50": float(np.mean([x["p50"] for x in r])),
                "p99": float(max(x["p99"] for x in r)),
                "errors": sum(x["errors"] for x in r),
            }
        )
    return out[0], out[1]


def batch_totals(port: int) -> tuple[float, float]:
    """(requests, model calls) so far, summed over arms and workers, from /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    total = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for key in total:
            if line.startswith(f"dethrone_prediction_batch_requests_{key}{{"):
                total[key] += float(line.rsplit(" ", 1)[1])
    return total["sum"], total["count"]


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory of every descendant of ``master_pid`` that serves requests."""
    import psutil

    kids = psutil.Process(master_pid).children(recursive=True)
    return sorted(round(p.memory_info().rss / 2**20, 1) for p in kids)


def cpu_seconds(roots: list[int]) -> float:
    """CPU time (user + system) of the processes ``roots`` and of all their descendants."""
    import psutil

    total = 0.0
    for root in roots:
        try:
            procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def measured_load(port: int, bodies: list[bytes], seconds: float, roots: list[int]) -> dict:
    """:func:`load` at concurrency 16, plus the CPU the ``roots`` trees spent per request
    (read after the log's flush interval, so a batch is counted with its own requests)."""
    before = cpu_seconds(roots)
    out = load(port, bodies, 16, seconds, True)
    time.sleep(1.5)  # LOG_FLUSH_SECONDS = 1
    return {**out, "cpu": cpu_seconds(roots) - before}


def bodies_of(rows: list[dict], size: int) -> list[bytes]:
    cols = list(rows[0])
    out = []
    for start in range(0, len(rows) - size + 1, size):
        chunk = rows[start : start + size]
        split = {"columns": cols, "data": [[r[c] for c in cols] for r in chunk]}
        out.append(json.dumps({"dataframe_split": split}).encode())
    return out


def _mlflow_serve(port: int, uri: str, log) -> subprocess.Popen:
    """``mlflow models serve`` of ``@champion`` with 2 workers, in its own process group."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@champion",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "2",
            "--env-manager",
            "local",
        ],
        # mlflow starts `uvicorn` from PATH: the venv's bin must be on it.
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": uri,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _post(port: int, path: str, body: object) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def feedback_ingest(port: int, rows: list[dict], n_batches: int) -> float:
    """Log ``n_batches`` x 1,000 rows, then label them 1,000 per POST; labels/s of the POSTs."""
    logged = []
    for _ in range(n_batches):
        status, body = _post(port, "/predict", {"rows": rows[:1000]})
        assert status == 200, body
        logged.append(body["request_id"])
    time.sleep(3.0)  # flushed (LOG_FLUSH_SECONDS = 1)
    started = time.perf_counter()
    for rid in logged:
        items = [{"request_id": rid, "row": r, "label": float(r)} for r in range(1000)]
        status, body = _post(port, "/feedback", items)
        assert status == 200 and body["counts"]["stored"] == 1000, body
    return 1000 * n_batches / (time.perf_counter() - started)


def log_table(ls: LocalStack, uri: str, rows: list[dict], seconds: float, home: Path) -> None:
    """The prediction log's cost on SQLite and PostgreSQL (see the module docstring)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "stack"))
    from argparse import Namespace

    from native_stack import Stack

    from dethrone.cli.router_cmd import command

    pg = Stack(home / "pg")
    pg.start_postgres()
    pg_url = (
        f"postgresql+psycopg://postgres:{pg.creds.postgres_password}@127.0.0.1:"
        f"{pg.ports.postgres}/postgres"
    )
    bodies = bodies_of(rows, 1)
    print(
        f"prediction log: 1-row /invocations at concurrency 16, {seconds:g} s per cell; "
        f"feedback: POST /feedback of 1,000 labels"
    )
    print(
        f"{'database':10} | {'off req/s':>9} {'p99 ms':>7} | {'on req/s':>8} {'p99 ms':>7} "
        f"| {'on/off':>6} | {'CPU ms/req off':>14} {'on':>6} {'on/off':>6} "
        f"| {'feedback rows/s':>15}"
    )
    procs: list[subprocess.Popen] = []
    try:
        for db, url in (("SQLite", ""), ("PostgreSQL", pg_url)):
            ports = {}
            for log in ("false", "true"):
                ports[log] = free_port()
                env = {
                    **ls.env(),
                    "MODEL_NAME": NAME,
                    "ROUTER_LOG_LEVEL": "warning",
                    "MLFLOW_TRACKING_URI": uri,
                    "SERVING_LOG": log,
                    "ROUTER_DATABASE_URL": url,
                    "LOG_FLUSH_SECONDS": "1",
                    "ROUTER_DATA_DIR": str(home / f"router-{db}-{log}"),
                }
                cmd = command(Namespace(host="127.0.0.1", port=ports[log], workers=2))
                with open(home / f"router-{db}-{log}.log", "wb") as out:
                    procs.append(
                        subprocess.Popen(
                            cmd,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
                wait_http(ports[log], "/health", proc=procs[-1])
                _post(ports[log], "/traffic", {"mode": "ab", "a": 0.5})
                wait_http(ports[log], "/health/ready")
            runs: dict[str, list[dict]] = {"false": [], "true": []}
            # CPU of the router under load, and of the database server when it has one
            # (PostgreSQL's work for the log runs outside the router's processes).
            roots = {k: [procs[i].pid] for k, i in (("false", -2), ("true", -1))}
            if url:
                roots = {k: v + [p.pid for p in pg.procs.started] for k, v in roots.items()}
            for _ in range(3):
                for log in ("false", "true"):
                    runs[log].append(measured_load(ports[log], bodies, seconds / 3, roots[log]))
            off, on = (
                {
                    "rps": float(np.mean([x["rps"] for x in runs[k]])),
                    "p99": float(max(x["p99"] for x in runs[k])),
                    "errors": sum(x["errors"] for x in runs[k]),
                    "cpu_ms": 1000 * sum(x["cpu"] for x in runs[k]) / sum(x["n"] for x in runs[k]),
                }
                for k in ("false", "true")
            )
            ingest = feedback_ingest(ports["true"], rows, 5)
            print(
                f"{db:10} | {off['rps']:9.1f} {off['p99']:7.1f} | {on['rps']:8.1f} "
                f"{on['p99']:7.1f} | {on['rps'] / off['rps']:6.2f} | {off['cpu_ms']:7.2f} "
                f"{on['cpu_ms']:6.2f} {on['cpu_ms'] / off['cpu_ms']:6.2f} | {ingest:15.0f}"
                + (
                    f"  errors off={off['errors']} on={on['errors']}"
                    if off["errors"] or on["errors"]
                    else ""
                )
            )
    finally:
        for proc in procs:
            stop_process_group(proc.pid, 15)
        pg.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell (default 10)")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--a", type=float, default=0.5, help="champion share (default 0.5)")
    parser.add_argument("--log-only", action="store_true", help="only the prediction-log table")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="dethrone-serving-bench-"))
    ls = LocalStack(home)
    mlflow_serve = None
    try:
        ls.start_mlflow(free_port())
        uri = ls.info("mlflow").url
        champ, chall, rows = register(uri, args.train_rows)
        if args.log_only:
            log_table(ls, uri, rows, args.seconds, home)
            return 0
        env = {"MODEL_NAME": NAME, "ROUTER_LOG_LEVEL": "warning", "MLFLOW_TRACKING_URI": uri}
        ls.start_router(free_port(), workers=2, extra_env=env)
        router = ls.info("router")
        post = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
        post.request(
            "POST",
            "/traffic",
            body=json.dumps({"mode": "ab", "a": args.a}),
            headers={"Content-Type": "application/json"},
        )
        assert post.getresponse().status == 200
        wait_http(router.port, "/health/ready")
        mport = free_port()
        with open(home / "mlflow-serve.log", "wb") as log:
            mlflow_serve = _mlflow_serve(mport, uri, log)
        wait_http(mport, "/ping", proc=mlflow_serve)
        cells = [("1 row", 1, 1), ("1 row", 16, 1), ("100 rows", 1, 100), ("100 rows", 16, 100)]
        print(
            f"model: dethrone RandomForest pipeline, {args.train_rows} training rows; "
            f"champion v{champ}, challenger v{chall}, mode ab, a = {args.a:g}; "
            f"{args.seconds:g} s per cell"
        )
        print(
            f"{'payload':9} {'conc':>4} | {'dethrone req/s':>14} {'p50 ms':>7} {'p99 ms':>7} "
            f"| {'mlflow req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'req/s x':>7} "
            f"{'rows/s d':>9} {'rows/s m':>9} {'req/call':>8}"
        )
        for label, conc, size in cells:
            bodies = bodies_of(rows, size)
            before = batch_totals(router.port)
            d, m = alternate(router.port, mport, bodies, conc, args.seconds)
            after = batch_totals(router.port)
            per_call = (after[0] - before[0]) / max(1.0, after[1] - before[1])
            print(
                f"{label:9} {conc:4d} | {d['rps']:14.1f} {d['p50']:7.1f} {d['p99']:7.1f} "
                f"| {m['rps']:12.1f} {m['p50']:7.1f} {m['p99']:7.1f} | "
                f"{d['rps'] / m['rps']:7.2f} {d['rps'] * size:9.0f} {m['rps'] * size:9.0f}"
                f" {per_call:8.1f}"
                + (
                    f"  errors d={d['errors']} m={m['errors']}"
                    if d["errors"] or m["errors"]
                    else ""
                )
            )
        print(
            f"memory per worker (RSS MB): dethrone {worker_rss_mb(router.pid)} "
            f"(2 models each), mlflow {worker_rss_mb(mlflow_serve.pid)}"
        )
    finally:
        if mlflow_serve is not None:
            stop_process_group(mlflow_serve.pid, 15)
        ls.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
