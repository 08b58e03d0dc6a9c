"""The ``realtime-strategies`` command as installed, for tests that run it as a process."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points


def cli_command(*args: str) -> list[str]:
    """argv running the installed ``realtime-strategies`` console-script entry point with
    this interpreter (whatever the environment's layout); fails loudly if the package is
    not installed."""
    found = entry_points(group="console_scripts", name="realtime-strategies")
    if not found:
        raise AssertionError("realtime-strategies is not installed (pip install -e .)")
    (entry,) = found
    module, _, function = entry.value.partition(":")
    program = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", program, *args]
