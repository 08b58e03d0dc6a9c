"""Documentation that must stay true: every setting is in the README table."""

from __future__ import annotations

from pathlib import Path

import pytest

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
