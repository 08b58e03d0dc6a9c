"""Bearer-token protection of the mutating endpoints.

* With a token configured (``ADMIN_API_TOKEN``): the request must carry
  ``Authorization: Bearer <token>``. Missing or malformed → 401 with
  ``WWW-Authenticate: Bearer``; a different token → 403. The comparison is constant-time.
* With no token: mutations are allowed only when the API listens on a loopback address,
  the request comes from loopback *and* its ``Host`` header names a loopback host
  (``localhost``, ``127.0.0.1``, ``[::1]``, with any port). The last rule defeats DNS
  rebinding: a web page whose name an attacker re-points at 127.0.0.1 reaches the API from a
  local browser, but with its own name in ``Host``. Anything else → 403 telling the operator
  to set ``ADMIN_API_TOKEN``.

The web console (``/console``) authenticates the same way once per browser session: its login
form checks the token with :meth:`ApiSecurity.authorize` and sets an ``HttpOnly``,
``SameSite=Strict`` cookie (:data:`CONSOLE_SESSION_COOKIE`) holding the operator's name, an
expiry and an HMAC of both keyed by a key derived from the token: never the token itself.
Every replica with the same token verifies it, and rotating the token ends every session.
Mutations authenticated by the cookie must also carry :data:`CONSOLE_REQUEST_HEADER` (a
custom header, which a cross-site form cannot send and a cross-origin script cannot send
without a CORS preflight this API never grants).

The token is never logged nor put in an error message or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import time

from adapters.http.envelope import ApiError

CONSOLE_SESSION_COOKIE = "rs_console_session"
"""Name of the console's session cookie."""
CONSOLE_REQUEST_HEADER = "x-requested-by"
"""Header (value ``console``) a cookie-authenticated mutation must carry."""
CONSOLE_SESSION_SECONDS = 12 * 3600
"""Lifetime of a console session (the cookie itself ends with the browser session)."""

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


def host_of(header: str | None) -> str | None:
    """The host name of a ``Host`` header value (``[::1]:8080`` → ``::1``; no port)."""
    if not header:
        return None
    value = header.strip()
    if value.startswith("["):  # [IPv6]:port
        host, bracket, _ = value[1:].partition("]")
        return host if bracket else None
    host, colon, port = value.rpartition(":")
    if colon and port.isdigit() and ":" not in host:
        return host
    return value


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

    __slots__ = ("_session_key", "_token", "bound_to_loopback")

    def __init__(self, token: str | None, bound_to_loopback: bool) -> None:
        self._token = token.encode("utf-8") if token else None
        self.bound_to_loopback = bound_to_loopback
        self._session_key = (
            hmac.new(
                self._token, b"realtime-strategies console session v1", hashlib.sha256
            ).digest()
            if self._token is not None
            else secrets.token_bytes(32)
        )

    def __repr__(self) -> str:
        mode = "token" if self._token is not None else "loopback-only"
        return f"ApiSecurity(mode={mode}, bound_to_loopback={self.bound_to_loopback})"

    @property
    def token_configured(self) -> bool:
        return self._token is not None

    def issue_session(self, name: str, now: float | None = None) -> str:
        """A console session cookie value for operator ``name`` (see the module doc)."""
        expires = int((time.time() if now is None else now) + CONSOLE_SESSION_SECONDS)
        encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{encoded}.{expires}.{self._sign(encoded, expires)}"

    def session_name(self, cookie: str | None, now: float | None = None) -> str | None:
        """The operator name of a valid, unexpired session cookie; None otherwise."""
        if not cookie or cookie.count(".") != 2:
            return None
        encoded, expires_text, signature = cookie.split(".")
        if not expires_text.isdigit():
            return None
        expires = int(expires_text)
        if not hmac.compare_digest(signature, self._sign(encoded, expires)):
            return None
        if expires < (time.time() if now is None else now):
            return None
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None

    def _sign(self, encoded_name: str, expires: int) -> str:
        message = f"{encoded_name}.{expires}".encode("ascii")
        return hmac.new(self._session_key, message, hashlib.sha256).hexdigest()

    def authorize(
        self,
        authorization: str | None,
        client_host: str | None,
        host_header: str | None = None,
        session: str | None = None,
    ) -> None:
        """Return if the request may mutate; raise 401/403 :class:`ApiError` otherwise.

        ``host_header`` is the request's ``Host``; it matters only without a token.
        ``session``: a console session cookie, taken in place of a missing ``Authorization``
        (the caller passes it only when the request carries :data:`CONSOLE_REQUEST_HEADER`).
        """
        if self._token is not None and not authorization and self.session_name(session):
            return
        if self._token is None:
            if not (self.bound_to_loopback and is_loopback_host(client_host)):
                raise AccessDeniedError(
                    "mutating endpoints are disabled: ADMIN_API_TOKEN is not set and the API "
                    "is not restricted to loopback; set ADMIN_API_TOKEN and send "
                    "'Authorization: Bearer <token>'"
                )
            if not is_loopback_host(host_of(host_header)):
                raise AccessDeniedError(
                    "without ADMIN_API_TOKEN, mutations need a loopback Host header "
                    "(localhost, 127.0.0.1 or [::1]); set ADMIN_API_TOKEN to use another name"
                )
            return
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
