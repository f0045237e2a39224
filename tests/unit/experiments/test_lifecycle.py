"""The live-experiment lifecycle on in-memory fakes and a real SQLite prediction log.

The registry is the real :class:`Registry` on the fake MLflow client (which can cut the
connection after k calls), the router a recording fake, the log a migrated SQLite file
written row by row. Retries after a cut at every call must end exactly as a clean run and
never promote, roll back or start twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from dethrone.experiments import lifecycle as ex
from dethrone.experiments import operator as ops
from dethrone.experiments.analysis import phase_of
from dethrone.registry.client import RegistryError
from dethrone.registry.records import Decision, LiveExperiment, RollbackRecord
from dethrone.settings import Settings
from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions
from tests.unit.pipeline_fakes import FakeRouter, InMemoryRegistry

T0 = 1_800_000_000.0


@dataclass
class FakeLiveTracker:
    """Runs and looks in lists; ``start_run`` finds the run of an id like the real one."""

    runs: dict[str, LiveExperiment] = field(default_factory=dict)
    looks: list[dict[str, Any]] = field(default_factory=list)

    def start_run(self, rec: LiveExperiment) -> str:
        self.runs.setdefault(rec.id, rec)
        return f"run-{rec.id}"

    def update(self, rec: LiveExperiment) -> None:
        self.runs[rec.id] = rec

    def log_look(self, rec: LiveExperiment, look: Any) -> list[dict[str, Any]]:
        self.looks.append({"experiment": rec.id, **look.to_dict()})
        return self.looks


class Clock:
    def __init__(self) -> None:
        self.now = T0
        #: (first ts, clock after) of the current batch of logged rows (see log_rows)
        self.batch: tuple[float, float] | None = None

    def __call__(self) -> float:
        return self.now


def make_ctx(folder) -> ex.ExperimentContext:
    """v1 @champion, v2 registered; an empty migrated log in ``folder``."""
    settings = Settings(
        model_name="m",
        ab_min_rows_per_arm=20,
        sequential_tuning_n=400,
        holdback_share=0.1,
        rollback_window="1h",
        live_min_duration="1s",
        label_window="10s",
    )
    reg = InMemoryRegistry(settings)
    for i in (1, 2):
        reg.fake.add_version(reg.name, f"run-{i}")
    reg.promote("1")
    engine = make_engine(f"sqlite:///{folder / 'log.sqlite3'}")
    upgrade(engine)
    return ex.ExperimentContext(
        settings=settings,
        registry=reg,
        router=FakeRouter(pd.DataFrame({"x": [1]})),
        engine=engine,
        tracker=FakeLiveTracker(),
        clock=Clock(),
    )


@pytest.fixture
def ctx(tmp_path):
    made = make_ctx(tmp_path)
    yield made
    made.engine.dispose()


_ids = itertools.count()


def log_rows(
    ctx,
    arm: str,
    version: str,
    losses: np.ndarray,
    *,
    units: int | None = None,
    served: bool = True,
    request_ids: list[str] | None = None,
) -> list[str]:
    """Log one labelled row per loss (prediction = loss, label = 0) at the clock's time,
    under the salt of the experiment's current phase, then let the label window pass."""
    rids = request_ids or [f"r{next(_ids)}" for _ in losses]
    rec = ex.current(ctx)
    salt = phase_of(rec)[1] if rec is not None else ""
    # Calls between two clock moves of a test are one batch of traffic: their rows arrive
    # interleaved within the same second, as randomised units do (not arm after arm).
    clock = ctx.clock
    if clock.batch is None or clock.batch[1] != clock.now:
        clock.batch = (clock.now + 1, clock.now + 20)
    base = clock.batch[0]
    offsets = np.random.default_rng(len(rids)).random(len(rids))
    rows = [
        {
            "request_id": rid,
            "row": 0,
            "arm": arm,
            "served": served,
            # sticky assignment: a unit is in one arm only (another arm's units differ)
            "unit": None if units is None else f"{arm}-u{i % units}",
            "model_version": version,
            "ts": base + float(offsets[i]),
            "salt": salt,
            "prediction": float(v),
        }
        for i, (rid, v) in enumerate(zip(rids, losses, strict=True))
    ]
    with ctx.engine.begin() as conn:
        conn.execute(insert(predictions), rows)
        if served:
            conn.execute(
                insert(feedback),
                [
                    {"request_id": rid, "row": 0, "label": 0.0, "received_at": base + 2}
                    for rid in rids
                ],
            )
    clock.now = clock.batch[1]  # past the 10 s label window: these rows enter the next look
    return rids


def rng_losses(seed: int, n: int, scale: float) -> np.ndarray:
    return scale * np.random.default_rng(seed).exponential(1.0, n)


def aliases(ctx) -> dict[str, str | None]:
    return ctx.registry.aliases()


def traffic_calls(ctx) -> list[dict]:
    return [c for name, c in ctx.router.calls if name == "set_traffic"]


def whys(ctx, run: str = "dag-1") -> list[str]:
    """The action of every serving change, after checking that the source the router's
    history records names the experiment and its DAG run."""
    exp_id = ex.current(ctx).id
    head = f"live experiment {exp_id} (run {run}): "
    assert all(src.startswith(head) for src in ctx.router.sources), ctx.router.sources
    return [src.removeprefix(head) for src in ctx.router.sources]


# --- start ----------------------------------------------------------------------------
def test_start_sets_challenger_and_serving_fields_only(ctx):
    out = ex.start_experiment(ctx, challenger_version="2", key="dag-1", split=0.3)
    assert out["state"] == "running" and out["champion_version"] == "1"
    assert aliases(ctx)["challenger"] == "2"
    (cfg,) = traffic_calls(ctx)
    assert cfg == {
        "mode": "ab",
        "a": pytest.approx(0.7),
        "b": 0.3,
        "salt": out["id"],
        "experiment": out["id"],
    }
    assert set(ctx.router.as_experiment) == {out["id"]}  # the split lock's own key
    assert whys(ctx) == ["start"]
    rec = ex.current(ctx)
    assert rec.salt == rec.id and rec.started_at == T0 and rec.config_versions == [4]
    assert rec.thresholds["alpha"] == 0.05 and rec.run_id == f"run-{rec.id}"
    # the gateway serves a challenger whose recorded decision is not final
    assert ctx.registry.model_version("2").tags["dethrone.decision.final"] == "false"


def test_challenger_with_an_earlier_keep_is_still_served_while_judged(ctx):
    ctx.registry.record_decision("2", Decision(outcome="keep"))
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    tags = ctx.registry.model_version("2").tags
    assert Decision.from_tags(tags).outcome == "keep" and Decision.from_tags(tags).final is False


def test_start_retried_after_success_starts_nothing_new(ctx):
    first = ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    again = ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    assert again["id"] == first["id"] and len(traffic_calls(ctx)) == 1
    assert len(ctx.tracker.runs) == 1


def test_second_experiment_is_refused_while_one_runs(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    with pytest.raises(ex.ExperimentError, match="stop it first"):
        ex.start_experiment(ctx, challenger_version="2", key="dag-2")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"challenger_version": "1"}, "already @champion"),
        ({"challenger_version": "9"}, "does not exist"),
        ({"challenger_version": "2", "mode": "canary"}, "mode"),
        ({"challenger_version": "2", "split": 1.0}, "split"),
    ],
)
def test_start_rejects_bad_requests(ctx, kwargs, match):
    with pytest.raises((ex.ExperimentError, ValueError), match=match):
        ex.start_experiment(ctx, key="k", **kwargs)
    assert traffic_calls(ctx) == [] and aliases(ctx)["challenger"] is None


def _calls_of_clean_start() -> int:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        c = make_ctx(Path(tmp))
        start = c.registry.fake.calls
        ex.start_experiment(c, challenger_version="2", key="dag-1")
        c.engine.dispose()
        return c.registry.fake.calls - start


@pytest.mark.parametrize("k", range(_calls_of_clean_start()))
def test_start_cut_at_any_call_is_finished_by_the_retry(ctx, k):
    ctx.registry.fake.cut_after = ctx.registry.fake.calls + k
    with pytest.raises(RegistryError):
        ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    ctx.registry.fake.cut_after = None
    out = ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    assert out["state"] == "running" and aliases(ctx)["challenger"] == "2"
    assert len(ctx.tracker.runs) == 1 and ex.current(ctx).id == out["id"]


# --- looks and automatic actions --------------------------------------------------------
def test_no_labels_yet_is_a_look_that_continues(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    out = ex.evaluate_experiment(ctx)
    assert out["action"] == "continue" and out["look"]["units_a"] == 0
    assert ex.current(ctx).looks == 1 and aliases(ctx)["champion"] == "1"


def _promoted(ctx) -> dict:
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    log_rows(ctx, "champion", "1", rng_losses(1, 600, 1.0), units=300)
    log_rows(ctx, "challenger", "2", rng_losses(2, 600, 0.6), units=300)
    return ex.evaluate_experiment(ctx)


def test_better_challenger_is_promoted_with_a_holdback(ctx):
    out = _promoted(ctx)
    assert out["action"] == "promoted" and out["state"] == "guardrail"
    assert aliases(ctx) == {"champion": "2", "challenger": "1", "previous-champion": "1"}
    assert traffic_calls(ctx)[-1] == {
        "mode": "ab",
        "a": 0.9,
        "b": 0.1,
        "salt": f"{out['experiment']}-guard",
        "experiment": out["experiment"],
    }
    rec = ex.current(ctx)
    assert rec.window_until == ctx.clock() + 3600 and rec.holdback == 0.1
    assert whys(ctx) == ["start", "promote by dethrone, guardrail holdback 0.1"]
    decision = Decision.from_tags(ctx.registry.model_version("2").tags)
    assert decision.outcome == "promote" and decision.ci[0] > 0 and decision.loss == "live"
    assert decision.final is True  # and the holdback is served though it was champion:
    assert Decision.from_tags(ctx.registry.model_version("1").tags).final is False
    assert ctx.tracker.looks[-1]["units_a"] == 300 and ctx.tracker.looks[-1]["outcome"] == "promote"


def test_evaluate_again_after_promotion_does_not_promote_twice(ctx):
    _promoted(ctx)
    before = aliases(ctx)
    out = ex.evaluate_experiment(ctx)  # now a guardrail look, no rows of the new phase yet
    assert out["state"] == "guardrail" and aliases(ctx) == before


@pytest.mark.parametrize("k", range(0, 40, 4))
def test_promotion_cut_at_any_call_is_finished_by_the_retry(ctx, k):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    log_rows(ctx, "champion", "1", rng_losses(1, 600, 1.0))
    log_rows(ctx, "challenger", "2", rng_losses(2, 600, 0.6))
    ctx.registry.fake.cut_after = ctx.registry.fake.calls + k
    try:
        ex.evaluate_experiment(ctx)
    except RegistryError:
        pass
    ctx.registry.fake.cut_after = None
    for _ in range(2):
        ex.evaluate_experiment(ctx)
    assert aliases(ctx) == {"champion": "2", "challenger": "1", "previous-champion": "1"}
    assert ex.current(ctx).state == "guardrail" and ctx.registry.pending_promotion() is None


def test_worse_challenger_is_kept_out_and_traffic_returns(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    log_rows(ctx, "champion", "1", rng_losses(1, 600, 1.0))
    log_rows(ctx, "challenger", "2", rng_losses(2, 600, 1.6))
    out = ex.evaluate_experiment(ctx)
    assert out["state"] == "kept" and aliases(ctx)["challenger"] is None
    assert aliases(ctx)["champion"] == "1" and traffic_calls(ctx)[-1] == {
        "mode": "champion",
        "experiment": None,
    }
    assert Decision.from_tags(ctx.registry.model_version("2").tags).outcome == "keep"
    assert whys(ctx) == ["start", "keep"]


def test_equal_models_continue(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    log_rows(ctx, "champion", "1", rng_losses(1, 300, 1.0))
    log_rows(ctx, "challenger", "2", rng_losses(2, 300, 1.0))
    assert ex.evaluate_experiment(ctx)["action"] == "continue"
    assert ex.current(ctx).state == "running" and aliases(ctx)["challenger"] == "2"


def test_sample_ratio_mismatch_stops_as_inconclusive(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1", split=0.5)
    log_rows(ctx, "champion", "1", rng_losses(1, 2000, 1.0))
    log_rows(ctx, "challenger", "2", rng_losses(2, 200, 1.0))
    out = ex.evaluate_experiment(ctx)
    assert out["state"] == "inconclusive" and aliases(ctx)["challenger"] is None
    assert any("sample ratio mismatch" in r for r in ex.current(ctx).reasons)
    assert whys(ctx)[-1].startswith("inconclusive") and "sample ratio mismatch" in whys(ctx)[-1]


def test_shadow_mode_decides_on_paired_rows(ctx):
    out = ex.start_experiment(ctx, challenger_version="2", key="dag-1", mode="shadow")
    assert traffic_calls(ctx)[-1] == {"mode": "shadow", "salt": out["id"], "experiment": out["id"]}
    rids = log_rows(ctx, "champion", "1", rng_losses(1, 400, 1.0))
    log_rows(ctx, "shadow", "2", rng_losses(1, 400, 1.0) * 0.5, served=False, request_ids=rids)
    assert ex.evaluate_experiment(ctx)["action"] == "promoted"


# --- guardrail window and rollback -------------------------------------------------------
def test_secretly_worse_new_champion_is_rolled_back_once(ctx):
    _promoted(ctx)
    ctx.clock.now += 60
    log_rows(ctx, "champion", "2", rng_losses(3, 3600, 1.5), units=1200)
    log_rows(ctx, "challenger", "1", rng_losses(4, 400, 1.0), units=133)
    out = ex.check_rollback(ctx)
    assert out["action"] == "rolled-back" and out["state"] == "rolled-back"
    assert aliases(ctx) == {"champion": "1", "challenger": None, "previous-champion": "2"}
    assert traffic_calls(ctx)[-1]["mode"] == "champion"
    assert whys(ctx)[-1] == "rollback by dethrone" and len(whys(ctx)) == 3
    tags = RollbackRecord.from_tags(ctx.registry.model_version("2").tags)
    assert tags.rolled_back and tags.by == "dethrone" and "absolute_error" in tags.reason
    for step in (ex.check_rollback, ex.evaluate_experiment):  # re-runs change nothing
        assert step(ctx)["action"] == "none"
    assert aliases(ctx)["champion"] == "1"


@pytest.mark.parametrize("k", range(0, 30, 3))
def test_rollback_cut_at_any_call_rolls_back_exactly_once(ctx, k):
    _promoted(ctx)
    ctx.clock.now += 60
    log_rows(ctx, "champion", "2", rng_losses(3, 1800, 1.5))
    log_rows(ctx, "challenger", "1", rng_losses(4, 200, 1.0))
    ctx.registry.fake.cut_after = ctx.registry.fake.calls + k
    try:
        ex.check_rollback(ctx)
    except RegistryError:
        pass
    ctx.registry.fake.cut_after = None
    for _ in range(2):
        ex.check_rollback(ctx)
    assert aliases(ctx) == {"champion": "1", "challenger": None, "previous-champion": "2"}
    assert ex.current(ctx).state == "rolled-back"


def test_window_ends_final_once_the_holdback_shows_no_harm(ctx):
    _promoted(ctx)
    ctx.clock.now += 60
    log_rows(ctx, "champion", "2", rng_losses(3, 45, 0.6))
    log_rows(ctx, "challenger", "1", rng_losses(4, 5, 1.0))
    assert ex.check_rollback(ctx)["action"] == "continue"  # too few holdback units yet
    # not a clock: the window ends when the holdback has the units its test needs
    log_rows(ctx, "champion", "2", rng_losses(5, 900, 0.6))
    log_rows(ctx, "challenger", "1", rng_losses(6, 100, 1.0))
    out = ex.check_rollback(ctx)
    assert out["action"] == "window-closed" and out["state"] == "promoted"
    assert aliases(ctx) == {"champion": "2", "challenger": None, "previous-champion": "1"}
    assert Decision.from_tags(ctx.registry.model_version("1").tags).final is True
    assert whys(ctx)[-1] == "guardrail window closed, promotion final"
    assert [look["phase"] for look in ctx.tracker.looks] == ["experiment", "guardrail", "guardrail"]


# --- operator actions ---------------------------------------------------------------
def test_operator_stop_returns_traffic_and_records_who(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    out = ops.stop(ctx, by="ana", reason="bad week")
    assert out["state"] == "stopped" and out["action"]["by"] == "ana"
    assert aliases(ctx)["challenger"] is None and traffic_calls(ctx)[-1]["mode"] == "champion"
    assert ops.stop(ctx, by="ana", reason="again")["state"] == "stopped"
    assert whys(ctx) == ["start", "stop by ana"]


def test_operator_promote_then_rollback_each_act_once(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    assert ops.promote(ctx, by="ana", reason="looks fine")["state"] == "guardrail"
    assert ops.promote(ctx, by="ana", reason="twice")["state"] == "guardrail"
    assert aliases(ctx)["champion"] == "2" and aliases(ctx)["previous-champion"] == "1"
    out = ops.rollback(ctx, by="bo", reason="complaints")
    assert out["state"] == "rolled-back" and out["action"] == {
        "action": "rollback",
        "by": "bo",
        "reason": "complaints",
        "at": T0,
    }
    ops.rollback(ctx, by="bo", reason="again")
    assert aliases(ctx) == {"champion": "1", "challenger": None, "previous-champion": "2"}
    assert whys(ctx) == ["start", "promote by ana, guardrail holdback 0.1", "rollback by bo"]


def test_stop_in_the_guardrail_window_is_recorded_as_the_operators(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    ops.promote(ctx, by="ana", reason="looks fine")
    assert ops.stop(ctx, by="bo", reason="enough")["state"] == "promoted"
    assert whys(ctx)[-1] == "stop by bo, promotion final"


@pytest.mark.parametrize(
    "run, shown",
    [
        ("scheduled__2026-11-29T00:00:00+00:00", "scheduled__2026-11-29T00:00:00+00:00): start"),
        ("manual\t\u00e9\n" + "x" * 400, "manual???xxx"),
    ],
)
def test_source_is_a_valid_header_for_any_run_id(ctx, run, shown):
    # The router refuses (400) a source that is not 1..256 printable ASCII characters:
    # an odd or long DAG run id must not make the experiment's serving change fail.
    out = ex.start_experiment(ctx, challenger_version="2", key=run)
    (source,) = ctx.router.sources
    assert len(source) <= 256 and all(" " <= c <= "~" for c in source)
    assert source.startswith(f"live experiment {out['id']} (run {shown}")


@pytest.mark.parametrize("action", [ops.rollback, ops.promote])
def test_operator_action_refused_in_wrong_state(ctx, action):
    with pytest.raises(ex.ExperimentError, match="no live experiment"):
        action(ctx, by="ana", reason="")
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    ops.stop(ctx, by="ana", reason="")
    with pytest.raises(ex.ExperimentError):
        action(ctx, by="ana", reason="")


def test_operator_needs_a_name(ctx):
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    with pytest.raises(ValueError, match="by"):
        ops.stop(ctx, by="", reason="x")


def test_status_counts_rows_per_arm(ctx):
    assert ops.status(ctx) == {"experiment": None}
    ex.start_experiment(ctx, challenger_version="2", key="dag-1")
    log_rows(ctx, "champion", "1", np.ones(5))
    out = ops.status(ctx)
    assert out["experiment"]["state"] == "running"
    assert [(a["arm"], a["rows"], a["mean_loss"]) for a in out["arms"]] == [("champion", 5, 1.0)]
