"""Sample-ratio-mismatch (SRM) test: did the router split traffic as configured?"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from scipy import special

from dethrone.abtest.serialize import ResultMixin

__all__ = ["SRMResult", "srm_test"]


@dataclass(frozen=True, kw_only=True)
class SRMResult(ResultMixin):
    """Result of :func:`srm_test` (chi-square, valid once) and of
    :func:`~dethrone.abtest.sequential_srm.sequential_srm_test` (Bayes factor, valid at
    every look): one shape, so a decision reads its SRM check the same way either way.

    Attributes
    ----------
    pvalue : float
        Probability of a split at least this unbalanced if the router honoured
        ``expected_share_a`` (always-valid for the Bayes-factor test).
    n_a, n_b : int
        Observed rows (or units) per arm.
    expected_share_a, observed_share_a : float
        Configured and observed share of arm A.
    threshold : float
        p-values below this mean a sample ratio mismatch.
    mismatch : bool
        ``pvalue < threshold``.
    method : {"chi-square", "bayes-factor"}
        The test that gave ``pvalue``.
    statistic : float or None
        Pearson chi-square statistic (None for the Bayes-factor test).
    df : int or None
        Degrees of freedom of the chi-square test (always 1 for two arms).
    log_bayes_factor : float or None
        Natural log of the mixture likelihood ratio ``BF_n`` against the configured
        split (None for the chi-square test).
    concentration : float or None
        Prior concentration ``k`` of the Bayes-factor test.
    """

    pvalue: float
    n_a: int
    n_b: int
    expected_share_a: float
    observed_share_a: float
    threshold: float
    mismatch: bool
    method: Literal["chi-square", "bayes-factor"] = "chi-square"
    statistic: float | None = None
    df: int | None = None
    log_bayes_factor: float | None = None
    concentration: float | None = None

    def reason(self) -> str:
        """One readable sentence on the verdict (used in decision reasons)."""
        if self.method == "chi-square":
            counts, test = f"{self.n_a}/{self.n_b} rows", "chi-square p"
        else:  # counts may be units, so no unit is named
            counts, test = f"{self.n_a}/{self.n_b}", "always-valid SRM p"
        split = (
            f"observed A/B split {_fmt_split(self.observed_share_a)} ({counts}) vs "
            f"expected {_fmt_split(self.expected_share_a)}, {test} = {self.pvalue:.3g}"
        )
        if self.mismatch:
            return (
                f"sample ratio mismatch (SRM): {split} < {self.threshold:g}; the traffic "
                "split is broken, so the comparison cannot be trusted"
            )
        return f"no sample ratio mismatch: {split} >= {self.threshold:g}"


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = math.trunc(value)
        else:
            raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    return int(value)


def srm_test(n_a: int, n_b: int, expected_share_a: float, *, threshold: float = 0.001) -> SRMResult:
    """Chi-square goodness-of-fit test of the observed A/B row counts.

    A sample ratio mismatch means rows were lost or duplicated unevenly between the
    arms (a router bug, a crashing model, a filter that depends on the arm), so any
    comparison of the arms is biased. The conventional threshold is strict (0.001)
    because this test runs on every experiment and a false alarm throws one away.

    Parameters
    ----------
    n_a, n_b : int
        Rows observed in arm A (champion) and arm B (challenger).
    expected_share_a : float
        Configured share of traffic for arm A, strictly between 0 and 1.
    threshold : float, default 0.001
        ``mismatch`` is true when the p-value is below this.

    Returns
    -------
    SRMResult
        Equal to ``scipy.stats.chisquare([n_a, n_b], f_exp=[N*s, N*(1-s)])``.

    Raises
    ------
    ValueError
        If a count is negative or not an integer, both are zero, or a share or the
        threshold is outside (0, 1).
    """
    n_a, n_b = _count(n_a, "n_a"), _count(n_b, "n_b")
    share = float(expected_share_a)
    if not 0.0 < share < 1.0:
        raise ValueError(f"expected_share_a must be strictly between 0 and 1, got {share}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold}")
    total = n_a + n_b
    if total == 0:
        raise ValueError("no rows in either arm: the SRM test needs at least one row")
    exp_a, exp_b = total * share, total * (1.0 - share)
    stat = (n_a - exp_a) ** 2 / exp_a + (n_b - exp_b) ** 2 / exp_b
    # The survival function keeps precision far into the tail, where 1 - cdf would be 0.
    pvalue = float(special.chdtrc(1, stat))
    return SRMResult(
        pvalue=pvalue,
        n_a=n_a,
        n_b=n_b,
        expected_share_a=share,
        observed_share_a=n_a / total,
        threshold=float(threshold),
        mismatch=bool(pvalue < threshold),
        method="chi-square",
        statistic=float(stat),
        df=1,
    )


def _fmt_split(share: float) -> str:
    return f"{100 * share:.1f}%/{100 * (1 - share):.1f}%"


def srm_reason(result: SRMResult) -> str:
    """One readable sentence describing ``result`` (``result.reason()``)."""
    return result.reason()
