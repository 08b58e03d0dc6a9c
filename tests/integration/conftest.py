"""Real servers for the integration tests.

- **SecantusDB** (MongoDB wire protocol, a dev dependency) is started by the tests:
  :class:`SecantusServer` runs ``python -m secantus`` on a free port and waits until an
  ``AsyncMongoClient`` ping answers. ``secantus_uri`` is one server for the whole session;
  fault tests build their own with :func:`start_secantus` and ``stop()`` / ``start()`` it on
  the same port.
- **MariaDB** on 127.0.0.1:3306 (root, empty password; ``make services`` starts it):
  ``mysql_url`` is a fresh database ``test_rs_<random>`` created for the session and dropped
  at its end; ``mysql_engine`` migrates it and empties the tables for each test.
- **NATS** at :data:`NATS_URL` (``make services``).

Nothing here skips: a server that cannot be started or reached fails the tests loudly.
Every test in this directory is marked ``integration``.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import nats
import pytest
from nats.aio.client import Client as NatsClient
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mongo.config_store import create_mongo_client
from adapters.sql.config_store import create_sql_engine
from adapters.sql.migrations import TABLES, migrate

if TYPE_CHECKING:
    from tests.integration.partition_cluster import Cluster
    from tests.integration.service_harness import ServiceHarness, Topics

T = TypeVar("T")

NATS_URL = "nats://127.0.0.1:4222"
MYSQL_HOST = "127.0.0.1"
MYSQL_PORT = 3306
MYSQL_USER = "root"
SECANTUS_START_TIMEOUT_S = 30.0

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+): a server started a moment
    later binds it without racing other processes' outgoing connections, which take
    ephemeral ports (the race that made a worker of a partitioning test exit)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        fallback: int = sock.getsockname()[1]
        return fallback


def _run_in_thread(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on its own event loop in a worker thread (safe from any context)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


class ServerProcess:
    """A server run as a child process on a loopback port (``port``, or a free one), its
    output appended to ``<log_dir>/<name>-<port>.log``; it can be stopped and started again
    on the same port."""

    def __init__(self, log_dir: Path, name: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class SecantusServer(ServerProcess):
    """A SecantusDB process that can be stopped and started again on the same port.

    ``storage_path`` ``":memory:"`` loses the data at every stop (like a wiped mongod); a
    directory keeps it across restarts (like a restarted mongod).
    """

    def __init__(self, log_dir: Path, storage_path: str = ":memory:", port: int = 0) -> None:
        super().__init__(log_dir, "secantus", port)
        self.storage_path = storage_path

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.running:
            return
        command = [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            self.storage_path,
            "--log-level",
            "WARNING",
        ]
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.log_path.parent
            )
        finally:
            log.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + SECANTUS_START_TIMEOUT_S
        process = self.process
        assert process is not None

        async def ping() -> None:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300
            )
            try:
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"SecantusDB exited with {process.returncode} before answering "
                            f"on {self.uri}; log {self.log_path}:\n{self.log_tail()}"
                        )
                    try:
                        await client.admin.command("ping")
                        return
                    except PyMongoError as exc:
                        if time.monotonic() > deadline:
                            raise RuntimeError(
                                f"SecantusDB did not answer on {self.uri} within "
                                f"{SECANTUS_START_TIMEOUT_S:.0f} s ({exc}); log:\n"
                                f"{self.log_tail()}"
                            ) from exc
                        await asyncio.sleep(0.1)
            finally:
                await client.close()

        _run_in_thread(ping)

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def start_secantus(log_dir: Path, storage_path: str = ":memory:") -> SecantusServer:
    """Start a SecantusDB server on a free port (retrying if the port was taken meanwhile)."""
    last_error: Exception | None = None
    for _ in range(3):
        server = SecantusServer(log_dir, storage_path)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            last_error = exc
    raise RuntimeError(f"could not start SecantusDB: {last_error}")


@pytest.fixture(scope="session")
def secantus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    server = start_secantus(tmp_path_factory.mktemp("secantus"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secantus_uri(secantus_server: SecantusServer) -> str:
    return secantus_server.uri


@pytest.fixture
def mongo_database_name() -> str:
    return f"test_rs_{secrets.token_hex(6)}"


@pytest.fixture
async def mongo_client(
    secantus_server: SecantusServer,
) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A client of the session server (fail-fast timeouts, like production)."""
    if not secantus_server.running:  # a fault test left it stopped
        await asyncio.to_thread(secantus_server.start)
    client = create_mongo_client(secantus_server.uri)
    yield client
    await client.close()


# --- MariaDB ------------------------------------------------------------------------------


def _mysql_admin(statement: str) -> None:
    """Run one administrative statement on the MariaDB server (no database selected)."""
    server_url = f"mysql+aiomysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/"

    async def run() -> None:
        engine = create_sql_engine(server_url, connect_timeout_s=5.0)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    try:
        _run_in_thread(run)
    except Exception as exc:
        raise RuntimeError(
            f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT} (user {MYSQL_USER}, empty password) failed "
            f"{statement!r}: {exc}. Start it with `make services`."
        ) from exc


@pytest.fixture
def mysql_uri() -> Iterator[str]:
    """A MariaDB database of this test's own, in the reference's ``mysql://`` form."""
    database = f"test_rs_e2e_{secrets.token_hex(6)}"
    _mysql_admin(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    yield f"mysql://root:@127.0.0.1:3306/{database}"
    _mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture
def failover_stores(secantus_uri: str, mysql_uri: str, mongo_database_name: str) -> dict[str, Any]:
    """The stores of a service on the failover config store (``service_env``'s keywords): a
    database of the test's own on the session's SecantusDB as primary, ``mysql_uri`` as
    fallback."""
    return {
        "mongodb_uri": secantus_uri,
        "mongodb_database": mongo_database_name,
        "mysql_uri": mysql_uri,
    }


@pytest.fixture
def sqlite_store(tmp_path: Path) -> dict[str, Any]:
    """The config store of a service on a SQLite file of the test's own (``service_env``'s
    keywords): it outlives the process, so a restarted service finds what was written."""
    return {"config_store": "sqlite", "sqlite_path": str(tmp_path / "config.sqlite3")}


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh MariaDB database for this session (dropped at the end)."""
    database = f"test_rs_{secrets.token_hex(6)}"
    _mysql_admin(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    yield f"mysql+aiomysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{database}"
    _mysql_admin(f"DROP DATABASE IF EXISTS `{database}`")


async def empty_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in TABLES:
            await conn.execute(delete(table))


@pytest.fixture
async def mysql_engine(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session database, migrated, with the three tables empty."""
    engine = create_sql_engine(mysql_url)
    await migrate(engine)
    await empty_tables(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, migrated SQLite file."""
    engine = create_sql_engine(f"sqlite+aiosqlite:///{tmp_path / 'config.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


# --- NATS ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nats_url() -> str:
    return NATS_URL


# --- Fault injection ----------------------------------------------------------------------


class TcpProxy:
    """A TCP proxy to a real server that a test can cut and restore (on the same port).

    ``cut()`` closes the listener and aborts every proxied connection, so clients see the
    server vanish without the shared server itself being stopped. Runs on the test's loop.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        if self._server is None:  # cut meanwhile
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self._transports.update((writer.transport, upstream_writer.transport))
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()


@pytest.fixture
async def mysql_proxy() -> AsyncIterator[TcpProxy]:
    """A cuttable proxy in front of the shared MariaDB."""
    proxy = TcpProxy(MYSQL_HOST, MYSQL_PORT)
    await proxy.start()
    yield proxy
    await proxy.cut()


@pytest.fixture
async def mysql_engine_via_proxy(
    mysql_url: str, mysql_engine: AsyncEngine, mysql_proxy: TcpProxy
) -> AsyncIterator[AsyncEngine]:
    """An engine on the session database (migrated, emptied) that reaches MariaDB through
    ``mysql_proxy``; cut the proxy and this engine's MariaDB is gone."""
    url = mysql_url.replace(f"{MYSQL_HOST}:{MYSQL_PORT}", f"127.0.0.1:{mysql_proxy.port}")
    engine = create_sql_engine(url, connect_timeout_s=1.0)
    yield engine
    await engine.dispose()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServiceHarness]:
    """The test's service processes; killed at teardown, their logs printed (shown on failure)."""
    # imported here: the harness module imports this one
    from tests.integration.service_harness import ServiceHarness

    harness = ServiceHarness(tmp_path / "logs")
    try:
        yield harness
    finally:
        harness.close()
        print(harness.describe())


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator[NatsClient]:
    """A NATS client of the test (reconnecting without limit), drained at teardown."""
    client = await nats.connect(nats_url, name="integration-test", max_reconnect_attempts=-1)
    yield client
    await client.drain()


@pytest.fixture
def nc(nats_client: NatsClient) -> NatsClient:
    """:func:`nats_client` under its short name."""
    return nats_client


@pytest.fixture
def topics() -> Topics:
    """The test's own NATS subjects."""
    from tests.integration.service_harness import Topics  # imports this module

    return Topics.unique()


@pytest.fixture
def cluster(tmp_path: Path, nats_url: str) -> Iterator[Cluster]:
    """The partitioned deployment of the test; every process killed at teardown."""
    from tests.integration.partition_cluster import Cluster  # imports this module

    c = Cluster(tmp_path, nats_url)
    yield c
    c.stop()
