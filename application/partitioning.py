"""Symbol partitioning: which partition a symbol's messages go to, and which worker owns it.

Pure (``zlib`` and the domain), so every process — routers, workers, the API proxy, tests, the
benchmark — computes the same answer (see docs/adr/0010-symbol-partitioning.md):

- ``partition_of(symbol, P) = crc32(symbol as UTF-8) mod P``. CRC-32 is fixed by the standard
  (the zlib/PNG/Ethernet polynomial): unlike Python's ``hash()`` it does not change between
  processes (``PYTHONHASHSEED``), versions or machines. ``P`` (``PARTITION_COUNT``) is fixed per
  deployment: changing it moves symbols between partitions.
- worker ``i`` of ``W`` owns partitions ``{p : p mod W == i}``; a symbol's owner is therefore
  ``partition_of(symbol, P) mod W``.

Cross-symbol inputs are keyed by the symbol whose state they need: BTC dominance by
``BTCUSDT`` (btc_dominance needs BTCUSDT's price), on-chain events of asset ``X`` by ``XUSDT``,
venue quotes by their own symbol. The NATS subjects the partitions travel on are the NATS
adapter's (``adapters/nats/partition_subjects.py``); which worker a pod is, the entry point's
(``entrypoints/partition_settings.py``).
"""

from __future__ import annotations

import zlib
from typing import Final

from domain.strategies import btc_dominance, onchain_metrics

DEFAULT_PARTITION_COUNT: Final = 16
MAX_PARTITION_COUNT: Final = 4096

DOMINANCE_SYMBOL: Final = btc_dominance.SYMBOL
"""BTC dominance observations live with BTCUSDT (the btc_dominance strategy's symbol)."""
ONCHAIN_QUOTE_ASSET: Final = onchain_metrics.QUOTE_ASSET
"""On-chain events of asset ``X`` live with ``X`` + this (the onchain_metrics symbol)."""


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
