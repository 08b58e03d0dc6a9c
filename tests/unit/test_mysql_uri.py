"""``MYSQL_URI`` in the reference's ``mysql://user:pass@host:3306/db`` form → SQLAlchemy URL
(its redaction for logs: ``test_redaction.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from adapters.sql import mysql_url, parse_mysql_uri, sql_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mysql://user:pass@host:3306/db", "mysql+aiomysql://user:pass@host:3306/db"),
        ("mysql+aiomysql://user:pass@host:3306/db", "mysql+aiomysql://user:pass@host:3306/db"),
        ("mysql+pymysql://user:pass@host/db", "mysql+aiomysql://user:pass@host/db"),
        ("mariadb://user:pass@host:3307/db", "mysql+aiomysql://user:pass@host:3307/db"),
        (
            "MYSQL://user:pass@db.internal:3306/petrosa",
            "mysql+aiomysql://user:pass@db.internal:3306/petrosa",
        ),
        ("mysql://root@127.0.0.1:3306/test", "mysql+aiomysql://root@127.0.0.1:3306/test"),
        ("mysql://127.0.0.1/test", "mysql+aiomysql://127.0.0.1/test"),
        ("mysql://user:@host/db", "mysql+aiomysql://user:@host/db"),
        ("  mysql://u:p@h:1/d  ", "mysql+aiomysql://u:p@h:1/d"),
    ],
)
def test_accepted_forms(uri: str, expected: str) -> None:
    assert parse_mysql_uri(uri) == expected


def test_result_is_a_sqlalchemy_url_with_every_part() -> None:
    url = make_url(parse_mysql_uri("mysql://user:secret@db.example:3306/petrosa?charset=utf8mb4"))
    assert url.drivername == "mysql+aiomysql"
    assert url.username == "user"
    assert url.password == "secret"
    assert url.host == "db.example"
    assert url.port == 3306
    assert url.database == "petrosa"
    assert dict(url.query) == {"charset": "utf8mb4"}


@pytest.mark.parametrize(
    ("uri", "password"),
    [
        ("mysql://user:p%40ss%2Fw%3Ard@host:3306/db", "p@ss/w:rd"),  # percent-encoded
        ("mysql://user:p@ss@host:3306/db", "p@ss"),  # raw '@': the last one ends it
        ("mysql://user:pa:ss@host/db", "pa:ss"),  # the first ':' ends the user
        ("mysql://user:p#?ss@host/db", "p#?ss"),
    ],
)
def test_special_characters_in_passwords(uri: str, password: str) -> None:
    url = mysql_url(uri)
    assert url.password == password
    assert url.host == "host"
    assert url.database == "db"
    # The rendered string parses back to the same password.
    assert make_url(parse_mysql_uri(uri)).password == password


def test_missing_host_defaults_to_localhost_and_ipv6_is_understood() -> None:
    assert mysql_url("mysql:///db").host == "localhost"
    url = mysql_url("mysql://u:p@[::1]:3306/db")
    assert url.host == "::1"
    assert url.port == 3306


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://user:hunter2@host/db",
        "mongodb://localhost:27017",
        "user:hunter2@host:3306/db",
        "mysql://user:hunter2@host:notaport/db",
        "mysql://user:hunter2@host:70000/db",
    ],
)
def test_rejected_forms(uri: str) -> None:
    with pytest.raises(ValueError, match=r"MySQL|port") as caught:
        parse_mysql_uri(uri)
    assert "hunter2" not in str(caught.value)


def test_sql_url_knows_sqlite_and_bare_paths() -> None:
    assert sql_url("sqlite:///tmp/x.db").drivername == "sqlite+aiosqlite"
    assert sql_url("sqlite+aiosqlite:////tmp/x.db").database == "/tmp/x.db"  # absolute
    assert sql_url("sqlite+aiosqlite:///x.db").database == "x.db"  # relative
    bare = sql_url("/var/lib/rs/config.db")
    assert bare.drivername == "sqlite+aiosqlite"
    assert bare.database == "/var/lib/rs/config.db"
    assert sql_url("mysql://u:p@h/d").drivername == "mysql+aiomysql"
    with pytest.raises(ValueError, match=r"\*\*\*"):
        sql_url("oracle://scott:tiger@h/d")
