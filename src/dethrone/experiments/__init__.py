"""Live experiments: the champion against a challenger on live traffic.

The lifecycle (start, scheduled looks, promotion, guardrail window, rollback) is in
:mod:`~dethrone.experiments.lifecycle`; the state machine and its record in
:mod:`~dethrone.experiments.state`; reading the prediction log for a look in
:mod:`~dethrone.experiments.analysis`; operator actions in
:mod:`~dethrone.experiments.operator`; the MLflow run of an experiment in
:mod:`~dethrone.experiments.tracking`.
"""

from dethrone.registry.records import LiveExperiment

__all__ = ["LiveExperiment"]
