"""The per-minute signal budget a partitioned deployment shares, in a JetStream Key-Value
bucket (:class:`application.ports.SignalBudget`, ADR 25).

One key holds the window: the event times (ms) and ids of the signals the deployment published
in the last minutes (up to a minute plus ``horizon_seconds`` either side of the signal being
taken), a JSON list of ``[time, signal_id]`` pairs kept by
:func:`domain.governance.take_slot` (a bare time, as the first version wrote, reads as a slot
of an unknown signal). A take reads the key,
decides, and writes the new window with a compare-and-set on the revision it read; when
another worker wrote in between, it reads again. So two workers never both take the last
slot, and ``max_signals_per_minute`` holds for the deployment as it does in one process.

Signals are rare (tens a day), so the round trip per signal is not on the market-data path's
budget. While NATS is away a take fails at once (``StoreUnavailableError``) instead of
waiting for a timeout, and a take never lasts longer than ``timeout`` (2 s): the run loop then
publishes on governance's process-local cap alone.
A value that is not such a list (written by something else) counts as an empty window and
is overwritten.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from adapters.nats.connection import NatsConnection
from adapters.nats.jetstream_streams import ensure_bucket
from application.ports import StoreUnavailableError
from domain.governance import SLOT_HORIZON_MS, Slot, take_slot

_log = structlog.get_logger(__name__)

KEY = "minute"
STATS = ("taken", "refused", "conflicts", "malformed")
"""The counts of :attr:`NatsSignalBudget.stats` (all present from the start)."""


class NatsSignalBudget:
    """The shared window in ``bucket`` (module doc). One instance per process."""

    def __init__(
        self,
        connection: NatsConnection,
        *,
        bucket: str,
        create_bucket: bool = True,
        replicas: int = 1,
        horizon_seconds: float = SLOT_HORIZON_MS / 1000,
        timeout: float = 2.0,
        attempts: int = 64,
    ) -> None:
        if not bucket or attempts < 1 or horizon_seconds < 0:
            raise ValueError(
                f"a bucket name, attempts >= 1 and horizon_seconds >= 0 are needed, got "
                f"{bucket!r}, {attempts}, {horizon_seconds}"
            )
        self._connection = connection
        self.bucket = bucket
        self.create_bucket = create_bucket
        self.replicas = replicas
        self.horizon_ms = round(horizon_seconds * 1000)
        self.timeout = timeout
        self.attempts = attempts
        self._kv: KeyValue | None = None
        self.stats: Counter[str] = Counter(dict.fromkeys(STATS, 0))
        """What this worker's takes did: ``taken``, ``refused``, ``conflicts`` (compare-and-sets
        lost to another worker's write), ``malformed`` (foreign values overwritten)."""

    async def take(self, time_ms: int, cap: int, signal_id: str = "") -> bool:
        """Take a slot for a signal stamped ``time_ms`` (the port's contract): read, decide,
        compare-and-set, again when another worker wrote in between; within ``timeout`` in
        all, so a stalled JetStream holds the run loop up that long at most. On any failure
        the bucket is opened afresh next time (re-created if it was deleted)."""
        if cap <= 0:
            return True
        if not self._connection.is_connected:
            raise StoreUnavailableError("signal budget: NATS is not connected")
        try:
            async with asyncio.timeout(self.timeout):
                taken = await self._take(time_ms, cap, signal_id)
        except Exception as exc:
            self._kv = None
            raise StoreUnavailableError(f"signal budget: {type(exc).__name__}: {exc}") from exc
        self.stats["taken" if taken else "refused"] += 1
        return taken

    async def _take(self, time_ms: int, cap: int, signal_id: str) -> bool:
        kv = await self._bucket()
        for _ in range(self.attempts):
            revision, window = await self._read(kv)
            taken = take_slot(window, time_ms, cap, self.horizon_ms, signal_id)
            if taken is None:
                return False
            payload = orjson.dumps(taken)
            try:
                if revision is None:
                    await kv.create(KEY, payload)
                else:
                    await kv.update(KEY, payload, last=revision)
            except KeyWrongLastSequenceError:
                self.stats["conflicts"] += 1
                continue
            return True
        raise RuntimeError(f"{self.attempts} attempts lost to concurrent takes")

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            js = self._connection.jetstream(timeout=self.timeout)
            if self.create_bucket:
                self._kv = await ensure_bucket(js, self.bucket, replicas=self.replicas)
            else:
                self._kv = await js.key_value(self.bucket)
        return self._kv

    async def _read(self, kv: KeyValue) -> tuple[int | None, list[Slot]]:
        """(revision, window) of the key; (None, []) when it does not exist."""
        try:
            entry = await kv.get(KEY)
        except KeyNotFoundError:
            return None, []
        window = decode_window(entry.value)
        if window is None:
            self.stats["malformed"] += 1
            _log.warning("signal_budget_malformed", bucket=self.bucket, revision=entry.revision)
            window = []
        return entry.revision, window


def decode_window(value: bytes | None) -> list[Slot] | None:
    """The window a key's value holds (a JSON list of ``[time, signal_id]`` pairs or bare
    integer times, read as ``(time, "")``; an empty value is an empty window), or None when it
    holds anything else. Never raises."""
    try:
        entries = orjson.loads(value or b"[]")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entries, list):
        return None
    window: list[Slot] = []
    for entry in entries:
        if entry.__class__ is int:
            window.append((entry, ""))
        elif (
            entry.__class__ is list
            and len(entry) == 2
            and entry[0].__class__ is int
            and entry[1].__class__ is str
        ):
            window.append((entry[0], entry[1]))
        else:
            return None
    return window
