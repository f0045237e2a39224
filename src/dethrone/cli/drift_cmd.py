"""``dethrone drift REFERENCE CURRENT``: compare two tables and print per-feature drift."""

from __future__ import annotations

import argparse
import json
import math
import sys
import zipfile
import zlib
from pathlib import Path

from dethrone.cli.common import emit
from dethrone.settings import Settings

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT = 0, 1, 2


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "drift",
        help="check CURRENT for drift against REFERENCE",
        description="Compare two CSV/Parquet tables (or a saved .npz reference profile) "
        "feature by feature. Exit code 0: no drift, 1: drift, 2: bad input.",
    )
    p.add_argument("reference", help="reference CSV/Parquet, or a profile saved as .npz")
    p.add_argument("current", help="current CSV/Parquet")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--html", metavar="OUT", help="also write an HTML report to OUT")
    p.add_argument(
        "--categorical",
        default="",
        metavar="COLS",
        help="comma-separated columns to treat as categorical",
    )
    p.add_argument(
        "--features",
        default="",
        metavar="COLS",
        help="comma-separated columns to check (default: the reference's columns)",
    )
    p.add_argument(
        "--engine",
        choices=("memory", "spark"),
        default=None,
        help="memory (default: DRIFT_ENGINE) or spark: PySpark on SPARK_MASTER profiles "
        "Parquet files, folders or s3:// prefixes",
    )
    p.add_argument("--psi-threshold", type=float, default=None)
    p.add_argument("--ks-pvalue-threshold", type=float, default=None)
    return p


def _split(text: str) -> list[str] | None:
    cols = [c.strip() for c in text.split(",") if c.strip()]
    return cols or None


def _table(report) -> str:
    head = (
        f"{'feature':<16}{'kind':<12}{'method':<10}{'drift':<7}{'statistic':>10}"
        f"{'p (corr)':>11}{'psi':>10}  missing"
    )
    lines = [head, "-" * len(head)]
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for f in report.features.values():
        lines.append(
            f"{f.name[:15]:<16}{f.kind:<12}{f.method:<10}{'YES' if f.drifted else 'no':<7}"
            f"{fmt(f.statistic):>10}{fmt(f.pvalue_adjusted):>11}{fmt(f.psi):>10}  "
            f"{f.missing_rate_reference:.1%}->{f.missing_rate_current:.1%}"
        )
    verdict = "DRIFT in " + ", ".join(report.drifted_features) if report.drifted else "no drift"
    lines.append(
        f"\n{verdict} (reference {report.n_reference} rows, current {report.n_current} rows)"
    )
    if report.extra_columns:
        lines.append("columns only in current (not checked): " + ", ".join(report.extra_columns))
    return "\n".join(lines)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad options before any file is read (ValueError naming the option)."""
    psi, ks = args.psi_threshold, args.ks_pvalue_threshold
    if psi is not None and not (math.isfinite(psi) and psi > 0):
        raise ValueError(f"--psi-threshold must be a positive finite number, got {psi}")
    if ks is not None and not 0 < ks < 1:
        raise ValueError(f"--ks-pvalue-threshold must be in (0, 1), got {ks}")
    if args.html:
        out = Path(args.html)
        if out.is_dir():
            raise ValueError(f"--html {out} is a directory; give a file name")
        if not out.parent.is_dir():
            raise ValueError(f"--html {out}: folder {out.parent} does not exist")


def _load_profile(path: Path):
    from dethrone.drift import ReferenceProfile  # lazy: pandas and scipy (~1.5 s) at CLI start

    try:
        return ReferenceProfile.load(path)
    except FileNotFoundError:
        raise
    # A damaged archive fails inside numpy/zipfile/zlib with many exception types;
    # each means the same thing to the user.
    except (
        OSError,
        EOFError,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        text = str(exc)
        if not text.startswith(str(path)):
            text = (
                f"{path} is not a readable dethrone reference profile "
                f"({type(exc).__name__}: {text})"
            )
        raise ValueError(text.splitlines()[0] if text else str(path)) from exc


def _check_categorical(categorical: list[str] | None, reference, current) -> None:
    for name in categorical or []:
        in_ref = name in reference.columns
        if not in_ref or name not in current.columns:
            side = "the reference" if not in_ref else "the current data"
            raise ValueError(f"--categorical names column {name!r}, which {side} lacks")


def run(args: argparse.Namespace) -> int:
    # lazy: pandas and scipy (~1.5 s), kept off `dethrone --help`
    from dethrone.drift import detect_drift
    from dethrone.slices.datasets import read_table

    overrides = {
        k: v
        for k, v in (
            ("psi_threshold", args.psi_threshold),
            ("ks_pvalue_threshold", args.ks_pvalue_threshold),
        )
        if v is not None
    }
    try:
        _check_options(args)
        settings = Settings.from_env(**overrides)
        if (args.engine or settings.drift_engine) == "spark":
            report = _spark_report(args, settings)
            return _finish(args, report)
        ref_path = Path(args.reference)
        if ref_path.suffix == ".npz":
            reference = _load_profile(ref_path)
        else:
            reference = read_table(ref_path)
        current = read_table(args.current)
        categorical = _split(args.categorical)
        _check_categorical(categorical, reference, current)
        report = detect_drift(
            reference,
            current,
            categorical=categorical,
            features=_split(args.features),
            settings=settings,
        )
    except (ValueError, OSError) as exc:
        print(f"dethrone drift: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _finish(args, report)


def _spark_report(args: argparse.Namespace, settings):
    """Both sides profiled by Spark (a .npz reference profile is used as it is)."""
    from dethrone.drift.spark import detect_drift_spark  # lazy: pandas, scipy (~1.5 s)

    reference = args.reference
    if Path(reference).suffix == ".npz":
        reference = _load_profile(Path(reference))
    try:
        return detect_drift_spark(
            reference,
            args.current,
            categorical=_split(args.categorical),
            features=_split(args.features),
            settings=settings,
        )
    except Exception as exc:  # Spark's own errors (unreadable Parquet, ...) are bad input
        if type(exc).__module__.startswith(("pyspark", "py4j")) or type(exc) is RuntimeError:
            raise ValueError(f"spark: {_one_line(exc)}") from exc
        raise


def _finish(args: argparse.Namespace, report) -> int:
    from dethrone.drift import render_html  # lazy: pandas and scipy (~1.5 s) at CLI start

    try:
        if args.html:
            Path(args.html).write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        print(f"dethrone drift: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    emit(json.dumps(report.to_dict(), indent=2) if args.json else _table(report))
    return EXIT_DRIFT if report.drifted else EXIT_OK


def _one_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
