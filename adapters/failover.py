"""A primary configuration store (MongoDB) with a fallback (MySQL) that never loses a write.

:class:`FailoverConfigRepository` and :class:`FailoverAuditLog` implement the ports over two
stores of the same port:

- **Writes** go to the primary and are mirrored to the fallback. If the mirror fails, the
  document waits in a bounded queue (one entry per layer) and is retried on the next
  operation or :meth:`~FailoverConfigRepository.reconcile`; the caller's write still succeeds.
  If the primary is unavailable, the write goes to the fallback only and is recorded as
  pending reconciliation. Only when both stores fail does a write raise
  :class:`~application.ports.StoreUnavailableError`.
- **Reads** come from the primary; on :class:`StoreUnavailableError` from the fallback.
  While the primary misses writes the fallback acknowledged (it was down, and has not been
  reconciled since), the fallback is the authority for reads *and* writes: compare-and-set
  against a stale primary would hand out version numbers twice.
- **Reconciliation** (:meth:`~FailoverConfigRepository.reconcile`, also attempted
  automatically before an operation while anything is pending and both stores are worth
  trying) compares every layer in both stores and copies the higher version to the other
  store, with compare-and-set; then copies the audit records one store has and the other
  lacks, for every strategy that diverged. It is idempotent, so a reconcile cut short by a
  failure simply runs again. It also runs once on first use, because a previous process may
  have left writes on the fallback only.
- **Signal pauses** (:class:`FailoverPauseStore`) are few: a write is mirrored like a layer,
  and every read of both stores keeps per pause key the higher version and copies it to
  the store that lacks it (idempotent), so a pause written on one store alone is
  reconciled by the next read.
- A store that fails is skipped for ``retry_interval_s`` (a small circuit breaker), so a
  dead MongoDB costs one server-selection timeout per interval, not one per request.

``name`` is the name of the store that answered the last operation; returned documents
carry their store in ``source``. :meth:`~FailoverConfigRepository.health` reports both stores
(up/down, last error, pending counts) for ``/ready``.

Not solved here (it needs coordination between replicas): two replicas that disagree about
which store is up can each acknowledge a different document under the same version; the
reconciliation keeps the primary's and reports the other as a conflict in ``health()``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import structlog

from application.ports import (
    AuditLog,
    ConfigRepository,
    ConfigTransaction,
    ConfigUnitOfWork,
    PauseStore,
    StoreUnavailableError,
    VersionConflictError,
)
from domain.config import AuditQuery, AuditRecord, ConfigDocument
from domain.governance import PauseRecord, newest_pauses

_log = structlog.get_logger(__name__)

T = TypeVar("T")
_Key = tuple[str, str | None]

DEFAULT_RETRY_INTERVAL_S: Final = 5.0
DEFAULT_MAX_PENDING: Final = 10_000
AUDIT_SYNC_LIMIT: Final = 100_000
_INSTALL_ATTEMPTS: Final = 5


def _key(document: ConfigDocument) -> _Key:
    return (document.strategy_id, document.symbol)


def _describe(key: _Key) -> str:
    return f"{key[0]}/{key[1] or 'global'}"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class StoreState:
    """Up/down bookkeeping of one store, with a retry deadline while it is down."""

    def __init__(
        self,
        role: str,
        name: str,
        retry_interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.role = role
        self.name = name
        self.retry_interval_s = retry_interval_s
        self._monotonic = monotonic
        self.up = True
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.down_since: datetime | None = None
        self.consecutive_failures = 0
        self.failures = 0
        self._retry_at = 0.0

    def worth_trying(self) -> bool:
        """Up, or down long enough that it is time to try again."""
        return self.up or self._monotonic() >= self._retry_at

    def succeeded(self) -> None:
        if not self.up:
            _log.info("config_store_recovered", role=self.role, store=self.name)
        self.up = True
        self.down_since = None
        self.consecutive_failures = 0

    def failed(self, error: BaseException) -> None:
        now = datetime.now(UTC)
        if self.up:
            _log.warning(
                "config_store_unavailable", role=self.role, store=self.name, error=str(error)
            )
            self.down_since = now
        self.up = False
        self.last_error = str(error) or type(error).__name__
        self.last_error_at = now
        self.consecutive_failures += 1
        self.failures += 1
        self._retry_at = self._monotonic() + self.retry_interval_s

    async def call(self, operation: Awaitable[T]) -> T:
        """Await ``operation`` on this store, recording its success or unavailability."""
        try:
            result = await operation
        except StoreUnavailableError as error:
            self.failed(error)
            raise
        self.succeeded()
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "up" if self.up else "down",
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "down_since": _iso(self.down_since),
            "consecutive_failures": self.consecutive_failures,
            "failures": self.failures,
        }


@dataclass(slots=True)
class ReconcileReport:
    """What one reconciliation copied."""

    at: datetime
    copied_to_primary: builtins.list[str] = field(default_factory=list)
    copied_to_fallback: builtins.list[str] = field(default_factory=list)
    conflicts: builtins.list[str] = field(default_factory=list)
    audit_copied_to_primary: int = 0
    audit_copied_to_fallback: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "copied_to_primary": len(self.copied_to_primary),
            "copied_to_fallback": len(self.copied_to_fallback),
            "conflicts": len(self.conflicts),
            "audit_copied_to_primary": self.audit_copied_to_primary,
            "audit_copied_to_fallback": self.audit_copied_to_fallback,
        }


def _same_content(a: ConfigDocument, b: ConfigDocument) -> bool:
    return (
        dict(a.parameters) == dict(b.parameters)
        and all(type(a.parameters[k]) is type(b.parameters[k]) for k in a.parameters)
        and a.updated_by == b.updated_by
        and a.updated_at == b.updated_at
    )


class _Shared:
    """State both failover adapters of one store pair share: health, lock, clock."""

    def __init__(
        self,
        primary_name: str,
        fallback_name: str,
        retry_interval_s: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.primary = StoreState("primary", primary_name, retry_interval_s, monotonic)
        self.fallback = StoreState("fallback", fallback_name, retry_interval_s, monotonic)
        # Serialises writes and reconciliation (of configuration and audit alike).
        self.lock = asyncio.Lock()


def _both_down(what: str, shared: _Shared) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"{what}: both configuration stores are unavailable "
        f"(primary {shared.primary.name}: {shared.primary.last_error}; "
        f"fallback {shared.fallback.name}: {shared.fallback.last_error})"
    )


class FailoverConfigRepository:
    """:class:`~application.ports.ConfigRepository` over a primary and a fallback store."""

    def __init__(
        self,
        primary: ConfigRepository,
        fallback: ConfigRepository,
        *,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        max_pending_mirror: int = DEFAULT_MAX_PENDING,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name: str = primary.name
        self._shared = _Shared(primary.name, fallback.name, retry_interval_s, monotonic)
        self._max_pending_mirror = max_pending_mirror
        # Acknowledged by the fallback only: the primary must get them (reconcile).
        self._pending_reconcile: dict[_Key, ConfigDocument] = {}
        # Acknowledged by the primary, not yet mirrored: the fallback must get them.
        self._pending_mirror: OrderedDict[_Key, ConfigDocument] = OrderedDict()
        # Divergence of unknown extent (first use, a dropped queue entry): diff everything.
        self._needs_full_sync = True
        self._audit: FailoverAuditLog | None = None
        self._monotonic = monotonic
        self._next_auto_reconcile = 0.0
        self.last_reconcile: ReconcileReport | None = None
        self.conflicts: builtins.list[str] = []

    # --- state ---------------------------------------------------------------------------

    @property
    def primary_behind(self) -> bool:
        """The fallback holds acknowledged writes the primary has not received yet."""
        return bool(self._pending_reconcile)

    @property
    def needs_reconcile(self) -> bool:
        audit = self._audit
        return (
            self._needs_full_sync
            or bool(self._pending_reconcile)
            or bool(self._pending_mirror)
            or (audit is not None and audit.needs_reconcile)
        )

    def _primary_serves(self) -> bool:
        return not self.primary_behind and self._shared.primary.worth_trying()

    def health(self) -> dict[str, Any]:
        """Both stores' state and what is pending, for ``/ready`` (JSON-serialisable)."""
        primary, fallback = self._shared.primary, self._shared.fallback
        audit = self._audit
        pending_anything = bool(self._pending_reconcile or self._pending_mirror) or (
            audit is not None and bool(audit.pending_reconcile or audit.pending_mirror)
        )
        if primary.up and fallback.up and not pending_anything:
            status = "ok"
        elif not primary.up and not fallback.up:
            status = "down"
        else:
            status = "degraded"
        pending: dict[str, int] = {
            "reconcile": len(self._pending_reconcile),
            "mirror": len(self._pending_mirror),
        }
        if self._audit is not None:
            pending["audit_reconcile"] = self._audit.pending_reconcile
            pending["audit_mirror"] = self._audit.pending_mirror
        return {
            "status": status,
            "serving": self.primary.name if self._primary_serves() else self.fallback.name,
            "primary": {**primary.as_dict(), "behind": self.primary_behind},
            "fallback": fallback.as_dict(),
            "pending": pending,
            "needs_reconcile": self.needs_reconcile,
            "conflicts": len(self.conflicts),
            "last_reconcile": None
            if self.last_reconcile is None
            else self.last_reconcile.as_dict(),
        }

    async def check_health(self, timeout_s: float = 1.0) -> dict[str, Any]:
        """Ping both stores (each bounded by ``timeout_s``), then report :meth:`health`."""
        await asyncio.gather(
            self._probe(self._shared.primary, self.primary, timeout_s),
            self._probe(self._shared.fallback, self.fallback, timeout_s),
        )
        return self.health()

    @staticmethod
    async def _probe(state: StoreState, store: ConfigRepository, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await store.ping()
        except (StoreUnavailableError, TimeoutError) as error:
            state.failed(error if str(error) else TimeoutError(f"ping timed out ({timeout_s}s)"))
            return False
        state.succeeded()
        return True

    async def ping(self) -> None:
        """Succeeds if either store answers (both are pinged at once, each within 1 s)."""
        shared = self._shared
        probes = []
        if shared.primary.worth_trying():
            probes.append(self._probe(shared.primary, self.primary, 1.0))
        probes.append(self._probe(shared.fallback, self.fallback, 1.0))
        if any(await asyncio.gather(*probes)):
            return
        # The fallback failed; a primary skipped as down gets its chance now.
        skipped = len(probes) == 1
        if skipped and await self._probe(shared.primary, self.primary, 1.0):
            return
        raise _both_down("ping", shared)

    # --- reads -----------------------------------------------------------------------------

    async def get(self, strategy_id: str, symbol: str | None) -> ConfigDocument | None:
        return await self._read(lambda store: store.get(strategy_id, symbol), "get")

    async def list(self, strategy_id: str | None = None) -> builtins.list[ConfigDocument]:
        return await self._read(lambda store: store.list(strategy_id), "list")

    async def _read(self, operation: Callable[[ConfigRepository], Awaitable[T]], what: str) -> T:
        await self.reconcile_if_needed()
        shared = self._shared
        if self._primary_serves():
            with contextlib.suppress(StoreUnavailableError):
                return await self._read_primary(operation)
        try:
            await self._flush_mirror()
            result = await shared.fallback.call(operation(self.fallback))
        except StoreUnavailableError:
            if not self.primary_behind and not shared.primary.worth_trying():
                # The primary was skipped as down; with the fallback gone, try it anyway.
                with contextlib.suppress(StoreUnavailableError):
                    return await self._read_primary(operation)
            raise _both_down(what, shared) from None
        self.name = self.fallback.name
        return result

    async def _read_primary(self, operation: Callable[[ConfigRepository], Awaitable[T]]) -> T:
        result = await self._shared.primary.call(operation(self.primary))
        self.name = self.primary.name
        return result

    # --- writes ----------------------------------------------------------------------------

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        await self.reconcile_if_needed()
        shared = self._shared
        async with shared.lock:
            if self._primary_serves():
                try:
                    await shared.primary.call(self.primary.save(document, expected_version))
                except StoreUnavailableError:
                    pass
                else:
                    await self._acknowledged(document, expected_version, on_primary=True)
                    return
            # The primary is down (or behind): the fallback alone acknowledges the write.
            try:
                await self._flush_mirror()
                await shared.fallback.call(self.fallback.save(document, expected_version))
            except StoreUnavailableError:
                raise _both_down(f"save {_describe(_key(document))}", shared) from None
            await self._acknowledged(document, expected_version, on_primary=False)

    async def _acknowledged(
        self, document: ConfigDocument, expected_version: int, on_primary: bool
    ) -> None:
        """One store acknowledged ``document``: mirror it to the fallback, or leave it for
        the primary's reconciliation. The caller holds the shared lock."""
        if on_primary:
            self.name = self.primary.name
            await self._mirror(document, expected_version)
            return
        self.name = self.fallback.name
        self._pending_reconcile[_key(document)] = document
        _log.warning(
            "config_write_on_fallback_only",
            layer=_describe(_key(document)),
            version=document.version,
            pending=len(self._pending_reconcile),
        )

    async def _mirror(self, document: ConfigDocument, expected_version: int) -> None:
        """Copy a write the primary acknowledged to the fallback; never fails the write."""
        key = _key(document)
        self._pending_mirror.pop(key, None)
        self._pending_mirror[key] = document  # newest last
        if len(self._pending_mirror) > self._max_pending_mirror:
            dropped, _ = self._pending_mirror.popitem(last=False)
            self._needs_full_sync = True  # it is in the primary: a full reconcile copies it
            _log.warning("config_mirror_queue_full", dropped=_describe(dropped))
        state = self._shared.fallback
        if not state.worth_trying():
            return
        try:
            try:
                # Fast path: the fallback is at the version the primary was.
                await state.call(self.fallback.save(document, expected_version))
            except VersionConflictError:
                pass  # the fallback differs: left queued, installed by version below
            else:
                if self._pending_mirror.get(key) is document:
                    del self._pending_mirror[key]
            await self._flush_mirror()
        except StoreUnavailableError:
            pass  # stays queued: retried on the next operation or reconciliation

    async def _flush_mirror(self) -> None:
        """Install queued primary-acknowledged documents on the fallback, oldest first."""
        state = self._shared.fallback
        while self._pending_mirror:
            key, document = next(iter(self._pending_mirror.items()))
            try:
                await self._install(self.fallback, state, document)
            except VersionConflictError as error:
                _log.warning("config_mirror_conflict", layer=_describe(key), error=str(error))
                self._needs_full_sync = True
            if self._pending_mirror.get(key) is document:
                del self._pending_mirror[key]

    async def _install(
        self, store: ConfigRepository, state: StoreState, document: ConfigDocument
    ) -> bool:
        """Save ``document`` on ``store`` unless the store has that version or a newer one.

        Returns whether it was written. Compare-and-set on the store's current version,
        re-read and retried if another writer moves it meanwhile.
        """
        for _ in range(_INSTALL_ATTEMPTS):
            current = await state.call(store.get(document.strategy_id, document.symbol))
            if current is not None and current.version >= document.version:
                if current.version == document.version and not _same_content(current, document):
                    self._conflict(_key(document), document.version, state.role)
                return False
            try:
                expected = 0 if current is None else current.version
                await state.call(store.save(document, expected))
            except VersionConflictError:
                continue
            return True
        raise VersionConflictError(
            f"{_describe(_key(document))}: kept moving on the {state.role} while copying it"
        )

    @staticmethod
    async def _ensure_schema(store: object, state: StoreState) -> None:
        """Recreate a store's indexes if it offers to (a primary that came back wiped)."""
        ensure = getattr(store, "ensure_indexes", None)
        if ensure is None:
            return
        try:
            await ensure()
        except StoreUnavailableError as error:
            _log.warning("config_store_ensure_indexes_failed", store=state.name, error=str(error))

    def _conflict(self, key: _Key, version: int, kept_on: str) -> None:
        message = f"{_describe(key)} v{version}: the stores hold different documents"
        if message not in self.conflicts:
            self.conflicts.append(message)
            _log.error(
                "config_version_conflict_between_stores",
                layer=_describe(key),
                version=version,
                kept=kept_on,
            )

    # --- reconciliation --------------------------------------------------------------------

    async def reconcile_if_needed(self) -> ReconcileReport | None:
        """Reconcile if something is pending and both stores are worth trying.

        Never raises (an unavailable store is recorded in :meth:`health`); after a failed
        attempt the next automatic one waits ``retry_interval_s``.
        """
        shared = self._shared
        if not self.needs_reconcile:
            return None
        if not (shared.primary.worth_trying() and shared.fallback.worth_trying()):
            if self._pending_mirror and shared.fallback.worth_trying():
                async with shared.lock:
                    with contextlib.suppress(StoreUnavailableError):
                        await self._flush_mirror()
            return None
        if self._monotonic() < self._next_auto_reconcile:
            return None
        try:
            report = await self.reconcile()
        except StoreUnavailableError as error:
            _log.info("config_reconcile_postponed", error=str(error))
            report = None
        if self.needs_reconcile:
            self._next_auto_reconcile = self._monotonic() + shared.primary.retry_interval_s
        return report

    async def reconcile(self) -> ReconcileReport:
        """Bring both stores to the newest version of every layer, and the audit trails to
        the union of their records. Raises :class:`StoreUnavailableError` if either store
        cannot be reached (nothing is lost: it can simply run again)."""
        async with self._shared.lock:
            return await self._reconcile_locked()

    async def _reconcile_locked(self) -> ReconcileReport:
        shared = self._shared
        report = ReconcileReport(at=datetime.now(UTC))
        await self._flush_mirror()
        primary_docs = {_key(d): d for d in await shared.primary.call(self.primary.list())}
        # The primary answers; if it came back empty, its indexes went with the data.
        await self._ensure_schema(self.primary, shared.primary)
        if self._audit is not None:
            await self._ensure_schema(self._audit.primary, shared.primary)
        fallback_docs = {_key(d): d for d in await shared.fallback.call(self.fallback.list())}
        diverged: set[str] = set()
        unsettled: set[_Key] = set()
        for key in sorted(primary_docs.keys() | fallback_docs.keys(), key=_describe):
            in_primary, in_fallback = primary_docs.get(key), fallback_docs.get(key)
            try:
                if in_fallback is not None and (
                    in_primary is None or in_fallback.version > in_primary.version
                ):
                    if await self._install(self.primary, shared.primary, in_fallback):
                        report.copied_to_primary.append(_describe(key))
                        diverged.add(key[0])
                elif in_primary is not None and (
                    in_fallback is None or in_primary.version > in_fallback.version
                ):
                    if await self._install(self.fallback, shared.fallback, in_primary):
                        report.copied_to_fallback.append(_describe(key))
                        diverged.add(key[0])
                elif (
                    in_primary is not None
                    and in_fallback is not None
                    and not _same_content(in_primary, in_fallback)
                ):
                    self._conflict(key, in_primary.version, "primary")
                    report.conflicts.append(_describe(key))
            except VersionConflictError as error:
                # Another replica keeps writing this layer: settle it next time.
                _log.warning("config_reconcile_raced", layer=_describe(key), error=str(error))
                unsettled.add(key)
        if self._audit is not None:
            if self._needs_full_sync:
                diverged |= {key[0] for key in primary_docs.keys() | fallback_docs.keys()}
            copied = await self._audit._reconcile_locked(diverged)
            report.audit_copied_to_primary, report.audit_copied_to_fallback = copied
        # Every layer listed above is now at its newest version in both stores; pending
        # entries were acknowledged before the lock was taken, so they were listed.
        for pending in (self._pending_reconcile, self._pending_mirror):
            for key in builtins.list(pending):
                if key not in unsettled:
                    del pending[key]
        self._needs_full_sync = bool(unsettled)
        self.last_reconcile = report
        if report.copied_to_primary or report.copied_to_fallback or report.conflicts:
            _log.info("config_reconciled", **report.as_dict())
        return report

    def link_audit_log(self, audit_log: FailoverAuditLog) -> None:
        self._audit = audit_log


def _audit_key(record: AuditRecord) -> tuple[str, int]:
    """An audit record's identity: one record per (strategy, version), in every store."""
    return (record.strategy_id, record.version)


class FailoverAuditLog:
    """:class:`~application.ports.AuditLog` over a primary and a fallback audit log.

    Pass ``repository=`` (the :class:`FailoverConfigRepository` of the same stores) so both
    share the stores' health and lock, and the repository's :meth:`reconcile` also copies
    the audit records each store lacks.
    """

    def __init__(
        self,
        primary: AuditLog,
        fallback: AuditLog,
        *,
        repository: FailoverConfigRepository | None = None,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name: str = getattr(primary, "name", "primary")
        self._repository = repository
        if repository is not None:
            self._shared = repository._shared
            repository.link_audit_log(self)
        else:
            self._shared = _Shared(
                self.name, getattr(fallback, "name", "fallback"), retry_interval_s, monotonic
            )
        self._max_pending = max_pending
        self._monotonic = monotonic
        self._next_auto_reconcile = 0.0
        # Appended to the primary, not yet to the fallback (oldest first).
        self._mirror_queue: deque[AuditRecord] = deque()
        # Strategy → records appended to the fallback only.
        self._unreconciled: Counter[str] = Counter()
        # Strategies whose trails must be compared in full (a queue overflowed).
        self._dirty: set[str] = set()

    @property
    def pending_reconcile(self) -> int:
        return sum(self._unreconciled.values())

    @property
    def pending_mirror(self) -> int:
        return len(self._mirror_queue)

    @property
    def needs_reconcile(self) -> bool:
        return bool(self._unreconciled or self._mirror_queue or self._dirty)

    def _primary_serves(self) -> bool:
        return not self._unreconciled and self._shared.primary.worth_trying()

    async def append(self, record: AuditRecord) -> None:
        await self.reconcile_if_needed()
        shared = self._shared
        async with shared.lock:
            if self._primary_serves():
                try:
                    await shared.primary.call(self.primary.append(record))
                except StoreUnavailableError:
                    pass
                else:
                    self.name = getattr(self.primary, "name", self.name)
                    await self._acknowledged(record, on_primary=True)
                    return
            try:
                await self._flush_mirror()
                await shared.fallback.call(self.fallback.append(record))
            except StoreUnavailableError:
                raise _both_down(f"audit of {record.strategy_id}", shared) from None
            self.name = getattr(self.fallback, "name", self.name)
            await self._acknowledged(record, on_primary=False)

    async def _acknowledged(self, record: AuditRecord, on_primary: bool) -> None:
        """One store acknowledged ``record``: mirror it, or mark it for reconciliation. The
        caller holds the shared lock."""
        if not on_primary:
            self._unreconciled[record.strategy_id] += 1
            return
        self._mirror_queue.append(record)
        if len(self._mirror_queue) > self._max_pending:
            self._dirty.add(self._mirror_queue.popleft().strategy_id)
        if self._shared.fallback.worth_trying():
            with contextlib.suppress(StoreUnavailableError):
                await self._flush_mirror()

    async def _flush_mirror(self) -> None:
        while self._mirror_queue:
            await self._shared.fallback.call(self.fallback.append(self._mirror_queue[0]))
            self._mirror_queue.popleft()

    async def list(self, query: AuditQuery) -> builtins.list[AuditRecord]:
        await self.reconcile_if_needed()
        shared = self._shared

        if self._primary_serves():
            try:
                result = await shared.primary.call(self.primary.list(query))
            except StoreUnavailableError:
                pass
            else:
                self.name = getattr(self.primary, "name", self.name)
                return result
        try:
            await self._flush_mirror()
            result = await shared.fallback.call(self.fallback.list(query))
        except StoreUnavailableError:
            raise _both_down(f"audit of {query.strategy_id or 'every strategy'}", shared) from None
        self.name = getattr(self.fallback, "name", self.name)
        return result

    async def reconcile_if_needed(self) -> None:
        """Reconcile if records are pending and both stores are worth trying; never raises.

        Linked to a repository, this is the repository's (configuration and audit together).
        """
        if self._repository is not None:
            await self._repository.reconcile_if_needed()
            return
        shared = self._shared
        if not self.needs_reconcile or self._monotonic() < self._next_auto_reconcile:
            return
        if not (shared.primary.worth_trying() and shared.fallback.worth_trying()):
            return
        try:
            await self.reconcile()
        except StoreUnavailableError as error:
            _log.info("audit_reconcile_postponed", error=str(error))
        if self.needs_reconcile:
            self._next_auto_reconcile = self._monotonic() + shared.primary.retry_interval_s

    async def reconcile(self, strategy_ids: Iterable[str] = ()) -> tuple[int, int]:
        """Copy the records each store lacks for the pending (and the given) strategies.

        Returns (copied to the primary, copied to the fallback).
        """
        async with self._shared.lock:
            return await self._reconcile_locked(set(strategy_ids))

    async def _reconcile_locked(self, strategy_ids: set[str]) -> tuple[int, int]:
        await self._flush_mirror()
        to_primary = to_fallback = 0
        for strategy_id in sorted(strategy_ids | set(self._unreconciled) | self._dirty):
            pending_before = self._unreconciled[strategy_id]
            copied = await self._sync_strategy(strategy_id)
            to_primary += copied[0]
            to_fallback += copied[1]
            self._unreconciled[strategy_id] -= pending_before
            if self._unreconciled[strategy_id] <= 0:
                del self._unreconciled[strategy_id]
            self._dirty.discard(strategy_id)
        return to_primary, to_fallback

    async def _sync_strategy(self, strategy_id: str) -> tuple[int, int]:
        shared = self._shared
        query = AuditQuery(strategy_id, None, AUDIT_SYNC_LIMIT)
        in_primary = await shared.primary.call(self.primary.list(query))
        in_fallback = await shared.fallback.call(self.fallback.list(query))
        copied_to_primary = await self._copy_missing(
            in_fallback, in_primary, self.primary, shared.primary
        )
        copied_to_fallback = await self._copy_missing(
            in_primary, in_fallback, self.fallback, shared.fallback
        )
        if copied_to_primary or copied_to_fallback:
            _log.info(
                "audit_reconciled",
                strategy_id=strategy_id,
                copied_to_primary=copied_to_primary,
                copied_to_fallback=copied_to_fallback,
            )
        return copied_to_primary, copied_to_fallback

    @staticmethod
    async def _copy_missing(
        source: builtins.list[AuditRecord],
        target: builtins.list[AuditRecord],
        store: AuditLog,
        state: StoreState,
    ) -> int:
        have = {_audit_key(record) for record in target}
        copied = 0
        for record in reversed(source):  # oldest first keeps equal-time order
            key = _audit_key(record)
            if key in have:
                continue
            # Idempotent per (strategy, version) in the store: a reconciler on another
            # replica copying the same record at the same time leaves one copy.
            await state.call(store.append(record))
            have.add(key)
            copied += 1
        return copied


class _RecordingTransaction:
    """A store's transaction that remembers what was written (to mirror it afterwards)."""

    def __init__(self, inner: ConfigTransaction) -> None:
        self._inner = inner
        self.saved: builtins.list[tuple[ConfigDocument, int]] = []
        self.pauses: builtins.list[PauseRecord] = []
        self.records: builtins.list[AuditRecord] = []

    @property
    def store_name(self) -> str:
        return self._inner.store_name

    async def layers(self) -> builtins.list[ConfigDocument]:
        return await self._inner.layers()

    async def next_version(self) -> int:
        return await self._inner.next_version()

    async def save(self, document: ConfigDocument, expected_version: int) -> None:
        await self._inner.save(document, expected_version)
        self.saved.append((document, expected_version))

    async def save_pause(self, record: PauseRecord, expected_version: int) -> None:
        await self._inner.save_pause(record, expected_version)
        self.pauses.append(record)

    async def append(self, record: AuditRecord) -> None:
        await self._inner.append(record)
        self.records.append(record)


class FailoverConfigUnitOfWork:
    """:class:`~application.ports.ConfigUnitOfWork` over the primary's and the fallback's
    units of work: the write is atomic on the store that serves (the primary unless it is
    down or behind), then mirrored to the other (or left for reconciliation).

    A primary that fails during the write is marked down and the write is reported as a
    :class:`VersionConflictError`, so the use case retries it, on the fallback.
    """

    def __init__(
        self,
        repository: FailoverConfigRepository,
        audit: FailoverAuditLog,
        primary: ConfigUnitOfWork,
        fallback: ConfigUnitOfWork,
        pauses: FailoverPauseStore | None = None,
    ) -> None:
        self._repository = repository
        self._audit = audit
        self._primary = primary
        self._fallback = fallback
        self._pauses = pauses

    @asynccontextmanager
    async def write(self, strategy_id: str) -> AsyncIterator[_RecordingTransaction]:
        repository = self._repository
        await repository.reconcile_if_needed()
        shared = repository._shared
        on_primary = repository._primary_serves()
        unit, state = (
            (self._primary, shared.primary) if on_primary else (self._fallback, shared.fallback)
        )
        try:
            async with unit.write(strategy_id) as inner:
                transaction = _RecordingTransaction(inner)
                yield transaction
        except StoreUnavailableError as error:
            state.failed(error)
            if on_primary and shared.fallback.worth_trying():
                raise VersionConflictError(
                    f"{strategy_id}: the primary store failed during the write ({error}); "
                    "retry on the fallback"
                ) from error
            raise _both_down(f"write of {strategy_id}", shared) from None
        state.succeeded()
        async with shared.lock:
            for document, expected_version in transaction.saved:
                await repository._acknowledged(document, expected_version, on_primary)
            for pause in transaction.pauses:
                if self._pauses is not None:
                    await self._pauses.mirror(pause, on_primary)
            for record in transaction.records:
                await self._audit._acknowledged(record, on_primary)


class FailoverPauseStore:
    """:class:`~application.ports.PauseStore` over the primary's and the fallback's pause
    stores, sharing the repository's store health.

    Reads ask every store worth trying and keep, per pause key, the higher version, copying
    it to a store that lacks it (so a pause written while a store was down is reconciled by
    the next read); only when both stores fail does a read raise.
    """

    def __init__(
        self,
        primary: PauseStore,
        fallback: PauseStore,
        repository: FailoverConfigRepository,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._shared = repository._shared
        self._repository = repository
        self.name = primary.name

    def _stores(self) -> builtins.list[tuple[PauseStore, StoreState]]:
        shared = self._shared
        return [(self.primary, shared.primary), (self.fallback, shared.fallback)]

    async def list(self) -> builtins.list[PauseRecord]:
        answers: builtins.list[tuple[PauseStore, StoreState, builtins.list[PauseRecord]]] = []
        for store, state in self._stores():
            if not state.worth_trying():
                continue
            try:
                answers.append((store, state, await state.call(store.list())))
            except StoreUnavailableError:
                continue
        if not answers:
            raise _both_down("signal pauses", self._shared)
        newest = newest_pauses(record for _, _, records in answers for record in records)
        for store, state, records in answers:
            held = {record.key: record.version for record in records}
            for key, record in newest.items():
                if held.get(key, 0) < record.version:
                    with contextlib.suppress(StoreUnavailableError):
                        await state.call(store.apply(record))
        self.name = answers[0][0].name
        return [newest[key] for key in sorted(newest)]

    async def apply(self, record: PauseRecord) -> bool:
        stored = False
        reached = False
        for store, state in self._stores():
            if not state.worth_trying():
                continue
            try:
                stored = await state.call(store.apply(record)) or stored
                reached = True
            except StoreUnavailableError:
                continue
        if not reached:
            raise _both_down(f"pause {record.key}", self._shared)
        return stored

    async def mirror(self, record: PauseRecord, on_primary: bool) -> None:
        """A unit of work stored ``record`` on one store: copy it to the other, if it
        answers (else the next read reconciles it). The caller holds the shared lock."""
        store, state = (
            (self.fallback, self._shared.fallback)
            if on_primary
            else (self.primary, self._shared.primary)
        )
        if not state.worth_trying():
            return
        try:
            await state.call(store.apply(record))
        except StoreUnavailableError as error:
            _log.warning("signal_pause_not_mirrored", pause=record.key, error=str(error))
