"""deploy/monitoring: the dashboard and the alerts query only what the service exports,
their PromQL parses (promtool), and the alerts fire when they should (promtool unit tests).

Exported names come from a real :class:`PrometheusMetrics` with every scrape source
populated and every push-style update made, rendered as Prometheus would scrape it
(``render()``), so counters are checked with their ``_total`` and histograms with their
``_bucket``/``_sum``/``_count`` series. PromQL identifiers are extracted with a small
tokenizer (strings, label matchers, ranges, grouping clauses, function names and keywords
removed; what remains are metric names); promtool then parses every expression for real.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from adapters.observability.prometheus import (
    METRIC_NAMES,
    METRICS,
    PrometheusMetrics,
    ScrapeSources,
)
from domain.engine import EngineStats
from domain.live_outcomes import HorizonResult, LiveOutcome, OutcomeChange
from domain.signal import Signal
from tests.signals import a_signal
from tests.unit.deploy.support import MONITORING, RUNBOOK, load_yaml, run, service_tool

pytestmark = pytest.mark.unit

DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "prometheus-rules.yaml"
ALERT_TESTS = Path(__file__).with_name("alert_rules_test.yaml")

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
}

GRAFANA_VARIABLES = {
    "$namespace": "petrosa-apps",
    "$pod": ".*",
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "30s",
}


# --- what the service exports -----------------------------------------------------------------


def _signal(strategy_id: str, confidence: float) -> Signal:
    return a_signal(
        signal_id=f"{strategy_id}-1",
        strategy_id=strategy_id,
        confidence=confidence,
        event_time_ms=1_723_075_200_000,
    )


def _engine_stats() -> EngineStats:
    stats = EngineStats(
        events_by_type=Counter({"DepthSnapshot": 10, "Trade": 5}),
        signals_by_strategy_action=Counter({("orderbook_skew", "buy"): 2}),
        strategy_errors=Counter({"trade_momentum": 1}),
    )
    stats.outcome_counter("orderbook_skew").update(signal=1, cooldown=1)
    return stats


SOURCE_VALUES: dict[str, Callable[[], Any]] = {
    "processing": _engine_stats,
    "messages_by_type": lambda: {"depth": 10, "trade": 5, "kline": 1},
    "invalid_by_reason": lambda: {"bad_json": 1},
    "message_errors": lambda: 1,
    "last_event_time_ms": lambda: 1_723_075_200_000,
    "publish_errors": lambda: 1,
    "signal_budget_errors": lambda: 1,
    "signal_duplicate_acks": lambda: 1,
    "signals_dropped": lambda: {"buffer_full": 0},
    "signal_buffer_size": lambda: 0,
    "circuit_breakers": lambda: {"nats": 0},
    "nats_connected": lambda: True,
    "config_stores_up": lambda: {"mongodb": True, "mysql": False},
    "config_cache": lambda: {"hits": 9, "misses": 1},
    "config_events": lambda: {"broadcast_reloads": 1, "broadcasts_ignored": 20_000},
    "signal_pauses": lambda: 1,
    "ready": lambda: True,
}


def _populated_metrics() -> PrometheusMetrics:
    missing = {f.name for f in dataclasses.fields(ScrapeSources)} - set(SOURCE_VALUES)
    assert not missing, f"populate the new ScrapeSources fields in this test: {missing}"
    sources = ScrapeSources(**SOURCE_VALUES)
    metrics = PrometheusMetrics(sources, clock=lambda: 1_723_075_201.0)
    metrics.strategy_evaluated("orderbook_skew", 0.0001)
    metrics.strategy_evaluated("orderbook_skew", 0.0001)
    metrics.signals_emitted([_signal("orderbook_skew", 0.75)])
    metrics.message_processed(0.0002)
    signal = _signal("orderbook_skew", 0.75)
    result = HorizonResult("1m", signal.price * 1.001, 10.0, -10.0)
    metrics.outcome_scored(
        LiveOutcome(signal, {"1m": result}, change=OutcomeChange.HORIZON, changed_horizon="1m")
    )
    return metrics


def _exported_series_names() -> set[str]:
    """Sample names of one scrape, as PromQL sees them (``_created`` is never queried)."""
    body, _ = _populated_metrics().render()
    names = {
        sample.name
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for sample in family.samples
    }
    return {name for name in names if not name.endswith("_created")}


EXPORTED = _exported_series_names()
HISTOGRAMS = {m.name for m in METRICS if m.type == "histogram"}


def _base_name(series: str) -> str:
    """``x_bucket`` → ``x`` for histograms; anything else unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in HISTOGRAMS:
            return series.removesuffix(suffix)
    return series


def test_the_populated_registry_exports_every_declared_metric() -> None:
    assert {_base_name(name) for name in EXPORTED} == set(METRIC_NAMES)


REFERENCE_README_METRICS = {
    "realtime_strategies_messages_processed_total": "counter",
    "realtime_strategies_messages_errors_total": "counter",
    "realtime_strategies_processing_latency_seconds": "histogram",
    "realtime_strategies_signals_generated_total": "counter",
    "realtime_strategies_nats_connected": "gauge",
    "realtime_strategies_circuit_breaker_state": "gauge",
}
"""The metric names the reference README documents ("Prometheus Metrics"); its p95 query
reads the processing-latency histogram."""


def test_the_reference_readme_metric_names_are_exported() -> None:
    types = {m.name: m.type for m in METRICS}
    for name, kind in REFERENCE_README_METRICS.items():
        assert types.get(name) == kind, name
        series = (
            {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
        )
        assert series <= EXPORTED, name
    breakers = next(m for m in METRICS if m.name.endswith("_circuit_breaker_state"))
    assert breakers.labels == ("name",)


# --- PromQL identifiers -----------------------------------------------------------------------


def _without_balanced(text: str, opener: str, closer: str) -> str:
    out: list[str] = []
    depth = 0
    for char in text:
        if char == opener:
            depth += 1
        elif char == closer and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out)


def metric_identifiers(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (Grafana variables allowed)."""
    text = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", " ", expr)
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', " ", text)
    text = _without_balanced(text, "{", "}")
    text = _without_balanced(text, "[", "]")
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if re.match(r"\s*\(", text[match.end() :]):
            continue  # a function or aggregation
        if word.lower() in PROMQL_KEYWORDS or re.fullmatch(r"\d.*", word):
            continue
        if match.start() and text[match.start() - 1].isdigit():
            continue  # the unit of a number such as 1e-9
        names.add(word)
    return names


def test_identifier_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, strategy) (rate(a_bucket{x="b_c", pod=~"$pod"}'
        "[$__rate_interval]))) / ignoring(pod) group_left b_total > bool 0.5 and on (ns) c"
    )
    assert metric_identifiers(expr) == {"a_bucket", "b_total", "c"}
    assert metric_identifiers("sum(x) by (le) or vector(0)") == {"x"}


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    for panel in _panels():
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]


def _variable_selectors() -> Iterator[tuple[str, str]]:
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        match = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_]+)\)", query)
        assert match, f"variable {variable['name']}: {query}"
        yield f"variable {variable['name']}", match.group(1)


def _alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(RULES)["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _all_exprs() -> list[tuple[str, str]]:
    alerts = [(f"alert {r['alert']}", r["expr"]) for r in _alert_rules()]
    return [*_dashboard_exprs(), *_variable_selectors(), *alerts]


@pytest.mark.parametrize(("where", "expr"), _all_exprs(), ids=lambda v: str(v)[:60])
def test_every_queried_metric_is_exported(where: str, expr: str) -> None:
    names = metric_identifiers(expr)
    assert names, f"{where}: no metric in {expr!r}"
    unknown = names - EXPORTED
    assert not unknown, f"{where}: not exported by the service: {sorted(unknown)}"
    assert {_base_name(n) for n in names} <= set(METRIC_NAMES)


def test_the_dashboard_shows_every_metric() -> None:
    shown = {_base_name(n) for _, expr in _dashboard_exprs() for n in metric_identifiers(expr)}
    missing = set(METRIC_NAMES) - shown
    assert not missing, f"metrics without a panel (add one to {DASHBOARD.name}): {missing}"


# --- dashboard contents -----------------------------------------------------------------------

REQUIRED_PANELS = {
    "Message processing rate",
    "Strategy latency p95 / p99",
    "NATS consumer lag",
    "Signals generated by strategy / action",
    "Strategy success rate",
    "Strategy errors and cooldown suppressions",
    "Invalid messages by reason",
    "Error rate (errors / received)",
    "Message processing latency p95 / p99",
    "Message types distribution",
    "Signal confidence distribution",
    "Circuit breaker state",
    "Circuit breaker (worst replica)",
    "Top strategies by signal count",
    "Total messages processed",
    "Strategy executions",
    "Average strategy latency",
    "Config cache hit ratio",
    "Ready replicas",
}


def test_dashboard_has_the_reference_panels() -> None:
    titles = [p["title"] for p in _panels()]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    assert set(titles) >= REQUIRED_PANELS, REQUIRED_PANELS - set(titles)


def test_consumer_lag_panel_thresholds_are_5_and_30_seconds() -> None:
    (panel,) = [p for p in _panels() if p["title"] == "NATS consumer lag"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 5, 30]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_dashboard_layout_and_datasource() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "realtime-strategies"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "pod"} <= names
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert 'namespace="$namespace"' in target["expr"], panel["title"]


# --- alerts -----------------------------------------------------------------------------------


def _rule(name: str) -> dict[str, Any]:
    (rule,) = [r for r in _alert_rules() if r["alert"] == name]
    return rule


def _squash(expr: str) -> str:
    return re.sub(r"\s+", " ", expr).strip()


def test_the_required_alerts_exist_with_their_thresholds() -> None:
    lag = _rule("RealtimeStrategiesConsumerLagHigh")
    assert _squash(lag["expr"]).endswith("realtime_strategies_consumer_lag_seconds) > 5")
    assert (lag["for"], lag["labels"]["severity"]) == ("2m", "warning")
    critical = _rule("RealtimeStrategiesConsumerLagCritical")
    assert _squash(critical["expr"]).endswith("realtime_strategies_consumer_lag_seconds) > 30")
    assert critical["labels"]["severity"] == "critical"
    invalid = _rule("RealtimeStrategiesInvalidMessageRateHigh")
    assert _squash(invalid["expr"]).endswith("> 0.01")
    no_signals = _rule("RealtimeStrategiesNoSignals")
    assert "[15m]" in no_signals["expr"]
    assert no_signals["for"] == "45m"  # 15 min window + 45 min pending = one hour
    assert "circuit_breaker_state" in _rule("RealtimeStrategiesCircuitBreakerOpen")["expr"]
    assert "realtime_strategies_ready" in _rule("RealtimeStrategiesNotReady")["expr"]
    assert "nats_connected" in _rule("RealtimeStrategiesNatsDisconnected")["expr"]
    assert "config_store_up" in _rule("RealtimeStrategiesConfigStoreDown")["expr"]
    assert "config_store_up" in _rule("RealtimeStrategiesAllConfigStoresDown")["expr"]


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_is_labelled_annotated_and_has_a_runbook_section() -> None:
    anchors = {
        _slug(line.lstrip("#"))
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    names = [r["alert"] for r in _alert_rules()]
    assert len(names) == len(set(names))
    for rule in _alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/runbook.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no '#{anchor}' section in docs/runbook.md"


# --- promtool: syntax and behaviour -----------------------------------------------------------


def _promtool() -> Path:
    return service_tool("promtool", "run `make services` (Debian package prometheus)")


def _write_rules(directory: Path) -> Path:
    path = directory / "rules.yaml"
    groups = load_yaml(RULES)["spec"]["groups"]
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return path


def test_alert_rules_pass_promtool_check(tmp_path: Path) -> None:
    output = run([_promtool(), "check", "rules", _write_rules(tmp_path)])
    assert f"SUCCESS: {len(_alert_rules())} rules found" in output


def test_alert_rules_fire_as_specified(tmp_path: Path) -> None:
    promtool = _promtool()
    _write_rules(tmp_path)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    output = run([promtool, "test", "rules", ALERT_TESTS.name], cwd=tmp_path)
    assert "SUCCESS" in output
    tested = {
        case["alertname"]
        for group in load_yaml(ALERT_TESTS)["tests"]
        for case in group["alert_rule_test"]
    }
    assert tested == {r["alert"] for r in _alert_rules()}, "every alert has a unit test"


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = []
    for index, (_, expr) in enumerate([*_dashboard_exprs(), *_variable_selectors()]):
        concrete = expr
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            concrete = concrete.replace(variable, value)
        assert "$" not in concrete, f"unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:expr_{index}", "expr": concrete})
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), "utf-8")
    output = run([promtool, "check", "rules", path])
    assert f"SUCCESS: {len(rules)} rules found" in output
