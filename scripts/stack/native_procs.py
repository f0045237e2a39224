"""Start and stop the native stack's processes by PID.

Each service runs in its own session (process group led by the PID we started), so a
stop reaches gunicorn or Airflow workers too, and nothing else on the machine is touched.
Ports are picked free on 127.0.0.1 just before use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from dethrone.devstack.process import free_port  # noqa: F401 - re-exported for native_stack


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 15.0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Procs:
    """The processes this run started, stopped in reverse order."""

    logdir: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 15.0,
    ) -> Proc:
        log = self.logdir / f"{name}.log"
        out = open(log, "ab")
        try:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **_as_user(user),
            )
        finally:
            out.close()
        proc = Proc(name, popen, log, stop_signal, stop_timeout)
        self.started.append(proc)
        return proc

    def run(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        timeout: float = 300,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Run a one-shot command to completion; its output goes to the log folder."""
        log = self.logdir / f"{name}.log"
        with open(log, "ab") as out:
            result = subprocess.run(
                argv,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                **_as_user(user),
            )
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{name} failed with exit code {result.returncode}:\n{tail}")

    def pids(self) -> set[int]:
        """PIDs of every live process we started and of their descendants."""
        out: set[int] = set()
        for proc in self.started:
            try:
                root = psutil.Process(proc.pid)
                out.add(root.pid)
                out.update(child.pid for child in root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return out

    def stop(self) -> list[str]:
        """Stop everything started, newest first; returns the slow or killed ones, timed."""
        notes: list[str] = []
        for proc in reversed(self.started):
            began = time.monotonic()
            killed = _stop(proc)
            took = time.monotonic() - began
            if killed or took > 3:
                notes.append(f"{proc.name} {took:.0f}s" + (" SIGKILL" if killed else ""))
        self.started.clear()
        return notes


def _as_user(user: str | None) -> dict:
    # Drop root's supplementary groups too, not only the uid.
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def _stop(proc: Proc) -> bool:
    # Descendants are collected first: a worker that outlives its parent leaves the
    # process group reachable only by its own PID.
    try:
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    if proc.popen.poll() is None:
        _signal_group(proc.pid, proc.stop_signal)
        try:
            proc.popen.wait(timeout=proc.stop_timeout)
        except subprocess.TimeoutExpired:
            pass
    needed_kill = False
    for pid in family:
        try:
            p = psutil.Process(pid)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                p.kill()
                needed_kill = True
        except psutil.NoSuchProcess:
            continue
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        needed_kill = True
    return needed_kill


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    proc: Proc | None = None,
    interval: float = 1.0,
) -> None:
    """Poll ``check`` until it is true; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} while waiting "
                f"for {what}:\n{proc.tail()}"
            )
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(interval)
    tail = f"\n{proc.tail()}" if proc is not None else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last error: {last}){tail}")


def http_ok(url: str, *, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == status
        except urllib.error.HTTPError as exc:
            return exc.code == status

    return check


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", port)) == 0

    return check
