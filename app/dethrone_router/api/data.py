"""GET/POST /get_data and /ab_data: slices as pandas ``orient="split"`` JSON.

A slice of up to :data:`CHUNK_ROWS` rows is built and sent in one piece. A bigger
one is streamed: its row positions are drawn at once (8 bytes a row), its rows in
pieces of :data:`CHUNK_ROWS`, each encoded and sent before the next is drawn, so a
worker's memory per request stays bounded whatever ``data_size`` is. Slices above
``ROUTER_LARGE_SLICE_ROWS`` also take one of ``ROUTER_MAX_LARGE_SLICES`` slots of
their worker for as long as they stream; without a free slot the answer is 429 with
``Retry-After``, so large slices cannot starve the worker's threads.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, g, request

from dethrone.slices.slicing import Slicer, ab_sizes
from dethrone_router.auth import require_read
from dethrone_router.errors import ApiError
from dethrone_router.state import state
from dethrone_router.validation import parse_seed

bp = Blueprint("data", __name__)

VERSION_HEADER = "X-Dethrone-Config-Version"
SEED_HEADER = "X-Dethrone-Seed"
SHARE_HEADER = "X-Dethrone-Share-A"  # the split of this answer: readers need no GET /traffic
#: Rows drawn and encoded at a time when streaming (about 40 MiB with every column drifted).
CHUNK_ROWS = 25_000
#: Rows per second a worker streams with every column drifted (measured; for Retry-After).
_ROWS_PER_SECOND = 250_000

_slots_lock = threading.Lock()


def _large_slot(limit: int) -> threading.BoundedSemaphore:
    # One semaphore per app, i.e. per worker process (gunicorn builds the app after fork).
    with _slots_lock:
        return current_app.extensions.setdefault(
            "dethrone_router.large_slots", threading.BoundedSemaphore(limit)
        )


def _seed(cfg: dict[str, Any]) -> int:
    seed = request.args.get("seed")
    if seed is not None:
        return parse_seed(seed, query=True)
    if cfg["seed"] is not None:
        return cfg["seed"]
    # A fresh seed per request, sent back in a header, so any slice can be redrawn.
    return int.from_bytes(os.urandom(8), "big")


def _split_chunks(
    slicer: Slicer, index: np.ndarray, start: int, stop: int, plan, rng
) -> Iterator[bytes]:
    """``{"columns", "index", "data"}`` of rows ``start:stop``, drawn piece by piece."""
    yield b"".join(
        (
            b'{"columns":',
            orjson.dumps(slicer.columns),
            b',"index":',
            orjson.dumps(index[start:stop], option=orjson.OPT_SERIALIZE_NUMPY),
            b',"data":[',
        )
    )
    for lo in range(start, stop, CHUNK_ROWS):
        rows = slicer.draw_at(index[lo : min(stop, lo + CHUNK_ROWS)], plan, rng).rows_json()
        yield (b"," + rows) if lo > start else rows
    yield b"]}"


def _stream(slicer: Slicer, ab: bool, cfg: dict[str, Any], plan, rng) -> Iterator[bytes]:
    # Runs after the view returned (outside the app context): it gets what it needs.
    index = slicer.sample_index(cfg["data_size"], rng)
    n = len(index)
    if not ab:
        yield from _split_chunks(slicer, index, 0, n, plan, rng)
        return
    n_a, _ = ab_sizes(n, cfg["a"])
    yield b'{"a_data":'
    yield from _split_chunks(slicer, index, 0, n_a, plan, rng)
    yield b',"b_data":'
    yield from _split_chunks(slicer, index, n_a, n, plan, rng)
    yield b"}"


def _serve(ab: bool) -> Response:
    require_read()
    st = state()
    version, cfg, plan = st.config()
    seed = _seed(cfg)
    rng = np.random.default_rng(seed)
    size = cfg["data_size"]
    g.rows, g.version, g.seed = size, version, seed
    if size <= CHUNK_ROWS:
        # Small slices in one piece: byte-identical to earlier releases for a seed.
        sl = st.slicer.draw(size, plan, rng)
        resp = Response(
            sl.ab_json(cfg["a"]) if ab else sl.split_json(), mimetype="application/json"
        )
    else:
        release = _take_slot(size) if size > st.settings.router_large_slice_rows else None
        resp = Response(_stream(st.slicer, ab, cfg, plan, rng), mimetype="application/json")
        if release is not None:
            # Called when the server is done with the body, also if the client left.
            resp.call_on_close(release)
    resp.headers[VERSION_HEADER] = str(version)
    resp.headers[SEED_HEADER] = str(seed)
    resp.headers[SHARE_HEADER] = repr(float(cfg["a"]))
    return resp


def _take_slot(size: int):
    limit = state().settings.router_max_large_slices
    slot = _large_slot(limit)
    if not slot.acquire(blocking=False):
        wait = max(1, math.ceil(size / _ROWS_PER_SECOND))
        raise ApiError(
            429,
            "too_many_large_slices",
            f"this worker already serves {limit} slice(s) of more than "
            f"{state().settings.router_large_slice_rows} rows; retry in about "
            f"{wait} s or lower data_size",
            "data_size",
            {"Retry-After": str(wait)},
        )
    done = threading.Event()

    def release() -> None:
        if not done.is_set():
            done.set()
            slot.release()

    return release


@bp.route("/get_data", methods=["GET", "POST"])
def get_data() -> Response:
    """``data_size`` rows with the configured drift, as split JSON."""
    return _serve(ab=False)


@bp.route("/ab_data", methods=["GET", "POST"])
def ab_data() -> Response:
    """The same slice as /get_data (for the same seed), split a : b into A and B."""
    return _serve(ab=True)
