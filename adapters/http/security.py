"""Bearer-token protection of the mutating endpoints.

* With a token configured (``ADMIN_API_TOKEN``): the request must carry
  ``Authorization: Bearer <token>``. Missing or malformed → 401 with
  ``WWW-Authenticate: Bearer``; a different token → 403. The comparison is constant-time.
* With no token: mutations are allowed only when the API listens on a loopback address
  *and* the request comes from loopback; anything else → 403 telling the operator to set
  ``ADMIN_API_TOKEN``.

The token is never logged nor put in an error message or ``repr``.
"""

from __future__ import annotations

import hmac
import ipaddress

from adapters.http.envelope import ApiError

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str | None) -> bool:
    """True for ``127.0.0.0/8``, ``::1``, ``::ffff:127.x`` and ``localhost``; False otherwise.

    ``0.0.0.0`` / ``::`` (every interface) are *not* loopback.
    """
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class AuthenticationRequiredError(ApiError):
    """401: no usable credentials were sent."""

    def __init__(self, message: str) -> None:
        super().__init__(
            401,
            "unauthorized",
            message,
            headers={"WWW-Authenticate": 'Bearer realm="realtime-strategies"'},
        )


class AccessDeniedError(ApiError):
    """403: credentials were sent but do not grant access, or mutations are locked."""

    def __init__(self, message: str) -> None:
        super().__init__(403, "forbidden", message)


class ApiSecurity:
    """Decides whether a request may mutate configuration.

    ``token``: the admin bearer token, or None/empty for "loopback only".
    ``bound_to_loopback``: whether the HTTP server listens only on a loopback address.
    """

    __slots__ = ("_token", "bound_to_loopback")

    def __init__(self, token: str | None, bound_to_loopback: bool) -> None:
        self._token = token.encode("utf-8") if token else None
        self.bound_to_loopback = bound_to_loopback

    def __repr__(self) -> str:
        mode = "token" if self._token is not None else "loopback-only"
        return f"ApiSecurity(mode={mode}, bound_to_loopback={self.bound_to_loopback})"

    @property
    def token_configured(self) -> bool:
        return self._token is not None

    def authorize(self, authorization: str | None, client_host: str | None) -> None:
        """Return if the request may mutate; raise 401/403 :class:`ApiError` otherwise."""
        if self._token is None:
            if self.bound_to_loopback and is_loopback_host(client_host):
                return
            raise AccessDeniedError(
                "mutating endpoints are disabled: ADMIN_API_TOKEN is not set and the API is "
                "not restricted to loopback; set ADMIN_API_TOKEN and send "
                "'Authorization: Bearer <token>'"
            )
        if not authorization:
            raise AuthenticationRequiredError(
                "missing 'Authorization: Bearer <token>' header (ADMIN_API_TOKEN)"
            )
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise AuthenticationRequiredError(
                "malformed Authorization header: expected 'Bearer <token>'"
            )
        if not hmac.compare_digest(credentials.encode("utf-8"), self._token):
            raise AccessDeniedError("invalid bearer token")
