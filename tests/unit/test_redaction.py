"""Secrets never leave the process: :func:`adapters.redaction.redact` and where it is applied
(``/ready``, log lines, printed settings errors, exported spans), one test per kind of secret
(NATS, MongoDB, MySQL URLs, OTLP headers, the admin token)."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from adapters.observability.tracing import RedactingSpanExporter
from adapters.redaction import MASK, header_secrets, redact, redact_value, url_secrets
from entrypoints.service import configure_logging
from entrypoints.settings import Settings, invalid_settings_message, known_secrets

pytestmark = pytest.mark.unit

PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#$%&()*+-.:;=@[]^_{|}~/?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # NATS: user/password, a bare token, several servers, inside a log line.
        ("nats://alice:s3cr3t@nats:4222", "nats://alice:***@nats:4222"),
        ("nats://T0KEN@nats:4222", "nats://***@nats:4222"),
        (
            "nats://a:pw1@h1:4222,nats://b:pw2@h2:4222",
            "nats://a:***@h1:4222,nats://b:***@h2:4222",
        ),
        (
            'nats_connected url="nats://alice:s3cr3t@nats:4222" name=x',
            'nats_connected url="nats://alice:***@nats:4222" name=x',
        ),
        # MongoDB: replica set hosts, secret query parameters.
        (
            "mongodb://admin:s3cr3t@h1:27017,h2:27017/petrosa",
            "mongodb://admin:***@h1:27017,h2:27017/petrosa",
        ),
        (
            "mongodb://admin:s3cr3t@h1:27017,h2:27017/petrosa?replicaSet=rs0",
            "mongodb://admin:***@h1:27017,h2:27017/petrosa?replicaSet=rs0",
        ),
        (
            "mongodb://h1/db?authSource=admin&tlsCertificateKeyFilePassword=pem-pass",
            "mongodb://h1/db?authSource=admin&tlsCertificateKeyFilePassword=***",
        ),
        ("mongodb://reader@h1:27017", "mongodb://reader@h1:27017"),  # a user name, no secret
        # MySQL (MYSQL_URI): the last @ ends the password; no password, nothing to hide.
        ("mysql://user:secret@host:3306/db", "mysql://user:***@host:3306/db"),
        ("mysql+aiomysql://user:secret@host/db", "mysql+aiomysql://user:***@host/db"),
        ("mysql://user:p@ss/w@host:3306/db", "mysql://user:***@host:3306/db"),
        ("mysql://root@127.0.0.1:3306/test", "mysql://root@127.0.0.1:3306/test"),
        ("mysql://127.0.0.1:3306/test", "mysql://127.0.0.1:3306/test"),
        ("sqlite+aiosqlite:///var/lib/rs/config.db", "sqlite+aiosqlite:///var/lib/rs/config.db"),
        ("error: mysql://root:pw@db:3306/x failed", "error: mysql://root:***@db:3306/x failed"),
        # OTLP endpoint with credentials.
        ("https://key:tok@otlp.example:4318", "https://key:***@otlp.example:4318"),
        ("no url here", "no url here"),
        ("not a uri", "not a uri"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@given(
    scheme=st.sampled_from(["nats", "mongodb", "mysql", "mysql+aiomysql", "https", "tls"]),
    user=st.text(string.ascii_lowercase, min_size=1, max_size=8),
    password=st.text(PASSWORD_ALPHABET, min_size=8, max_size=24),
    prefix=st.sampled_from(["", "error: ", 'url="', "connect to ["]),
    suffix=st.sampled_from(["", " failed", '" name=x', "], retrying", ",nats://h2:4222"]),
)
def test_no_password_survives(
    scheme: str, user: str, password: str, prefix: str, suffix: str
) -> None:
    password = f"PW{password}"  # never equal to the user name, which stays visible
    text = f"{prefix}{scheme}://{user}:{password}@host.example:1234/db{suffix}"
    redacted = redact(text)
    assert password not in redacted
    assert f"{scheme}://{user}:{MASK}@" in redacted


@pytest.mark.parametrize("password", ["secret", "p@ss", "p/ss", "with space", "a:b", "%41bc"])
def test_redacted_never_shows_the_password(password: str) -> None:
    assert password not in redact(f"mysql://user:{password}@dbhost:3306/db")


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    text = "Access denied for 'svc' using password 'hunter2-long' (token abcd-efgh-ijkl)"
    redacted = redact(text, ["hunter2-long", "abcd-efgh-ijkl", "ab"])
    assert "hunter2-long" not in redacted
    assert "abcd-efgh-ijkl" not in redacted
    assert "'svc'" in redacted  # short or unknown values are kept


def test_redact_value_walks_structures() -> None:
    body = {
        "components": {
            "nats": {"info": {"url": "nats://u:secretpw@h:4222"}},
            "stores": [("mongodb", "mongodb://u:secretpw@m:27017")],
        },
        "count": 3,
    }
    redacted = redact_value(body)
    assert "secretpw" not in json.dumps(redacted)
    assert redacted["count"] == 3
    assert redacted["components"]["stores"][0][0] == "mongodb"


def test_secret_extraction_from_urls_and_headers() -> None:
    assert url_secrets("nats://a:p%40ss@h1,nats://TOKEN@h2") == ["p%40ss", "p@ss", "TOKEN"]
    assert url_secrets("mongodb://h/db?password=qp-secret") == ["qp-secret"]
    assert url_secrets("") == []
    assert header_secrets("api-key=k1-secret,Authorization=Bearer%20xyz") == [
        "k1-secret",
        "Bearer%20xyz",
        "Bearer xyz",
    ]


def test_known_secrets_of_the_environment() -> None:
    environ = {
        "NATS_URL": "nats://n:nats-password@nats:4222",
        "MONGODB_URI": "mongodb://m:mongo-password@mongo:27017",
        "MYSQL_URI": "mysql://s:mysql-password@mysql:3306/db",
        "ADMIN_API_TOKEN": "admin-token-value",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=otlp-header-value",
        "OTHER": "not-a-secret",
    }
    assert set(known_secrets(environ)) == {
        "nats-password",
        "mongo-password",
        "mysql-password",
        "admin-token-value",
        "otlp-header-value",
    }


def test_invalid_settings_message_masks_the_input() -> None:
    environ = {"MYSQL_URI": "mysql://s:mysql-password@mysql:3306/db"}
    with pytest.raises(ValidationError) as raised:
        Settings(mysql_uri=123, nats_url="nats://u:nats-password@n:4222", fastapi_port=-1)
    message = invalid_settings_message(raised.value, environ)
    assert "nats-password" not in message
    assert "invalid settings" in message


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The service's log configuration for one test (written to the captured stderr)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    secrets = ("otlp-header-value", "admin-token-value")
    configure_logging("INFO", secrets)
    structlog.get_logger("test").info(
        "nats_connected", url="nats://alice:nats-password@nats:4222", header="otlp-header-value"
    )
    logging.getLogger("application.test").warning(
        "could not reach mongodb://m:mongo-password@mongo:27017 with admin-token-value"
    )
    try:
        raise ConnectionError("mysql://s:mysql-password@db:3306/x refused")
    except ConnectionError:
        structlog.get_logger("test").exception("store_failed")
    text = capsys.readouterr().err
    for secret in ("nats-password", "mongo-password", "mysql-password", *secrets):
        assert secret not in text
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert events[0] == "nats_connected"
    assert len(events) == 3


def test_exported_spans_are_redacted() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(RedactingSpanExporter(memory, ["otlp-header-value"]))
    )
    tracer = provider.get_tracer("test")

    def connect() -> None:
        with tracer.start_as_current_span("connect") as span:
            span.set_attribute("db.url", "mongodb://m:mongo-password@mongo:27017")
            span.set_attribute("servers", ["nats://n:nats-password@h:4222"])
            span.set_attribute("header", "otlp-header-value")
            raise RuntimeError("mysql://s:mysql-password@db failed")

    with pytest.raises(RuntimeError):
        connect()
    [exported] = memory.get_finished_spans()
    dumped = exported.to_json()
    for secret in ("mongo-password", "nats-password", "mysql-password", "otlp-header-value"):
        assert secret not in dumped
    assert exported.attributes is not None
    assert exported.attributes["db.url"] == "mongodb://m:***@mongo:27017"
    assert exported.events[0].name == "exception"
