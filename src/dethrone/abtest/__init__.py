"""A/B decision between a champion (arm A) and a challenger (arm B).

Typical use: compute per-row losses of each model on its own arm with the helpers
in :mod:`dethrone.abtest.losses`, then call :func:`decide`::

    from dethrone.abtest import absolute_error, decide
    result = decide(absolute_error(y_a, pred_a), absolute_error(y_b, pred_b),
                    expected_share_a=0.5)
    result.outcome, result.reasons, result.to_dict()

:func:`srm_test`, :func:`compare_unpaired`, :func:`compare_paired`,
:func:`permutation_welch` and :func:`guardrail_test` are the building blocks, usable
on their own.

For live experiments that are looked at again and again, :func:`decide_sequential`
gives always-valid decisions (confidence sequences, anytime-valid SRM test).

Both decisions return an :class:`ABDecision` (``kind`` says which), with
:class:`SRMResult` and :class:`GuardrailResult` inside; ``SequentialDecision``,
``SequentialSRMResult`` and ``SequentialGuardrailResult`` are the same classes under
their former names.
"""

from dethrone.abtest.compare import ComparisonResult, compare_paired, compare_unpaired
from dethrone.abtest.decision import decide
from dethrone.abtest.decision_result import ABDecision
from dethrone.abtest.guardrails import GuardrailResult, guardrail_test
from dethrone.abtest.losses import (
    LOSSES,
    absolute_error,
    log_loss,
    row_losses,
    squared_error,
    zero_one_loss,
)
from dethrone.abtest.permutation import PermutationResult, permutation_welch
from dethrone.abtest.sequential import (
    SequentialDecision,
    SequentialGuardrailResult,
    decide_sequential,
)
from dethrone.abtest.sequential_srm import SequentialSRMResult, sequential_srm_test
from dethrone.abtest.srm import SRMResult, srm_test

__all__ = [
    "ABDecision",
    "ComparisonResult",
    "GuardrailResult",
    "PermutationResult",
    "SRMResult",
    "LOSSES",
    "absolute_error",
    "compare_paired",
    "compare_unpaired",
    "decide",
    "guardrail_test",
    "log_loss",
    "permutation_welch",
    "row_losses",
    "squared_error",
    "srm_test",
    "zero_one_loss",
    "SequentialDecision",
    "SequentialGuardrailResult",
    "SequentialSRMResult",
    "decide_sequential",
    "sequential_srm_test",
]
