"""The shared per-minute signal budget on a real JetStream KV (ADR 25): the port's contract
with two connections (two worker processes), a foreign value in the key, and NATS going
away and coming back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from adapters.nats.connection import NatsConnection
from adapters.nats.signal_budget import KEY, NatsSignalBudget
from application.ports import StoreUnavailableError
from tests.contract.signal_budget_contract import T0, Budgets, SignalBudgetContract
from tests.integration.service_harness import NatsServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def connected(url: str) -> NatsConnection:
    connection = NatsConnection(url, reconnect_time_wait=0.05, max_reconnect_wait=0.2)
    await connection.connect(timeout=5.0)
    return connection


@pytest.fixture
async def connections(nats_url: str) -> AsyncIterator[tuple[NatsConnection, NatsConnection]]:
    first, second = await connected(nats_url), await connected(nats_url)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
async def bucket(connections: tuple[NatsConnection, NatsConnection]) -> AsyncIterator[str]:
    name = f"budget_{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(NotFoundError):
        await connections[0].jetstream().delete_key_value(name)


class TestNatsSignalBudget(SignalBudgetContract):
    @pytest.fixture
    def budgets(self, connections: tuple[NatsConnection, NatsConnection], bucket: str) -> Budgets:
        first, second = connections
        return NatsSignalBudget(first, bucket=bucket), NatsSignalBudget(second, bucket=bucket)


async def test_racing_takes_retry_on_the_revision_they_lost(
    connections: tuple[NatsConnection, NatsConnection], bucket: str
) -> None:
    first = NatsSignalBudget(connections[0], bucket=bucket)
    second = NatsSignalBudget(connections[1], bucket=bucket)
    results = await asyncio.gather(
        *[(first if i % 2 else second).take(T0 + i, 40) for i in range(40)]
    )
    assert all(results)  # 40 slots for 40 takes: every lost compare-and-set was retried
    assert first.stats["taken"] + second.stats["taken"] == 40
    assert not await first.take(T0 + 41, 40)


async def test_a_foreign_value_counts_as_an_empty_window_and_is_overwritten(
    connections: tuple[NatsConnection, NatsConnection], bucket: str
) -> None:
    budget = NatsSignalBudget(connections[0], bucket=bucket)
    assert await budget.take(T0, 1)
    kv = await connections[1].jetstream().key_value(bucket)
    for junk in (b"not json", b'{"a": 1}', b'[1, "x"]', b"[1.5]"):
        await kv.put(KEY, junk)
        assert await budget.take(T0, 1)
        assert (await kv.get(KEY)).value == f'[[{T0},""]]'.encode()
    assert budget.stats["malformed"] == 4


async def test_a_deleted_bucket_is_created_again_after_one_failed_take(
    connections: tuple[NatsConnection, NatsConnection], bucket: str
) -> None:
    budget = NatsSignalBudget(connections[0], bucket=bucket)
    assert await budget.take(T0, 1)
    await connections[1].jetstream().delete_key_value(bucket)
    with pytest.raises(StoreUnavailableError, match="signal budget"):
        await budget.take(T0, 1)  # the bucket it had opened is gone
    assert await budget.take(T0, 1)  # opened afresh: created again, an empty window
    assert not await budget.take(T0 + 1, 1)


async def test_without_the_bucket_and_not_allowed_to_create_it(
    connections: tuple[NatsConnection, NatsConnection], bucket: str
) -> None:
    budget = NatsSignalBudget(connections[0], bucket=bucket, create_bucket=False)
    with pytest.raises(StoreUnavailableError, match="signal budget"):
        await budget.take(T0, 1)


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(tmp_path / "jetstream", tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_nats_away_fails_at_once_and_the_budget_is_back_with_it(
    private_nats: NatsServerProcess,
) -> None:
    connection = await connected(private_nats.url)
    budget = NatsSignalBudget(connection, bucket="budget_restart")
    try:
        assert await budget.take(T0, 2)
        private_nats.kill()
        for _ in range(100):
            if not connection.is_connected:
                break
            await asyncio.sleep(0.05)
        # Refused before any request (no request timeout is waited for).
        with pytest.raises(StoreUnavailableError, match="not connected"):
            await budget.take(T0 + 1, 2)
        private_nats.start()
        assert await connection.wait_connected(10.0)
        assert await budget.take(T0 + 2, 2)  # the window survived (file storage)
        assert not await budget.take(T0 + 3, 2)
    finally:
        await connection.close()
