"""The router lease and position on a real JetStream KV (docs/adr/0019-router-failover.md)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import nats
import pytest
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError

from adapters.nats.jetstream_streams import ensure_bucket
from adapters.nats.router_lease import KvLease, KvPosition, open_lease_bucket
from tests.clock import ManualSeconds

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_url: str) -> Any:
    client = await nats.connect(nats_url)
    context = client.jetstream()
    yield context
    await client.close()


@pytest.fixture
def bucket_name() -> str:
    return f"lease_{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
async def _delete_bucket(js: Any, bucket_name: str) -> Any:
    yield
    with contextlib.suppress(NotFoundError):
        await js.delete_key_value(bucket_name)


async def test_a_create_lost_to_another_worker_opens_the_bucket_it_made(
    js: Any, bucket_name: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race seen in CI, made deterministic: another worker creates the bucket between this
    # one's lookup and its create, with a configuration the server will not merge into ours.
    other = await nats.connect(nats_url)
    try:
        opened = js.key_value

        async def lookup_then_lose_the_race(name: str) -> Any:
            monkeypatch.setattr(js, "key_value", opened)
            await ensure_bucket(other.jetstream(), name, ttl=60.0)
            raise BucketNotFoundError

        monkeypatch.setattr(js, "key_value", lookup_then_lose_the_race)
        bucket = await ensure_bucket(js, bucket_name)
        await bucket.put("k", b"v")
        assert (await (await other.jetstream().key_value(bucket_name)).get("k")).value == b"v"
    finally:
        await other.close()


async def test_a_refused_create_without_any_bucket_is_raised(js: Any) -> None:
    with pytest.raises(APIError):
        await ensure_bucket(js, "bad_replicas", replicas=5)  # one server: R5 is refused


async def test_one_holder_at_a_time_and_the_next_after_expiry(js: Any, bucket_name: str) -> None:
    bucket = await ensure_bucket(js, bucket_name, ttl=1.0)
    await ensure_bucket(js, bucket_name, ttl=1.0)  # exists: opened, not created again
    a = KvLease(bucket, "shard-0", "a", 1.0)
    b = KvLease(bucket, "shard-0", "b", 1.0)
    assert await a.try_acquire()
    assert a.held
    assert not await b.try_acquire()
    assert await a.current_holder() == "a"
    assert await a.renew()
    # a stops renewing (dies): the server expires the key, b gets it
    for _ in range(60):
        if await b.try_acquire():
            break
        await asyncio.sleep(0.1)
    assert await b.current_holder() == "b"
    # a wakes up: its compare-and-set fails, it knows it lost
    assert not await a.renew()
    assert not a.held
    assert a.lost == 1
    # a graceful stop hands over at once
    await b.release()
    assert await a.try_acquire()


async def test_the_leader_fences_itself_before_the_lease_can_expire(
    js: Any, bucket_name: str
) -> None:
    bucket = await ensure_bucket(js, bucket_name, ttl=30.0)
    clock = ManualSeconds()
    lease = KvLease(bucket, "shard-1", "a", 30.0, clock=clock)
    assert await lease.try_acquire()
    clock.now += 22.0  # renewals failed (NATS away) for 0.73 x TTL: still leading
    assert lease.held
    clock.now += 1.0  # 0.77 x TTL: stops routing while the key still exists for the others
    assert not lease.held
    assert await lease.renew()  # renewed again: leads on
    assert lease.held


async def test_a_renewal_applied_after_its_timeout_is_not_taken_for_a_lost_lease(
    js: Any, bucket_name: str
) -> None:
    bucket = await ensure_bucket(js, bucket_name, ttl=30.0)
    lease = KvLease(bucket, "shard-2", "a-1234", 30.0)
    assert await lease.try_acquire()
    entry = await bucket.get("shard-2")
    await bucket.update("shard-2", b"a-1234", last=entry.revision)  # the "timed out" renewal
    assert await lease.renew()
    assert lease.held
    assert lease.lost == 0


async def test_a_create_applied_after_its_reply_was_lost_is_adopted(
    js: Any, bucket_name: str
) -> None:
    bucket = await ensure_bucket(js, bucket_name, ttl=30.0)
    lease = KvLease(bucket, "shard-3", "a-1234", 30.0)
    created = await bucket.create("shard-3", b"a-1234")  # applied; the reply never came
    assert await lease.try_acquire()
    assert lease.held
    revision = (await bucket.get("shard-3")).revision
    assert revision is not None
    assert revision > created  # renewed: the key's age restarts
    assert lease.acquired == 1
    other = KvLease(bucket, "shard-3", "b-5678", 30.0)
    assert not await other.try_acquire()  # someone else's key is still not taken


async def test_the_lease_runs_on_the_bucket_ttl_when_it_is_shorter_than_configured(
    js: Any, bucket_name: str
) -> None:
    await ensure_bucket(js, bucket_name, ttl=1.0)  # created by an earlier setting
    bucket, ttl = await open_lease_bucket(js, bucket_name, 8.0)
    assert ttl == pytest.approx(1.0)
    a = KvLease(bucket, "shard-0", "a", ttl)
    assert await a.try_acquire()
    await asyncio.sleep(1.3)  # the server expired the key on the bucket's TTL
    assert not a.held, "fenced on the TTL in force, not on the configured 8 s"
    assert await KvLease(bucket, "shard-0", "b", ttl).try_acquire()


async def test_a_longer_bucket_ttl_leaves_the_configured_one_in_force(
    js: Any, bucket_name: str
) -> None:
    await ensure_bucket(js, bucket_name, ttl=30.0)
    assert (await open_lease_bucket(js, bucket_name, 6.0))[1] == pytest.approx(6.0)
    assert (await open_lease_bucket(js, f"{bucket_name}_new", 6.0))[1] == pytest.approx(6.0)
    await js.delete_key_value(f"{bucket_name}_new")


async def test_position_commits_only_forward_and_survives_the_holder(
    js: Any, bucket_name: str
) -> None:
    bucket = await ensure_bucket(js, bucket_name)
    position = KvPosition(bucket, "shard-0")
    assert await position.load() == 0
    await position.commit(41)
    await position.commit(7)  # never backwards
    assert await KvPosition(bucket, "shard-0").load() == 41
    await bucket.put("shard-0", b"garbage")
    assert await KvPosition(bucket, "shard-0").load() == 0  # logged, from the start
