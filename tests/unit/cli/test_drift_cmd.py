"""`dethrone drift`: exit codes, JSON and HTML output, clear errors."""

import json

import numpy as np
import pytest

from dethrone.cli import main
from dethrone.drift import ReferenceProfile
from dethrone.injection import apply_drift
from dethrone.settings import Settings

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


@pytest.fixture
def files(diamonds, rng, tmp_path):
    ref = diamonds.iloc[rng.choice(len(diamonds), 3000, replace=False)][FEATURES]
    cur = diamonds.iloc[rng.choice(len(diamonds), 3000, replace=False)][FEATURES]
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "same.parquet")
    apply_drift(cur, ["carat", "color"], rng).to_csv(tmp_path / "drift.csv", index=False)
    return tmp_path


def test_no_drift_exits_zero(files, capsys):
    assert main(["drift", str(files / "ref.csv"), str(files / "same.parquet")]) == 0
    out = capsys.readouterr().out
    assert "no drift" in out and "carat" in out


def test_drift_exits_one_with_json_and_html(files, capsys):
    html = files / "r.html"
    code = main(["drift", str(files / "ref.csv"), str(files / "drift.csv"), "--json",
                 "--html", str(html)])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["drifted_features"] == ["carat", "color"]
    assert "<svg" in html.read_text()


def test_reference_profile_file(files, capsys):
    import pandas as pd

    profile = ReferenceProfile.from_frame(pd.read_csv(files / "ref.csv"), settings=Settings())
    path = profile.save(files / "ref.npz")
    assert main(["drift", str(path), str(files / "drift.csv")]) == 1


@pytest.mark.parametrize("args,message", [
    (["missing.csv", "same.parquet"], "no such file"),
    (["ref.csv", "notes.txt"], "unsupported file type"),
    (["ref.csv", "same.parquet", "--features", "carat,nope"], "'nope'"),
])
def test_bad_input_exits_two(files, capsys, args, message):
    (files / "notes.txt").write_text("x")
    argv = ["drift"] + [str(files / a) if not a.startswith("-") and "," not in a else a
                        for a in args]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
