"""Feedback: the true label of a served row, joined to the log by ``(request_id, row)``.

Each item gets one status, so the HTTP answer is a lookup (:attr:`FeedbackResult.http_status`):

========== ===================================================== ===========
status     meaning                                               single item
========== ===================================================== ===========
stored     first label for this row                              200
overwritten a different label replaced the old one (overwrite)   200
duplicate  the same label again: nothing changes (idempotent)    200
conflict   a different label is stored; refused (no overwrite)   409
unknown    no logged prediction has this request id and row      404
too_old    the row was logged more than ``max_age`` ago          410
========== ===================================================== ===========

A list gets 200 when every item is stored, overwritten or duplicate, else 207 with the
per-item statuses. A malformed body raises :class:`FeedbackInvalid` (400) naming the field,
before anything is written.

A label must fit the task of the row it labels (:func:`label_problem`), judged from the
logged prediction: a regression row (a number was predicted) takes a finite number of at
most 2**53 in magnitude; a classifier's row logged with probabilities (``{class: p}``) takes
one of those classes. A label that does not fit raises :class:`FeedbackInvalid` naming it
(``label``, ``[3].label``) and nothing of the batch is stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dethrone.store.engine import write_transaction
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import feedback as _fb
from dethrone.store.schema import predictions as _pred

#: most items accepted in one call (one POST /feedback)
MAX_BATCH = 1_000
#: default of ``FEEDBACK_MAX_AGE``: labels for rows logged up to 30 days ago are accepted
DEFAULT_MAX_AGE = 30 * 86_400.0
_MAX_TEXT = 128
_OK = frozenset({"stored", "overwritten", "duplicate"})
_SINGLE_STATUS = {
    "stored": 200,
    "overwritten": 200,
    "duplicate": 200,
    "conflict": 409,
    "unknown": 404,
    "too_old": 410,
}
_IN_CHUNK = 500  # request ids per IN (...) list, well under every driver's parameter limit


class FeedbackInvalid(ValueError):
    """A malformed feedback body; ``field`` names the offending field (``"[3].row"``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class FeedbackItem:
    """One validated label."""

    request_id: str
    row: int
    label: float | int | str


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item; ``arm`` is the served arm (None when unknown)."""

    request_id: str
    row: int
    status: str
    arm: str | None = None
    label: Any = None
    previous: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "label"}


@dataclass(frozen=True)
class FeedbackResult:
    """Per-item results of :func:`record_feedback`, in the order of the items."""

    items: tuple[ItemResult, ...]
    single: bool = False

    @property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_SINGLE_STATUS, 0)
        for item in self.items:
            out[item.status] += 1
        return out

    @property
    def http_status(self) -> int:
        """200, or 207 for a list with a refused item; a single item's own status."""
        if self.single:
            return _SINGLE_STATUS[self.items[0].status]
        return 200 if all(i.status in _OK for i in self.items) else 207

    def to_dict(self) -> dict[str, Any]:
        if self.single:
            return self.items[0].to_dict()
        return {"results": [i.to_dict() for i in self.items], "counts": self.counts}


def parse_feedback(body: Any) -> tuple[list[FeedbackItem], bool, bool]:
    """Validate a ``POST /feedback`` body; returns ``(items, overwrite, single)``.

    Accepted: one item ``{"request_id", "row", "label"[, "overwrite"]}``, a list of items,
    or ``{"items": [...], "overwrite": bool}``. A batch's items carry no ``overwrite`` of
    their own (it is given once, beside ``items``), so none is silently ignored.

    >>> parse_feedback({"request_id": "r1", "row": 0, "label": 2.5})
    ([FeedbackItem(request_id='r1', row=0, label=2.5)], False, True)
    """
    if isinstance(body, Mapping) and "items" in body:
        raw, single, prefix = body["items"], False, "items"
    elif isinstance(body, Mapping):
        raw, single, prefix = [body], True, ""
    else:
        raw, single, prefix = body, False, ""
    overwrite = body.get("overwrite", False) if isinstance(body, Mapping) else False
    if not isinstance(overwrite, bool):
        raise FeedbackInvalid("overwrite", "must be true or false")
    if not isinstance(raw, list):
        raise FeedbackInvalid(prefix or "body", "must be an object or a list of objects")
    if not 1 <= len(raw) <= MAX_BATCH:
        raise FeedbackInvalid(prefix or "body", f"must hold 1 to {MAX_BATCH} items, got {len(raw)}")
    items = [_item(x, "" if single else f"{prefix}[{i}]", single) for i, x in enumerate(raw)]
    return _no_repeats(items, prefix), overwrite, single


def _item(raw: Any, where: str, single: bool = False) -> FeedbackItem:
    def name(field: str) -> str:
        return f"{where}.{field}" if where else field

    if not isinstance(raw, Mapping):
        raise FeedbackInvalid(where or "body", "must be an object")
    if not single and "overwrite" in raw:
        raise FeedbackInvalid(
            name("overwrite"),
            'give overwrite once for a batch: {"items": [...], "overwrite": true}',
        )
    extra = set(raw) - {"request_id", "row", "label", "overwrite"}
    if extra:
        raise FeedbackInvalid(name(sorted(extra)[0]), "unknown field")
    rid, row, label = raw.get("request_id"), raw.get("row"), raw.get("label")
    if not isinstance(rid, str) or not 0 < len(rid) <= _MAX_TEXT:
        raise FeedbackInvalid(
            name("request_id"), f"must be a string of 1 to {_MAX_TEXT} characters"
        )
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < 2**31:
        raise FeedbackInvalid(name("row"), "must be an integer >= 0")
    if isinstance(label, bool) or not isinstance(label, int | float | str):
        raise FeedbackInvalid(name("label"), "must be a number or a string")
    if isinstance(label, float) and not math.isfinite(label):
        raise FeedbackInvalid(name("label"), "must be a finite number")
    if isinstance(label, str) and not 0 < len(label) <= _MAX_TEXT:
        raise FeedbackInvalid(name("label"), f"must be 1 to {_MAX_TEXT} characters")
    return FeedbackItem(rid, row, label)


def _no_repeats(items: list[FeedbackItem], prefix: str) -> list[FeedbackItem]:
    seen: dict[tuple[str, int], int] = {}
    for i, item in enumerate(items):
        first = seen.setdefault((item.request_id, item.row), i)
        if first != i:
            raise FeedbackInvalid(f"{prefix}[{i}]", f"same request_id and row as item {first}")
    return items


#: largest regression label accepted: float64 holds every integer up to here exactly, and
#: a mean of absolute errors stays far from overflow (-1e308 once read 1.43e307 as live loss)
MAX_ABS_LABEL = float(2**53)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _class_key(v: Any) -> str:
    if _number(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def label_problem(label: Any, prediction: Any) -> str | None:
    """Why ``label`` does not fit a row whose logged prediction is ``prediction`` (None: it fits).

    >>> label_problem(3.5, 2.0), label_problem("abc", 2.0)
    (None, 'must be a number: the model of this row is a regressor')
    >>> label_problem("b", {"a": 0.2, "b": 0.8}), label_problem("c", {"a": 0.2, "b": 0.8})
    (None, "must be one of the model's classes: 'a', 'b'")
    >>> label_problem(1, {"0": 0.4, "1": 0.6})
    """
    if isinstance(prediction, dict) and prediction:
        known = {_class_key(k) for k in prediction}
        if _class_key(label) in known:
            return None
        shown = ", ".join(repr(k) for k in sorted(known)[:20])
        return f"must be one of the model's classes: {shown}"
    if _number(prediction):
        if not _number(label):
            return "must be a number: the model of this row is a regressor"
        if not (isinstance(label, int) or math.isfinite(label)) or abs(label) > MAX_ABS_LABEL:
            return f"must be a finite number of at most {MAX_ABS_LABEL:.0f} in magnitude"
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def record_feedback(
    engine: Engine,
    items: Sequence[FeedbackItem | Mapping[str, Any]],
    *,
    overwrite: bool = False,
    max_age: float = DEFAULT_MAX_AGE,
    now: float | None = None,
    single: bool = False,
) -> FeedbackResult:
    """Store labels for logged rows in one transaction; see the module for the statuses.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated database.
    items : sequence of FeedbackItem or mapping
        Mappings are validated like :func:`parse_feedback` items.
    overwrite : bool
        Replace a different stored label instead of refusing it with ``conflict``.
    max_age : float
        Seconds; a row logged longer ago gets ``too_old`` (``FEEDBACK_MAX_AGE``).
    now : float, optional
        Current time (seconds since the epoch), for tests.
    single : bool
        The body was one item (changes only :attr:`FeedbackResult.http_status`).

    Raises
    ------
    FeedbackInvalid
        Before anything is written.
    StoreUnavailable
        When the database is down, full or read-only; nothing is written then.
    """
    if len(items) > MAX_BATCH:
        raise FeedbackInvalid("body", f"must hold 1 to {MAX_BATCH} items, got {len(items)}")
    clean = _no_repeats(
        [i if isinstance(i, FeedbackItem) else _item(i, f"[{n}]") for n, i in enumerate(items)], ""
    )
    now = time.time() if now is None else now
    with unavailable_as_typed(), write_transaction(engine) as conn:
        logged, stored = _lookup(conn, clean)
        # Raised inside the transaction: nothing of the batch is stored.
        _check_labels(clean, logged, single)
        results, new, changed = _classify_all(clean, logged, stored, overwrite, now, max_age)
        lost = _insert_new(conn, new)
        if changed:
            conn.execute(
                update(_fb).where(
                    _fb.c.request_id == bindparam("k_id"), _fb.c.row == bindparam("k_row")
                ),
                changed,
            )
    if lost:
        # Another writer stored these rows between our read and our insert: ask again.
        again = record_feedback(
            engine,
            [i for i in clean if (i.request_id, i.row) in lost],
            overwrite=overwrite,
            max_age=max_age,
            now=now,
        )
        redo = {(r.request_id, r.row): r for r in again.items}
        results = [redo.get((r.request_id, r.row), r) for r in results]
    return FeedbackResult(tuple(results), single=single)


def _check_labels(clean: list[FeedbackItem], logged: dict, single: bool) -> None:
    """Raise FeedbackInvalid for the first label its logged row's model cannot have."""
    for n, item in enumerate(clean):
        found = logged.get((item.request_id, item.row))
        problem = None if found is None else label_problem(item.label, found[2])
        if problem is not None:
            raise FeedbackInvalid("label" if single else f"[{n}].label", problem)


def _classify_all(
    clean: list[FeedbackItem],
    logged: dict,
    stored: dict,
    overwrite: bool,
    now: float,
    max_age: float,
) -> tuple[list[ItemResult], list[dict[str, Any]], list[dict[str, Any]]]:
    """Each item's result, and the rows to insert and to overwrite."""
    results, new, changed = [], [], []
    for item in clean:
        key = (item.request_id, item.row)
        status, arm, previous = _classify(
            item, logged.get(key), stored.get(key, _NONE), overwrite, now - max_age
        )
        if status == "stored":
            new.append(
                {"request_id": key[0], "row": key[1], "label": item.label, "received_at": now}
            )
        elif status == "overwritten":
            changed.append(
                {"k_id": key[0], "k_row": key[1], "label": item.label, "received_at": now}
            )
        results.append(ItemResult(key[0], key[1], status, arm, item.label, previous))
    return results, new, changed


_NONE = object()


def _classify(
    item: FeedbackItem,
    logged: tuple[float, str | None, Any] | None,
    stored: Any,
    overwrite: bool,
    oldest: float,
) -> tuple[str, str | None, Any]:
    if logged is None:
        return "unknown", None, None
    ts, arm, _ = logged
    if ts < oldest:
        return "too_old", arm, None
    if stored is _NONE:
        return "stored", arm, None
    if _same(stored, item.label):
        return "duplicate", arm, None
    return ("overwritten" if overwrite else "conflict"), arm, stored


def _lookup(conn, items: list[FeedbackItem]) -> tuple[dict, dict]:
    """Logged rows ``{key: (first ts, served arm, served prediction)}`` and stored labels
    ``{key: label}``."""
    wanted = {(i.request_id, i.row) for i in items}
    ids = sorted({i.request_id for i in items})
    logged: dict[tuple[str, int], tuple[float, str | None, Any]] = {}
    stored: dict[tuple[str, int], Any] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        for rid, row, ts, arm, served, prediction in conn.execute(
            select(
                _pred.c.request_id,
                _pred.c.row,
                _pred.c.ts,
                _pred.c.arm,
                _pred.c.served,
                _pred.c.prediction,
            ).where(_pred.c.request_id.in_(chunk))
        ):
            key = (rid, row)
            if key not in wanted:
                continue
            old_ts, old_arm, old_pred = logged.get(key, (ts, None, prediction))
            logged[key] = (
                min(ts, old_ts),
                arm if served else old_arm,
                prediction if served else old_pred,
            )
        for rid, row, label in conn.execute(
            select(_fb.c.request_id, _fb.c.row, _fb.c.label)
            .where(_fb.c.request_id.in_(chunk))
            .with_for_update()
        ):
            stored[(rid, row)] = label
    return logged, stored


def _insert_new(conn, rows: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """Insert the new labels; returns the keys someone else inserted first."""
    if not rows:
        return set()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_fb).on_conflict_do_nothing().returning(_fb.c.request_id, _fb.c.row)
    done = {tuple(r) for r in conn.execute(stmt, rows)}
    return {(r["request_id"], r["row"]) for r in rows} - done


def missing_rows(engine: Engine, keys: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """The ``(request_id, row)`` keys of ``keys`` that no logged prediction has (yet)."""
    keys = set(keys)
    ids = sorted({k[0] for k in keys})
    found: set[tuple[str, int]] = set()
    with unavailable_as_typed(), engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            for rid, row in conn.execute(
                select(_pred.c.request_id, _pred.c.row).where(
                    _pred.c.request_id.in_(ids[start : start + _IN_CHUNK])
                )
            ):
                found.add((rid, row))
    return keys - found


def stored_labels(engine: Engine, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    """The stored label of each ``(request_id, row)`` that has one."""
    keys = set(keys)
    ids = sorted({k[0] for k in keys})
    out: dict[tuple[str, int], Any] = {}
    with unavailable_as_typed(), engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            for rid, row, label in conn.execute(
                select(_fb.c.request_id, _fb.c.row, _fb.c.label).where(
                    _fb.c.request_id.in_(ids[start : start + _IN_CHUNK])
                )
            ):
                if (rid, row) in keys:
                    out[(rid, row)] = label
    return out
