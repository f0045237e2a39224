"""The ``>>>`` examples in the drift modules' docstrings run and give what they show."""

import doctest

import pytest

from dethrone.drift import detect, statistics


@pytest.mark.parametrize("module", [detect, statistics], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
