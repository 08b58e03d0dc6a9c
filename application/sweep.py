"""Use case: a parameter sweep — every combination of a grid, on every capture, same backtest.

A sweep is a grid of parameter values (one :class:`GridAxis` per ``STRATEGY[@SYMBOL].PARAM``)
expanded into :class:`Combination` s, each checked by the configuration use case first
(``validate``: the same validation, merge and cross-field rules as the API) so that invalid
ones are reported, never run. Each valid combination runs on each capture file as one
:class:`SweepTask` — a plain, picklable value — through a :class:`~application.ports.TaskRunner`
(in process, a local process pool, or a Dask cluster: the results do not depend on which),
and the task results are folded back into one :class:`SweepRow` per combination.

Walk-forward (``split``): the first ``split`` files are in-sample, the rest held out. Rows are
ranked on their in-sample net P&L and carry their held-out figures, so a configuration that
only fits the past shows as one that does not carry over.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.params import ParamValue
from domain.trade_model import ClosedTrade, PnlSummary, PnlTally, TradeModelSettings

Override = tuple[str, str | None, str, ParamValue]
"""(strategy_id, symbol or None for the global layer, parameter, value)."""


@dataclass(frozen=True, slots=True)
class GridAxis:
    """The values one parameter takes in a sweep."""

    strategy_id: str
    symbol: str | None
    parameter: str
    values: tuple[ParamValue, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"{self.label}: a grid axis needs at least one value")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"{self.label}: repeated values {self.values}")

    @property
    def label(self) -> str:
        """``strategy[@SYMBOL].parameter``."""
        at = f"@{self.symbol}" if self.symbol else ""
        return f"{self.strategy_id}{at}.{self.parameter}"

    @property
    def target(self) -> tuple[str, str | None, str]:
        return self.strategy_id, self.symbol, self.parameter


@dataclass(frozen=True, slots=True)
class Combination:
    """One point of the grid: a value per axis, and every override it runs with."""

    index: int
    values: tuple[ParamValue, ...]
    overrides: tuple[Override, ...]
    error: str | None = None
    """Why the configuration use case rejected it (then it is not run)."""

    @property
    def valid(self) -> bool:
        return self.error is None


def expand_grid(
    axes: Sequence[GridAxis],
    fixed: Sequence[Override],
    validate: Callable[[Sequence[Override]], str | None],
) -> list[Combination]:
    """Every combination in grid order (the last axis varies fastest), each validated.

    ``fixed`` overrides apply to every combination, before the grid values.
    ``validate`` returns None for a valid set of overrides, else the reason.
    """
    targets = [axis.target for axis in axes]
    if len(set(targets)) != len(targets):
        raise ValueError("the same parameter is swept twice")
    combinations = []
    for index, values in enumerate(itertools.product(*(axis.values for axis in axes))):
        overrides = (
            *fixed,
            *((a.strategy_id, a.symbol, a.parameter, v) for a, v in zip(axes, values, strict=True)),
        )
        combinations.append(Combination(index, values, overrides, validate(overrides)))
    return combinations


@dataclass(frozen=True, slots=True)
class SweepTask:
    """One backtest of a sweep: a combination's overrides on one capture file (picklable)."""

    combination: int
    file_index: int
    path: str
    overrides: tuple[Override, ...]
    model: TradeModelSettings
    symbols: frozenset[str] | None = None
    home_venue: str = "binance"


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a sweep keeps of one backtest: counts and the closed trades, in closing order."""

    combination: int
    file_index: int
    events: int
    signals: int
    skipped: int
    trades: tuple[ClosedTrade, ...]


def sweep_tasks(
    combinations: Sequence[Combination],
    files: Sequence[Path],
    model: TradeModelSettings,
    *,
    symbols: frozenset[str] | None = None,
    home_venue: str = "binance",
) -> list[SweepTask]:
    """One task per valid combination and file, combination-major."""
    return [
        SweepTask(c.index, i, str(path), c.overrides, model, symbols, home_venue)
        for c in combinations
        if c.valid
        for i, path in enumerate(files)
    ]


@dataclass(frozen=True, slots=True)
class SweepRow:
    """The figures of one combination over all files (and, with a split, over each part)."""

    combination: Combination
    events: int
    signals: int
    skipped: int
    total: PnlSummary | None
    in_sample: PnlSummary | None = None
    held_out: PnlSummary | None = None

    @property
    def net_pnl_bps(self) -> float | None:
        return None if self.total is None else self.total.net_pnl_bps


def _tally(results: Sequence[TaskResult]) -> PnlSummary:
    """Trades of the files in file order, each file's in closing order."""
    tally = PnlTally()
    for result in sorted(results, key=lambda r: r.file_index):
        tally.extend(result.trades)
    return tally.summary()


def aggregate(
    combinations: Sequence[Combination], results: Sequence[TaskResult], split: int | None = None
) -> list[SweepRow]:
    """One row per combination, in grid order; invalid combinations have no figures."""
    by_combination: dict[int, list[TaskResult]] = {}
    for result in results:
        by_combination.setdefault(result.combination, []).append(result)
    rows = []
    for combination in combinations:
        own = by_combination.get(combination.index, [])
        if not combination.valid:
            rows.append(SweepRow(combination, 0, 0, 0, None))
            continue
        in_sample = held_out = None
        if split is not None:
            in_sample = _tally([r for r in own if r.file_index < split])
            held_out = _tally([r for r in own if r.file_index >= split])
        rows.append(
            SweepRow(
                combination,
                events=sum(r.events for r in own),
                signals=sum(r.signals for r in own),
                skipped=sum(r.skipped for r in own),
                total=_tally(own),
                in_sample=in_sample,
                held_out=held_out,
            )
        )
    return rows


def ranked(rows: Sequence[SweepRow], *, by_in_sample: bool = False) -> list[SweepRow]:
    """Valid rows, best net P&L first (in-sample net with a split); ties by grid order."""

    def key(row: SweepRow) -> tuple[float, int]:
        summary = row.in_sample if by_in_sample else row.total
        assert summary is not None
        return (-summary.net_pnl_bps, row.combination.index)

    return sorted((r for r in rows if r.combination.valid), key=key)
