"""The effective-configuration cache: the hot path of every strategy on every market event.

One in-memory *snapshot* of every stored layer (global and per symbol, tombstones included)
of every registered strategy, and a memo of resolved effective configs over it:

- :meth:`EffectiveConfigCache.effective` is synchronous and answers from a memo keyed by
  (strategy, symbol) that is rebuilt lazily whenever the snapshot changes; a hit is one dict
  lookup. Symbols without a live override share the global resolution (no per-symbol
  validation). It never raises for a registered strategy: if a stored layer makes the merged
  config invalid, it serves the last valid config of that key (else the global one, else
  defaults + environment) and counts it.
- The snapshot is reloaded by :meth:`~EffectiveConfigCache.refresh` (start-up, TTL via
  :meth:`~EffectiveConfigCache.maybe_refresh`, the cache-refresh endpoint), per strategy by
  :meth:`~EffectiveConfigCache.apply_remote_change` (a change broadcast by another replica),
  and by :meth:`~EffectiveConfigCache.install` after a local write. A reload that raced with
  another change of the snapshot keeps, per layer, the newer version, so a slow read never
  rolls a fresher local write back.
- The signal pause switches (:class:`~domain.governance.PauseRecord`) are part of the
  snapshot: read with every refresh, reloaded on a broadcast whose strategy id is
  ``pause:<strategy or *>`` (:data:`PAUSE_CHANGE_PREFIX`), kept newest-per-key like layers;
  listeners (the engine's governance gate) get the active pauses whenever they change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from application.errors import UnknownStrategyError
from application.ports import Clock, ConfigRepository, PauseStore, StoreUnavailableError
from domain.config import (
    NO_LAYERS,
    ConfigDocument,
    EffectiveConfig,
    StrategyLayers,
    resolve,
)
from domain.governance import (
    EVERY_STRATEGY,
    GovernanceParams,
    Pause,
    PauseRecord,
    active_pauses,
    newest_pauses,
)
from domain.params import FieldError, ParamValidationError, ParamValue, StrategyParams
from domain.symbol import MAX_SYMBOL_LENGTH, from_input

GOVERNANCE_ID = GovernanceParams.strategy_id
_DEFAULT_LIMITS = GovernanceParams()

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_SECONDS = 5.0
"""After a failed refresh, :meth:`EffectiveConfigCache.maybe_refresh` retries this soon."""
MEMO_LIMIT = 200_000
"""Memoised (strategy, symbol) entries kept before the memo is dropped and rebuilt."""

PAUSE_CHANGE_PREFIX = "pause:"
"""Change broadcasts of a pause carry ``pause:<sequence key>`` as their strategy id (replicas
without pauses ignore them as an unknown strategy)."""

_Key = tuple[str, str | None]
PauseListener = Callable[[tuple[Pause, ...]], None]


@dataclass(slots=True)
class CacheStats:
    """Counters of the configuration cache (exported by the metrics adapter)."""

    cache_hits: int = 0
    cache_misses: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    invalid_stored_configs: int = 0
    remote_reloads: int = 0
    remote_changes_ignored: int = 0


def normalise_symbol(symbol: str | None) -> str | None:
    """A caller's symbol by the one rule (:func:`domain.symbol.from_input`: ``" btcusdt "`` →
    ``"BTCUSDT"``); a 422 (:class:`ParamValidationError`) when it breaks it. None stays None
    (the global layer)."""
    if symbol is None:
        return None
    normalised = from_input(symbol)
    if normalised is None:
        raise ParamValidationError(
            [
                FieldError(
                    "symbol",
                    "invalid_symbol",
                    f"symbol must be 1..{MAX_SYMBOL_LENGTH} ASCII letters and digits, "
                    f"got {symbol!r}",
                )
            ]
        )
    return normalised


class EffectiveConfigCache:
    """Effective configuration of every registered strategy, from a snapshot of the store.

    ``registry`` maps strategy ids to their parameter classes. ``environment`` is the
    environment layer per strategy (already typed); it is validated here, so a service never
    starts on an environment that makes a strategy's config invalid.
    """

    def __init__(
        self,
        registry: Mapping[str, type[StrategyParams]],
        repository: ConfigRepository,
        clock: Clock,
        environment: Mapping[str, Mapping[str, ParamValue]] | None = None,
        cache_ttl_seconds: float = 60.0,
        pause_store: PauseStore | None = None,
    ) -> None:
        if cache_ttl_seconds <= 0:
            raise ValueError(f"cache_ttl_seconds must be > 0, got {cache_ttl_seconds}")
        self._registry: dict[str, type[StrategyParams]] = dict(registry)
        self._repository = repository
        self._clock = clock
        self._ttl = timedelta(seconds=cache_ttl_seconds)
        self._environment: dict[str, dict[str, ParamValue]] = {}
        for strategy_id, values in (environment or {}).items():
            params_type = self.params_type(strategy_id)
            # Raises ParamValidationError (unknown, type, range, cross-field) at start-up.
            params_type.from_mapping(values)
            self._environment[strategy_id] = dict(values)

        self.stats = CacheStats()
        self._layers: dict[str, StrategyLayers] = {}
        self._generation = 0  # bumped on every change of the snapshot
        # strategy id -> symbol -> effective config; replaced (not mutated) on every change.
        self._memo: dict[str, dict[str | None, EffectiveConfig[StrategyParams]]] = {}
        self._memo_size = 0
        self._last_valid: dict[_Key, EffectiveConfig[StrategyParams]] = {}
        self._next_refresh_at: datetime | None = None
        self._last_refresh_at: datetime | None = None
        # Strategy -> until when its broadcasts are not trusted (one claimed a version the
        # store did not have: forged, or a store that lags; the TTL refresh catches up).
        self._distrust_until: dict[str, datetime] = {}
        self._pause_store = pause_store
        self._pause_records: dict[str, PauseRecord] = {}
        self._active_pauses: tuple[Pause, ...] = ()
        self._pause_listeners: list[PauseListener] = []

    # --- registry -----------------------------------------------------------------------------

    @property
    def strategy_ids(self) -> list[str]:
        """The registered strategies, in registration order."""
        return list(self._registry)

    def params_type(self, strategy_id: str) -> type[StrategyParams]:
        """The parameter class of ``strategy_id``; :class:`UnknownStrategyError` if none."""
        params_type = self._registry.get(strategy_id)
        if params_type is None:
            raise UnknownStrategyError(strategy_id)
        return params_type

    def environment(self, strategy_id: str) -> Mapping[str, ParamValue] | None:
        """The environment layer of ``strategy_id`` (None: not set)."""
        return self._environment.get(strategy_id)

    # --- hot path -----------------------------------------------------------------------------

    # Any: a strategy gets the config of its CommonParams type (ConfigLookup), the governance
    # gate its GovernanceParams; the registry says which.
    def effective(self, strategy_id: str, symbol: str | None) -> EffectiveConfig[Any]:
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

    def _global(self, strategy_id: str) -> EffectiveConfig[StrategyParams]:
        """The memoised global resolution (resolving it if needed)."""
        config = self._memo.get(strategy_id, {}).get(None)
        return config if config is not None else self._miss(strategy_id, None)

    def _miss(self, strategy_id: str, symbol: str | None) -> EffectiveConfig[StrategyParams]:
        params_type = self._registry.get(strategy_id)
        if params_type is None:
            raise UnknownStrategyError(strategy_id)
        self.stats.cache_misses += 1
        layers = self._layers.get(strategy_id, NO_LAYERS)
        symbol_doc = None if symbol is None else layers.symbols.get(symbol)
        config: EffectiveConfig[StrategyParams]
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
        params_type: type[StrategyParams],
        strategy_id: str,
        symbol: str | None,
        layers: StrategyLayers,
        symbol_doc: ConfigDocument | None,
    ) -> EffectiveConfig[StrategyParams]:
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

    # --- snapshot -----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Bumped on every change of the snapshot (pass it back to :meth:`install`)."""
        return self._generation

    def layers(self, strategy_id: str) -> StrategyLayers:
        """The layers of ``strategy_id`` as the snapshot holds them."""
        return self._layers.get(strategy_id, NO_LAYERS)

    @property
    def last_refresh_at(self) -> datetime | None:
        """When the snapshot was last fully reloaded (None: never)."""
        return self._last_refresh_at

    @property
    def fresh(self) -> bool:
        """The snapshot is within its TTL of the last successful full refresh."""
        last = self._last_refresh_at
        return last is not None and self._clock.now() < last + self._ttl

    def governance_limits(self, symbol: str) -> GovernanceParams:
        """The governance gate's limits in force for ``symbol`` (its layer over the global
        one), when the registry holds ``governance``; else the defaults."""
        if GOVERNANCE_ID not in self._registry:
            return _DEFAULT_LIMITS
        params = self.effective(GOVERNANCE_ID, symbol).params
        return params if isinstance(params, GovernanceParams) else _DEFAULT_LIMITS

    async def refresh(self) -> None:
        """Reload every layer of every strategy from the repository into the snapshot.

        On :class:`StoreUnavailableError` the last snapshot stays in service, the failure is
        counted, and the error is re-raised for the caller to decide.
        """
        started = self._generation
        try:
            documents = await self._repository.list()
            pauses = [] if self._pause_store is None else await self._pause_store.list()
        except StoreUnavailableError:
            self.stats.refresh_failures += 1
            retry_in = min(self._ttl, timedelta(seconds=RETRY_AFTER_FAILURE_SECONDS))
            self._next_refresh_at = self._clock.now() + retry_in
            raise
        self.install(documents, None, started)
        self.install_pauses(pauses)
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

        Returns True if the strategy was reloaded. Ignored (and counted): broadcasts for
        strategies this replica does not run, and versions not newer than the newest one
        held for the strategy (versions are one sequence per strategy, and the snapshot of
        a strategy is always read whole). When a reload shows that the store does not have
        the claimed version (a forged or future-dated message), the strategy's broadcasts
        are not trusted for one TTL, so a flood costs at most one reload per strategy per
        TTL; the TTL refresh applies real changes meanwhile. Raises
        :class:`StoreUnavailableError` if the reload fails.
        """
        if strategy_id.startswith(PAUSE_CHANGE_PREFIX):
            return await self._apply_remote_pause(
                strategy_id, strategy_id.removeprefix(PAUSE_CHANGE_PREFIX), version
            )
        if strategy_id not in self._registry:
            self.stats.remote_changes_ignored += 1
            return False
        try:
            normalise_symbol(symbol)
        except ParamValidationError:
            self.stats.remote_changes_ignored += 1
            return False
        now = self._clock.now()
        distrusted_until = self._distrust_until.get(strategy_id)
        if version <= self.layers(strategy_id).version or (
            distrusted_until is not None and now < distrusted_until
        ):
            self.stats.remote_changes_ignored += 1
            return False
        try:
            layers = await self.load_strategy(strategy_id)
        except StoreUnavailableError:
            self.stats.refresh_failures += 1
            raise
        self.stats.remote_reloads += 1
        if layers.version < version:
            self._distrust_until[strategy_id] = now + self._ttl
            logger.warning(
                "config change broadcast of %s claims version %d, the store has %d; "
                "ignoring its broadcasts for %s",
                strategy_id,
                version,
                layers.version,
                self._ttl,
            )
        return True

    # --- signal pauses --------------------------------------------------------------------------

    @property
    def pauses(self) -> tuple[PauseRecord, ...]:
        """The active pause records, in key order."""
        records = self._pause_records
        return tuple(records[key] for key in sorted(records) if records[key].active)

    def pause_record(self, pause: Pause) -> PauseRecord | None:
        """The newest record held for ``pause``'s key (active or lifted), if any."""
        return self._pause_records.get(pause.label())

    def add_pause_listener(self, listener: PauseListener) -> None:
        """Call ``listener`` with the active pauses now and whenever they change."""
        self._pause_listeners.append(listener)
        listener(self._active_pauses)

    def install_pauses(self, records: Iterable[PauseRecord]) -> None:
        """Merge freshly read (or just written) pause records: newest version per key."""
        self._pause_records = newest_pauses([*self._pause_records.values(), *records])
        active = active_pauses(self._pause_records.values())
        if active != self._active_pauses:
            self._active_pauses = active
            logger.info(
                "signal pauses now active: %s",
                ", ".join(pause.label() for pause in active) or "none",
            )
            for listener in self._pause_listeners:
                listener(active)

    async def load_pauses(self) -> tuple[PauseRecord, ...]:
        """Reload the pause records from the store; return the active ones."""
        if self._pause_store is not None:
            self.install_pauses(await self._pause_store.list())
        return self.pauses

    async def _apply_remote_pause(self, channel: str, sequence_key: str, version: int) -> bool:
        """A pause changed on another replica: reload the pauses if ``version`` is news
        (same rules as a layer change: stale versions ignored, a claim the store does not
        back distrusts that sequence's pause broadcasts for one TTL)."""
        if self._pause_store is None or (
            sequence_key != EVERY_STRATEGY
            and (sequence_key not in self._registry or sequence_key == GOVERNANCE_ID)
        ):
            self.stats.remote_changes_ignored += 1
            return False
        held = max(
            (r.version for r in self._pause_records.values() if r.sequence_key == sequence_key),
            default=0,
        )
        now = self._clock.now()
        distrusted_until = self._distrust_until.get(channel)
        if version <= held or (distrusted_until is not None and now < distrusted_until):
            self.stats.remote_changes_ignored += 1
            return False
        try:
            await self.load_pauses()
        except StoreUnavailableError:
            self.stats.refresh_failures += 1
            raise
        self.stats.remote_reloads += 1
        newest = max(
            (r.version for r in self._pause_records.values() if r.sequence_key == sequence_key),
            default=0,
        )
        if newest < version:
            self._distrust_until[channel] = now + self._ttl
            logger.warning(
                "pause change broadcast of %s claims version %d, the store has %d; "
                "ignoring its broadcasts for %s",
                sequence_key,
                version,
                newest,
                self._ttl,
            )
        return True

    async def load_strategy(self, strategy_id: str) -> StrategyLayers:
        """Reload one strategy's layers into the snapshot; return them as now held."""
        started = self._generation
        documents = await self._repository.list(strategy_id)
        self.install(documents, (strategy_id,), started)
        return self.layers(strategy_id)

    def install(
        self,
        documents: Iterable[ConfigDocument],
        strategy_ids: Iterable[str] | None,
        started_generation: int,
    ) -> None:
        """Replace the snapshot of ``strategy_ids`` (None: all) with freshly read documents.

        If the snapshot changed since ``started_generation`` (while they were being read),
        keep per layer the newer version.
        """
        loaded: dict[str, list[ConfigDocument]] = {}
        for document in documents:
            if document.strategy_id in self._registry:
                loaded.setdefault(document.strategy_id, []).append(document)
        raced = self._generation != started_generation
        scope = self._registry if strategy_ids is None else strategy_ids
        layers = dict(self._layers)
        for strategy_id in scope:
            fresh = StrategyLayers.of(loaded.get(strategy_id, ()))
            if raced:
                for held in layers.get(strategy_id, NO_LAYERS).documents():
                    fresh = fresh.newest(held)
            layers[strategy_id] = fresh
        self._layers = layers
        self._generation += 1
        self._memo = {}
        self._memo_size = 0
