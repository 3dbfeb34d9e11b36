"""A Datasette plugin (registered by entry point): ``datasette flows.db`` explains itself.

Installed with ``pip install 'xero-inspector[datasette]'``. For every database that is a
xero-inspector store (by its application id) it supplies titles, descriptions, facets and
canned queries; the views it describes live in the database itself (store ``_v4_views``),
so other SQLite tools see them too. Other databases served alongside are left alone.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from typing import Any

from datasette import hookimpl

from inspector.store.database import APPLICATION_ID

_FLOW_COLUMNS = {
    "outcome": "ok, api-error (a Xero error inside an HTTP 200), http-error, rate-limited or transport-error",
    "failure": "why the call failed: its outcome, or retired-endpoint for a call to an API Xero switched off",
    "errors": "findings of severity error: schema violations and rule failures",
    "warnings": "findings of severity warning",
    "family": "the Xero API: xpm-3.0, wfm-legacy, customer-1.0, accounting-2.0, identity, connections",
    "endpoint": "the endpoint as the catalog names it, path parameters generalised",
    "api_error": "the error Xero put in the body (XPM <Status>ERROR</Status>, an ApiException, …)",
    "started_utc": "when the request was sent, UTC",
    "replay_of": "the flow this one re-sent (xero-inspector replay)",
    "source": "proxy (captured), replay or import",
}

_TABLES: dict[str, dict[str, Any]] = {
    "failed_calls": {
        "description": "Every failed call, and why (failure): HTTP errors, Xero errors hidden in 200s, "
        "rate limits, transport failures and calls to retired endpoints. Replays count how often each was re-sent.",
        "facets": ["failure", "family", "endpoint"],
        "columns": _FLOW_COLUMNS,
    },
    "schema_violations": {
        "description": "Where a body broke the schema of its endpoint: line, column and XPath of each finding.",
        "facets": ["rule", "severity", "endpoint"],
        "columns": {
            "side": "request (what your app sent) or response (what Xero answered)",
            "xpath": "where in the body, as an XPath",
            "schema": "the XSD the body was checked against",
        },
    },
    "rate_limits": {
        "description": "Xero's rate-limit headers per call (day, minute, app-wide minute) and every 429: "
        "watch the counters run down per organisation.",
        "facets": ["tenant_name", "problem"],
    },
    "endpoint_summary": {
        "description": "Calls, failures and findings per endpoint, the worst first.",
        "facets": ["family"],
    },
    "flows": {
        "description": "One row per recorded exchange (bodies are in bodies, findings in findings).",
        "sort_desc": "id",
        "facets": ["family", "outcome", "status"],
        "label_column": "url",
        "columns": _FLOW_COLUMNS,
    },
    "findings": {
        "description": "What validation and the rules found, per flow.",
        "facets": ["rule", "severity", "side"],
    },
    "bodies": {"description": "Decoded bodies: text (searchable) or bytes."},
    "tenants": {"description": "Organisations named by GET /connections answers.", "label_column": "name"},
    "recorders": {"description": "Each proxy run: when, where it listened, what it recorded, dropped and failed."},
    "meta": {"hidden": True},
}

_QUERIES = {
    "search_bodies": {
        "title": "Search bodies",
        "description": "Full-text search over every decoded body (an element name, a value, an error text).",
        "sql": "SELECT b.flow_id, b.side, f.method, f.url, f.outcome, snippet(bodies_fts, 0, '[', ']', '…', 12) "
        "AS match FROM bodies_fts JOIN bodies b ON b.id = bodies_fts.rowid JOIN flows f ON f.id = b.flow_id "
        "WHERE bodies_fts MATCH :text ORDER BY b.flow_id DESC LIMIT 200",
    },
    "slowest_calls": {
        "title": "Slowest calls",
        "sql": "SELECT id, method, endpoint, status, outcome, duration_ms FROM flows "
        "WHERE duration_ms IS NOT NULL ORDER BY duration_ms DESC LIMIT 100",
    },
}


@cache
def _is_store(path: str) -> bool:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return bool(conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID)
        finally:
            conn.close()
    except sqlite3.Error:
        return False


@hookimpl
def get_metadata(datasette: Any, key: str, database: str | None, table: str | None) -> dict[str, Any]:
    ours = [name for name, db in datasette.databases.items() if db.path and _is_store(str(db.path))]
    if not ours:
        return {}
    return {
        "title": "xero-inspector",
        "description": "Xero API calls recorded by xero-inspector: start with failed_calls or schema_violations.",
        "about": "xero-inspector",
        "databases": {
            name: {
                "title": f"{name}: Xero calls",
                "description": "Calls your app made to Xero and what Xero answered, checked against each "
                "endpoint's schema. The views failed_calls, schema_violations, rate_limits and "
                "endpoint_summary are the places to start.",
                "tables": _TABLES,
                "queries": _QUERIES,
            }
            for name in ours
        },
    }
