"""Partition state checkpoints on the real NATS (docs/adr/0022-partition-state-checkpoints.md).

A worker snapshots its partitions into a JetStream Object Store; its successor restores them
and replays only what follows. Here the market-data stream keeps 20 s (production: an hour),
so a day and a half of BTC dominance is gone from the stream by the time the worker is
SIGKILLed: only the snapshot still has it, and the successor's btc_dominance signals must be
those of an uninterrupted run; the dominance and on-chain messages its predecessor had
accepted, sent again, it rejects as its predecessor would have (the market-input decoder's
memory is in the snapshot). Signals still pending at the kill are scored on by the
successor (the live scorer is in the snapshot). A corrupt and an incompatible snapshot fall
back to replay, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from adapters.nats.checkpoints import encode_snapshot, object_name
from adapters.wire.outcomes import outcome_document
from adapters.wire.signals import format_timestamp_ms
from application.checkpoints import PartitionSnapshot
from application.partitioning import partition_of
from bench import dominance_history, market_inputs
from bench.fanout import capture_lines, fan_out
from domain.live_outcomes import OutcomeRecord
from tests.integration.partition_cluster import (
    Cluster,
    Proc,
    single_process_run,
    single_process_signals,
)
from tests.integration.test_partitioning import (
    assert_same_signals,
    caught_up,
    http_json,
    publish,
    read_signals,
    ready,
    stream_holds,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Messages = list[tuple[str, bytes]]
RETENTION_S = 20
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(autouse=True)
async def _delete_streams(cluster: Cluster) -> Any:
    yield
    await cluster.delete_streams()


async def reference(messages: Messages) -> dict[str, dict[str, Any]]:
    """The single-process signals by id (as test_partitioning's reference)."""
    return {s["signal_id"]: s for s in await single_process_signals(messages)}


def _start_ms(lines: list[bytes]) -> int:
    return next(int(orjson.loads(line)["data"]["E"]) for line in lines if b'"E"' in line)


def _worker(cluster: Cluster, **extra: object) -> Proc:
    return cluster.worker(
        0,
        1,
        PARTITION_REPLAY_SECONDS=RETENTION_S,
        PARTITION_RECOVER_SECONDS=RETENTION_S,
        PARTITION_CHECKPOINT_INTERVAL_SECONDS=1,
        **extra,
    )


async def _checkpointed(worker: Proc, cluster: Cluster, partitions: set[int]) -> None:
    """Wait until ``partitions`` are checkpointed at the last sequence the worker delivered."""

    async def done() -> bool:
        status = await http_json(worker, "/api/v1/partitions", cluster)
        written = status["checkpoints"]["last_written_seq"]
        delivered = status["delivered_seq"]
        return all(
            delivered[str(p)] > 0 and written.get(str(p)) == delivered[str(p)] for p in partitions
        )

    await wait_for(done, 60.0, f"{worker.name} checkpointed {sorted(partitions)}", cluster)


async def _checkpointed_then_killed(
    nc: Client, cluster: Cluster, market: Messages
) -> tuple[Proc, int]:
    """A router and a worker checkpointing every second, ``market`` published and processed,
    the partitions of :data:`SYMBOLS` checkpointed, then the worker SIGKILLed: the worker
    and the number of messages sent."""
    router = cluster.router(**cluster.failover_env())
    worker = cluster.worker(0, 1, PARTITION_CHECKPOINT_INTERVAL_SECONDS=1)
    router.start()
    worker.start()
    await ready([router, worker], cluster)
    sent = await publish(nc, cluster, market)
    await stream_holds(nc.jetstream(), cluster, sent)
    await caught_up([worker], cluster)
    await _checkpointed(worker, cluster, {partition_of(s, cluster.partitions) for s in SYMBOLS})
    worker.kill()
    return worker, sent


def _metric(worker: Proc, name: str, **labels: str) -> float:
    value = _sample(worker, name, **labels)
    if value is None:
        raise AssertionError(f"no sample {name}{labels}")
    return value


def _sample(worker: Proc, name: str, **labels: str) -> float | None:
    text = worker.get("/metrics")
    assert text is not None
    for family in text_string_to_metric_families(text.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def _invalid(worker: Proc) -> dict[str, float]:
    """The worker's rejected input messages by reason (0 where none)."""
    name = "realtime_strategies_messages_invalid_total"
    reasons = ("duplicate", "out_of_order", "future_dated")
    return {reason: _sample(worker, name, reason=reason) or 0.0 for reason in reasons}


def _whale(time_ms: int, message_id: str, tx_hash: str | None = None) -> bytes:
    """A BTC whale transfer far below the threshold (no signal), routed with BTCUSDT."""
    fields = orjson.loads(market_inputs.whale_transfer("BTC", 1.5, "to_exchange", time_ms))
    if tx_hash is not None:
        fields["tx_hash"] = tx_hash
    return orjson.dumps({**fields, "message_id": message_id})


@pytest.mark.timeout(600)
async def test_a_takeover_restores_a_24h_dominance_window_the_stream_no_longer_holds(
    nc: Client, cluster: Cluster
) -> None:
    js = nc.jetstream()
    lines = capture_lines()[:400]
    start = _start_ms(lines)
    market: Messages = [("binance", raw) for raw in fan_out(lines, SYMBOLS)]
    history: Messages = [("dominance", raw) for raw in dominance_history.history(start - 60_000)]
    jump: Messages = [("dominance", dominance_history.jump(start - 60_000))]
    whales: Messages = [
        ("onchain", _whale(start - 62_000, "whale-1")),
        ("onchain", _whale(start - 61_000, "whale-2", tx_hash="0xfeed")),
    ]
    # Sent again after the takeover: the predecessor rejected each of them, so must the
    # successor: the first whale (its message id: its time is the time line's latest but one),
    # the second under a new id (its transfer), an hour-old dominance observation (out of
    # order). Before the market-input decoder's memory was in the snapshot, all three were
    # accepted.
    replays: Messages = [
        whales[0],
        ("onchain", _whale(start - 61_000, "whale-2-again", tx_hash="0xfeed")),
        history[-2],
    ]
    expected = await reference([*market, *history, *whales, *jump])  # the replays rejected
    dominance = [s for s in expected.values() if s["strategy_id"] == "btc_dominance"]
    # The history alone signals (its 24 h change passes the threshold from its 21st hour,
    # then once per 4 h cooldown), and so does the jump, measured against a reference a day
    # old — which only the snapshot can still provide after the takeover.
    jump_time = format_timestamp_ms(start - 60_000 + dominance_history.JUMP_AFTER_MS)
    jump_signals = [s for s in dominance if s["timestamp"] == jump_time]
    assert len(jump_signals) == 1, dominance
    # its reference: the oldest observation inside the 24 h window, 24 h before the jump
    assert jump_signals[0]["metadata"]["reference_dominance"] == 57.25

    router = cluster.router(PARTITION_REPLAY_SECONDS=RETENTION_S, **cluster.failover_env())
    worker = _worker(cluster)
    router.start()
    worker.start()
    await ready([router, worker], cluster)
    sent = await publish(nc, cluster, market)
    await stream_holds(js, cluster, sent)
    sent += await publish(nc, cluster, [*history, *whales])
    await stream_holds(js, cluster, sent)
    await caught_up([worker], cluster)
    btc = partition_of("BTCUSDT", cluster.partitions)
    await _checkpointed(worker, cluster, {btc, partition_of("ETHUSDT", cluster.partitions)})

    async def expired() -> bool:
        return (await js.stream_info(cluster.market_stream)).state.messages == 0

    await wait_for(expired, 90.0, "the market-data stream aged everything out", cluster)
    worker.kill()
    worker.start()
    await ready([worker], cluster)
    sent += await publish(nc, cluster, [*replays, *jump])
    await stream_holds(js, cluster, sent)
    await caught_up([worker], cluster)

    async def replays_rejected() -> bool:
        return sum((await asyncio.to_thread(_invalid, worker)).values()) >= len(replays)

    await wait_for(replays_rejected, 60.0, "the replayed market inputs rejected", cluster)
    status = await http_json(worker, "/api/v1/partitions", cluster)
    checkpoints = status["checkpoints"]
    print(f"restarted worker: checkpoints {checkpoints}, replay {status['replay']}")
    assert checkpoints["restore_results"]["restored"] == 2
    assert checkpoints["restore_results"]["missing"] == cluster.partitions - 2
    assert status["replay"]["messages"] == 0  # nothing left to replay: all from the snapshot
    assert _metric(worker, "realtime_strategies_checkpoint_restore_total", result="restored") == 2
    assert_same_signals(await read_signals(js, cluster), expected)
    # the message id, the transfer, the out-of-order observation
    assert _invalid(worker) == {"duplicate": 2, "out_of_order": 1, "future_dated": 0}


@pytest.mark.timeout(600)
async def test_a_takeover_scores_on_the_signals_pending_at_the_checkpoint(
    nc: Client, cluster: Cluster
) -> None:
    """A signal published before the last checkpoint and still pending when its worker is
    SIGKILLed gets its later horizons (and trade) from the successor, which restored the live
    scorer from the snapshot and replays nothing from before it: the successor's stored
    outcome of each such signal is that of a single process that never stopped. Before the
    scorer was in the snapshot, the successor never heard of these signals."""
    js = nc.jetstream()
    lines = capture_lines()
    split = len(lines) // 3  # ~2 of the capture's ~6 minutes of event time before the kill
    before: Messages = [("binance", raw) for raw in fan_out(lines[:split], SYMBOLS)]
    after: Messages = [("binance", raw) for raw in fan_out(lines[split:], SYMBOLS)]
    _, at_kill = await single_process_run(before)
    _, final = await single_process_run([*before, *after])
    # the signals from before the kill whose outcome grows after it: the successor's to score
    later = {sid: outcome for sid, outcome in final.items() if sid in at_kill}
    grown = {sid: o for sid, o in later.items() if o.horizons != at_kill[sid].horizons}
    assert grown, "no signal before the kill reaches a horizon after it: a weak split"

    worker, sent = await _checkpointed_then_killed(nc, cluster, before)
    worker.start()
    await ready([worker], cluster)
    sent += await publish(nc, cluster, after)
    await stream_holds(js, cluster, sent)
    await caught_up([worker], cluster)
    status = await http_json(worker, "/api/v1/partitions", cluster)
    assert status["checkpoints"]["restore_results"]["restored"] == 2
    assert status["replay"]["messages"] == 0  # the signals came back from the snapshot only

    expected = {
        sid: outcome_document(OutcomeRecord.of(outcome, {}, 0)) for sid, outcome in later.items()
    }

    async def stored() -> dict[str, Any]:
        """The successor's stored outcomes of the signals from before the kill."""
        found: dict[str, Any] = {}
        for symbol in SYMBOLS:
            answer = await http_json(
                worker, f"/api/v1/signals/recent?symbol={symbol}&limit=1000", cluster
            )
            found.update(
                (entry["signal_id"], entry["outcome"])
                for entry in answer["data"]
                if entry["signal_id"] in expected
            )
        return found

    async def scored_on() -> bool:
        found = await stored()
        return set(grown) <= set(found) and all(found[sid] == expected[sid] for sid in found)

    # written twice a second: wait for the last writes, then show any difference
    with contextlib.suppress(AssertionError):
        await wait_for(scored_on, 60.0, "the successor stored the outcomes it scored on", cluster)
    outcomes = await stored()
    assert set(grown) <= set(outcomes)
    print(f"{len(grown)} of {len(later)} signals from before the kill scored on by the successor")
    assert outcomes == {sid: expected[sid] for sid in outcomes}


@pytest.mark.timeout(600)
async def test_a_corrupt_or_incompatible_snapshot_falls_back_to_replay_counted_and_logged(
    nc: Client, cluster: Cluster
) -> None:
    js = nc.jetstream()
    lines = capture_lines()[:400]
    market: Messages = [("binance", raw) for raw in fan_out(lines, SYMBOLS)]
    expected = await reference(market)
    worker, sent = await _checkpointed_then_killed(nc, cluster, market)
    btc, eth = (partition_of(s, cluster.partitions) for s in SYMBOLS)
    assert btc != eth

    store = await js.object_store(cluster.checkpoint_bucket)
    good = (await store.get(object_name(btc))).data
    assert good
    await store.put(object_name(btc), bytes(good[:30]) + b"\x00" * 64 + bytes(good[94:]))
    await store.put(
        object_name(eth),
        encode_snapshot(
            PartitionSnapshot(
                partition=eth,
                partition_count=cluster.partitions,
                stream=cluster.market_stream,
                stream_created="",
                stream_seq=1,
                taken_at_ms=0,
                covers_seq=1,
                fingerprint="another-version!",
                state={},
            )
        ),
    )
    worker.start()
    await ready([worker], cluster)
    await caught_up([worker], cluster)
    status = await http_json(worker, "/api/v1/partitions", cluster)
    results = status["checkpoints"]["restore_results"]
    assert results.get("corrupt") == 1, results
    assert results.get("incompatible") == 1, results
    assert "restored" not in results, results
    assert status["replay"]["messages"] == sent  # both partitions replayed in full
    replay = status["replay"]
    # every signal was computed again by the replay and went through the replay gate
    assert replay["signals_suppressed"] + replay["signals_recovered"] == len(expected), replay
    for result in ("corrupt", "incompatible"):
        assert _metric(worker, "realtime_strategies_checkpoint_restore_total", result=result) == 1
    log = worker.log_path.read_text()
    assert "partition_checkpoint_not_restored" in log
    assert "checksum mismatch" in log
    # The replay rebuilt the state: the worker checkpoints again, readably.
    await _checkpointed(worker, cluster, {btc, eth})
    assert_same_signals(await read_signals(js, cluster), expected)


@pytest.mark.timeout(600)
async def test_a_worker_replaying_a_backlog_checkpoints_and_loses_nothing(
    nc: Client, cluster: Cluster
) -> None:
    """A worker started on a backlog replays it with its queue mostly full: a due checkpoint
    holds the readers until the queue is processed, then captures (``intake_holds``; how
    often depends on whether the queue also empties by itself, which the machine decides)."""
    js = nc.jetstream()
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT")
    market: Messages = [("binance", raw) for raw in fan_out(capture_lines(), symbols)]
    router = cluster.router(**cluster.failover_env())
    router.start()
    await ready([router], cluster)
    sent = await publish(nc, cluster, market)
    await stream_holds(js, cluster, sent)
    worker = cluster.worker(0, 1, PARTITION_CHECKPOINT_INTERVAL_SECONDS=1)
    worker.start()
    await ready([worker], cluster)
    await caught_up([worker], cluster)
    # A write may time out on a loaded machine (counted, logged, taken again next interval):
    # wait until the last delivered sequences are checkpointed, then look at how.
    owned = {partition_of(s, cluster.partitions) for s in symbols}
    await _checkpointed(worker, cluster, owned)
    status = await http_json(worker, "/api/v1/partitions", cluster)
    checkpoints = status["checkpoints"]
    assert checkpoints["writes"] > 0, checkpoints
    print(f"intake holds: {checkpoints['intake_holds']}, writes: {checkpoints['writes']}")
    assert status["replay"]["messages"] == sent  # holding the intake lost nothing
