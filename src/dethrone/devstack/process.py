"""Process control on 127.0.0.1: free ports, start, wait until ready, stop by PID.

One helper for the local stack, the native stack, the tests and the benchmarks. A
process is started as the leader of its own session so that stopping its group by the
recorded PID reaches its workers too, and nothing else on the machine is ever signalled.

>>> port = free_port()
>>> port_free(port)
True
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port the OS says is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited child is reaped)."""
    try:  # reap it first if it is an exited child of ours (else it lingers as a zombie)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie still answers kill(0); /proc tells the truth on Linux
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def start(
    cmd: Sequence[str],
    *,
    log: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen:
    """Start ``cmd`` as a session leader with stdout and stderr appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env else None,
            cwd=cwd,
            start_new_session=True,
        )


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.5,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll ``ready()`` until it is true (True), ``timeout`` passes or ``alive()`` is false.

    Exceptions raised by ``ready`` count as "not yet".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            if ready():
                return True
        except Exception:  # noqa: BLE001 - a probe that fails is simply not ready yet
            pass
        time.sleep(interval)
    return False


def stop_process_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if it outlives ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # stragglers of the group (workers) as well
    except ProcessLookupError:
        pass
    try:  # reap it if it is our child
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
