"""What a NATS input does with a message it cannot use: count, log, dead-letter.

Every NATS input (the market feed, a worker's partition feed, the partition router) hands a
message it skips to its :class:`DeadLetters`: the skip is counted by reason, logged
rate-limited and, when a dead-letter subject is configured, the original payload is
republished there with the headers ``Rs-Skip-Reason``, ``Rs-Skip-Detail`` and
``Rs-Original-Subject``. A failed dead-letter publish is counted and logged (rate-limited),
never raised: a skip costs one message, never the input.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import structlog

from adapters.nats.connection import NatsConnection, RateLimiter

_log = structlog.get_logger(__name__)

SKIP_REASON_HEADER: Final = "Rs-Skip-Reason"
SKIP_DETAIL_HEADER: Final = "Rs-Skip-Detail"
ORIGINAL_SUBJECT_HEADER: Final = "Rs-Original-Subject"
MAX_HEADER_VALUE: Final = 512


def header_value(text: str) -> str:
    """Header-safe (no CR/LF, bounded) version of ``text``."""
    cleaned = " ".join(text.split())
    if len(cleaned) > MAX_HEADER_VALUE:
        cleaned = cleaned[: MAX_HEADER_VALUE - 3] + "..."
    return cleaned


class DeadLetters:
    """Counts (``skipped`` by reason, ``dead_lettered``, ``dead_letter_errors``), logs and
    dead-letters the messages an input skips (module doc).

    ``event``: the log event of a skip (``market_message_skipped``, ...).
    """

    def __init__(
        self,
        connection: NatsConnection,
        subject: str = "",
        *,
        event: str = "market_message_skipped",
        log_interval: float = 10.0,
    ) -> None:
        self._connection = connection
        self.subject = subject.strip()
        self.event = event
        self._limiter = RateLimiter(interval=log_interval)
        self.skipped: Counter[str] = Counter()
        self.dead_lettered = 0
        self.dead_letter_errors = 0

    async def skip(
        self, reason: str, detail: str, data: bytes, subject: str, **context: object
    ) -> None:
        """Count, log and dead-letter one skipped message received on ``subject``."""
        self.skipped[reason] += 1
        suppressed = self._limiter.allow(f"skip:{reason}")
        if suppressed is not None:
            _log.warning(
                self.event,
                reason=reason,
                detail=detail[:MAX_HEADER_VALUE],
                subject=subject,
                size=len(data),
                suppressed_since_last=suppressed,
                **context,
            )
        if not self.subject:
            return
        headers = {
            SKIP_REASON_HEADER: header_value(reason),
            SKIP_DETAIL_HEADER: header_value(detail),
            ORIGINAL_SUBJECT_HEADER: subject,
        }
        try:
            await self._connection.client.publish(self.subject, data, headers=headers)
        except Exception as exc:
            self.dead_letter_errors += 1
            if self._limiter.allow("dead_letter_error") is not None:
                _log.error(
                    "dead_letter_publish_failed",
                    subject=self.subject,
                    reason=reason,
                    error=repr(exc),
                )
            return
        self.dead_lettered += 1
