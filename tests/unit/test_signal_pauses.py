"""The pause switch use cases (application.signal_pauses) over the in-memory store: validation,
audit, versions on the paused strategy's sequence, the cache and its listeners, broadcasts
and their handling on another replica, the governance gate holding paused signals, and
replicas racing to switch one target (also over the failover pair; on real stores in
``tests/integration/test_config_integrity.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

import pytest

from adapters.failover import (
    FailoverAuditLog,
    FailoverConfigRepository,
    FailoverConfigUnitOfWork,
    FailoverPauseStore,
)
from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.pause_store import InMemoryPauseStore
from adapters.memory.unit_of_work import InMemoryConfigUnitOfWork
from application.config_admin import ConfigAdmin
from application.config_cache import PAUSE_CHANGE_PREFIX, EffectiveConfigCache
from application.errors import PauseNotFoundError
from application.ports import AuditLog, StoreUnavailableError
from application.signal_pauses import PauseWriteResult, SignalPauseAdmin
from domain.config import AuditAction, AuditQuery, AuditRecord
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


# --- replicas racing to switch one target ------------------------------------------------


async def switch_outcome(
    call: Awaitable[PauseWriteResult],
) -> PauseWriteResult | PauseNotFoundError:
    """A switch's result, or the 404 of a resume that found nothing to lift."""
    try:
        return await call
    except PauseNotFoundError as error:
        return error


async def race_pauses(
    admins: Sequence[SignalPauseAdmin],
    strategy_id: str | None,
    symbol: str | None,
    count: int,
    stagger_s: float = 0.0,
) -> list[PauseWriteResult]:
    """``count`` pauses of one target at once, spread over ``admins`` (replicas); the i-th
    sent ``i * stagger_s`` seconds after the first (so some decide while others commit)."""

    async def pause(i: int) -> PauseWriteResult:
        await asyncio.sleep(i * stagger_s)
        return await admins[i % len(admins)].pause(strategy_id, symbol, f"ops-{i}", f"race {i}")

    return await asyncio.gather(*(pause(i) for i in range(count)))


async def race_switches(
    admins: Sequence[SignalPauseAdmin], strategy_id: str | None, symbol: str | None, count: int
) -> list[PauseWriteResult | PauseNotFoundError]:
    """``count`` pauses and resumes of one target at once, each replica sending both."""
    calls = []
    for i in range(count):
        admin = admins[i % len(admins)]
        switch = admin.pause if (i // len(admins)) % 2 == 0 else admin.resume
        calls.append(switch_outcome(switch(strategy_id, symbol, f"ops-{i}", f"race {i}")))
    return await asyncio.gather(*calls)


async def target_trail(
    audit: AuditLog, strategy_id: str | None, symbol: str | None
) -> list[AuditRecord]:
    """The audit records of one pause target, oldest first."""
    records = await audit.list(AuditQuery(strategy_id or "*", symbol, 100_000))
    return sorted((r for r in records if r.symbol == symbol), key=lambda r: r.version)


def assert_one_pause_won(results: Sequence[PauseWriteResult], trail: Sequence[AuditRecord]) -> None:
    """Exactly one of racing pauses was applied and audited; the others changed nothing."""
    applied = [r for r in results if r.applied]
    assert len(applied) == 1, [(r.applied, r.record.version) for r in results]
    assert {r.record.version for r in results} == {applied[0].record.version}
    assert [(r.action, r.version) for r in trail] == [
        (AuditAction.PAUSE, applied[0].record.version)
    ]


def assert_trail_is_chained(trail: Sequence[AuditRecord]) -> None:
    """Every record's old state is the previous record's new state (the first: unpaused)."""
    paused = False
    for record in trail:
        assert record.old_parameters == {"paused": paused}, [
            (r.version, r.action.value, r.old_parameters) for r in trail
        ]
        paused = not paused
        assert record.new_parameters == {"paused": paused}
        assert record.action == (AuditAction.PAUSE if paused else AuditAction.RESUME)


@pytest.fixture(params=["memory", "failover"])
def fleet(request: pytest.FixtureRequest) -> tuple[list[SignalPauseAdmin], AuditLog]:
    """Two replicas' pause use cases over one shared store (or one failover pair of two
    in-memory stores, each replica with its own failover wrappers), and the audit log."""
    clock = ManualClock()
    stores = [
        (InMemoryConfigRepository(), InMemoryAuditLog(), InMemoryPauseStore()) for _ in range(2)
    ]
    units = [InMemoryConfigUnitOfWork(*store) for store in stores]
    admins = []
    for _ in range(2):
        if request.param == "memory":
            repository, _, pauses = stores[0]
            admins.append(
                SignalPauseAdmin(
                    EffectiveConfigCache(REGISTRY, repository, clock, pause_store=pauses),
                    units[0],
                    clock,
                )
            )
            continue
        (repo_a, audit_a, pauses_a), (repo_b, audit_b, pauses_b) = stores
        failover = FailoverConfigRepository(repo_a, repo_b)
        failover_audit = FailoverAuditLog(audit_a, audit_b, repository=failover)
        failover_pauses = FailoverPauseStore(pauses_a, pauses_b, failover)
        unit = FailoverConfigUnitOfWork(
            failover, failover_audit, units[0], units[1], failover_pauses
        )
        cache = EffectiveConfigCache(REGISTRY, failover, clock, pause_store=failover_pauses)
        admins.append(SignalPauseAdmin(cache, unit, clock))
    return admins, stores[0][1]


async def test_racing_pauses_of_one_target_store_one_pause(
    fleet: tuple[list[SignalPauseAdmin], AuditLog],
) -> None:
    admins, audit = fleet
    for strategy_id, symbol in [("demo", "BTCUSDT"), (None, None), ("other", None)]:
        results = await race_pauses(admins, strategy_id, symbol, 10)
        assert_one_pause_won(results, await target_trail(audit, strategy_id, symbol))


async def test_racing_pauses_and_resumes_leave_a_chained_audit_trail(
    fleet: tuple[list[SignalPauseAdmin], AuditLog],
) -> None:
    admins, audit = fleet
    applied = 0
    for _ in range(5):
        outcomes = await race_switches(admins, "demo", None, 8)
        applied += sum(isinstance(o, PauseWriteResult) and o.applied for o in outcomes)
    trail = await target_trail(audit, "demo", None)
    assert len(trail) == applied
    assert_trail_is_chained(trail)
