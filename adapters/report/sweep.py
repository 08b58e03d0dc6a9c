"""Sweep outputs: ``sweep.csv`` (one row per combination), ``sweep.md`` (ranked), heat map PNG.

The CSV is a pure function of the rows: the same sweep gives the same bytes wherever its
tasks ran (in process, a local pool, a Dask cluster).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from application.sweep import GridAxis, SweepRow, ranked
from domain.params import ParamValue
from domain.trade_model import PnlSummary

FIGURES = (
    "trades",
    "wins",
    "hit_rate",
    "gross_pnl_bps",
    "net_pnl_bps",
    "mean_net_bps",
    "net_pnl_usdt",
    "max_drawdown_bps",
    "exposure_seconds",
)
SPLIT_FIGURES = ("trades", "hit_rate", "net_pnl_bps", "mean_net_bps")


def _value(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _figures(summary: PnlSummary | None, names: Sequence[str]) -> list[str]:
    if summary is None:
        return [""] * len(names)
    out = []
    for name in names:
        value = getattr(summary, name)
        if isinstance(value, int):
            out.append(str(value))
        else:
            out.append(_number(value, 6 if name in ("hit_rate", "net_pnl_usdt") else 4))
    return out


def sweep_csv(rows: Sequence[SweepRow], axes: Sequence[GridAxis], split: bool) -> str:
    """The CSV text: combination, one column per axis, status, counts, P&L totals
    (and, with a split, in-sample and held-out figures)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [
        "combination",
        *(axis.label for axis in axes),
        "status",
        "error",
        "events",
        "signals",
        "skipped",
        *FIGURES,
    ]
    if split:
        header += [f"in_sample_{n}" for n in SPLIT_FIGURES]
        header += [f"held_out_{n}" for n in SPLIT_FIGURES]
    writer.writerow(header)
    for row in rows:
        combination = row.combination
        line = [
            str(combination.index),
            *(_value(v) for v in combination.values),
            "ok" if combination.valid else "invalid",
            combination.error or "",
            str(row.events),
            str(row.signals),
            str(row.skipped),
            *_figures(row.total, FIGURES),
        ]
        if split:
            line += _figures(row.in_sample, SPLIT_FIGURES)
            line += _figures(row.held_out, SPLIT_FIGURES)
        writer.writerow(line)
    return buffer.getvalue()


def _params(row: SweepRow, axes: Sequence[GridAxis]) -> str:
    return ", ".join(
        f"{axis.label}={_value(v)}" for axis, v in zip(axes, row.combination.values, strict=True)
    )


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def sweep_markdown(
    rows: Sequence[SweepRow],
    axes: Sequence[GridAxis],
    files: Sequence[Path],
    model: dict[str, str | float | int],
    split: int | None,
    top: int,
) -> str:
    """Ranked table (by total net bps), invalid combinations, and the walk-forward check."""
    valid = ranked(rows)
    invalid = [r for r in rows if not r.combination.valid]
    lines = [
        "# Sweep",
        "",
        f"- files: {', '.join(p.name for p in files)}",
        f"- grid: {' × '.join(f'{a.label} ({len(a.values)})' for a in axes)} = "
        f"{len(rows)} combinations, {len(valid)} run, {len(invalid)} invalid",
        f"- trade model: fill {model['fill']}, fees {model['fee_bps']} bps per side, "
        f"slippage {model['slippage_bps']} bps, max hold {model['max_hold_seconds']} s",
        "",
        "## Ranked by net P&L (bps, after costs, all files)",
        "",
        "| rank | # | parameters | signals | trades | hit rate | gross bps | net bps | "
        "mean net bps | max DD bps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(valid, start=1):
        total = row.total
        assert total is not None
        hit = "–" if total.hit_rate is None else f"{total.hit_rate * 100:.1f} %"
        lines.append(
            f"| {rank} | {row.combination.index} | {_params(row, axes)} | {row.signals} | "
            f"{total.trades} | {hit} | {_cell(total.gross_pnl_bps)} | "
            f"{_cell(total.net_pnl_bps)} | {_cell(total.mean_net_bps)} | "
            f"{total.max_drawdown_bps:.2f} |"
        )
    if invalid:
        lines += ["", "## Invalid combinations (not run)", ""]
        lines += [
            f"- #{r.combination.index} {_params(r, axes)}: {r.combination.error}" for r in invalid
        ]
    if split is not None:
        lines += _walk_forward(rows, axes, files, split, top)
    lines.append("")
    return "\n".join(lines)


def _walk_forward(
    rows: Sequence[SweepRow], axes: Sequence[GridAxis], files: Sequence[Path], split: int, top: int
) -> list[str]:
    by_in_sample = ranked(rows, by_in_sample=True)
    held_out_rank = {
        row.combination.index: rank
        for rank, row in enumerate(
            sorted(
                by_in_sample,
                key=lambda r: (
                    -(r.held_out.net_pnl_bps if r.held_out else 0.0),
                    r.combination.index,
                ),
            ),
            start=1,
        )
    }
    winners = by_in_sample[:top]
    kept = sum(1 for r in winners if r.held_out is not None and r.held_out.net_pnl_bps > 0)
    lines = [
        "",
        "## Walk-forward: ranked on the first files, checked on the held-out ones",
        "",
        f"- in-sample: {', '.join(p.name for p in files[:split])}",
        f"- held out: {', '.join(p.name for p in files[split:])}",
        f"- of the top {len(winners)} in-sample, {kept} made money on the held-out files",
        "",
        "| in-sample rank | # | parameters | in-sample net bps | held-out net bps | "
        "held-out mean bps | held-out trades | held-out rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(winners, start=1):
        ins, out = row.in_sample, row.held_out
        assert ins is not None
        assert out is not None
        lines.append(
            f"| {rank} | {row.combination.index} | {_params(row, axes)} | "
            f"{_cell(ins.net_pnl_bps)} | {_cell(out.net_pnl_bps)} | {_cell(out.mean_net_bps)} | "
            f"{out.trades} | {held_out_rank[row.combination.index]} |"
        )
    return lines


def plot_heatmap(rows: Sequence[SweepRow], axes: Sequence[GridAxis], path: Path) -> Path | None:
    """Net bps over the two axes that vary (None unless exactly two have several values).

    Other axes with a single value are constant; invalid cells are left blank (grey).
    """
    varying = [i for i, axis in enumerate(axes) if len(axis.values) > 1]
    if len(varying) != 2:
        return None
    # matplotlib only when a heat map is drawn
    from matplotlib.colors import CenteredNorm
    from matplotlib.figure import Figure

    ix, iy = varying
    x_axis, y_axis = axes[ix], axes[iy]
    grid = [[math.nan] * len(x_axis.values) for _ in y_axis.values]
    for row in rows:
        values = row.combination.values
        if row.total is not None:
            y = y_axis.values.index(values[iy])
            x = x_axis.values.index(values[ix])
            grid[y][x] = row.total.net_pnl_bps
    figure = Figure(figsize=(2 + 1.3 * len(x_axis.values), 1.5 + 0.9 * len(y_axis.values)))
    ax = figure.subplots()
    # Centred on 0: red loses money, green makes it, whatever the range.
    image = ax.imshow(grid, cmap="RdYlGn", norm=CenteredNorm(0.0), origin="lower", aspect="auto")
    ax.set_facecolor("#cccccc")
    ax.set_xticks(range(len(x_axis.values)), [_value(v) for v in x_axis.values])
    ax.set_yticks(range(len(y_axis.values)), [_value(v) for v in y_axis.values])
    ax.set_xlabel(x_axis.label)
    ax.set_ylabel(y_axis.label)
    for y, line in enumerate(grid):
        for x, value in enumerate(line):
            text = "invalid" if math.isnan(value) else f"{value:+.0f}"
            ax.text(x, y, text, ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=ax, label="net P&L (bps, after costs)")
    ax.set_title("sweep: net P&L per combination")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, metadata={"Software": None})
    return path
