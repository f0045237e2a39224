"""Calibration of live decisions: issue 17's scenarios before (Gaussian CS) and after.

Part 1 runs every scenario of issue 17's table through ``dethrone.experiments.rules`` (30
looks, alpha 0.05), next to today's Gaussian CS (``decide_sequential(test="gaussian")``)
on the same data. Part 2 runs the betting CS of ``decide_sequential`` (vectorised, the same
formulas: dethrone.abtest.betting) at 50/50, 90/10 and 95/5 with lognormal(0, 1),
lognormal(0, 2) and 0/1-at-2% losses: false promotion, false keep, coverage, power (10%
lower loss), median units to a decision.

    .venv/bin/python bench/sequential_calibration.py              # default --runs
    .venv/bin/python bench/sequential_calibration.py --runs 200 --look-runs 10   # quick
    .venv/bin/python bench/sequential_calibration.py --only coverage             # one part

Part 1 calls ``look`` ~30 times per experiment (~0.06 s each on 2 cores), so its default
is 20 experiments per scenario (Monte-Carlo error ~ +-5 points at 5%: indicative); part 2 is exact
to the same formulas and vectorised (1,000 experiments per row, +-0.7 points).
"""

from __future__ import annotations

import argparse
import math
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd

from dethrone.abtest import decide_sequential
from dethrone.abtest.betting import betting_difference_cs
from dethrone.abtest.sequential_sim import look_stats, sequential_cs
from dethrone.experiments.rules import look
from dethrone.settings import Settings

ALPHA, LOOKS = 0.05, 30
SETTINGS = Settings()


def _rows(
    rng, n, share_b, loss_a, loss_b, *, unitless=0.0, drop_worst_b=0.0, label_share=1.0, rate=2000.0
):
    """A synthetic log of ``n`` requests (one row each) served at ``rate`` rows/hour."""
    b = rng.random(n) < share_b
    loss = np.where(b, loss_b(n), loss_a(n))
    served = np.arange(n) / rate * 3600.0
    labelled = served + 60.0
    if label_share < 1.0:  # labels that never come back, the same chance in both arms
        labelled = np.where(rng.random(n) < label_share, labelled, np.nan)
    if drop_worst_b:  # the challenger's worst 10% of rows labelled only 70% of the time
        worst = b & (loss > np.quantile(loss[b], 0.9)) & (rng.random(n) < drop_worst_b)
        labelled = np.where(worst, np.nan, labelled)
    unit = np.array([f"u{i}" for i in range(n)], dtype=object)
    if unitless:
        unit[rng.random(n) < unitless] = None
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row": 0,
            "unit": unit,
            "arm": np.where(b, "challenger", "champion"),
            "model_version": np.where(b, "2", "1"),
            "salt": "s",
            "served_at": served,
            "labelled_at": labelled,
            "loss": np.where(np.isnan(labelled), np.nan, loss),
        }
    )


def _experiment(share_b, *, state="running", thresholds=None):
    th = {"label_window": "5m", "min_duration": "1s", "min_units_per_arm": 50}
    th.update(thresholds or {})
    return SimpleNamespace(
        state=state,
        mode="ab",
        split=share_b,
        holdback=share_b,
        salt="s",
        started_at=0.0,
        thresholds=th,
        champion_version="1" if state == "running" else "2",
        challenger_version="2" if state == "running" else "1",
        window_until=None,
    )


def _through_look(rows, exp, looks_at, rate=2000.0):
    """Outcome of the first deciding look, or the last one."""
    for t in looks_at:
        now = t / rate * 3600.0 + 301.0
        r = look(rows[rows["served_at"] <= now], exp, SETTINGS, now=now)
        if r.outcome not in ("continue",):
            return r.outcome
    return r.outcome


def _gaussian_first(rows, share_b, looks_at, min_units, unit_switch=False):
    """Today's rule: Gaussian CS, labelled rows by arm, per row if any unit is missing."""
    for t in looks_at:
        sub = rows.iloc[:t]
        sub = sub[sub["loss"].notna()]
        a, b = sub[sub["arm"] == "champion"], sub[sub["arm"] == "challenger"]
        if min(len(a), len(b)) < 2:
            continue
        units = {}
        if not unit_switch or (a["unit"].notna().all() and b["unit"].notna().all()):
            units = {
                "units_a": a["unit"].fillna(a["request_id"]).to_numpy(),
                "units_b": b["unit"].fillna(b["request_id"]).to_numpy(),
            }
        d = decide_sequential(
            a["loss"].to_numpy(float),
            b["loss"].to_numpy(float),
            expected_share_a=1 - share_b,
            test="gaussian",
            settings=SETTINGS.replace(ab_min_rows_per_arm=min_units),
            **units,
        )
        if d.outcome in ("promote", "keep") or (d.srm is not None and d.srm.mismatch):
            return "srm" if d.outcome == "inconclusive" else d.outcome
    return "continue"


def part1(runs: int, seed: int) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    ln = lambda s: lambda n: rng.lognormal(0, s, n)  # noqa: E731
    bern = lambda n: (rng.random(n) < 0.02).astype(float)  # noqa: E731
    out = []
    scen = [
        ("equal, lognormal(0,2), challenger 10% (90/10)", 0.1, ln(2), ln(2), {}, 200, 20000),
        ("same at 10/90 (false keep)", 0.9, ln(2), ln(2), {}, 200, 20000),
        ("equal, 0/1 loss at 2%, 90/10", 0.1, bern, bern, {}, 50, 20000),
        (
            "equal, challenger's worst 10% labelled 70%",
            0.5,
            ln(1),
            ln(1),
            {"drop_worst_b": 0.3},
            200,
            6000,
        ),
        ("equal, 2% of requests without a unit", 0.5, ln(1), ln(1), {"unitless": 0.02}, 200, 6000),
        ("50/50, light tails (lognormal(0,0.5))", 0.5, ln(0.5), ln(0.5), {}, 200, 6000),
    ]
    for name, share_b, la, lb, kw, min_units, n in scen:
        looks_at = np.linspace(n / LOOKS, n, LOOKS).astype(int)
        before, after = [], []
        for _ in range(runs):
            rows = _rows(rng, n, share_b, la, lb, **kw)
            before.append(
                _gaussian_first(rows, share_b, looks_at, min_units, unit_switch="unitless" in kw)
            )
            after.append(_through_look(rows, _experiment(share_b), looks_at))
        b, a = (
            pd.Series(before).value_counts(normalize=True),
            pd.Series(after).value_counts(normalize=True),
        )
        out.append((name, _fmt(b), _fmt(a)))
    # the guardrail window: 5% holdback, equal new champion, lognormal(0, 2)
    for sigma in (2.0, 1.0):
        n = 20000
        looks_at = np.linspace(n / LOOKS, n, LOOKS).astype(int)
        before, after = [], []
        for _ in range(runs):
            rows = _rows(rng, n, 0.05, ln(sigma), ln(sigma))
            d = _gaussian_first(rows, 0.05, looks_at, 200)
            before.append("rollback" if d == "promote" else d)
            after.append(_through_look(rows, _experiment(0.05, state="guardrail"), looks_at))
        out.append(
            (
                f"guardrail window, 5% holdback, equal, lognormal(0,{sigma:g})",
                _fmt(pd.Series(before).value_counts(normalize=True)),
                _fmt(pd.Series(after).value_counts(normalize=True)),
            )
        )
    # new champion 25% worse, 2,000 labelled rows/h, looks every 10 minutes for up to 7 days
    after = []
    for _ in range(max(runs // 4, 20)):
        rows = _rows(rng, 40000, 0.05, lambda m: 1.25 * rng.lognormal(0, 1, m), ln(1))
        after.append(
            _through_look(rows, _experiment(0.05, state="guardrail"), np.arange(333, 40000, 333))
        )
    out.append(
        (
            "new champion 25% worse, 2,000 rows/h (looks every 10 min)",
            "0% rolled back (issue)",
            _fmt(pd.Series(after).value_counts(normalize=True)),
        )
    )
    return out


def part_coverage(runs: int, seed: int) -> list[tuple[str, int, str]]:
    """Label coverage at the default margin, with enough experiments to bound ~5%.

    The biased-labels scenario stops early (the coverage check or the loss decides within a
    few looks), so it gets ``runs`` experiments; the two 70%-labelled scenarios (equal
    coverage: what the check costs) run all 30 looks, so they get a third of that.
    """
    rng = np.random.default_rng(seed + 2)
    ln = lambda f: lambda n: f * rng.lognormal(0, 1, n)  # noqa: E731
    scen = [
        ("equal, challenger's worst 10% labelled 70%", ln(1.0), {"drop_worst_b": 0.3}, 6000, 1),
        ("equal, both arms 70% labelled (cost: false inconclusive)", ln(1.0), {}, 12000, 3),
        ("challenger 10% lower, both arms 70% labelled (power)", ln(0.9), {}, 12000, 3),
    ]
    out = []
    for name, lb, kw, n, div in scen:
        looks_at = np.linspace(n / LOOKS, n, LOOKS).astype(int)
        label_share = 1.0 if kw else 0.7
        got = [
            _through_look(
                _rows(rng, n, 0.5, ln(1.0), lb, label_share=label_share, **kw),
                _experiment(0.5),
                looks_at,
            )
            for _ in range(max(runs // div, 20))
        ]
        out.append((name, len(got), _fmt(pd.Series(got).value_counts(normalize=True))))
    return out


def _fmt(counts: pd.Series) -> str:
    return ", ".join(f"{k} {100 * v:.1f}%" for k, v in counts.sort_index().items())


def part2(runs: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    laws = {
        "lognormal(0,1)": lambda s: rng.lognormal(0, 1, s),
        "lognormal(0,2)": lambda s: rng.lognormal(0, 2, s),
        "0/1 at 2%": lambda s: (rng.random(s) < 0.02).astype(float),
    }
    out = []
    for law, gen in laws.items():
        for share_b in (0.5, 0.1, 0.05):
            n = int(6000 / share_b) if share_b < 0.5 else 12000  # 6,000 challenger units
            looks = np.linspace(n / LOOKS, n, LOOKS).astype(int)
            res = {"law": law, "split": f"{round(100 * (1 - share_b))}/{round(100 * share_b)}"}
            for effect, key in ((1.0, "aa"), (0.9, "pw")):
                lo_all, hi_all, g_lo = [], [], []
                for c in range(0, runs, 100):
                    r = min(100, runs - c)
                    z = rng.random((r, n)) < share_b
                    y = np.where(z, effect * gen((r, n)), gen((r, n)))
                    caps = np.quantile(gen((r, 5000)), 0.995, axis=1, method="higher")
                    caps = np.where(caps > 0, caps, 1.0)[:, None]
                    cs = betting_difference_cs(y, z, share_b, looks, caps=caps)
                    lo_all.append(cs.low)
                    hi_all.append(cs.high)
                    if key == "aa":  # today's Gaussian CS on the same data, min 200 units
                        ya, yb = np.where(~z, y, np.nan), np.where(z, y, np.nan)
                        g_lo.append(_gauss_low(ya, yb, looks))
                lo, hi = np.concatenate(lo_all), np.concatenate(hi_all)
                if key == "aa":
                    res["false_promotion"] = (lo > 0).any(1).mean()
                    res["false_keep"] = (hi < 0).any(1).mean()
                    res["coverage"] = ((lo <= 0) & (hi >= 0)).all(1).mean()
                    res["gauss_false_promotion"] = float(np.concatenate(g_lo).mean())
                else:
                    hit = lo > 0
                    res["power"] = hit.any(1).mean()
                    first = hit.argmax(1)[hit.any(1)]
                    res["median_b_units"] = (
                        float(np.median(looks[first] * share_b)) if len(first) else math.nan
                    )
                    small = looks * share_b <= 6000
                    res["power_6000"] = hit[:, small].any(1).mean()
                    big = looks * (1 - share_b) <= 6000
                    res["power_6000_larger"] = hit[:, big].any(1).mean() if big.any() else 0.0
            out.append(res)
    return out


def _gauss_low(ya: np.ndarray, yb: np.ndarray, looks: np.ndarray) -> np.ndarray:
    """Whether today's Gaussian CS ever promotes (per experiment), min 200 units per arm."""
    ever = np.zeros(ya.shape[0], bool)
    for i in range(ya.shape[0]):
        a_idx, b_idx = np.flatnonzero(~np.isnan(ya[i])), np.flatnonzero(~np.isnan(yb[i]))
        na, nb = np.searchsorted(a_idx, looks), np.searchsorted(b_idx, looks)
        ok = (na >= 200) & (nb >= 200)
        if not ok.any():
            continue
        ca, cb = ya[i, a_idx], yb[i, b_idx]
        la, lb = na[ok], nb[ok]
        sa = tuple(v[0] for v in look_stats(ca[None], la))
        sb = tuple(v[0] for v in look_stats(cb[None], lb))
        _, low, _, _ = sequential_cs(sa, sb, alpha=ALPHA, tuning_n=5000)
        ever[i] = bool((low > 0).any())
    return ever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=1000, help="experiments per row of part 2 (vectorised)"
    )
    parser.add_argument(
        "--look-runs", type=int, default=20, help="experiments per scenario of part 1 (look)"
    )
    parser.add_argument(
        "--coverage-runs", type=int, default=300, help="experiments of the label-coverage part"
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--only", choices=("look", "coverage", "betting"), help="run one part (default: all)"
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.only in (None, "coverage"):
        _print_coverage(args)
    if args.only in (None, "look"):
        _print_look(args)
    if args.only in (None, "betting"):
        _print_betting(args)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


def _print_coverage(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    print(
        "Label coverage through look, 50/50, lognormal(0,1) losses, LABEL_COVERAGE_MARGIN at "
        f"its default ({SETTINGS.label_coverage_margin:g}), {LOOKS} looks\n"
    )
    print("| scenario | experiments | outcome |")
    print("|---|---|---|")
    for name, n, outcome in part_coverage(args.coverage_runs, args.seed):
        print(f"| {name} | {n} | {outcome} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)\n")


def _print_look(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    print(
        f"Part 1: issue 17's scenarios, {args.look_runs} experiments each, {LOOKS} looks, "
        f"alpha {ALPHA}; share of experiments by first decisive outcome\n"
    )
    print("| scenario | before (Gaussian CS, today's look rules) | after (look) |")
    print("|---|---|---|")
    for name, before, after in part1(args.look_runs, args.seed):
        print(f"| {name} | {before} | {after} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)\n")


def _print_betting(args: argparse.Namespace) -> None:
    print(
        f"Part 2: the betting CS of decide_sequential, {args.runs} experiments per row, "
        f"{LOOKS} looks to 6,000 challenger units (12,000 units at 50/50); cap = 99.5% "
        "quantile of 5,000 offline champion losses; power: challenger 10% lower loss\n"
    )
    print(
        "| losses | split | false promotion (before: Gaussian) | false keep | coverage A/A "
        "| power by 6,000 units/arm | power by 6,000 in the larger arm | median challenger "
        "units at promotion |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in part2(args.runs, args.seed):
        print(
            f"| {r['law']} | {r['split']} | {r['false_promotion']:.3f} "
            f"({r['gauss_false_promotion']:.3f}) | {r['false_keep']:.3f} | "
            f"{r['coverage']:.3f} | {r['power_6000']:.3f} | {r['power_6000_larger']:.3f} | "
            f"{r['median_b_units']:.0f} |"
        )


if __name__ == "__main__":
    main()
