"""Secrets out before anything is stored or exported.

Each secret becomes a stable fingerprint (``redacted:sha256:1a2b3c4d``): two different
tokens stay distinguishable and the same token is recognisable across flows (the
access_token a token call issued is the Bearer token of the calls that follow), but
the value itself never reaches the database. Everything around a secret is kept byte
for byte: query encoding, JSON layout, cookie attributes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from inspector.ingest.record import Headers

FINGERPRINT_PREFIX = "redacted:sha256:"
FINGERPRINT_RE = re.compile(re.escape(FINGERPRINT_PREFIX) + r"[0-9a-f]{8}")

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Any other header whose name has the shape of a credential (X-Api-Key, X-Auth-Token,
# X-Session-Id, X-Client-Secret…) is redacted too: apps and gateways invent their own names.
_SECRET_HEADER_SHAPE = ("key", "token", "secret", "auth", "password", "passwd", "session", "cookie")
# ...except these, which hold no secret and matter when debugging: Idempotency-Key is sent again
# on purpose, WWW-Authenticate carries the server's reason for a 401.
_NOT_SECRET_HEADERS = frozenset({"idempotency-key", "www-authenticate", "proxy-authenticate", "authentication-info"})
# Query parameters and form/JSON fields that carry credentials anywhere.
SECRET_FIELDS = frozenset(
    {
        "apikey",  # Customer API partner key, legacy WorkflowMax key
        "accountkey",  # legacy WorkflowMax account key
        "xerokey",  # Customer API customer key
        "client_secret",
        "refresh_token",
        "access_token",
        "id_token",
        "code_verifier",
        "token",  # /connect/revocation
    }
)
# An OAuth authorization code is a credential on identity endpoints; elsewhere "code"
# is an account or tax code and must stay readable.
IDENTITY_FIELDS = SECRET_FIELDS | {"code"}
# A query, form or JSON field whose name has one of these shapes holds a credential whatever the
# app calls it (password, user_password, api_key, X-Auth-Token, session_state…).
_SECRET_FIELD_SHAPE = ("password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey", "session")
_NOT_SECRET_FIELDS = frozenset({"tokentype", "token_type"})  # "Bearer": a kind, not a credential

_JSON_FIELD_RE = re.compile(r'("(?P<key>[A-Za-z_][\w.-]{0,100})"\s*:\s*")(?P<value>(?:[^"\\]|\\.)*)(")')


def secret_header(name: str) -> bool:
    """A header that holds a credential, by name or by the shape of its name."""
    lname = name.lower()
    if lname in SECRET_HEADERS:
        return True
    return lname not in _NOT_SECRET_HEADERS and any(s in lname for s in _SECRET_HEADER_SHAPE)


def secret_field(name: str, identity: bool = False) -> bool:
    """A query, form or JSON field that holds a credential (``name`` lower-cased)."""
    if name in (IDENTITY_FIELDS if identity else SECRET_FIELDS):
        return True
    squashed = name.replace("-", "").replace("_", "")
    return name not in _NOT_SECRET_FIELDS and any(s in squashed for s in _SECRET_FIELD_SHAPE)


def fingerprint(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
    return FINGERPRINT_PREFIX + digest[:8]


def is_redacted(value: str) -> bool:
    return FINGERPRINT_PREFIX in value


@dataclass(slots=True)
class Redactor:
    """Redacts secrets from URLs, headers and bodies; counts what it replaced."""

    keep_secrets: bool = False
    count: int = 0

    def _fp(self, value: str) -> str:
        if self.keep_secrets or not value or is_redacted(value):
            return value
        self.count += 1
        return fingerprint(value)

    def url(self, url: str, identity: bool = False) -> str:
        if self.keep_secrets:
            return url
        url = self._userinfo(url)
        if "?" not in url:
            return url
        base, _, rest = url.partition("?")
        query, hash_, fragment = rest.partition("#")
        return f"{base}?{self.form(query, identity)}{hash_}{fragment}"

    def _userinfo(self, url: str) -> str:
        """https://user:pass@host/ keeps the user and fingerprints the password; a lone
        userinfo (https://TOKEN@host/) is fingerprinted whole."""
        scheme, sep, rest = url.partition("://")
        authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        if not sep or "@" not in authority:
            return url
        userinfo, _, host = authority.rpartition("@")
        if is_redacted(userinfo):
            return url
        user, colon, password = userinfo.partition(":")
        hidden = f"{user}:{self._fp(password)}" if colon else self._fp(userinfo)
        return f"{scheme}://{hidden}@{host}{rest[len(authority) :]}"

    def form(self, text: str, identity: bool = False) -> str:
        """An urlencoded query or form body with secret values fingerprinted."""
        if self.keep_secrets:
            return text
        return rewrite_form(
            text, lambda name, value: self._fp(value) if value and secret_field(name, identity) else None
        )

    def json(self, text: str, identity: bool = False) -> str:
        """JSON with the string values of secret fields fingerprinted, layout untouched."""
        if self.keep_secrets:
            return text

        def sub(m: re.Match[str]) -> str:
            if not secret_field(m.group("key").lower(), identity):
                return m.group(0)
            return f"{m.group(1)}{self._fp(m.group('value'))}{m.group(4)}"

        return _JSON_FIELD_RE.sub(sub, text)

    def headers(self, headers: Headers) -> Headers:
        if self.keep_secrets:
            return headers
        return tuple((name, self.header(name, value) if secret_header(name) else value) for name, value in headers)

    def header(self, name: str, value: str) -> str:
        lname = name.lower()
        if "auth" in lname:  # Authorization and its kin: the scheme stays readable
            scheme, sep, credentials = value.strip().partition(" ")
            if sep and credentials:
                return f"{scheme} {self._fp(credentials.strip())}"
            return self._fp(value)
        if lname == "cookie":
            return "; ".join(_cookie_pair(self, p.strip()) for p in value.split(";"))
        if lname == "set-cookie":
            first, sep, attrs = value.partition(";")
            return _cookie_pair(self, first.strip()) + sep + attrs
        return self._fp(value) if secret_header(name) else value


def rewrite_form(text: str, change: Callable[[str, str], str | None]) -> str:
    """An urlencoded string with some values replaced, the rest kept byte for byte.

    ``change(name, value)`` gets the field name lower-cased and its value decoded, and returns
    the new value as it should be written (encoded), or None to keep the pair as it is.
    """
    parts = text.split("&")
    for i, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if sep and (new := change(unquote_plus(key).strip().lower(), unquote_plus(value))) is not None:
            parts[i] = f"{key}={new}"
    return "&".join(parts)


def _cookie_pair(redactor: Redactor, pair: str) -> str:
    name, sep, value = pair.partition("=")
    return f"{name}={redactor._fp(value)}" if sep else redactor._fp(pair)
