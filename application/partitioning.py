"""Symbol partitioning: which partition a symbol's messages go to, and which worker owns it.

Pure and standard-library only (``zlib``), so every process — routers, workers, the API proxy,
tests, the benchmark — computes the same answer (see docs/adr/0010-symbol-partitioning.md):

- ``partition_of(symbol, P) = crc32(symbol as UTF-8) mod P``. CRC-32 is fixed by the standard
  (the zlib/PNG/Ethernet polynomial): unlike Python's ``hash()`` it does not change between
  processes (``PYTHONHASHSEED``), versions or machines. ``P`` (``PARTITION_COUNT``) is fixed per
  deployment: changing it moves symbols between partitions.
- worker ``i`` of ``W`` owns partitions ``{p : p mod W == i}``; a symbol's owner is therefore
  ``partition_of(symbol, P) mod W``.
- partition subjects: ``<prefix>.<partition>.<SYMBOL>.<kind>`` (e.g.
  ``marketdata.7.BTCUSDT.trade``); a worker consumes ``<prefix>.<p>.>`` for each owned ``p``.

Cross-symbol inputs are keyed by the symbol whose state they need: BTC dominance by
``BTCUSDT`` (btc_dominance needs BTCUSDT's price), on-chain events of asset ``X`` by ``XUSDT``,
venue quotes by their own symbol.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

DEFAULT_PARTITION_COUNT: Final = 16
MAX_PARTITION_COUNT: Final = 4096

DOMINANCE_SYMBOL: Final = "BTCUSDT"
"""BTC dominance observations live with BTCUSDT (the btc_dominance strategy's symbol)."""
ONCHAIN_QUOTE_ASSET: Final = "USDT"
"""On-chain events of asset ``X`` live with ``X`` + this (the onchain_metrics symbol)."""


class RouteKind(StrEnum):
    """The last token of a partition subject: what the payload is, so a worker picks the
    decoder without parsing (Binance stream types, then the market-logic input subjects)."""

    TRADE = "trade"
    AGG_TRADE = "aggtrade"
    TICKER = "ticker"
    DEPTH = "depth"
    DOMINANCE = "dominance"
    QUOTES = "quotes"
    ONCHAIN = "onchain"


BINANCE_KINDS: Final = frozenset(
    {RouteKind.TRADE, RouteKind.AGG_TRADE, RouteKind.TICKER, RouteKind.DEPTH}
)


def check_partition_count(partitions: int) -> int:
    if isinstance(partitions, bool) or not 1 <= partitions <= MAX_PARTITION_COUNT:
        raise ValueError(f"partition count must be in 1..{MAX_PARTITION_COUNT}, got {partitions}")
    return partitions


def partition_of(symbol: str, partitions: int) -> int:
    """``crc32(symbol) mod partitions`` — stable across processes, versions and machines."""
    return zlib.crc32(symbol.encode("utf-8")) % partitions


def owned_partitions(worker_index: int, worker_count: int, partitions: int) -> tuple[int, ...]:
    """Partitions ``{p : p mod worker_count == worker_index}`` (ascending)."""
    check_partition_count(partitions)
    if worker_count < 1:
        raise ValueError(f"worker count must be >= 1, got {worker_count}")
    if not 0 <= worker_index < worker_count:
        raise ValueError(f"worker index must be in 0..{worker_count - 1}, got {worker_index}")
    if worker_count > partitions:
        raise ValueError(
            f"{worker_count} workers for {partitions} partitions: workers beyond the partition "
            "count would own nothing; raise PARTITION_COUNT (fixed per deployment) or scale down"
        )
    return tuple(range(worker_index, partitions, worker_count))


def owner_of(symbol: str, partitions: int, worker_count: int) -> int:
    """Index of the worker that owns ``symbol``."""
    return partition_of(symbol, partitions) % worker_count


def onchain_symbol(asset: str) -> str:
    """The symbol whose partition holds on-chain events of ``asset`` (``eth`` → ``ETHUSDT``)."""
    return asset.strip().upper() + ONCHAIN_QUOTE_ASSET


def _check_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    tokens = prefix.split(".")
    if not prefix or any(not t or set(t) & set(" \t\r\n*>") for t in tokens):
        raise ValueError(f"invalid partition subject prefix {prefix!r}")
    return prefix


@dataclass(frozen=True, slots=True)
class PartitionLayout:
    """Subject layout and partition count of one deployment."""

    prefix: str = "marketdata"
    partitions: int = DEFAULT_PARTITION_COUNT

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", _check_prefix(self.prefix))
        check_partition_count(self.partitions)

    def partition(self, symbol: str) -> int:
        return partition_of(symbol, self.partitions)

    def subject(self, symbol: str, kind: RouteKind | str) -> str:
        """``<prefix>.<partition>.<SYMBOL>.<kind>`` (``symbol`` must be a symbol:
        :func:`domain.symbol.is_symbol`)."""
        return f"{self.prefix}.{partition_of(symbol, self.partitions)}.{symbol}.{kind}"

    def partition_filter(self, partition: int) -> str:
        """Everything of one partition: ``<prefix>.<partition>.>``."""
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} not in 0..{self.partitions - 1}")
        return f"{self.prefix}.{partition}.>"

    @property
    def stream_subject(self) -> str:
        """Everything of every partition (the stream's subject): ``<prefix>.>``."""
        return f"{self.prefix}.>"

    def parse(self, subject: str) -> tuple[int, str, str] | None:
        """``<prefix>.<p>.<SYMBOL>.<kind>`` → (p, SYMBOL, kind); None if it is not one."""
        head = self.prefix + "."
        if not subject.startswith(head):
            return None
        parts = subject[len(head) :].split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return int(parts[0]), parts[1], parts[2]
