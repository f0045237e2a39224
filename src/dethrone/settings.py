"""One typed settings object for every part of dethrone.

Every field is read from an environment variable of the same name in upper case
(the seed-era names are kept: ``MLFLOW_TRACKING_URI``, ``EXPERIMENT_NAME``,
``COMPARISON_NAME``, ``FLASK_URL``, ``KS_PVALUE_THRESHOLD``, ``PSI_THRESHOLD``,
``MLFLOW_LOG``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``MLFLOW_S3_ENDPOINT_URL``). Settings are read at run time, never at import time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from dethrone.store.durations import parse_duration, parse_log_features

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _doc(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Configuration of the library, router and pipeline.

    Use :meth:`from_env` to read the environment and :meth:`replace` to override
    single values (e.g. from DAG params) without touching the environment.
    """

    # --- MLflow -----------------------------------------------------------------
    mlflow_tracking_uri: str = _doc("http://127.0.0.1:5000", "MLflow tracking server URI")
    experiment_name: str = _doc("dethrone-training", "MLflow experiment for training runs")
    comparison_name: str = _doc("dethrone-comparison", "MLflow experiment for A/B comparisons")
    model_name: str = _doc("dethrone-model", "registered model name in the MLflow registry")
    mlflow_log: bool = _doc(True, "log runs, reports and decisions to MLflow")
    mlflow_tracking_username: str = _doc("", "MLflow basic-auth user (empty: no auth)")
    mlflow_tracking_password: str = _doc("", "MLflow basic-auth password")
    mlflow_http_request_max_retries: int = _doc(
        2, "MLflow client retries per request (MLflow's own default retries for minutes)"
    )
    mlflow_http_request_timeout: int = _doc(30, "seconds before one MLflow request times out")
    mlflow_http_request_backoff_factor: int = _doc(1, "MLflow client retry backoff factor")
    # --- router ---------------------------------------------------------------
    flask_url: str = _doc("http://127.0.0.1:8000", "base URL of the traffic router")
    router_token: str = _doc("", "bearer token required by POST /traffic (empty: open)")
    router_data_dir: str = _doc(".dethrone/router", "folder of the router's config store")
    router_max_data_size: int = _doc(1_000_000, "largest data_size the router accepts")
    router_timeout: float = _doc(30.0, "seconds before a router request times out")
    router_bind: str = _doc("127.0.0.1:8000", "host:port gunicorn binds the router to")
    router_workers: int = _doc(0, "gunicorn workers of the router (0: one per CPU core)")
    router_log_level: str = _doc("info", "router log level (info logs one line per request)")
    router_read_token: str = _doc(
        "",
        "bearer token required by the router's data and traffic "
        "reads (empty: open; /health and /metrics stay open)",
    )
    router_large_slice_rows: int = _doc(100_000, "slices above this many rows count as large")
    router_max_large_slices: int = _doc(
        1, "large slices served at once per router worker (more: 429 with Retry-After)"
    )
    dataset_path: str = _doc("", "CSV or Parquet served by the router (empty: diamonds)")
    target: str = _doc("price", "target column of the data set")
    router_threads: int = _doc(8, "threads per gunicorn worker (concurrent requests)")
    # --- serving ----------------------------------------------------------------
    serving_enabled: bool = _doc(True, "serve @champion/@challenger on /predict, /invocations")
    serving_refresh_seconds: float = _doc(10.0, "seconds between alias re-checks per worker")
    serving_max_rows: int = _doc(1000, "most rows one prediction request may send")
    serving_batch_window_ms: float = _doc(2.0, "wait for more requests when busy (ms)")
    serving_max_batch_rows: int = _doc(256, "most rows scored in one model call")
    serving_compile: str = _doc(
        "auto", "auto: score sklearn pipelines compiled (verified exact first); off: as is"
    )
    # --- drift ----------------------------------------------------------------
    ks_pvalue_threshold: float = _doc(0.05, "KS drift when corrected p-value is below this")
    ks_min_effect: float = _doc(0.05, "KS drift also needs a statistic at least this big")
    psi_threshold: float = _doc(0.1, "PSI at or above this counts as drift")
    chi2_pvalue_threshold: float = _doc(0.05, "chi-square confirmation of categorical PSI")
    psi_bins: int = _doc(10, "reference-quantile bins for numeric PSI")
    missing_rate_threshold: float = _doc(0.05, "absolute change of the missing rate that is drift")
    drift_correction: str = _doc("holm", "multiple-testing correction: holm, bh or none")
    drift_share: float = _doc(0.0, "dataset drift when more than this share of features drift")
    drift_source: str = _doc(
        "router",
        "current data of the drift check: router (a /get_data slice), log (the champion's "
        "served rows of the last DRIFT_WINDOW) or a Parquet/CSV path or s3:// URI",
    )
    drift_window: str = _doc("24h", "window of served rows a drift check on the log reads")
    drift_min_rows: int = _doc(200, "fewer served (or labelled) rows: the check is skipped")
    monitor_interval: str = _doc("1h", "how often the monitor DAG checks the log for drift")
    monitor_consecutive: int = _doc(3, "drifted windows in a row before the monitor retrains")
    monitor_retrain: bool = _doc(False, "let the monitor start main_pipeline on drift")
    log_retention: str = _doc("30d", "the monitor prunes logged rows older than this (0: keep)")
    drift_engine: str = _doc("memory", "engine of the drift check: memory or spark (PySpark)")
    spark_master: str = _doc(
        "local[2]", "Spark master of DRIFT_ENGINE=spark (local[N], spark://...)"
    )
    # --- A/B test -------------------------------------------------------------
    ab_alpha: float = _doc(0.05, "significance level of the A/B test")
    ab_margin: float = _doc(0.0, "challenger must beat the champion by more than this")
    ab_min_rows_per_arm: int = _doc(200, "fewer rows per arm gives inconclusive")
    ab_n_boot: int = _doc(2000, "bootstrap resamples for the confidence interval")
    srm_pvalue_threshold: float = _doc(0.001, "SRM chi-square p-value below this invalidates")
    guardrail_margin: float = _doc(0.05, "relative worsening allowed on guardrail metrics")
    sequential_tuning_n: int = _doc(
        5000, "units (both arms, or pairs) where the always-valid interval is tightest"
    )
    ab_max_units_per_arm: int = _doc(
        0, "sequential test keeps the champion past this many units per arm (0: no cap)"
    )
    # --- live experiments --------------------------------------------------------
    experiment_check_minutes: int = _doc(5, "minutes between looks at a live experiment")
    rollback_window: str = _doc("1h", "guardrail window after a live promotion (e.g. 30m, 1h)")
    holdback_share: float = _doc(0.05, "traffic kept on the previous champion in the window")
    live_experiment_name: str = _doc("dethrone-live", "MLflow experiment of live experiments")
    trainer: str = _doc("", "package.module:function training challengers (empty: built-in)")
    # --- training ---------------------------------------------------------------
    task: str = _doc("auto", "regression, classification or auto (inferred from target)")
    cv_folds: int = _doc(3, "k of the k-fold cross-validation")
    random_state: int = _doc(42, "seed of training, sampling and bootstrap")
    # --- storage ----------------------------------------------------------------
    dethrone_home: str = _doc(".dethrone", "project-local folder for local state")
    staging_uri: str = _doc("", "s3://bucket/prefix or a folder for staged frames (empty: local)")
    staging_bucket: str = _doc("dethrone-staging", "bucket for staged frames in object storage")
    s3_endpoint_url: str = _doc("", "S3 endpoint for staging (empty: MLFLOW_S3_ENDPOINT_URL)")
    mlflow_s3_endpoint_url: str = _doc("", "S3 endpoint used by MLflow for artifacts")
    aws_access_key_id: str = _doc("", "S3 access key")
    aws_secret_access_key: str = _doc("", "S3 secret key")
    aws_default_region: str = _doc("us-east-1", "S3 region")
    # --- prediction log -----------------------------------------------------------
    router_database_url: str = _doc("", "database of config, log, feedback (empty: SQLite file)")
    serving_log: bool = _doc(True, "log every served prediction to ROUTER_DATABASE_URL")
    log_flush_seconds: float = _doc(1.0, "longest wait of a served row before its commit")
    log_buffer_rows: int = _doc(100_000, "rows buffered while the database is down, then dropped")
    serving_log_features: str = _doc("all", "log features: all, none or a share of requests")
    feedback_max_age: str = _doc("30d", "labels accepted for rows logged up to this long ago")
    # --- gateway hardening ---------------------------------------------------------
    router_max_string_chars: int = _doc(
        4096, "longest string (value or key) in a JSON body; longer: 413 naming the field"
    )
    feedback_token: str = _doc(
        "", "bearer token required by POST /feedback (empty: ROUTER_TOKEN; both empty: open)"
    )
    feedback_hold_seconds: float = _doc(
        3.0, "how long a label for a not yet logged request id waits for its row before 404"
    )
    serving_model_cache_dir: str = _doc(
        "", "local copies of loaded model versions (empty: ROUTER_DATA_DIR/model-cache; off)"
    )
    # --- live decisions (issue 17) ------------------------------------------------
    ab_test: str = _doc(
        "betting", "always-valid test of decide_sequential: betting (proven) or gaussian"
    )
    ab_loss_cap_quantile: float = _doc(
        0.995, "losses are capped at this quantile of the champion's offline (or earlier) losses"
    )
    live_max_units_per_arm: int = _doc(
        20_000, "a live experiment ends keep when its smaller arm has this many labelled units"
    )
    live_min_duration: str = _doc("1d", "no live promotion before the experiment ran this long")
    label_window: str = _doc(
        "1h", "labels count within this long after serving; younger rows wait to enter a look"
    )
    label_coverage_margin: float = _doc(
        0.01, "inconclusive when the arms' labelled shares are shown to differ by more than this"
    )
    contamination_share: float = _doc(
        0.01, "inconclusive when more than this share of units was served in both arms"
    )
    error_rate_margin: float = _doc(
        0.005, "guardrail: the challenger's error rate may exceed the champion's by this much"
    )
    latency_p99_margin: float = _doc(
        0.01, "guardrail: extra share of requests above the champion's p99 latency tolerated"
    )
    rollback_max_duration: str = _doc("7d", "the rollback window ends after at most this long")
    live_loss: str = _doc(
        "auto",
        "live loss: auto (absolute_error for numbers, log_loss for class probabilities, as "
        "the offline pre-screen), absolute_error, squared_error, log_loss, brier",
    )

    @classmethod
    def env_names(cls) -> list[str]:
        """Names of all environment variables read by :meth:`from_env`."""
        return [f.name.upper() for f in fields(cls)]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from environment variables, then apply ``overrides``.

        Raises
        ------
        ValueError
            If a variable cannot be converted to its field's type; the message names
            the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name.upper(), raw, type(f.default))
        return cls(**values).replace(**overrides)

    def replace(self, **overrides: Any) -> Settings:
        """Return a copy with ``overrides`` applied (strings are converted).

        Unknown names raise ``ValueError`` so that a typo in a DAG param is not ignored.
        """
        known = {f.name: f for f in fields(self)}
        clean: dict[str, Any] = {}
        for name, value in overrides.items():
            key = name.lower()
            if key not in known:
                raise ValueError(f"unknown setting {name!r}")
            if value is None:
                continue
            # every field has a default (Settings() needs no argument): the field's value
            # type, never dataclasses' MISSING marker
            kind: type[Any] = type(known[key].default)
            clean[key] = _convert(name, value, kind) if isinstance(value, str) else kind(value)
        obj = dataclasses.replace(self, **clean)
        obj._validate()
        return obj

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        # one check per concept; each message names the environment variable
        for name in (
            "ks_pvalue_threshold",
            "chi2_pvalue_threshold",
            "ab_alpha",
            "srm_pvalue_threshold",
        ):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name.upper()} must be in (0, 1), got {v}")
        self._validate_drift()
        self._validate_training()
        self._validate_router_and_log()
        self._validate_live()
        self._validate_serving()

    def _validate_drift(self) -> None:
        if self.psi_bins < 2:
            raise ValueError(f"PSI_BINS must be at least 2, got {self.psi_bins}")
        if self.drift_correction not in {"holm", "bh", "none"}:
            raise ValueError(
                f"DRIFT_CORRECTION must be holm, bh or none, got {self.drift_correction!r}"
            )
        if self.drift_engine not in {"memory", "spark"}:
            raise ValueError(f"DRIFT_ENGINE must be memory or spark, got {self.drift_engine!r}")
        parse_duration(self.drift_window, name="DRIFT_WINDOW")
        parse_duration(self.monitor_interval, name="MONITOR_INTERVAL")
        if self.log_retention.strip() not in ("0", ""):
            parse_duration(self.log_retention, name="LOG_RETENTION")
        if self.monitor_consecutive < 1 or self.drift_min_rows < 1:
            raise ValueError("MONITOR_CONSECUTIVE and DRIFT_MIN_ROWS must be at least 1")

    def _validate_training(self) -> None:
        if self.task not in {"auto", "regression", "classification"}:
            raise ValueError(f"TASK must be auto, regression or classification, got {self.task!r}")
        if self.sequential_tuning_n < 1:
            raise ValueError(
                f"SEQUENTIAL_TUNING_N must be positive, got {self.sequential_tuning_n}"
            )
        if self.ab_max_units_per_arm < 0:
            raise ValueError("AB_MAX_UNITS_PER_ARM must be >= 0 (0: no cap)")

    def _validate_router_and_log(self) -> None:
        if self.mlflow_http_request_max_retries < 0 or self.mlflow_http_request_timeout < 1:
            raise ValueError(
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES must be >= 0 and MLFLOW_HTTP_REQUEST_TIMEOUT >= 1"
            )
        if self.router_max_data_size < 1:
            raise ValueError("ROUTER_MAX_DATA_SIZE must be positive")
        if self.log_flush_seconds <= 0 or self.log_buffer_rows < 1:
            raise ValueError("LOG_FLUSH_SECONDS and LOG_BUFFER_ROWS must be positive")

        parse_log_features(self.serving_log_features)
        parse_duration(self.feedback_max_age, name="FEEDBACK_MAX_AGE")
        if self.router_max_string_chars < 1 or self.feedback_hold_seconds < 0:
            raise ValueError(
                "ROUTER_MAX_STRING_CHARS must be positive and FEEDBACK_HOLD_SECONDS >= 0"
            )

    def _validate_live(self) -> None:
        parse_duration(self.rollback_window, name="ROLLBACK_WINDOW")
        parse_duration(self.live_min_duration, name="LIVE_MIN_DURATION")
        parse_duration(self.label_window, name="LABEL_WINDOW")
        parse_duration(self.rollback_max_duration, name="ROLLBACK_MAX_DURATION")
        if self.ab_test not in {"betting", "gaussian"}:
            raise ValueError(f"AB_TEST must be betting or gaussian, got {self.ab_test!r}")
        if not 0.5 < self.ab_loss_cap_quantile <= 1.0 or self.live_max_units_per_arm < 1:
            raise ValueError(
                "AB_LOSS_CAP_QUANTILE must be in (0.5, 1] and LIVE_MAX_UNITS_PER_ARM >= 1"
            )
        for name in (
            "label_coverage_margin",
            "contamination_share",
            "error_rate_margin",
            "latency_p99_margin",
        ):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name.upper()} must be in [0, 1)")
        if not 0.0 < self.holdback_share < 1.0 or self.experiment_check_minutes < 1:
            raise ValueError("HOLDBACK_SHARE must be in (0, 1) and EXPERIMENT_CHECK_MINUTES >= 1")

    def _validate_serving(self) -> None:
        if self.router_large_slice_rows < 1 or self.router_max_large_slices < 1:
            raise ValueError("ROUTER_LARGE_SLICE_ROWS and ROUTER_MAX_LARGE_SLICES must be positive")
        for name in ("router_threads", "serving_max_rows", "serving_max_batch_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.upper()} must be at least 1")
        if self.serving_compile.strip().lower() not in ("auto", "off", ""):
            raise ValueError(f"SERVING_COMPILE must be auto or off, got {self.serving_compile!r}")
        if not self.serving_refresh_seconds > 0 or not 0 <= self.serving_batch_window_ms <= 1000:
            raise ValueError(
                "SERVING_REFRESH_SECONDS must be positive and SERVING_BATCH_WINDOW_MS in [0, 1000]"
            )

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Settings as a dict; secrets are replaced by ``"***"`` unless ``redact=False``."""
        out = dataclasses.asdict(self)
        if redact:
            for key in out:
                if any(s in key for s in ("password", "secret", "token")) and out[key]:
                    out[key] = "***"
        return out


def _convert(name: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    try:
        if kind is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    return raw
