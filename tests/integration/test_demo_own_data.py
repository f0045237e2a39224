"""``dethrone demo`` with your own data (``DATASET_PATH``, ``TARGET``): iris, a
classification table without carat or color. Its own module so that the two demo runs go to
different test workers (each takes minutes)."""

from __future__ import annotations

import pytest

from tests.integration.test_demo_cli import _closing, demo  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def test_iris_demo_completes(demo, tmp_path):  # noqa: F811 - demo is the imported fixture
    """Issue 20: the demo with your own data crashed after run 1 (it always drifted carat)."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = iris.target_names[frame.pop("target")]
    frame.to_csv(tmp_path / "iris.csv", index=False)
    home, run = demo
    text = _closing(run(DATASET_PATH=str(tmp_path / "iris.csv"), TARGET="species"))
    assert "drift_cols=['sepal_length', 'sepal_width']" in text
    assert "last drift check" in text and "DRIFT in" in text
    assert "/ui/experiments/" in text
