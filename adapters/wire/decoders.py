"""The decoders of every market input, built once per process from the symbol allow-list.

A decoder is a wire codec function ``raw bytes → Decoded | Skip``. :func:`market_decoders`
gives one per input — the Binance envelope and the three market-logic inputs — all with the
same allow-list and size limit; the NATS feed maps its subjects onto them, the partition feed
its subject kinds, so the single-process service, a worker and the tests decode alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from adapters.wire.binance import BinanceDecoder
from adapters.wire.market_inputs import InputKind, MarketInputDecoder
from adapters.wire.stats import Decoded, Skip

Decoder = Callable[[bytes], Decoded | Skip]
"""A wire codec: raw message → ``Decoded`` or ``Skip`` (never raises)."""

BINANCE: Final = "binance"
"""The input name of the Binance envelopes (trades, tickers, depth)."""
INPUTS: Final = (BINANCE, InputKind.DOMINANCE, InputKind.QUOTES, InputKind.ONCHAIN)


def market_decoders(binance: BinanceDecoder, inputs: MarketInputDecoder) -> dict[str, Decoder]:
    """Input name (:data:`BINANCE` or an :class:`InputKind`) → its decoder.

    One Binance decoder per process: it tracks per-symbol event order.
    """
    return {
        BINANCE: binance.decode_envelope,
        InputKind.DOMINANCE: inputs.decode_dominance,
        InputKind.QUOTES: inputs.decode_quote,
        InputKind.ONCHAIN: inputs.decode_onchain,
    }


def subject_decoders(
    decoders: Mapping[str, Decoder], topics: Mapping[str, str]
) -> dict[str, Decoder]:
    """Subject → decoder, from input name → subject (``topics``); an empty subject is left
    out (that input is off), and one subject for two inputs is refused."""
    subjects: dict[str, Decoder] = {}
    for name, topic in topics.items():
        subject = topic.strip()
        if not subject:
            continue
        if subject in subjects:
            raise ValueError(f"subject {subject!r} configured for two inputs")
        subjects[subject] = decoders[name]
    return subjects
