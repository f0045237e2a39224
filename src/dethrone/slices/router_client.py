"""HTTP client of the traffic router: timeouts, retries with backoff, token, slice checks."""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import pandas as pd
import requests
from urllib3.exceptions import NewConnectionError

from dethrone.settings import Settings


class RouterError(RuntimeError):
    """The router could not be reached, refused the request, or sent an invalid answer.

    ``permanent`` is True when retrying cannot help (a 4xx answer, an invalid body).
    ``status`` is the HTTP status of the last answer (None: no answer); ``reason`` is a
    short kind for counting: ``"HTTP 503"``, ``"ReadTimeout"``, ``"ConnectionError"``, ...
    """

    def __init__(
        self, message: str, *, permanent: bool = True, status: int | None = None, reason: str = ""
    ):
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.reason = reason or (f"HTTP {status}" if status is not None else "error")


#: headers naming the config version and the share of A a data answer was drawn with.
VERSION_HEADER, SHARE_HEADER = "X-Dethrone-Config-Version", "X-Dethrone-Share-A"
#: header of POST /traffic saying who or what makes the change (kept in the history)
SOURCE_HEADER, MAX_SOURCE = "X-Dethrone-Source", 256
#: a live experiment's own changes to the router say so (see :meth:`RouterClient.set_traffic`)
EXPERIMENT_HEADER = "X-Dethrone-Experiment"


def source_text(text: str) -> str:
    """``text`` made a valid :data:`SOURCE_HEADER` value: printable ASCII (others become
    ``?``), at most :data:`MAX_SOURCE` characters (longer text is cut, ending ``...``),
    not empty, no spaces at the ends (HTTP drops them, and an empty value is refused).

    >>> source_text("run" + chr(9) + "manual__1")
    'run?manual__1'
    >>> len(source_text("x" * 300))
    256
    """
    clean = "".join(c if " " <= c <= "~" else "?" for c in text).strip() or "?"
    return clean if len(clean) <= MAX_SOURCE else clean[: MAX_SOURCE - 3] + "..."


class ABSlices(NamedTuple):
    """One /ab_data answer: both arms plus the split and config they were cut by."""

    a: pd.DataFrame
    b: pd.DataFrame
    share_a: float
    config_version: str | None


# Server errors and throttling are worth retrying; a 4xx means the request itself is wrong.
_RETRY_STATUS = {429, 500, 502, 503, 504}
# Answers after which a non-idempotent request (POST /predict) surely was not served.
_UNSERVED_STATUS = {429, 503}


def _unsent(exc: requests.RequestException) -> bool:
    """True when the request never reached the server (connect refused or timed out)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(
        getattr(cause, "reason", None), NewConnectionError
    )


def frame_from_split(payload: Any, *, what: str = "slice") -> pd.DataFrame:
    """Turn pandas ``orient="split"`` JSON into a frame, or raise :class:`RouterError`.

    Parameters
    ----------
    payload : dict
        ``{"columns": [...], "index": [...], "data": [[...], ...]}``.
    what : str
        Name used in the error message.
    """
    if not isinstance(payload, dict) or not {"columns", "data"} <= set(payload):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise RouterError(
            f"router sent an invalid {what}: expected pandas split JSON with "
            f"'columns' and 'data', got {keys}"
        )
    columns, data = payload["columns"], payload["data"]
    if not isinstance(columns, list) or not isinstance(data, list):
        raise RouterError(f"router sent an invalid {what}: 'columns' and 'data' must be lists")
    if any(not isinstance(row, list) or len(row) != len(columns) for row in data):
        raise RouterError(
            f"router sent an invalid {what}: a row does not have {len(columns)} values"
        )
    index = payload.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        raise RouterError(f"router sent an invalid {what}: index length does not match data")
    return pd.DataFrame(data, columns=columns, index=index)


class RouterClient:
    """Talks to the router's HTTP API.

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:8000``.
    token : str
        Bearer token sent with POST /traffic (empty: none).
    read_token : str
        Bearer token sent with every read (``ROUTER_READ_TOKEN``; empty: none).
    timeout : float
        Seconds per request.
    retries : int
        Extra attempts after a connection error, timeout or 429/5xx answer.
    backoff : float
        First wait in seconds; doubled after each failed attempt.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        read_token: str = "",
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = requests.Session()
        if read_token:
            # POST /traffic sends its own header with the write token, which wins.
            self.session.headers["Authorization"] = f"Bearer {read_token}"

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> RouterClient:
        """A client for ``settings.flask_url`` with its token and timeout."""
        return cls(
            settings.flask_url,
            token=settings.router_token,
            read_token=settings.router_read_token,
            timeout=settings.router_timeout,
            **kwargs,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        with_headers: bool = False,
        replay_safe: bool = True,
        **kwargs: Any,
    ) -> Any:
        # replay_safe=False (POST /predict): retry only when the request surely was not
        # served, since a replay after a timeout could serve and log it twice.
        url = f"{self.base_url}{path}"
        wait = self.backoff
        last, status, reason = "", None, "error"
        for attempt in range(self.retries + 1):
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                last, status, reason = f"{type(exc).__name__}: {exc}", None, type(exc).__name__
                if not replay_safe and not _unsent(exc):
                    raise RouterError(
                        f"{method} {url} failed: {last}", permanent=False, reason=reason
                    ) from None
            else:
                if resp.status_code < 400:
                    try:
                        body = resp.json()
                    except ValueError:
                        raise RouterError(
                            f"{method} {url} answered {resp.status_code} "
                            f"with a body that is not JSON",
                            status=resp.status_code,
                            reason="invalid body",
                        ) from None
                    return (body, resp.headers) if with_headers else body
                status = resp.status_code
                last, reason = f"HTTP {status}: {resp.text[:300]}", f"HTTP {status}"
                if status not in (_RETRY_STATUS if replay_safe else _UNSERVED_STATUS):
                    raise RouterError(
                        f"{method} {url} failed: {last}",
                        status=status,
                        permanent=replay_safe or status < 500,
                    )
            if attempt < self.retries:
                time.sleep(wait)
                wait *= 2
        raise RouterError(
            f"router at {self.base_url} unreachable after "
            f"{self.retries + 1} attempts ({method} {path}): {last}",
            permanent=False,
            status=status,
            reason=reason,
        )

    @staticmethod
    def _params(seed: int | None) -> dict[str, int]:
        return {} if seed is None else {"seed": int(seed)}

    def get_traffic(self) -> dict[str, Any]:
        """The router's current config (GET /traffic)."""
        return self._request("GET", "/traffic")

    def set_traffic(
        self, *, source: str | None = None, as_experiment: str | None = None, **config: Any
    ) -> dict[str, Any]:
        """POST /traffic with ``config``; returns the stored config.

        ``source`` (who or what makes the change) goes in :data:`SOURCE_HEADER`; the
        router keeps it in the change's history entry and refuses (400) a value that is
        not 1 to 256 printable ASCII characters (:func:`source_text` makes one).
        ``as_experiment`` (a live experiment's id) goes in :data:`EXPERIMENT_HEADER`: while
        an experiment runs, only its own changes may move the split (the router answers
        409 ``experiment_running`` to others).
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if source is not None:
            headers[SOURCE_HEADER] = source
        if as_experiment is not None:
            headers[EXPERIMENT_HEADER] = as_experiment
        body = self._request("POST", "/traffic", json=config, headers=headers)
        if not isinstance(body, dict) or "traffic" not in body:
            raise RouterError(f"unexpected answer to POST /traffic: {body!r:.300}")
        return body["traffic"]

    def predict(
        self, rows: list[dict[str, Any]], *, unit: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """POST /predict ``{"rows": rows}``; the answer has ``predictions``, ``arm``,
        ``model_version`` and ``request_id``.

        ``unit`` goes in ``X-Dethrone-Unit`` (sticky assignment), ``request_id`` in
        ``X-Request-ID``. Retried only when the request surely was not served (connection
        refused, 429, 503), never after a timeout.
        """
        headers = {}
        if unit is not None:
            headers["X-Dethrone-Unit"] = str(unit)
        if request_id is not None:
            headers["X-Request-ID"] = str(request_id)
        body = self._request(
            "POST", "/predict", json={"rows": rows}, headers=headers, replay_safe=False
        )
        if not isinstance(body, dict) or "predictions" not in body:
            raise RouterError(
                f"unexpected answer to POST /predict: {body!r:.300}", reason="invalid body"
            )
        return body

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /feedback with a list of ``{"request_id", "row", "label"}`` items.

        Returns the answer (200, or 207 with per-item ``results``); a 4xx raises
        :class:`RouterError`. Safe to retry: the same label again is a ``duplicate``.
        Sends ``ROUTER_TOKEN`` when set (it also passes a read-token check).
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = self._request("POST", "/feedback", json=list(items), headers=headers)
        if not isinstance(body, dict):
            raise RouterError(
                f"unexpected answer to POST /feedback: {body!r:.300}", reason="invalid body"
            )
        return body

    def get_data(self, *, seed: int | None = None) -> pd.DataFrame:
        """A training/current slice (GET /get_data)."""
        return frame_from_split(
            self._request("GET", "/get_data", params=self._params(seed)), what="/get_data slice"
        )

    def _ab_answer(self, seed: int | None) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
        body, headers = self._request(
            "GET", "/ab_data", params=self._params(seed), with_headers=True
        )
        if not isinstance(body, dict) or not {"a_data", "b_data"} <= set(body):
            raise RouterError(
                "router sent an invalid /ab_data answer: expected keys 'a_data' and 'b_data'"
            )
        return (
            frame_from_split(body["a_data"], what="/ab_data a_data"),
            frame_from_split(body["b_data"], what="/ab_data b_data"),
            headers,
        )

    def ab_data(self, *, seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The A and B slices (GET /ab_data)."""
        a, b, _ = self._ab_answer(seed)
        return a, b

    def ab_slices(self, *, seed: int | None = None) -> ABSlices:
        """The A and B slices with the split and config version of the same answer.

        Reading the split from a separate GET /traffic would race with a config change
        in between and make the SRM check test the wrong split.
        """
        a, b, headers = self._ab_answer(seed)
        try:
            share_a = float(headers.get(SHARE_HEADER, "nan"))
        except ValueError:
            share_a = math.nan
        if not 0.0 <= share_a <= 1.0:  # also false for nan
            raise RouterError(
                f"router sent an /ab_data answer without a valid {SHARE_HEADER} "
                f"header (the split of the rows); upgrade the router"
            )
        return ABSlices(a, b, share_a, headers.get(VERSION_HEADER))
