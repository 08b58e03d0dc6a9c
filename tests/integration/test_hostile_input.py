"""Hostile input: fuzzed API requests, oversized and deeply nested bodies, auth bypass
attempts, and a flood of unknown symbols through NATS.

* **Schemathesis** against the OpenAPI spec of the real app (``entrypoints.container``'s
  composition root, in-memory config store, a metrics book fed with a few events): every
  operation, positive and negative examples (a bounded, deterministic number), with and
  without the bearer token — never a 5xx.
* **Bodies**: oversized (declared and streamed without ``Content-Length``), deeply nested
  arrays and objects, NaN/Infinity, numbers past the parser's digit limit, invalid UTF-8 —
  answered 413 or 422, never 5xx.
* **Auth bypass** on every mutating operation of the spec (so a new one is covered too): no
  header, other schemes, an empty or wrong token, the token in the query string or a cookie,
  ``X-Forwarded-For: 127.0.0.1`` — 401/403, and nothing is written. The last one also
  against the real service process bound to every interface (``0.0.0.0``), reached through
  a non-loopback address and through loopback, with and without a token configured.
* **Unknown-symbol flood**: a running service (``realtime-strategies serve``, allow-list
  ``TRADING_SYMBOLS``) receives 60,000 messages for 60,000 distinct symbols it does not
  trade; every one is counted as ``unknown_symbol`` and its RSS (``/proc/<pid>/status``)
  stays flat once warmed up.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from adapters.http.routers import WIRED_MODULES
from domain.market import DepthSnapshot, Ticker, Trade
from entrypoints.container import Container, Mode, ReplayOptions, build_container
from entrypoints.settings import Settings
from tests.integration.service_harness import (
    ServiceHarness,
    Topics,
    invalid,
    memory_service_env,
    metric_sum,
    wait_until,
)

TOKEN = "hostile-input-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_EXAMPLES = 25
FLOOD_WARMUP = 10_000
FLOOD = 60_000
FLOOD_MAX_GROWTH_MB = 16.0
REMOTE_CLIENT = ("203.0.113.7", 50_000)


# --- the app under test -------------------------------------------------------------------

REPLAY_FILE = Path(tempfile.mkdtemp(prefix="hostile-input-")) / "capture.jsonl"
REPLAY_FILE.write_text(
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    '"t":1,"p":"61837.63","q":"0.02","T":1723161255342,"m":true}}\n'
)
"""The replay feed of the in-process container (its health check needs a file; the tests
never start the feed)."""


def _depth(symbol: str, t: int, price: float, bid_qty: float, ask_qty: float) -> DepthSnapshot:
    bids = tuple((price - 0.5 * i, bid_qty) for i in range(20))
    asks = tuple((price + 0.5 + 0.5 * i, ask_qty) for i in range(20))
    return DepthSnapshot(symbol, t, bids, asks)


def seeded_container(token: str | None, host: str = "0.0.0.0") -> Container:
    """The composition root on the in-memory store; BTCUSDT/ETHUSDT have depth history,
    trades and a ticker, so the metrics endpoints compute real answers."""
    settings = Settings(
        config_store="memory", admin_api_token=token, fastapi_host=host, trading_symbols="*"
    )
    container = build_container(settings, mode=Mode.LOCAL, replay=ReplayOptions(REPLAY_FILE))
    container.unwire()  # build_container wired the routers; each test wires what it uses
    engine = container.engine()
    t0 = 1_723_161_255_000
    for i in range(120):
        t = t0 + i * 1_000
        engine.process(_depth("BTCUSDT", t, 60_000.0 + i, 3.0 + i % 5, 2.0))
        engine.process(_depth("ETHUSDT", t, 2_600.0 - i, 1.0, 4.0 + i % 3))
        engine.process(
            Trade("BTCUSDT", t + 1, 10_000 + i, 60_000.0 + i, 0.01 * (1 + i % 4), i % 2 == 0)
        )
    engine.process(
        Ticker(
            "BTCUSDT",
            t0 + 200_000,
            60_100.0,
            100.0,
            0.17,
            60_000.0,
            60_500.0,
            59_500.0,
            1_000.0,
            6.0e7,
            60_099.0,
            60_101.0,
        )
    )
    return container


def api_schema(container: Container) -> BaseSchema:
    config = SchemathesisConfig()
    config.projects.default.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", container.api(), config=config)


TOKEN_CONTAINER = seeded_container(TOKEN)
SCHEMA = api_schema(TOKEN_CONTAINER)


@pytest.fixture
def token_api() -> Iterator[Container]:
    """The token-protected app, wired to its container for this test (wiring is global to
    the router modules: another test may have wired its own container since)."""
    TOKEN_CONTAINER.wire(modules=list(WIRED_MODULES))
    try:
        yield TOKEN_CONTAINER
    finally:
        TOKEN_CONTAINER.unwire()


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


# --- 1. schemathesis: no 5xx on any operation ------------------------------------------------


@SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_fuzzed_requests_without_token_never_5xx(case: Any, token_api: Container) -> None:
    case.call_and_validate(checks=[not_a_server_error])


@SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_fuzzed_requests_with_token_never_5xx(case: Any, token_api: Container) -> None:
    case.call_and_validate(headers=dict(AUTH), checks=[not_a_server_error])


# --- 2. oversized and deeply nested bodies ----------------------------------------------------


def _client(container: Container, client: tuple[str, int] = REMOTE_CLIENT) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=container.api(), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


CONFIG_PATH = "/api/v1/strategies/orderbook_skew/config"
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


def _nested_array(depth: int) -> bytes:
    return b'{"parameters":{"buy_threshold":' + b"[" * depth + b"]" * depth + b'},"changed_by":"x"}'


def _nested_object(depth: int) -> bytes:
    return b'{"parameters":' + b'{"a":' * depth + b"1" + b"}" * depth + b',"changed_by":"x"}'


HOSTILE_BODIES: dict[str, bytes] = {
    "nested arrays 20k deep": _nested_array(20_000),
    "nested objects 9k deep": _nested_object(9_000),
    "nested arrays 500 deep": _nested_array(500),
    "NaN": b'{"parameters":{"buy_threshold":NaN},"changed_by":"x"}',
    "Infinity": b'{"parameters":{"buy_threshold":Infinity},"changed_by":"x"}',
    "1e999": b'{"parameters":{"buy_threshold":1e999},"changed_by":"x"}',
    "5000-digit integer": b'{"parameters":{"top_levels":' + b"9" * 5000 + b'},"changed_by":"x"}',
    "invalid UTF-8": b'{"parameters":{"buy_threshold":1.3},"changed_by":"\xff\xfe"}',
    "lone surrogate": b'{"parameters":{"buy_threshold":1.3},"changed_by":"\\ud800"}',
    "truncated": b'{"parameters":{"buy_threshold":1.3',
    "not an object": b"[1,2,3]",
    "empty": b"",
    "huge key count": b'{"parameters":{'
    + b",".join(b'"p%d":1' % i for i in range(5000))
    + b'},"changed_by":"x"}',
    "long string": b'{"parameters":{"buy_threshold":1.3},"changed_by":"' + b"x" * 60_000 + b'"}',
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
async def test_hostile_bodies_are_rejected_not_500(name: str, token_api: Container) -> None:
    body = HOSTILE_BODIES[name]
    service = token_api.config_admin()
    audit_before = await service.audit("orderbook_skew", limit=1000)
    paths = (CONFIG_PATH, f"{CONFIG_PATH}/BTCUSDT", "/api/v1/strategies/orderbook_skew/rollback")
    async with _client(token_api) as client:
        for path in paths:
            response = await client.post(path, content=body, headers=JSON_HEADERS)
            assert response.status_code in (413, 422), (
                name,
                path,
                response.status_code,
                response.text[:300],
            )
            assert response.json()["success"] is False
    assert await service.audit("orderbook_skew", limit=1000) == audit_before  # nothing written


async def test_oversized_bodies_413_declared_and_streamed(token_api: Container) -> None:
    big = b'{"parameters":{"buy_threshold":1.3},"changed_by":"' + b"x" * (8 << 20) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    async with _client(token_api) as client:
        declared = await client.post(CONFIG_PATH, content=big, headers=JSON_HEADERS)
        streamed = await client.post(CONFIG_PATH, content=chunks(), headers=JSON_HEADERS)
        lying = await client.post(
            CONFIG_PATH, content=big, headers={**JSON_HEADERS, "Content-Length": "10"}
        )
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert lying.status_code in (400, 413, 422)


# --- 3. auth bypass attempts on every mutating operation ----------------------------------------


def mutating_operations(container: Container) -> list[tuple[str, str]]:
    """(method, path) of every operation of the spec that is not a GET/HEAD/OPTIONS, with
    path parameters filled in."""
    spec = container.api().openapi()
    filled = {"{strategy_id}": "orderbook_skew", "{symbol}": "BTCUSDT"}
    operations: list[tuple[str, str]] = []
    for path, methods in spec["paths"].items():
        for method in methods:
            if method.upper() in ("GET", "HEAD", "OPTIONS"):
                continue
            concrete = path
            for placeholder, value in filled.items():
                concrete = concrete.replace(placeholder, value)
            assert "{" not in concrete, f"fill the path parameters of {path}"
            operations.append((method.upper(), concrete))
    return operations


MUTATING = mutating_operations(TOKEN_CONTAINER)
VALID_BODY = {
    "parameters": {"buy_threshold": 1.5},
    "changed_by": "attacker",
    "reason": "bypass",
    "to_version": None,
}
BYPASS_ATTEMPTS: dict[str, dict[str, Any]] = {
    "no header": {},
    "basic scheme": {"headers": {"Authorization": f"Basic {TOKEN}"}},
    "token scheme": {"headers": {"Authorization": f"Token {TOKEN}"}},
    "bare token": {"headers": {"Authorization": TOKEN}},
    "bearer without token": {"headers": {"Authorization": "Bearer "}},
    "bearer wrong token": {"headers": {"Authorization": "Bearer not-the-token"}},
    "bearer token prefix": {"headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}},
    "bearer token plus suffix": {"headers": {"Authorization": f"Bearer {TOKEN}x"}},
    "token in query": {"params": {"token": TOKEN, "access_token": TOKEN, "api_key": TOKEN}},
    "token in cookie": {"headers": {"Cookie": f"token={TOKEN}; access_token={TOKEN}"}},
    "token in other header": {"headers": {"X-Api-Key": TOKEN, "X-Admin-Token": TOKEN}},
    "forwarded for loopback": {
        "headers": {
            "X-Forwarded-For": "127.0.0.1",
            "X-Real-IP": "127.0.0.1",
            "Forwarded": "for=127.0.0.1",
        }
    },
    "forwarded for loopback, wrong token": {
        "headers": {"X-Forwarded-For": "127.0.0.1", "Authorization": "Bearer nope"}
    },
}


@pytest.mark.parametrize(("method", "path"), MUTATING, ids=[f"{m} {p}" for m, p in MUTATING])
async def test_auth_bypass_attempts_rejected(method: str, path: str, token_api: Container) -> None:
    audit_before = await token_api.config_admin().audit("orderbook_skew", limit=1000)
    async with _client(token_api) as client:
        for name, attempt in BYPASS_ATTEMPTS.items():
            response = await client.request(
                method,
                path,
                json=VALID_BODY if method == "POST" else None,
                headers=attempt.get("headers"),
                params=attempt.get("params"),
            )
            # A token in the query string is refused before authentication even runs:
            # unknown query parameters are a 422 on every endpoint.
            refused = (401, 403, 422) if "params" in attempt else (401, 403)
            assert response.status_code in refused, (
                name,
                response.status_code,
                response.text[:200],
            )
            if response.status_code == 401:
                assert response.headers["www-authenticate"].lower().startswith("bearer")
            assert TOKEN not in response.text
    assert await token_api.config_admin().audit("orderbook_skew", limit=1000) == audit_before


@pytest.mark.parametrize(("method", "path"), MUTATING, ids=[f"{m} {p}" for m, p in MUTATING])
async def test_no_token_on_every_interface_locks_mutations(method: str, path: str) -> None:
    """No token and bound to 0.0.0.0: mutations are off for everyone, even a loopback peer
    and a forged ``X-Forwarded-For: 127.0.0.1``."""
    container = seeded_container(None, host="0.0.0.0")
    container.wire(modules=list(WIRED_MODULES))
    try:
        for peer in (REMOTE_CLIENT, ("127.0.0.1", 50_000)):
            async with _client(container, peer) as client:
                response = await client.request(
                    method,
                    path,
                    json=VALID_BODY if method == "POST" else None,
                    headers={"X-Forwarded-For": "127.0.0.1", "Authorization": f"Bearer {TOKEN}"},
                )
            assert response.status_code == 403, (peer, response.status_code, response.text[:200])
    finally:
        container.unwire()


# --- 3b. the same against the real process (uvicorn's proxy-header handling included) -------


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the peer the server then sees)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
            address: str = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.slow
@pytest.mark.parametrize("token", [TOKEN, ""], ids=["token", "no-token"])
def test_forwarded_for_loopback_from_outside_is_rejected(
    token: str, harness: ServiceHarness
) -> None:
    env = memory_service_env(Topics.unique(), fastapi_host="0.0.0.0", admin_api_token=token)
    service = harness.start("api", env)
    service.wait_ready()
    hosts = ["127.0.0.1"]
    outside = non_loopback_address()
    if outside is not None:
        hosts.append(outside)
    forged = {
        "X-Forwarded-For": "127.0.0.1",
        "X-Real-IP": "127.0.0.1",
        "Forwarded": "for=127.0.0.1;proto=https",
        "X-Forwarded-Proto": "https",
    }
    for host in hosts:
        base = f"http://{host}:{service.port}"
        for method, path in MUTATING:
            response = httpx.request(
                method,
                base + path,
                json=VALID_BODY if method == "POST" else None,
                headers=forged,
                timeout=5.0,
            )
            expected = {401} if token else {403}
            assert response.status_code in expected, (host, method, path, response.text[:200])
    body = service.get_json("/api/v1/strategies/orderbook_skew/audit")
    assert body["data"] == []


# --- 4. a flood of unknown symbols through NATS -------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no VmRSS for {pid}")


def flood_message(index: int, prefix: str) -> bytes:
    """A valid trade (or, one in four, a depth snapshot) for a symbol nobody trades."""
    symbol = f"{prefix}{index:07d}USDT"
    if index % 4 == 0:
        data: dict[str, Any] = {
            "lastUpdateId": index,
            "bids": [["100.0", "1.0"], ["99.9", "2.0"]],
            "asks": [["100.1", "1.0"], ["100.2", "2.0"]],
        }
        stream = f"{symbol.lower()}@depth20@100ms"
    else:
        data = {
            "e": "trade",
            "E": 1_723_161_255_343 + index,
            "s": symbol,
            "t": index,
            "p": "100.5",
            "q": "0.1",
            "T": 1_723_161_255_343 + index,
            "m": index % 2 == 0,
        }
        stream = f"{symbol.lower()}@trade"
    envelope = {
        "stream": stream,
        "data": data,
        "timestamp": "2024-08-08T23:54:15.343Z",
        "message_id": str(uuid.uuid4()),
        "source": "hostile",
        "version": "1.0",
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


async def publish_flood(nats_url: str, subject: str, start: int, count: int, prefix: str) -> None:
    nc = await nats.connect(nats_url, name="hostile-flood")
    try:
        for index in range(start, start + count):
            await nc.publish(subject, flood_message(index, prefix))
            if index % 2_000 == 0:
                await nc.flush()  # paced by the server's round trip: no slow consumer
        await nc.flush()
    finally:
        await nc.close()


@pytest.mark.slow
async def test_unknown_symbol_flood_keeps_memory_flat(
    nats_url: str, harness: ServiceHarness
) -> None:
    topics = Topics.unique()
    env = memory_service_env(
        topics,
        trading_symbols="BTCUSDT,ETHUSDT,BNBUSDT",
        nats_dead_letter_topic="",
        log_level="WARNING",
    )
    service = harness.start("flood", env)
    await service.wait_ready_async()
    assert service.process is not None
    pid = service.process.pid
    prefix = "Q" + uuid.uuid4().hex[:4].upper()

    def counted(expected: int) -> bool:
        return invalid(service, "unknown_symbol") >= expected

    await publish_flood(nats_url, topics.consumer, 0, FLOOD_WARMUP, prefix)
    await asyncio.to_thread(
        wait_until,
        lambda: counted(FLOOD_WARMUP),
        60,
        "warm-up flood counted",
        context=service.describe,
    )
    rss_before = rss_mb(pid)
    started = time.monotonic()
    await publish_flood(nats_url, topics.consumer, FLOOD_WARMUP, FLOOD, prefix)
    await asyncio.to_thread(
        wait_until,
        lambda: counted(FLOOD_WARMUP + FLOOD),
        120,
        "flood counted",
        context=service.describe,
    )
    rss_after = rss_mb(pid)
    metrics = service.metrics()
    assert invalid(service, "unknown_symbol") == FLOOD_WARMUP + FLOOD
    assert metric_sum(metrics, "realtime_strategies_messages_processed_total") == 0
    assert metric_sum(metrics, "realtime_strategies_signals_generated_total") == 0
    assert rss_after - rss_before < FLOOD_MAX_GROWTH_MB, (
        f"RSS {rss_before:.1f} MB -> {rss_after:.1f} MB over {FLOOD:,} unknown symbols "
        f"({time.monotonic() - started:.1f} s)"
    )
    # still serving: the API answers and the log carries no traceback
    assert service.get_json("/api/v1/metrics/summary")["success"] is True
    assert not [r for r in service.logs() if r.get("level") == "error"]
