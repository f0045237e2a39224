"""A self-contained HTML drift report: a table plus reference-vs-current bars per feature."""

from __future__ import annotations

import html

from dethrone.drift.report import DriftReport, FeatureDrift

_BAR_W, _H = 22, 120


def _svg(f: FeatureDrift) -> str:
    """Grouped bars of the reference (grey) and current (orange) share of each bin."""
    if not f.bins or not f.reference_share:
        return "<p><em>no distribution to draw</em></p>"
    top = max(max(f.reference_share), max(f.current_share), 1e-9)
    width = len(f.bins) * (2 * _BAR_W + 10) + 10
    parts = [
        f'<svg width="{width}" height="{_H + 40}" role="img" '
        f'aria-label="reference vs current for {html.escape(f.name)}">'
    ]
    for i, (label, r, c) in enumerate(
        zip(f.bins, f.reference_share, f.current_share, strict=False)
    ):
        x = 10 + i * (2 * _BAR_W + 10)
        for j, (share, colour) in enumerate(((r, "#9e9e9e"), (c, "#f57c00"))):
            h = share / top * _H
            parts.append(
                f'<rect x="{x + j * _BAR_W}" y="{_H - h:.1f}" width="{_BAR_W - 2}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(label)}: '
                f"{'reference' if j == 0 else 'current'} {share:.1%}</title></rect>"
            )
        parts.append(f'<text x="{x}" y="{_H + 14}" font-size="9">{html.escape(label[:12])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _bound(f: FeatureDrift) -> str:
    return f" ± {f.statistic_error:.2g} (sketch)" if f.statistic_error else ""


def _rules(t: dict) -> str:
    """One line per drift test used: its p-value and effect thresholds."""
    tests = t.get("tests")
    if not tests:  # a report from before tests were pluggable
        return (
            f"KS p &lt; {t.get('ks_pvalue_threshold')} ({t.get('correction')}-corrected) and "
            f"D &ge; {t.get('ks_min_effect')}; PSI &ge; {t.get('psi_threshold')} with chi-square."
        )
    parts = []
    for name, th in tests.items():
        rule = []
        if th.get("pvalue_threshold") is not None:
            rule.append(f"{t.get('correction')}-corrected p &lt; {th['pvalue_threshold']}")
        if th.get("effect_threshold") is not None:
            rule.append(f"effect &ge; {th['effect_threshold']}")
        parts.append(f"{html.escape(name)}: {' and '.join(rule)}")
    return "; ".join(parts) + " (effect minus the sketch error bound, where a side is a sketch)."


def render_html(report: DriftReport, *, title: str = "dethrone drift report") -> str:
    """Render ``report`` as one HTML page (no external assets)."""
    verdict = "DRIFT" if report.drifted else "no drift"
    rows = []
    for f in report.features.values():
        rows.append(
            f"<tr class={'drift' if f.drifted else 'ok'}><td>{html.escape(f.name)}</td>"
            f"<td>{f.kind}</td><td>{f.method}</td><td>{'yes' if f.drifted else 'no'}</td>"
            f"<td>{html.escape(f.statistic_name)} {_fmt(f.statistic)}{_bound(f)}</td>"
            f"<td>{_fmt(f.effect)} / {_fmt(f.effect_threshold)}</td>"
            f"<td>{_fmt(f.pvalue_adjusted)} / {_fmt(f.pvalue_threshold)}</td><td>{_fmt(f.psi)}</td>"
            f"<td>{f.missing_rate_reference:.1%} → {f.missing_rate_current:.1%}</td>"
            f"<td>{html.escape('; '.join(f.reasons))}</td></tr>"
        )
    figures = "".join(
        f"<section><h3>{html.escape(f.name)} {'⚠ drift' if f.drifted else ''}</h3>{_svg(f)}"
        "</section>"
        for f in report.features.values()
    )
    t = report.thresholds
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}tr.drift{{background:#ffe0b2}}</style></head><body>
<h1>{html.escape(title)}: {verdict}</h1>
<p>reference rows: {report.n_reference}, current rows: {report.n_current};
drifted features: {", ".join(report.drifted_features) or "none"}.
Drift tests: {_rules(t)}
Bars: grey = reference, orange = current.</p>
<table><tr><th>feature</th><th>kind</th><th>test</th><th>drift</th><th>statistic</th>
<th>effect / threshold</th><th>p (corrected) / threshold</th><th>PSI</th><th>missing</th>
<th>reasons</th></tr>{"".join(rows)}</table>
{figures}</body></html>"""
