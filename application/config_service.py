"""Configuration management: the hot-path lookup and the audited management use cases.

Two halves share one in-memory *snapshot* of every stored layer (global and per symbol,
tombstones included) of every registered strategy:

- :meth:`ConfigService.effective` is the hot path, called for every strategy on every market
  event. It is synchronous and answers from a memo keyed by (strategy, symbol) that is
  rebuilt lazily whenever the snapshot changes; a hit is one dict lookup. Symbols without a
  live override share the global resolution (no per-symbol validation). It never raises for
  a registered strategy: if a stored layer makes the merged config invalid, it serves the last
  valid config of that key (else the global one, else defaults + environment) and counts it.
- The management use cases (list, schema, defaults, get/set/delete, rollback, audit) read the
  repository, validate every write on the merged result of all layers, save with
  compare-and-set, write an audit record, apply the change to the local snapshot at once, and
  tell the other replicas through the notifier.

The snapshot is reloaded by :meth:`ConfigService.refresh` (start-up, TTL via
:meth:`ConfigService.maybe_refresh`, the cache-refresh endpoint) and per strategy by
:meth:`ConfigService.apply_remote_change` (a change broadcast by another replica). A reload
that raced with another change of the snapshot keeps, per layer, the newer version, so a
slow read never rolls a fresher local write back.

Versions come from :func:`domain.config.next_version` (one sequence per strategy); see the
module docstring of :mod:`domain.config`.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from application.errors import ConfigNotFoundError, UnknownStrategyError
from application.ports import (
    AuditLog,
    Clock,
    ConfigChangeNotifier,
    ConfigRepository,
    StoreUnavailableError,
    VersionConflictError,
)
from domain.config import (
    AuditAction,
    AuditRecord,
    ConfigDocument,
    EffectiveConfig,
    merge_patch,
    next_version,
    resolve,
)
from domain.params import CommonParams, FieldError, ParamSpec, ParamValidationError, ParamValue

logger = logging.getLogger(__name__)

CAS_ATTEMPTS = 5
"""Attempts of a write that keeps losing compare-and-set races before giving up."""
NOTIFY_TIMEOUT_SECONDS = 2.0
"""A slow change broadcast must not hold up the write that triggered it."""
RETRY_AFTER_FAILURE_SECONDS = 5.0
"""After a failed refresh, :meth:`ConfigService.maybe_refresh` retries this soon (≤ TTL)."""
MEMO_LIMIT = 200_000
"""Memoised (strategy, symbol) entries kept before the memo is dropped and rebuilt."""
AUDIT_SEARCH_LIMIT = 10_000
"""How many audit records a rollback searches for the version to restore."""

_Key = tuple[str, str | None]


# --- result types -----------------------------------------------------------------------------


@dataclass(slots=True)
class ConfigStats:
    """Counters of the configuration cache and writes (exported by the metrics adapter)."""

    cache_hits: int = 0
    cache_misses: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    invalid_stored_configs: int = 0
    notify_failures: int = 0
    version_conflicts: int = 0
    audit_failures: int = 0


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


# --- snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layers:
    """Every stored layer of one strategy (tombstones included). Immutable: copy on write."""

    global_doc: ConfigDocument | None = None
    symbols: Mapping[str, ConfigDocument] = field(default_factory=dict)

    @classmethod
    def of(cls, documents: Iterable[ConfigDocument]) -> _Layers:
        layers = cls()
        for document in documents:
            layers = layers.newest(document)
        return layers

    def get(self, symbol: str | None) -> ConfigDocument | None:
        return self.global_doc if symbol is None else self.symbols.get(symbol)

    def documents(self) -> list[ConfigDocument]:
        found = [] if self.global_doc is None else [self.global_doc]
        found.extend(self.symbols.values())
        return found

    def put(self, document: ConfigDocument) -> _Layers:
        """These layers with ``document`` in its slot, whatever was there."""
        if document.symbol is None:
            return _Layers(document, self.symbols)
        return _Layers(self.global_doc, {**self.symbols, document.symbol: document})

    def newest(self, document: ConfigDocument) -> _Layers:
        """These layers with ``document`` unless its slot already holds a newer version."""
        held = self.get(document.symbol)
        return self if held is not None and held.version > document.version else self.put(document)

    def live_overrides(self) -> dict[str, ConfigDocument]:
        return {s: d for s, d in self.symbols.items() if not d.is_deleted}


_NO_LAYERS = _Layers()


def _live_parameters(document: ConfigDocument | None) -> dict[str, ParamValue] | None:
    return None if document is None or document.is_deleted else dict(document.parameters)


def _store_time(moment: datetime) -> datetime:
    """UTC at millisecond precision, as every store keeps it (so the snapshot equals the store)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


def _normalise_symbol(symbol: str | None) -> str | None:
    if symbol is None:
        return None
    normalised = symbol.strip().upper()
    if not normalised or not normalised.isalnum() or not normalised.isascii():
        raise ParamValidationError(
            [FieldError("symbol", "invalid_symbol", f"symbol must be alphanumeric, got {symbol!r}")]
        )
    return normalised


_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Control (NUL, BEL, newlines, ...), format (bidi overrides such as U+202E, zero-width),
surrogate, private-use and line/paragraph separator characters: none belongs in an audit
trail that people and tools read (they forge or hide text in terminals and UIs)."""


def _unprintable(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _UNPRINTABLE_CATEGORIES]


def _require_author(changed_by: str, reason: str) -> None:
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


def _describe(params_type: type[CommonParams]) -> str:
    explicit = getattr(params_type, "description", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    doc = params_type.__doc__ or ""
    if doc.startswith(f"{params_type.__name__}("):  # the signature dataclass() writes
        return ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


def _display_name(strategy_id: str, params_type: type[CommonParams]) -> str:
    explicit = getattr(params_type, "display_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    return strategy_id.replace("_", " ").title()


# --- the service ------------------------------------------------------------------------------

_Build = Callable[[ConfigDocument | None], Awaitable[tuple[dict[str, ParamValue], AuditAction]]]


class ConfigService:
    """Effective configuration for the hot path, and the configuration management use cases.

    ``registry`` maps strategy ids to their parameter classes. ``environment`` is the
    environment layer per strategy (already typed); it is validated here, so a service never
    starts on an environment that makes a strategy's config invalid.
    """

    def __init__(
        self,
        registry: Mapping[str, type[CommonParams]],
        repository: ConfigRepository,
        audit: AuditLog,
        clock: Clock,
        environment: Mapping[str, Mapping[str, ParamValue]] | None = None,
        notifier: ConfigChangeNotifier | None = None,
        cache_ttl_seconds: float = 60.0,
    ) -> None:
        if cache_ttl_seconds <= 0:
            raise ValueError(f"cache_ttl_seconds must be > 0, got {cache_ttl_seconds}")
        self._registry: dict[str, type[CommonParams]] = dict(registry)
        self._repository = repository
        self._audit = audit
        self._clock = clock
        self._notifier = notifier
        self._ttl = timedelta(seconds=cache_ttl_seconds)
        self._environment: dict[str, dict[str, ParamValue]] = {}
        for strategy_id, values in (environment or {}).items():
            params_type = self._params_type(strategy_id)
            # Raises ParamValidationError (unknown, type, range, cross-field) at start-up.
            params_type.from_mapping(values)
            self._environment[strategy_id] = dict(values)

        self.stats = ConfigStats()
        self._layers: dict[str, _Layers] = {}
        self._generation = 0  # bumped on every change of the snapshot
        # strategy id -> symbol -> effective config; replaced (not mutated) on every change.
        self._memo: dict[str, dict[str | None, EffectiveConfig[CommonParams]]] = {}
        self._memo_size = 0
        self._last_valid: dict[_Key, EffectiveConfig[CommonParams]] = {}
        self._next_refresh_at: datetime | None = None
        self._last_refresh_at: datetime | None = None

    # --- hot path -----------------------------------------------------------------------------

    def effective(self, strategy_id: str, symbol: str | None) -> EffectiveConfig[CommonParams]:
        """The effective config of ``strategy_id`` for ``symbol`` (None: the global one).

        Synchronous and allocation-free on a hit. Raises :class:`UnknownStrategyError` only
        for an unregistered strategy.
        """
        try:
            config = self._memo[strategy_id][symbol]
        except KeyError:
            return self._miss(strategy_id, symbol)
        self.stats.cache_hits += 1
        return config

    def _global(self, strategy_id: str) -> EffectiveConfig[CommonParams]:
        """The memoised global resolution (resolving it if needed)."""
        config = self._memo.get(strategy_id, {}).get(None)
        return config if config is not None else self._miss(strategy_id, None)

    def _miss(self, strategy_id: str, symbol: str | None) -> EffectiveConfig[CommonParams]:
        params_type = self._registry.get(strategy_id)
        if params_type is None:
            raise UnknownStrategyError(strategy_id)
        self.stats.cache_misses += 1
        layers = self._layers.get(strategy_id, _NO_LAYERS)
        symbol_doc = None if symbol is None else layers.symbols.get(symbol)
        config: EffectiveConfig[CommonParams]
        if symbol is not None and (symbol_doc is None or symbol_doc.is_deleted):
            # No live override: share the global resolution; a tombstone still counts for
            # the version, so deleting an override moves the symbol's version forward.
            shared = self._global(strategy_id)
            version = shared.version
            if symbol_doc is not None:
                version = max(version, symbol_doc.version)
            config = EffectiveConfig(
                strategy_id=strategy_id,
                symbol=symbol,
                params=shared.params,
                version=version,
                source=shared.source,
                is_override=False,
            )
        else:
            config = self._resolve_stored(params_type, strategy_id, symbol, layers, symbol_doc)
        if self._memo_size >= MEMO_LIMIT:
            self._memo = {}
            self._memo_size = 0
        per_strategy = self._memo.get(strategy_id)
        if per_strategy is None:
            per_strategy = self._memo[strategy_id] = {}
        per_strategy[symbol] = config
        self._memo_size += 1
        return config

    def _resolve_stored(
        self,
        params_type: type[CommonParams],
        strategy_id: str,
        symbol: str | None,
        layers: _Layers,
        symbol_doc: ConfigDocument | None,
    ) -> EffectiveConfig[CommonParams]:
        key = (strategy_id, symbol)
        environment = self._environment.get(strategy_id)
        try:
            config = resolve(
                params_type, strategy_id, symbol, environment, layers.global_doc, symbol_doc
            )
        except ParamValidationError as error:
            self.stats.invalid_stored_configs += 1
            fallback = self._last_valid.get(key)
            if fallback is None and symbol is not None:
                shared = self._global(strategy_id)
                fallback = EffectiveConfig(
                    strategy_id=strategy_id,
                    symbol=symbol,
                    params=shared.params,
                    version=shared.version,
                    source=shared.source,
                    is_override=False,
                )
            if fallback is None:
                fallback = resolve(params_type, strategy_id, symbol, environment)
            logger.warning(
                "stored configuration of %s/%s is invalid (%s); running on version %d instead",
                strategy_id,
                symbol or "global",
                error,
                fallback.version,
            )
            return fallback
        self._last_valid[key] = config
        return config

    # --- snapshot maintenance -----------------------------------------------------------------

    @property
    def last_refresh_at(self) -> datetime | None:
        """When the snapshot was last fully reloaded (None: never)."""
        return self._last_refresh_at

    async def refresh(self) -> None:
        """Reload every layer of every strategy from the repository into the snapshot.

        On :class:`StoreUnavailableError` the last snapshot stays in service, the failure is
        counted, and the error is re-raised for the caller to decide.
        """
        started = self._generation
        try:
            documents = await self._repository.list()
        except StoreUnavailableError:
            self.stats.refresh_failures += 1
            retry_in = min(self._ttl, timedelta(seconds=RETRY_AFTER_FAILURE_SECONDS))
            self._next_refresh_at = self._clock.now() + retry_in
            raise
        self._install(documents, None, started)
        self.stats.refreshes += 1
        now = self._clock.now()
        self._last_refresh_at = now
        self._next_refresh_at = now + self._ttl

    async def maybe_refresh(self) -> bool:
        """Refresh if the TTL has elapsed since the last refresh; True if it refreshed."""
        due = self._next_refresh_at
        if due is not None and self._clock.now() < due:
            return False
        await self.refresh()
        return True

    async def apply_remote_change(self, strategy_id: str, symbol: str | None, version: int) -> bool:
        """Another replica changed a layer: reload that strategy if ``version`` is news to us.

        Returns True if the strategy was reloaded. Broadcasts for strategies this replica
        does not run are ignored. Raises :class:`StoreUnavailableError` if the reload fails.
        """
        if strategy_id not in self._registry:
            logger.info("ignoring config change of unknown strategy %r", strategy_id)
            return False
        try:
            symbol = _normalise_symbol(symbol)
        except ParamValidationError:
            logger.warning("ignoring config change with invalid symbol %r", symbol)
            return False
        held = self._layers.get(strategy_id, _NO_LAYERS).get(symbol)
        if held is not None and held.version >= version:
            return False
        try:
            await self._load_strategy(strategy_id)
        except StoreUnavailableError:
            self.stats.refresh_failures += 1
            raise
        return True

    async def _load_strategy(self, strategy_id: str) -> _Layers:
        """Reload one strategy's layers into the snapshot; return them as now held."""
        started = self._generation
        documents = await self._repository.list(strategy_id)
        self._install(documents, (strategy_id,), started)
        return self._layers.get(strategy_id, _NO_LAYERS)

    def _install(
        self,
        documents: Iterable[ConfigDocument],
        strategy_ids: Iterable[str] | None,
        started_generation: int,
    ) -> None:
        """Replace the snapshot of ``strategy_ids`` (None: all) with freshly read documents.

        If the snapshot changed while they were being read, keep per layer the newer version.
        """
        loaded: dict[str, list[ConfigDocument]] = {}
        for document in documents:
            if document.strategy_id in self._registry:
                loaded.setdefault(document.strategy_id, []).append(document)
        raced = self._generation != started_generation
        scope = self._registry if strategy_ids is None else strategy_ids
        layers = dict(self._layers)
        for strategy_id in scope:
            fresh = _Layers.of(loaded.get(strategy_id, ()))
            if raced:
                for held in layers.get(strategy_id, _NO_LAYERS).documents():
                    fresh = fresh.newest(held)
            layers[strategy_id] = fresh
        self._swap(layers)

    def _swap(self, layers: dict[str, _Layers]) -> None:
        self._layers = layers
        self._generation += 1
        self._memo = {}
        self._memo_size = 0

    # --- discovery ----------------------------------------------------------------------------

    async def list_strategies(self) -> list[StrategySummary]:
        """Every registered strategy with its configuration status (reloads the snapshot)."""
        await self.refresh()
        summaries = []
        for strategy_id, params_type in self._registry.items():
            layers = self._layers.get(strategy_id, _NO_LAYERS)
            config = self.effective(strategy_id, None)
            global_doc = layers.global_doc
            summaries.append(
                StrategySummary(
                    strategy_id=strategy_id,
                    name=_display_name(strategy_id, params_type),
                    description=_describe(params_type),
                    has_global_config=global_doc is not None and not global_doc.is_deleted,
                    symbol_overrides=tuple(sorted(layers.live_overrides())),
                    parameter_count=len(params_type.schema()),
                    enabled=config.params.enabled,
                    version=config.version,
                )
            )
        return summaries

    async def schema(self, strategy_id: str) -> tuple[ParamSpec, ...]:
        return self._params_type(strategy_id).schema()

    async def defaults(self, strategy_id: str) -> dict[str, ParamValue]:
        """The code defaults (the environment layer is not included)."""
        return self._params_type(strategy_id).defaults()

    # --- reads --------------------------------------------------------------------------------

    async def get_config(self, strategy_id: str, symbol: str | None) -> ConfigView:
        """The stored layer (possibly absent: ``exists`` False) and its effective config.

        Served from the snapshot while it is within its TTL of the last successful full
        refresh (it is also kept current by this replica's writes and by other replicas'
        change broadcasts), so reads cost no store round trip; otherwise the strategy's
        layers are reloaded from the store first.
        """
        self._params_type(strategy_id)
        symbol = _normalise_symbol(symbol)
        last = self._last_refresh_at
        if last is not None and self._clock.now() < last + self._ttl:
            layers = self._layers.get(strategy_id, _NO_LAYERS)
        else:
            layers = await self._load_strategy(strategy_id)
        return self._view(
            strategy_id, symbol, layers.get(symbol), self.effective(strategy_id, symbol)
        )

    async def audit(
        self, strategy_id: str, symbol: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """Audit records of the strategy (``symbol`` None: every layer), newest first."""
        self._params_type(strategy_id)
        symbol = _normalise_symbol(symbol)
        if limit < 1:
            raise ParamValidationError([FieldError("limit", "out_of_range", "limit must be >= 1")])
        return await self._audit.list(strategy_id, symbol, limit)

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
        params_type = self._params_type(strategy_id)
        symbol = _normalise_symbol(symbol)
        if not patch:
            raise ParamValidationError(
                [FieldError("parameters", "empty_patch", "give at least one parameter to change")]
            )

        async def build(
            current: ConfigDocument | None,
        ) -> tuple[dict[str, ParamValue], AuditAction]:
            layer = _live_parameters(current) or {}
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
                is_int = isinstance(value, int) and not isinstance(value, bool)
                if spec is not None and spec.type == "float" and is_int:
                    merged[name] = float(value)
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
        self._params_type(strategy_id)
        symbol = _normalise_symbol(symbol)

        async def build(
            current: ConfigDocument | None,
        ) -> tuple[dict[str, ParamValue], AuditAction]:
            if _live_parameters(current) is None:
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
        params_type = self._params_type(strategy_id)
        layer_symbol = _normalise_symbol(symbol)

        async def build(
            current: ConfigDocument | None,
        ) -> tuple[dict[str, ParamValue], AuditAction]:
            history = [
                record
                for record in await self._audit.list(strategy_id, layer_symbol, AUDIT_SEARCH_LIMIT)
                if record.symbol == layer_symbol
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
            if not restored and _live_parameters(current) is None:
                raise ConfigNotFoundError(
                    strategy_id, layer_symbol, "the layer is already absent in that state"
                )
            errors = params_type.field_errors(restored)
            if errors:
                raise ParamValidationError(errors)
            return restored, AuditAction.ROLLBACK

        return await self._commit(strategy_id, layer_symbol, changed_by, reason, build)

    async def _commit(
        self,
        strategy_id: str,
        symbol: str | None,
        changed_by: str,
        reason: str,
        build: _Build,
        validate_only: bool = False,
    ) -> ConfigWriteResult:
        """Read, build, validate, compare-and-set save, apply, notify, audit."""
        params_type = self._params_type(strategy_id)
        symbol = _normalise_symbol(symbol)
        _require_author(changed_by, reason)
        for _ in range(CAS_ATTEMPTS):
            started = self._generation
            stored = await self._repository.list(strategy_id)
            layers = _Layers.of(stored)
            current = layers.get(symbol)
            parameters, action = await build(current)
            now = _store_time(self._clock.now())
            document = ConfigDocument(
                strategy_id=strategy_id,
                symbol=symbol,
                parameters=parameters,
                version=next_version(stored),
                updated_at=now,
                updated_by=changed_by,
                source=self._repository.name,
            )
            after = layers.put(document)
            config = self._validate(params_type, strategy_id, symbol, layers, after)
            previous = _live_parameters(current)
            result = ConfigWriteResult(
                action=action,
                applied=not validate_only,
                config=self._view(strategy_id, symbol, document, config),
                previous=previous,
            )
            if validate_only:
                return result
            try:
                await self._repository.save(document, 0 if current is None else current.version)
            except VersionConflictError:
                self.stats.version_conflicts += 1
                continue
            # The write, and the strategy's other layers as just read, go live here at once.
            self._install([*stored, document], (strategy_id,), started)
            await self._notify(strategy_id, symbol, document.version)
            await self._record(
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
            return result
        raise VersionConflictError(
            f"{strategy_id}/{symbol or 'global'}: still conflicting after {CAS_ATTEMPTS} attempts"
        )

    def _validate(
        self,
        params_type: type[CommonParams],
        strategy_id: str,
        symbol: str | None,
        before: _Layers,
        after: _Layers,
    ) -> EffectiveConfig[CommonParams]:
        """Effective config of the written layer after the write; raises if a write breaks one.

        The written layer's own result must be valid (unless the write deletes it). A global
        write must also leave every live override valid that was valid before it; overrides
        that were already invalid do not block it (else a bad override and a bad global
        could only be fixed together).
        """
        environment = self._environment.get(strategy_id)

        def attempt(layers: _Layers, key: str | None) -> EffectiveConfig[CommonParams]:
            return resolve(
                params_type,
                strategy_id,
                key,
                environment,
                layers.global_doc,
                None if key is None else layers.symbols.get(key),
            )

        errors: list[FieldError] = []
        config: EffectiveConfig[CommonParams] | None = None
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
        if self._notifier is None:
            return
        try:
            async with asyncio.timeout(NOTIFY_TIMEOUT_SECONDS):
                await self._notifier.notify(strategy_id, symbol, version)
        except Exception:
            self.stats.notify_failures += 1
            logger.exception(
                "could not broadcast the change of %s/%s to version %d; other replicas "
                "apply it at their next refresh",
                strategy_id,
                symbol or "global",
                version,
            )

    async def _record(self, record: AuditRecord) -> None:
        try:
            await self._audit.append(record)
        except StoreUnavailableError as error:
            self.stats.audit_failures += 1
            raise StoreUnavailableError(
                f"{record.strategy_id}/{record.symbol or 'global'}: configuration saved as "
                f"version {record.version} but its audit record could not be written: {error}"
            ) from error

    # --- helpers ------------------------------------------------------------------------------

    def _params_type(self, strategy_id: str) -> type[CommonParams]:
        params_type = self._registry.get(strategy_id)
        if params_type is None:
            raise UnknownStrategyError(strategy_id)
        return params_type

    @staticmethod
    def _view(
        strategy_id: str,
        symbol: str | None,
        document: ConfigDocument | None,
        config: EffectiveConfig[CommonParams],
    ) -> ConfigView:
        return ConfigView(
            strategy_id=strategy_id,
            symbol=symbol,
            parameters=_live_parameters(document) or {},
            effective=config.params.to_mapping(),
            version=config.version,
            source=config.source,
            is_override=config.is_override,
            exists=_live_parameters(document) is not None,
            layer_version=0 if document is None else document.version,
            updated_at=None if document is None else document.updated_at,
            updated_by=None if document is None else document.updated_by,
        )
