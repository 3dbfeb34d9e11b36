"""The mock Xero's routing: identity, connections, and the APIs behind the gateway.

Gateway behaviour follows XERO.md: a bad or expired token is a 401 JSON problem, a tenant
the token is not connected to a 403 AuthenticationUnsuccessful, every tenant call carries
the rate-limit headers, and past the limits the answer is 429 with an empty body.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from . import accounting, network, xpm
from .auth import MockConfig, RateLimiter, TokenError, TokenIssuer
from .wire import MockRequest, MockResponse, as_json, problem, unauthorized

log = logging.getLogger(__name__)

DEFAULT_SCOPES = ["openid", "practicemanager", "accounting.transactions", "accounting.contacts", "offline_access"]
_LEGACY_RE = re.compile(r"^/(?:v3/)?([a-z]+\.api)/", re.IGNORECASE)


@dataclass(frozen=True)
class Exchange:
    """What the mock received and exactly what it sent back (for tests and the demo)."""

    request: MockRequest
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MockApp:
    def __init__(self, config: MockConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or MockConfig()
        self.tokens = TokenIssuer(self.config)
        self.limiter = RateLimiter(self.config, clock)
        self.tenants = {t.id: t for t in self.config.tenants}
        self.xpm = {t.id: xpm.XpmState.seeded() for t in self.config.tenants if t.type == "PRACTICEMANAGER"}
        self.wfm = {t.id: xpm.XpmState.seeded(xpm.WORKFLOWMAX) for t in self.config.tenants if t.type == "WORKFLOWMAX"}
        self.accounting = {
            t.id: accounting.AccountingState.seeded() for t in self.config.tenants if t.type == "ORGANISATION"
        }
        self.network = {t.id: network.NetworkState.seeded() for t in self.config.tenants if t.type == "ORGANISATION"}
        self.legacy = xpm.XpmState.seeded()
        # (tenant, Idempotency-Key) -> the first answer: a repeated key creates nothing twice.
        self.idempotent: dict[tuple[str, str], MockResponse] = {}
        self.exchanges: deque[Exchange] = deque(maxlen=10_000)
        self._lock = threading.Lock()

    def expired_token(self, scopes: list[str] | None = None) -> str:
        """A token issued an hour ago: what an app holding on to a 30-minute token has."""
        return self.tokens.issue(scopes or DEFAULT_SCOPES, issued_at=time.time() - 3600)

    def handle(self, req: MockRequest) -> MockResponse:
        with self._lock:  # the state is a handful of dicts; one lock keeps it simple
            try:
                resp = self._route(req)
            except Exception:
                log.exception("mock failed on %s %s", req.method, req.path)
                resp = MockResponse(500, b"Internal Server Error", [("Content-Type", "text/plain")])
        return resp.with_headers([("Xero-Correlation-Id", str(uuid.uuid4()))])

    def record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    def _route(self, req: MockRequest) -> MockResponse:
        path = req.path
        if path == "/connect/token":
            return self._token(req) if req.method == "POST" else MockResponse(405)
        if path == "/connections" or path.startswith("/connections/"):
            return self._connections(req)
        for prefix, types, api in (
            ("/practicemanager/3.0/", ("PRACTICEMANAGER",), self._xpm),
            ("/workflowmax/3.0/", ("WORKFLOWMAX",), self._wfm),
            ("/api.xro/2.0/", ("ORGANISATION",), self._accounting),
        ):
            if path.startswith(prefix):
                return self._gateway(req, types, api, [s for s in path[len(prefix) :].split("/") if s])
        if path.startswith("/api.xro/1.0/"):
            keyed = network.check_keys(req, self.config)
            if isinstance(keyed, MockResponse):
                return keyed
            segments = [s for s in path[len("/api.xro/1.0/") :].split("/") if s]
            return network.handle(req, self.network[keyed], segments, self.config.provider_name)
        if _LEGACY_RE.match(path):
            return self._legacy(req, path)
        return MockResponse(404, b"Not Found", [("Content-Type", "text/plain")])

    # --- gateway ------------------------------------------------------------------------------

    def _bearer(self, req: MockRequest) -> MockResponse | dict:
        auth = req.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return unauthorized("AuthenticationUnsuccessful")
        try:
            return self.tokens.verify(token.strip())
        except TokenError as e:
            return unauthorized(e.detail)

    def _gateway(
        self,
        req: MockRequest,
        types: tuple[str, ...],
        api: Callable[[MockRequest, str, list[str]], MockResponse],
        segments: list[str],
    ) -> MockResponse:
        claims = self._bearer(req)
        if isinstance(claims, MockResponse):
            return claims
        tenant = self.tenants.get((req.header("xero-tenant-id") or "").strip().lower())
        if tenant is None or tenant.type not in types:
            return problem(403, "Forbidden", "AuthenticationUnsuccessful")
        allowance = self.limiter.hit(tenant.id)
        if not allowance.allowed:
            return MockResponse(429, b"", allowance.headers())
        return api(req, tenant.id, segments).with_headers(allowance.headers())

    def _xpm(self, req: MockRequest, tenant: str, segments: list[str]) -> MockResponse:
        if not segments:
            return MockResponse(404, b"Not Found", [("Content-Type", "text/plain")])
        return xpm.handle(req, self.xpm[tenant], segments)

    def _wfm(self, req: MockRequest, tenant: str, segments: list[str]) -> MockResponse:
        if not segments:
            return MockResponse(404, b"Not Found", [("Content-Type", "text/plain")])
        return xpm.handle(req, self.wfm[tenant], segments)

    def _accounting(self, req: MockRequest, tenant: str, segments: list[str]) -> MockResponse:
        key = (req.header("idempotency-key") or "").strip()
        if key and req.method != "GET" and (tenant, key) in self.idempotent:
            return self.idempotent[(tenant, key)]
        resp = accounting.handle(req, self.accounting[tenant], segments, self.config.provider_name)
        if key and req.method != "GET":
            self.idempotent[(tenant, key)] = resp
        return resp

    def _legacy(self, req: MockRequest, path: str) -> MockResponse:
        """WorkflowMax v1: keys in the query string, no gateway (switched off by Xero in 2020)."""
        c = self.config
        if req.param("apiKey") != c.legacy_api_key or req.param("accountKey") != c.legacy_account_key:
            return xpm.error_response("Invalid", "Invalid API key or account key")
        segments = [s for s in re.sub(r"^/v3/", "/", path, flags=re.IGNORECASE).split("/") if s]
        return xpm.handle(req, self.legacy, segments)

    # --- identity and connections -------------------------------------------------------------

    def _token(self, req: MockRequest) -> MockResponse:
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = req.header("authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return as_json({"error": "invalid_client"}, 400)
        if client_id != self.config.client_id or secret != self.config.client_secret:
            return as_json({"error": "invalid_client"}, 400)
        grant = form.get("grant_type")
        refresh = None
        if grant == "client_credentials":
            scopes = form.get("scope", "").split() or DEFAULT_SCOPES
        elif grant == "refresh_token":
            scopes = self.tokens.refresh_tokens.pop(form.get("refresh_token", ""), [])
            if not scopes:
                return as_json({"error": "invalid_grant"}, 400)
            refresh = self.tokens.issue_refresh_token(scopes)
        elif grant == "authorization_code":
            if not form.get("code"):
                return as_json({"error": "invalid_grant"}, 400)
            scopes = DEFAULT_SCOPES
            refresh = self.tokens.issue_refresh_token(scopes)
        else:
            return as_json({"error": "unsupported_grant_type"}, 400)
        doc = {
            "access_token": self.tokens.issue(scopes),
            "expires_in": self.config.token_lifetime,
            "token_type": "Bearer",
            "scope": " ".join(scopes),
        }
        if refresh:
            doc["refresh_token"] = refresh
        return as_json(doc)

    def _connections(self, req: MockRequest) -> MockResponse:
        claims = self._bearer(req)
        if isinstance(claims, MockResponse):
            return claims
        if req.method == "DELETE":
            return MockResponse(204)
        if req.method != "GET":
            return MockResponse(405)
        stamp = "2024-03-01T09:30:00.0000000"
        return as_json(
            [
                {
                    "id": t.connection_id,
                    "authEventId": str(uuid.uuid5(uuid.NAMESPACE_URL, t.id)),
                    "tenantId": t.id,
                    "tenantType": t.type,
                    "tenantName": t.name,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
                for t in self.tenants.values()
            ]
        )
