"""In-memory :class:`~application.ports.OutcomeStore` (tests, the backtest container)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from application.ports import OutcomeSelection, StoreUnavailableError
from domain.live_outcomes import OutcomeRecord

DEFAULT_MAX_RECORDS = 50_000


class InMemoryOutcomeStore:
    """Records by signal id; ``available = False`` makes every call fail like a dead store.

    Bounded: beyond ``max_records`` the first-recorded signals are dropped (a process on
    ``CONFIG_STORE=memory`` keeps its newest outcomes, not all of them; the databases keep
    ``SIGNAL_OUTCOME_RETENTION_DAYS``)."""

    name = "memory"

    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self._records: dict[str, OutcomeRecord] = {}
        self.max_records = max_records
        self.evicted = 0
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise StoreUnavailableError("memory outcome store switched off")

    async def save(self, records: Sequence[OutcomeRecord]) -> None:
        self._check()
        for record in records:
            kept = self._records.get(record.signal_id)
            if kept is not None:  # the first recording time stays
                record = replace(record, recorded_at_ms=kept.recorded_at_ms)
            self._records[record.signal_id] = record  # an update keeps its place
        while len(self._records) > self.max_records:
            del self._records[next(iter(self._records))]
            self.evicted += 1

    def _newest_first(self, records: list[OutcomeRecord]) -> list[OutcomeRecord]:
        return sorted(records, key=lambda r: (r.signal_time_ms, r.signal_id), reverse=True)

    async def recent(
        self, strategy_id: str | None, symbol: str | None, limit: int
    ) -> list[OutcomeRecord]:
        self._check()
        found = [
            r
            for r in self._records.values()
            if (strategy_id is None or r.strategy_id == strategy_id)
            and (symbol is None or r.symbol == symbol)
        ]
        return self._newest_first(found)[: max(limit, 0)]

    async def query(self, selection: OutcomeSelection, limit: int) -> list[OutcomeRecord]:
        self._check()
        found = [r for r in self._records.values() if selection.matches(r)]
        return self._newest_first(found)[: max(limit, 0)]

    async def purge(self, recorded_before_ms: int) -> int:
        self._check()
        old = [k for k, r in self._records.items() if r.recorded_at_ms < recorded_before_ms]
        for key in old:
            del self._records[key]
        return len(old)

    async def ping(self) -> None:
        self._check()
