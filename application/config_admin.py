"""The configuration admin use cases: discovery, reads, audited writes, rollback.

Every write reads the strategy's layers through a :class:`~application.ports.ConfigUnitOfWork`,
validates the merged result of all layers (the written one and, for a global write, every
live symbol override), saves the layer and appends its audit record in the same unit of
work, then applies the change to the local :class:`~application.config_cache.EffectiveConfigCache`
at once and tells the other replicas through the notifier. Reads are served from the cache.

Versions come from one sequence per strategy, allocated by the unit of work.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import unicodedata
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from application.config_cache import EffectiveConfigCache, normalise_symbol
from application.errors import ConfigNotFoundError, WritesOverloadedError
from application.ports import (
    AuditLog,
    Clock,
    ConfigChangeNotifier,
    ConfigUnitOfWork,
    VersionConflictError,
)
from domain.config import (
    LAYER_ACTIONS,
    AuditAction,
    AuditPosition,
    AuditQuery,
    AuditRecord,
    ConfigDocument,
    EffectiveConfig,
    StrategyLayers,
    live_parameters,
    merge_patch,
    resolve,
)
from domain.params import (
    CommonParams,
    FieldError,
    ParamSpec,
    ParamValidationError,
    ParamValue,
    StrategyParams,
    coerce,
)

logger = logging.getLogger(__name__)

CAS_ATTEMPTS = 20
"""Attempts of a write that keeps losing races to other replicas before giving up (409)."""
CAS_BACKOFF_SECONDS = 0.005
"""Base of the jittered pause between attempts (grows with the attempt number)."""
MAX_CONCURRENT_WRITES = 4
"""Writes of this replica that run against the store at once (the rest wait in the queue),
far below the store's connection pool, so writes never exhaust it."""
MAX_QUEUED_WRITES = 256
"""Writes that may wait; one more is refused with :class:`WritesOverloadedError` (429)."""
RETRY_AFTER_SECONDS = 1.0
NOTIFY_TIMEOUT_SECONDS = 2.0
"""A slow change broadcast must not hold up the write that triggered it."""
AUDIT_SEARCH_LIMIT = 10_000
"""How many audit records a rollback searches for the version to restore."""


# --- result types -----------------------------------------------------------------------------


@dataclass(slots=True)
class AdminStats:
    """Counters of the configuration writes (exported by the metrics adapter)."""

    notify_failures: int = 0
    version_conflicts: int = 0
    writes_refused_overload: int = 0


async def broadcast_change(
    notifier: ConfigChangeNotifier | None, channel: str, symbol: str | None, version: int
) -> bool:
    """Tell the other replicas that ``channel`` changed, within ``NOTIFY_TIMEOUT_SECONDS``;
    False (logged) if that failed: they apply the change at their next refresh."""
    if notifier is None:
        return True
    try:
        async with asyncio.timeout(NOTIFY_TIMEOUT_SECONDS):
            await notifier.notify(channel, symbol, version)
    except Exception:
        logger.exception(
            "could not broadcast the change of %s/%s to version %d; other replicas "
            "apply it at their next refresh",
            channel,
            symbol or "global",
            version,
        )
        return False
    return True


class WriteAdmission:
    """Admission of one replica's writes: one at a time per key (the store serialises
    replicas), at most ``max_concurrent`` against the store at once and ``max_queued`` more
    waiting; one more is refused with :class:`WritesOverloadedError` (after ``on_refused``).
    """

    def __init__(
        self,
        max_concurrent: int = MAX_CONCURRENT_WRITES,
        max_queued: int = MAX_QUEUED_WRITES,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("max_concurrent_writes must be >= 1 and max_queued_writes >= 0")
        self._slots = asyncio.Semaphore(max_concurrent)
        self._admitted = 0
        self._max_admitted = max_concurrent + max_queued
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._on_refused = on_refused

    @asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        """Held while the write of ``key`` runs."""
        if self._admitted >= self._max_admitted:
            if self._on_refused is not None:
                self._on_refused()
            raise WritesOverloadedError(RETRY_AFTER_SECONDS)
        self._admitted += 1
        try:
            async with self._locks[key], self._slots:
                yield
        finally:
            self._admitted -= 1


@dataclass(frozen=True, slots=True)
class StrategySummary:
    """One entry of ``GET /strategies``."""

    strategy_id: str
    name: str
    description: str
    has_global_config: bool
    symbol_overrides: tuple[str, ...]
    parameter_count: int
    enabled: bool
    version: int


@dataclass(frozen=True, slots=True)
class ConfigView:
    """One configuration layer as stored, and the effective config it results in.

    ``parameters`` is the layer itself (empty when no live layer is stored: ``exists`` False);
    ``effective`` is the full merged parameter set (defaults → environment → global → symbol)
    the strategy runs with, and ``version``/``source``/``is_override`` are those signals carry.
    ``layer_version``, ``updated_at`` and ``updated_by`` describe the last write to the layer
    (a deletion included); they are 0/None when the layer was never written.
    """

    strategy_id: str
    symbol: str | None
    parameters: Mapping[str, ParamValue]
    effective: Mapping[str, ParamValue]
    version: int
    source: str
    is_override: bool
    exists: bool
    layer_version: int
    updated_at: datetime | None
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class ConfigWriteResult:
    """Outcome of a write (or, with ``applied`` False, of a ``validate_only`` dry run).

    ``config`` is the layer and effective config after the write (would-be, for a dry run);
    ``previous`` the layer's live parameters before it (None when there was no live layer).
    """

    action: AuditAction
    applied: bool
    config: ConfigView
    previous: Mapping[str, ParamValue] | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Audit records, newest first; ``next_cursor`` continues after the last (None: done)."""

    records: list[AuditRecord]
    next_cursor: str | None


def encode_cursor(position: AuditPosition) -> str:
    """An opaque page cursor for ``position``."""
    raw = json.dumps([position.changed_at.isoformat(), position.strategy_id, position.version])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> AuditPosition:
    """The position of a cursor from :func:`encode_cursor`; a 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, strategy_id, version = json.loads(raw)
        position = AuditPosition(datetime.fromisoformat(at), str(strategy_id), int(version))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise ParamValidationError(
            [FieldError("cursor", "invalid_cursor", "cursor is not one this API returned")]
        ) from error
    if position.changed_at.tzinfo is None:
        raise ParamValidationError(
            [FieldError("cursor", "invalid_cursor", "cursor is not one this API returned")]
        )
    return position


def _utc(moment: datetime | None) -> datetime | None:
    """A query time in UTC (a time without zone is taken as UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- input rules ------------------------------------------------------------------------------


def _store_time(moment: datetime) -> datetime:
    """UTC at millisecond precision, as every store keeps it (so the snapshot equals the store)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Control (NUL, BEL, newlines, ...), format (bidi overrides such as U+202E, zero-width),
surrogate, private-use and line/paragraph separator characters: none belongs in an audit
trail that people and tools read (they forge or hide text in terminals and UIs)."""


def _unprintable(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _UNPRINTABLE_CATEGORIES]


def require_author(changed_by: str, reason: str) -> None:
    """Who and why of a change: an author is required; both must be plain printable text."""
    errors: list[FieldError] = []
    if not changed_by or not changed_by.strip():
        errors.append(
            FieldError("changed_by", "missing", "changed_by must name who makes the change")
        )
    for name, text in (("changed_by", changed_by), ("reason", reason)):
        found = _unprintable(text)
        if found:
            listed = ", ".join(dict.fromkeys(found))
            errors.append(
                FieldError(name, "control_character", f"{name} must be printable text ({listed})")
            )
    if errors:
        raise ParamValidationError(errors)


# --- the use cases ----------------------------------------------------------------------------

_Build = Callable[[ConfigDocument | None], Awaitable[tuple[dict[str, ParamValue], AuditAction]]]


class ConfigAdmin:
    """The configuration management use cases over the cache and a unit of work.

    ``names`` gives each strategy's display name and description (the strategy registry's).
    """

    def __init__(
        self,
        cache: EffectiveConfigCache,
        unit_of_work: ConfigUnitOfWork,
        audit: AuditLog,
        clock: Clock,
        notifier: ConfigChangeNotifier | None = None,
        max_concurrent_writes: int = MAX_CONCURRENT_WRITES,
        max_queued_writes: int = MAX_QUEUED_WRITES,
        names: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self._cache = cache
        self._unit_of_work = unit_of_work
        self._audit = audit
        self._clock = clock
        self._notifier = notifier
        self.stats = AdminStats()
        self._names = dict(names or {})
        self._admission = WriteAdmission(
            max_concurrent_writes, max_queued_writes, on_refused=self._refused
        )

    # --- discovery ----------------------------------------------------------------------------

    async def list_strategies(self) -> list[StrategySummary]:
        """Every registered strategy with its configuration status, from the cache (reloaded
        first only when its TTL has run out)."""
        cache = self._cache
        await cache.maybe_refresh()
        summaries = []
        for strategy_id in cache.strategy_ids:
            params_type = cache.params_type(strategy_id)
            name, description = self._names.get(strategy_id, (strategy_id, ""))
            layers = cache.layers(strategy_id)
            config = cache.effective(strategy_id, None)
            global_doc = layers.global_doc
            summaries.append(
                StrategySummary(
                    strategy_id=strategy_id,
                    name=name,
                    description=description,
                    has_global_config=global_doc is not None and not global_doc.is_deleted,
                    symbol_overrides=tuple(sorted(layers.live_overrides())),
                    parameter_count=len(params_type.schema()),
                    enabled=not isinstance(config.params, CommonParams) or config.params.enabled,
                    version=config.version,
                )
            )
        return summaries

    async def schema(self, strategy_id: str) -> tuple[ParamSpec, ...]:
        return self._cache.params_type(strategy_id).schema()

    async def defaults(self, strategy_id: str) -> dict[str, ParamValue]:
        """The code defaults (the environment layer is not included)."""
        return self._cache.params_type(strategy_id).defaults()

    # --- reads --------------------------------------------------------------------------------

    async def get_config(self, strategy_id: str, symbol: str | None) -> ConfigView:
        """The stored layer (possibly absent: ``exists`` False) and its effective config.

        Served from the cache while it is within its TTL of the last successful full
        refresh (it is also kept current by this replica's writes and by other replicas'
        change broadcasts), so reads cost no store round trip; otherwise the strategy's
        layers are reloaded from the store first.
        """
        cache = self._cache
        cache.params_type(strategy_id)
        symbol = normalise_symbol(symbol)
        if cache.fresh:
            layers = cache.layers(strategy_id)
        else:
            layers = await cache.load_strategy(strategy_id)
        return _view(strategy_id, symbol, layers.get(symbol), cache.effective(strategy_id, symbol))

    async def audit(
        self, strategy_id: str, symbol: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """Audit records of the strategy (``symbol`` None: every layer), newest first."""
        return (await self.audit_page(strategy_id, symbol, limit=limit)).records

    async def audit_page(
        self,
        strategy_id: str | None,
        symbol: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """One page of the audit trail, newest first: of one strategy or (``strategy_id``
        None) of all, of one layer or all, changed in ``[since, until)``; ``cursor`` is the
        previous page's ``next_cursor``."""
        if strategy_id is not None:
            self._cache.params_type(strategy_id)
        symbol = normalise_symbol(symbol)
        if limit < 1:
            raise ParamValidationError([FieldError("limit", "out_of_range", "limit must be >= 1")])
        since, until = _utc(since), _utc(until)
        if since is not None and until is not None and until <= since:
            raise ParamValidationError(
                [FieldError("until", "out_of_range", "until must be after since")]
            )
        after = None if cursor is None else decode_cursor(cursor)
        records = await self._audit.list(
            AuditQuery(strategy_id, symbol, limit + 1, since=since, until=until, after=after)
        )
        page, more = records[:limit], len(records) > limit
        next_cursor = encode_cursor(page[-1].position) if more else None
        return AuditPage(records=page, next_cursor=next_cursor)

    # --- writes -------------------------------------------------------------------------------

    async def set_config(
        self,
        strategy_id: str,
        symbol: str | None,
        patch: Mapping[str, ParamValue | None],
        changed_by: str,
        reason: str,
        validate_only: bool = False,
    ) -> ConfigWriteResult:
        """Merge ``patch`` into the layer (``None`` removes a parameter) and save it.

        Validates the patch field by field, then the effective result of every affected
        symbol. A patch that removes the last parameter of the layer deletes the layer.
        """
        params_type = self._cache.params_type(strategy_id)
        symbol = normalise_symbol(symbol)
        if not patch:
            raise ParamValidationError(
                [FieldError("parameters", "empty_patch", "give at least one parameter to change")]
            )

        async def build(
            current: ConfigDocument | None,
        ) -> tuple[dict[str, ParamValue], AuditAction]:
            layer = live_parameters(current) or {}
            errors = params_type.field_errors({k: v for k, v in patch.items() if v is not None})
            errors.extend(
                FieldError(name, "unknown_parameter", f"unknown parameter {name!r}")
                for name, value in patch.items()
                if value is None and params_type.spec(name) is None and name not in layer
            )
            if errors:
                raise ParamValidationError(errors)
            merged = merge_patch(layer, patch)
            for name, value in merged.items():
                spec = params_type.spec(name)
                if spec is not None:
                    merged[name] = coerce(spec, value)
            if not merged:
                if not layer:
                    raise ConfigNotFoundError(strategy_id, symbol, "no stored parameters to remove")
                return merged, AuditAction.DELETE
            return merged, AuditAction.CREATE if not layer else AuditAction.UPDATE

        return await self._commit(strategy_id, symbol, changed_by, reason, build, validate_only)

    async def delete_config(
        self, strategy_id: str, symbol: str | None, changed_by: str, reason: str
    ) -> ConfigWriteResult:
        """Delete the layer (writes a tombstone with the next version). 404 if none is live."""
        self._cache.params_type(strategy_id)
        symbol = normalise_symbol(symbol)

        async def build(
            current: ConfigDocument | None,
        ) -> tuple[dict[str, ParamValue], AuditAction]:
            if live_parameters(current) is None:
                raise ConfigNotFoundError(strategy_id, symbol, "no stored configuration")
            return {}, AuditAction.DELETE

        return await self._commit(strategy_id, symbol, changed_by, reason, build)

    async def rollback(
        self,
        strategy_id: str,
        symbol: str | None,
        to_version: int | None,
        changed_by: str,
        reason: str,
    ) -> ConfigWriteResult:
        """Restore the layer as it was right after the change with version ``to_version``.

        ``to_version`` None undoes the latest change of the layer (restores the parameters
        it replaced). Restoring a state in which the layer did not exist deletes it. The
        restored parameters are validated like any write and audited as ROLLBACK.
        """
        params_type = self._cache.params_type(strategy_id)
        layer_symbol = normalise_symbol(symbol)

        async def build(
            current: ConfigDocument | None,
        ) -> tuple[dict[str, ParamValue], AuditAction]:
            history = [
                record
                for record in await self._audit.list(
                    AuditQuery(strategy_id, layer_symbol, AUDIT_SEARCH_LIMIT)
                )
                if record.symbol == layer_symbol and record.action in LAYER_ACTIONS
            ]
            if not history:
                raise ConfigNotFoundError(strategy_id, layer_symbol, "no recorded changes")
            history.sort(key=lambda record: record.version, reverse=True)
            if to_version is None:
                latest = history[0]
                held = 0 if current is None else current.version
                if latest.version != held:
                    raise ConfigNotFoundError(
                        strategy_id,
                        layer_symbol,
                        f"the audit trail has no record of the current version {held}",
                    )
                target = latest.old_parameters
            else:
                found = next((r for r in history if r.version == to_version), None)
                if found is None:
                    raise ConfigNotFoundError(
                        strategy_id, layer_symbol, f"no recorded change with version {to_version}"
                    )
                target = found.new_parameters
            restored = dict(target or {})
            if not restored and live_parameters(current) is None:
                raise ConfigNotFoundError(
                    strategy_id, layer_symbol, "the layer is already absent in that state"
                )
            errors = params_type.field_errors(restored)
            if errors:
                raise ParamValidationError(errors)
            return restored, AuditAction.ROLLBACK

        return await self._commit(strategy_id, layer_symbol, changed_by, reason, build)

    def _refused(self) -> None:
        self.stats.writes_refused_overload += 1

    async def _commit(
        self,
        strategy_id: str,
        symbol: str | None,
        changed_by: str,
        reason: str,
        build: _Build,
        validate_only: bool = False,
    ) -> ConfigWriteResult:
        """Admit the write (:class:`WriteAdmission`); read, build, validate; save and audit in one
        unit of work; apply, notify.

        Validation sees the layers as the unit of work read them, and the unit of work
        stores the write only if no other write of the strategy came in between (else
        :class:`VersionConflictError`: read, build and validate again).
        """
        cache = self._cache
        params_type = cache.params_type(strategy_id)
        symbol = normalise_symbol(symbol)
        require_author(changed_by, reason)
        async with self._admission(strategy_id):
            for attempt in range(CAS_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(random.uniform(0, CAS_BACKOFF_SECONDS * attempt))
                started = cache.generation
                try:
                    async with self._unit_of_work.write(strategy_id) as transaction:
                        stored = await transaction.layers()
                        layers = StrategyLayers.of(stored)
                        current = layers.get(symbol)
                        parameters, action = await build(current)
                        now = _store_time(self._clock.now())
                        document = ConfigDocument(
                            strategy_id=strategy_id,
                            symbol=symbol,
                            parameters=parameters,
                            version=await transaction.next_version(),
                            updated_at=now,
                            updated_by=changed_by,
                            source=transaction.store_name,
                        )
                        after = layers.put(document)
                        config = self._validate(params_type, strategy_id, symbol, layers, after)
                        previous = live_parameters(current)
                        result = ConfigWriteResult(
                            action=action,
                            applied=not validate_only,
                            config=_view(strategy_id, symbol, document, config),
                            previous=previous,
                        )
                        if validate_only:
                            return result
                        await transaction.save(document, 0 if current is None else current.version)
                        await transaction.append(
                            AuditRecord(
                                strategy_id=strategy_id,
                                symbol=symbol,
                                action=action,
                                old_parameters=previous,
                                new_parameters=None if document.is_deleted else dict(parameters),
                                changed_by=changed_by,
                                changed_at=now,
                                reason=reason,
                                version=document.version,
                            )
                        )
                except VersionConflictError:
                    self.stats.version_conflicts += 1
                    continue
                # The write, and the strategy's other layers as just read, go live here at once.
                cache.install([*stored, document], (strategy_id,), started)
                await self._notify(strategy_id, symbol, document.version)
                return result
        raise VersionConflictError(
            f"{strategy_id}/{symbol or 'global'}: still conflicting after {CAS_ATTEMPTS} attempts"
        )

    def _validate(
        self,
        params_type: type[StrategyParams],
        strategy_id: str,
        symbol: str | None,
        before: StrategyLayers,
        after: StrategyLayers,
    ) -> EffectiveConfig[StrategyParams]:
        """Effective config of the written layer after the write; raises if a write breaks one.

        The written layer's own result must be valid (unless the write deletes it). A global
        write must also leave every live override valid that was valid before it; overrides
        that were already invalid do not block it (else a bad override and a bad global
        could only be fixed together).
        """
        environment = self._cache.environment(strategy_id)

        def attempt(layers: StrategyLayers, key: str | None) -> EffectiveConfig[StrategyParams]:
            return resolve(
                params_type,
                strategy_id,
                key,
                environment,
                layers.global_doc,
                None if key is None else layers.symbols.get(key),
            )

        errors: list[FieldError] = []
        config: EffectiveConfig[StrategyParams] | None = None
        written = after.get(symbol)
        try:
            config = attempt(after, symbol)
        except ParamValidationError as error:
            if written is None or not written.is_deleted:
                errors.extend(error.errors)
        if symbol is None:
            for override in sorted(after.live_overrides()):
                try:
                    attempt(after, override)
                except ParamValidationError as error:
                    try:
                        attempt(before, override)
                    except ParamValidationError:
                        continue  # already invalid: not this write's doing
                    errors.extend(
                        FieldError(e.field, e.code, f"with the {override} override: {e.message}")
                        for e in error.errors
                    )
        if errors:
            raise ParamValidationError(errors)
        if config is None:  # a deletion onto invalid lower layers: report what will run
            config = resolve(params_type, strategy_id, symbol, environment)
        return config

    async def _notify(self, strategy_id: str, symbol: str | None, version: int) -> None:
        if not await broadcast_change(self._notifier, strategy_id, symbol, version):
            self.stats.notify_failures += 1


def _view(
    strategy_id: str,
    symbol: str | None,
    document: ConfigDocument | None,
    config: EffectiveConfig[StrategyParams],
) -> ConfigView:
    return ConfigView(
        strategy_id=strategy_id,
        symbol=symbol,
        parameters=live_parameters(document) or {},
        effective=config.params.to_mapping(),
        version=config.version,
        source=config.source,
        is_override=config.is_override,
        exists=live_parameters(document) is not None,
        layer_version=0 if document is None else document.version,
        updated_at=None if document is None else document.updated_at,
        updated_by=None if document is None else document.updated_by,
    )
