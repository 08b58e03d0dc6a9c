"""Fixtures of the wire tests."""

from __future__ import annotations

import pytest

from tests import data


@pytest.fixture(scope="module")
def capture_lines() -> list[bytes]:
    """Every message of the bundled capture (read once a module)."""
    return data.capture_lines()
