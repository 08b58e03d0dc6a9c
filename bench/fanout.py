"""Fan the bundled single-symbol capture out to many symbols (tests and benchmarks).

Each line of the capture (BTCUSDT trades, tickers, depth20) is copied once per symbol with
the envelope's ``"stream":"btcusdt@`` prefix and the payload's ``"s":"BTCUSDT"`` rewritten;
event times, envelope timestamps and everything else are kept. The result is the message
sequence a producer following 50 symbols would publish (50 copies of every original event,
in the original order), for the router, the partitioned workers and the single-process path
alike.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.common import DEFAULT_CAPTURE

SYMBOLS_50: tuple[str, ...] = (
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "TRXUSDT",
    "AVAXUSDT", "SHIBUSDT", "DOTUSDT", "LINKUSDT", "BCHUSDT", "NEARUSDT", "LTCUSDT",
    "MATICUSDT", "UNIUSDT", "ICPUSDT", "APTUSDT", "ETCUSDT", "XLMUSDT", "FILUSDT", "HBARUSDT",
    "ATOMUSDT", "ARBUSDT", "OPUSDT", "INJUSDT", "VETUSDT", "IMXUSDT", "MKRUSDT", "GRTUSDT",
    "RNDRUSDT", "AAVEUSDT", "ALGOUSDT", "SUIUSDT", "SEIUSDT", "TIAUSDT", "STXUSDT", "FTMUSDT",
    "RUNEUSDT", "THETAUSDT", "SANDUSDT", "MANAUSDT", "AXSUSDT", "EGLDUSDT", "FLOWUSDT",
    "XTZUSDT", "CHZUSDT", "EOSUSDT", "KAVAUSDT",
)  # fmt: skip

_STREAM = b'"stream":"btcusdt@'
_SYMBOL = b'"s":"BTCUSDT"'


def capture_lines(path: Path = DEFAULT_CAPTURE) -> list[bytes]:
    with gzip.open(path, "rb") as handle:
        return [line.strip() for line in handle if line.strip()]


_MESSAGE_ID = b'"message_id":"'


def fan_out_line(line: bytes, symbol: str) -> bytes:
    """One capture line as if it were about ``symbol``."""
    if symbol == "BTCUSDT":
        return line
    out = line.replace(_STREAM, b'"stream":"' + symbol.lower().encode() + b"@", 1)
    out = out.replace(_SYMBOL, b'"s":"' + symbol.encode() + b'"', 1)
    # A message id of its own: the decoder drops a repeated message_id as a duplicate.
    return out.replace(_MESSAGE_ID, _MESSAGE_ID + symbol.encode() + b"-", 1)


def fan_out(lines: Sequence[bytes], symbols: Sequence[str] = SYMBOLS_50) -> Iterator[bytes]:
    """Every line once per symbol, line by line (the order a live producer would keep)."""
    for line in lines:
        for symbol in symbols:
            yield fan_out_line(line, symbol)
