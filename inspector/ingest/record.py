"""FlowRecord: one HTTP exchange as plain, immutable data.

Everything that enters the store (captured by the proxy, replayed, imported) is first
turned into a FlowRecord; ingest takes it from there. Nothing here knows mitmproxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Headers = tuple[tuple[str, str], ...]
Source = Literal["proxy", "replay", "import"]


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """Claims of the Bearer JWT, read (never verified) before the token is redacted (facts.token_facts)."""

    exp: int | None = None
    nbf: int | None = None
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """An exchange as the client saw it.

    Bodies are kept exactly as they crossed the wire (content-encoding still applied):
    decoding is work, and work belongs to the writer (its own process), not a proxy hook.
    A body of ``None`` was not captured (streamed by mitmproxy); ``b""`` is empty.
    """

    started_at: float
    method: str
    url: str  # as the app asked for it, secrets included until redaction
    http_version: str
    request_headers: Headers
    request_body: bytes | None
    ended_at: float | None = None
    client_addr: str | None = None
    server_addr: str | None = None  # where it really went (a --redirect target, say)
    tls: bool = False
    status: int | None = None
    reason: str | None = None
    response_http_version: str | None = None
    response_headers: Headers | None = None
    response_body: bytes | None = None
    error: str | None = None  # transport failure text (refused, TLS, timeout…)
    source: Source = "proxy"
    replay_of: int | None = None
    # HAR keeps bodies decoded while the headers still name the encoding; the bodies are
    # then taken as they are, not decoded a second time.
    content_decoded: bool = False
    # The claims of a token that reached us already redacted (an export that carried them),
    # so an imported call is judged on its token as the original was.
    token: TokenFacts | None = None
    # A fault rule's kind when xero-inspector, not Xero, shaped this exchange (proxy --fault).
    injected: str | None = None
    # What a breakpoint did (proxy --break), and the bodies as they were before an edit there.
    paused: str | None = None
    original_request_body: bytes | None = None
    original_response_body: bytes | None = None

    @property
    def body_bytes(self) -> int:
        """Bytes this record holds on to, for the writer queue's memory budget."""
        originals = len(self.original_request_body or b"") + len(self.original_response_body or b"")
        return len(self.request_body or b"") + len(self.response_body or b"") + originals


def header(headers: Headers | None, name: str) -> str | None:
    """The first value of a header, case-insensitively (HTTP header names are)."""
    if not headers:
        return None
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None
