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
    """

    def __init__(self, cause: BaseException) -> None:
        text = str(getattr(cause, "orig", None) or cause).strip().splitlines()
        super().__init__(f"database unavailable: {text[0] if text else type(cause).__name__}")
        self.cause = cause


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
