"""Documentation that must stay true: every setting is in the README tables, with its default
and accepted values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from entrypoints.partition_settings import PartitionSettings
from entrypoints.settings import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in readme
    ]
    assert missing == []


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[: readme.index("## ")]
    assert "make run" in head
    assert "make test" in head


def test_every_adr_is_numbered_and_titled() -> None:
    adrs = sorted((ROOT / "docs/adr").glob("*.md"))
    assert len(adrs) >= 9
    for adr in adrs:
        number, _, _ = adr.name.partition("-")
        assert number.isdigit()
        assert len(number) == 4
        text = adr.read_text(encoding="utf-8")
        assert text.startswith(f"# {int(number)}. ")
        assert "## Alternatives" in text


# --- the configuration tables: every setting once, with its default and accepted values -------

SETTING_FIELDS = {
    **{name.upper(): field for name, field in Settings.model_fields.items()},
    **{name.upper(): field for name, field in PartitionSettings.model_fields.items()},
}

ACCEPTED_BY_VALIDATOR = {
    "TRADING_SYMBOLS": "comma-separated symbols (1–32 ASCII letters and digits) or `*`",
    "WORKER_COUNT": "0–4096, ≤ `PARTITION_COUNT`",
    "WORKER_INDEX": "0 to `WORKER_COUNT` − 1",
    "ROUTER_SHARDS": "0–4096, ≤ `PARTITION_COUNT`",
    "ROUTER_SHARD_INDEX": "≥ 0; below `ROUTER_SHARDS` unless `ROUTER_INPUT_STREAM` is set",
}
"""Settings whose accepted values a validator (not a field bound) decides, as the README says."""


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def accepted(name: str, field: FieldInfo) -> str:
    """The README's "Accepted" cell of a setting, from its type and field bounds."""
    if name in ACCEPTED_BY_VALIDATOR:
        return ACCEPTED_BY_VALIDATOR[name]
    if get_origin(field.annotation) is Literal:
        return ", ".join(f"`{value}`" for value in get_args(field.annotation))
    if field.annotation is bool:
        return "`true`, `false`"
    bounds = {type(m).__name__: m for m in field.metadata}
    if "_PydanticGeneralMetadata" in bounds:
        pattern = getattr(bounds["_PydanticGeneralMetadata"], "pattern", None)
        assert pattern in (r"^[-\w]+$", r"^[-\w]*$")
        return "letters, digits, `_`, `-`" + (", or empty" if pattern.endswith("*$") else "")
    low = (
        f"≥ {_number(bounds['Ge'].ge)}"
        if "Ge" in bounds
        else f"> {_number(bounds['Gt'].gt)}"
        if "Gt" in bounds
        else ""
    )
    high = f"≤ {_number(bounds['Le'].le)}" if "Le" in bounds else ""
    if low.startswith("≥") and high:  # a closed range: 1–65535
        return f"{low[2:]}–{high[2:]}"
    return ", ".join(part for part in (low, high) if part) or "any"


def readme_setting_rows() -> dict[str, tuple[str, str]]:
    """Variable → (Default cell, Accepted cell) of the README's configuration tables; a row of
    several variables (`` `A` / `B` ``) has one value per variable in each cell."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows: dict[str, tuple[str, str]] = {}
    for line in readme.splitlines():
        if not line.startswith("| `") or line.count(" | ") < 3:
            continue
        names, default, allowed, _ = line[2:].split(" | ", 3)
        if not re.fullmatch(r"`[A-Z0-9_]+`( / `[A-Z0-9_]+`)*", names):
            continue
        split = [names.split(" / "), default.split(" / "), allowed.split(" / ")]
        assert len({len(part) for part in split}) == 1, line
        for name, value, allowed_values in zip(*split, strict=True):
            assert name.strip("`") not in rows, f"{name} is in the README twice"
            rows[name.strip("`")] = (value, allowed_values)
    return rows


def _default_cell(field: FieldInfo) -> str:
    value = field.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return "*(unset)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{_number(value)}`"


def test_readme_tables_give_every_setting_its_default_and_accepted_values() -> None:
    rows = readme_setting_rows()
    assert sorted(rows) == sorted(SETTING_FIELDS), "README tables and settings differ"
    for name, field in SETTING_FIELDS.items():
        default, allowed = rows[name]
        if name in ("WORKER_INDEX", "ROUTER_SHARD_INDEX"):
            assert default == "HOSTNAME ordinal"
        else:
            assert default == _default_cell(field), name
        assert allowed == accepted(name, field), name
