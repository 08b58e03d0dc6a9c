"""Router leadership and progress in JetStream Key-Value buckets (router failover, ADR 0015).

- :class:`KvLease` — one key of a bucket whose ``max_age`` is the lease TTL. The leader creates
  the key (``create`` fails while it exists) and renews it with a compare-and-set ``update``
  on its revision, which also restarts the key's age. When the leader dies the server
  expires the key ``ttl`` seconds after its last renewal and a standby's next ``create``
  succeeds. The server's clock decides expiry, so pods need no synchronised clocks; the
  leader fences itself on its own monotonic clock: it stops routing once its last
  successful renewal is older than ``fence_fraction`` x ``ttl`` (before any standby can take
  over, since the key lives at least ``ttl`` from the moment the renewal was *sent*).
- :class:`KvPosition` — the last input-stream sequence a shard has routed *and* had
  acknowledged, with every earlier one (the contiguous frontier): where the next leader
  resumes. Written by the leader every renewal; never ahead of what the market-data stream
  holds, so a new leader re-sends at most what was routed since (stored once: same
  ``Nats-Msg-Id``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from adapters.nats.jetstream_streams import ensure_bucket

_log = structlog.get_logger(__name__)


async def open_lease_bucket(
    js: JetStreamContext, bucket: str, ttl: float, *, replicas: int = 1
) -> tuple[KeyValue, float]:
    """The lease bucket (created with ``ttl`` if missing) and the TTL in force for its keys.

    An existing bucket keeps the ``max_age`` it was created with, and the server expires
    keys on that, whatever ``ROUTER_LEASE_TTL_SECONDS`` says now (after the setting was
    changed, or while two versions roll out side by side). A holder that renewed on the
    configured TTL while keys expired sooner would keep leading after a standby took the
    key; so a shorter bucket TTL is the one in force (logged as an error), and a bucket
    whose keys never expire (no ``max_age``) is logged as one where failover cannot
    happen."""
    kv = await ensure_bucket(js, bucket, ttl=ttl, replicas=replicas)
    in_force = (await kv.status()).ttl or 0.0
    if in_force <= 0:
        _log.error("router_lease_bucket_never_expires", bucket=bucket, configured_ttl=ttl)
        return kv, ttl
    if abs(in_force - ttl) > 1e-3:
        _log.error(
            "router_lease_bucket_ttl_differs",
            bucket=bucket,
            configured_ttl=ttl,
            bucket_ttl=in_force,
            ttl_in_force=min(ttl, in_force),
        )
    return kv, min(ttl, in_force)


class KvLease:
    """A TTL'd leadership key (module doc). Not thread-safe; one task drives it."""

    def __init__(
        self,
        bucket: KeyValue,
        key: str,
        holder: str,
        ttl: float,
        *,
        fence_fraction: float = 0.75,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be > 0, got {ttl}")
        if not 0 < fence_fraction < 1:
            raise ValueError("fence_fraction must be in (0, 1)")
        self._kv = bucket
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.fence_fraction = fence_fraction
        self._clock = clock
        self._revision: int | None = None
        self._renewed_at = 0.0
        self.acquired = 0
        self.lost = 0

    @property
    def held(self) -> bool:
        """Held and renewed recently enough to act as the leader (self-fencing)."""
        return (
            self._revision is not None
            and self._clock() - self._renewed_at < self.fence_fraction * self.ttl
        )

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it (or it is ours already: a create whose reply was
        lost was applied all the same; it is adopted with a renewal, which restarts the
        key's age)."""
        sent_at = self._clock()
        try:
            self._revision = await self._kv.create(self.key, self.holder.encode())
        except KeyWrongLastSequenceError:
            self._revision = None
            current = await self._current()
            if current is None or current[0] != self.holder:
                return False
            self._revision = current[1]
            if not await self.renew():
                return False
        else:
            self._renewed_at = sent_at
        self.acquired += 1
        return True

    async def renew(self) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another holder).
        Other errors (NATS away) propagate: :attr:`held` runs out meanwhile."""
        if self._revision is None:
            return False
        sent_at = self._clock()
        try:
            self._revision = await self._kv.update(
                self.key, self.holder.encode(), last=self._revision
            )
        except KeyWrongLastSequenceError:
            # A renewal that timed out here may have been applied: still ours if the key
            # holds our (per-process) holder id — adopt its revision and renew on it.
            current = await self._current()
            if current is None or current[0] != self.holder:
                self._revision = None
                self.lost += 1
                return False
            self._revision = current[1]
            return await self.renew()
        self._renewed_at = sent_at
        return True

    async def release(self) -> None:
        """Give the lease up at once (graceful stop): a standby takes it on its next try."""
        revision, self._revision = self._revision, None
        if revision is None:
            return
        try:
            await self._kv.delete(self.key, last=revision)
        except Exception as exc:  # expired or taken meanwhile: nothing to give up
            _log.info("router_lease_release_skipped", key=self.key, error=repr(exc))

    def drop(self) -> None:
        """Forget the lease locally (it is not renewed any more and runs out on the server)."""
        self._revision = None

    async def current_holder(self) -> str | None:
        current = await self._current()
        return current[0] if current is not None else None

    async def _current(self) -> tuple[str, int] | None:
        """(holder, revision) of the key, None when nobody holds it."""
        try:
            entry = await self._kv.get(self.key)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return entry.value.decode(), entry.revision


class KvPosition:
    """A shard's routed-and-acknowledged input sequence (module doc)."""

    def __init__(self, bucket: KeyValue, key: str) -> None:
        self._kv = bucket
        self.key = key
        self.committed = 0

    async def load(self) -> int:
        """The committed sequence (0: nothing routed yet); an unreadable value is logged and
        read as 0 (the new leader then starts at the input stream's first message)."""
        try:
            entry = await self._kv.get(self.key)
        except KeyNotFoundError:
            self.committed = 0
            return 0
        raw = entry.value or b""
        try:
            self.committed = int(raw)
        except ValueError:
            _log.error("router_position_unreadable", key=self.key, value=raw[:64])
            self.committed = 0
        return self.committed

    async def commit(self, sequence: int) -> None:
        if sequence > self.committed:
            await self._kv.put(self.key, str(sequence).encode())
            self.committed = sequence
