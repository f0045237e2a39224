"""Tables of the router's database (SQLAlchemy Core): config, history, predictions, feedback,
and the live experiments with their looks (what the experiment page reads).

Times of the log are UTC seconds since the epoch (double precision): the same type and the
same comparisons on SQLite and PostgreSQL, one number per row to write, and exact enough
(well under a microsecond today). Config times keep the seed's ISO strings, so the JSON of
``GET /traffic/history`` is unchanged.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: one row (id = 1): the current traffic config
config = Table(
    "config",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", String(32), nullable=False),
    CheckConstraint("id = 1", name="config_single_row"),
)

#: every accepted change of the config, keyed by the version it created
history = Table(
    "history",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
    # who or what made the change (``X-Dethrone-Source``); NULL when not said
    Column("source", String(256)),
)

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid alias must be INTEGER

#: one row per (request, row of the request, arm); a shadow prediction has its own arm
predictions = Table(
    "predictions",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("row", Integer, nullable=False),
    Column("arm", String(64), nullable=False),
    Column("served", Boolean, nullable=False, default=True),
    Column("unit", String(256)),
    Column("model_name", String(256)),
    Column("model_version", String(64)),
    Column("experiment_id", String(128)),
    Column("champion_version", String(64)),
    Column("challenger_version", String(64)),
    Column("salt", String(128)),
    Column("ts", Float(precision=53), nullable=False),
    Column("prediction", JSON(none_as_null=True)),
    Column("latency_ms", Float),
    Column("features", JSON(none_as_null=True)),
    UniqueConstraint("request_id", "row", "arm", name="predictions_request_row_arm"),
    Index("predictions_ts", "ts"),
    Index("predictions_experiment_ts", "experiment_id", "ts"),
    # the experiment page's per-arm counts: a covering index, no table row read
    Index("predictions_ts_arm", "ts", "arm", "model_version", "served", "latency_ms"),
)

#: the true outcome of one served row; at most one label per (request_id, row)
feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("row", Integer, primary_key=True, autoincrement=False),
    Column("label", JSON, nullable=False),
    Column("received_at", Float(precision=53), nullable=False),
    Index("feedback_received_at", "received_at"),
)

#: one row per live experiment: its record's JSON (``LiveExperiment.to_dict``) and the fields
#: the experiment page lists and sorts by; ``actions`` is every operator action the record
#: carried, oldest first (the record itself keeps only the last one)
experiments = Table(
    "experiments",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("state", String(32), nullable=False),
    Column("started_at", Float(precision=53)),
    Column("ended_at", Float(precision=53)),
    Column("outcome", String(32)),
    Column("champion_version", String(64)),
    Column("challenger_version", String(64)),
    Column("mode", String(16)),
    Column("split", Float),
    Column("updated_at", Float(precision=53), nullable=False),
    Column("record", JSON, nullable=False),
    Column("actions", JSON, nullable=False),
    # the settled per-arm counts of the log (``store.experiments.arm_counts``)
    Column("counts", JSON),
    Index("experiments_started_at", "started_at"),
)

#: one row per look at a live experiment: the look's JSON (``Look.to_dict`` or a look
#: result's ``to_dict``) under its number (1, 2, ...)
experiment_looks = Table(
    "experiment_looks",
    metadata,
    Column("experiment_id", String(128), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("time", Float(precision=53), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("outcome", String(32)),
    Column("body", JSON, nullable=False),
)

#: columns of a logged prediction that a caller may give (``id`` is the database's)
PREDICTION_FIELDS: tuple[str, ...] = tuple(c.name for c in predictions.columns if c.name != "id")

#: one row per drift check of the monitor on the prediction log: its verdict, how many
#: drifted windows in a row it completes, and the whole result (features, prediction
#: drift, live performance) as JSON; the router's gauges and the serving page read the newest
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("time", Float(precision=53), nullable=False),
    Column("champion_version", String(64)),
    Column("status", String(16), nullable=False),
    Column("drifted", Boolean, nullable=False),
    Column("consecutive", Integer, nullable=False),
    Column("run_id", String(64)),
    Column("result", JSON, nullable=False),
    Index("monitor_results_time", "time"),
)

#: one row per scope of a live experiment's looks (its salt, versions, arms, start, loss and
#: label window, hashed into ``key``): how far the per-unit sums of ``look_units`` reach.
#: The served part of the rows served before ``served_until``, and the eligible part of
#: those served before ``closed_until``, are in them, with the rows written late up to
#: ``last_id`` (the log's last id at the last fold); ``requests`` of them have a latency;
#: ``caps`` the p99 guardrail's caps known so far (epoch start → cap, null: not tested);
#: ``tail`` each arm's floor and count in ``look_tail``, and its folded requests
look_scopes = Table(
    "look_scopes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),
    Column("served_until", Float(precision=53), nullable=False),
    Column("closed_until", Float(precision=53), nullable=False),
    Column("last_id", _ID, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("caps", JSON, nullable=False),
    Column("tail", JSON, nullable=False),
    Column("updated_at", Float(precision=53), nullable=False),
    UniqueConstraint("key", name="look_scopes_key"),
)

#: per scope, one row per (unit key, arm): the sums and first times of the rows whose part
#: in a look is final (``dethrone.experiments.look_table.GROUP_COLUMNS``)
look_units = Table(
    "look_units",
    metadata,
    Column("scope_id", Integer, primary_key=True, autoincrement=False),
    Column("k", Text, primary_key=True),
    Column("b", Integer, primary_key=True, autoincrement=False),
    *(
        Column(name, BigInteger, nullable=False)
        for name in ("rows", "errors", "eligible", "labelled", "latencies", "tested", "slow")
    ),
    *(
        Column(name, Float(precision=53))
        for name in (
            "t",
            "tie",
            "t_eligible",
            "tie_eligible",
            "t_labelled",
            "tie_labelled",
            "t_tested",
            "tie_tested",
        )
    ),
    Column("loss_sum", Float(precision=53), nullable=False),
)

#: per scope and arm, the latencies of the folded requests at or above the arm's floor
#: (``look_scopes.tail``: floor and count; about 2% of them): the top 1% the arms' p99
#: figures need, without a scan of the log
look_tail = Table(
    "look_tail",
    metadata,
    Column("scope_id", Integer, nullable=False),
    Column("b", Integer, nullable=False),
    Column("latency_ms", Float(precision=53), nullable=False),
    Index("look_tail_scope", "scope_id", "b", "latency_ms"),
)
