"""The real service, end to end: ``realtime-strategies serve`` processes against real servers.

Each test starts the service as separate processes (:mod:`tests.integration.service_harness`)
with unique NATS subjects, a free API port, the failover config store (SecantusDB primary,
a MariaDB database of its own as fallback) and asserts what a user sees: signals on NATS, the
REST API, ``/ready``, ``/metrics`` and the JSON log.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from adapters.mongo.config_store import MongoAuditLog, MongoConfigRepository, create_mongo_client
from adapters.wire.signals import validate_trade_engine_contract
from domain.config import AuditQuery
from tests.data import capture_lines
from tests.integration.conftest import start_secantus
from tests.integration.service_harness import (
    NatsServerProcess,
    ReceivedSignal,
    ServiceHarness,
    ServiceProcess,
    Topics,
    async_wait_until,
    depth_message,
    log_time,
    metric_sum,
    new_token,
    processed_total,
    publish_all,
    service_env,
    subscribe_signals,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MSG_ID = "Nats-Msg-Id"


# --- signals as the trade engine receives them ------------------------------------------------


def contract_problems(signal: ReceivedSignal, now: datetime | None = None) -> list[str]:
    """Why the trade engine would reject this message (empty: it accepts it)."""
    problems = validate_trade_engine_contract(signal.payload, now=now)
    expected_subject = f"{signal.subject.rsplit('.', 1)[0]}.{signal.payload.get('strategy_id')}"
    if signal.subject != expected_subject:
        problems.append(f"subject {signal.subject} is not <prefix>.<strategy_id>")
    if signal.headers.get(MSG_ID) != signal.payload.get("signal_id"):
        problems.append(
            f"header {MSG_ID}={signal.headers.get(MSG_ID)!r} != "
            f"signal_id {signal.payload.get('signal_id')!r}"
        )
    return problems


# --- 1. live capture in, contract-valid signals out ---------------------------------------------


async def test_capture_in_signals_out_on_per_strategy_subjects(
    harness: ServiceHarness,
    topics: Topics,
    nats_client: NatsClient,
    failover_stores: dict[str, Any],
) -> None:
    service = harness.start("svc", service_env(topics, **failover_stores))
    await service.wait_ready_async()
    inbox = await subscribe_signals(nats_client, topics.signals)
    lines = capture_lines(2_000)

    await publish_all(nats_client, topics.consumer, lines)

    # Every message is accounted for (processed or counted invalid), then every signal the
    # service counts as generated arrives.
    def all_processed() -> tuple[float, float, float] | None:
        totals = processed_total(service)
        return totals if totals[0] + totals[1] >= len(lines) else None

    processed, invalid, generated = await async_wait_until(
        all_processed, 20, f"{len(lines)} messages processed", context=service.describe
    )
    await async_wait_until(
        lambda: len(inbox.signals) >= generated,
        10,
        f"{generated:.0f} signals",
        context=lambda: f"received {len(inbox.signals)}\n{service.describe()}",
    )
    await asyncio.sleep(0.5)  # nothing more than that arrives

    assert processed == len(lines)
    assert invalid == 0
    assert len(inbox.signals) == generated > 0
    assert inbox.bare == [], "a signal was published on the bare prefix"
    problems = {s.signal_id: contract_problems(s) for s in inbox.signals}
    assert {k: v for k, v in problems.items() if v} == {}
    assert len(set(inbox.ids)) == len(inbox.ids), "duplicate signal ids"
    strategies = {s.payload["strategy_id"] for s in inbox.signals}
    assert {s.subject for s in inbox.signals} == {f"{topics.signals}.{sid}" for sid in strategies}
    for received in inbox.signals:
        assert received.payload["source"] == "realtime-strategies"
        assert received.payload["symbol"] == "BTCUSDT"
        stamp = received.payload["metadata"]["strategy_config"]
        assert stamp["version"] == 0
        assert stamp["is_override"] is False

    # Metrics by type and by strategy match what was published and received.
    samples = service.metrics()
    by_type = {
        key: value
        for key, value in samples.items()
        if key.startswith("realtime_strategies_messages_processed_total{")
    }
    assert sum(by_type.values()) == len(lines), by_type
    per_strategy: dict[str, float] = {}
    for key, value in samples.items():
        if key.startswith("realtime_strategies_signals_generated_total{"):
            strategy = key.split("strategy=")[1].split(",")[0].rstrip("}")
            per_strategy[strategy] = per_strategy.get(strategy, 0) + value
    received_per_strategy: dict[str, int] = {}
    for received in inbox.signals:
        sid = received.payload["strategy_id"]
        received_per_strategy[sid] = received_per_strategy.get(sid, 0) + 1
    assert {k: v for k, v in per_strategy.items() if v} == received_per_strategy
    assert samples["realtime_strategies_nats_connected"] == 1
    assert samples["realtime_strategies_publish_errors_total"] == 0

    # The heartbeat reports the same totals; every log line is JSON.
    def heartbeat_caught_up() -> dict[str, Any] | None:
        beats = service.events("HEARTBEAT: Realtime Strategies Statistics")
        last = beats[-1] if beats else None
        return last if last and last["messages_processed"] == len(lines) else None

    beat = await async_wait_until(heartbeat_caught_up, 5, "heartbeat", context=service.describe)
    assert beat["signals_generated"] == len(inbox.signals)
    assert service.non_json_lines() == []


# --- 2. a config change on one replica reaches another within a second ------------------------


async def test_config_change_reaches_other_replica_by_its_broadcast(
    harness: ServiceHarness,
    topics: Topics,
    nats_client: NatsClient,
    failover_stores: dict[str, Any],
) -> None:
    a, b = await harness.start_replicas(
        topics, ["a", "b"], admin_token=new_token(), **failover_stores
    )
    inbox = await subscribe_signals(nats_client, topics.signals)
    symbol = "BTCUSDT"
    now = datetime.now(UTC)

    def skew_signals() -> list[ReceivedSignal]:
        return [s for s in inbox.signals if s.payload["strategy_id"] == "orderbook_skew"]

    # Before: B buys on a 1.3 bid/ask ratio with the defaults (buy_threshold 1.2).
    await publish_all(
        nats_client,
        topics.consumer_of("b"),
        [depth_message(symbol, now - timedelta(seconds=90), 1.3, 1)],
    )
    await async_wait_until(lambda: skew_signals(), 10, "B's first signal", context=b.describe)
    before = skew_signals()[0].payload["metadata"]["strategy_config"]
    assert before["parameters"]["buy_threshold"] == 1.2
    assert before["is_override"] is False

    # A's API: a BTCUSDT override of one parameter.
    body = {
        "parameters": {"buy_threshold": 1.4},
        "changed_by": "e2e-test",
        "reason": "propagation check",
    }
    posted_at = time.time()
    response = a.request(
        "POST", f"/api/v1/strategies/orderbook_skew/config/{symbol}", json_body=body, admin=True
    )
    answered_at = time.time()
    assert response.status_code == 200, response.text
    written = response.json()["data"]
    new_version = written["version"]
    assert new_version > before["version"]
    assert written["effective"]["buy_threshold"] == 1.4
    assert written["effective"]["sell_threshold"] == 0.8  # inherited, field-level merge

    # B applies A's broadcast (only a broadcast logs config_change_applied; B's own log says
    # when); nothing on B is asked meanwhile, so neither a read through B's API nor the 60 s
    # cache TTL can be what delivered it. The SPEC's ≤ 1 s is measured by
    # bench/config_propagation.py, not asserted here: the figure is printed.
    applied = await b.config_applied(new_version, "config_change_applied on B", symbol=symbol)
    assert applied["strategy_id"] == "orderbook_skew"
    delay = log_time(applied) - posted_at
    print(
        f"config propagation A -> B: {delay * 1000:.0f} ms after the POST was sent "
        f"(POST round trip {(answered_at - posted_at) * 1000:.0f} ms)"
    )

    # B's next signals run on the override: a 1.3 ratio no longer buys, a 1.5 ratio does,
    # stamped with the new version.
    await publish_all(
        nats_client,
        topics.consumer_of("b"),
        [
            depth_message(symbol, now - timedelta(seconds=30), 1.3, 2),
            depth_message(symbol, now, 1.5, 3),
        ],
    )
    await async_wait_until(
        lambda: len(skew_signals()) >= 2, 10, "B's signal after the change", context=b.describe
    )
    await async_wait_until(
        lambda: processed_total(b)[0] >= 3, 5, "B processed 3 messages", context=b.describe
    )
    after = skew_signals()[1:]
    assert len(after) == 1, [s.payload for s in after]
    signal = after[0]
    assert contract_problems(signal, now=datetime.now(UTC)) == []
    stamp = signal.payload["metadata"]["strategy_config"]
    assert stamp["version"] == new_version
    assert stamp["is_override"] is True
    assert stamp["parameters"]["buy_threshold"] == 1.4
    assert signal.payload["timestamp"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S"))

    # What an operator sees on B's API, and A's audit trail.
    on_b = b.get_json(f"/api/v1/strategies/orderbook_skew/config/{symbol}")["data"]
    assert on_b["version"] == new_version
    assert on_b["effective"]["buy_threshold"] == 1.4
    audit = a.get_json(f"/api/v1/strategies/orderbook_skew/audit?symbol={symbol}")["data"]
    assert [(r["action"], r["version"], r["changed_by"]) for r in audit] == [
        ("CREATE", new_version, "e2e-test")
    ]


# --- 3. MongoDB down: the API keeps working on MySQL, then MongoDB catches up -----------------


def config_store_status(service: ServiceProcess) -> tuple[int, dict[str, Any]]:
    """(HTTP status of /ready, its config_store component)."""
    status, body = service.ready_status()
    return status, dict(body["components"]["config_store"])


async def mongo_contents(uri: str, database: str) -> tuple[list[Any], list[Any]]:
    """Every layer and every audit record of orderbook_skew as stored in MongoDB."""
    client = create_mongo_client(uri)
    try:
        layers = await MongoConfigRepository(client, database).list("orderbook_skew")
        audit = await MongoAuditLog(client, database).list(AuditQuery("orderbook_skew", None, 1000))
    finally:
        await client.close()
    return layers, audit


async def test_mongodb_outage_served_from_mysql_then_reconciled(
    harness: ServiceHarness,
    topics: Topics,
    tmp_path: Path,
    mysql_uri: str,
    mongo_database_name: str,
) -> None:
    # A SecantusDB of this test's own, with a data directory (a restarted mongod keeps its data).
    (tmp_path / "secantus").mkdir()
    mongo = start_secantus(tmp_path / "secantus", storage_path=str(tmp_path / "mongo-data"))
    try:
        database = mongo_database_name
        service = harness.start(
            "svc",
            service_env(
                topics, mongodb_uri=mongo.uri, mongodb_database=database, mysql_uri=mysql_uri
            ),
        )
        await service.wait_ready_async()
        await async_wait_until(
            lambda: config_store_status(service)[1]["degraded"] is False,
            10,
            "both stores up",
            context=service.describe,
        )
        path = "/api/v1/strategies/orderbook_skew/config"
        acknowledged: dict[str | None, tuple[int, dict[str, Any]]] = {}

        def write(symbol: str | None, parameters: dict[str, Any], reason: str) -> int:
            target = path if symbol is None else f"{path}/{symbol}"
            body = {"parameters": parameters, "changed_by": "e2e-test", "reason": reason}
            response = service.request("POST", target, json_body=body, admin=True, timeout=20)
            assert response.status_code == 200, f"{response.status_code} {response.text}"
            version = int(response.json()["data"]["version"])
            layer = acknowledged.get(symbol, (0, {}))[1]
            acknowledged[symbol] = (version, {**layer, **parameters})
            return version

        write(None, {"cooldown_seconds": 20}, "before the outage")

        mongo.stop()
        outage_started = time.monotonic()
        # Writes and reads through the API go on (MySQL acknowledges them).
        v_btc = write("BTCUSDT", {"buy_threshold": 1.5}, "during the outage")
        v_global = write(None, {"top_levels": 10}, "during the outage")
        v_eth = write("ETHUSDT", {"sell_threshold": 0.7}, "during the outage")
        assert v_btc < v_global < v_eth
        btc = service.get_json(f"{path}/BTCUSDT")["data"]
        assert btc["layer_version"] == v_btc
        assert btc["version"] == v_global  # the effective config: its newest layer
        assert btc["effective"]["buy_threshold"] == 1.5
        assert btc["effective"]["top_levels"] == 10  # the global layer written meanwhile
        assert btc["effective"]["cooldown_seconds"] == 20
        audit = service.get_json("/api/v1/strategies/orderbook_skew/audit?limit=50")["data"]
        assert sorted(r["version"] for r in audit) == [1, v_btc, v_global, v_eth]
        assert service.get_json("/api/v1/strategies")["success"] is True
        write_seconds = time.monotonic() - outage_started
        print(f"3 writes + 3 reads during the MongoDB outage took {write_seconds:.1f} s")

        # /ready: still ready (200), the config store degraded with MongoDB down.
        status, store = config_store_status(service)
        assert status == 200, store
        assert store["ready"] is True
        assert store["degraded"] is True
        assert "down: mongodb" in store["detail"], store
        samples = service.metrics()
        assert samples["realtime_strategies_config_store_up{store=mongodb}"] == 0
        assert samples["realtime_strategies_config_store_up{store=mysql}"] == 1
        assert samples["realtime_strategies_ready"] == 1

        # MongoDB back on the same port: the service recovers by itself.
        mongo.start()
        restarted = time.monotonic()
        await async_wait_until(
            lambda: config_store_status(service)[1]["degraded"] is False,
            20,
            "/ready's config store no longer degraded",
            interval=0.2,
            context=lambda: f"{config_store_status(service)}\n{service.describe()}",
        )
        print(f"config store recovered {time.monotonic() - restarted:.1f} s after the restart")
        assert service.metrics()["realtime_strategies_config_store_up{store=mongodb}"] == 1

        # Every acknowledged write is in MongoDB, layer and audit record alike.
        layers, records = await mongo_contents(mongo.uri, database)
        stored = {d.symbol: (d.version, dict(d.parameters)) for d in layers}
        assert stored == acknowledged
        assert sorted((r.version, r.symbol, r.reason) for r in records) == [
            (1, None, "before the outage"),
            (v_btc, "BTCUSDT", "during the outage"),
            (v_global, None, "during the outage"),
            (v_eth, "ETHUSDT", "during the outage"),
        ]
        assert not any(
            r["event"] == "config_version_conflict_between_stores" for r in service.logs()
        )
    finally:
        mongo.stop()


# --- 4. NATS restarted mid-stream: reconnect by itself, deliver what was generated meanwhile ---

SKEW_COOLDOWN = timedelta(seconds=31)  # > orderbook_skew's 30 s: every message is a signal


def signal_burst(symbols: int, rounds: int, start: datetime, first_round: int = 0) -> list[bytes]:
    """``symbols`` × ``rounds`` depth messages, each worth one orderbook_skew buy signal
    (per symbol, event times ``SKEW_COOLDOWN`` apart; rounds interleaved, order kept)."""
    return [
        depth_message(
            f"X{k:04d}USDT",
            start + SKEW_COOLDOWN * j,
            1.5,
            j + 1,
            mid=50_000.0 + k,
            levels=5,
        )
        for j in range(first_round, first_round + rounds)
        for k in range(symbols)
    ]


async def read_stream(url: str, stream: str, subject: str) -> list[ReceivedSignal]:
    """Every message stored in the JetStream stream ``stream`` (a fresh connection)."""
    client = await nats.connect(url, name="e2e-stream-reader")
    try:
        js = client.jetstream()
        total = (await js.stream_info(stream)).state.messages
        consumer = await js.pull_subscribe(
            subject, durable=f"reader{secrets.token_hex(4)}", stream=stream
        )
        out: list[ReceivedSignal] = []
        while len(out) < total:
            for msg in await consumer.fetch(batch=1000, timeout=5):
                out.append(
                    ReceivedSignal(msg.subject, dict(msg.headers or {}), orjson.loads(msg.data), 0)
                )
                await msg.ack()
        return out
    finally:
        await client.close()


async def test_nats_restart_mid_stream_loses_no_signal(
    harness: ServiceHarness,
    topics: Topics,
    tmp_path: Path,
    failover_stores: dict[str, Any],
) -> None:
    server = NatsServerProcess(tmp_path / "jetstream", tmp_path / "logs")
    server.start()
    try:
        # The production set-up: a JetStream stream on the signal subjects (deduplicating by
        # Nats-Msg-Id) and acknowledged publishing (NATS_SIGNAL_JETSTREAM).
        stream = f"SIGNALS_{topics.run_id}"
        client = await nats.connect(server.url, name="e2e-producer", allow_reconnect=False)
        js = client.jetstream()
        await js.add_stream(
            StreamConfig(name=stream, subjects=[f"{topics.signals}.>"], duplicate_window=120)
        )
        service = harness.start(
            "svc",
            service_env(
                topics, nats_url=server.url, nats_signal_jetstream="true", **failover_stores
            ),
        )
        await service.wait_ready_async()

        start = datetime.now(UTC) - timedelta(hours=1)
        burst = signal_burst(symbols=200, rounds=30, start=start)
        await publish_all(client, topics.consumer, burst)

        # Kill the server while the service is publishing signals.
        async def stored() -> int:
            return (await js.stream_info(stream)).state.messages

        deadline = time.monotonic() + 10
        while await stored() < 300:
            assert time.monotonic() < deadline, f"no signals stored\n{service.describe()}"
            await asyncio.sleep(0.01)
        server.kill()
        killed_at = time.monotonic()
        await client.close()

        # While NATS is away: not ready, not connected, signals generated and buffered.
        def not_ready() -> dict[str, Any] | None:
            status, body = service.ready_status()
            return body if status == 503 else None

        body = await async_wait_until(
            not_ready, 5, "/ready 503 while NATS is down", context=service.describe
        )
        assert body["components"]["nats"]["ready"] is False
        buffered = await async_wait_until(
            lambda: service.metrics()["realtime_strategies_signal_buffer_size"],
            5,
            "signals buffered while NATS is down",
            context=service.describe,
        )
        assert service.metrics()["realtime_strategies_nats_connected"] == 0
        await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - killed_at)))

        server.start()  # same port, same JetStream store
        restarted = time.monotonic()
        await service.wait_ready_async(timeout=30)
        reconnected = time.monotonic() - restarted
        await async_wait_until(
            lambda: service.metrics()["realtime_strategies_signal_buffer_size"] == 0,
            30,
            "the signal buffer delivered",
            interval=0.1,
            context=service.describe,
        )
        print(
            f"NATS down {restarted - killed_at:.1f} s, {buffered:.0f}+ signals buffered; "
            f"ready again {reconnected:.1f} s after the restart"
        )
        samples = service.metrics()
        assert samples["realtime_strategies_nats_connected"] == 1

        # Consumption resumed: one more round for ten symbols.
        client = await nats.connect(server.url, name="e2e-producer-2")
        processed_before = processed_total(service)[0]
        await publish_all(client, topics.consumer, signal_burst(10, 1, start, first_round=30))
        await client.close()
        await async_wait_until(
            lambda: processed_total(service)[0] >= processed_before + 10,
            10,
            "messages after the restart processed",
            context=service.describe,
        )
        processed, _, generated = processed_total(service)
        await async_wait_until(
            lambda: service.metrics()["realtime_strategies_signal_buffer_size"] == 0,
            10,
            "the last signals delivered",
            context=service.describe,
        )

        # Every signal the service generated is in the stream, once.
        signals = await read_stream(server.url, stream, f"{topics.signals}.>")
        ids = [s.signal_id for s in signals]
        assert len(set(ids)) == len(ids), "the stream holds a duplicate"
        assert len(ids) == generated, f"generated {generated:.0f}, stored {len(ids)}"
        assert generated == processed, "every depth message of the burst is worth one signal"
        problems = {s.signal_id: contract_problems(s) for s in signals}
        assert {k: v for k, v in problems.items() if v} == {}
        samples = service.metrics()
        assert metric_sum(samples, "realtime_strategies_signals_dropped_total") == 0
        beat = service.events("HEARTBEAT: Realtime Strategies Statistics")[-1]
        print(f"after the restart: {beat}")
    finally:
        server.kill()


# --- 5. SIGTERM under load: drain, flush, exit 0; nothing the service took is lost -------------

QUEUE_GROUP = "realtime-strategies-group"


async def test_sigterm_under_load_drains_and_delivers_everything(
    harness: ServiceHarness,
    topics: Topics,
    nats_client: NatsClient,
    failover_stores: dict[str, Any],
) -> None:
    # The lifecycle bounds the whole stop by the grace period (half of it for the drain, what
    # remains for the flush); this stop takes a few seconds even on a loaded machine. Whether
    # the grace cut anything off is what the events below tell (no drain or flush timeout);
    # the exit time is only checked against the grace itself, which only a stop step that
    # ignored its share of the grace (or a hang) exceeds.
    grace = 30.0
    service = harness.start(
        "svc", service_env(topics, shutdown_grace_seconds=str(grace), **failover_stores)
    )
    await service.wait_ready_async()
    inbox = await subscribe_signals(nats_client, topics.signals)
    # Another member of the service's queue group (a second replica): what the draining
    # service no longer takes goes there, so every message is accounted for exactly once.
    taken_over: list[bytes] = []

    async def other_replica(msg: Msg) -> None:
        taken_over.append(msg.data)

    await nats_client.subscribe(topics.consumer, queue=QUEUE_GROUP, cb=other_replica)
    await nats_client.flush()

    burst = signal_burst(symbols=200, rounds=40, start=datetime.now(UTC) - timedelta(hours=1))

    async def produce() -> None:
        for index, line in enumerate(burst):
            await nats_client.publish(topics.consumer, line)
            if index % 50 == 49:
                await nats_client.flush()
                await asyncio.sleep(0.01)  # a few thousand messages per second
        await nats_client.flush()

    producer = asyncio.create_task(produce())
    try:
        await async_wait_until(
            lambda: processed_total(service)[0] >= 500,
            20,
            "load flowing through the service",
            context=service.describe,
        )
        assert not producer.done(), "the load ended before SIGTERM; make the burst longer"
        service.signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.to_thread(service.terminate, grace + 5)
        exited_after = time.monotonic() - signalled
        await producer
    finally:
        producer.cancel()
    print(f"exit code {code} {exited_after:.2f} s after SIGTERM (grace {grace:.0f} s)")
    assert code == 0, service.describe()
    assert exited_after < grace

    stopped = service.events("service_stopped")
    assert len(stopped) == 1, service.describe()
    final = stopped[0]
    processed = int(final["messages_processed"])
    published = int(final["signals_published"])
    print(f"service_stopped: {final}")
    assert processed > 0

    # Everything is accounted for: each message went to the service or to the other replica.
    await async_wait_until(
        lambda: processed + len(taken_over) >= len(burst),
        10,
        "the other replica took the rest",
        context=lambda: f"service {processed} + other {len(taken_over)} of {len(burst)}",
    )
    assert processed + len(taken_over) == len(burst)
    print(f"{processed} messages processed by the service, {len(taken_over)} by the other replica")
    # Every signal the service logged as published reached the subscriber, once.
    await async_wait_until(
        lambda: len(inbox.signals) >= published,
        5,
        f"{published} signals",
        context=lambda: f"received {len(inbox.signals)}\n{service.describe()}",
    )
    assert len(set(inbox.ids)) == len(inbox.ids) == published
    assert final["signals_generated"] == published == processed  # one signal per message
    assert final["signals_buffered"] == 0
    assert final["signals_dropped"] == 0
    events = [r.get("event") for r in service.logs()]
    for bad in (
        "consumer_did_not_drain_in_time",
        "signal_sink_flush_incomplete",
        "signals_undelivered_at_close",
        "nats_feed_drain_timeout",
    ):
        assert bad not in events, service.describe()
    assert events.index("service_stopping") < events.index("service_stopped")
