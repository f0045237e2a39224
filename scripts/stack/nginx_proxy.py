"""nginx in front of the router, natively (the same config as docker-compose's nginx).

``render(workdir, listen=..., upstream=...)`` writes a self-contained nginx.conf whose
pid file, logs and temp folders live in ``workdir`` (no root, no /var), including
``nginx/router.conf.template`` with the two placeholders filled in; ``command(conf)``
is the command that runs it in the foreground. ``ensure-nginx.sh`` installs Debian's
nginx when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "nginx" / "router.conf.template"
ENSURE = Path(__file__).resolve().parent / "ensure-nginx.sh"

_MAIN = """\
{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/router.conf;
}}
"""


def nginx_binary(install: bool = True) -> str | None:
    """Path of nginx; with ``install``, run ensure-nginx.sh first when it is missing."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found or not install:
        return found
    subprocess.run(["sh", str(ENSURE)], check=True)
    return nginx_binary(install=False)


def render(workdir: Path, *, listen: str, upstream: str) -> Path:
    """Write ``workdir/nginx.conf`` (and router.conf) and return the former's path."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    server = (
        TEMPLATE.read_text()
        .replace("${ROUTER_UPSTREAM}", upstream)
        .replace("${NGINX_LISTEN}", listen)
    )
    (workdir / "router.conf").write_text(server)
    conf = workdir / "nginx.conf"
    # Started by a normal user, nginx's workers run as that user; started by root they
    # would switch to nobody, who cannot enter a private temporary folder to write the
    # buffered answers. Keep them as the invoking user in both cases.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf.write_text(_MAIN.format(work=workdir, user=user))
    return conf


def command(conf: Path, binary: str = "nginx") -> list[str]:
    """Run nginx with ``conf`` in the foreground (errors to the workdir's log)."""
    work = str(Path(conf).parent)
    return [binary, "-p", work, "-e", f"{work}/error.log", "-c", str(conf), "-g", "daemon off;"]
