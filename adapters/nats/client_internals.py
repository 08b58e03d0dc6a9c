"""The one module that touches nats-py's private attributes (pinned: nats-py==2.16.0).

Two speed-ups need them; each has a public-API twin that the feeds use when
:func:`fast_path_supported` is False (another nats-py), and a test holds the two equal:

- :class:`SharedBuffer` — the market feed's fast path. Callback-less subscriptions all
  deliver into **one** buffer (their ``_pending_queue`` replaced by a shared
  :class:`asyncio.Queue`), which the feed's consumer reads in batches, in its own task: no
  callback task per subscription, no second queue, no task switch per message. Its twin,
  :class:`CallbackBuffer`, gets the messages from subscription callbacks (a task per
  subscription, one more queue hop per message).
- :func:`take_pending` — a JetStream push subscription read by the partition feed's own
  task, answering the server's flow-control requests once the messages received before them
  are taken (nats-py answers a callback subscription's requests on receipt, whatever the
  backlog). Its twin is ``next_msg``.

:func:`check_nats_py` raises with what differs when the installed nats-py is not the pinned
version or lacks an attribute used here (``tests/unit/test_nats_internals.py`` calls it: an
upgrade of nats-py fails loudly there first).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any, Final, Generic, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

PINNED_NATS_PY: Final = "2.16.0"
"""The nats-py version whose private attributes this module uses (pyproject pins it)."""

SUBSCRIPTION_ATTRIBUTES: Final = ("_id", "_pending_queue", "_pending_size")
JETSTREAM_ATTRIBUTES: Final = ("_fcr", "_fcd", "get_js_delivered")

Tag = TypeVar("Tag")


def nats_py_version() -> str:
    return version("nats-py")


def check_nats_py() -> None:
    """Raise ``RuntimeError`` saying what differs from the nats-py this module was written
    against (version, private attributes of subscriptions and JetStream subscriptions)."""
    problems: list[str] = []
    installed = nats_py_version()
    if installed != PINNED_NATS_PY:
        problems.append(f"nats-py {installed} installed, {PINNED_NATS_PY} pinned")
    probe = Subscription(None)
    problems += [
        f"Subscription.{name} missing"
        for name in SUBSCRIPTION_ATTRIBUTES
        if not hasattr(probe, name)
    ]
    if "_sid" not in getattr(Msg, "__dataclass_fields__", {}):
        problems.append("Msg._sid missing")
    jsi = JetStreamContext._JSI(None, None, "", None, None, probe, None)  # type: ignore[arg-type]
    problems += [
        f"JetStreamContext._JSI.{name} missing"
        for name in JETSTREAM_ATTRIBUTES
        if not hasattr(jsi, name)
    ]
    if problems:
        raise RuntimeError(
            "adapters/nats/client_internals.py does not fit the installed nats-py: "
            + "; ".join(problems)
        )


def fast_path_supported() -> bool:
    try:
        check_nats_py()
    except Exception:
        return False
    return True


class _End:
    """Buffer sentinel: no more messages."""


_END: Final = _End()


class _MessageBuffer(Generic[Tag]):
    """Messages of several subscriptions in one bounded queue, taken in batches, each with
    the tag of its subscription; :meth:`close` ends :meth:`take` once the messages before it
    are taken."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)

    def qsize(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_END)

    async def subscribe(
        self,
        client: Client,
        subject: str,
        tag: Tag,
        *,
        queue: str = "",
        pending_msgs_limit: int,
        pending_bytes_limit: int,
    ) -> Subscription:
        sub = await client.subscribe(
            subject,
            queue=queue,
            cb=self._callback(tag),
            pending_msgs_limit=pending_msgs_limit,
            pending_bytes_limit=pending_bytes_limit,
        )
        self._adopt(sub, tag)
        return sub

    def _callback(self, tag: Tag) -> Callable[[Msg], Awaitable[None]] | None:
        return None

    def _adopt(self, sub: Subscription, tag: Tag) -> None:
        return None


class SharedBuffer(_MessageBuffer[Tag]):
    """Several callback-less subscriptions delivering into one buffer (module doc).

    :meth:`take` waits for at least one message and returns everything that has arrived (up
    to ``limit``), oldest first, with the tag of its subscription; None once closed.
    ``maxsize`` bounds the buffer over all subscriptions: beyond it nats-py drops messages
    and reports a slow consumer, as it does for one subscription.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._subs: dict[int, tuple[Subscription, Tag]] = {}

    def _adopt(self, sub: Subscription, tag: Tag) -> None:
        own = sub._pending_queue
        sub._pending_queue = self._queue
        while not own.empty():  # anything delivered before the swap, in order
            self._queue.put_nowait(own.get_nowait())
            own.task_done()
        self._subs[sub._id] = (sub, tag)

    async def take(self, limit: int) -> list[tuple[Tag, Msg]] | None:
        queue = self._queue
        message = await queue.get()
        taken: list[tuple[Tag, Msg]] = []
        subs = self._subs
        while True:
            queue.task_done()  # a draining subscription waits for every message taken
            if message is _END:
                if taken:
                    queue.put_nowait(message)  # seen again by the next take
                return taken or None
            entry = subs.get(message._sid)
            if entry is not None:
                sub, tag = entry
                sub._pending_size -= len(message.data)
                taken.append((tag, message))
            if len(taken) >= limit or queue.empty():
                return taken
            message = queue.get_nowait()


class CallbackBuffer(_MessageBuffer[Tag]):
    """:class:`SharedBuffer` on nats-py's public API: a callback per subscription puts its
    messages into one bounded queue (the callback waits while it is full, so nats-py keeps
    buffering in the subscription meanwhile)."""

    def _callback(self, tag: Tag) -> Callable[[Msg], Awaitable[None]]:
        put = self._queue.put

        async def deliver(msg: Msg) -> None:
            await put((tag, msg))

        return deliver

    async def take(self, limit: int) -> list[tuple[Tag, Msg]] | None:
        queue = self._queue
        entry = await queue.get()
        taken: list[tuple[Tag, Msg]] = []
        while True:
            if entry is _END:
                if taken:
                    queue.put_nowait(entry)
                return taken or None
            taken.append(entry)
            if len(taken) >= limit or queue.empty():
                return taken
            entry = queue.get_nowait()


async def take_pending(
    sub: Any,
    publish: Callable[[str], Awaitable[None]],
    taken: Callable[[], None] | None = None,
) -> Msg:
    """The next message of a callback-less JetStream push subscription, answering a pending
    flow-control request of the server once every message received before it is taken
    (module doc); ``taken()`` is called as soon as the message is out of the buffer."""
    msg: Msg = await sub._pending_queue.get()
    if taken is not None:
        taken()
    sub._pending_size -= len(msg.data)
    sub._pending_queue.task_done()
    jsi = sub._sub._jsi
    reply = jsi._fcr
    if reply and jsi.get_js_delivered() >= jsi._fcd:
        jsi._fcr, jsi._fcd = None, 0
        with contextlib.suppress(Exception):
            await publish(reply)
    return msg


async def recreate_ordered_consumer(sub: Any) -> None:
    """Re-create the server-side consumer of a JetStream ordered-consumer subscription that
    is gone: nats-py replaces it in a background task after a reset and only reports a failed
    replacement to the error callback, which would leave the subscription silent for good.
    Delivery resumes after the last stream sequence the subscription received."""
    jsi = sub._sub._jsi
    await jsi.reset_ordered_consumer(jsi._sseq + 1)
