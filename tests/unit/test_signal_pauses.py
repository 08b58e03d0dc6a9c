"""The pause switch use cases (application.signal_pauses) over the in-memory store: validation,
audit, versions on the paused strategy's sequence, the cache and its listeners, broadcasts
and their handling on another replica, and the governance gate holding paused signals."""

from __future__ import annotations

import pytest

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.pause_store import InMemoryPauseStore
from adapters.memory.unit_of_work import InMemoryConfigUnitOfWork
from application.config_admin import ConfigAdmin
from application.config_cache import PAUSE_CHANGE_PREFIX, EffectiveConfigCache
from application.errors import PauseNotFoundError
from application.ports import StoreUnavailableError
from application.signal_pauses import SignalPauseAdmin
from domain.config import AuditAction, AuditQuery
from domain.governance import Governance, Pause, Suppression
from domain.params import ParamValidationError
from domain.signal import Action
from tests.unit.test_config_use_cases import REGISTRY, ManualClock, RecordingNotifier

pytestmark = pytest.mark.unit


class Replica:
    """One service replica's pause use case and cache over a shared in-memory store."""

    def __init__(
        self,
        repository: InMemoryConfigRepository,
        audit: InMemoryAuditLog,
        pauses: InMemoryPauseStore,
        unit_of_work: InMemoryConfigUnitOfWork,
        clock: ManualClock,
    ) -> None:
        self.notifier = RecordingNotifier()
        self.cache = EffectiveConfigCache(REGISTRY, repository, clock, pause_store=pauses)
        self.admin = SignalPauseAdmin(self.cache, unit_of_work, clock, self.notifier)
        self.config = ConfigAdmin(self.cache, unit_of_work, audit, clock, self.notifier)
        self.governance = Governance()
        self.cache.add_pause_listener(self.governance.set_pauses)


class Store:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.repository = InMemoryConfigRepository()
        self.audit = InMemoryAuditLog()
        self.pauses = InMemoryPauseStore()
        self.unit_of_work = InMemoryConfigUnitOfWork(self.repository, self.audit, self.pauses)

    def replica(self) -> Replica:
        return Replica(self.repository, self.audit, self.pauses, self.unit_of_work, self.clock)


@pytest.fixture
def store() -> Store:
    return Store()


async def test_a_global_pause_holds_every_signal_and_resume_lifts_it(store: Store) -> None:
    replica = store.replica()
    await replica.cache.refresh()
    result = await replica.admin.pause(None, None, "ops", "exchange incident")
    assert result.applied
    assert result.record.active
    assert replica.governance.paused("demo", "BTCUSDT")
    assert replica.governance.admit("demo", "BTCUSDT", Action.BUY, 1, None) == Suppression.PAUSED
    assert [r.key for r in await replica.admin.list_pauses()] == ["*/*"]

    lifted = await replica.admin.resume(None, None, "ops", "over")
    assert lifted.applied
    assert not lifted.record.active
    assert replica.governance.pauses == ()
    assert replica.governance.admit("demo", "BTCUSDT", Action.BUY, 1, None) is None
    assert await replica.admin.list_pauses() == ()


async def test_narrow_pauses_cover_only_their_target(store: Store) -> None:
    replica = store.replica()
    await replica.cache.refresh()
    await replica.admin.pause("demo", None, "ops", "demo only")
    await replica.admin.pause(None, "ethusdt", "ops", "ETH only")  # normalised
    await replica.admin.pause("other", "BTCUSDT", "ops", "both")
    gate = replica.governance
    assert gate.paused("demo", "SOLUSDT")
    assert gate.paused("other", "ETHUSDT")
    assert gate.paused("other", "BTCUSDT")
    assert not gate.paused("other", "SOLUSDT")
    assert [r.key for r in await replica.admin.list_pauses()] == [
        "*/ETHUSDT",
        "demo/*",
        "other/BTCUSDT",
    ]
    # A global resume lifts the global pause only (there is none): 404, nothing changes.
    with pytest.raises(PauseNotFoundError):
        await replica.admin.resume(None, None, "ops", "")
    assert len(replica.governance.pauses) == 3


async def test_each_switch_is_audited_once_on_the_strategy_sequence(store: Store) -> None:
    replica = store.replica()
    await replica.cache.refresh()
    await replica.config.set_config("demo", None, {"window": 20}, "ops", "config")  # v1
    paused = await replica.admin.pause("demo", "BTCUSDT", "ops", "incident")  # v2
    again = await replica.admin.pause("demo", "BTCUSDT", "ops", "twice")  # no change
    resumed = await replica.admin.resume("demo", "BTCUSDT", "ops", "over")  # v3
    written = await replica.config.set_config("demo", None, {"window": 30}, "ops", "c2")  # v4
    assert (paused.record.version, resumed.record.version) == (2, 3)
    assert not again.applied
    assert again.record == paused.record
    assert written.config.layer_version == 4
    records = await store.audit.list(AuditQuery("demo"))
    assert [(r.version, r.action, r.symbol) for r in records] == [
        (4, AuditAction.UPDATE, None),
        (3, AuditAction.RESUME, "BTCUSDT"),
        (2, AuditAction.PAUSE, "BTCUSDT"),
        (1, AuditAction.CREATE, None),
    ]
    pause_record = records[2]
    assert (pause_record.id, pause_record.changed_by, pause_record.reason) == (
        "demo:2",
        "ops",
        "incident",
    )
    assert (pause_record.old_parameters, pause_record.new_parameters) == (
        {"paused": False},
        {"paused": True},
    )
    # A global pause is on the "*" sequence; undoing the latest config change ignores pauses.
    store.clock.advance(1)
    everything = await replica.admin.pause(None, None, "ops", "all")
    assert (everything.record.version, everything.record.sequence_key) == (1, "*")
    assert [r.id for r in await store.audit.list(AuditQuery(None))][:1] == ["*:1"]
    undone = await replica.config.rollback("demo", None, None, "ops", "undo")
    assert undone.config.parameters == {"window": 20}


@pytest.mark.parametrize(
    ("strategy_id", "symbol", "changed_by", "reason", "fields"),
    [
        ("nope", None, "ops", "", {"strategy_id"}),
        (None, "BTC-USDT", "ops", "", {"symbol"}),
        (None, "BTCUSDTÉ", "ops", "", {"symbol"}),
        (None, "X" * 33, "ops", "", {"symbol"}),
        (None, "", "ops", "", {"symbol"}),
        (None, None, "", "", {"changed_by"}),
        (None, None, "ops\x00", "", {"changed_by"}),
        (None, None, "ops", "why\u202e", {"reason"}),
        ("nope", "bad symbol", "\n", "", {"strategy_id", "symbol", "changed_by"}),
    ],
)
async def test_invalid_requests_are_422_and_change_nothing(
    store: Store,
    strategy_id: str | None,
    symbol: str | None,
    changed_by: str,
    reason: str,
    fields: set[str],
) -> None:
    replica = store.replica()
    await replica.cache.refresh()
    for call in (replica.admin.pause, replica.admin.resume):
        with pytest.raises(ParamValidationError) as raised:
            await call(strategy_id, symbol, changed_by, reason)
        assert {e.field for e in raised.value.errors} == fields
    assert await store.pauses.list() == []
    assert await store.audit.list(AuditQuery(None)) == []


async def test_a_pause_survives_a_restart(store: Store) -> None:
    first = store.replica()
    await first.cache.refresh()
    await first.admin.pause("demo", None, "ops", "incident")
    restarted = store.replica()
    assert not restarted.governance.paused("demo", "BTCUSDT")
    await restarted.cache.refresh()
    assert restarted.governance.pauses == (Pause("demo", None),)


async def test_a_broadcast_makes_another_replica_reload_once(store: Store) -> None:
    a, b = store.replica(), store.replica()
    await a.cache.refresh()
    await b.cache.refresh()
    await a.admin.pause(None, "BTCUSDT", "ops", "incident")
    assert a.notifier.calls == [(f"{PAUSE_CHANGE_PREFIX}*", "BTCUSDT", 1)]
    channel, symbol, version = a.notifier.calls[0]
    assert not b.governance.paused("demo", "BTCUSDT")
    assert await b.cache.apply_remote_change(channel, symbol, version)
    assert b.governance.pauses == (Pause(None, "BTCUSDT"),)
    # The same broadcast again (or an older one) is not news: no reload.
    reloads = b.cache.stats.remote_reloads
    assert not await b.cache.apply_remote_change(channel, symbol, version)
    assert b.cache.stats.remote_reloads == reloads
    # Unknown strategies are ignored without touching the store.
    assert not await b.cache.apply_remote_change(f"{PAUSE_CHANGE_PREFIX}nope", None, 9)


async def test_a_forged_pause_broadcast_is_distrusted_for_one_ttl(store: Store) -> None:
    replica = store.replica()
    await replica.cache.refresh()
    channel = f"{PAUSE_CHANGE_PREFIX}demo"
    assert await replica.cache.apply_remote_change(channel, None, 1_000)  # reloads, finds less
    reloads = replica.cache.stats.remote_reloads
    for version in range(1_001, 1_100):
        assert not await replica.cache.apply_remote_change(channel, None, version)
    assert replica.cache.stats.remote_reloads == reloads
    store.clock.advance(61)
    assert await replica.cache.apply_remote_change(channel, None, 2_000)


async def test_a_store_outage_is_503_and_the_last_pauses_stay(store: Store) -> None:
    replica = store.replica()
    await replica.cache.refresh()
    await replica.admin.pause(None, None, "ops", "incident")
    store.pauses.available = False
    with pytest.raises(StoreUnavailableError):
        await replica.admin.resume(None, None, "ops", "over")
    assert replica.governance.pauses == (Pause(),)
    store.pauses.available = True
    assert (await replica.admin.resume(None, None, "ops", "over")).applied
