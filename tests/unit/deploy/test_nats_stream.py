"""deploy/nats/signals-stream.json on a real NATS server: accepted as is by the JetStream API
(what ``nats stream add --config`` sends), and it deduplicates by ``Nats-Msg-Id``.

Needs the local nats-server with JetStream (``make services``): skipped when it is not
running, except in CI. The stream is created under a unique name and subject prefix, with
one replica (a single server), and deleted afterwards; everything else is the file's.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from adapters.nats.signal_sink import MSG_ID_HEADER
from tests.unit.deploy.support import NATS_STREAM_JSON

pytestmark = pytest.mark.integration

NATS_HOST, NATS_PORT = "127.0.0.1", 4222


def _nats_running() -> bool:
    try:
        with socket.create_connection((NATS_HOST, NATS_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    if not _nats_running():
        message = f"no NATS server on {NATS_HOST}:{NATS_PORT}: run `make services`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    nc = await nats.connect(f"nats://{NATS_HOST}:{NATS_PORT}", connect_timeout=2)
    try:
        yield nc
    finally:
        await nc.drain()


async def _api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = b"" if body is None else json.dumps(body).encode()
    reply = await nc.request(f"$JS.API.{subject}", payload, timeout=5)
    answer: dict[str, Any] = json.loads(reply.data)
    assert "error" not in answer, answer
    return answer


async def test_stream_config_is_accepted_and_deduplicates(client: Client) -> None:
    config = json.loads(NATS_STREAM_JSON.read_text(encoding="utf-8"))
    tag = uuid.uuid4().hex[:10]
    prefix = f"deploytest{tag}"
    (original_subject,) = config["subjects"]
    config |= {
        "name": f"{config['name']}_{tag}",
        "subjects": [f"{prefix}.{original_subject}"],
        "num_replicas": 1,
    }
    created = await _api(client, f"STREAM.CREATE.{config['name']}", config)
    try:
        stored = created["config"]
        assert stored["duplicate_window"] == config["duplicate_window"]
        assert stored["max_age"] == config["max_age"]
        assert stored["subjects"] == config["subjects"]

        subject = f"{prefix}.signals.trading.orderbook_skew"
        js = client.jetstream()
        first = await js.publish(subject, b'{"n": 1}', headers={MSG_ID_HEADER: "sig-1"})
        again = await js.publish(subject, b'{"n": 1}', headers={MSG_ID_HEADER: "sig-1"})
        assert not first.duplicate
        assert again.duplicate
        assert again.seq == first.seq
        # core NATS publish (NATS_SIGNAL_JETSTREAM=false): stored once as well
        for _ in range(3):
            await client.publish(subject, b'{"n": 2}', headers={MSG_ID_HEADER: "sig-2"})
        await client.flush()
        other = await js.publish(subject, b'{"n": 3}', headers={MSG_ID_HEADER: "sig-3"})
        assert not other.duplicate

        info = await _api(client, f"STREAM.INFO.{config['name']}")
        assert info["state"]["messages"] == 3
    finally:
        await _api(client, f"STREAM.DELETE.{config['name']}")
