"""The mock's identity side: tenants, RS256 access tokens, and Xero's rate limits."""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    type: str  # PRACTICEMANAGER | WORKFLOWMAX | ORGANISATION
    connection_id: str


# Fixed ids, so the demo, the tests and a user's notes can name them.
TENANTS = (
    Tenant(
        "8f1d6c2e-6a71-4c1e-9a52-5b7c0d3e2a01",
        "Demo Practice Ltd",
        "PRACTICEMANAGER",
        "0b1c1d2e-0000-4000-8000-000000000001",
    ),
    Tenant(
        "2a9e4f10-3b5c-4d6e-8f70-91a2b3c4d5e6",
        "Demo Company (NZ)",
        "ORGANISATION",
        "0b1c1d2e-0000-4000-8000-000000000002",
    ),
    Tenant(
        "7c3b2a19-0d8e-4f6a-b5c4-d3e2f1a0b9c8", "Demo Agency", "WORKFLOWMAX", "0b1c1d2e-0000-4000-8000-000000000003"
    ),
)


@dataclass
class MockConfig:
    client_id: str = "MOCKCLIENT0000000000000000000001"
    client_secret: str = "mock-secret-3f9a7c1e5b2d4a6f8e0c"
    token_lifetime: int = 1800  # Xero: exp - nbf = 1800
    minute_limit: int = 60  # per tenant
    day_limit: int = 5000  # per tenant
    app_minute_limit: int = 10_000  # per app, across tenants
    # Customer API 1.0: the partner's key and the customer keys (each names an organisation).
    partner_key: str = "MOCKPARTNERKEY00000000000000000001"
    customer_keys: dict[str, str] = field(default_factory=lambda: {"MOCKCUSTOMERKEY0000000000000000001": TENANTS[1].id})
    # Legacy WorkflowMax v1 keys.
    legacy_api_key: str = "MOCKLEGACYAPIKEY000000000000001"
    legacy_account_key: str = "MOCKLEGACYACCOUNTKEY0000000001"
    provider_name: str = "xero-inspector demo app"
    tenants: tuple[Tenant, ...] = TENANTS


def token_expired(exp: int) -> str:
    """Xero's words for a token past its ``exp`` (XERO.md §4.2)."""
    return f"TokenExpired: token expired at {time.strftime('%m/%d/%Y %H:%M:%S', time.gmtime(exp))}"


class TokenError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks RS256 JWTs shaped like Xero's (XERO.md §2)."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(16)
        self.refresh_tokens: dict[str, list[str]] = {}

    def issue(self, scopes: list[str], issued_at: float | None = None) -> str:
        nbf = int(issued_at if issued_at is not None else time.time())
        claims = {
            "nbf": nbf,
            "exp": nbf + self.config.token_lifetime,
            "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources",
            "client_id": self.config.client_id,
            "sub": secrets.token_hex(16),
            "auth_time": nbf,
            "xero_userid": str(uuid.uuid4()),
            "global_session_id": secrets.token_hex(16),
            "jti": secrets.token_hex(16),
            "authentication_event_id": str(uuid.uuid4()),
            "scope": scopes,
        }
        header = {"alg": "RS256", "kid": self._kid, "typ": "JWT"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def issue_refresh_token(self, scopes: list[str]) -> str:
        token = secrets.token_hex(32)
        self.refresh_tokens[token] = scopes
        return token

    def verify(self, token: str, now: float | None = None) -> dict:
        try:
            head, body, sig = token.split(".")
            self._key.public_key().verify(
                _unb64(sig), f"{head}.{body}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
            claims = json.loads(_unb64(body))
        except (ValueError, InvalidSignature) as e:
            raise TokenError("AuthenticationUnsuccessful") from e
        now = time.time() if now is None else now
        if claims["exp"] <= now:
            raise TokenError(token_expired(claims["exp"]))
        return claims


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    minute_remaining: int
    day_remaining: int
    app_minute_remaining: int
    retry_after: int | None = None
    problem: str | None = None  # minute | day | appminute

    def headers(self) -> list[tuple[str, str]]:
        h = [
            ("X-DayLimit-Remaining", str(self.day_remaining)),
            ("X-MinLimit-Remaining", str(self.minute_remaining)),
            ("X-AppMinLimit-Remaining", str(self.app_minute_remaining)),
        ]
        if not self.allowed:
            h += [("Retry-After", str(self.retry_after)), ("X-Rate-Limit-Problem", str(self.problem))]
        return h


class RateLimiter:
    """Sliding windows: per tenant per minute and per day, per app per minute (XERO.md §3)."""

    def __init__(self, config: MockConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._minute: dict[str, deque[float]] = {}
        self._day: dict[str, deque[float]] = {}
        self._app: deque[float] = deque()
        self._lock = threading.Lock()

    def hit(self, tenant: str) -> Allowance:
        c = self.config
        with self._lock:
            now = self.clock()
            minute = _window(self._minute.setdefault(tenant, deque()), now, 60)
            day = _window(self._day.setdefault(tenant, deque()), now, 86_400)
            app = _window(self._app, now, 60)
            for window, limit, span, problem in (
                (day, c.day_limit, 86_400, "day"),
                (minute, c.minute_limit, 60, "minute"),
                (app, c.app_minute_limit, 60, "appminute"),
            ):
                if len(window) >= limit:
                    retry = max(1, math.ceil(window[0] + span - now))
                    return Allowance(
                        False,
                        max(0, c.minute_limit - len(minute)),
                        max(0, c.day_limit - len(day)),
                        max(0, c.app_minute_limit - len(app)),
                        retry,
                        problem,
                    )
            for window in (minute, day, app):
                window.append(now)
            return Allowance(True, c.minute_limit - len(minute), c.day_limit - len(day), c.app_minute_limit - len(app))


def _window(window: deque[float], now: float, span: float) -> deque[float]:
    while window and window[0] <= now - span:
        window.popleft()
    return window
