"""Configuration admin use cases (application.config_admin) and the hot-path cache."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory.audit_log import InMemoryAuditLog
from adapters.memory.config_repository import InMemoryConfigRepository
from adapters.memory.unit_of_work import InMemoryConfigUnitOfWork
from application import config_admin as config_admin_module
from application import config_cache as config_cache_module
from application.config_admin import ConfigAdmin
from application.config_cache import EffectiveConfigCache
from application.errors import ConfigNotFoundError, UnknownStrategyError, WritesOverloadedError
from application.ports import StoreUnavailableError, VersionConflictError
from domain.config import AuditAction, AuditQuery, ConfigDocument, resolve
from domain.params import CommonParams, FieldError, ParamValidationError, ParamValue, param

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


# --- test doubles -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoParams(CommonParams):
    """A test strategy with a cross-field threshold rule."""

    strategy_id: ClassVar[str] = "demo"

    cooldown_seconds: int = param(60, min=0, max=3600, description="Cooldown.")
    buy_threshold: float = param(1.2, min=1.0, max=3.0, description="Buy above.")
    sell_threshold: float = param(0.8, min=0.3, max=1.5, description="Sell below.")
    window: int = param(10, min=5, max=50, description="Window.")
    volume_confirmation: bool = param(True, description="Require volume.")

    def cross_field_errors(self) -> list[FieldError]:
        if self.sell_threshold >= self.buy_threshold:
            return [
                FieldError("__root__", "cross_field", "sell_threshold must be below buy_threshold")
            ]
        return []


@dataclass(frozen=True, slots=True)
class OtherParams(CommonParams):
    strategy_id: ClassVar[str] = "other"

    min_signal_interval: int = param(300, min=60, max=3600, description="Interval.")


REGISTRY: dict[str, type[CommonParams]] = {"demo": DemoParams, "other": OtherParams}


class ManualClock:
    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class RecordingNotifier:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, int]] = []

    async def notify(self, strategy_id: str, symbol: str | None, version: int) -> None:
        self.calls.append((strategy_id, symbol, version))


class FailingNotifier:
    async def notify(self, strategy_id: str, symbol: str | None, version: int) -> None:
        raise ConnectionError("nats is away")


class HangingNotifier:
    async def notify(self, strategy_id: str, symbol: str | None, version: int) -> None:
        await asyncio.sleep(3600)


class RacingRepository(InMemoryConfigRepository):
    """Before each of the next ``races`` saves, another writer bumps the same layer."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def put(self, document: ConfigDocument, expected_version: int) -> None:
        if self.races > 0:
            self.races -= 1
            current = self._documents.get((document.strategy_id, document.symbol))
            held = 0 if current is None else current.version
            everything = [d for (s, _), d in self._documents.items() if s == document.strategy_id]
            rival = replace(
                document,
                parameters={"window": 42},
                version=max(d.version for d in everything) + 1 if everything else 1,
                updated_by="rival",
            )
            super().put(rival, held)
        super().put(document, expected_version)


class GatedRepository(InMemoryConfigRepository):
    """``list()`` of everything reads, then waits for ``gate`` before answering."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None

    async def list(self, strategy_id: str | None = None) -> builtins.list[ConfigDocument]:
        documents = await super().list(strategy_id)
        if strategy_id is None and self.gate is not None:
            await self.gate.wait()
        return documents


@dataclass
class Harness:
    cache: EffectiveConfigCache
    admin: ConfigAdmin
    repository: InMemoryConfigRepository
    audit: InMemoryAuditLog
    clock: ManualClock
    notifier: RecordingNotifier


def build(
    environment: Mapping[str, Mapping[str, ParamValue]] | None = None,
    repository: InMemoryConfigRepository | None = None,
    ttl: float = 60.0,
) -> Harness:
    repository = repository if repository is not None else InMemoryConfigRepository()
    audit = InMemoryAuditLog()
    clock = ManualClock()
    notifier = RecordingNotifier()
    cache = EffectiveConfigCache(
        REGISTRY, repository, clock, environment=environment, cache_ttl_seconds=ttl
    )
    admin = ConfigAdmin(
        cache,
        InMemoryConfigUnitOfWork(repository, audit),
        audit,
        clock,
        notifier=notifier,
        names={"demo": ("Demo", "A demo strategy.")},
    )
    return Harness(cache, admin, repository, audit, clock, notifier)


@pytest.fixture
def h() -> Harness:
    return build()


async def put(h: Harness, patch: Mapping[str, ParamValue | None], symbol: str | None = None) -> int:
    result = await h.admin.set_config("demo", symbol, patch, "tester", "test")
    return result.config.layer_version


# --- discovery --------------------------------------------------------------------------------


async def test_list_strategies_reports_configuration_status(h: Harness) -> None:
    summaries = {s.strategy_id: s for s in await h.admin.list_strategies()}
    assert list(summaries) == ["demo", "other"]
    demo = summaries["demo"]
    assert demo.name == "Demo"
    assert demo.description == "A demo strategy."
    assert (demo.has_global_config, demo.symbol_overrides, demo.enabled) == (False, (), True)
    assert demo.parameter_count == len(DemoParams.schema()) == 11
    assert summaries["other"].name == "other"  # not in the names given: its id
    assert summaries["other"].description == ""

    await put(h, {"enabled": False})
    await put(h, {"window": 20}, "ETHUSDT")
    await put(h, {"window": 30}, "BTCUSDT")
    await h.admin.delete_config("demo", "ETHUSDT", "tester", "gone")
    demo = (await h.admin.list_strategies())[0]
    assert (demo.has_global_config, demo.symbol_overrides, demo.enabled) == (
        True,
        ("BTCUSDT",),
        False,
    )
    assert demo.version == 1


async def test_schema_and_defaults(h: Harness) -> None:
    schema = await h.admin.schema("demo")
    assert "cooldown_seconds" in [s.name for s in schema]  # a common parameter, re-declared
    assert [s.name for s in schema][-4:] == [
        "buy_threshold",
        "sell_threshold",
        "window",
        "volume_confirmation",
    ]
    defaults = await h.admin.defaults("demo")
    assert defaults["buy_threshold"] == 1.2
    assert defaults["enabled"] is True


async def _call_with_unknown_strategy(h: Harness, call: str) -> object:
    admin = h.admin
    if call == "schema":
        return await admin.schema("nope")
    if call == "defaults":
        return await admin.defaults("nope")
    if call == "get_config":
        return await admin.get_config("nope", None)
    if call == "set_config":
        return await admin.set_config("nope", None, {"window": 9}, "t", "r")
    if call == "delete_config":
        return await admin.delete_config("nope", "BTCUSDT", "t", "r")
    if call == "rollback":
        return await admin.rollback("nope", None, None, "t", "r")
    if call == "audit":
        return await admin.audit("nope")
    return h.cache.effective("nope", "BTCUSDT")


@pytest.mark.parametrize(
    "call",
    [
        "schema",
        "defaults",
        "get_config",
        "set_config",
        "delete_config",
        "rollback",
        "audit",
        "effective",
    ],
)
async def test_unknown_strategy_is_reported_by_every_use_case(h: Harness, call: str) -> None:
    with pytest.raises(UnknownStrategyError):
        await _call_with_unknown_strategy(h, call)


# --- reads and field-level merge --------------------------------------------------------------


async def test_get_config_of_an_absent_layer_shows_the_effective_defaults(h: Harness) -> None:
    view = await h.admin.get_config("demo", None)
    assert view.exists is False
    assert view.parameters == {}
    assert view.effective == DemoParams.defaults()
    assert (view.version, view.source, view.is_override, view.layer_version) == (
        0,
        "default",
        False,
        0,
    )
    assert view.updated_at is None
    assert view.updated_by is None


async def test_symbol_override_of_one_parameter_inherits_the_rest(h: Harness) -> None:
    await put(h, {"cooldown_seconds": 30, "window": 20})
    await put(h, {"buy_threshold": 1.5}, "BTCUSDT")

    btc = await h.admin.get_config("demo", "BTCUSDT")
    assert btc.parameters == {"buy_threshold": 1.5}
    assert btc.effective["buy_threshold"] == 1.5
    assert btc.effective["cooldown_seconds"] == 30
    assert btc.effective["window"] == 20
    assert btc.effective["sell_threshold"] == 0.8
    assert (btc.is_override, btc.source, btc.version, btc.exists) == (True, "memory", 2, True)
    assert btc.updated_by == "tester"
    assert btc.updated_at == T0

    eth = await h.admin.get_config("demo", "ETHUSDT")
    assert eth.exists is False
    assert eth.effective["buy_threshold"] == 1.2
    assert eth.effective["cooldown_seconds"] == 30
    assert (eth.is_override, eth.version) == (False, 1)

    hot = h.cache.effective("demo", "BTCUSDT")
    assert (hot.params.buy_threshold, hot.params.cooldown_seconds) == (1.5, 30)
    assert hot.is_override
    assert hot.symbol == "BTCUSDT"


async def test_null_removes_a_parameter_from_the_layer(h: Harness) -> None:
    await put(h, {"cooldown_seconds": 30, "window": 20})
    result = await h.admin.set_config("demo", None, {"window": None}, "tester", "drop window")
    assert result.action is AuditAction.UPDATE
    assert result.previous == {"cooldown_seconds": 30, "window": 20}
    assert result.config.parameters == {"cooldown_seconds": 30}
    assert result.config.effective["window"] == 10
    stored = await h.repository.get("demo", None)
    assert stored is not None
    assert stored.parameters == {"cooldown_seconds": 30}


async def test_removing_the_last_parameter_deletes_the_layer(h: Harness) -> None:
    await put(h, {"window": 20}, "BTCUSDT")
    result = await h.admin.set_config("demo", "BTCUSDT", {"window": None}, "tester", "clear")
    assert result.action is AuditAction.DELETE
    assert result.config.exists is False
    stored = await h.repository.get("demo", "BTCUSDT")
    assert stored is not None
    assert stored.is_deleted
    [record, _] = await h.admin.audit("demo", "BTCUSDT")
    assert (record.action, record.new_parameters) == (AuditAction.DELETE, None)
    with pytest.raises(ConfigNotFoundError):
        await h.admin.set_config("demo", "BTCUSDT", {"window": None}, "tester", "again")


async def test_ints_are_accepted_for_float_parameters_and_stored_as_float(h: Harness) -> None:
    await put(h, {"buy_threshold": 2})
    stored = await h.repository.get("demo", None)
    assert stored is not None
    assert stored.parameters["buy_threshold"] == 2.0
    assert type(stored.parameters["buy_threshold"]) is float


async def test_symbols_are_normalised_and_checked(h: Harness) -> None:
    await put(h, {"window": 20}, "btcusdt")
    assert (await h.repository.get("demo", "BTCUSDT")) is not None
    view = await h.admin.get_config("demo", " btcusdt ")
    assert view.parameters == {"window": 20}
    with pytest.raises(ParamValidationError) as caught:
        await put(h, {"window": 20}, "BTC-USDT")
    assert caught.value.errors[0].field == "symbol"


@pytest.mark.parametrize("symbol", ["A" * 33, "ß", "BTCUSDTÉ", "ＢＴＣ", " "])
async def test_config_symbols_follow_the_one_symbol_rule(h: Harness, symbol: str) -> None:
    """The domain rule (1..32 ASCII letters and digits), not an alphanumeric check of its own:
    33 characters, or ``"ß"`` (upper-cased ``"SS"``), were stored layers before."""
    with pytest.raises(ParamValidationError) as caught:
        await put(h, {"window": 20}, symbol)
    assert [(e.field, e.code) for e in caught.value.errors] == [("symbol", "invalid_symbol")]
    with pytest.raises(ParamValidationError):
        await h.admin.get_config("demo", symbol)
    await put(h, {"window": 20}, "a" * 32)
    assert (await h.repository.get("demo", "A" * 32)) is not None


# --- versions ---------------------------------------------------------------------------------


async def test_version_increments_on_every_write(h: Harness) -> None:
    assert await put(h, {"window": 20}) == 1
    assert await put(h, {"window": 21}, "BTCUSDT") == 2
    assert await put(h, {"window": 22}, "ETHUSDT") == 3
    assert await put(h, {"window": 23}) == 4
    deleted = await h.admin.delete_config("demo", "ETHUSDT", "tester", "x")
    assert deleted.config.layer_version == 5
    assert await put(h, {"window": 24}, "ETHUSDT") == 6
    # Another strategy has its own sequence.
    other = await h.admin.set_config("other", None, {"min_signal_interval": 600}, "t", "r")
    assert other.config.layer_version == 1


async def test_effective_version_of_a_symbol_grows_on_global_change_and_override_delete(
    h: Harness,
) -> None:
    await put(h, {"window": 20}, "BTCUSDT")  # v1
    assert h.cache.effective("demo", "BTCUSDT").version == 1
    await put(h, {"cooldown_seconds": 5})  # v2 global
    assert h.cache.effective("demo", "BTCUSDT").version == 2
    assert h.cache.effective("demo", "ETHUSDT").version == 2
    await put(h, {"window": 25}, "ETHUSDT")  # v3 ETH: BTC unaffected
    assert h.cache.effective("demo", "BTCUSDT").version == 2
    await h.admin.delete_config("demo", "BTCUSDT", "tester", "x")  # v4 tombstone
    after = h.cache.effective("demo", "BTCUSDT")
    assert (after.version, after.is_override) == (4, False)
    assert after.params.window == 10
    assert h.cache.effective("demo", "SOLUSDT").version == 2
    # A fresh replica resolves the same versions from the store.
    other = build(repository=h.repository)
    await other.cache.refresh()
    assert other.cache.effective("demo", "BTCUSDT").version == 4
    assert other.cache.effective("demo", "ETHUSDT").version == 3
    assert other.cache.effective("demo", "SOLUSDT").version == 2


# --- audit ------------------------------------------------------------------------------------


async def test_audit_trail_records_create_update_delete_rollback(h: Harness) -> None:
    await h.admin.set_config("demo", "BTCUSDT", {"window": 20}, "alice", "first")
    h.clock.advance(1)
    await h.admin.set_config("demo", "BTCUSDT", {"cooldown_seconds": 5}, "bob", "second")
    h.clock.advance(1)
    await h.admin.delete_config("demo", "BTCUSDT", "carol", "third")
    h.clock.advance(1)
    await h.admin.rollback("demo", "BTCUSDT", 2, "dave", "fourth")
    h.clock.advance(1)
    await h.admin.set_config("demo", None, {"window": 30}, "erin", "global")

    records = await h.admin.audit("demo", "BTCUSDT")
    assert [
        (r.action, r.old_parameters, r.new_parameters, r.changed_by, r.reason, r.version)
        for r in records
    ] == [
        (
            AuditAction.ROLLBACK,
            None,
            {"window": 20, "cooldown_seconds": 5},
            "dave",
            "fourth",
            4,
        ),
        (AuditAction.DELETE, {"window": 20, "cooldown_seconds": 5}, None, "carol", "third", 3),
        (
            AuditAction.UPDATE,
            {"window": 20},
            {"window": 20, "cooldown_seconds": 5},
            "bob",
            "second",
            2,
        ),
        (AuditAction.CREATE, None, {"window": 20}, "alice", "first", 1),
    ]
    assert [r.changed_at for r in records] == [T0 + timedelta(seconds=s) for s in (3, 2, 1, 0)]
    assert all(r.symbol == "BTCUSDT" for r in records)
    everything = await h.admin.audit("demo")
    assert [r.version for r in everything] == [5, 4, 3, 2, 1]
    assert everything[0].symbol is None
    assert [r.version for r in await h.admin.audit("demo", limit=2)] == [5, 4]
    with pytest.raises(ParamValidationError):
        await h.admin.audit("demo", limit=0)


async def test_audit_failure_stores_nothing_and_fails_the_write(h: Harness) -> None:
    h.audit.available = False
    with pytest.raises(StoreUnavailableError):
        await put(h, {"window": 20})
    assert await h.repository.list("demo") == []
    assert h.cache.effective("demo", "BTCUSDT").params.window == 10
    assert h.notifier.calls == []


# --- validate_only ----------------------------------------------------------------------------


async def test_validate_only_writes_nothing_and_returns_the_would_be_config(h: Harness) -> None:
    await put(h, {"cooldown_seconds": 30})
    before_effective = h.cache.effective("demo", "BTCUSDT")
    result = await h.admin.set_config(
        "demo", "BTCUSDT", {"buy_threshold": 2.0}, "tester", "dry", validate_only=True
    )
    assert result.applied is False
    assert result.action is AuditAction.CREATE
    assert result.config.effective["buy_threshold"] == 2.0
    assert result.config.effective["cooldown_seconds"] == 30
    assert result.config.is_override is True
    assert result.config.version == 2  # the version it would get
    assert await h.repository.get("demo", "BTCUSDT") is None
    assert len(await h.audit.list(AuditQuery("demo"))) == 1
    assert h.notifier.calls == [("demo", None, 1)]
    assert h.cache.effective("demo", "BTCUSDT") is before_effective

    with pytest.raises(ParamValidationError):
        await h.admin.set_config(
            "demo", "BTCUSDT", {"sell_threshold": 1.4}, "tester", "dry", validate_only=True
        )


# --- validation -------------------------------------------------------------------------------


async def test_field_errors_are_reported_together(h: Harness) -> None:
    with pytest.raises(ParamValidationError) as caught:
        await put(
            h,
            {
                "bogus": 1,
                "cooldown_seconds": True,  # bool is not int
                "window": 2.5,  # float is not int
                "buy_threshold": 9.0,  # out of range
                "volume_confirmation": 1,  # int is not bool
            },
        )
    codes = {(e.field, e.code) for e in caught.value.errors}
    assert codes == {
        ("bogus", "unknown_parameter"),
        ("cooldown_seconds", "wrong_type"),
        ("window", "wrong_type"),
        ("buy_threshold", "out_of_range"),
        ("volume_confirmation", "wrong_type"),
    }
    assert await h.repository.list() == []
    assert await h.audit.list(AuditQuery("demo")) == []


async def test_removing_an_unknown_parameter_is_an_error(h: Harness) -> None:
    await put(h, {"window": 20})
    with pytest.raises(ParamValidationError) as caught:
        await put(h, {"bogus": None})
    assert caught.value.errors[0].code == "unknown_parameter"


async def test_empty_patch_and_missing_author_are_rejected(h: Harness) -> None:
    with pytest.raises(ParamValidationError):
        await h.admin.set_config("demo", None, {}, "tester", "nothing")
    with pytest.raises(ParamValidationError):
        await h.admin.set_config("demo", None, {"window": 20}, "  ", "nobody")


async def test_symbol_override_cannot_break_a_cross_field_rule_with_global_values(
    h: Harness,
) -> None:
    await put(h, {"buy_threshold": 1.3})
    # 1.4 is within sell_threshold's own range, but not below the global buy_threshold.
    with pytest.raises(ParamValidationError) as caught:
        await put(h, {"sell_threshold": 1.4}, "BTCUSDT")
    assert caught.value.errors[0].code == "cross_field"
    assert await h.repository.get("demo", "BTCUSDT") is None
    # Together with a higher buy threshold it is fine.
    await put(h, {"sell_threshold": 1.4, "buy_threshold": 1.6}, "BTCUSDT")


async def test_global_change_cannot_break_an_existing_override(h: Harness) -> None:
    await put(h, {"sell_threshold": 1.1}, "BTCUSDT")
    with pytest.raises(ParamValidationError) as caught:
        await put(h, {"buy_threshold": 1.05})
    assert "BTCUSDT" in caught.value.errors[0].message
    assert await h.repository.get("demo", None) is None
    await put(h, {"buy_threshold": 1.15})  # still above the override's sell threshold


async def test_deleting_global_cannot_break_an_existing_override(h: Harness) -> None:
    await put(h, {"buy_threshold": 2.0})
    await put(h, {"sell_threshold": 1.4}, "BTCUSDT")  # valid only with the global buy 2.0
    with pytest.raises(ParamValidationError):
        await h.admin.delete_config("demo", None, "tester", "reset")
    stored = await h.repository.get("demo", None)
    assert stored is not None
    assert not stored.is_deleted


async def test_preexisting_invalid_override_does_not_block_fixing_the_global(
    h: Harness,
) -> None:
    # Stored behind the service's back (an older release with wider ranges, say).
    await h.repository.save(ConfigDocument("demo", "BTCUSDT", {"window": 99}, 1, T0, "legacy"), 0)
    await h.cache.refresh()
    await put(h, {"cooldown_seconds": 15})  # global write goes through
    with pytest.raises(ParamValidationError):
        await put(h, {"cooldown_seconds": 16}, "BTCUSDT")  # the override itself must be fixed
    await put(h, {"window": 40}, "BTCUSDT")


# --- environment layer ------------------------------------------------------------------------


async def test_environment_layer_precedence() -> None:
    h = build(environment={"demo": {"cooldown_seconds": 120, "window": 15, "buy_threshold": 1.5}})
    base = h.cache.effective("demo", "BTCUSDT")
    assert (base.source, base.version, base.is_override) == ("environment", 0, False)
    assert (base.params.cooldown_seconds, base.params.window) == (120, 15)
    assert base.params.sell_threshold == 0.8
    assert h.cache.effective("other", "BTCUSDT").source == "default"

    await put(h, {"cooldown_seconds": 30})
    glob = h.cache.effective("demo", "BTCUSDT")
    assert (glob.params.cooldown_seconds, glob.params.window) == (30, 15)
    assert glob.source == "memory"

    await put(h, {"window": 25}, "BTCUSDT")
    sym = h.cache.effective("demo", "BTCUSDT")
    params = sym.params
    assert (params.cooldown_seconds, params.window, params.buy_threshold) == (30, 25, 1.5)
    assert sym.is_override

    # Validation sees the environment layer: sell 1.5 is not below the environment's buy 1.5.
    with pytest.raises(ParamValidationError):
        await put(h, {"sell_threshold": 1.5}, "ETHUSDT")


def test_invalid_environment_fails_at_construction() -> None:
    with pytest.raises(ParamValidationError):
        build(environment={"demo": {"sell_threshold": 1.4, "buy_threshold": 1.1}})
    with pytest.raises(ParamValidationError):
        build(environment={"demo": {"window": 1}})
    with pytest.raises(UnknownStrategyError):
        build(environment={"nope": {"window": 10}})


# --- hot path ---------------------------------------------------------------------------------


async def test_effective_is_memoised_and_shares_the_global_resolution(h: Harness) -> None:
    await put(h, {"window": 20})
    await put(h, {"window": 30}, "BTCUSDT")
    stats = h.cache.stats
    hits, misses = stats.cache_hits, stats.cache_misses

    eth = h.cache.effective("demo", "ETHUSDT")
    sol = h.cache.effective("demo", "SOLUSDT")
    glob = h.cache.effective("demo", None)
    btc = h.cache.effective("demo", "BTCUSDT")
    assert eth.params is sol.params is glob.params
    assert btc.params is not glob.params
    assert (eth.symbol, sol.symbol, glob.symbol) == ("ETHUSDT", "SOLUSDT", None)
    assert h.cache.effective("demo", "ETHUSDT") is eth
    assert h.cache.effective("demo", "BTCUSDT") is btc
    assert stats.cache_hits == hits + 3  # the global was memoised when ETHUSDT shared it
    assert stats.cache_misses > misses

    await put(h, {"window": 21})  # a write invalidates the memo
    assert h.cache.effective("demo", "ETHUSDT").params.window == 21
    assert h.cache.effective("demo", "BTCUSDT").params.window == 30


async def test_memo_is_bounded(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_cache_module, "MEMO_LIMIT", 5)
    await put(h, {"window": 20})
    for i in range(50):
        assert h.cache.effective("demo", f"SYM{i}").params.window == 20
    assert h.cache._memo_size <= 5


async def test_before_any_refresh_effective_serves_defaults(h: Harness) -> None:
    config = h.cache.effective("demo", "BTCUSDT")
    assert config.params == DemoParams()
    assert (config.version, config.source, config.is_override) == (0, "default", False)
    assert config.stamp().parameters == DemoParams().to_mapping()


async def test_invalid_stored_config_falls_back_to_the_last_valid_one(h: Harness) -> None:
    await put(h, {"window": 20})
    good = h.cache.effective("demo", "BTCUSDT")
    # Tampered behind the service's back: out of range.
    await h.repository.save(ConfigDocument("demo", None, {"window": 500}, 2, T0, "vandal"), 1)
    await h.cache.refresh()
    for _ in range(3):
        served = h.cache.effective("demo", "BTCUSDT")
        assert served.params == good.params
        assert served.version == 1
    assert h.cache.stats.invalid_stored_configs == 1


async def test_invalid_stored_config_without_history_falls_back_to_lower_layers() -> None:
    repository = InMemoryConfigRepository(
        [
            ConfigDocument("demo", None, {"window": 500}, 1, T0, "vandal"),
            ConfigDocument("other", None, {"min_signal_interval": 900}, 1, T0, "ok"),
            ConfigDocument("other", "BTCUSDT", {"min_signal_interval": 1}, 2, T0, "vandal"),
        ]
    )
    h = build(environment={"demo": {"cooldown_seconds": 7}}, repository=repository)
    await h.cache.refresh()
    demo = h.cache.effective("demo", "BTCUSDT")
    assert demo.params == DemoParams(cooldown_seconds=7)
    assert demo.source == "environment"
    other = h.cache.effective("other", "BTCUSDT")  # bad override: the global resolution
    assert other.params.min_signal_interval == 900
    assert other.is_override is False
    assert h.cache.stats.invalid_stored_configs == 2
    # Stored documents for strategies this build does not know are ignored.
    await repository.save(ConfigDocument("retired", None, {"x": 1}, 1, T0, "old"), 0)
    await h.cache.refresh()
    assert [s.strategy_id for s in await h.admin.list_strategies()] == ["demo", "other"]


# --- store outage -----------------------------------------------------------------------------


async def test_store_down_fails_writes_and_effective_keeps_serving(h: Harness) -> None:
    await put(h, {"window": 20})
    await h.cache.refresh()
    h.repository.available = False
    with pytest.raises(StoreUnavailableError):
        await put(h, {"window": 21})
    with pytest.raises(StoreUnavailableError):
        await h.admin.delete_config("demo", None, "tester", "x")
    # Within the TTL of the last successful refresh, reads come from the snapshot.
    view = await h.admin.get_config("demo", None)
    assert dict(view.parameters) == {"window": 20}
    h.clock.advance(61)
    with pytest.raises(StoreUnavailableError):
        await h.admin.get_config("demo", None)
    with pytest.raises(StoreUnavailableError):
        await h.admin.list_strategies()
    with pytest.raises(StoreUnavailableError):
        await h.cache.refresh()
    assert h.cache.stats.refresh_failures == 2  # list_strategies refreshes too
    assert h.cache.effective("demo", "BTCUSDT").params.window == 20
    assert h.notifier.calls == [("demo", None, 1)]

    h.repository.available = True
    await put(h, {"window": 21})
    assert h.cache.effective("demo", "BTCUSDT").params.window == 21


# --- refresh, TTL, remote changes -------------------------------------------------------------


async def test_ttl_refresh_picks_up_changes_made_elsewhere() -> None:
    a = build(ttl=60)
    b = build(repository=a.repository)
    assert await a.cache.maybe_refresh() is True  # first call always loads
    await b.admin.set_config("demo", None, {"window": 33}, "b", "elsewhere")
    assert a.cache.effective("demo", "X").params.window == 10

    a.clock.advance(59)
    assert await a.cache.maybe_refresh() is False
    assert a.cache.effective("demo", "X").params.window == 10
    a.clock.advance(1)
    assert await a.cache.maybe_refresh() is True
    assert a.cache.effective("demo", "X").params.window == 33
    assert a.cache.stats.refreshes == 2
    assert a.cache.last_refresh_at == T0 + timedelta(seconds=60)


async def test_failed_refresh_keeps_snapshot_and_retries_soon() -> None:
    a = build(ttl=60)
    await a.admin.set_config("demo", None, {"window": 20}, "a", "r")
    await a.cache.refresh()
    a.repository.available = False
    a.clock.advance(60)
    with pytest.raises(StoreUnavailableError):
        await a.cache.maybe_refresh()
    assert a.cache.effective("demo", "X").params.window == 20
    a.clock.advance(1)
    assert await a.cache.maybe_refresh() is False
    a.repository.available = True
    a.clock.advance(4)
    assert await a.cache.maybe_refresh() is True


async def test_apply_remote_change_reloads_only_newer_versions() -> None:
    a = build()
    b = build(repository=a.repository)
    await a.cache.refresh()
    result = await b.admin.set_config("demo", "BTCUSDT", {"window": 44}, "b", "r")
    version = result.config.layer_version
    assert b.notifier.calls == [("demo", "BTCUSDT", version)]

    assert await a.cache.apply_remote_change("demo", "BTCUSDT", version) is True
    assert a.cache.effective("demo", "BTCUSDT").params.window == 44
    assert await a.cache.apply_remote_change("demo", "BTCUSDT", version) is False
    assert await a.cache.apply_remote_change("retired", None, 99) is False
    assert await a.cache.apply_remote_change("demo", "BAD-SYM", 99) is False
    # The writer ignores its own broadcast.
    assert await b.cache.apply_remote_change("demo", "BTCUSDT", version) is False

    a.repository.available = False
    with pytest.raises(StoreUnavailableError):
        await a.cache.apply_remote_change("demo", None, version + 1)


async def test_a_write_also_brings_the_strategys_other_layers_up_to_date() -> None:
    a = build()
    b = build(repository=a.repository)
    await b.admin.set_config("demo", "ETHUSDT", {"window": 12}, "b", "r")
    assert a.cache.effective("demo", "ETHUSDT").params.window == 10
    await a.admin.set_config("demo", "BTCUSDT", {"window": 13}, "a", "r")
    assert a.cache.effective("demo", "ETHUSDT").params.window == 12
    assert a.cache.effective("demo", "BTCUSDT").version == 2


async def test_slow_refresh_never_rolls_back_a_local_write() -> None:
    repository = GatedRepository()
    h = build(repository=repository)
    await put(h, {"window": 20})
    repository.gate = asyncio.Event()
    refreshing = asyncio.create_task(h.cache.refresh())
    await asyncio.sleep(0.01)  # the refresh has read the store and waits
    await put(h, {"window": 30})
    repository.gate.set()
    await refreshing
    assert h.cache.effective("demo", "X").params.window == 30
    # A later refresh with nothing racing it reads the store as is.
    await h.cache.refresh()
    assert h.cache.effective("demo", "X").params.window == 30


# --- notifier ---------------------------------------------------------------------------------


async def test_notifier_is_called_for_every_write(h: Harness) -> None:
    await put(h, {"window": 20})
    await put(h, {"window": 21}, "BTCUSDT")
    await h.admin.delete_config("demo", "BTCUSDT", "t", "r")
    await h.admin.rollback("demo", "BTCUSDT", None, "t", "r")
    assert h.notifier.calls == [
        ("demo", None, 1),
        ("demo", "BTCUSDT", 2),
        ("demo", "BTCUSDT", 3),
        ("demo", "BTCUSDT", 4),
    ]


async def test_notifier_failures_do_not_fail_the_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_admin_module, "NOTIFY_TIMEOUT_SECONDS", 0.01)
    for notifier in (FailingNotifier(), HangingNotifier()):
        repository = InMemoryConfigRepository()
        audit, clock = InMemoryAuditLog(), ManualClock()
        cache = EffectiveConfigCache(REGISTRY, repository, clock)
        uow = InMemoryConfigUnitOfWork(repository, audit)
        admin = ConfigAdmin(cache, uow, audit, clock, notifier=notifier)
        result = await admin.set_config("demo", None, {"window": 20}, "t", "r")
        assert result.applied
        assert admin.stats.notify_failures == 1
        assert cache.effective("demo", "X").params.window == 20
        assert (await repository.get("demo", None)) is not None


# --- compare-and-set --------------------------------------------------------------------------


async def test_lost_compare_and_set_race_is_retried_on_fresh_state() -> None:
    h = build(repository=RacingRepository(races=1))
    result = await h.admin.set_config("demo", None, {"cooldown_seconds": 5}, "t", "r")
    assert h.admin.stats.version_conflicts == 1
    assert result.action is AuditAction.UPDATE  # the rival created the layer first
    assert result.previous == {"window": 42}
    assert result.config.parameters == {"window": 42, "cooldown_seconds": 5}
    assert result.config.layer_version == 2
    [record] = await h.audit.list(AuditQuery("demo"))
    assert record.version == 2


async def test_compare_and_set_gives_up_after_repeated_conflicts() -> None:
    h = build(repository=RacingRepository(races=100))
    with pytest.raises(VersionConflictError):
        await h.admin.set_config("demo", None, {"cooldown_seconds": 5}, "t", "r")
    assert h.admin.stats.version_conflicts == config_admin_module.CAS_ATTEMPTS
    assert await h.audit.list(AuditQuery("demo")) == []


async def test_concurrent_writers_on_one_layer_both_land() -> None:
    a = build()
    b = build(repository=a.repository)
    await asyncio.gather(
        a.admin.set_config("demo", None, {"cooldown_seconds": 5}, "a", "r"),
        b.admin.set_config("demo", None, {"window": 20}, "b", "r"),
    )
    stored = await a.repository.get("demo", None)
    assert stored is not None
    assert stored.parameters == {"cooldown_seconds": 5, "window": 20}
    assert stored.version == 2
    assert sorted(
        r.version
        for r in await a.audit.list(AuditQuery("demo")) + await b.audit.list(AuditQuery("demo"))
    ) == [
        1,
        2,
    ]


# --- delete and rollback ----------------------------------------------------------------------


async def test_delete_config(h: Harness) -> None:
    with pytest.raises(ConfigNotFoundError):
        await h.admin.delete_config("demo", "BTCUSDT", "t", "r")
    await put(h, {"window": 20}, "BTCUSDT")
    result = await h.admin.delete_config("demo", "BTCUSDT", "t", "r")
    assert (result.action, result.previous, result.config.exists) == (
        AuditAction.DELETE,
        {"window": 20},
        False,
    )
    assert result.config.effective["window"] == 10
    stored = await h.repository.get("demo", "BTCUSDT")
    assert stored is not None
    assert (stored.is_deleted, stored.version) == (True, 2)
    with pytest.raises(ConfigNotFoundError):
        await h.admin.delete_config("demo", "BTCUSDT", "t", "r")
    view = await h.admin.get_config("demo", "BTCUSDT")
    assert (view.exists, view.layer_version, view.version) == (False, 2, 2)


async def test_rollback_undoes_the_latest_change(h: Harness) -> None:
    await put(h, {"window": 20})
    await put(h, {"window": 30, "cooldown_seconds": 9})
    result = await h.admin.rollback("demo", None, None, "ops", "undo")
    assert result.action is AuditAction.ROLLBACK
    assert result.config.parameters == {"window": 20}
    assert result.config.layer_version == 3
    assert h.cache.effective("demo", "X").params.window == 20
    [latest, *_] = await h.admin.audit("demo")
    assert (latest.action, latest.old_parameters, latest.new_parameters) == (
        AuditAction.ROLLBACK,
        {"window": 30, "cooldown_seconds": 9},
        {"window": 20},
    )


async def test_rollback_to_a_version_and_to_before_creation(h: Harness) -> None:
    await put(h, {"window": 20}, "BTCUSDT")  # v1
    await put(h, {"cooldown_seconds": 1})  # v2, another layer
    await put(h, {"window": 25}, "BTCUSDT")  # v3
    await put(h, {"window": 30}, "BTCUSDT")  # v4
    result = await h.admin.rollback("demo", "BTCUSDT", 1, "ops", "back to v1")
    assert result.config.parameters == {"window": 20}
    assert result.config.layer_version == 5
    with pytest.raises(ConfigNotFoundError):
        await h.admin.rollback("demo", "BTCUSDT", 2, "ops", "v2 is the global layer's")
    with pytest.raises(ConfigNotFoundError):
        await h.admin.rollback("demo", "ETHUSDT", None, "ops", "no history")

    # Undoing the global layer's creation deletes it.
    undone = await h.admin.rollback("demo", None, None, "ops", "undo create")
    assert undone.config.exists is False
    stored = await h.repository.get("demo", None)
    assert stored is not None
    assert stored.is_deleted
    with pytest.raises(ConfigNotFoundError):
        await h.admin.rollback("demo", None, 6, "ops", "v6 deleted it: already absent")
    # Rolling back the deletion restores it.
    restored = await h.admin.rollback("demo", None, None, "ops", "redo")
    assert restored.config.parameters == {"cooldown_seconds": 1}


async def test_rollback_is_validated_against_the_current_layers(h: Harness) -> None:
    await put(h, {"buy_threshold": 2.0})  # v1 global
    await put(h, {"sell_threshold": 1.4}, "BTCUSDT")  # v2
    await put(h, {"sell_threshold": 0.9}, "BTCUSDT")  # v3
    await put(h, {"buy_threshold": 1.3})  # v4: fine with sell 0.9
    with pytest.raises(ParamValidationError):
        await h.admin.rollback("demo", "BTCUSDT", 2, "ops", "sell 1.4 >= buy 1.3")


async def test_a_write_that_could_not_be_audited_leaves_rollback_working(
    h: Harness,
) -> None:
    await put(h, {"window": 20})
    h.audit.available = False
    with pytest.raises(StoreUnavailableError):
        await put(h, {"window": 30})
    h.audit.available = True
    result = await h.admin.rollback("demo", None, None, "ops", "undo")
    assert result.config.exists is False  # undid version 1, the latest stored change
    assert [r.version for r in await h.audit.list(AuditQuery("demo"))] == [2, 1]


async def test_rollback_refuses_when_the_audit_trail_missed_the_latest_change(
    h: Harness,
) -> None:
    await put(h, {"window": 20})
    # Written behind the use cases' back (no audit record), e.g. by an older release.
    stored = await h.repository.get("demo", None)
    assert stored is not None
    await h.repository.save(replace(stored, version=2), 1)
    with pytest.raises(ConfigNotFoundError, match="no record of the current version 2"):
        await h.admin.rollback("demo", None, None, "ops", "undo")
    await h.admin.rollback("demo", None, 1, "ops", "explicit version still works")


# --- property: random patches never corrupt the store -----------------------------------------

PARAM_NAMES = [spec.name for spec in DemoParams.schema()]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=5000),
    st.floats(min_value=-5, max_value=5),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    st.text(max_size=3),
)
patches = st.dictionaries(st.sampled_from([*PARAM_NAMES, "bogus"]), values, max_size=4)
operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "set", "set", "delete", "rollback"]),
        st.sampled_from([None, "BTCUSDT", "ETHUSDT"]),
        patches,
    ),
    min_size=1,
    max_size=10,
)


async def _check_invariants(h: Harness) -> None:
    stored = await h.repository.list("demo")
    by_symbol = {d.symbol: d for d in stored}
    global_doc = by_symbol.get(None)
    for symbol in (None, "BTCUSDT", "ETHUSDT", "SOLUSDT"):
        symbol_doc = None if symbol is None else by_symbol.get(symbol)
        expected = resolve(DemoParams, "demo", symbol, None, global_doc, symbol_doc)  # valid
        served = h.cache.effective("demo", symbol)
        assert served.params == expected.params
        assert served.version == expected.version
        assert served.is_override == expected.is_override
    assert h.cache.stats.invalid_stored_configs == 0
    records = await h.audit.list(AuditQuery("demo", limit=1000))
    assert len({r.version for r in records}) == len(records)
    assert max((d.version for d in stored), default=0) == len(records)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_random_patches_never_corrupt_the_store(
    ops: list[tuple[str, str | None, dict[str, object]]],
) -> None:
    async def scenario() -> None:
        h = build()
        for kind, symbol, patch in ops:
            before = await h.repository.list()
            try:
                if kind == "set":
                    await h.admin.set_config("demo", symbol, patch, "fuzz", "r")  # type: ignore[arg-type]
                elif kind == "delete":
                    await h.admin.delete_config("demo", symbol, "fuzz", "r")
                else:
                    await h.admin.rollback("demo", symbol, None, "fuzz", "r")
            except (ParamValidationError, ConfigNotFoundError):
                assert await h.repository.list() == before
            await _check_invariants(h)

    asyncio.run(scenario())


# --- amplification (issue 10) -----------------------------------------------------------------


class CountingRepository(InMemoryConfigRepository):
    """Counts ``list`` calls (each a store round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.lists = 0

    async def list(self, strategy_id: str | None = None) -> builtins.list[ConfigDocument]:
        self.lists += 1
        return await super().list(strategy_id)


async def test_listing_strategies_is_served_from_the_cache_within_its_ttl() -> None:
    repository = CountingRepository()
    h = build(repository=repository)
    await h.cache.refresh()
    before = repository.lists
    for _ in range(50):
        await h.admin.list_strategies()
    assert repository.lists == before
    h.clock.advance(61)
    await h.admin.list_strategies()
    assert repository.lists == before + 1


async def test_a_forged_broadcast_flood_costs_at_most_one_reload_per_strategy_per_ttl() -> None:
    repository = CountingRepository()
    writer = build(repository=repository)
    reader = build(repository=repository)
    await put(writer, {"window": 20})
    await reader.cache.refresh()
    before = repository.lists
    # Stale and duplicated versions: never a reload.
    for _ in range(1000):
        assert await reader.cache.apply_remote_change("demo", None, 1) is False
    assert repository.lists == before
    # Future-dated versions the store does not have: one reload, then distrust for a TTL.
    reloads = [
        await reader.cache.apply_remote_change("demo", "BTCUSDT", v) for v in range(2, 10_002)
    ]
    assert reloads.count(True) == 1
    assert repository.lists == before + 1
    assert reader.cache.stats.remote_changes_ignored == 1000 + 9_999
    # A real change in the meantime reaches the reader at the TTL refresh.
    await put(writer, {"window": 30})
    reader.clock.advance(61)
    assert await reader.cache.maybe_refresh() is True
    assert reader.cache.effective("demo", None).params.window == 30
    # After the TTL, broadcasts are trusted again.
    await put(writer, {"window": 40})
    assert await reader.cache.apply_remote_change("demo", None, 3) is True
    assert reader.cache.effective("demo", None).params.window == 40


class SlowUnitOfWork(InMemoryConfigUnitOfWork):
    """Holds every write until ``release`` is set."""

    def __init__(self, repository: InMemoryConfigRepository, audit: InMemoryAuditLog) -> None:
        super().__init__(repository, audit)
        self.release = asyncio.Event()

    @contextlib.asynccontextmanager
    async def write(self, strategy_id: str) -> AsyncIterator[Any]:
        await self.release.wait()
        async with super().write(strategy_id) as transaction:
            yield transaction


async def test_writes_beyond_the_bounded_queue_are_refused_with_retry_after() -> None:
    repository, audit, clock = InMemoryConfigRepository(), InMemoryAuditLog(), ManualClock()
    cache = EffectiveConfigCache(REGISTRY, repository, clock)
    uow = SlowUnitOfWork(repository, audit)
    admin = ConfigAdmin(cache, uow, audit, clock, max_concurrent_writes=2, max_queued_writes=3)
    writes = [
        asyncio.create_task(admin.set_config("demo", f"S{i}", {"window": 20}, "t", "r"))
        for i in range(5)
    ]
    await asyncio.sleep(0)
    with pytest.raises(WritesOverloadedError) as refused:
        await admin.set_config("demo", "LATE", {"window": 20}, "t", "r")
    assert refused.value.retry_after_s > 0
    assert admin.stats.writes_refused_overload == 1
    uow.release.set()
    results = await asyncio.gather(*writes)
    assert sorted(r.config.layer_version for r in results) == [1, 2, 3, 4, 5]
    # Once the queue drained, writes are admitted again.
    await admin.set_config("demo", "LATE", {"window": 20}, "t", "r")
