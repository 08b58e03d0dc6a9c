"""`sweep --cluster` on a real Dask cluster: a `dask scheduler` and two `dask worker` processes
started on loopback by the test; the same sweep locally gives the same ``sweep.csv``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.compute.dask_cluster import DaskTaskRunner
from application.ports import TaskRunner
from entrypoints.cli import main
from tests.contract.task_runner_contract import TaskRunnerContract
from tests.data import CAPTURE
from tests.integration.conftest import free_port
from tests.integration.service_harness import REPO_ROOT, port_open, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DASK = Path(sys.executable).with_name("dask")


class DaskCluster:
    """A scheduler and ``workers`` single-threaded workers on 127.0.0.1, killed at close."""

    def __init__(self, log_dir: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.workers = workers
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # the contract's task functions
        with (self.log_dir / f"{name}.log").open("wb") as log:
            self.processes.append(
                subprocess.Popen(
                    [str(DASK), *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.log_dir,
                    env=env,
                    start_new_session=True,
                )
            )

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._start(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
            "--no-dashboard",
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), 60, "dask scheduler", context=self.logs)
        for index in range(self.workers):
            self._start(
                f"worker-{index}", "worker", self.address, "--host", "127.0.0.1",
                "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--memory-limit", "0",
            )  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(self.workers, timeout=120)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


class TestDaskTaskRunner(TaskRunnerContract):
    @pytest.fixture
    def runner(self, cluster: DaskCluster) -> TaskRunner:
        return DaskTaskRunner(cluster.address)


def test_sweep_csv_is_the_same_locally_and_on_the_cluster(
    tmp_path: Path, cluster: DaskCluster
) -> None:
    grid = [
        "--grid",
        "orderbook_skew.buy_threshold=1.2,1.5,2.0",
        "--grid",
        "orderbook_skew.top_levels=3,5,10",
        "--no-progress",
    ]
    local, remote = tmp_path / "local", tmp_path / "cluster"
    assert main(["sweep", str(CAPTURE), *grid, "--jobs", "2", "--out", str(local)]) == 0
    assert (
        main(["sweep", str(CAPTURE), *grid, "--cluster", cluster.address, "--out", str(remote)])
        == 0
    )
    csv_local = (local / "sweep.csv").read_bytes()
    assert csv_local == (remote / "sweep.csv").read_bytes()
    lines = csv_local.decode().splitlines()
    assert len(lines) == 1 + 9
    assert all(",ok,," in line for line in lines[1:])
    assert (remote / "heatmap.png").read_bytes() == (local / "heatmap.png").read_bytes()


def test_an_unreachable_cluster_fails_clearly(tmp_path: Path) -> None:
    runner = DaskTaskRunner(f"tcp://127.0.0.1:{free_port()}", connect_timeout=2)
    with pytest.raises(OSError, match="connect"):
        runner.map(len, ["abc"], None)
