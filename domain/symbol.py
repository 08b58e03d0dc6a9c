"""The one symbol rule: what a trading symbol is, everywhere in the project.

A symbol is 1 to 32 upper-case ASCII letters and digits (``BTCUSDT``). Events, stored
configuration layers, signals, partition subjects and the allow-list all obey this rule;
input boundaries normalise what callers send (blanks stripped, upper-cased) with
:func:`normalise` and then check it with :func:`is_symbol` or :meth:`Symbol.parse`.
Hot paths keep symbols as plain ``str`` values that passed :func:`is_symbol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_SYMBOL_LENGTH: Final = 32


def is_symbol(text: object) -> bool:
    """Whether ``text`` is a symbol: a str of 1..32 upper-case ASCII letters and digits."""
    return (
        text.__class__ is str
        and 0 < len(text) <= MAX_SYMBOL_LENGTH
        and text.isascii()
        and text.isalnum()
        and text == text.upper()
    )


def normalise(text: str) -> str:
    """What a caller's symbol means: ``" btcusdt "`` → ``"BTCUSDT"`` (not yet checked)."""
    return text.strip().upper()


@dataclass(frozen=True, slots=True)
class Symbol:
    """A trading symbol (see the module docstring); ``str(symbol)`` is its text."""

    value: str

    def __post_init__(self) -> None:
        if not is_symbol(self.value):
            raise ValueError(
                f"symbol must be 1..{MAX_SYMBOL_LENGTH} upper-case ASCII letters and digits, "
                f"got {self.value!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Symbol:
        """A caller's symbol, normalised (blanks stripped, upper-cased) and checked;
        ValueError when it is not one."""
        return cls(normalise(text))

    def __str__(self) -> str:
        return self.value
