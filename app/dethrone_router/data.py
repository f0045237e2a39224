"""GET/POST /get_data and /ab_data: slices as pandas ``orient="split"`` JSON."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from flask import Blueprint, Response, g, request

from dethrone.slicing import Slice
from dethrone_router import state
from dethrone_router.validation import parse_seed

bp = Blueprint("data", __name__)

VERSION_HEADER = "X-Dethrone-Config-Version"
SEED_HEADER = "X-Dethrone-Seed"
SHARE_HEADER = "X-Dethrone-Share-A"  # the split of this answer: readers need no GET /traffic


def _serve(encode: Callable[[Slice, dict[str, Any]], bytes]) -> Response:
    st = state()
    version, cfg, plan = st.config()
    seed = request.args.get("seed")
    if seed is not None:
        seed = parse_seed(seed, query=True)
    elif cfg["seed"] is not None:
        seed = cfg["seed"]
    else:
        # A fresh seed per request, sent back in a header, so any slice can be redrawn.
        seed = int.from_bytes(os.urandom(8), "big")
    rng = np.random.default_rng(seed)
    sl = st.slicer.draw(cfg["data_size"], plan, rng)
    g.rows, g.version, g.seed = len(sl), version, seed
    resp = Response(encode(sl, cfg), mimetype="application/json")
    resp.headers[VERSION_HEADER] = str(version)
    resp.headers[SEED_HEADER] = str(seed)
    resp.headers[SHARE_HEADER] = repr(float(cfg["a"]))
    return resp


@bp.route("/get_data", methods=["GET", "POST"])
def get_data() -> Response:
    """``data_size`` rows with the configured drift, as split JSON."""
    return _serve(lambda sl, cfg: sl.split_json())


@bp.route("/ab_data", methods=["GET", "POST"])
def ab_data() -> Response:
    """The same slice as /get_data (for the same seed), split a : b into A and B."""
    return _serve(lambda sl, cfg: sl.ab_json(cfg["a"]))
