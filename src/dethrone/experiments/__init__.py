"""Live experiments: the champion against a challenger on live traffic.

The public face::

    from dethrone.experiments import LiveExperiment, look
    result = look(rows, experiment, settings, now=now)   # pure: no I/O
    result.outcome, result.reasons

- :func:`look` (in :mod:`~dethrone.experiments.rules`): every rule of one look — rows by
  the experiment's salt, a unit per row, units in both arms, the label window and label
  coverage, the always-valid interval, live guardrails, the minimum duration, the
  guardrail window — and :func:`frozen_thresholds`, what a start records.
- :mod:`~dethrone.experiments.modes`: serving modes and arm names, defined once.
- :mod:`~dethrone.experiments.lifecycle`: start, scheduled looks, promotion, guardrail
  window, rollback (the DAG and the CLI call it); :mod:`~dethrone.experiments.operator`:
  operator actions; :mod:`~dethrone.experiments.state`: the stored record and its steps.
- :mod:`~dethrone.experiments.analysis`: the prediction log's rows for a look, with
  proper losses from :mod:`~dethrone.experiments.live_loss`.
- :mod:`~dethrone.experiments.tracking`: the experiment's MLflow run.
"""

from dethrone.experiments.modes import ARMS, MODES, ServingMode, serving_mode
from dethrone.experiments.rules import ArmFigures, LookResult, frozen_thresholds, look
from dethrone.registry.records import LiveExperiment

__all__ = [
    "ARMS",
    "MODES",
    "ArmFigures",
    "LiveExperiment",
    "LookResult",
    "ServingMode",
    "frozen_thresholds",
    "look",
    "serving_mode",
]
