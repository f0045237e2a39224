"""Benchmark the traffic router under gunicorn on 127.0.0.1.

Prints requests/s and p50/p99 latency of /get_data and /ab_data at data_size 5,000,
without drift and with drift on carat and color, at concurrency 1 and 8, and the
ratio to the seed router's 14-19 requests/s (DESIGN.md).

    .venv/bin/python bench/router_bench.py            # 20 s per cell, 8 cells
    .venv/bin/python bench/router_bench.py --seconds 3

The load generator is bounded: N threads, each with one keep-alive connection
(http.client) sending a request only after the previous answer arrived.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from argparse import Namespace
from pathlib import Path

import numpy as np

from dethrone.cli.router_cmd import command
from dethrone.devstack.process import free_port

SEED_RPS = (14.0, 19.0)
REPO = Path(__file__).resolve().parents[1]


def start_router(data_dir: str, port: int, workers: int, log_path: str) -> subprocess.Popen:
    """Start gunicorn with the router's config; returns once /health answers 200."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(ROUTER_DATA_DIR=data_dir)
    cmd = command(Namespace(host="127.0.0.1", port=port, workers=workers))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"router exited: see {log_path}")
        try:
            if request(port, "GET", "/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    stop_router(proc)
    raise TimeoutError("router did not become ready")


def stop_router(proc: subprocess.Popen) -> None:
    """SIGTERM gunicorn's process group by its PID, SIGKILL after 15 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """One request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def load(port: int, path: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Closed-loop load: ``concurrency`` threads, each one request at a time."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start_gate = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start_gate.wait()
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            if ok:
                latencies[i].append(time.perf_counter() - t0)
            else:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {
        "requests": len(lat),
        "errors": sum(errors),
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def server_p50(log_path: str, offset: int, path: str) -> float:
    """Median server-side duration_ms of ``path`` in the access lines after ``offset``.

    Client latency includes waiting for a CPU on a busy host; this is the time the
    router itself spent from request to response.
    """
    durations = []
    with open(log_path, "rb") as log:
        log.seek(offset)
        for line in log:
            start = line.find(b"{")
            if b"dethrone_router.access" in line and start >= 0:
                entry = json.loads(line[start:])
                if entry["path"] == path:
                    durations.append(entry["duration_ms"])
    return float(np.median(durations)) if durations else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per cell (default 20)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="gunicorn workers (default: CPU cores)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--data-size", type=int, default=5000)
    args = parser.parse_args(argv)

    scenarios = [("none", []), ("carat+color", ["carat", "color"])]
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        port = free_port()
        log_path = tmp + "/gunicorn.log"
        proc = start_router(tmp + "/data", port, args.workers, log_path)
        try:
            rows = []
            for label, cols in scenarios:
                status, _ = request(
                    port, "POST", "/traffic", {"data_size": args.data_size, "drift_cols": cols}
                )
                assert status == 200, status
                for path in ("/get_data", "/ab_data"):
                    # Warm each worker (first request after a config change pre-joins rows).
                    load(port, path, 4, 1.0)
                    for c in args.concurrency:
                        offset = os.path.getsize(log_path)
                        r = load(port, path, c, args.seconds)
                        r["server_p50"] = server_p50(log_path, offset, path)
                        rows.append((path, label, c, r))
                        print(f"# {path} drift={label} c={c}: {r['rps']:.0f} req/s", flush=True)
        finally:
            stop_router(proc)

    load_avg = os.getloadavg()
    print(
        f"\nrouter: gunicorn {args.workers} workers (gthread, 2 threads) on 127.0.0.1, "
        f"data_size {args.data_size}, {args.seconds:g} s per cell, "
        f"{os.cpu_count()} CPUs, load average after run {load_avg[0]:.2f}\n"
    )
    print(
        "| endpoint | drift | conc. | req/s | p50 ms | p99 ms | server p50 ms | errors "
        "| x seed (14-19 req/s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path, label, c, r in rows:
        ratio = f"{r['rps'] / SEED_RPS[1]:.0f}x-{r['rps'] / SEED_RPS[0]:.0f}x"
        print(
            f"| {path} | {label} | {c} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {r['server_p50']:.2f} | {r['errors']} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
