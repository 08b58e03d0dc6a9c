"""The process lifecycle's garbage-collector settings (entrypoints/lifecycle.py)."""

from __future__ import annotations

import gc
import weakref

import pytest

from entrypoints.lifecycle import YOUNG_COLLECTION_THRESHOLD, settle_garbage_collector

pytestmark = pytest.mark.unit


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def settled() -> None:
    """Settled for the test; tests/conftest.py gives the collector back afterwards."""
    settle_garbage_collector()


def test_start_up_objects_are_frozen_and_the_young_threshold_raised(settled: None) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD


def test_cyclic_garbage_is_still_collected_without_an_explicit_collection(settled: None) -> None:
    """The collector stays on: once that many net new objects exist, a cycle is freed."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting cannot free it
    kept: list[list[object]] = [[] for _ in range(YOUNG_COLLECTION_THRESHOLD + 1)]
    assert gone() is None
    assert len(kept) > YOUNG_COLLECTION_THRESHOLD
