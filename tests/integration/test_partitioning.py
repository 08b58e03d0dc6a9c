"""Symbol-partitioned scaling on the real NATS: same signals with 1 or N workers, and after a
worker crash (docs/adr/0010-symbol-partitioning.md).

The workload (:class:`tests.integration.partition_cluster.Workload`) is the bundled capture
fanned out to 50 symbols plus dominance, quotes and on-chain inputs — 677,560 messages.
The reference is the single-process code path run in this process (the backtest's path:
decoder → ``SignalEngine`` of the composition root, in-memory config), and the real
single-process service is checked against it too. Every partitioned run is separate
processes: ``realtime-strategies route`` and ``realtime-strategies serve`` workers, with
subjects and streams unique to the run. Signals are read back from the JetStream signal
stream (deduplicated by ``Nats-Msg-Id``) and, for duplicates, also from a plain core
subscription.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, StreamConfig
from prometheus_client.parser import text_string_to_metric_families

from adapters.wire.binance import iso_to_epoch_ms
from application.partitioning import owner_of
from tests.integration.partition_cluster import (
    Cluster,
    Proc,
    Workload,
    single_process_signals,
)
from tests.integration.service_harness import REPO_ROOT, metric_sum, parse_metrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = TypeVar("T")
Signals = dict[str, dict[str, Any]]
PHASE_TIMEOUT_S = 300.0
PACING_CHUNK = 10_000
"""Messages the single-process test publishes ahead of what the service has processed."""
DRAIN_TIMEOUT_S = 420.0
TEST_TIMEOUT_S = 1500


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workload() -> Workload:
    return Workload.build()


@pytest.fixture(scope="module")
def reference(workload: Workload) -> Signals:
    """The single-process code path in this process: the composition root's decoder and
    engine (in-memory config), every message in publication order."""
    published = asyncio.run(single_process_signals(workload.messages()))
    signals: Signals = {s["signal_id"]: s for s in published}
    assert len(signals) == len(published), "two signals with one id"
    strategies = Counter(s["strategy_id"] for s in signals.values())
    # every routing rule is exercised: per-symbol data, dominance on BTCUSDT, on-chain on
    # <ASSET>USDT, quotes on their symbol
    assert {"orderbook_skew", "trade_momentum", "btc_dominance", "onchain_metrics"} <= set(
        strategies
    ), strategies
    assert strategies["cross_exchange_spread"] == 5, strategies
    assert strategies["onchain_metrics"] == 6, strategies
    return signals


@pytest.fixture(autouse=True)
async def _delete_streams(cluster: Cluster) -> Any:
    yield
    await cluster.delete_streams()


# --- helpers -----------------------------------------------------------------------------------


def free_port_block(count: int) -> int:
    """A base port (a multiple of 10) with ``count`` free ports from it, below the kernel's
    ephemeral range (32768+), where other processes' outgoing connections cannot take one
    between this check and the workers binding them."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(20_000, 32_000, 10)
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


async def wait_for(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float,  # noqa: ASYNC109
    what: str,
    cluster: Cluster,
    interval: float = 0.5,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s: {what}\n{cluster.describe()}")
        await asyncio.sleep(interval)


async def http_json(proc: Proc, path: str, cluster: Cluster | None = None) -> Any:
    """The JSON answer of ``proc`` (a busy process may miss one request on a loaded machine:
    retried within PHASE_TIMEOUT_S; a process that exited fails at once)."""

    async def answer() -> Any:
        response = await asyncio.to_thread(proc.get, path)
        if response is None or response.status_code != 200:
            return None
        return [response.json()]

    if cluster is None:
        return await asyncio.to_thread(proc.json, path)
    return (await wait_for(answer, PHASE_TIMEOUT_S, f"{proc.name} {path}", cluster))[0]


async def ready(procs: Sequence[Proc], cluster: Cluster, within: float = 120.0) -> None:
    for proc in procs:

        async def probe(p: Proc = proc) -> bool:
            return await asyncio.to_thread(p.ready)

        await wait_for(probe, within, f"{proc.name} ready", cluster)


async def publish(nc: Client, cluster: Cluster, messages: Iterable[tuple[str, bytes]]) -> int:
    topics = {
        "binance": cluster.raw_topic,
        "dominance": cluster.dominance_topic,
        "quotes": cluster.quotes_topic,
        "onchain": cluster.onchain_topic,
    }
    count = 0
    for kind, raw in messages:
        await nc.publish(topics[kind], raw)
        count += 1
        if count % 2000 == 0:
            await nc.flush(timeout=30)
    await nc.flush(timeout=30)
    return count


def binance(raws: Iterable[bytes]) -> Iterator[tuple[str, bytes]]:
    for raw in raws:
        yield "binance", raw


async def stream_holds(js: JetStreamContext, cluster: Cluster, expected: int) -> None:
    """Wait until the router stored ``expected`` messages in the market-data stream."""

    async def stored() -> bool:
        info = await js.stream_info(cluster.market_stream)
        assert info.state.last_seq <= expected, "more messages stored than published"
        return info.state.last_seq == expected

    await wait_for(stored, PHASE_TIMEOUT_S, f"{expected} messages routed", cluster)


async def caught_up(workers: Sequence[Proc], cluster: Cluster) -> None:
    for worker in workers:

        async def done(w: Proc = worker) -> bool:
            response = await asyncio.to_thread(w.get, "/api/v1/partitions")
            return (
                response is not None
                and response.status_code == 200
                and response.json()["caught_up"]
            )

        await wait_for(done, DRAIN_TIMEOUT_S, f"{worker.name} caught up", cluster, interval=1.0)


async def read_signals(js: JetStreamContext, cluster: Cluster) -> list[tuple[str, bytes]]:
    """Every message of the signal stream: (Nats-Msg-Id, payload), once it stops growing."""

    async def settled() -> int | None:
        first = (await js.stream_info(cluster.signal_stream)).state.messages
        await asyncio.sleep(1.5)
        second = (await js.stream_info(cluster.signal_stream)).state.messages
        return second if first == second and second > 0 else None

    count = await wait_for(settled, 60.0, "signal stream settled", cluster)
    sub = await js.subscribe(
        f"{cluster.signal_topic}.>",
        stream=cluster.signal_stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    out: list[tuple[str, bytes]] = []
    while len(out) < count:
        msg = await sub.next_msg(timeout=10)
        out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), msg.data))
    await sub.unsubscribe()
    return out


def assert_same_signals(stored: list[tuple[str, bytes]], reference: Signals) -> None:
    ids = Counter(msg_id for msg_id, _ in stored)
    duplicates = {k: n for k, n in ids.items() if n > 1}
    assert not duplicates, f"duplicates in the signal stream: {list(duplicates)[:5]}"
    got = {msg_id: orjson.loads(payload) for msg_id, payload in stored}
    for msg_id, payload in got.items():
        assert payload["signal_id"] == msg_id
    missing = sorted(set(reference) - set(got))
    extra = sorted(set(got) - set(reference))
    described = (
        f"{len(missing)} reference signals missing, {len(extra)} unexpected; e.g. missing "
        f"{[reference[i]['strategy_id'] + ':' + reference[i]['symbol'] for i in missing[:5]]}, "
        f"unexpected {[got[i]['strategy_id'] + ':' + got[i]['symbol'] for i in extra[:5]]}"
    )
    assert not missing, described
    assert not extra, described
    different = [i for i in reference if got[i] != reference[i]]
    assert not different, (
        f"{len(different)} payloads differ, e.g. {got[different[0]]} != {reference[different[0]]}"
    )


class CoreSubscriber:
    """A plain subscription to the signal subjects: counts what a non-JetStream consumer (the
    trade engine's queue group) would receive."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.payloads: dict[str, set[bytes]] = {}

    async def on_message(self, msg: Msg) -> None:
        signal_id = (msg.headers or {}).get("Nats-Msg-Id", "")
        self.ids[signal_id] += 1
        self.payloads.setdefault(signal_id, set()).add(msg.data)

    @property
    def duplicates(self) -> dict[str, int]:
        return {k: n for k, n in self.ids.items() if n > 1}


async def ensure_signal_stream(js: JetStreamContext, cluster: Cluster) -> None:
    await js.add_stream(
        StreamConfig(
            name=cluster.signal_stream,
            subjects=[f"{cluster.signal_topic}.>"],
            duplicate_window=300.0,
            max_age=3600.0,
        )
    )


async def route_workload(
    nc: Client,
    cluster: Cluster,
    workload: Workload,
    routers: list[Proc],
    procs: list[Proc],
    during_phase3: Callable[[list[Proc], list[Proc]], Awaitable[None]] | None = None,
) -> None:
    """Start the routers and workers, publish the workload phase by phase (each one stored in
    the market-data stream before the next) and wait until every worker has caught up.
    ``during_phase3(workers, routers)`` runs between the halves of phase 3."""
    js = nc.jetstream()
    for proc in [*routers, *procs]:
        proc.start()
    await ready([*routers, *procs], cluster)
    published = await publish(nc, cluster, binance(workload.phase1))
    await stream_holds(js, cluster, published)
    published += await publish(nc, cluster, workload.phase2)
    await stream_holds(js, cluster, published)
    if during_phase3 is None:
        published += await publish(nc, cluster, binance(workload.phase3))
    else:
        half = len(workload.phase3) // 2
        published += await publish(nc, cluster, binance(workload.phase3[:half]))
        await during_phase3(procs, routers)
        published += await publish(nc, cluster, binance(workload.phase3[half:]))
    assert published == workload.total
    await stream_holds(js, cluster, published)
    await caught_up(procs, cluster)


def assert_stored_once(stats: Sequence[Mapping[str, Any]], total: int) -> None:
    """Routers' acks of ``total`` messages, each stored once: acknowledged as stored at most
    once, and each acknowledged as stored or, re-sent (after an ack timeout, or read again
    from the input stream) once its first copy was stored, as a duplicate."""
    acked = sum(s["acked"] for s in stats)
    assert acked <= total <= acked + sum(s["duplicates"] for s in stats), stats


async def run_partitioned(
    nc: Client,
    cluster: Cluster,
    workload: Workload,
    workers: int,
    *,
    failover: bool = False,
    during_phase3: Callable[[list[Proc], list[Proc]], Awaitable[None]] | None = None,
) -> tuple[list[tuple[str, bytes]], list[Proc], list[Proc]]:
    """Route and process the workload; ``failover``: a leader and a standby router (input
    stream + KV lease) instead of one plain router. ``during_phase3(workers, routers)`` runs
    between the halves of phase 3."""
    js = nc.jetstream()
    # Routers read the raw input from an input stream (ADR 19) — a router reading core NATS
    # loses what it misses when the server cuts it off as a slow consumer, which a loaded
    # machine makes happen; ``failover`` adds a standby.
    names = ["router-a", "router-b"] if failover else ["router"]
    routers = [cluster.router(name, **cluster.failover_env()) for name in names]
    procs = [cluster.worker(i, workers) for i in range(workers)]
    await route_workload(nc, cluster, workload, routers, procs, during_phase3)
    for router in routers:
        if not router.running:
            continue  # killed by the test
        router_stats = await http_json(router, "/api/v1/router", cluster)
        assert router_stats["unroutable"] == {}
        assert router_stats["publish_errors"] == {}
        if not failover:
            assert_stored_once([router_stats], workload.total)
    return await read_signals(js, cluster), procs, routers


# --- tests -------------------------------------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_single_process_service_gives_the_reference_signals(
    nc: Client, cluster: Cluster, workload: Workload, reference: Signals
) -> None:
    """The default mode (queue group on the raw subject) against the in-process reference —
    the baseline the partitioned runs must equal."""
    js = nc.jetstream()
    await ensure_signal_stream(js, cluster)
    service = cluster.single_process()
    service.start()
    await ready([service], cluster)

    async def received(expected: int) -> None:
        async def count() -> bool:
            text = await asyncio.to_thread(lambda: service.get("/metrics"))
            assert text is not None
            total = 0.0
            for family in text_string_to_metric_families(text.text):
                if family.name in (
                    "realtime_strategies_messages_processed",
                    "realtime_strategies_messages_invalid",
                ):
                    total += sum(s.value for s in family.samples if s.name.endswith("_total"))
            return total >= expected

        await wait_for(count, PHASE_TIMEOUT_S, f"{expected} messages received", cluster)

    # Core NATS drops what a slow consumer has not taken (64 MiB pending): the phases go out
    # in chunks, at most PACING_CHUNK messages ahead of what the service has processed, so
    # that a loaded machine compares signals rather than losing messages.
    published = 0
    for phase in (binance(workload.phase1), workload.phase2, binance(workload.phase3)):
        messages = list(phase)
        for start in range(0, len(messages), PACING_CHUNK):
            published += await publish(nc, cluster, messages[start : start + PACING_CHUNK])
            await received(published - PACING_CHUNK)
        await received(published)
    assert_same_signals(await read_signals(js, cluster), reference)


@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_router_and_one_worker_give_the_single_process_signals(
    nc: Client, cluster: Cluster, workload: Workload, reference: Signals
) -> None:
    stored, _, _ = await run_partitioned(nc, cluster, workload, workers=1)
    assert_same_signals(stored, reference)


@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_two_sharded_routers_and_three_workers_give_the_single_process_signals(
    nc: Client, tmp_path: Path, nats_url: str, workload: Workload, reference: Signals
) -> None:
    """Scale-out on both roles: 2 order-keeping (sharded) routers, 3 workers."""
    # Worker API ports base+index, so that any worker can forward a metrics read to the owner.
    base = free_port_block(3)
    cluster = Cluster(tmp_path, nats_url)
    template = f"http://127.0.0.1:{base // 10}{{index}}"
    try:
        js = nc.jetstream()
        routers = [
            cluster.router(
                f"router-{i}", ROUTER_SHARDS=2, ROUTER_SHARD_INDEX=i, **cluster.failover_env()
            )
            for i in range(2)
        ]
        procs = [
            cluster.worker(i, 3, FASTAPI_PORT=base + i, WORKER_URL_TEMPLATE=template)
            for i in range(3)
        ]
        await route_workload(nc, cluster, workload, routers, procs)
        assert_same_signals(await read_signals(js, cluster), reference)
        stats = [await http_json(r, "/api/v1/router", cluster) for r in routers]
        assert_stored_once(stats, workload.total)  # each by its shard
        for index, s in enumerate(stats):
            assert s["shard"] == index
            assert s["role"] == "leader"
            assert s["received"] >= workload.total  # every shard reads the whole input
            assert s["publish_errors"] == {}

        # Each worker owns its partitions only; any worker answers for any symbol.
        statuses = [await http_json(p, "/api/v1/partitions", cluster) for p in procs]
        owned = [set(s["partitions"]) for s in statuses]
        assert set().union(*owned) == set(range(16))
        assert sum(len(o) for o in owned) == 16
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "KAVAUSDT"):
            owner = owner_of(symbol, 16, 3)
            direct = await http_json(procs[owner], f"/api/v1/metrics/depth/{symbol}")
            for proc in procs:
                response = await asyncio.to_thread(proc.get, f"/api/v1/metrics/depth/{symbol}")
                assert response is not None
                assert response.status_code == 200
                assert response.json()["spread"] == direct["spread"]
        summary = await http_json(procs[1], "/api/v1/metrics/summary")
        assert summary["symbols"] == 50
        page = await http_json(procs[2], "/api/v1/metrics/all?limit=50&sort_by=net_pressure")
        assert page["total"] == 50
        assert len({item["symbol"] for item in page["items"]}) == 50
    finally:
        cluster.stop()
        await cluster.delete_streams()


@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_a_killed_worker_resumes_its_partitions_without_loss_or_duplicates(
    nc: Client, cluster: Cluster, workload: Workload, reference: Signals
) -> None:
    core = CoreSubscriber()
    await nc.subscribe(f"{cluster.signal_topic}.*", cb=core.on_message)
    victim_index = owner_of("BTCUSDT", 16, 3)  # owns the dominance and BTC whale inputs too
    restarted: list[Proc] = []
    # The capture runs at many times real speed and the machine may be loaded: the victim can
    # be minutes behind when it dies. What its successor recovers is bounded by
    # PARTITION_RECOVER_SECONDS (signals of older messages are dropped as stale, by design and
    # counted; unit-tested): set to the replay horizon so that this test checks the takeover,
    # not the staleness policy — and asserts below that nothing was dropped as stale.
    cluster.worker_env["PARTITION_RECOVER_SECONDS"] = "3600"
    # The takeover by replay: restoring a checkpoint (test_checkpoints.py takes that path) would
    # replay only what followed the victim's last snapshot, and whether the victim published a
    # signal after that snapshot depends on the timing, so the replay's suppression of what was
    # already published (asserted below) would be exercised only sometimes.
    cluster.worker_env["PARTITION_CHECKPOINT_RESTORE"] = "false"

    async def crash_and_restart(procs: list[Proc], routers: list[Proc]) -> None:
        victim = procs[victim_index]
        await asyncio.sleep(1.0)  # mid-stream: it has work queued and signals to publish
        victim.kill()
        await asyncio.sleep(1.0)
        victim.start()  # same pod name (HOSTNAME ordinal), fresh process
        restarted.append(victim)

    stored, procs, _ = await run_partitioned(
        nc, cluster, workload, workers=3, during_phase3=crash_and_restart
    )
    assert_same_signals(stored, reference)
    await nc.flush()
    await asyncio.sleep(1.0)
    assert set(core.ids) == set(reference)
    resent = {
        p.name: metric_sum(
            parse_metrics((await asyncio.to_thread(p.get, "/metrics")).text),  # type: ignore[union-attr]
            "realtime_strategies_signal_publish_duplicates_total",
        )
        for p in procs
    }
    # A duplicate here would be a publish re-sent after its ack timed out (the stream flags
    # it: the workers' duplicate acks) or a republish by the successor; both carry the same
    # payload. The failure message says which.
    assert all(len(copies) == 1 for copies in core.payloads.values())
    assert not core.duplicates, (
        f"core subscribers got duplicates: {list(core.duplicates.items())[:5]}; "
        f"duplicate acks per worker (the victim's first life not counted): {resent}"
    )
    status = await http_json(restarted[0], "/api/v1/partitions", cluster)
    replay = status["replay"]
    print(f"restarted {restarted[0].name}: replay {replay}, live {status['live_messages']}")
    assert replay["complete"]
    assert replay["boundary_seq"] > 0
    assert replay["messages"] > 0
    assert replay["published_ids_loaded"] > 0  # the victim had published before it died
    assert replay["signals_suppressed"] > 0  # rebuilt its state without re-publishing
    assert replay["signals_suppressed_stale"] == 0
    assert restarted[0].starts == 2


async def router_leader(routers: Sequence[Proc], cluster: Cluster) -> Proc:
    """The one router of ``routers`` that holds the lease (the others are standbys)."""

    async def one_leader() -> Proc | None:
        roles = []
        for router in routers:
            response = await asyncio.to_thread(router.get, "/api/v1/router")
            if response is None or response.status_code != 200:
                return None
            roles.append(response.json()["role"])
        leaders = [r for r, role in zip(routers, roles, strict=True) if role == "leader"]
        return (
            leaders[0] if len(leaders) == 1 and roles.count("standby") == len(roles) - 1 else None
        )

    return await wait_for(one_leader, PHASE_TIMEOUT_S, "one router leader", cluster)


@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_a_killed_worker_and_a_killed_router_leader_give_the_single_process_signals(
    nc: Client, cluster: Cluster, workload: Workload, reference: Signals
) -> None:
    """Issue 12: a standby router per shard (KV lease, input stream). SIGKILL the router
    leader and a worker mid-run: 3 workers give the single-process signals (which one worker
    gives too, test above), each once on the stream and on a core subscription."""
    core = CoreSubscriber()
    await nc.subscribe(f"{cluster.signal_topic}.*", cb=core.on_message)
    victim_index = owner_of("BTCUSDT", 16, 3)
    cluster.worker_env["PARTITION_RECOVER_SECONDS"] = "3600"  # see the test above
    killed: list[tuple[Proc, float]] = []

    async def crash(procs: list[Proc], routers: list[Proc]) -> None:
        leader = await router_leader(routers, cluster)
        await asyncio.sleep(1.0)  # mid-stream
        leader.kill()
        killed.append((leader, time.time()))
        procs[victim_index].kill()
        await asyncio.sleep(1.0)
        procs[victim_index].start()

    stored, procs, routers = await run_partitioned(
        nc, cluster, workload, workers=3, failover=True, during_phase3=crash
    )
    assert_same_signals(stored, reference)
    await nc.flush()
    await asyncio.sleep(1.0)
    assert set(core.ids) == set(reference)
    assert not core.duplicates, f"core subscribers got duplicates: {list(core.duplicates)[:5]}"
    ((dead, killed_at),) = killed
    (survivor,) = [r for r in routers if r is not dead]
    status = await http_json(survivor, "/api/v1/router", cluster)
    assert status["role"] == "leader"
    takeover = status["last_takeover"]
    assert status["input_gaps"] == 0
    print(
        f"router failover: {status['first_led_at_unix'] - killed_at:.2f} s after the SIGKILL, "
        f"resumed after input seq {takeover['resumed_after_seq']}, "
        f"{status['skipped_stored']} found already stored, {status['duplicates']} re-sent "
        f"and stored once, {status['terms']} term(s)"
    )
    replay = (await http_json(procs[victim_index], "/api/v1/partitions", cluster))["replay"]
    assert replay["complete"]
    assert replay["signals_suppressed_stale"] == 0


@pytest.mark.timeout(TEST_TIMEOUT_S)
async def test_two_workers_keep_the_per_minute_cap_for_the_whole_deployment(
    nc: Client, cluster: Cluster, workload: Workload
) -> None:
    """ADR 25: each worker's governance sees only its own symbols; the per-minute cap holds
    for the deployment because the workers share one budget. Nothing else holds signals back
    (no per-symbol cap, no confidence floor), so without the budget
    (``SIGNAL_BUDGET_BUCKET=""``) each worker takes ``cap`` a minute and this fails."""
    cap = 3
    cluster.worker_env.update(
        {"MAX_SIGNALS_PER_MINUTE": str(cap), "SIGNAL_BUDGET_HORIZON_SECONDS": "3600"}
    )
    stored, workers, _ = await run_partitioned(nc, cluster, workload, workers=2)
    signals = [orjson.loads(payload) for _, payload in stored]
    owners = {owner_of(signal["symbol"], cluster.partitions, 2) for signal in signals}
    assert owners == {0, 1}, "both workers publish"
    times = sorted(iso_to_epoch_ms(signal["timestamp"]) for signal in signals)
    busiest = max(sum(start <= t < start + 60_000 for t in times) for start in times)
    # A take that fails publishes on the worker's own cap (ADR 25): name those in a failure.
    unavailable = [
        line
        for worker in workers
        for line in worker.log_path.read_text(errors="replace").splitlines()
        if "signal_budget_unavailable" in line
    ]
    assert busiest <= cap, (
        f"{busiest} signals within a minute of event time: {times}; takes that failed: "
        f"{unavailable}"
    )


async def test_deployed_market_data_stream_definition_is_accepted(nc: Client) -> None:
    """deploy/partitioned/marketdata-stream.json as `nats stream add --config` sends it (one
    replica on this single server, a unique name and subject)."""
    config = orjson.loads((REPO_ROOT / "deploy/partitioned/marketdata-stream.json").read_bytes())
    tag = uuid.uuid4().hex[:10]
    config |= {"name": f"{config['name']}_{tag}", "subjects": [f"dt{tag}.marketdata.>"]}
    config["num_replicas"] = 1
    reply = await nc.request(
        f"$JS.API.STREAM.CREATE.{config['name']}", orjson.dumps(config), timeout=5
    )
    answer = orjson.loads(reply.data)
    assert "error" not in answer, answer
    try:
        assert answer["config"]["max_age"] == config["max_age"]
        ack = await nc.jetstream().publish(f"dt{tag}.marketdata.3.BTCUSDT.trade", b"{}")
        assert ack.stream == config["name"]
    finally:
        await nc.jetstream().delete_stream(config["name"])
