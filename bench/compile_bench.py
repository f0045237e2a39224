"""Compiled scoring vs the model's own predict, on the demo champion kind.

The model: dethrone's RandomForest pipeline (``training.build_preprocessor`` + a 40-tree
``RandomForestRegressor`` with the training module's settings) on 5,000 diamonds. Prints
the per-call time of the original ``predict`` and of the compiled path for 1, 16, 64 and
256 rows (median of repeated calls), their ratio, the compile + verification time, and the
memory the compiled model adds (the arrays it holds, and the traced allocation growth).

    .venv/bin/python bench/compile_bench.py
    .venv/bin/python bench/compile_bench.py --candidates   # also ONNX Runtime: needs
    # pip install onnxruntime==1.31.1 skl2onnx==1.20.0 (not runtime dependencies)
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from dethrone.pipeline.training import (
    build_preprocessor,
    candidates,
    prepare_features,
    split_columns,
)
from dethrone.settings import Settings
from dethrone.slices.datasets import load_diamonds
from dethrone_router.gateway.compiled import compile_model


def champion(n_rows: int, n_trees: int):
    frame = load_diamonds().sample(n_rows, random_state=0)
    numeric, categorical = split_columns(frame, "price")
    X = prepare_features(frame, numeric + categorical, categorical)
    forest = clone(candidates("regression", Settings().random_state)["random_forest"])
    forest.set_params(n_estimators=n_trees)
    model = Pipeline([("prep", build_preprocessor(numeric, categorical)), ("model", forest)])
    with threadpool_limits(limits=1):
        model.fit(X, frame["price"].astype(float))
    return model, X, numeric, categorical


def per_call(fn, data, seconds: float) -> float:
    """Median seconds per call over about ``seconds``."""
    fn(data)
    times = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop or len(times) < 5:
        t0 = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def onnx_candidate(model, X, numeric, categorical):
    """The pipeline through skl2onnx, run by ONNX Runtime, in float32.

    In double precision skl2onnx 1.20 emits a TreeEnsembleRegressor with a double output,
    which ONNX Runtime 1.31 refuses to load ("Type (tensor(double)) of output arg ... does
    not match expected type (tensor(float))"): only the float32 graph runs.

    skl2onnx refuses ``SimpleImputer(missing_values=nan)`` on text columns, so a copy whose
    categorical imputer looks for "" is converted (the same on rows without a missing
    category, which is all the timed rows): ONNX cannot serve this pipeline as trained.
    """
    import copy

    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(c, FloatTensorType([None, 1])) for c in numeric]
    types += [(c, StringTensorType([None, 1])) for c in categorical]
    model = copy.deepcopy(model)
    model.named_steps["prep"].named_transformers_["cat"].named_steps["impute"].missing_values = ""
    t0 = time.perf_counter()
    onx = to_onnx(model, initial_types=types, target_opset={"": 17, "ai.onnx.ml": 3})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onx.SerializeToString(), options)
    build = time.perf_counter() - t0

    def predict(frame):
        feeds = {c: frame[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in numeric}
        feeds |= {
            c: frame[c].to_numpy(dtype=object).astype(str).reshape(-1, 1) for c in categorical
        }
        return session.run(None, feeds)[0].ravel().astype(np.float64)

    return predict, build, len(onx.SerializeToString())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--trees", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=1.5, help="per cell")
    parser.add_argument("--candidates", action="store_true", help="also time ONNX Runtime")
    args = parser.parse_args()

    model, X, numeric, categorical = champion(args.train_rows, args.trees)
    reference = X.sample(500, random_state=1)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    result = compile_model(model, reference)
    took = time.perf_counter() - t0
    added = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        f"model: {args.trees}-tree RandomForestRegressor pipeline, {args.train_rows} diamonds; "
        f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(f"compiled: {result.compiled} - {result.reason}; compile + verify {took:.2f} s")
    print(
        f"memory added per compiled model: {result.nbytes / 2**20:.1f} MiB of arrays "
        f"({added / 2**20:.1f} MiB traced while compiling and verifying, still held)"
    )
    rows = X.sample(1000, random_state=2)
    paths = [("compiled", result.predict)]
    if args.candidates:
        onnx_predict, build, size = onnx_candidate(model, X, numeric, categorical)
        print(f"onnx: converted + session in {build:.2f} s, {size / 2**20:.1f} MiB model")
        ref = model.predict(rows)
        for name, fn in (("compiled", result.predict), ("onnx", onnx_predict)):
            got = fn(rows)
            rel = np.abs(got - ref) / np.abs(ref)
            print(
                f"exactness {name}: max relative difference {rel.max():.1e}, "
                f"{int((rel > 1e-9).sum())} of {len(rows)} rows beyond 1e-9, "
                f"bit-equal {bool(np.array_equal(got, ref))}"
            )
        paths.append(("onnx", onnx_predict))
    header = f"{'rows':>5} {'predict ms':>11}" + "".join(
        f" {n + ' ms':>12} {'ratio':>7}" for n, _ in paths
    )
    print(header)
    with threadpool_limits(limits=1):
        for n in (1, 16, 64, 256):
            data = rows.head(n)
            base = per_call(model.predict, data, args.seconds)
            line = f"{n:>5} {base * 1e3:>11.3f}"
            for _, fn in paths:
                t = per_call(fn, data, args.seconds)
                line += f" {t * 1e3:>12.3f} {base / t:>6.1f}x"
            print(line)
    mapping = {c: rows.head(1)[c].to_numpy() for c in rows.columns}
    t = per_call(result.predict, mapping, args.seconds)
    print(f"compiled, 1 row as column -> array (no DataFrame): {t * 1e3:.3f} ms")
    print(f"calls: {result.calls}")


if __name__ == "__main__":
    main()
