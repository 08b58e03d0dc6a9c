"""Record market subjects from NATS: every message's exact bytes, with subject and receive time.

``NatsMarketRecorder`` subscribes to the market subjects (the Binance topic and the three
market-logic input topics, each named by its input) and hands each message, undecoded, to a
line writer in the recording format of :mod:`adapters.wire.capture`. It decodes nothing, so a
message the service would skip is recorded too (the backtest then skips it the same way).

- A write that fails (disk full, I/O error) costs that message, counted in ``write_errors``
  and logged rate-limited, never the subscription.
- Subscriptions use their own queue group (default ``realtime-strategies-recorder``): the
  recorder never takes messages from the service's group, and recorder replicas share the
  work instead of writing everything twice.
- ``drain()`` stops interest and lets every message already received be written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from adapters.nats.connection import NatsConnection, RateLimiter
from adapters.nats.subscription import NatsSubscriber, unsubscribe_all
from adapters.wire.capture import RecordedMessage, encode_record

_log = structlog.get_logger(__name__)

DEFAULT_RECORDER_GROUP = "realtime-strategies-recorder"


class NatsMarketRecorder(NatsSubscriber):
    """Writes every message of ``subjects`` (subject → input name) with ``write(line)``."""

    log_name = "nats_recorder"

    def __init__(
        self,
        connection: NatsConnection,
        subjects: Mapping[str, str],
        write: Callable[[bytes], None],
        *,
        queue_group: str = DEFAULT_RECORDER_GROUP,
        clock_ns: Callable[[], int] = time.time_ns,
        pending_msgs_limit: int = 500_000,
        pending_bytes_limit: int = 256 * 1024 * 1024,
    ) -> None:
        super().__init__(connection)
        cleaned = {s.strip(): i for s, i in subjects.items() if s.strip()}
        if not cleaned:
            raise ValueError("NatsMarketRecorder needs at least one subject")
        self._subjects = cleaned
        self._write = write
        self._queue_group = queue_group
        self._clock_ns = clock_ns
        self._pending_msgs_limit = pending_msgs_limit
        self._pending_bytes_limit = pending_bytes_limit
        self._subs: list[Subscription] = []
        self._limiter = RateLimiter(interval=10.0)
        self.recorded: Counter[str] = Counter()
        """Messages written, by input name."""
        self.bytes_recorded = 0
        self.write_errors = 0

    @property
    def subjects(self) -> dict[str, str]:
        return dict(self._subjects)

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop receiving; every message already received is still written."""
        self._stop_listening()
        subs, self._subs = self._subs, []
        await self._drain(subs, timeout)

    async def _subscribe(self) -> bool:
        nc = self._connection.client
        await unsubscribe_all(self._subs)  # what a failed earlier attempt left
        self._subs = []
        for subject, input_name in self._subjects.items():
            self._subs.append(
                await nc.subscribe(
                    subject,
                    queue=self._queue_group,
                    cb=self._handler(input_name),
                    pending_msgs_limit=self._pending_msgs_limit,
                    pending_bytes_limit=self._pending_bytes_limit,
                )
            )
        await nc.flush()
        _log.info(
            "nats_recorder_subscribed",
            subjects=self._subjects,
            queue_group=self._queue_group or None,
        )
        return True

    def _handler(self, input_name: str) -> Callable[[Msg], Coroutine[None, None, None]]:
        async def handle(msg: Msg) -> None:
            self.record(msg.subject, input_name, msg.data)

        return handle

    def record(self, subject: str, input_name: str, data: bytes) -> None:
        """Write one message (the subscription callback; public for tests and replays)."""
        line = encode_record(RecordedMessage(subject, input_name, data, self._clock_ns()))
        try:
            self._write(line)
        except Exception as exc:
            self.write_errors += 1
            suppressed = self._limiter.allow("write_error")
            if suppressed is not None:
                _log.error(
                    "capture_write_failed",
                    error=repr(exc),
                    subject=subject,
                    suppressed_since_last=suppressed,
                )
            return
        self.recorded[input_name] += 1
        self.bytes_recorded += len(data)
