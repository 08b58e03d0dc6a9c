"""Partition subjects: the NATS subject syntax of the partitioned deployment.

``<prefix>.<partition>.<SYMBOL>.<kind>`` (e.g. ``marketdata.7.BTCUSDT.trade``): routers
publish each market message to the subject of its symbol's partition
(:func:`application.partitioning.partition_of`), and a worker consumes ``<prefix>.<p>.>`` for
each partition ``p`` it owns. ``kind`` is the payload's route kind
(:class:`adapters.wire.routing_keys.RouteKind`), so a worker picks the decoder without parsing
the payload. See docs/adr/0010-symbol-partitioning.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from application.partitioning import DEFAULT_PARTITION_COUNT, check_partition_count, partition_of


def _check_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    tokens = prefix.split(".")
    if not prefix or any(not t or set(t) & set(" \t\r\n*>") for t in tokens):
        raise ValueError(f"invalid partition subject prefix {prefix!r}")
    return prefix


@dataclass(frozen=True, slots=True)
class PartitionLayout:
    """Subject prefix and partition count of one deployment."""

    prefix: str = "marketdata"
    partitions: int = DEFAULT_PARTITION_COUNT

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", _check_prefix(self.prefix))
        check_partition_count(self.partitions)

    def partition(self, symbol: str) -> int:
        """The partition of ``symbol`` in this deployment."""
        return partition_of(symbol, self.partitions)

    def subject(self, symbol: str, kind: str) -> str:
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

    def partition_in(self, subject: str) -> int:
        """The partition of a partition subject (one this layout made; no checks: hot path)."""
        start = len(self.prefix) + 1
        return int(subject[start : subject.index(".", start)])

    @staticmethod
    def kind_in(subject: str) -> str:
        """The kind of a partition subject (its last token; no checks: hot path)."""
        return subject.rpartition(".")[2]

    def parse(self, subject: str) -> tuple[int, str, str] | None:
        """``<prefix>.<p>.<SYMBOL>.<kind>`` → (p, SYMBOL, kind); None if it is not one."""
        head = self.prefix + "."
        if not subject.startswith(head):
            return None
        parts = subject[len(head) :].split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return int(parts[0]), parts[1], parts[2]
