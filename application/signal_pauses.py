"""The pause switch use cases: pause and resume publishing, list the active pauses.

A pause names a strategy, a symbol, both or neither (every signal). While it is active the
strategies keep evaluating (their state stays warm) and the governance gate holds every
signal it covers, counted as ``paused`` (:meth:`domain.governance.Governance.admit`).

A pause or resume is one write through the :class:`~application.ports.ConfigUnitOfWork`,
like a configuration change: the pause record and its audit record (action ``PAUSE`` /
``RESUME``, keyed ``<strategy or *>:<version>`` on the paused strategy's own version
sequence, ``*`` for pauses of every strategy) are stored together, then the change goes live
in this replica's :class:`~application.config_cache.EffectiveConfigCache` at once and is
broadcast to the others (strategy id ``pause:<strategy or *>``), which reload the pauses.
Reads come from the cache.

The write is a compare-and-set on the record of the target it was decided on (its version,
0 = none), like a layer write: when another replica wrote the same target in between, the
write conflicts and is decided again on the state the store now holds. Two replicas pausing
at once store one ``PAUSE`` (the other answers ``applied=False``), and a resume racing a
pause is decided against the state it actually follows, so every audit record's old state is
the new state of the target's record before it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC

from application.config_admin import (
    CAS_ATTEMPTS,
    CAS_BACKOFF_SECONDS,
    MAX_CONCURRENT_WRITES,
    MAX_QUEUED_WRITES,
    WriteAdmission,
    broadcast_change,
    require_author,
)
from application.config_cache import (
    GOVERNANCE_ID,
    PAUSE_CHANGE_PREFIX,
    EffectiveConfigCache,
    normalise_symbol,
)
from application.errors import PauseNotFoundError
from application.ports import (
    Clock,
    ConfigChangeNotifier,
    ConfigUnitOfWork,
    VersionConflictError,
)
from domain.config import AuditAction, AuditRecord
from domain.governance import Pause, PauseRecord, pause_sequence_key
from domain.params import FieldError, ParamValidationError


@dataclass(frozen=True, slots=True)
class PauseWriteResult:
    """Outcome of a pause or resume: the record now held and whether anything changed
    (pausing what is already paused changes nothing and writes no audit record)."""

    action: AuditAction
    applied: bool
    record: PauseRecord


class SignalPauseAdmin:
    """Pause, resume and list the signal pauses (see the module doc)."""

    def __init__(
        self,
        cache: EffectiveConfigCache,
        unit_of_work: ConfigUnitOfWork,
        clock: Clock,
        notifier: ConfigChangeNotifier | None = None,
        max_concurrent_writes: int = MAX_CONCURRENT_WRITES,
        max_queued_writes: int = MAX_QUEUED_WRITES,
    ) -> None:
        self._cache = cache
        self._unit_of_work = unit_of_work
        self._clock = clock
        self._notifier = notifier
        self._admission = WriteAdmission(max_concurrent_writes, max_queued_writes)
        self.notify_failures = 0

    @property
    def strategy_ids(self) -> list[str]:
        """What a pause can name: the strategies (not ``governance``, which is configuration
        of the gate, not a source of signals)."""
        return [sid for sid in self._cache.strategy_ids if sid != GOVERNANCE_ID]

    async def list_pauses(self) -> tuple[PauseRecord, ...]:
        """The active pauses, from the cache (reloaded first when its TTL has run out)."""
        await self._cache.maybe_refresh()
        return self._cache.pauses

    async def pause(
        self, strategy_id: str | None, symbol: str | None, changed_by: str, reason: str
    ) -> PauseWriteResult:
        """Hold every signal of ``strategy_id`` (None: every strategy) on ``symbol``
        (None: every symbol) until resumed."""
        return await self._switch(
            self._target(strategy_id, symbol, changed_by, reason), True, changed_by, reason
        )

    async def resume(
        self, strategy_id: str | None, symbol: str | None, changed_by: str, reason: str
    ) -> PauseWriteResult:
        """Lift the pause of exactly this target (:class:`PauseNotFoundError` if none is
        active; a global resume does not lift narrower pauses)."""
        return await self._switch(
            self._target(strategy_id, symbol, changed_by, reason), False, changed_by, reason
        )

    def _target(
        self, strategy_id: str | None, symbol: str | None, changed_by: str, reason: str
    ) -> Pause:
        """The pause a request names; a 422 for an unknown strategy, a symbol that breaks
        the symbol rule, or a missing/unprintable author or reason."""
        errors: list[FieldError] = []
        if strategy_id is not None and strategy_id not in self.strategy_ids:
            errors.append(
                FieldError("strategy_id", "unknown_strategy", f"unknown strategy {strategy_id!r}")
            )
        try:
            symbol = normalise_symbol(symbol)
        except ParamValidationError as error:
            errors.extend(error.errors)
        try:
            require_author(changed_by, reason)
        except ParamValidationError as error:
            errors.extend(error.errors)
        if errors:
            raise ParamValidationError(errors)
        return Pause(strategy_id, symbol)

    async def _switch(
        self, pause: Pause, active: bool, changed_by: str, reason: str
    ) -> PauseWriteResult:
        async with self._admission(pause.label()):
            return await self._write(pause, active, changed_by, reason)

    async def _write(
        self, pause: Pause, active: bool, changed_by: str, reason: str
    ) -> PauseWriteResult:
        cache = self._cache
        key = pause_sequence_key(pause)
        action = AuditAction.PAUSE if active else AuditAction.RESUME
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, CAS_BACKOFF_SECONDS * attempt))
            await cache.load_pauses()  # decide on the store's state, not a stale snapshot
            held = cache.pause_record(pause)
            held_active = held is not None and held.active
            if held_active == active:
                if held is None or not active:
                    raise PauseNotFoundError(pause.strategy_id, pause.symbol)
                return PauseWriteResult(action=action, applied=False, record=held)
            now = self._clock.now().astimezone(UTC)
            now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
            try:
                async with self._unit_of_work.write(key) as transaction:
                    version = await transaction.next_version()
                    record = PauseRecord(
                        pause=pause,
                        active=active,
                        version=version,
                        updated_at=now,
                        updated_by=changed_by,
                        reason=reason,
                        source=transaction.store_name,
                    )
                    # Compare-and-set on the record decided on: a write of the key since
                    # (another replica's pause or resume) conflicts and is decided again.
                    await transaction.save_pause(record, 0 if held is None else held.version)
                    await transaction.append(
                        AuditRecord(
                            strategy_id=key,
                            symbol=pause.symbol,
                            action=action,
                            old_parameters={"paused": held_active},
                            new_parameters={"paused": active},
                            changed_by=changed_by,
                            changed_at=now,
                            reason=reason,
                            version=version,
                        )
                    )
            except VersionConflictError:
                continue
            cache.install_pauses([record])
            await self._notify(PAUSE_CHANGE_PREFIX + key, pause.symbol, version)
            return PauseWriteResult(action=action, applied=True, record=record)
        raise VersionConflictError(
            f"pause {pause.label()}: still conflicting after {CAS_ATTEMPTS} attempts"
        )

    async def _notify(self, channel: str, symbol: str | None, version: int) -> None:
        if not await broadcast_change(self._notifier, channel, symbol, version):
            self.notify_failures += 1
