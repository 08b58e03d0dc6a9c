"""Reading state snapshots back: plain data (what ``to_state`` methods return) checked on
the way in, so that a snapshot that does not have the expected shape raises ``ValueError``
naming what is wrong instead of restoring half of it (pure, standard library only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
