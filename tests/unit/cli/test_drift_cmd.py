"""`dethrone drift`: exit codes, JSON and HTML output, clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dethrone.cli import main
from dethrone.drift import ReferenceProfile
from dethrone.settings import Settings
from dethrone.slices.injection import apply_drift

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
    code = main(
        ["drift", str(files / "ref.csv"), str(files / "drift.csv"), "--json", "--html", str(html)]
    )
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["drifted_features"] == ["carat", "color"]
    assert "<svg" in html.read_text()


def test_reference_profile_file(files, capsys):
    import pandas as pd

    profile = ReferenceProfile.from_frame(pd.read_csv(files / "ref.csv"), settings=Settings())
    path = profile.save(files / "ref.npz")
    assert main(["drift", str(path), str(files / "drift.csv")]) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing.csv", "same.parquet"], "no such file"),
        (["ref.csv", "notes.txt"], "unsupported file type"),
        (["ref.csv", "same.parquet", "--features", "carat,nope"], "'nope'"),
    ],
)
def test_bad_input_exits_two(files, capsys, args, message):
    (files / "notes.txt").write_text("x")
    argv = ["drift"] + [
        str(files / a) if not a.startswith("-") and "," not in a else a for a in args
    ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _one_clear_line(err: str) -> str:
    """The error output: exactly one line, naming the command, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dethrone drift: error: ") and "Traceback" not in err
    return lines[0]


def _bad_profiles(files):
    """Reference profiles that are corrupt, truncated or miss keys."""
    import pandas as pd

    good = ReferenceProfile.from_frame(pd.read_csv(files / "ref.csv"), settings=Settings())
    raw = good.save(files / "good.npz").read_bytes()
    (files / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    for i in range(len(raw) // 3, len(raw) // 3 + 64):
        flipped[i] ^= 0xFF
    (files / "flipped.npz").write_bytes(bytes(flipped))
    (files / "garbage.npz").write_bytes(b"not a zip at all\n" * 10)
    with np.load(files / "good.npz") as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(files / "no_meta.npz", **{k: v for k, v in arrays.items() if k != "meta"})
    np.savez(files / "no_arrays.npz", meta=arrays["meta"])
    (files / "meta_not_json.npz").write_bytes(b"")
    np.savez(files / "meta_not_json.npz", meta=np.array("{not json"))


@pytest.mark.parametrize(
    "name", ["truncated", "flipped", "garbage", "no_meta", "no_arrays", "meta_not_json"]
)
def test_broken_profile_exits_two_with_one_line(files, capsys, name):
    _bad_profiles(files)
    assert main(["drift", str(files / f"{name}.npz"), str(files / "same.parquet")]) == 2
    line = _one_clear_line(capsys.readouterr().err)
    assert f"{name}.npz" in line


@pytest.mark.parametrize(
    "target,message",
    [
        ("no/such/folder/r.html", "folder"),
        (".", "is a directory"),
    ],
)
def test_html_target_refused_before_work(files, capsys, target, message):
    code = main(
        ["drift", str(files / "ref.csv"), str(files / "drift.csv"), "--html", str(files / target)]
    )
    assert code == 2
    assert message in _one_clear_line(capsys.readouterr().err)
    assert not (files / "no").exists()


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--psi-threshold", "nan"),
        ("--psi-threshold", "-1"),
        ("--psi-threshold", "0"),
        ("--psi-threshold", "inf"),
        ("--ks-pvalue-threshold", "nan"),
        ("--ks-pvalue-threshold", "-1"),
        ("--ks-pvalue-threshold", "1.5"),
    ],
)
def test_bad_threshold_exits_two(files, capsys, flag, value):
    assert main(["drift", str(files / "ref.csv"), str(files / "same.parquet"), flag, value]) == 2
    assert flag.lstrip("-").split("-")[0] in _one_clear_line(capsys.readouterr().err).lower()


@pytest.mark.parametrize("reference", ["ref.csv", "ref.npz"])
def test_categorical_naming_absent_column_exits_two(files, capsys, reference):
    import pandas as pd

    ReferenceProfile.from_frame(pd.read_csv(files / "ref.csv"), settings=Settings()).save(
        files / "ref.npz"
    )
    assert (
        main(
            [
                "drift",
                str(files / reference),
                str(files / "same.parquet"),
                "--categorical",
                "cut,zip_code",
            ]
        )
        == 2
    )
    assert "'zip_code'" in _one_clear_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "name,content",
    [
        ("zeros.csv", b"\0" * (1 << 20)),
        ("nul_late.csv", b"a,b\n1,2\n" + b"\0" * 4096),
        ("binary.csv", bytes(range(256)) * 64),
        ("one_line.csv", b"a" * (3 << 20)),
        ("zeros.parquet", b"\0" * 4096),
        ("text.parquet", b"a,b\n1,2\n"),
    ],
)
def test_binary_input_refused(files, capsys, name, content):
    (files / name).write_bytes(content)
    assert main(["drift", str(files / "ref.csv"), str(files / name)]) == 2
    line = _one_clear_line(capsys.readouterr().err)
    assert name in line and ("CSV" in line or "Parquet" in line)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_big_nul_file_refused_with_bounded_memory(files):
    """A 512 MiB sparse file of NUL bytes: before the fix pandas read it whole."""
    path = files / "huge.csv"
    with open(path, "wb") as fh:
        fh.truncate(512 << 20)  # sparse: costs no disk
    # VmHWM of the child's own address space: ru_maxrss would include the forked copy
    # of this (large) test process from before exec.
    script = (
        "import sys\nfrom dethrone.cli import main\ncode = main(sys.argv[1:])\n"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
        "sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "drift", str(files / "ref.csv"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "NUL" in _one_clear_line(proc.stderr)
    peak_kib = int(proc.stdout.split()[-2])
    # The interpreter with pandas needs about 150 MiB; reading the file would add 512 MiB+.
    assert peak_kib < 400 * 1024, peak_kib
