"""nats-py's private attributes are used in one module only, for the pinned nats-py.

An upgrade of nats-py fails here first, saying what changed, before any feed runs on it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from adapters.nats import client_internals
from adapters.nats.client_internals import PINNED_NATS_PY, check_nats_py, fast_path_supported

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_nats_py_is_the_one_the_internals_were_written_for() -> None:
    check_nats_py()
    assert fast_path_supported()


def test_the_pin_in_pyproject_is_the_version_the_internals_name() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"nats-py=={PINNED_NATS_PY}" in dependencies


def test_another_nats_py_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_internals, "nats_py_version", lambda: "2.99.0")
    with pytest.raises(RuntimeError, match=r"nats-py 2\.99\.0 installed, 2\.16\.0 pinned"):
        check_nats_py()
    assert not fast_path_supported()


def test_a_missing_private_attribute_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        client_internals, "SUBSCRIPTION_ATTRIBUTES", ("_pending_queue", "_renamed_in_a_release")
    )
    with pytest.raises(RuntimeError, match=r"Subscription\._renamed_in_a_release missing"):
        check_nats_py()


def test_no_other_module_touches_nats_py_private_attributes() -> None:
    private = re.compile(r"\.(_pending_queue|_pending_size|_jsi|_fcr|_fcd|_sid|_id)\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "adapters").rglob("*.py"))
        if path.name != "client_internals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []
