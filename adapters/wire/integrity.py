"""Input integrity: the one rule against future-dated, out-of-order and duplicated input.

Anyone can publish on the market subjects, so a forged, future-dated, duplicated or stale
message must not block, silence or trigger anything. Every codec applies the same two
components (the Binance codec per (symbol, kind), the market-input codec per input line):

- :class:`TimeLines`: the event time line of each (kind, key). An event is ``future_dated``
  when it is stamped more than ``future_tolerance_ms`` after the wall clock or — without a
  wall clock (replay) — more than ``max_forward_jump_ms`` ahead of its time line; it is
  ``out_of_order`` when it goes back more than ``out_of_order_tolerance_ms``. A rejected
  event never moves its time line, so no single message, and no sparse run of them, can make
  the real ones look out of order: only ``reanchor_after`` rejected events *in a row* (with
  no run of as many in-order ones between them) re-anchor the time line on the next one (a
  producer restart, or the next capture of a concatenated replay).
- :class:`RecentIds`: the ids accepted recently (a bounded window, oldest forgotten first):
  an id seen again is a ``duplicate``. An id is remembered only once its message is accepted,
  so a rejected forgery cannot shadow the real message.

Both raise / report through :class:`Rejected`, the codecs' internal rejection (turned into a
:class:`~adapters.wire.stats.Skip` at their top). Both give their memory as plain data for a
partition checkpoint (``to_state(keep)``, only the entries ``keep`` accepts) and merge it back
(``merge_state``): every codec's checkpoint of its integrity memory is these two
(docs/adr/0022-partition-state-checkpoints.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from adapters.wire.stats import SkipReason
from domain.state import items, row

__all__ = [
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_FUTURE_TOLERANCE_MS",
    "DEFAULT_INTEGRITY",
    "DEFAULT_MAX_FORWARD_JUMP_MS",
    "DEFAULT_MAX_TRACKED",
    "DEFAULT_OUT_OF_ORDER_TOLERANCE_MS",
    "DEFAULT_REANCHOR_AFTER",
    "UNCHECKED",
    "IntegrityOptions",
    "RecentIds",
    "Rejected",
    "TimeLines",
]

DEFAULT_OUT_OF_ORDER_TOLERANCE_MS: Final = 0
"""How far (ms) an event may go back in time per (kind, key) before it is out of order
(None disables the check)."""
DEFAULT_REANCHOR_AFTER: Final = 50
"""After this many out-of-order events of one (kind, key) with no run of as many in-order
ones in between, accept the next one and follow the new time line (a producer restart, or
bogus future timestamps, must not silence a key forever)."""
DEFAULT_MAX_TRACKED: Final = 10_000
"""Bound of the per-kind last-seen-time maps (oldest entries are evicted first)."""
DEFAULT_FUTURE_TOLERANCE_MS: Final = 5_000
"""With a wall clock: an event stamped more than this after now is ``future_dated``."""
DEFAULT_MAX_FORWARD_JUMP_MS: Final = 86_400_000
"""Without a wall clock (replay): an event more than this (a day) ahead of its (kind, key)
time line is ``future_dated`` and does not advance it, unless ``reanchor_after`` such events
come in a row (a real jump: the next capture of a concatenated replay)."""
DEFAULT_DEDUP_WINDOW: Final = 65_536
"""How many recent ids duplicates are detected among."""

NO_ORDER_CHECK: Final = 1 << 62
"""A tolerance (and a forward jump) no event time reaches: the check is off."""


@dataclass(frozen=True, slots=True)
class IntegrityOptions:
    """How a decoder checks its input's integrity (every decoder takes the same options).

    ``out_of_order_tolerance_ms`` None disables the order checks (and the forward-jump
    check); ``clock_ms`` is the wall clock (None when replaying: future-dated input is then
    judged against its time line, ``max_forward_jump_ms`` ahead); ``dedup_window`` 0
    disables duplicate detection; ``max_tracked`` bounds each kind's time lines.
    """

    out_of_order_tolerance_ms: int | None = DEFAULT_OUT_OF_ORDER_TOLERANCE_MS
    reanchor_after: int | None = DEFAULT_REANCHOR_AFTER
    max_tracked: int = DEFAULT_MAX_TRACKED
    clock_ms: Callable[[], int] | None = None
    future_tolerance_ms: int = DEFAULT_FUTURE_TOLERANCE_MS
    max_forward_jump_ms: int = DEFAULT_MAX_FORWARD_JUMP_MS
    dedup_window: int = DEFAULT_DEDUP_WINDOW


DEFAULT_INTEGRITY: Final = IntegrityOptions()
"""Every check on, with the defaults above, and no wall clock (replay)."""
UNCHECKED: Final = IntegrityOptions(out_of_order_tolerance_ms=None, dedup_window=0)
"""No order, future-dated or duplicate check: each message judged on its own."""


class Rejected(Exception):  # noqa: N818 - internal control flow, never escapes a codec
    """A message a codec rejects: ``reason`` (a :class:`SkipReason` value) and ``detail``."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


class TimeLines:
    """The last accepted event time of each (kind, key), and the rule that moves it.

    ``kinds``: the kinds, each with its own map of keys (bounded by ``max_tracked``, oldest
    evicted first); ``last[kind]`` is that map (key → last accepted event time, ms).
    The rule's settings are ``options`` (:class:`IntegrityOptions`; ``dedup_window`` is
    not the time lines' concern). Not thread-safe.
    """

    __slots__ = (
        "_clock_ms",
        "_future_ms",
        "_reanchor_after",
        "_tolerance",
        "jumps",
        "last",
        "max_jump",
        "max_tracked",
        "rejects",
        "streaks",
    )

    def __init__(
        self, kinds: Iterable[Hashable], options: IntegrityOptions = DEFAULT_INTEGRITY
    ) -> None:
        self.last: dict[Hashable, dict[Hashable, int]] = {kind: {} for kind in kinds}
        tolerance_ms = options.out_of_order_tolerance_ms
        self._tolerance = NO_ORDER_CHECK if tolerance_ms is None else tolerance_ms
        self._reanchor_after = options.reanchor_after
        self.max_tracked: Final = max(1, options.max_tracked)
        """How many keys each kind's time lines (and each table of counts) keep, at least one."""
        # Future-dated input: against the wall clock when there is one, else against the
        # (kind, key) time line (``jumps`` counts consecutive far-ahead events).
        self._clock_ms = options.clock_ms
        self._future_ms = options.future_tolerance_ms
        against_line = options.clock_ms is None and tolerance_ms is not None
        self.max_jump: Final = options.max_forward_jump_ms if against_line else NO_ORDER_CHECK
        """How far (ms) an event may be ahead of its time line (replay only: else no limit)."""
        self.rejects: dict[tuple[Hashable, Hashable], int] = {}
        """Consecutive out-of-order events per (kind, key)."""
        self.jumps: dict[tuple[Hashable, Hashable], int] = {}
        """Consecutive far-ahead events per (kind, key) (replay only)."""
        self.streaks: dict[tuple[Hashable, Hashable], int] = {}
        """In-order events since the last out-of-order one, per (kind, key) with rejects."""

    def clear(self) -> None:
        """Forget every time line (e.g. before replaying a file again)."""
        for line in self.last.values():
            line.clear()
        self.rejects.clear()
        self.jumps.clear()
        self.streaks.clear()

    def _tables(self) -> dict[str, dict[tuple[Hashable, Hashable], int]]:
        """The counts per (kind, key), by their name in :meth:`to_state`."""
        return {"rejects": self.rejects, "jumps": self.jumps, "streaks": self.streaks}

    def to_state(self, keep: Callable[[Hashable, Hashable], bool]) -> dict[str, object]:
        """The time lines ``keep(kind, key)`` accepts, as plain data: ``last`` the
        ``[kind, key, time_ms]`` of each, ``rejects``/``jumps``/``streaks`` its
        ``[kind, key, count]`` (a tuple key as a list, a kind or key of a ``str`` subclass, an
        enum member, as its ``str``: what :meth:`merge_state` reads back)."""
        state: dict[str, object] = {
            "last": [
                [_plain(kind), _plain(key), time_ms]
                for kind, line in self.last.items()
                for key, time_ms in line.items()
                if keep(kind, key)
            ]
        }
        for name, table in self._tables().items():
            state[name] = [
                [_plain(kind), _plain(key), n]
                for (kind, key), n in table.items()
                if keep(kind, key)
            ]
        return state

    def merge_state(self, state: Mapping[str, object]) -> None:
        """Restore what :meth:`to_state` returned, keeping the other time lines; ``ValueError``
        (nothing changed) on a kind this instance does not have or a malformed entry."""
        tables = self._tables()
        loaded = {name: self._rows(state, name) for name in ("last", *tables)}
        for kind, key, time_ms in loaded["last"]:
            self.last[kind][key] = time_ms
        for name, table in tables.items():
            for kind, key, n in loaded[name]:
                table[(kind, key)] = n

    def _rows(self, state: Mapping[str, object], name: str) -> list[tuple[Hashable, Hashable, int]]:
        out: list[tuple[Hashable, Hashable, int]] = []
        for entry in items(state, name, "time lines"):
            kind, key, number = row(entry, 3, "time lines")
            if kind.__class__ not in (int, str) or kind not in self.last:
                raise ValueError(f"time lines state: unknown kind {kind!r:.40}")
            if number.__class__ is not int:  # not a bool, a float or a numeric string
                raise ValueError(f"time lines state: {number!r:.40} is not an integer")
            out.append((kind, _key(key), number))
        return out

    def accept(self, kind: Hashable, key: Hashable, time_ms: int) -> None:
        """Accept ``time_ms`` on the time line of (kind, key), or raise :class:`Rejected`
        (``invalid_value`` for a negative time, ``future_dated``, ``out_of_order``)."""
        line = self.last[kind]
        last = line.get(key)
        clock = self._clock_ms
        if (
            last is not None
            and last <= time_ms <= last + self.max_jump
            and not self.rejects
            and not self.jumps
            and (clock is None or time_ms <= clock() + self._future_ms)
        ):
            line[key] = time_ms  # in order, nothing pending anywhere: the usual case
            return
        self._accept(line, kind, key, time_ms)

    def accept_in_full(self, kind: Hashable, key: Hashable, time_ms: int) -> None:
        """:meth:`accept` without its usual-case shortcut, for a caller that has just
        checked that case inline and found it does not hold."""
        self._accept(self.last[kind], kind, key, time_ms)

    def _accept(
        self, line: dict[Hashable, int], kind: Hashable, key: Hashable, time_ms: int
    ) -> None:
        """:meth:`accept` in full (the reference; the fast case above agrees with it)."""
        if time_ms < 0:
            raise Rejected(SkipReason.INVALID_VALUE, f"negative event time {time_ms}")
        clock = self._clock_ms
        if clock is not None and time_ms > clock() + self._future_ms:
            raise Rejected(
                SkipReason.FUTURE_DATED,
                f"{key} event time {time_ms} is more than {self._future_ms} ms in the future",
            )
        last = line.get(key)
        if last is None:
            if len(line) >= self.max_tracked:
                del line[next(iter(line))]
            line[key] = time_ms
            return
        pair = (kind, key)
        jumps = self.jumps
        if time_ms - last > self.max_jump:
            if self._reanchored(jumps, pair):
                self.rejects.pop(pair, None)
                self.streaks.pop(pair, None)
                line[key] = time_ms
                return
            raise Rejected(
                SkipReason.FUTURE_DATED,
                f"{key} event time {time_ms} is {time_ms - last} ms ahead of {last}",
            )
        if jumps:
            jumps.pop(pair, None)
        rejects = self.rejects
        if time_ms >= last - self._tolerance:
            if time_ms > last:
                line[key] = time_ms
            if rejects and pair in rejects:
                # Forget the rejects only after a run of in-order events: a sparse run of
                # events on a bogus time line must not keep resetting the re-anchor count.
                streak = self.streaks.get(pair, 0) + 1
                if self._reanchor_after is None or streak >= self._reanchor_after:
                    rejects.pop(pair, None)
                    self.streaks.pop(pair, None)
                else:
                    self.streaks[pair] = streak
            return
        self.streaks.pop(pair, None)
        if self._reanchored(rejects, pair):
            line[key] = time_ms
            return
        raise Rejected(
            SkipReason.OUT_OF_ORDER,
            f"{key} event time {time_ms} is {last - time_ms} ms before {last}",
        )

    def _reanchored(
        self, counts: dict[tuple[Hashable, Hashable], int], pair: tuple[Hashable, Hashable]
    ) -> bool:
        """Count one more rejected event of ``pair`` in a row (``counts``: out-of-order or
        far-ahead ones); True, with the count forgotten, once more than ``reanchor_after``
        came: the caller then follows the new time line. The table is bounded."""
        count = counts.get(pair, 0) + 1
        if self._reanchor_after is not None and count > self._reanchor_after:
            counts.pop(pair, None)
            return True
        if pair not in counts and len(counts) >= self.max_tracked:
            del counts[next(iter(counts))]
        counts[pair] = count
        return False


_T = TypeVar("_T", bound=Hashable)


class RecentIds(Generic[_T]):
    """The last ``window`` ids remembered, in the order they were (0: remembers nothing).

    ``ids`` is the set and ``order`` the ids oldest first, for a hot path's membership test
    and inline copy of :meth:`remember` without a call.
    """

    __slots__ = ("ids", "order", "window")

    def __init__(self, window: int = DEFAULT_DEDUP_WINDOW) -> None:
        self.window = max(0, window)
        self.ids: set[_T] = set()
        self.order: deque[_T] = deque()

    def __contains__(self, item: object) -> bool:
        return item in self.ids

    def __iter__(self) -> Iterator[_T]:
        """The ids, oldest first."""
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)

    def remember(self, item: _T) -> None:
        """Remember ``item`` (the caller knows it is not remembered yet), forgetting the
        oldest beyond the window."""
        if not self.window:
            return
        self.ids.add(item)
        order = self.order
        order.append(item)
        if len(order) > self.window:
            self.ids.discard(order.popleft())

    def clear(self) -> None:
        self.ids.clear()
        self.order.clear()

    def to_state(self, keep: Callable[[_T], bool]) -> list[object]:
        """The ids ``keep`` accepts, oldest first, as plain data (a tuple id as a list)."""
        return [_plain(item) for item in self.order if keep(item)]

    def merge_state(self, state: object, parse: Callable[[object], _T]) -> None:
        """Remember the ids :meth:`to_state` returned (``state``, each turned back into an id
        by ``parse``, which raises ``ValueError`` on a malformed one) after the ones remembered
        already; ``ValueError`` (nothing changed) if any is malformed."""
        if not isinstance(state, list | tuple):
            raise ValueError(f"recent ids state: expected a list, got {type(state).__name__}")
        loaded = [parse(entry) for entry in state]
        for item in loaded:
            if item not in self.ids:
                self.remember(item)


def _plain(key: object) -> object:
    """A kind, key or id as plain data: a tuple as a list (of plain parts), a ``str``
    subclass (a ``StrEnum`` member) as a ``str``."""
    if isinstance(key, tuple):
        return [_plain(part) for part in key]
    if isinstance(key, str) and key.__class__ is not str:
        return str.__str__(key)
    return key


def _key(value: object) -> Hashable:
    """A time line's key back from plain data: a string, or a list of strings (a tuple)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise ValueError(f"time lines state: bad key {value!r:.80}")
