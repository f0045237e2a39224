"""Typed errors of the store, so callers never see a raw driver error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc


class StoreUnavailable(Exception):
    """The database cannot be read or written right now (down, full, read-only, locked).

    Attributes
    ----------
    cause : BaseException
        The driver's error, for logs; its text is in the message too.
    where : str, optional
        What could not be done, to lead the message (default ``"database unavailable"``),
        e.g. ``"config store /data/router.sqlite3 cannot write"``.
    text : str, optional
        The cause in words, instead of the driver's first line.
    """

    def __init__(
        self, cause: BaseException, *, where: str | None = None, text: str | None = None
    ) -> None:
        if text is None:
            lines = str(getattr(cause, "orig", None) or cause).strip().splitlines()
            text = lines[0] if lines else type(cause).__name__
        super().__init__(f"{where or 'database unavailable'}: {text}")
        self.cause, self.text = cause, text


class VersionConflict(Exception):
    """The update named a ``version`` that is no longer the current one."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"config version is {current}, not {expected}")
        self.expected, self.current = expected, current


# Errors of the database itself, not of the statement: connection refused or lost, disk full,
# read-only file, lock timeout. IntegrityError and ProgrammingError are bugs or conflicts and
# pass through unchanged.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError)


@contextlib.contextmanager
def unavailable_as_typed() -> Iterator[None]:
    """Re-raise an outage of the database as :class:`StoreUnavailable`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(exc) from exc
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(exc) from exc
        raise
