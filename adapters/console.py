"""A signal sink for the embedded demo (`make run`): signals printed and kept."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Mapping
from typing import TextIO

from adapters.wire.signals import signal_to_wire
from domain.signal import Signal


class ConsoleSignalSink:
    """Prints each signal as one line of the trade engine's JSON and keeps the last ``keep``."""

    def __init__(self, source: str, stream: TextIO | None = None, keep: int = 1000) -> None:
        self.source = source
        self.stream = stream if stream is not None else sys.stdout
        self.recent: deque[Signal] = deque(maxlen=keep)
        self.published = 0

    async def publish(self, signal: Signal, trace_context: Mapping[str, str] | None = None) -> None:
        payload = signal_to_wire(signal, self.source)
        self.stream.write(
            f"SIGNAL {payload['timestamp']} {payload['strategy_id']:<22} {payload['symbol']:<9} "
            f"{payload['action']:<4} conf={signal.confidence:.2f} price={signal.price:.2f} "
            f"qty={signal.quantity:.6f} v{signal.config.version} id={signal.signal_id}\n"
        )
        self.stream.flush()
        self.recent.append(signal)
        self.published += 1

    async def flush(self) -> None:
        self.stream.flush()
