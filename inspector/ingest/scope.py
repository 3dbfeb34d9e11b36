"""Which hosts are Xero's: the catalog's hosts plus any the user adds (a company gateway)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence


class HostScope:
    def __init__(self, hosts: Iterable[str], extra: Sequence[str] = ()) -> None:
        self.hosts = frozenset(h.lower() for h in hosts)
        self.extra_patterns = list(extra)
        # re.error propagates: the caller turns it into a one-line option error.
        self._extra = [re.compile(p, re.IGNORECASE) for p in extra]

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(r.search(host) for r in self._extra)

    def allow_hosts(self) -> list[str]:
        """Patterns for mitmproxy's ``allow_hosts``, which are searched in ``host:port``."""
        known = "|".join(re.escape(h) for h in sorted(self.hosts))
        patterns = [rf"^(?:{known})(?::\d+)?$"] if known else []
        for p in self.extra_patterns:
            # A user's "gw\.corp$" means the host; mitmproxy also sees ":443" after it.
            if p.endswith("$") and not p.endswith(r"\$"):
                p = p[:-1] + r"(?::\d+)?$"
            patterns.append(p)
        return patterns
