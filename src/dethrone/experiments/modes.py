"""Serving modes and arm names, defined once.

A serving mode says which model answers a request, which models score it, which logged
arms a look compares and which kind of decision applies. The router's validation, its
OpenAPI document, the gateway's scoring, the look, the DAG's params and the CLI all read
this table, so adding a mode is one entry here (and its branch in the gateway's scorer).

>>> MODES["shadow"].paired, MODES["ab"].splits
(True, True)
>>> serving_mode("canary")
Traceback (most recent call last):
...
ValueError: mode must be one of ab, shadow, champion, got 'canary'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARMS",
    "CHALLENGER",
    "CHAMPION",
    "EXPERIMENT_MODES",
    "MODES",
    "SHADOW",
    "ServingMode",
    "experiment_salt",
    "serving_mode",
]

#: the arms a served row is logged under: the model that answered, or ``shadow`` for the
#: challenger's unserved prediction of the same row
CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"
ARMS = (CHAMPION, CHALLENGER, SHADOW)


@dataclass(frozen=True)
class ServingMode:
    """One way of serving the champion and the challenger.

    Attributes
    ----------
    name : str
        The value of ``mode`` in ``POST /traffic`` and of the experiment record.
    description : str
        One line for the OpenAPI document and the CLI's help.
    splits : bool
        Requests are assigned to champion or challenger by the ``a``/``b`` split.
    shadow : bool
        The champion answers every request; the challenger scores it off the request path.
    challenger_arms : tuple of str
        The logged arms that hold the challenger's rows in a look.
    paired : bool
        The decision compares both models on the same rows (a paired test).
    experiment : bool
        A live experiment can run in this mode.
    """

    name: str
    description: str
    splits: bool
    shadow: bool
    challenger_arms: tuple[str, ...]
    paired: bool
    experiment: bool

    def challenger_share(self, split: float | None) -> float | None:
        """The challenger's share of served traffic (``None`` when it serves none)."""
        return float(split) if self.splits and split is not None else None


MODES: dict[str, ServingMode] = {
    m.name: m
    for m in (
        ServingMode(
            name="ab",
            description="split traffic: a share to the champion, b to the challenger",
            splits=True,
            shadow=False,
            challenger_arms=(CHALLENGER,),
            paired=False,
            experiment=True,
        ),
        ServingMode(
            name="shadow",
            description="the champion answers; the challenger scores the same rows unseen",
            splits=False,
            shadow=True,
            challenger_arms=(CHALLENGER, SHADOW),
            paired=True,
            experiment=True,
        ),
        ServingMode(
            name="champion",
            description="the champion answers every request; nothing else scores",
            splits=False,
            shadow=False,
            challenger_arms=(),
            paired=False,
            experiment=False,
        ),
    )
}
#: the modes a live experiment can run in, in order of preference
EXPERIMENT_MODES = tuple(name for name, m in MODES.items() if m.experiment)


def experiment_salt(configured: str | None, challenger_version: str | None) -> str:
    """The salt units are hashed with, and rows logged with: the configured salt plus the
    challenger's version, so a new challenger re-randomises the units (the gateway assigns
    with it; a look takes the rows logged with its experiment's).

    >>> experiment_salt("spring", "7")
    'spring:v7'
    """
    return f"{configured or ''}:v{challenger_version or '-'}"


def serving_mode(name: str) -> ServingMode:
    """The :class:`ServingMode` called ``name``; ``ValueError`` naming the valid ones."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {name!r}") from None
