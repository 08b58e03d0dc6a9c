"""Issue 14, end to end over real NATS and the real stores (SecantusDB primary, MariaDB
fallback): published signals are scored, stored, served, split by config version, survive a
restart; a what-if preview of a lower ``orderbook_skew.buy_threshold`` returns more signals
on the same window than the current config and changes nothing.

The machine running it may be loaded (other test runs on two cores): every wait is on a
condition, with bounds generous enough for a starved service (start-up, the preview worker
at nice 19), and nothing is compared before the service says its writes are done.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient

from tests.data import capture_lines
from tests.integration.service_harness import (
    ServiceHarness,
    ServiceProcess,
    Topics,
    async_wait_until,
    processed_total,
    publish_all,
    service_env,
    subscribe_signals,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WAIT_S = 240.0
"""Bound of every wait on the service (a condition, never a timed assertion)."""
HEARTBEAT = "HEARTBEAT: Realtime Strategies Statistics"

STRATEGY = "orderbook_skew"
CONFIG = f"/api/v1/strategies/{STRATEGY}/config"
# On the capture the book is so bid-heavy that buys fire at every cooldown expiry whatever
# the threshold; without a cooldown, the threshold decides how many signals there are.
STRICT = {"buy_threshold": 3.0, "cooldown_seconds": 0}
LOWER = {"buy_threshold": 2.0}


def recent(service: ServiceProcess, query: str = "") -> list[dict[str, Any]]:
    body = service.get_json(f"/api/v1/signals/recent?limit=1000{query}")
    rows: list[dict[str, Any]] = body["data"]
    return rows


def published_counts(signals: list[Any]) -> dict[str, int]:
    return dict(Counter(str(s.payload["strategy_id"]) for s in signals))


def generated_counts(service: ServiceProcess) -> dict[str, int]:
    """Signals per strategy the service generated (single process, no gate: = published)."""
    counts: Counter[str] = Counter()
    prefix = "realtime_strategies_signals_generated_total{"
    for key, value in service.metrics().items():
        if key.startswith(prefix) and value:
            labels = dict(part.split("=", 1) for part in key[len(prefix) : -1].split(","))
            counts[labels["strategy"]] += int(value)
    return dict(counts)


def all_stored(service: ServiceProcess, inbox_signals: list[Any]) -> bool:
    """Every signal the service generated received by the test and stored (none in flight)."""
    published = published_counts(inbox_signals)
    return stored_counts(service) == published == generated_counts(service)


def stored_counts(service: ServiceProcess) -> dict[str, int]:
    """Signals per strategy as ``/performance`` counts them (strategies with any)."""
    counts = {}
    for strategy_id in ("orderbook_skew", "trade_momentum", "ticker_velocity"):
        body = service.get_json(f"/api/v1/strategies/{strategy_id}/performance")
        if body["data"]["signals"]:
            counts[strategy_id] = int(body["data"]["signals"])
    return counts


async def outcomes_saved(service: ServiceProcess) -> None:
    """Wait for a heartbeat, logged after this call, that reports no outcome left unsaved:
    with no more market data coming, the stored records stop changing."""
    seen = len(service.events(HEARTBEAT))

    def settled() -> bool:
        beats = service.events(HEARTBEAT)[seen:]
        return bool(beats) and beats[-1].get("outcomes_unsaved") == 0

    await async_wait_until(settled, WAIT_S, "every outcome saved", context=service.describe)


def processed(service: ServiceProcess) -> float:
    """Messages accounted for: processed or counted invalid."""
    handled, invalid, _ = processed_total(service)
    return handled + invalid


async def feed(
    service: ServiceProcess, nats_client: NatsClient, subject: str, lines: list[bytes]
) -> None:
    before = processed(service)
    await publish_all(nats_client, subject, lines)
    await async_wait_until(
        lambda: processed(service) >= before + len(lines),
        WAIT_S,
        f"{len(lines)} more messages processed",
        context=service.describe,
    )


async def test_outcomes_are_served_split_by_version_kept_across_restarts_and_previewed(
    harness: ServiceHarness,
    topics: Topics,
    nats_client: NatsClient,
    failover_stores: dict[str, Any],
    tmp_path: Path,
) -> None:
    env = service_env(
        topics,
        # The replay's worker runs at nice 19: on a loaded machine it waits for a CPU.
        preview_timeout_seconds="120",
        **failover_stores,
    )
    service = harness.start("svc", env)
    await service.wait_ready_async()
    inbox = await subscribe_signals(nats_client, topics.signals)
    lines = capture_lines(6_000)

    # 1. Published signals appear in /signals/recent with matching ids.
    await feed(service, nats_client, topics.consumer, lines[:3_000])
    await async_wait_until(
        lambda: (
            inbox.ids
            and len(inbox.ids) == sum(generated_counts(service).values())
            and {r["signal_id"] for r in recent(service)} == set(inbox.ids)
        ),
        WAIT_S,
        "published signals in /signals/recent",
        context=lambda: f"published {len(inbox.ids)}\n{service.describe()}",
    )
    rows = recent(service)
    assert sorted(r["signal_id"] for r in rows) == sorted(inbox.ids)
    for row in rows:
        assert row["payload"]["signal_id"] == row["signal_id"]
        assert row["config_version"] == 0
    published = {s.signal_id: s.payload for s in inbox.signals}
    assert all(row["payload"] == published[row["signal_id"]] for row in rows)

    # 2. Performance counts equal the published counts per strategy.
    per_strategy = Counter(s.payload["strategy_id"] for s in inbox.signals)
    for strategy_id, count in per_strategy.items():
        performance = service.get_json(f"/api/v1/strategies/{strategy_id}/performance")["data"]
        assert performance["signals"] == count, strategy_id
        assert performance["by_config_version"]["0"]["signals"] == count

    # 3. After a config change, performance splits by the two versions.
    change = service.request(
        "POST",
        CONFIG,
        json_body={"parameters": STRICT, "changed_by": "e2e", "reason": "issue 14"},
        admin=True,
    )
    assert change.status_code == 200, change.text
    version = change.json()["data"]["version"]
    await feed(service, nats_client, topics.consumer, lines[3_000:])
    await async_wait_until(
        lambda: all_stored(service, inbox.signals),
        WAIT_S,
        "every published signal stored (performance counts = published counts)",
        context=lambda: f"{published_counts(inbox.signals)}\n{service.describe()}",
    )
    by_version = Counter(
        s.payload["metadata"]["strategy_config"]["version"]
        for s in inbox.signals
        if s.payload["strategy_id"] == STRATEGY
    )
    assert set(by_version) == {0, version}
    performance = service.get_json(f"/api/v1/strategies/{STRATEGY}/performance")["data"]
    assert {k: v["signals"] for k, v in performance["by_config_version"].items()} == {
        str(k): v for k, v in by_version.items()
    }
    only_new = service.get_json(
        f"/api/v1/strategies/{STRATEGY}/performance?config_version={version}"
    )["data"]
    assert only_new["signals"] == by_version[version]

    # 4. A preview of a lower buy threshold returns more signals and changes nothing.
    await outcomes_saved(service)
    published_before = len(inbox.signals)
    audit_before = service.get_json(f"/api/v1/strategies/{STRATEGY}/audit")["data"]
    config_before = service.get_json(CONFIG)["data"]
    stored_before = recent(service)
    preview = service.request(
        "POST",
        f"{CONFIG}/preview",
        json_body={"parameters": LOWER, "changed_by": "e2e", "reason": "what if"},
        admin=True,
        timeout=150.0,
    )
    assert preview.status_code == 200, preview.text
    data = preview.json()["data"]
    assert data["window"]["events"] > 0
    assert data["candidate"]["signal_count"] > data["current"]["signal_count"] > 0
    assert data["stored"] is False
    assert data["published"] is False
    await asyncio.sleep(1.0)
    assert len(inbox.signals) == published_before
    assert service.get_json(f"/api/v1/strategies/{STRATEGY}/audit")["data"] == audit_before
    assert service.get_json(CONFIG)["data"] == config_before
    assert recent(service) == stored_before
    unauthenticated = service.request("POST", f"{CONFIG}/preview", json_body={})
    assert unauthenticated.status_code == 401

    # 5. Outcomes survive a restart (the stop saves what was scored since the last write).
    before_stop = {r["signal_id"]: r for r in recent(service)}
    assert any(r["outcome"]["horizons"] for r in before_stop.values())
    assert service.terminate() == 0
    restarted = harness.start("svc-restarted", env)
    await restarted.wait_ready_async()
    assert stored_counts(restarted) == published_counts(inbox.signals)
    after = {r["signal_id"]: r for r in recent(restarted)}  # the newest 1000
    assert len(after) == min(1000, len(inbox.ids))
    assert set(after) == set(before_stop)
    assert set(after) <= set(inbox.ids)
    for signal_id, row in before_stop.items():
        assert after[signal_id]["payload"] == row["payload"]
        assert set(row["outcome"]["horizons"]) <= set(after[signal_id]["outcome"]["horizons"])
