"""WorkflowMax / Practice Manager v1 to v3: where a retired call goes now (XERO.md §1).

v1 lived on api.workflowmax.com with the partner's apiKey and the practice's accountKey in
the query string (an interim /v3/ path on that host was never behind Xero's gateway). In 2020
it was split in two behind api.xero.com: Practice Manager 3.0 keeps v1's integer ids,
WorkflowMax 3.0 names records by UUID. Both take an OAuth 2.0 Bearer token and name the
organisation with the xero-tenant-id header; the method paths stayed the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

LEGACY_KEYS = frozenset({"apikey", "accountkey"})


@dataclass(frozen=True, slots=True)
class V3Target:
    key: str  # what --as-v3 takes
    family: str  # the catalog's family id
    title: str
    base: str
    scope: str  # the OAuth 2.0 scope the token needs


TARGETS = {
    "xpm": V3Target(
        "xpm", "xpm-3.0", "Practice Manager 3.0", "https://api.xero.com/practicemanager/3.0", "practicemanager"
    ),
    # The scope name is from client code that calls WorkflowMax 3.0, not from Xero's documentation.
    "wfm": V3Target("wfm", "wfm-3.0", "WorkflowMax 3.0", "https://api.xero.com/workflowmax/3.0", "workflowmax"),
}


def method_path(legacy_url: str) -> str:
    """'/job.api/get/J000031?detailed=true' from a v1 URL: its path without the interim /v3/,
    its query without apiKey and accountKey (v3 takes neither)."""
    parts = urlsplit(legacy_url)
    path = parts.path
    if path.lower().startswith("/v3/"):
        path = path[3:]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in LEGACY_KEYS]
    return path + ("?" + urlencode(query) if query else "")


def v3_url(legacy_url: str, target: V3Target) -> str:
    return target.base + method_path(legacy_url)
