"""Parsers of the store's settings: durations (``30d``, ``12h``, ...) and feature logging.

Kept free of database imports: :class:`dethrone.settings.Settings` validates with them.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(text: str | float, *, name: str = "duration") -> float:
    """Seconds in ``text``; a bare number is seconds.

    Raises
    ------
    ValueError
        Naming ``name`` when ``text`` is not a positive duration.

    Examples
    --------
    >>> parse_duration("30d"), parse_duration("1.5h"), parse_duration(90)
    (2592000.0, 5400.0, 90.0)
    """
    match = _PATTERN.match(str(text))
    seconds = float(match[1]) * _UNITS[(match[2] or "s").lower()] if match else 0.0
    if seconds <= 0:
        raise ValueError(
            f"{name} must be a positive duration like 30d, 12h, 90m or 45s, got {text!r}"
        )
    return seconds


def parse_log_features(value: str | float) -> float:
    """Share of requests whose features are logged: ``all`` → 1, ``none`` → 0, or a number.

    >>> parse_log_features("all"), parse_log_features("none"), parse_log_features("0.1")
    (1.0, 0.0, 0.1)
    """
    text = str(value).strip().lower()
    share = {"all": 1.0, "none": 0.0}.get(text)
    if share is None:
        try:
            share = float(text)
        except ValueError:
            share = -1.0
    if not 0.0 <= share <= 1.0:
        raise ValueError(
            f"SERVING_LOG_FEATURES must be all, none or a share in [0, 1], got {value!r}"
        )
    return share
