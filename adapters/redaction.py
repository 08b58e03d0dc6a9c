"""Secrets never leave the process: the one function that masks them in text.

:func:`redact` is applied wherever text leaves the process — ``/ready`` bodies, every log
line (a structlog processor installed by the entrypoint), printed start-up errors and
exported trace spans — and by adapters that build messages from their own connection
strings. It masks:

* the user info of every URL (``scheme://user:password@host`` → ``scheme://user:***@host``;
  a bare token, ``nats://token@host``, → ``nats://***@host``), wherever the URL sits in the
  text (log lines, exception messages, comma-separated server lists). As
  :func:`adapters.sql.mysql_url` parses MySQL URIs, the *last* ``@`` of the URL ends the user
  info, so a password holding ``@``, ``/`` or ``:`` is hidden whole;
* URL query parameters that carry secrets (``password=``, ``token=``, ``secret=``, …);
* every value of ``secrets`` (the configured passwords, tokens and OTLP header values the
  entrypoint knows), wherever it appears verbatim.

Masking is conservative: it may hide a little more than the secret (a host name that follows
an ``@`` in a query string), never less.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A URL runs to whitespace, a quote or angle bracket, or a comma that starts another URL.
_URL_END = re.compile(r"[\s\"'<>`]|,(?=[A-Za-z][A-Za-z0-9+.\-]*://)")
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:[A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|apikey|api_key|"
    r"credential|signature|private|key))=)([^&;#\s]*)"
)
_USERNAME_ONLY = re.compile(r"(?i)^\s*\S*(mysql|mariadb|mongodb|postgres|sqlite)")
"""Schemes whose user info without a colon is a user name, not a token."""
_MIN_SECRET_LENGTH = 4
"""Shorter configured values are not masked verbatim (they would mask ordinary words)."""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's user info, secret query value and each of ``secrets`` masked."""
    if not text:
        return text
    masked = _redact_urls(text) if "://" in text else text
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_LENGTH and secret in masked:
            masked = masked.replace(secret, MASK)
    return masked


def redact_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """:func:`redact` applied to every string inside dicts, lists and tuples (keys included)."""
    known = tuple(secrets)
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, Mapping):
        return {
            (redact(k, known) if isinstance(k, str) else k): redact_value(v, known)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item, known) for item in value)
    return value


def url_secrets(url: str) -> list[str]:
    """The secret parts of a connection string (password or token, raw and decoded), for
    :func:`redact`'s ``secrets``; several comma-separated URLs are all looked at."""
    found: list[str] = []
    for part in url.split(","):
        scheme = _SCHEME.search(part)
        if scheme is None:
            continue
        rest = part[scheme.end() :]
        userinfo, at, _ = rest.rpartition("@")
        if at and userinfo:
            user, colon, password = userinfo.partition(":")
            secret = password if colon else user
            found += [secret, unquote(secret)]
        query = urlsplit(part.strip()).query
        found += [m.group(2) for m in _SECRET_QUERY.finditer("?" + query) if m.group(2)]
    return [s for s in dict.fromkeys(found) if s]


def header_secrets(headers: str) -> list[str]:
    """The values of an OTLP headers setting (``key=value,key2=value2``): all secret."""
    values = [item.partition("=")[2].strip() for item in headers.split(",")]
    return [v for v in values if v] + [unquote(v) for v in values if v and unquote(v) != v]


def _redact_urls(text: str) -> str:
    stripped = text.strip()
    if _SCHEME.match(stripped) and len(_SCHEME.findall(stripped)) == 1:
        # A connection string on its own: it runs to the end, even across a raw space.
        start = text.index("://") + 3
        return text[:start] + _redact_url_body(text[start:], text[:start])
    pieces: list[str] = []
    position = 0
    while (scheme := _SCHEME.search(text, position)) is not None:
        start = scheme.end()
        end_match = _URL_END.search(text, start)
        end = len(text) if end_match is None else end_match.start()
        pieces.append(text[position:start])
        pieces.append(_redact_url_body(text[start:end], scheme.group()))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _redact_url_body(body: str, scheme: str) -> str:
    """The part of a URL after ``scheme://``, user info and secret query values masked."""
    userinfo, at, location = body.rpartition("@")
    if at and userinfo:
        user, colon, _ = userinfo.partition(":")
        if colon:
            body = f"{user}:{MASK}@{location}"
        elif not _USERNAME_ONLY.search(scheme):
            body = f"{MASK}@{location}"  # a bare token (nats://TOKEN@host, https://TOKEN@host)
    return _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, body)
