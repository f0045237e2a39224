"""The demo's live loop: simulated traffic until the sequential test decides, the hot swap.

After the pipeline's second run has pre-screened the challenger offline and started a live
experiment, this sends simulated traffic through ``/predict`` (the router's drift applies),
posts the true labels through ``/feedback``, takes a look after each round exactly as the
``live_experiment`` DAG would, and shows the promotion in ``/predict`` answers and the
guardrail window closing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests

from dethrone.cli.experiment_cmd import why
from dethrone.experiments import lifecycle as ex
from dethrone.simulation.traffic import simulate
from dethrone.slices.router_client import RouterClient

if TYPE_CHECKING:
    from dethrone.experiments.state import ExperimentContext
    from dethrone.registry.records import LiveExperiment

#: settings of the demo's experiment (also given to the pipeline run that starts it), so a
#: decision comes within a minute of simulated traffic
LIVE_ENV = {
    "AB_MIN_ROWS_PER_ARM": "100",
    "SEQUENTIAL_TUNING_N": "1000",
    "HOLDBACK_SHARE": "0.1",
    "ROLLBACK_WINDOW": "15s",
    # the defaults wait a day before a promotion and an hour for labels: the demo's labels
    # come 0.5 s after serving and its experiment lasts a minute
    "LIVE_MIN_DURATION": "1s",
    "LABEL_WINDOW": "2s",
    # the window ends when the holdback's test shows no harm, or after this at most
    "ROLLBACK_MAX_DURATION": "15s",
}
#: the router refreshes its aliases every second and commits the log every 0.2 s
ROUTER_ENV = {"SERVING_REFRESH_SECONDS": "1", "LOG_FLUSH_SECONDS": "0.2"}
_PROBE_UNITS = [f"demo-probe-{i}" for i in range(12)]


def _probe(url: str, row: dict[str, Any]) -> set[tuple[str, str]]:
    """(arm, version) pairs ``/predict`` answers a dozen units with right now."""
    seen = set()
    for unit in _PROBE_UNITS:
        resp = requests.post(
            f"{url}/predict",
            json={"rows": [row]},
            timeout=10,
            headers={"X-Dethrone-Unit": unit, "Connection": "close"},
        )
        if resp.status_code == 200:
            body = resp.json()
            seen.add((body["arm"], str(body["model_version"])))
    return seen


def _wait_served(url: str, row: dict, arm: str, version: str, timeout: float = 30.0) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if (arm, version) in _probe(url, row):
            return time.monotonic() - began
        time.sleep(0.3)
    raise RuntimeError(f"/predict never answered {arm} v{version} within {timeout:.0f} s")


def _look_line(n: int, out: dict[str, Any], rec: Any = None) -> str:
    """One look of the demo and why it led where it did (``continue: 71/60 units, need 100
    per arm``)."""
    look = out.get("look") or {}
    reasons = list(getattr(rec, "reasons", None) or [])
    reason = why(out["action"], look, rec, reasons)
    if look.get("ci_low") is None:
        return f"    look {n}: {reason}"
    if out["action"] == "continue":  # the reason names units and interval already
        return (
            f"    look {n} ({look['phase']}): mean loss {look['mean_a']:.4g} vs "
            f"{look['mean_b']:.4g} -> {reason}"
        )
    return (
        f"    look {n} ({look['phase']}): units {look['units_a']}/{look['units_b']}, "
        f"mean loss {look['mean_a']:.4g} vs {look['mean_b']:.4g}, always-valid interval "
        f"[{look['ci_low']:.4g}, {look['ci_high']:.4g}] -> {reason}"
    )


def _live_record(ctx: ExperimentContext) -> LiveExperiment:
    """The experiment run 2 started (the demo's live loop runs only when there is one)."""
    rec = ex.current(ctx)
    if rec is None:
        raise RuntimeError(f"no live experiment is recorded on {ctx.registry.name}")
    return rec


def live_loop(
    ctx: ExperimentContext, *, url: str, say: Callable[[str], None], rounds: int = 10, seed: int = 7
) -> dict[str, Any]:
    """Traffic rounds and looks until a decision; then the hot swap and the window.

    Returns a summary: looks, units per arm, the final interval, the decision and its
    reasons, and the seconds to the decision.
    """
    # the traffic goes through /predict and /feedback: a real router's client
    router = ctx.router
    assert isinstance(router, RouterClient), type(router)
    rec = _live_record(ctx)
    say(
        f"  live experiment {rec.id}: champion v{rec.champion_version}, challenger "
        f"v{rec.challenger_version}, {rec.split:.0%} of units on the challenger"
    )
    row = ctx.router.get_data(seed=seed).drop(columns=[ctx.settings.target]).iloc[0].to_dict()
    _wait_served(url, row, "challenger", rec.challenger_version)
    began = time.monotonic()
    out, _ = _experiment_rounds(ctx, router, say, rounds=rounds, seed=seed)
    decided = time.monotonic() - began
    rec = _live_record(ctx)
    summary = {
        "looks": rec.looks,
        "decision": out["action"],
        "state": rec.state,
        "seconds_to_decision": round(decided, 1),
        "last_look": out.get("look"),
        "reasons": rec.reasons,
    }
    if rec.state != "guardrail":
        return summary
    swap = _wait_served(url, row, "champion", rec.challenger_version)
    say(
        f"  hot swap: /predict answers v{rec.challenger_version} on the champion arm "
        f"{swap:.1f} s after the promotion; {rec.holdback:.0%} of units stay on "
        f"v{rec.champion_version} for the {ctx.settings.rollback_window} guardrail window"
    )
    rec = _guardrail_rounds(ctx, router, rec, say, rounds=rounds, seed=seed)
    summary.update(state=rec.state, looks=rec.looks)
    return summary


def _experiment_rounds(
    ctx: ExperimentContext,
    router: RouterClient,
    say: Callable[[str], None],
    *,
    rounds: int,
    seed: int,
) -> tuple[dict[str, Any], int]:
    """Rounds of traffic, each followed by a look, until a decision or ``rounds``."""
    out: dict[str, Any] = {"action": "continue"}
    n = 0
    while out["action"] == "continue" and n < rounds:
        n += 1
        report = simulate(
            router,
            rate=30,
            duration=5,
            units=600,
            label_delay=0.5,
            rows_per_request=2,
            random_state=seed + n,
            settings=ctx.settings,
        )
        time.sleep(0.5)  # the log's last commit
        out = ex.evaluate_experiment(ctx)
        say(f"    round {n}: {report.requests} requests, {report.feedback_sent} labels")
        say(_look_line(n, out, _live_record(ctx)))
    return out, n


def _guardrail_rounds(
    ctx: ExperimentContext,
    router: RouterClient,
    rec: Any,
    say: Callable[[str], None],
    *,
    rounds: int,
    seed: int,
) -> Any:
    """Traffic and rollback checks while the guardrail window is open; the last record."""
    # bounded even if the window's own end (ROLLBACK_MAX_DURATION) were set long
    for _ in range(rounds * 3):
        if rec.state != "guardrail":
            break
        simulate(
            router,
            rate=30,
            duration=4,
            units=600,
            label_delay=0.5,
            rows_per_request=2,
            random_state=seed + 100 + rec.looks,
            settings=ctx.settings,
        )
        time.sleep(0.5)
        window = ex.check_rollback(ctx)
        rec = _live_record(ctx)
        say(_look_line(rec.looks, window, rec))
    return rec


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-demo lines of the live experiment."""
    look = s.get("last_look") or {}
    lines = [
        f"live experiment: {s['decision']} after {s['looks']} looks "
        f"({s['seconds_to_decision']} s of simulated traffic to the decision); "
        f"final state {s['state']}"
    ]
    if look.get("ci_low") is not None:
        lines.append(
            f"  units per arm {look['units_a']}/{look['units_b']}, final interval of "
            f"the improvement [{look['ci_low']:.4g}, {look['ci_high']:.4g}]"
        )
    lines += [f"  - {r}" for r in s.get("reasons", [])]
    return "\n".join(lines)
