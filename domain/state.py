"""Reading state snapshots back: plain data (what ``to_state`` methods return) checked on
the way in, so that a snapshot that does not have the expected shape raises ``ValueError``
naming what is wrong instead of restoring half of it (pure, standard library only).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def mapping(state: Mapping[str, object], key: str, where: str) -> Mapping[str, Any]:
    """``state[key]``, which must be an object (a mapping with string keys)."""
    value = state.get(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} state: {key!r} must be an object, got {type(value).__name__}")
    return value


def items(state: Mapping[str, object], key: str, where: str) -> Sequence[Any]:
    """``state[key]``, which must be a list."""
    value = state.get(key)
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where} state: {key!r} must be a list, got {type(value).__name__}")
    return value


def row(value: object, size: int, where: str) -> Sequence[Any]:
    """One entry of ``size`` values (a list)."""
    if not isinstance(value, list | tuple) or len(value) != size:
        raise ValueError(f"{where} state: expected a list of {size} values, got {value!r:.80}")
    return value


def integer(value: object, what: str, where: str) -> int:
    """``value``, which must be an integer (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where} state: {what} must be an integer, got {value!r:.80}")
    return value


def number(value: object, what: str, where: str) -> float:
    """``value``, which must be a number (an integer or a float, not a bool), as a float."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{where} state: {what} must be a number, got {value!r:.80}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{where} state: {what} is out of range") from None


def optional_number(value: object, what: str, where: str) -> float | None:
    """``value``, which must be a number or None."""
    return None if value is None else number(value, what, where)


def positive(value: object, what: str, where: str) -> float:
    """``value``, which must be a finite number above 0 (a price, a notional), as a float."""
    result = number(value, what, where)
    if not 0.0 < result < math.inf:
        raise ValueError(f"{where} state: {what} must be finite and above 0, got {value!r:.80}")
    return result


def optional_positive(value: object, what: str, where: str) -> float | None:
    """``value``, which must be a finite number above 0 or None."""
    return None if value is None else positive(value, what, where)


def text(value: object, what: str, where: str) -> str:
    """``value``, which must be a string."""
    if not isinstance(value, str):
        raise ValueError(f"{where} state: {what} must be a string, got {value!r:.80}")
    return value


def flag(value: object, what: str, where: str) -> bool:
    """``value``, which must be a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{where} state: {what} must be a bool, got {value!r:.80}")
    return value


def symbol_entries(
    state: Mapping[str, object], where: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(symbol, entry)`` for each entry of the list ``state["symbols"]``: objects, each
    naming its symbol under ``"symbol"``."""
    for entry in items(state, "symbols", where):
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} state: a symbol entry must be an object")
        yield text(entry.get("symbol"), "symbol", where), entry
