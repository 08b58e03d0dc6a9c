"""The recorded market data the tests replay: the shared data folder beside the checkout."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAPTURE = DATA / "binance-spot-btcusdt-2024-08-08.jsonl.gz"
"""The bundled capture (BTCUSDT spot, 2024-08-08), one producer envelope a line, gzipped."""
WIRE_EXAMPLES = DATA / "producer-wire-examples.jsonl"
"""One example message of every stream the producer publishes, one a line."""
