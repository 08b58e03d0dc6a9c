"""Configuration layers and the resolution policy (pure).

Layers, lowest first: strategy defaults → environment → global → symbol override. The merge
is field-level: a symbol override of one parameter inherits every other from the layers
below it. Validation always runs on the merged result, so an override can never break a
cross-field rule together with the global values.

Versions are drawn from one sequence per strategy (every write to any layer of a strategy
takes the next number), so the effective version ``max(global.version, symbol.version)``
increases with every change that affects a symbol. Deleting a layer writes a tombstone (a
document with no parameters and a new version) rather than forgetting the version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from domain.params import CommonParams, ParamValue, StrategyParams
from domain.signal import ConfigStamp
from domain.symbol import Symbol

P = TypeVar("P", bound=StrategyParams)

SOURCE_DEFAULT = "default"
SOURCE_ENVIRONMENT = "environment"


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """One stored layer: the global config (``symbol`` None) or a symbol override.

    A document with empty ``parameters`` is a tombstone: the layer was deleted.
    ``source`` names the store that returned it (``mongodb``, ``mysql``, ``sqlite``, ``memory``).
    """

    strategy_id: str
    symbol: str | None
    parameters: Mapping[str, ParamValue]
    version: int
    updated_at: datetime
    updated_by: str
    source: str = ""

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"config version must be >= 1, got {self.version}")
        if self.symbol is not None:
            Symbol(self.symbol)  # the one symbol rule; raises ValueError

    @property
    def is_deleted(self) -> bool:
        return not self.parameters


@dataclass(frozen=True, slots=True)
class StrategyLayers:
    """Every stored layer of one strategy (tombstones included). Immutable: copy on write."""

    global_doc: ConfigDocument | None = None
    symbols: Mapping[str, ConfigDocument] = field(default_factory=dict)

    @classmethod
    def of(cls, documents: Iterable[ConfigDocument]) -> StrategyLayers:
        """The layers of ``documents``, keeping per slot the newest version."""
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

    def put(self, document: ConfigDocument) -> StrategyLayers:
        """These layers with ``document`` in its slot, whatever was there."""
        if document.symbol is None:
            return StrategyLayers(document, self.symbols)
        return StrategyLayers(self.global_doc, {**self.symbols, document.symbol: document})

    def newest(self, document: ConfigDocument) -> StrategyLayers:
        """These layers with ``document`` unless its slot already holds a newer version."""
        held = self.get(document.symbol)
        if held is not None and held.version > document.version:
            return self
        return self.put(document)

    def live_overrides(self) -> dict[str, ConfigDocument]:
        return {s: d for s, d in self.symbols.items() if not d.is_deleted}

    @property
    def version(self) -> int:
        """The highest version of any layer (0: none stored)."""
        return next_version(self.documents()) - 1


NO_LAYERS = StrategyLayers()


def live_parameters(document: ConfigDocument | None) -> dict[str, ParamValue] | None:
    """The parameters of a live layer; None for an absent or deleted one."""
    return None if document is None or document.is_deleted else dict(document.parameters)


class AuditAction(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    ROLLBACK = "ROLLBACK"
    PAUSE = "PAUSE"
    """A signal pause switched on (:class:`domain.governance.PauseRecord`), not a layer."""
    RESUME = "RESUME"
    """A signal pause lifted."""


LAYER_ACTIONS = frozenset(
    {AuditAction.CREATE, AuditAction.UPDATE, AuditAction.DELETE, AuditAction.ROLLBACK}
)
"""The actions that change a configuration layer (a rollback looks only at these)."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One configuration change, with who, when, why, and the layer before and after."""

    strategy_id: str
    symbol: str | None
    action: AuditAction
    old_parameters: Mapping[str, ParamValue] | None
    new_parameters: Mapping[str, ParamValue] | None
    changed_by: str
    changed_at: datetime
    reason: str
    version: int

    @property
    def id(self) -> str:
        """``"<strategy>:<version>"``: one record per version of a strategy's sequence, the
        same in every store."""
        return f"{self.strategy_id}:{self.version}"

    @property
    def position(self) -> AuditPosition:
        """Where the record sits in the newest-first order of every audit trail."""
        return AuditPosition(self.changed_at, self.strategy_id, self.version)


@dataclass(frozen=True, slots=True, order=True)
class AuditPosition:
    """A place in the audit order: newest first by time, then strategy id, then version
    (all descending). Audit pages continue strictly after (older than) a position."""

    changed_at: datetime
    strategy_id: str
    version: int


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit records to list (:meth:`application.ports.AuditLog.list`), newest first.

    ``strategy_id`` None: every strategy; ``symbol`` None: every layer. ``since`` (inclusive)
    and ``until`` (exclusive) bound ``changed_at``; ``after`` continues a page strictly
    after (older than) that position. At most ``limit`` records (0: none).
    """

    strategy_id: str | None = None
    symbol: str | None = None
    limit: int = 100
    _: KW_ONLY
    since: datetime | None = None
    until: datetime | None = None
    after: AuditPosition | None = None

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"an audit query's limit must be >= 0, got {self.limit}")

    def matches(self, record: AuditRecord) -> bool:
        """Whether ``record`` is one this query selects (the limit aside)."""
        return (
            (self.strategy_id is None or record.strategy_id == self.strategy_id)
            and (self.symbol is None or record.symbol == self.symbol)
            and (self.since is None or record.changed_at >= self.since)
            and (self.until is None or record.changed_at < self.until)
            and (self.after is None or record.position < self.after)
        )


@dataclass(frozen=True, slots=True)
class EffectiveConfig(Generic[P]):
    """The parameters a strategy runs with for one symbol, and where they came from."""

    strategy_id: str
    symbol: str | None
    params: P
    version: int
    source: str
    is_override: bool

    def stamp(self) -> ConfigStamp:
        return ConfigStamp(
            version=self.version,
            parameters=self.params.to_mapping(),
            source=self.source,
            is_override=self.is_override,
        )


ConfigLookup = Callable[[str, str], EffectiveConfig[CommonParams]]
"""``(strategy_id, symbol) -> effective config``: how the engine asks for the configuration
(``EffectiveConfigCache.effective`` in the service and the backtest)."""


def merge_patch(
    current: Mapping[str, ParamValue], patch: Mapping[str, ParamValue | None]
) -> dict[str, ParamValue]:
    """Apply a POST body to a layer: given keys replace, ``None`` removes the key."""
    merged = dict(current)
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def merged_parameters(
    environment: Mapping[str, ParamValue] | None,
    global_doc: ConfigDocument | None,
    symbol_doc: ConfigDocument | None,
) -> dict[str, ParamValue]:
    """The field-level union of the layers above the defaults, most specific last."""
    merged: dict[str, ParamValue] = dict(environment or {})
    for doc in (global_doc, symbol_doc):
        if doc is not None:
            merged.update(doc.parameters)
    return merged


def resolve(
    params_type: type[P],
    strategy_id: str,
    symbol: str | None,
    environment: Mapping[str, ParamValue] | None = None,
    global_doc: ConfigDocument | None = None,
    symbol_doc: ConfigDocument | None = None,
) -> EffectiveConfig[P]:
    """Resolve the effective config of ``strategy_id`` for ``symbol``.

    Raises :class:`domain.params.ParamValidationError` if the merged result is invalid.
    """
    params = params_type.from_mapping(merged_parameters(environment, global_doc, symbol_doc))
    version = max((d.version for d in (global_doc, symbol_doc) if d is not None), default=0)
    is_override = symbol_doc is not None and not symbol_doc.is_deleted
    if is_override:
        assert symbol_doc is not None
        source = symbol_doc.source
    elif global_doc is not None and not global_doc.is_deleted:
        source = global_doc.source
    elif environment:
        source = SOURCE_ENVIRONMENT
    else:
        source = SOURCE_DEFAULT
    return EffectiveConfig(
        strategy_id=strategy_id,
        symbol=symbol,
        params=params,
        version=version,
        source=source,
        is_override=is_override,
    )


def next_version(documents: list[ConfigDocument] | tuple[ConfigDocument, ...]) -> int:
    """The next number of a strategy's version sequence, given all its layers (tombstones too)."""
    return max((d.version for d in documents), default=0) + 1
