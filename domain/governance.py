"""Signal governance: which of the strategies' decisions become published signals (pure).

The :class:`Governance` gate is consulted by :meth:`domain.engine.SignalEngine.process` for
every decision, so the service, the partition workers, the backtest and a what-if preview
apply the same rules. Rules, in the order they are checked (the first that suppresses names
the reason the signal is counted under, see :class:`Suppression`):

1. ``cooldown`` — no signal of a strategy on a symbol within ``cooldown_seconds`` of its last
   one there, whatever the side (event time; an emission *later* in event time than this
   event counts the same way, so one forged far-future signal blocks only its own cooldown).
2. ``reversal`` — no *opposite* action within ``reversal_cooldown_seconds`` (at least the
   cooldown) of the last signal.
3. ``confidence`` — nothing below the strategy's ``min_confidence``.
4. ``paused`` — an active pause (global, per strategy, per symbol or both) holds everything
   it covers; strategies keep evaluating, so their state stays warm.
5. ``stale`` (or any other *hold* the caller passes) — the service holds the signals of an
   event older than ``MAX_SIGNAL_AGE_SECONDS``; the wall clock lives in the application, the
   gate only counts.
6. ``rate_cap`` — at most ``max_signals_per_symbol_per_hour`` on a symbol across all
   strategies and ``max_signals_per_minute`` service-wide, both over sliding windows of
   event time.

Only an admitted signal is recorded (cooldowns and caps count published signals only).
``unconfirmed`` and ``not_rearmed`` are decided by the threshold strategies themselves
(:class:`domain.strategies.hysteresis.Hysteresis`) and counted the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from domain.params import StrategyParams, param
from domain.signal import Action
from domain.symbol import MAX_SYMBOL_LENGTH, is_symbol


class Suppression:
    """The reasons a decision is not published (stable snake_case metric label values)."""

    COOLDOWN: Final = "cooldown"
    REVERSAL: Final = "reversal"
    UNCONFIRMED: Final = "unconfirmed"
    NOT_REARMED: Final = "not_rearmed"
    CONFIDENCE: Final = "confidence"
    STALE: Final = "stale"
    RATE_CAP: Final = "rate_cap"
    PAUSED: Final = "paused"
    ALL: Final = (
        COOLDOWN,
        REVERSAL,
        UNCONFIRMED,
        NOT_REARMED,
        CONFIDENCE,
        STALE,
        RATE_CAP,
        PAUSED,
    )


_HOUR_MS: Final = 3_600_000
_MINUTE_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class GovernanceParams(StrategyParams):
    """The service-wide limits of the gate (schema like a strategy's parameters).

    With the defaults, the three default symbols can never exceed 144 signals a day:
    2 per symbol in any sliding hour → at most 48 per symbol per 24 h → 3 × 48 = 144 ≤ 150.
    """

    strategy_id: ClassVar[str] = "governance"

    max_signals_per_symbol_per_hour: int = param(
        2,
        min=0,
        max=10_000,
        description=(
            "At most this many signals on one symbol, all strategies together, in any sliding "
            "hour of event time (0: no cap)."
        ),
    )
    max_signals_per_minute: int = param(
        10,
        min=0,
        max=100_000,
        description=(
            "At most this many signals service-wide in any sliding minute of event time "
            "(0: no cap)."
        ),
    )


@dataclass(frozen=True, slots=True)
class Pause:
    """One active pause: ``strategy_id`` and ``symbol`` None mean every strategy / symbol."""

    strategy_id: str | None = None
    symbol: str | None = None

    def __post_init__(self) -> None:
        if self.strategy_id is not None and not self.strategy_id:
            raise ValueError("strategy_id must be non-empty or None")
        if self.symbol is not None and not is_symbol(self.symbol):
            raise ValueError(
                f"symbol must be None or 1..{MAX_SYMBOL_LENGTH} upper-case ASCII letters and "
                f"digits, got {self.symbol!r}"
            )

    @property
    def is_global(self) -> bool:
        return self.strategy_id is None and self.symbol is None

    def covers(self, strategy_id: str, symbol: str) -> bool:
        return (self.strategy_id is None or self.strategy_id == strategy_id) and (
            self.symbol is None or self.symbol == symbol
        )

    def label(self) -> str:
        """``strategy/symbol`` with ``*`` for "every" (logs, the gauge, /ready)."""
        return f"{self.strategy_id or '*'}/{self.symbol or '*'}"


EVERY_STRATEGY: Final = "*"
"""The sequence key (and audit ``strategy_id``) of pauses that name no strategy."""


@dataclass(frozen=True, slots=True)
class PauseRecord:
    """A stored pause switch: ``active`` while it holds, kept with ``active`` False once
    lifted (like a layer's tombstone, so its version is not forgotten).

    Versions come from the sequence of :attr:`sequence_key` (the paused strategy's own
    sequence, or :data:`EVERY_STRATEGY`'s), so a pause and its audit record are keyed
    ``<sequence_key>:<version>`` like a configuration change.
    """

    pause: Pause
    active: bool
    version: int
    updated_at: datetime
    updated_by: str
    reason: str
    source: str = ""

    @property
    def key(self) -> str:
        """One record per pause target: ``strategy/symbol`` with ``*`` for "every"."""
        return self.pause.label()

    @property
    def sequence_key(self) -> str:
        return pause_sequence_key(self.pause)


def pause_sequence_key(pause: Pause) -> str:
    """The version sequence a pause's writes draw from (see :class:`PauseRecord`)."""
    return pause.strategy_id if pause.strategy_id is not None else EVERY_STRATEGY


def newest_pauses(records: Iterable[PauseRecord]) -> dict[str, PauseRecord]:
    """Per pause key, the record with the highest version."""
    newest: dict[str, PauseRecord] = {}
    for record in records:
        held = newest.get(record.key)
        if held is None or record.version > held.version:
            newest[record.key] = record
    return newest


def active_pauses(records: Iterable[PauseRecord]) -> tuple[Pause, ...]:
    """The pauses in force, in key order (for :meth:`Governance.set_pauses`)."""
    newest = newest_pauses(records)
    return tuple(newest[key].pause for key in sorted(newest) if newest[key].active)


SLOT_HORIZON_MS: Final = 2 * _MINUTE_MS
"""How far apart in event time the signals of the shared window may be stamped and still be
counted exactly (:func:`take_slot`): twice the staleness gate's default, beyond which the
service holds a signal as ``stale`` anyway."""


Slot = tuple[int, str]
"""One emission in the shared per-minute window: its event time (ms) and its signal's id
(``""`` when not known)."""


def take_slot(
    window: Sequence[Slot],
    time_ms: int,
    cap: int,
    horizon_ms: int = SLOT_HORIZON_MS,
    signal_id: str = "",
) -> list[Slot] | None:
    """The service-wide per-minute window after one more emission at ``time_ms`` (of the
    signal ``signal_id``), or None when ``cap`` emissions already lie within a minute of it,
    on either side (rule 6's ``max_signals_per_minute``, the test :meth:`Governance.check`
    makes).

    The budget a partitioned deployment shares across its processes
    (:class:`application.ports.SignalBudget`) keeps its window this way. Its workers are not
    in step in event time, so the window keeps, in time order, every emission within a minute
    plus ``horizon_ms`` of ``time_ms`` on either side — not only the last ``cap`` taken, as
    one process does. No sliding minute then holds more than ``cap`` signals as long as the
    signals taken are stamped at most ``horizon_ms`` apart. Pruning around the emission being
    taken (not around the newest kept) means one far-future time (forged, or a foreign value
    in the store) is dropped by the next real emission instead of pushing every real one out.
    A signal whose id the window holds already has its slot: the window is returned as it is
    (a worker taking over publishes again a signal its predecessor took a slot for but died
    before publishing; a take retried after its answer was lost). ``cap`` 0 means no cap: the
    window is returned as it is too (what the others took stays counted for them)."""
    if cap <= 0 or (signal_id and any(kept == signal_id for _, kept in window)):
        return list(window)
    if _capped([emitted for emitted, _ in window], cap, _MINUTE_MS, time_ms):
        return None
    reach = _MINUTE_MS + horizon_ms
    kept = [slot for slot in window if -reach < slot[0] - time_ms < reach]
    return sorted([*kept, (time_ms, signal_id)], key=_slot_time)


def _slot_time(slot: Slot) -> int:
    return slot[0]


def _capped(times: Collection[int], cap: int, window_ms: int, time_ms: int) -> bool:
    """True when ``cap`` of the recorded emission times lie within ``window_ms`` of
    ``time_ms`` (on either side: an emission stamped later counts too)."""
    if cap <= 0:
        return False
    if len(times) < cap:
        return False
    inside = 0
    for emitted in times:
        if -window_ms < time_ms - emitted < window_ms:
            inside += 1
    return inside >= cap


class Governance:
    """The gate's state: last signal per (strategy, symbol), emission windows, pauses.

    A plain domain object: the engine owns one, a what-if preview can run its own, and
    :meth:`to_state` / :meth:`from_state` turn its per-symbol memory into plain data.
    """

    __slots__ = ("_global", "_last", "_limits_for", "_pauses", "_per_symbol", "limits")

    def __init__(
        self,
        limits: GovernanceParams | None = None,
        limits_for: Callable[[str], GovernanceParams] | None = None,
    ) -> None:
        """``limits``: fixed limits; ``limits_for``: the limits in force for a symbol, asked
        at every admission (runtime configuration: the service's config cache)."""
        self.limits = limits if limits is not None else GovernanceParams()
        self._limits_for = limits_for
        self._last: dict[str, dict[str, tuple[int, Action]]] = {}
        self._per_symbol: dict[str, deque[int]] = {}
        self._global: deque[int] = deque()
        self._pauses: tuple[Pause, ...] = ()

    # --- pauses -----------------------------------------------------------------------------

    @property
    def pauses(self) -> tuple[Pause, ...]:
        return self._pauses

    def set_pauses(self, pauses: Iterable[Pause]) -> None:
        """Replace the active pauses (the application keeps them in the config store)."""
        self._pauses = tuple(dict.fromkeys(pauses))

    def paused(self, strategy_id: str, symbol: str) -> bool:
        return any(pause.covers(strategy_id, symbol) for pause in self._pauses)

    # --- the checks -------------------------------------------------------------------------

    def cooldown(
        self,
        strategy_id: str,
        symbol: str,
        action: Action,
        time_ms: int,
        cooldown_ms: int,
        reversal_ms: int,
    ) -> str | None:
        """``cooldown``, ``reversal`` or None (nothing recorded): rules 1 and 2."""
        per_symbol = self._last.get(symbol)
        if per_symbol is None:
            return None
        last = per_symbol.get(strategy_id)
        if last is None:
            return None
        last_ms, last_action = last
        gap = time_ms - last_ms
        if -cooldown_ms < gap < cooldown_ms:
            return Suppression.COOLDOWN
        if action is not last_action and -reversal_ms < gap < reversal_ms:
            return Suppression.REVERSAL
        return None

    def admit(
        self, strategy_id: str, symbol: str, action: Action, time_ms: int, hold: str | None
    ) -> str | None:
        """Rules 4-6; None when the signal is published (and recorded), else the reason."""
        verdict = self.check(strategy_id, symbol, time_ms, hold)
        if isinstance(verdict, str):
            return verdict
        self.record(strategy_id, symbol, action, time_ms, verdict)
        return None

    def check(
        self, strategy_id: str, symbol: str, time_ms: int, hold: str | None
    ) -> str | GovernanceParams:
        """Rules 4-6 without recording anything: the reason a signal is held, or — when it
        may be published — the limits in force for ``symbol``, which :meth:`record` takes."""
        if self._pauses and self.paused(strategy_id, symbol):
            return Suppression.PAUSED
        if hold is not None:
            return hold
        limits = self.limits_of(symbol)
        times = self._per_symbol.get(symbol)
        if times is not None and _capped(
            times, limits.max_signals_per_symbol_per_hour, _HOUR_MS, time_ms
        ):
            return Suppression.RATE_CAP
        if _capped(self._global, limits.max_signals_per_minute, _MINUTE_MS, time_ms):
            return Suppression.RATE_CAP
        return limits

    def limits_of(self, symbol: str) -> GovernanceParams:
        """The limits in force for ``symbol`` (the fixed ones, or what ``limits_for`` says)."""
        return self.limits if self._limits_for is None else self._limits_for(symbol)

    def record(
        self, strategy_id: str, symbol: str, action: Action, time_ms: int, limits: GovernanceParams
    ) -> None:
        """Record a published signal: its cooldown and its place in the rate windows (kept
        as long as ``limits``, what :meth:`check` returned for it, needs)."""
        per_hour = limits.max_signals_per_symbol_per_hour
        per_minute = limits.max_signals_per_minute
        times = self._per_symbol.get(symbol)
        per_symbol = self._last.get(symbol)
        if per_symbol is None:
            per_symbol = self._last[symbol] = {}
        per_symbol[strategy_id] = (time_ms, action)
        if per_hour > 0:
            if times is None:
                times = self._per_symbol[symbol] = deque()
            times.append(time_ms)
            while len(times) > per_hour:
                times.popleft()
        if per_minute > 0:
            self._global.append(time_ms)
            while len(self._global) > per_minute:
                self._global.popleft()

    # --- bounded state ------------------------------------------------------------------------

    def forget_symbol(self, symbol: str) -> None:
        self._last.pop(symbol, None)
        self._per_symbol.pop(symbol, None)

    @property
    def symbols(self) -> int:
        return len(self._last)

    def to_state(self, owns: Callable[[str], bool] | None = None) -> dict[str, object]:
        """The gate's memory as plain JSON-ready data (pauses and limits are configuration,
        not state: they are not included). With ``owns``, only the symbols it accepts (a
        partition's share; the service-wide emission window is always included)."""

        def kept(symbol: str) -> bool:
            return owns is None or owns(symbol)

        return {
            "last": {
                symbol: {sid: [t, action.value] for sid, (t, action) in sorted(per.items())}
                for symbol, per in sorted(self._last.items())
                if kept(symbol)
            },
            "per_symbol": {
                symbol: list(times)
                for symbol, times in sorted(self._per_symbol.items())
                if kept(symbol)
            },
            "global": list(self._global),
        }

    def load_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned (replacing the current memory)."""
        self._last, self._per_symbol, self._global = {}, {}, deque()
        self.merge_state(state)

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore the symbols of ``state`` (what :meth:`to_state` returned), keeping the
        others. The service-wide window is taken from ``state`` when it holds a later
        emission than the current one (several partitions of one worker carry the same)."""
        last = state.get("last", {})
        per_symbol = state.get("per_symbol", {})
        global_times = state.get("global", [])
        if not isinstance(last, Mapping) or not isinstance(per_symbol, Mapping):
            raise ValueError("governance state: 'last' and 'per_symbol' must be objects")
        if not isinstance(global_times, list):
            raise ValueError("governance state: 'global' must be a list")
        loaded_last = {
            str(symbol): {str(sid): (int(entry[0]), Action(entry[1])) for sid, entry in per.items()}
            for symbol, per in last.items()
        }
        loaded_per_symbol = {
            str(s): deque(int(t) for t in times) for s, times in per_symbol.items()
        }
        loaded_global = deque(int(t) for t in global_times)
        self._last.update(loaded_last)
        self._per_symbol.update(loaded_per_symbol)
        if loaded_global and (not self._global or loaded_global[-1] > self._global[-1]):
            self._global = loaded_global

    @classmethod
    def from_state(
        cls, state: Mapping[str, object], limits: GovernanceParams | None = None
    ) -> Governance:
        governance = cls(limits)
        governance.load_state(state)
        return governance
