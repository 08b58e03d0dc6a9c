"""deploy/components/recorder: renders on top of the production overlay, validates against the
Kubernetes schema, runs `record` onto its claim, and stays out of the default overlays."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.unit.deploy.support import (
    CONFIGMAP_NAME,
    DEPLOY,
    LOCAL,
    NAMESPACE,
    PRODUCTION,
    SMALL,
    Manifest,
    by_kind,
    command_of,
    kustomize,
    load_yaml,
    workloads,
)

pytestmark = pytest.mark.unit

RECORDER = DEPLOY / "components" / "recorder"
RECORDER_NAME = "petrosa-realtime-strategies-recorder"


def render_with_recorder(tmp_path: Path) -> list[Manifest]:
    """An overlay on production that enables the component and sets the same image."""
    production = os.path.relpath(PRODUCTION, tmp_path)  # kustomize takes relative roots only
    component = os.path.relpath(RECORDER, tmp_path)
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": [production],
        "components": [component],
        "images": load_yaml(PRODUCTION / "kustomization.yaml")["images"],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    return kustomize(tmp_path)


def recorder_deployment(manifests: list[Manifest]) -> Manifest:
    [deployment] = [
        m for m in by_kind(manifests, "Deployment") if m["metadata"]["name"] == RECORDER_NAME
    ]
    return deployment


def test_the_recorder_writes_to_its_claim_with_the_services_settings(tmp_path: Path) -> None:
    manifests = render_with_recorder(tmp_path)
    deployment = recorder_deployment(manifests)
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[0] == "record"
    out = args[args.index("--out") + 1]
    max_bytes = int(args[args.index("--max-bytes") + 1])
    assert container["envFrom"] == [{"configMapRef": {"name": CONFIGMAP_NAME}}]
    [mount] = [m for m in container["volumeMounts"] if out.startswith(m["mountPath"])]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [claim] = by_kind(manifests, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    size = claim["spec"]["resources"]["requests"]["storage"]
    assert size.endswith("Gi")
    assert max_bytes < int(size.removesuffix("Gi")) * 2**30  # the bound fits the claim
    # The image the overlay sets applies to the recorder too.
    service = next(w for w in workloads(manifests) if command_of(w) == "serve")
    assert container["image"] == service["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [policy] = [
        m for m in by_kind(manifests, "NetworkPolicy") if m["metadata"]["name"] == RECORDER_NAME
    ]
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )


def test_the_recorder_objects_validate_against_the_kubernetes_schema(tmp_path: Path) -> None:
    manifests = render_with_recorder(tmp_path)
    kinds = []
    for manifest in manifests:
        if (
            manifest["metadata"]["name"].startswith(RECORDER_NAME)
            or manifest["kind"] == "PersistentVolumeClaim"
        ):
            kubernetes_validate.validate(manifest, "1.30.0", strict=True)
            kinds.append(manifest["kind"])
    assert sorted(kinds) == ["Deployment", "NetworkPolicy", "PersistentVolumeClaim"]


@pytest.mark.parametrize(
    "overlay", [PRODUCTION, SMALL, LOCAL], ids=["production", "small", "local"]
)
def test_the_default_overlays_do_not_record(overlay: Path) -> None:
    names = {m["metadata"]["name"] for m in kustomize(overlay)}
    assert RECORDER_NAME not in names
    assert "petrosa-realtime-strategies-captures" not in names
