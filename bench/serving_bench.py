"""Benchmark dethrone's prediction gateway against ``mlflow models serve`` in one run.

All serve the same registered model from the same MLflow server on 127.0.0.1:

* dethrone, twice: ``SERVING_COMPILE=auto`` (compiled scoring) and ``off`` (the model's own
  ``predict``); gunicorn, 2 workers, ``@champion`` and ``@challenger`` loaded, routing on
  (mode ``ab``, a = 0.5, a unit header on every request), prediction log on (SQLite);
* MLflow: ``mlflow models serve -m models:/<name>@champion -w 2 --env-manager local``.

The model is the demo's champion kind: dethrone's RandomForest pipeline trained on 5,000
diamonds (the challenger is the same pipeline with another seed), registered with a sample
of its training rows as ``data/training.parquet`` (as the training pipeline logs it: the
reference rows compiled scoring is verified on).

Load comes from ``wrk`` (C, one event-loop thread: not Python threads competing with the
servers; installed by ``scripts/stack/ensure-wrk.sh``), a Lua script cycling through
pre-made ``/invocations`` bodies. Each cell - 1 row at concurrency 1 and 16, 100-row
batches at 1 and 16 - runs every server in turn (alternating halves, so a load spike on a
shared machine hits all) and reports req/s, p50 and p99 from wrk, and the **server CPU per
request**: utime + stime of the server's whole process tree (``/proc/<pid>/stat``), read
before and after the cell (after the log's flush interval) and divided by the requests wrk
completed; the same measure for every server. Ratios are dethrone / MLflow. Prints the
machine's load average, dethrone's requests per model call and the resident memory of each
worker (two models loaded and compiled).

    .venv/bin/python bench/serving_bench.py               # 6 s per cell and server
    .venv/bin/python bench/serving_bench.py --seconds 3
    .venv/bin/python bench/serving_bench.py --log-only    # only the prediction-log table

The prediction-log table compares, on SQLite and on PostgreSQL (the native stack's server),
a router with the log on against one with it off (``SERVING_LOG``), both running at once and
loaded in alternating halves: req/s and p99 of single-row requests at concurrency 16, and
feedback ingest (rows/s of ``POST /feedback`` with 1,000 labels per request); its load
generator is N Python threads, each with one keep-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
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
            # the training rows, as log_training_run stores them (compiled scoring's
            # reference rows come from here)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "training.parquet"
                frame.to_parquet(path)
                mlflow.log_artifact(str(path), "data")
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


WRK_LUA = r"""
-- Cycle through pre-made bodies (one per line of BODIES), a unit header per request.
local bodies, n, i = {}, 0, 0
local unit = os.getenv("WRK_UNIT_HEADER") == "1"
for line in io.lines(os.getenv("WRK_BODIES")) do n = n + 1; bodies[n] = line end
function request()
  i = i + 1
  local headers = {["Content-Type"] = "application/json"}
  if unit then headers["X-Dethrone-Unit"] = "unit-" .. i end
  return wrk.format("POST", "/invocations", headers, bodies[(i % n) + 1])
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"seconds\": %f, \"p50\": %f, \"p99\": %f, " ..
    "\"non2xx\": %d, \"socket_errors\": %d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def ensure_wrk() -> str:
    """The ``wrk`` binary (installed from Debian by scripts/stack/ensure-wrk.sh if missing)."""
    found = shutil.which("wrk")
    if found is None:
        script = Path(__file__).resolve().parents[1] / "scripts" / "stack" / "ensure-wrk.sh"
        subprocess.run(["sh", str(script)], check=True)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (scripts/stack/ensure-wrk.sh)")
    return found


def tree_cpu(root: int) -> float:
    """utime + stime (seconds) of ``root`` and every descendant, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(pid, 0.0) for pid in tree)


def tree_rss_mb(root: int) -> list[float]:
    """Resident memory (MB) of the leaf processes under ``root`` (the serving workers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    leaves = [p for p in tree if not any(parents.get(c) == p for c in tree)]
    out = []
    for pid in leaves:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        if found:
            out.append(round(int(found.group(1)) / 1024, 1))
    return sorted(out)


def wrk_run(
    wrk: str, port: int, bodies_file: Path, conc: int, seconds: float, unit: bool, lua: Path
) -> dict:
    """One wrk run: requests, seconds, p50/p99 (ms), errors."""
    env = {**os.environ, "WRK_BODIES": str(bodies_file), "WRK_UNIT_HEADER": "1" if unit else "0"}
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{conc}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}/invocations",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    return json.loads(line[len("WRKJSON ") :])


def measure(
    wrk: str, server: dict, bodies_file: Path, conc: int, seconds: float, lua: Path
) -> dict:
    """A wrk run against ``server`` with the CPU its process tree spent per request (read
    after the log's flush interval so the flush of the cell's rows is counted with it)."""
    before = tree_cpu(server["pid"])
    res = wrk_run(wrk, server["port"], bodies_file, conc, seconds, server["unit"], lua)
    time.sleep(1.2)  # LOG_FLUSH_SECONDS = 1 (the same pause for every server)
    res["cpu"] = tree_cpu(server["pid"]) - before
    return res


def cell(wrk: str, servers: list[dict], bodies_file: Path, conc: int, seconds: float, lua):
    """Every server in turn, twice (alternating halves); totals per server."""
    runs: dict[str, list[dict]] = {s["name"]: [] for s in servers}
    for _ in range(2):
        for server in servers:
            runs[server["name"]].append(measure(wrk, server, bodies_file, conc, seconds / 2, lua))
    out = {}
    for name, r in runs.items():
        n = sum(x["requests"] for x in r)
        out[name] = {
            "rps": n / sum(x["seconds"] for x in r),
            "p50": float(np.mean([x["p50"] for x in r])),
            "p99": float(max(x["p99"] for x in r)),
            "cpu_ms": 1000 * sum(x["cpu"] for x in r) / max(1, n),
            "errors": sum(x["non2xx"] + x["socket_errors"] for x in r),
        }
    return out


def start_router(ls: LocalStack, uri: str, home: Path, compile_mode: str) -> dict:
    from argparse import Namespace

    from dethrone.cli.router_cmd import command

    port = free_port()
    env = {
        **ls.env(),
        "MODEL_NAME": NAME,
        "ROUTER_LOG_LEVEL": "warning",
        "MLFLOW_TRACKING_URI": uri,
        "SERVING_COMPILE": compile_mode,
        "LOG_FLUSH_SECONDS": "1",
        "ROUTER_DATA_DIR": str(home / f"router-{compile_mode}"),
    }
    cmd = command(Namespace(host="127.0.0.1", port=port, workers=2))
    with open(home / f"router-{compile_mode}.log", "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return {"name": f"compile {compile_mode}", "port": port, "pid": proc.pid, "unit": True}


def scoring_view(port: int) -> dict:
    """``/health``'s ``serving.scoring`` of the worker that answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    return json.loads(conn.getresponse().read())["serving"]["scoring"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per cell and server")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--a", type=float, default=0.5, help="champion share (default 0.5)")
    parser.add_argument("--log-only", action="store_true", help="only the prediction-log table")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="dethrone-serving-bench-"))
    ls = LocalStack(home)
    procs: list[int] = []
    try:
        ls.start_mlflow(free_port())
        uri = ls.info("mlflow").url
        champ, chall, rows = register(uri, args.train_rows)
        if args.log_only:
            log_table(ls, uri, rows, args.seconds, home)
            return 0
        wrk = ensure_wrk()
        lua = home / "bodies.lua"
        lua.write_text(WRK_LUA)
        servers = [start_router(ls, uri, home, mode) for mode in ("auto", "off")]
        procs += [s["pid"] for s in servers]
        for server in servers:
            wait_http(server["port"], "/health", timeout=300)
            _post(server["port"], "/traffic", {"mode": "ab", "a": args.a})
            wait_http(server["port"], "/health/ready", timeout=300)
        mport = free_port()
        with open(home / "mlflow-serve.log", "wb") as log:
            mlflow_serve = _mlflow_serve(mport, uri, log)
        procs.append(mlflow_serve.pid)
        wait_http(mport, "/ping", proc=mlflow_serve, timeout=300)
        servers.append({"name": "mlflow", "port": mport, "pid": mlflow_serve.pid, "unit": False})
        time.sleep(3)  # every worker has loaded and compiled both models
        for server in servers[:2]:
            view = scoring_view(server["port"])
            print(
                f"dethrone {server['name']}: "
                + "; ".join(
                    f"@{a} v{v['version']} compiled={v['compiled']} ({v['reason']})"
                    for a, v in view.items()
                )
            )
        print(
            f"model: dethrone RandomForest pipeline, {args.train_rows} training rows; "
            f"champion v{champ}, challenger v{chall}, mode ab, a = {args.a:g}; "
            f"{args.seconds:g} s per cell and server (2 alternating halves); wrk -t1; "
            f"{os.cpu_count()} cores"
        )
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        head = (
            f"{'payload':8} {'conc':>4} {'server':12} | {'req/s':>7} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'CPU ms/req':>10} | {'req/s x':>7} {'CPU x':>6} "
            f"{'p99 x':>6} | {'req/call':>8}"
        )
        print(head)
        print("-" * len(head))
        cells = [("1 row", 1, 1), ("1 row", 16, 1), ("100 rows", 1, 100), ("100 rows", 16, 100)]
        for label, conc, size in cells:
            bodies_file = home / f"bodies-{size}.jsonl"
            bodies_file.write_bytes(b"\n".join(bodies_of(rows, size)) + b"\n")
            before = {s["name"]: batch_totals(s["port"]) for s in servers[:2]}
            res = cell(wrk, servers, bodies_file, conc, args.seconds, lua)
            m = res["mlflow"]
            for server in servers:
                r = res[server["name"]]
                per_call = ""
                if server["name"] != "mlflow":
                    after = batch_totals(server["port"])
                    b = before[server["name"]]
                    per_call = f"{(after[0] - b[0]) / max(1.0, after[1] - b[1]):8.1f}"
                ratio = (
                    f"{r['rps'] / m['rps']:7.2f} {r['cpu_ms'] / m['cpu_ms']:6.3f} "
                    f"{r['p99'] / m['p99']:6.2f}"
                    if server["name"] != "mlflow"
                    else f"{'':7} {'':6} {'':6}"
                )
                print(
                    f"{label:8} {conc:4d} {server['name']:12} | {r['rps']:7.1f} "
                    f"{r['p50']:7.2f} {r['p99']:7.2f} {r['cpu_ms']:10.2f} | {ratio} | "
                    f"{per_call:>8}" + (f"  errors={r['errors']}" if r["errors"] else "")
                )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for server in servers:
            print(f"memory per worker (RSS MB), {server['name']}: {tree_rss_mb(server['pid'])}")
        print("(dethrone workers hold @champion and @challenger; mlflow's one model)")
    finally:
        for pid in procs:
            stop_process_group(pid, 15)
        ls.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
