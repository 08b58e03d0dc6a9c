"""The recorded market data the tests replay: the shared data folder beside the checkout."""

from __future__ import annotations

import gzip
from itertools import islice
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAPTURE = DATA / "binance-spot-btcusdt-2024-08-08.jsonl.gz"
"""The bundled capture (BTCUSDT spot, 2024-08-08), one producer envelope a line, gzipped."""
WIRE_EXAMPLES = DATA / "producer-wire-examples.jsonl"
"""One example message of every stream the producer publishes, one a line."""


def capture_lines(count: int | None = None) -> list[bytes]:
    """The first ``count`` messages of the capture (all by default) as the producer published
    them, without their line ends."""
    with gzip.open(CAPTURE, "rb") as handle:
        return list(islice((line.rstrip(b"\n") for line in handle if line.strip()), count))
