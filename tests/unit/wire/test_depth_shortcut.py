"""The depth-book shortcut of the Binance codec decodes exactly like the plain path.

Bytes input takes the shortcut (``_parse_book_shortcut``) when the message qualifies; str input
always takes the plain path, which is the reference. Each case below is a way a book can
look almost like the strict quoted-decimal form; the two paths must agree on all of them.
"""

from __future__ import annotations

import orjson
import pytest

from adapters.wire import binance
from adapters.wire.binance import BinanceDecoder
from adapters.wire.stats import Skip, SkipReason
from domain.market import DepthSnapshot

pytestmark = pytest.mark.unit

HEAD = b'{"stream":"btcusdt@depth20@100ms","timestamp":"2024-08-08T23:54:15.123Z","data":{'
TAIL = b"}}"


def spot(bids: bytes, asks: bytes = b'[["2.5","1.0"]]', extra: bytes = b"") -> bytes:
    return HEAD + b'"lastUpdateId":1,' + extra + b'"bids":' + bids + b',"asks":' + asks + TAIL


def outcome(raw: bytes | str) -> object:
    result = BinanceDecoder(out_of_order_tolerance_ms=None).decode(raw)
    return ("skip", result.reason) if isinstance(result, Skip) else result


def same_both_ways(raw: bytes) -> object:
    fast = outcome(raw)
    assert fast == outcome(raw.decode()), raw
    return fast


def test_well_formed_books_take_the_shortcut_and_match() -> None:
    raw = spot(b'[["2.4","1.5"],["2.3","0.25"]]', b'[["2.5","1.0"],["2.6","3.0"]]')
    assert binance._parse_book_shortcut(raw) is not None
    assert same_both_ways(raw) == DepthSnapshot(
        "BTCUSDT", 1723161255123, ((2.4, 1.5), (2.3, 0.25)), ((2.5, 1.0), (2.6, 3.0))
    )


def test_an_empty_side_takes_the_shortcut() -> None:
    raw = spot(b"[]")
    assert binance._parse_book_shortcut(raw) is not None
    assert same_both_ways(raw) == DepthSnapshot("BTCUSDT", 1723161255123, (), ((2.5, 1.0),))


def test_futures_book_takes_the_shortcut() -> None:
    raw = (
        b'{"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate","E":1723161255700,'
        b'"s":"BTCUSDT","b":[["61830.1","2.5"]],"a":[["61830.2","0.5"]]}}'
    )
    assert binance._parse_book_shortcut(raw) is not None
    assert same_both_ways(raw) == DepthSnapshot(
        "BTCUSDT", 1723161255700, ((61830.1, 2.5),), ((61830.2, 0.5),)
    )


@pytest.mark.parametrize(
    "bids",
    [
        # A digit outside the quotes, in every kind of slot between the structural characters.
        b'[7["1.5","1.0"]]',
        b'[["1.5"7,"1.0"]]',
        b'[["1.5",7"1.0"]]',
        b'[["1.5","1.0"7]]',
        b'[["1.5","1.0"]7,["1.4","1.0"]]',
        b'[["1.5","1.0"],7["1.4","1.0"]]',
        b'[["1.5","1.0"]7]',
        b'[["1.5",".","1.0"]]',
        # Strings that would change the structure once unquoted.
        b'[["1.0,2.0"]]',
        b'[["1.0","2.0],[3.0","4.0"]]',
        b'[["1.0","2.0","3.0"],["4.0"]]',
        b'[["1.5","1.0"]],"bids":[["1.5","1.0"]]',
        # Numbers float() reads but JSON does not, or reads differently.
        b'[["01.5","1.0"]]',
        b'[["1.","1.0"]]',
        b'[[".5","1.0"]]',
        b'[["15","1.0"]]',
        b'[["1.2.3","1.0"]]',
        b'[["1.5e1","1.0"]]',
        b'[["-1.5","1.0"]]',
        b'[[" 1.5","1.0"]]',
        b'[["","1.0"]]',
        # Zero, a value that rounds to zero, one that overflows.
        b'[["1.5","0.00000000"]]',
        b'[["1.5","0.' + b"0" * 400 + b'1"]]',
        b'[["1' + b"0" * 400 + b'.5","1.0"]]',
        b'[["0.0","1.0"]]',
    ],
)
def test_near_misses_decode_like_the_plain_path(bids: bytes) -> None:
    same_both_ways(spot(bids))


def test_books_that_are_not_data_own_take_the_plain_path() -> None:
    decoy = (
        b'{"stream":"btcusdt@depth20@100ms","timestamp":"2024-08-08T23:54:15Z",'
        b'"decoy":{"bids":[["5.0","1.0"]],"asks":[["6.0","1.0"]]},'
        b'"data":{"bi\\u0064s":[],"\\u0061sks":[]}}'
    )
    assert binance._parse_book_shortcut(decoy) is None
    assert same_both_ways(decoy) == ("skip", SkipReason.EMPTY_BOOK)
    duplicate = spot(b'[["1.5","1.0"]]', extra=b'"bids":[["0.5","1.0"]],')
    same_both_ways(duplicate)
    futures_with_spot_keys = (
        b'{"stream":"btcusdt@depth20@100ms","data":{"E":1723161255700,"s":"BTCUSDT",'
        b'"bids":[["2.0","1.0"]],"asks":[["3.0","1.0"]],"b":[["1.0","1.0"]],"a":[["4.0","1.0"]]}}'
    )
    same_both_ways(futures_with_spot_keys)


def test_a_message_containing_the_marker_digits_takes_the_plain_path() -> None:
    mark = str(binance._BIDS_MARK).encode()
    raw = spot(b'[["1.5","1.0"]]', extra=b'"note":' + mark + b",")
    assert binance._parse_book_shortcut(raw) is None
    assert isinstance(same_both_ways(raw), DepthSnapshot)


def test_marker_values_in_data_are_not_mistaken_for_the_book() -> None:
    mark = binance._BIDS_MARK
    message = {
        "stream": "btcusdt@depth20@100ms",
        "timestamp": "2024-08-08T23:54:15Z",
        "data": {"bids": mark, "asks": binance._ASKS_MARK},
    }
    assert same_both_ways(orjson.dumps(message)) == ("skip", SkipReason.INVALID_VALUE)
