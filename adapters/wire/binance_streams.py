"""The Binance stream names this project accepts: the one grammar, for the codec and the router."""

from __future__ import annotations

from typing import Final

STREAM_TRADE: Final = 0
STREAM_AGG_TRADE: Final = 1
STREAM_TICKER: Final = 2
STREAM_DEPTH: Final = 3
STREAM_UNSUPPORTED: Final = 4
_PARTIAL_DEPTH_LEVELS: Final = frozenset({"5", "10", "20"})


def classify_stream(stream: str) -> tuple[int, str]:
    """(``STREAM_*`` kind, upper-cased part before the first '@') of a stream name: the one
    grammar of the Binance stream names this project accepts (``<symbol>@trade``,
    ``@aggTrade``, ``@ticker``, ``@depth5|10|20[@<n>ms]``), also used by the router."""
    prefix, at, rest = stream.partition("@")
    if not at or not prefix:
        return STREAM_UNSUPPORTED, ""
    if rest == "trade":
        kind = STREAM_TRADE
    elif rest == "aggTrade":
        kind = STREAM_AGG_TRADE
    elif rest == "ticker":
        kind = STREAM_TICKER
    elif rest.startswith("depth"):
        levels, _, speed = rest[5:].partition("@")
        ok_speed = not speed or (
            speed.endswith("ms") and speed[:-2].isascii() and speed[:-2].isdigit()
        )
        kind = STREAM_DEPTH if levels in _PARTIAL_DEPTH_LEVELS and ok_speed else STREAM_UNSUPPORTED
    else:
        kind = STREAM_UNSUPPORTED
    return kind, prefix.upper()
