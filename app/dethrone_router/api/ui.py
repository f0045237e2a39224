"""The experiment page: ``/ui/`` (list), ``/ui/experiments/<id>``, ``/ui/serving``.

Server-rendered (Jinja templates in ``templates/ui``, charts as inline SVG, no script or
stylesheet from elsewhere). Everything comes from the router's database: the experiment
records and looks the lifecycle stores there (:mod:`dethrone.store.experiments`), the
config history, and aggregates of the prediction log; never MLflow, never raw rows.

Protected like the reads: with ``ROUTER_READ_TOKEN`` set, a browser signs in once through
the form at ``/ui/login`` and gets an HttpOnly, SameSite=Strict cookie holding a signed
session (not the token); a bearer header works too, as on the other reads.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, make_response, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Undefined
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from dethrone.store import experiments as store
from dethrone.store.monitor import latest
from dethrone_router.api.ui_charts import Marker, Point, interval_chart, time_label
from dethrone_router.state import state

bp = Blueprint("ui", __name__, url_prefix="/ui")

COOKIE = "dethrone_ui"
#: how long a sign-in lasts
SESSION_SECONDS = 12 * 3600
#: the serving overview's window
RECENT_SECONDS = 300
#: seconds between refreshes of a page whose experiment runs
REFRESH_SECONDS = 15
ACTIVE = store.ACTIVE
#: the lifecycle's main line and its ends (``dethrone.experiments.lifecycle``)
LIFECYCLE = ["starting", "running", "promoting", "guardrail", "promoted"]
ENDS = {"kept": 1, "inconclusive": 1, "stopped": 1, "rolling-back": 3, "rolled-back": 3}


# --- sign-in ---------------------------------------------------------------------------
def _tokens() -> tuple[str, str]:
    s = state().settings
    return s.router_read_token or "", s.router_token or ""


def _serializer() -> URLSafeTimedSerializer:
    # Keyed by the tokens themselves: every worker and replica agrees without a new
    # setting, and a changed token ends every session signed with the old one.
    read, write = _tokens()
    key = hashlib.sha256(f"dethrone-ui\0{read}\0{write}".encode()).hexdigest()
    return URLSafeTimedSerializer(key, salt="dethrone-ui-session")


def _token_ok(given: str) -> bool:
    read, write = _tokens()
    given_b = given.encode()
    return any(t and hmac.compare_digest(given_b, t.encode()) for t in (read, write))


def _signed_in() -> bool:
    read, _ = _tokens()
    if not read:
        return True
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and _token_ok(header[7:]):
        return True
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    try:
        _serializer().loads(cookie, max_age=SESSION_SECONDS)
    except BadSignature:
        return False
    return True


def _safe_next(target: str | None) -> str:
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/"):
        return "/ui/"
    return parts.path


@bp.before_request
def _guard():
    if request.endpoint in ("ui.login", "ui.login_form"):
        return None
    if not _signed_in():
        if request.method == "GET":
            return redirect(f"/ui/login?next={request.path}", 303)
        return _page("login.html", 401, error="sign in first", next="/ui/")
    return None


@bp.get("/login")
def login_form():
    return _page("login.html", 200, error=None, next=_safe_next(request.args.get("next")))


@bp.post("/login")
def login():
    target = _safe_next(request.form.get("next"))
    if not _tokens()[0]:
        return redirect(target, 303)
    if not _token_ok(request.form.get("token", "")):
        return _page("login.html", 401, error="wrong token", next=target)
    resp = redirect(target, 303)
    resp.set_cookie(
        COOKIE,
        _serializer().dumps({"at": int(time.time())}),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/ui/",
    )
    return resp


@bp.post("/logout")
def logout():
    resp = redirect("/ui/login", 303)
    resp.delete_cookie(COOKIE, path="/ui/")
    return resp


def _page(template: str, status: int = 200, **context: Any):
    context.setdefault("signed_in", bool(_tokens()[0]) and _signed_in())
    resp = make_response(render_template(f"ui/{template}", **context), status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# --- formatting --------------------------------------------------------------------------
def when(t: Any) -> str:
    """An epoch time as ``YYYY-MM-DD HH:MM:SS UTC`` (``—`` for none)."""
    if t is None or isinstance(t, Undefined):
        return "—"
    try:
        return datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        return str(t)


def _iso_when(text: Any) -> str:
    try:
        return when(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return str(text)


def duration(seconds: Any) -> str:
    """``1 h 05 min``, ``12 min``, ``40 s``."""
    if seconds is None or isinstance(seconds, Undefined):
        return "—"
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def num(v: Any, digits: int = 4) -> str:
    if v is None or isinstance(v, Undefined):
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "∞" if f > 0 else "−∞" if f < 0 else "—"
    if f != 0 and (abs(f) >= 1e6 or abs(f) < 1e-3):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}"


def pct(v: Any) -> str:
    return "—" if v is None or isinstance(v, Undefined) else f"{100 * float(v):.1f}%"


@bp.app_template_filter("when")
def _when_filter(t):
    return when(t)


@bp.app_template_filter("num")
def _num_filter(v, digits=4):
    return num(v, digits)


@bp.app_template_filter("pct")
def _pct_filter(v):
    return pct(v)


@bp.app_template_filter("duration")
def _duration_filter(s):
    return duration(s)


# --- pages --------------------------------------------------------------------------------
def _engine():
    return state().engine


def _duration_of(rec: dict[str, Any], now: float) -> float | None:
    if rec.get("started_at") is None:
        return None
    return (rec.get("ended_at") or now) - float(rec["started_at"])


@bp.get("/")
def index():
    now = time.time()
    rows = store.list_experiments(_engine())
    for r in rows:
        r["duration"] = _duration_of(r, now)
        r["active"] = r["state"] in ACTIVE
    return _page(
        "list.html",
        experiments=rows,
        refresh=REFRESH_SECONDS if any(r["active"] for r in rows) else None,
        now=now,
    )


@bp.get("/experiments/<experiment_id>")
def experiment_page(experiment_id: str):
    engine = _engine()
    rec = store.experiment(engine, experiment_id)
    if rec is None:
        return _page("not_found.html", 404, what=f"experiment {experiment_id}")
    now = time.time()
    looks = store.looks(engine, experiment_id)
    counts, _ = (
        store.arm_counts(
            engine, experiment_id, since=float(rec["started_at"]), until=rec.get("ended_at")
        )
        if rec.get("started_at") is not None
        else ([], None)
    )
    view = experiment_view(rec, looks, counts, now=now)
    view["history"] = _history(rec)
    view["links"] = _links(rec)
    return _page(
        "experiment.html",
        refresh=REFRESH_SECONDS if rec["state"] in ACTIVE else None,
        **view,
    )


@bp.get("/serving")
def serving():
    st = state()
    now = time.time()
    _, cfg, _ = st.config()
    sv = current_app.extensions.get("dethrone_serving")
    models = dict(sv.watcher.status()["models"]) if sv is not None else {}
    newest = store.newest_row(st.engine)
    source = "loaded by this worker"
    if newest and not (models.get("champion") or models.get("challenger")):
        models = {
            "champion": newest["champion_version"],
            "challenger": newest["challenger_version"],
        }
        source = f"of the newest logged row ({when(newest['ts'])})"
    traffic = store.recent_traffic(st.engine, since=now - RECENT_SECONDS)
    total = sum(t["rows"] for t in traffic) or 0
    for t in traffic:
        t["share"] = t["rows"] / total if total else None
        t["per_minute"] = t["rows"] / (RECENT_SECONDS / 60)
    running = [e for e in store.list_experiments(st.engine) if e["state"] in ACTIVE]
    return _page(
        "serving.html",
        monitor=_monitor(st.engine),
        cfg=cfg,
        models=models,
        models_source=source,
        traffic=traffic,
        total=total,
        window=RECENT_SECONDS,
        errors=_request_errors(),
        running=running,
        serving_enabled=sv is not None,
        refresh=REFRESH_SECONDS,
        now=now,
    )


def _monitor(engine: Any) -> dict[str, Any] | None:
    """The drift monitor's newest check, with a link to its MLflow run when there is one."""
    row = latest(engine)
    if row is None:
        return None
    result = row.get("result") or {}
    base = (state().settings.mlflow_tracking_uri or "").rstrip("/")
    run = row.get("run_id")
    return {
        **row,
        "when": when(row["time"]),
        "drifted_features": result.get("drifted_features") or [],
        "prediction": result.get("prediction"),
        "performance": result.get("performance"),
        "reason": result.get("reason"),
        "window": result.get("window"),
        "link": f"{base}/#/runs/{run}"
        if run and base.startswith(("http://", "https://"))
        else None,
    }


def _request_errors() -> list[dict[str, Any]]:
    """Prediction requests and their 5xx answers per endpoint, from this router's counters
    (all workers, since the router started); a failed request has no arm in the log."""
    metrics = state().metrics
    try:
        if getattr(metrics, "registry", None) is not None:
            families = list(metrics.requests.collect())
        else:  # gunicorn: the workers' counter files only, not the scrape's database gauges
            families = list(
                MultiProcessCollector(CollectorRegistry(), path=metrics.multiprocess_dir).collect()
            )
    except Exception:  # noqa: BLE001 - the counters are an extra, never a reason to fail
        return []
    by: dict[str, dict[str, float]] = {}
    for fam in families:
        if fam.name != "dethrone_router_requests":
            continue
        for s in fam.samples:
            if not s.name.endswith("_total"):
                continue
            ep = s.labels.get("endpoint", "")
            if ep not in ("/predict", "/invocations"):
                continue
            d = by.setdefault(ep, {"requests": 0.0, "errors": 0.0})
            d["requests"] += s.value
            if str(s.labels.get("status", "")).startswith("5"):
                d["errors"] += s.value
    return [
        {
            "endpoint": ep,
            "requests": int(d["requests"]),
            "errors": int(d["errors"]),
            "rate": d["errors"] / d["requests"] if d["requests"] else None,
        }
        for ep, d in sorted(by.items())
    ]


def _history(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The router's config changes this experiment made (its versions, or its name in the
    source), oldest first."""
    versions = {v for v in rec.get("config_versions") or [] if v is not None}
    out = []
    for h in state().store.history():
        src = h.get("source") or ""
        if h["version"] in versions or rec["id"] in src:
            after = h.get("after") or {}
            change = {
                k: after.get(k)
                for k in ("mode", "a", "b", "salt")
                if after.get(k) != (h.get("before") or {}).get(k)
            }
            out.append({**h, "change": change, "at": _iso_when(h.get("at"))})
    return out


def _links(rec: dict[str, Any]) -> list[tuple[str, str]]:
    s = state().settings
    base = (s.mlflow_tracking_uri or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        return []
    links = []
    if rec.get("run_id"):
        links.append(("MLflow run", f"{base}/#/runs/{rec['run_id']}"))
    for role in ("champion", "challenger"):
        v = rec.get(f"{role}_version")
        if v:
            links.append(
                (f"model version {v} ({role})", f"{base}/#/models/{s.model_name}/versions/{v}")
            )
    drift = rec.get("drift_report") or rec.get("drift_run_id")
    if drift:
        target = drift if str(drift).startswith("http") else f"{base}/#/runs/{drift}"
        links.append(("drift report", target))
    return links


# --- the experiment's view model -------------------------------------------------------------
def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def _look_arms(look: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A look result's per-arm figures keyed by model version (``arms`` as a list of dicts
    with ``model_version``, or a dict keyed by version or arm name)."""
    arms = look.get("arms") or look.get("per_arm")
    out: dict[str, dict[str, Any]] = {}
    if isinstance(arms, dict):
        arms = [{"key": k, **(v if isinstance(v, dict) else {})} for k, v in arms.items()]
    for a in arms or []:
        if isinstance(a, dict):
            key = _first(a, "model_version", "version", "key", "arm")
            if key is not None:
                out[str(key)] = a
    return out


def experiment_view(
    rec: dict[str, Any], looks: list[dict[str, Any]], counts: list[dict[str, Any]], *, now: float
) -> dict[str, Any]:
    """Everything the experiment template shows, from the record, its looks and the counts."""
    champ, chall = str(rec.get("champion_version")), str(rec.get("challenger_version"))
    thresholds = rec.get("thresholds") or {}
    margin = float(thresholds.get("margin") or 0.0)
    last = looks[-1] if looks else {}
    last_by_phase = {lk.get("phase"): lk for lk in looks}
    # In the experiment phase arm a is the champion's version; in the guardrail window arm
    # a is the new champion (the challenger's version) and b the holdback.
    exp_look = last_by_phase.get("experiment", {})
    guard_look = last_by_phase.get("guardrail", {})
    arms = [
        _arm_view(version, role, counts, last, exp_look, guard_look)
        for version, role in ((champ, "champion"), (chall, "challenger"))
    ]
    points_time, points_units = _interval_points(looks)
    m_time, m_units = _chart_markers(rec, looks, points_units)
    charts = {
        "time": interval_chart(
            points_time,
            margin=margin,
            markers=m_time,
            x_label="time of the look (UTC)",
            x_format=time_label,
            title="always-valid interval over time",
        ),
        "units": interval_chart(
            points_units,
            margin=margin,
            markers=m_units,
            x_label="units in both arms at the look",
            title="always-valid interval over units",
        ),
    }
    return {
        "rec": rec,
        "looks": looks,
        "last": last,
        "arms": arms,
        "charts": charts,
        "margin": margin,
        "thresholds": thresholds,
        "checks": health_checks(rec, last, arms),
        "reasons": _reasons(rec, last),
        "lifecycle": lifecycle(rec["state"]),
        "duration": _duration_of(rec, now),
        "now": now,
        "guardrails": _guardrails(last),
    }


def _arm_view(
    version: str,
    role: str,
    counts: list[dict[str, Any]],
    last: dict[str, Any],
    exp_look: dict[str, Any],
    guard_look: dict[str, Any],
) -> dict[str, Any]:
    """One arm's row: its logged counts, and its figures from the newest looks."""
    mine = [c for c in counts if str(c["model_version"]) == version]
    served_rows = sum(c["rows"] for c in mine if c["served"])
    shadow_rows = sum(c["rows"] for c in mine if not c["served"])
    labelled = sum(c["labelled"] for c in mine)
    logged = served_rows + shadow_rows
    side = "a" if role == "champion" else "b"
    figures = _look_arms(last).get(version) or _look_arms(exp_look).get(version) or {}
    loss_name = _first(figures, "loss_name", "loss", "metric") or _first(
        last, "loss_name", "loss", "metric"
    )
    return {
        "version": version,
        "role": role,
        "arm_names": sorted({c["arm"] for c in mine}),
        "served": served_rows,
        "shadow": shadow_rows,
        "labelled": labelled,
        "coverage": labelled / logged if logged else None,
        "units": _first(figures, "units") or exp_look.get(f"units_{side}"),
        "look_rows": _first(figures, "labelled_rows", "rows") or exp_look.get(f"rows_{side}"),
        "mean_loss": _first(figures, "mean_loss", "mean") or exp_look.get(f"mean_{side}"),
        "loss_name": loss_name or "live loss (absolute error; 0/1 for classes)",
        "loss_unit": _first(figures, "loss_unit", "unit") or _first(last, "loss_unit"),
        "error_rate": _first(figures, "error_rate"),
        "p99_latency_ms": _first(figures, "p99_latency_ms", "latency_p99_ms", "p99_ms"),
        "guard_units": guard_look.get("units_b" if role == "champion" else "units_a"),
        "guard_mean": guard_look.get("mean_b" if role == "champion" else "mean_a"),
    }


def _interval_points(looks: list[dict[str, Any]]) -> tuple[list[Point], list[Point]]:
    """Each look with an interval, placed by its time and by its units in both arms."""
    points_time, points_units = [], []
    for lk in looks:
        lo, hi = lk.get("ci_low"), lk.get("ci_high")
        if lo is None or hi is None:
            continue
        args = (float(lo), float(hi), lk.get("phase") or "experiment", lk.get("outcome") or "")
        points_time.append(Point(float(lk.get("time") or 0), *args, lk["number"]))
        units = _first(lk, "units_total") or (lk.get("units_a") or 0) + (lk.get("units_b") or 0)
        points_units.append(Point(float(units), *args, lk["number"]))
    return points_time, points_units


def _chart_markers(
    rec: dict[str, Any], looks: list[dict[str, Any]], points_units: list[Point]
) -> tuple[list[Marker], list[Marker]]:
    """The decision, the promotion and the guardrail window, on the time and units charts."""
    decision = next(
        (lk for lk in looks if lk.get("phase") == "experiment" and lk.get("outcome") != "continue"),
        None,
    )
    promoted_at = next(
        (a.get("at") for a in rec.get("actions") or [] if a.get("action") == "promote"), None
    )
    m_time, m_units = [], []
    if decision is not None:
        label = f"decision: {decision.get('outcome')}"
        m_time.append(Marker(float(decision["time"]), label, "decision"))
        m_units.append(
            Marker(
                float((decision.get("units_a") or 0) + (decision.get("units_b") or 0)),
                label,
                "decision",
            )
        )
    if promoted_at is not None and (decision is None or abs(promoted_at - decision["time"]) > 1):
        m_time.append(Marker(float(promoted_at), "promotion", "promotion"))
    window_until = rec.get("window_until")
    if window_until is not None:
        start = promoted_at or (decision or {}).get("time") or rec["started_at"]
        end = min(float(window_until), float(rec.get("ended_at") or window_until))
        m_time.append(Marker(float(start), "guardrail window", "window", end))
        gpts = [p for p in points_units if p.phase == "guardrail"]
        if gpts:
            m_units.append(
                Marker(gpts[0].x, "guardrail window", "window", max(gpts[-1].x, gpts[0].x))
            )
    return m_time, m_units


def lifecycle(current: str) -> list[dict[str, Any]]:
    """The steps to show: the main line, with the end this experiment took, and which one
    it is at (``done``, ``current``, ``todo``)."""
    steps = list(LIFECYCLE)
    if current in ("kept", "inconclusive", "stopped"):
        steps = ["starting", "running", current]
    elif current in ("rolling-back", "rolled-back"):
        steps = ["starting", "running", "promoting", "guardrail", "rolling-back", "rolled-back"]
    at = steps.index(current) if current in steps else -1
    final = current in ("promoted", "kept", "inconclusive", "stopped", "rolled-back")
    return [
        {
            "name": s,
            "status": "done" if i < at else "current" if i == at else "todo",
            "final": final and i == at,
        }
        for i, s in enumerate(steps)
    ]


def _reasons(rec: dict[str, Any], last: dict[str, Any]) -> list[str]:
    out = [str(r) for r in last.get("reasons") or []]
    for r in rec.get("reasons") or []:
        if str(r) not in out:
            out.append(str(r))
    if not out and last:
        out.append(
            f"look {last.get('number')}: {last.get('outcome') or 'continue'}"
            f" ({num(last.get('units_a'))} / {num(last.get('units_b'))} units labelled)"
        )
    return out


def _srm_p(n_a: float, n_b: float, share_a: float) -> float | None:
    """Pearson chi-square p-value (1 df) of n_a, n_b against the expected share of a."""
    n = n_a + n_b
    if n <= 0 or not 0 < share_a < 1:
        return None
    ea, eb = n * share_a, n * (1 - share_a)
    chi2 = (n_a - ea) ** 2 / ea + (n_b - eb) ** 2 / eb
    return math.erfc(math.sqrt(chi2 / 2))


def health_checks(
    rec: dict[str, Any], last: dict[str, Any], arms: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each check: ``name``, ``status`` (ok, fail, na) and the figure it is based on."""
    th = rec.get("thresholds") or {}
    return [
        _srm_check(rec, th, last, arms),
        _coverage_check(last, arms),
        *_unit_checks(th, last, arms),
        *_guardrail_checks(last, arms),
    ]


def _srm_check(
    rec: dict[str, Any], th: dict[str, Any], last: dict[str, Any], arms: list[dict[str, Any]]
) -> dict[str, Any]:
    """The sample ratio: the look's sequential test, else the served rows against the split."""
    srm_threshold = float(th.get("srm_pvalue_threshold") or 0.001)
    srm_p = _first(last, "srm_pvalue", "srm_p")
    source = "the look's sequential test"
    if srm_p is None and rec.get("mode") == "ab" and rec.get("split"):
        a, b = arms[0]["served"], arms[1]["served"]
        srm_p = _srm_p(a, b, 1 - float(rec["split"])) if a + b else None
        source = f"served rows {a:,} / {b:,} against split {1 - float(rec['split']):g}"
    return {
        "name": "sample ratio",
        "status": "na" if srm_p is None else "ok" if srm_p >= srm_threshold else "fail",
        "figure": "no rows yet"
        if srm_p is None
        else f"p = {num(srm_p, 3)} (fails below {srm_threshold:g}; {source})",
    }


def _coverage_check(last: dict[str, Any], arms: list[dict[str, Any]]) -> dict[str, Any]:
    """Label coverage: the look's test of the labelled shares, else the arms' coverage."""
    covs = [a["coverage"] for a in arms]
    tested = last.get("coverage")
    if isinstance(tested, dict) and tested.get("differs") is not None:
        # the look's always-valid test of the labelled shares (within the label window)
        cov_status = "fail" if tested["differs"] else "ok"
        cov_fig = (
            f"labelled share champion arm {pct(tested.get('p_a'))}, challenger arm "
            f"{pct(tested.get('p_b'))}; always-valid interval of the difference "
            f"[{num(tested.get('low'), 3)}, {num(tested.get('high'), 3)}], margin "
            f"{num(tested.get('margin'), 3)}"
        )
    elif any(c is None for c in covs) or not arms:
        cov_status, cov_fig = "na", "an arm has no logged row yet"
    else:
        low, high = min(covs), max(covs)
        cov_status = "ok" if low > 0 and high - low <= 0.10 else "fail"
        cov_fig = " / ".join(f"v{a['version']} {pct(a['coverage'])}" for a in arms) + (
            " (both labelled, within 10 points)"
            if cov_status == "ok"
            else " (an arm unlabelled, or more than 10 points apart)"
        )
    return {"name": "label coverage", "status": cov_status, "figure": cov_fig}


def _unit_checks(
    th: dict[str, Any], last: dict[str, Any], arms: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Units seen in both arms, and units per arm against the minimum (when both known)."""
    both = _first(last, "units_in_both_arms", "units_both_arms", "units_both")
    checks = [
        {
            "name": "units in both arms",
            "status": "na" if both is None else "ok" if int(both) == 0 else "fail",
            "figure": "not reported by the look"
            if both is None
            else f"{int(both):,} unit(s) seen in both arms",
        }
    ]
    min_units = th.get("min_units_per_arm")
    units = [a["units"] for a in arms]
    if min_units and all(u is not None for u in units):
        enough = all(int(u) >= int(min_units) for u in units)
        checks.append(
            {
                "name": "units per arm",
                "status": "ok" if enough else "fail",
                "figure": " / ".join(f"v{a['version']} {num(a['units'])}" for a in arms)
                + f" (need {int(min_units):,} each before a decision)",
            }
        )
    return checks


def _guardrail_checks(last: dict[str, Any], arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Error rate and p99 latency: the look's guardrail verdict with the arms' figures."""
    checks = []
    for name, key, unit in (
        ("error rate", "error_rate", "%"),
        ("p99 latency", "p99_latency_ms", " ms"),
    ):
        g = _guardrail(last, key)
        values = [a[key] for a in arms if a[key] is not None]
        if g is None and not values:
            checks.append({"name": name, "status": "na", "figure": "not measured by the look"})
            continue
        figs = " / ".join(
            f"v{a['version']} " + (pct(a[key]) if unit == "%" else f"{num(a[key], 3)}{unit}")
            for a in arms
            if a[key] is not None
        )
        status = "na"
        if g is not None:
            status = "ok" if g.get("ok", True) else "fail"
            extra = g.get("text") or ""
            figs = " ".join(x for x in (figs, extra) if x)
        checks.append({"name": name, "status": status, "figure": figs or "—"})
    return checks


def _guardrail(look: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A guardrail of the look (``guardrails`` a dict name → dict or value, or a list of
    dicts with ``name``), with ``ok`` from ``ok``/``passed``/``failed`` when given."""
    g = look.get("guardrails")
    item = None
    if isinstance(g, dict):
        item = g.get(key) or g.get(key.replace("_ms", ""))
    elif isinstance(g, list):
        item = next(
            (x for x in g if isinstance(x, dict) and str(x.get("name", "")).startswith(key[:5])),
            None,
        )
    if item is None:
        return None
    if not isinstance(item, dict):
        return {"ok": True, "text": pct(item) if key == "error_rate" else num(item)}
    ok = item.get("ok", item.get("passed"))
    if ok is None and "failed" in item:
        ok = not item["failed"]
    if ok is None and "harm" in item:  # the look's always-valid non-inferiority test
        ok = not item["harm"]
    show = pct if key == "error_rate" else num
    text = ", ".join(
        f"{k} {show(v)}" for k, v in item.items() if k not in ("ok", "passed", "failed", "name")
    )
    return {"ok": True if ok is None else bool(ok), "text": text}


def _guardrails(look: dict[str, Any]) -> list[tuple[str, str]]:
    g = look.get("guardrails")
    if isinstance(g, dict):
        return [(str(k), str(v)) for k, v in g.items()]
    if isinstance(g, list):
        return [(str(x.get("name", "?")), str(x)) for x in g if isinstance(x, dict)]
    return []
