"""Use case: checkpoint and restore a worker's state, one partition at a time.

A partitioned worker (docs/adr/0010-symbol-partitioning.md) holds per-symbol state in a few
objects — the :class:`~domain.engine.SignalEngine` (strategies and governance), the
market-metrics book, the wire decoders' order and duplicate memory (Binance and the
market-logic inputs), the live scorer of published signals (pending signals and their
simulated trades). Each is a :class:`StateHolder`: ``to_state(owns)`` gives the state of
the symbols ``owns`` accepts as plain data, ``merge_state(state)`` restores it.
:class:`WorkerState` names the holders and cuts their state by partition (``owns =
partition_of(symbol) == p``), so that a snapshot of partition ``p`` can be restored by
whichever worker owns ``p`` next, whatever the worker count. Encoding and storage are
adapters' work (``adapters/nats/checkpoints.py``, docs/adr/0022-partition-state-checkpoints.md).

A snapshot is only as good as the code that reads it: :func:`state_fingerprint` names the
format version, the holders and every strategy's parameter fields, and a snapshot with
another fingerprint is refused (the worker replays instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from domain.params import CommonParams
from domain.strategies.base import Strategy

FORMAT_VERSION = 3
"""Version of the snapshot layout; a change of any holder's ``to_state`` shape, or of the set
of holders, bumps it (a snapshot of another version is refused as ``incompatible``: the
worker replays that partition instead). 2: the market-input decoder's memory
(``market_inputs``) joined the holders. 3: the live scorer (``live_outcomes``: pending
signals and their trade model) joined them, so a takeover keeps scoring them."""


class StateHolder(Protocol):
    """An object whose per-symbol state can be checkpointed (plain data in, plain data out)."""

    def to_state(self, owns: Callable[[str], bool]) -> dict[str, object]: ...

    def merge_state(self, state: Mapping[str, object]) -> None: ...


class RestoreResult(StrEnum):
    """What became of a partition's snapshot at takeover (a metric label: do not rename)."""

    RESTORED = "restored"
    MISSING = "missing"
    """No snapshot stored (first start, or checkpoints were off)."""
    CORRUPT = "corrupt"
    """Unreadable: bad magic, checksum, compression or encoding."""
    INCOMPATIBLE = "incompatible"
    """Another format version, strategy set or parameter fields, or partition count."""
    STREAM_CHANGED = "stream_changed"
    """Taken on another market-data stream (recreated: its sequences mean other messages)."""
    GAP = "gap"
    """The stream no longer holds the messages right after the snapshot (retention)."""
    ERROR = "error"
    """Readable and compatible, but restoring it failed, or the store did not answer."""


FALLBACK_RESULTS = tuple(r.value for r in RestoreResult if r is not RestoreResult.RESTORED)


class SnapshotRejectedError(Exception):
    """A snapshot that is not restored; ``result`` is the :class:`RestoreResult`."""

    def __init__(self, result: RestoreResult, detail: str) -> None:
        super().__init__(f"{result.value}: {detail}")
        self.result = result
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PartitionSnapshot:
    """The state of one partition after stream sequence ``stream_seq`` was applied."""

    partition: int
    partition_count: int
    stream: str
    stream_created: str
    """The stream's creation time (ISO 8601): a recreated stream restarts its sequences."""
    stream_seq: int
    """The last market-data stream sequence of this partition applied to ``state``."""
    taken_at_ms: int
    """Wall clock when taken (operations only: never used by the state itself)."""
    covers_seq: int
    """The stream held no message of this partition in ``(stream_seq, covers_seq]`` (≥
    ``stream_seq``): a stream that has since dropped everything up to ``covers_seq`` lost
    nothing the snapshot lacks."""
    fingerprint: str
    state: Mapping[str, object]
    """Holder name → what its ``to_state`` returned."""
    version: int = FORMAT_VERSION


def state_fingerprint(strategies: Sequence[Strategy[CommonParams]], holders: Sequence[str]) -> str:
    """A short digest of what a snapshot's layout depends on: the format version, the
    holder names, and each strategy's id, class and parameter fields (in engine order)."""
    parts = [f"v{FORMAT_VERSION}", ",".join(sorted(holders))]
    for strategy in strategies:
        fields = ",".join(f.name for f in dataclasses.fields(strategy.params_type))
        parts.append(f"{strategy.strategy_id}:{type(strategy).__qualname__}:{fields}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class WorkerState:
    """The state of a worker's holders, cut by partition.

    ``scratch`` builds a fresh, empty set of the same holders: a snapshot is first restored
    into it, so that one that fails half-way leaves the live holders untouched (the worker
    then replays that partition from the stream instead).
    """

    def __init__(
        self,
        holders: Mapping[str, StateHolder],
        partition_of: Callable[[str], int],
        fingerprint: str,
        *,
        scratch: Callable[[], Mapping[str, StateHolder]] | None = None,
    ) -> None:
        self.holders = dict(holders)
        self.partition_of = partition_of
        self._partitions: dict[str, int] = {}
        """Memo of ``partition_of`` (a capture asks it for every entry, per partition)."""
        self.fingerprint = fingerprint
        self._scratch = scratch

    def capture(self, partition: int) -> dict[str, object]:
        """The state of ``partition``'s symbols, per holder (plain data, shared with nothing
        live)."""
        partition_of = self.partition_of
        known = self._partitions
        if len(known) > 100_000:
            known.clear()

        def owns(symbol: str) -> bool:
            p = known.get(symbol)
            if p is None:
                p = known[symbol] = partition_of(symbol)
            return p == partition

        return {name: holder.to_state(owns) for name, holder in self.holders.items()}

    def restore(self, snapshot: PartitionSnapshot) -> None:
        """Merge ``snapshot`` into the live holders; :class:`SnapshotRejectedError` (nothing
        restored) if it is of another layout or cannot be restored."""
        if snapshot.version != FORMAT_VERSION or snapshot.fingerprint != self.fingerprint:
            raise SnapshotRejectedError(
                RestoreResult.INCOMPATIBLE,
                f"format v{snapshot.version}/{snapshot.fingerprint}, "
                f"this worker reads v{FORMAT_VERSION}/{self.fingerprint}",
            )
        missing = sorted(set(self.holders) - set(snapshot.state))
        if missing:
            raise SnapshotRejectedError(RestoreResult.INCOMPATIBLE, f"no state of {missing}")
        if self._scratch is not None:
            try:
                self._merge(self._scratch(), snapshot)
            except Exception as exc:
                raise SnapshotRejectedError(
                    RestoreResult.ERROR, f"{type(exc).__name__}: {exc}"
                ) from exc
        self._merge(self.holders, snapshot)

    @staticmethod
    def _merge(holders: Mapping[str, StateHolder], snapshot: PartitionSnapshot) -> None:
        for name, holder in holders.items():
            state = snapshot.state[name]
            if not isinstance(state, Mapping):
                raise SnapshotRejectedError(
                    RestoreResult.INCOMPATIBLE, f"state of {name!r} is not an object"
                )
            holder.merge_state(state)
