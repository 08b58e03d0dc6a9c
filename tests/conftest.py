"""Fixtures of every test suite."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

_COLLECTOR_AS_STARTED = gc.get_threshold()


@pytest.fixture(autouse=True)
def _collector_as_started() -> Iterator[None]:
    """Give the garbage collector back as the session started it after a test that called a
    command's main in process (``backtest`` settles it for its run: entrypoints.lifecycle)."""
    yield
    if gc.get_threshold() != _COLLECTOR_AS_STARTED:
        gc.unfreeze()
        gc.set_threshold(*_COLLECTOR_AS_STARTED)
