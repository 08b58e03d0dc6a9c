"""The one symbol rule (domain/symbol.py), and every boundary that applies it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from adapters.wire.binance import BinanceDecoder
from adapters.wire.integrity import IntegrityOptions
from adapters.wire.stats import Skip, SkipReason
from application.config_cache import normalise_symbol
from domain.config import ConfigDocument
from domain.market import Trade
from domain.params import ParamValidationError
from domain.symbol import (
    INPUT_PATTERN,
    MAX_SYMBOL_LENGTH,
    Symbol,
    from_input,
    is_symbol,
    normalise,
)
from entrypoints.settings import Settings

pytestmark = pytest.mark.unit

NOT_SYMBOLS = ["", "btcusdt", "BTC-USDT", "BTC USDT", "BTCUSDTÉ", "ＢＴＣ", "٣", "A" * 33]
NOT_INPUTS = [s for s in NOT_SYMBOLS if s != "btcusdt"] + [" ", "ß", "ﬁ", "btc\n1"]
"""What a caller may not send for a symbol (lower case may: it is upper-cased)."""
_PATTERN_FIELD = TypeAdapter(Annotated[str, Field(pattern=INPUT_PATTERN)])


@pytest.mark.parametrize("text", ["BTCUSDT", "1000SHIBUSDT", "A", "9" * MAX_SYMBOL_LENGTH])
def test_symbols(text: str) -> None:
    assert is_symbol(text)
    assert str(Symbol(text)) == text


@pytest.mark.parametrize("text", NOT_SYMBOLS)
def test_not_symbols(text: str) -> None:
    assert not is_symbol(text)
    with pytest.raises(ValueError, match="symbol must be"):
        Symbol(text)


def test_parse_normalises_what_a_caller_sends() -> None:
    assert Symbol.parse(" btcusdt ") == Symbol("BTCUSDT")
    assert from_input(" btcusdt ") == "BTCUSDT"
    assert normalise(" ethUSDT\n") == "ETHUSDT"
    with pytest.raises(ValueError, match="symbol must be"):
        Symbol.parse("btc-usdt")
    with pytest.raises(ValueError, match="'ß'"):
        Symbol.parse("ß")


@pytest.mark.parametrize("text", NOT_INPUTS)
def test_every_input_boundary_refuses_what_the_rule_refuses(text: str) -> None:
    assert from_input(text) is None
    assert re.fullmatch(INPUT_PATTERN, text) is None
    with pytest.raises(ValidationError):
        _PATTERN_FIELD.validate_python(text)
    with pytest.raises(ParamValidationError):
        normalise_symbol(text)


@given(st.text(max_size=40))
def test_the_input_pattern_is_the_rule_before_upper_casing(text: str) -> None:
    """:data:`INPUT_PATTERN` (HTTP paths and schemas, the partition proxy) and
    :func:`from_input` (the use cases) accept the same texts (blanks aside)."""
    accepted = from_input(text) is not None and text == text.strip()
    assert (re.fullmatch(INPUT_PATTERN, text) is not None) is accepted
    try:
        _PATTERN_FIELD.validate_python(text)
    except ValidationError:
        assert not accepted
    else:
        assert accepted


def test_non_strings_are_not_symbols() -> None:
    assert not is_symbol(None)
    assert not is_symbol(7)
    assert not is_symbol(b"BTCUSDT")


@given(st.text(max_size=40))
def test_the_rule_is_ascii_upper_alphanumeric_up_to_32(text: str) -> None:
    expected = 0 < len(text) <= 32 and all(
        c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in text
    )
    assert is_symbol(text) is expected


@pytest.mark.parametrize("text", NOT_SYMBOLS[1:])
def test_every_boundary_refuses_what_the_rule_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="symbol must be"):
        Trade(text, 0, 1, 1.0, 1.0, False)
    with pytest.raises(ValueError, match="symbol must be"):
        ConfigDocument("orderbook_skew", text, {}, 1, datetime(2024, 8, 1, tzinfo=UTC), "test")
    raw = (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"%s","t":1,'
        b'"p":"1.5","q":"2","m":true}}' % text.encode()
    )
    result = BinanceDecoder(integrity=IntegrityOptions(out_of_order_tolerance_ms=None)).decode(raw)
    assert isinstance(result, Skip)
    assert result.reason == SkipReason.INVALID_VALUE


def test_the_allow_list_takes_symbols_only() -> None:
    assert Settings(trading_symbols=" btcusdt,ETHUSDT ").symbols() == frozenset(
        {"BTCUSDT", "ETHUSDT"}
    )
    with pytest.raises(ValueError, match="TRADING_SYMBOLS"):
        Settings(trading_symbols="BTCUSDTÉ")
