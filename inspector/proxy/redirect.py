"""The Redirect addon: send intercepted Xero requests to another origin (a sandbox, the mock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http

from inspector.proxy.xero_scope import XeroScope


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    prefix: str


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise ValueError(f"{url!r}: {e}") from e
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


class Redirect:
    """Send intercepted Xero requests to another origin (a sandbox, the mock).

    The recording keeps the Xero URL the app asked for (Recorder snapshots it first).
    On CONNECT mitmproxy connects eagerly to the original host; with no route to
    api.xero.com the app would get a 502, so a redirect switches to a lazy connection
    strategy and stops fetching upstream certificates.
    """

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.target: Target | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "inspector_redirect", str, "", "Send intercepted Xero requests to this origin (https://host:port)."
        )

    def configure(self, updated: set[str]) -> None:
        if "inspector_redirect" not in updated:
            return
        url = ctx.options.inspector_redirect
        try:
            self.target = parse_target(url) if url else None
        except ValueError as e:
            raise exceptions.OptionsError(f"inspector_redirect: {e}") from e
        if self.target:
            ctx.options.update(connection_strategy="lazy", upstream_cert=False)

    def request(self, flow: http.HTTPFlow) -> None:
        t = self.target
        if t is None or not self.scope.hosts.matches(flow.request.pretty_host):
            return
        original_host, original_scheme = flow.request.pretty_host, flow.request.scheme
        flow.request.scheme = t.scheme
        flow.request.host = t.host
        flow.request.port = t.port
        if t.prefix:
            flow.request.path = t.prefix + flow.request.path
        # Standard proxy headers, so the upstream can tell which Xero host was meant.
        flow.request.headers["X-Forwarded-Host"] = original_host
        flow.request.headers["X-Forwarded-Proto"] = original_scheme
