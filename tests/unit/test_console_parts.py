"""Console parts without HTTP: sessions, audit diffs, chart geometry, live signal fan-out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.http.console.views import depth_bars, diff, form_fields, pressure_chart, timeline
from adapters.http.security import CONSOLE_SESSION_SECONDS, ApiSecurity
from adapters.memory.signal_sink import InMemorySignalSink
from application.live_signals import BroadcastingSignalSink, SignalBroadcast
from domain.config import AuditAction, AuditRecord
from domain.strategies.registry import STRATEGY_PARAMS
from tests.unit.wire.test_signal_encoding import make_signal

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def test_a_session_names_its_operator_until_it_expires() -> None:
    security = ApiSecurity("token", bound_to_loopback=False)
    cookie = security.issue_session("Zoë ops", now=NOW)
    assert security.session_name(cookie, now=NOW + 10) == "Zoë ops"
    assert security.session_name(cookie, now=NOW + CONSOLE_SESSION_SECONDS + 1) is None


def test_a_session_is_bound_to_the_token_and_cannot_be_edited() -> None:
    security = ApiSecurity("token", bound_to_loopback=False)
    cookie = security.issue_session("ops", now=NOW)
    name, expires, signature = cookie.split(".")
    assert ApiSecurity("rotated", bound_to_loopback=False).session_name(cookie, now=NOW) is None
    longer = f"{name}.{int(expires) + 3600}.{signature}"
    assert security.session_name(longer, now=NOW) is None
    assert security.session_name(f"YWRtaW4.{expires}.{signature}", now=NOW) is None
    for junk in ("", "a.b", "a.b.c.d", "x.notanumber.y"):
        assert security.session_name(junk, now=NOW) is None


def test_the_session_cookie_holds_no_token() -> None:
    cookie = ApiSecurity("very-secret-token", bound_to_loopback=False).issue_session("ops")
    assert "very-secret-token" not in cookie


def record(version: int, old: dict | None, new: dict | None, second: int) -> AuditRecord:  # type: ignore[type-arg]
    return AuditRecord(
        strategy_id="orderbook_skew",
        symbol=None,
        action=AuditAction.UPDATE,
        old_parameters=old,
        new_parameters=new,
        changed_by="ops",
        changed_at=datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC),
        reason="",
        version=version,
    )


def test_diff_names_added_removed_and_changed_parameters() -> None:
    changes = diff({"a": 1, "b": 2.0, "c": True}, {"a": 1, "b": 2.5, "d": 3})
    assert [(c.name, c.kind, c.old, c.new) for c in changes] == [
        ("b", "changed", 2.0, 2.5),
        ("c", "removed", True, None),
        ("d", "added", None, 3),
    ]
    assert [c.kind for c in diff(None, {"x": 1})] == ["added"]
    assert [c.kind for c in diff({"x": 1}, None)] == ["removed"]


def test_timeline_is_newest_first_and_bounded() -> None:
    records = [record(v, None, {"a": v}, second=v) for v in (1, 3, 2)]
    entries = timeline(records, limit=2)
    assert [e.record.version for e in entries] == [3, 2]
    assert entries[0].layer == "global"


def test_form_fields_follow_the_schema_with_integer_bounds() -> None:
    specs = STRATEGY_PARAMS["orderbook_skew"].schema()
    fields = {f.name: f for f in form_fields(specs, {"top_levels": 7}, {"top_levels": 7})}
    top = fields["top_levels"]
    assert (top.value, top.in_layer, top.step, top.input_value) == (7, True, "1", "7")
    assert isinstance(top.min, int)
    assert isinstance(top.max, int)
    assert fields["buy_threshold"].step == "any"
    assert not fields["buy_threshold"].in_layer
    assert fields["enabled"].input_value == "true"


def test_the_pressure_chart_spans_the_width_on_a_fixed_scale() -> None:
    points = [
        {
            "event_time_ms": 1_000,
            "buy_pressure": 100.0,
            "sell_pressure": 0.0,
            "net_pressure": 100.0,
        },
        {
            "event_time_ms": 2_000,
            "buy_pressure": 0.0,
            "sell_pressure": 100.0,
            "net_pressure": -100.0,
        },
    ]
    chart = pressure_chart(points)
    net = next(s for s in chart.series if s.css == "net")
    assert net.points == f"0.0,0.0 {chart.width:.1f},{chart.height:.1f}"
    assert chart.zero_y == chart.height / 2
    assert pressure_chart([]).series[0].points == ""


def test_depth_bars_scale_to_the_largest_side() -> None:
    bars = depth_bars({"depth_top5": {"bid": 1.0, "ask": 4.0}, "depth_top10": {"bid": 2.0}})
    assert [(b.label, b.bid_width, b.ask_width) for b in bars] == [
        ("top 5", 80.0, 320.0),
        ("top 10", 160.0, 0.0),
    ]


async def test_the_sink_publishes_then_broadcasts_to_every_subscriber() -> None:
    inner = InMemorySignalSink()
    broadcast = SignalBroadcast()
    first, second = broadcast.subscribe(), broadcast.subscribe()
    sink = BroadcastingSignalSink(inner, broadcast)
    signal = make_signal()
    await sink.publish(signal)
    assert inner.signals == [signal]
    assert await first.next(timeout=1.0) is signal
    assert await second.next(timeout=1.0) is signal
    first.close()
    await sink.publish(signal)
    assert broadcast.subscribers == 1
    assert await first.next(timeout=0.01) is None


async def test_a_slow_watcher_loses_its_oldest_signals_counted() -> None:
    broadcast = SignalBroadcast()
    watcher = broadcast.subscribe(maxsize=2)
    signals = [make_signal(confidence=c) for c in (0.6, 0.7, 0.8)]
    for signal in signals:
        broadcast.publish(signal)
    assert watcher.dropped == 1
    assert await watcher.next(timeout=1.0) is signals[1]
    assert await watcher.next(timeout=1.0) is signals[2]
