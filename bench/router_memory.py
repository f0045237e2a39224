"""Peak memory of a router worker for one huge slice (issue 14, case 4).

Starts the router under gunicorn (1 worker) on 127.0.0.1, stores a config with
``data_size`` rows and every column drifted, sends one /get_data and one /ab_data
request after the other (bodies read and thrown away), then ``--concurrent`` such
requests at once, and prints each worker's peak RSS (VmHWM) growth, the time, and
the answers (200 or 429). The baseline is the same worker after a 5,000-row slice.

    .venv/bin/python bench/router_memory.py                    # data_size 1,000,000
    .venv/bin/python bench/router_memory.py --rows 200000 --concurrent 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from argparse import Namespace
from pathlib import Path

from dethrone.cli.router_cmd import command
from dethrone.devstack.process import free_port

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"]


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def workers_of(master: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                out.append(int(entry.name))
    return out


def fetch(port: int, path: str, results: list, method: str = "GET") -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request(method, path)
    resp = conn.getresponse()
    size = 0
    while chunk := resp.read(1 << 20):
        size += len(chunk)
    results.append(
        (resp.status, size, time.perf_counter() - started, resp.getheader("Retry-After"))
    )
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ROUTER_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        env["ROUTER_DATA_DIR"] = tmp
        cmd = command(Namespace(host="127.0.0.1", port=port, workers=1))
        cmd[-1:-1] = ["--timeout", "600"]  # before the app; long requests are measured
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            for _ in range(300):
                try:
                    fetch(port, "/health", [])
                    break
                except OSError:
                    time.sleep(0.2)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(
                "POST",
                "/traffic",
                json.dumps({"data_size": 5000, "drift_cols": COLUMNS, "seed": 1}),
                {"Content-Type": "application/json"},
            )
            assert conn.getresponse().status == 200, "config refused"
            fetch(port, "/get_data", [])
            (worker,) = workers_of(proc.pid)
            base = hwm_kib(worker)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(
                "POST",
                "/traffic",
                json.dumps({"data_size": args.rows}),
                {"Content-Type": "application/json"},
            )
            assert conn.getresponse().status == 200, "config refused"
            print(f"worker peak RSS after a 5,000-row slice: {base / 1024:.0f} MiB")
            for path in ("/get_data", "/ab_data"):
                results: list = []
                fetch(port, path, results)
                status, size, seconds, _ = results[0]
                print(
                    f"{path} {args.rows:,} rows, all {len(COLUMNS)} columns drifted: "
                    f"status {status}, {size / 2**20:.0f} MiB body, {seconds:.1f} s, "
                    f"worker peak RSS +{(hwm_kib(worker) - base) / 1024:.0f} MiB"
                )
            results = []
            threads = [
                threading.Thread(target=fetch, args=(port, "/get_data", results))
                for _ in range(args.concurrent)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes = sorted(r[0] for r in results)
            print(
                f"{args.concurrent} at once: statuses {codes}, Retry-After "
                f"{sorted({r[3] for r in results if r[3]})}, slowest "
                f"{max(r[2] for r in results):.1f} s, worker peak RSS "
                f"+{(hwm_kib(worker) - base) / 1024:.0f} MiB"
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
