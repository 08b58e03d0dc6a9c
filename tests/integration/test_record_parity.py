"""Record → backtest parity over real NATS.

The bundled capture is published on the market subject to a running ``realtime-strategies
serve`` and a running ``realtime-strategies record`` at once. The backtest of the recording,
with the same configuration (the defaults), gives the very signals the service published:
the same ids, the same payloads, in the same order.
"""

from __future__ import annotations

import asyncio
import gzip
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as NatsClient

from entrypoints.cli import main
from tests.data import CAPTURE, capture_lines
from tests.integration.cli import cli_command
from tests.integration.service_harness import (
    ServiceHarness,
    ServiceProcess,
    Topics,
    async_wait_until,
    processed_total,
    service_env,
    subscribe_signals,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def recorded_lines(folder: Path) -> int:
    """Lines in the (closed) capture files of ``folder``."""
    total = 0
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rb") as handle:
            total += sum(1 for _ in handle)
    return total


async def test_backtest_of_a_recording_gives_the_services_signals(
    harness: ServiceHarness,
    nats_client: NatsClient,
    topics: Topics,
    tmp_path: Path,
    sqlite_store: dict[str, Any],
) -> None:
    # governed: the backtest has no environment layer, defaults on both sides
    env = service_env(topics, governed=True, **sqlite_store)
    service = harness.start("svc", env)
    recording = tmp_path / "recording"
    recorder = ServiceProcess(
        "recorder",
        env,
        harness.log_dir,
        command=tuple(cli_command("record", "--out", str(recording), "--rotate-seconds", "5")),
    )
    harness.services.append(recorder)
    recorder.start()
    await service.wait_ready_async()
    await async_wait_until(
        lambda: recorder.events("nats_recorder_subscribed"),
        30,
        "the recorder's subscriptions",
        context=recorder.describe,
    )
    inbox = await subscribe_signals(nats_client, topics.signals)

    lines = capture_lines()  # the whole capture
    assert CAPTURE.exists()
    for line in lines:
        await nats_client.publish(topics.consumer, line)
    await nats_client.flush()

    def all_processed() -> tuple[float, float, float] | None:
        totals = processed_total(service)
        return totals if totals[0] + totals[1] >= len(lines) else None

    _, invalid, generated = await async_wait_until(
        all_processed, 120, "the service to process the capture", context=service.describe
    )
    await async_wait_until(
        lambda: len(inbox.signals) >= generated,
        30,
        f"{generated:.0f} signals",
        context=service.describe,
    )
    assert invalid == 0
    assert generated > 0

    # Stop the recorder (SIGTERM: drain, close the file), then replay what it wrote.
    def recorded_all() -> bool:
        beats = recorder.events("recorder_heartbeat")
        return bool(beats) and sum(beats[-1]["recorded"].values()) >= len(lines)

    await async_wait_until(
        recorded_all, 60, f"{len(lines)} recorded messages", context=recorder.describe
    )
    recorder.signal(signal.SIGTERM)
    assert recorder.terminate() == 0
    assert recorded_lines(recording) == len(lines)
    assert recorder.events("recorder_stopped")

    out = tmp_path / "backtest"
    args = ["backtest", str(recording), "--out", str(out), "--no-progress", "--no-plot"]
    assert await asyncio.to_thread(main, args) == 0  # its own event loop, in a thread
    replayed = [orjson.loads(line) for line in (out / "signals.jsonl").read_bytes().splitlines()]
    published: list[dict[str, Any]] = [s.payload for s in inbox.signals]
    assert [p["signal_id"] for p in replayed] == [p["signal_id"] for p in published]
    assert replayed == published
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["skipped"] == {}
    assert report["events"] == len(lines)
