"""Bearer-token protection of mutating endpoints, unit and through HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog
from dependency_injector import providers
from fastapi import FastAPI

from adapters.http.envelope import ApiError
from adapters.http.security import (
    AccessDeniedError,
    ApiSecurity,
    AuthenticationRequiredError,
    host_of,
    is_loopback_host,
)
from tests.unit.api.conftest import (
    AUTH,
    LOCAL_CLIENT,
    TOKEN,
    ApiTestContainer,
    make_client,
)

pytestmark = pytest.mark.unit

SKEW = "/api/v1/strategies/orderbook_skew"
WRITE = {"parameters": {"top_levels": 6}, "changed_by": "ops", "reason": "t"}


# --- ApiSecurity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("testclient", False),
        ("", False),
        (None, False),
        ("not an ip", False),
    ],
)
def test_is_loopback_host(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_correct_token_is_accepted() -> None:
    security = ApiSecurity(TOKEN, bound_to_loopback=False)
    security.authorize(f"Bearer {TOKEN}", "10.0.0.1")
    security.authorize(f"bearer {TOKEN}", "10.0.0.1")
    security.authorize(f"  BEARER   {TOKEN}  ", None)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", TOKEN])
def test_missing_or_malformed_header_is_401(header: str | None) -> None:
    security = ApiSecurity(TOKEN, bound_to_loopback=True)
    with pytest.raises(AuthenticationRequiredError) as caught:
        security.authorize(header, "127.0.0.1")
    assert caught.value.status_code == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer tökén", "Bearer a b"],
)
def test_wrong_token_is_403(header: str) -> None:
    security = ApiSecurity(TOKEN, bound_to_loopback=True)
    with pytest.raises(AccessDeniedError) as caught:
        security.authorize(header, "127.0.0.1")
    assert caught.value.status_code == 403
    assert TOKEN not in caught.value.message


def test_without_token_only_loopback_listener_and_client_may_mutate() -> None:
    ApiSecurity(None, bound_to_loopback=True).authorize(None, "127.0.0.1", "localhost")
    ApiSecurity("", bound_to_loopback=True).authorize(None, "::1", "[::1]:8080")
    for security, client in [
        (ApiSecurity(None, bound_to_loopback=True), "10.0.0.1"),
        (ApiSecurity(None, bound_to_loopback=True), None),
        (ApiSecurity(None, bound_to_loopback=False), "127.0.0.1"),
    ]:
        with pytest.raises(AccessDeniedError) as caught:
            security.authorize(f"Bearer {TOKEN}", client, "localhost")
        assert "ADMIN_API_TOKEN" in caught.value.message


def test_token_never_in_repr() -> None:
    security = ApiSecurity(TOKEN, bound_to_loopback=False)
    assert TOKEN not in repr(security)


def test_auth_errors_are_api_errors() -> None:
    assert issubclass(AuthenticationRequiredError, ApiError)
    assert issubclass(AccessDeniedError, ApiError)


# --- through HTTP -----------------------------------------------------------------------------

MUTATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", f"{SKEW}/config", WRITE),
    ("POST", f"{SKEW}/config/BTCUSDT", WRITE),
    ("DELETE", f"{SKEW}/config", None),
    ("DELETE", f"{SKEW}/config/BTCUSDT", None),
    ("POST", f"{SKEW}/rollback", {"changed_by": "ops"}),
    ("POST", "/api/v1/strategies/cache/refresh", None),
    ("POST", "/api/v1/signals/pause", {"changed_by": "ops", "reason": "t"}),
    ("POST", "/api/v1/signals/resume", {"changed_by": "ops", "reason": "t"}),
]


@pytest.mark.parametrize(("method", "url", "payload"), MUTATIONS)
async def test_mutation_without_token_is_401(
    client: httpx.AsyncClient, method: str, url: str, payload: dict[str, Any] | None
) -> None:
    response = await client.request(method, url, json=payload)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    envelope = response.json()
    assert envelope["success"] is False
    assert envelope["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "url", "payload"), MUTATIONS)
async def test_mutation_with_wrong_token_is_403(
    client: httpx.AsyncClient, method: str, url: str, payload: dict[str, Any] | None
) -> None:
    headers = {"Authorization": "Bearer not-the-token"}
    response = await client.request(method, url, json=payload, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_auth_is_checked_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{SKEW}/config", json={"garbage": True})
    assert response.status_code == 401


async def test_reads_need_no_token(client: httpx.AsyncClient) -> None:
    for url in ("/api/v1/strategies", f"{SKEW}/config", f"{SKEW}/audit", f"{SKEW}/schema"):
        assert (await client.get(url)).status_code == 200


async def test_mutation_with_token_succeeds(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{SKEW}/config", json=WRITE, headers=AUTH)
    assert response.status_code == 200


async def test_no_token_loopback_listener_local_client_may_mutate(
    container: ApiTestContainer, app: FastAPI
) -> None:
    container.api_security.override(providers.Object(ApiSecurity(None, bound_to_loopback=True)))
    async with make_client(app, LOCAL_CLIENT, "http://localhost:8080") as local:
        assert (await local.post(f"{SKEW}/config", json=WRITE)).status_code == 200
    async with make_client(app, base_url="http://localhost:8080") as remote:
        response = await remote.post(f"{SKEW}/config", json=WRITE)
        assert response.status_code == 403
        assert "ADMIN_API_TOKEN" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost:8080", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("evil.example:8080", "evil.example"),
        ("127.0.0.1.nip.io", "127.0.0.1.nip.io"),
        ("", None),
        (None, None),
    ],
)
def test_host_of(header: str | None, host: str | None) -> None:
    assert host_of(header) == host


@pytest.mark.parametrize(
    "host_header",
    ["localhost:8080", "LOCALHOST", "127.0.0.1:8080", "127.0.0.2", "[::1]:8080"],
)
def test_without_token_loopback_host_headers_may_mutate(host_header: str) -> None:
    ApiSecurity(None, bound_to_loopback=True).authorize(None, "127.0.0.1", host_header)


@pytest.mark.parametrize(
    "host_header",
    ["evil.example", "evil.example:8080", "127.0.0.1.nip.io", "10.0.0.1", "0.0.0.0:8080", "", None],
)
def test_without_token_other_host_headers_are_refused(host_header: str | None) -> None:
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 calls from loopback, but
    names itself in Host."""
    with pytest.raises(AccessDeniedError) as caught:
        ApiSecurity(None, bound_to_loopback=True).authorize(None, "127.0.0.1", host_header)
    assert "Host" in caught.value.message


def test_with_token_the_host_header_does_not_matter() -> None:
    ApiSecurity(TOKEN, bound_to_loopback=False).authorize(f"Bearer {TOKEN}", "10.0.0.1", "api")


@pytest.mark.parametrize(
    ("bound_to_loopback", "host", "named"),
    [
        # DNS rebinding: a local client, but a foreign name in Host.
        (True, "http://rebound.attacker.example:8080", "Host"),
        # No token on a public listener: even a local client may not mutate.
        (False, "http://localhost", "ADMIN_API_TOKEN"),
    ],
    ids=["dns-rebinding", "no-token-public-listener"],
)
async def test_a_refused_local_write_is_403_and_changes_nothing(
    container: ApiTestContainer, app: FastAPI, bound_to_loopback: bool, host: str, named: str
) -> None:
    security = ApiSecurity(None, bound_to_loopback=bound_to_loopback)
    container.api_security.override(providers.Object(security))
    async with make_client(app, LOCAL_CLIENT, host) as local:
        response = await local.post(f"{SKEW}/config", json=WRITE)
        assert response.status_code == 403
        assert named in response.json()["error"]["message"]
        assert (await local.get(f"{SKEW}/config")).json()["data"]["exists"] is False


async def test_token_never_logged(client: httpx.AsyncClient) -> None:
    with structlog.testing.capture_logs() as logs:
        await client.post(f"{SKEW}/config", json=WRITE, headers=AUTH)
        await client.post(f"{SKEW}/config", json=WRITE, headers={"Authorization": "Bearer nope"})
        await client.post(f"{SKEW}/config", json=WRITE)
    assert logs, "the access log should have written something"
    assert all(TOKEN not in repr(entry) for entry in logs)
    assert all("authorization" not in {k.lower() for k in entry} for entry in logs)
