"""The one symbol rule: what a trading symbol is, everywhere in the project.

A symbol is 1 to 32 upper-case ASCII letters and digits (``BTCUSDT``). Events, stored
configuration layers, signals, partition subjects and the allow-list all obey this rule;
input boundaries take what callers send with :func:`from_input` (blanks stripped,
upper-cased, then checked) or :meth:`Symbol.parse`, and boundaries that match text instead
(HTTP paths and schemas, the partition proxy) use :data:`INPUT_PATTERN`, the same rule
before upper-casing. Hot paths keep symbols as plain ``str`` values that passed
:func:`is_symbol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_SYMBOL_LENGTH: Final = 32

INPUT_TEXT: Final = f"[A-Za-z0-9]{{1,{MAX_SYMBOL_LENGTH}}}"
"""What a caller may send for a symbol, as an unanchored regular expression: the rule before
upper-casing (for patterns that embed it, e.g. a URL path)."""
INPUT_PATTERN: Final = f"^{INPUT_TEXT}$"
""":data:`INPUT_TEXT` anchored: a whole path segment, query or schema field."""


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


def from_input(text: str) -> str | None:
    """What a caller's symbol means when it is one (``" btcusdt "`` → ``"BTCUSDT"``), else
    None. Only ASCII input counts: ``"ß".upper()`` would be the symbol ``"SS"``."""
    stripped = text.strip()
    symbol = stripped.upper()
    return symbol if stripped.isascii() and is_symbol(symbol) else None


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
        """A caller's symbol, normalised and checked (:func:`from_input`); ValueError naming
        what the caller sent when it is not one."""
        symbol = from_input(text)
        return cls(text if symbol is None else symbol)

    def __str__(self) -> str:
        return self.value
