"""The inputs besides Binance's market data as their producers publish them (the JSON the
service decodes): BTC dominance, on-chain whale transfers and exchange flows, other venues'
quotes (tests and benchmarks). A ``timestamp`` is epoch milliseconds or an ISO-8601 string
(:func:`iso`); both forms are accepted on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson


def iso(ms: int) -> str:
    """``ms`` (epoch milliseconds) as the ISO-8601 UTC time producers write, to the millisecond."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dominance(value: float, timestamp: int | str) -> bytes:
    """A BTC dominance observation (percent of the crypto market capitalisation)."""
    return orjson.dumps({"btc_dominance": value, "timestamp": timestamp})


def whale_transfer(asset: str, amount: float, direction: str, timestamp: int | str) -> bytes:
    """``amount`` of ``asset`` moved ``to_exchange`` or ``from_exchange``."""
    return orjson.dumps(
        {
            "type": "whale_transfer",
            "asset": asset,
            "amount": amount,
            "direction": direction,
            "timestamp": timestamp,
        }
    )


def exchange_flow(
    asset: str, inflow: float, outflow: float, timestamp: int | str, period_seconds: int = 3600
) -> bytes:
    """The exchanges' ``inflow`` and ``outflow`` of ``asset`` over ``period_seconds``."""
    return orjson.dumps(
        {
            "type": "exchange_flow",
            "asset": asset,
            "inflow": inflow,
            "outflow": outflow,
            "period_seconds": period_seconds,
            "timestamp": timestamp,
        }
    )


def venue_quote(
    symbol: str, bid: float, ask: float, timestamp: int | str, venue: str = "coinbase"
) -> bytes:
    """Another venue's best bid and ask for ``symbol``."""
    return orjson.dumps(
        {"venue": venue, "symbol": symbol, "bid": bid, "ask": ask, "timestamp": timestamp}
    )
