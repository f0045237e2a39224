"""Sticky arm assignment: a hash of (experiment salt, unit) against the traffic split.

Every worker, replica and restart computes the same arm for the same unit with no shared
state and no lookup (the approach of GrowthBook and Statsig). The salt includes the
challenger's version, so a new challenger re-randomises the units of the next experiment.
"""

from __future__ import annotations

import hashlib
import random

from dethrone.experiments.modes import CHALLENGER, CHAMPION, experiment_salt

__all__ = ["CHALLENGER", "CHAMPION", "assign", "bucket", "experiment_salt"]
_SCALE = float(2**64)


def bucket(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) fixed by ``(salt, unit)``.

    The first 8 bytes of SHA-256 are uniform whatever the unit ids look like
    (sequential integers, e-mails), which a cheap hash such as Python's ``hash`` is not,
    and SHA-256 is the same in every process (``hash`` of a str is salted per process).

    >>> bucket("exp-1", "customer-42") == bucket("exp-1", "customer-42")
    True
    >>> 0.0 <= bucket("exp-1", "customer-42") < 1.0
    True
    """
    digest = hashlib.sha256(f"{salt}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(
    share_champion: float, *, salt: str, unit: str | None, rng: random.Random | None = None
) -> str:
    """``"champion"`` or ``"challenger"`` for one request.

    Parameters
    ----------
    share_champion : float
        ``a`` of the traffic config, the champion's share in [0, 1].
    salt : str
        The experiment salt (:func:`experiment_salt`).
    unit : str or None
        The unit key; ``None`` assigns at random.
    rng : random.Random, optional
        Source of the random draw for requests without a unit.

    >>> assign(0.7, salt="s", unit="u1") == assign(0.7, salt="s", unit="u1")
    True
    >>> assign(1.0, salt="s", unit="anyone"), assign(0.0, salt="s", unit="anyone")
    ('champion', 'challenger')
    """
    draw = (rng or random).random() if unit is None else bucket(salt, unit)
    return CHAMPION if draw < share_champion else CHALLENGER
