from __future__ import annotations

import gzip
import json
import time
import typing
from pathlib import Path

import pytest

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.record import FlowRecord
from inspector.ingest.row import COLUMNS, SIDES, BodyColumns, FlowRow, as_dict
from tests.test_xero_facts import jwt

CATALOG = Catalog.load()
TOKEN = jwt({"exp": 1700001800, "client_id": "CID", "scope": ["practicemanager"]})


def record(**kw) -> FlowRecord:
    base = dict(
        started_at=1700000000.0,
        ended_at=1700000000.25,
        method="POST",
        url="https://api.xero.com/practicemanager/3.0/job.api/add",
        http_version="HTTP/1.1",
        request_headers=(("Authorization", f"Bearer {TOKEN}"), ("xero-tenant-id", "T1"), ("Content-Type", "text/xml")),
        request_body=b"<Job><Name>A</Name></Job>",
        status=200,
        reason="OK",
        response_headers=(
            ("Content-Type", "text/xml"),
            ("Content-Encoding", "gzip"),
            ("Xero-Correlation-Id", "corr-1"),
            ("X-MinLimit-Remaining", "57"),
        ),
        response_body=gzip.compress(
            b"<Response><Status>ERROR</Status><ErrorDescription>Invalid client identifier</ErrorDescription></Response>"
        ),
        client_addr="127.0.0.1:5000",
        server_addr="127.0.0.1:8443",
        tls=True,
    )
    base.update(kw)
    return FlowRecord(**base)  # type: ignore[arg-type]


def test_a_full_row() -> None:
    out = Ingest(CATALOG)(record())
    f = as_dict(out.flow)
    assert (f["family"], f["resource"], f["operation"], f["endpoint"]) == ("xpm-3.0", "job.api", "add", "job.api/add")
    assert (f["outcome"], f["api_status"], f["api_error"], f["api_error_kind"]) == (
        "api-error",
        "ERROR",
        "Invalid client identifier",
        "xpm-status",
    )
    assert (f["tenant_id"], f["correlation_id"], f["rl_minute_remaining"]) == ("T1", "corr-1", 57)
    assert (f["token_exp"], f["token_client_id"], f["token_scopes"]) == (1700001800, "CID", "practicemanager")
    assert f["duration_ms"] == 250.0 and f["tls"] == 1 and f["port"] == 443
    assert f["response_format"] == "xml" and f["response_size"] > f["response_raw_size"] > 0
    assert f["redactions"] == 1 and TOKEN not in json.dumps(f)
    headers = json.loads(f["request_headers"])
    assert headers[0][0] == "Authorization" and headers[0][1].startswith("Bearer redacted:sha256:")
    assert [b["side"] for b in out.bodies] == ["request", "response"]
    assert out.bodies[1]["text"].startswith("<Response>")  # stored decoded


def test_transport_error_row() -> None:
    f = as_dict(
        Ingest(CATALOG)(
            record(status=None, reason=None, response_headers=None, response_body=None, error="Connection refused")
        ).flow
    )
    assert (f["outcome"], f["error"], f["response_format"], f["response_headers"]) == (
        "transport-error",
        "Connection refused",
        "none",
        None,
    )


def test_non_utf8_bodies_are_kept_as_bytes() -> None:
    out = Ingest(CATALOG)(
        record(response_headers=(("Content-Type", "application/pdf"),), response_body=b"%PDF\x00\xff\xfe")
    )
    assert out.flow.response.format == "binary"
    assert out.bodies[1] == {"side": "response", "text": None, "data": b"%PDF\x00\xff\xfe"}


def test_a_body_that_cannot_be_decoded_keeps_its_bytes_and_says_why() -> None:
    broken = gzip.compress(b"<Response/>" * 100)[:-30] + b"\xff\xfe"
    out = Ingest(CATALOG)(record(response_body=broken))
    assert str(out.flow.response.decode_error).startswith("gzip body ")
    assert out.flow.response.format == "binary" and out.bodies[1]["data"] == broken


def test_identity_secrets_in_bodies_are_fingerprinted() -> None:
    rec = record(
        url="https://identity.xero.com/connect/token",
        request_headers=(("Content-Type", "application/x-www-form-urlencoded"),),
        request_body=b"grant_type=authorization_code&code=AUTH-CODE&client_id=CID&client_secret=SHH",
        response_headers=(("Content-Type", "application/json"),),
        response_body=b'{"access_token": "AT-1", "refresh_token": "RT-1", "expires_in": 1800}',
    )
    out = Ingest(CATALOG)(rec)
    stored = json.dumps([as_dict(out.flow), [b["text"] for b in out.bodies]])
    for secret in ("AUTH-CODE", "SHH", "AT-1", "RT-1"):
        assert secret not in stored
    assert "client_id=CID" in stored and out.flow.redactions == 4


def test_keep_secrets_keeps_them() -> None:
    out = Ingest(CATALOG, keep_secrets=True)(record())
    assert TOKEN in str(out.flow.request_headers) and out.flow.redactions == 0


def test_connections_answer_names_tenants() -> None:
    body = json.dumps([{"id": "c1", "tenantId": "t1", "tenantType": "ORGANISATION", "tenantName": "Demo Co"}]).encode()
    out = Ingest(CATALOG)(
        record(
            method="GET",
            url="https://api.xero.com/connections",
            request_body=b"",
            response_headers=(("Content-Type", "application/json"),),
            response_body=body,
        )
    )
    assert out.flow.family == "connections"
    assert out.tenants[0]["id"] == "t1" and out.tenants[0]["name"] == "Demo Co"


def test_a_bug_in_ingest_still_stores_the_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = Ingest(CATALOG)
    monkeypatch.setattr(ingest, "_ingest", lambda rec: 1 / 0)
    out = ingest(record(url="https://api.workflowmax.com/job.api/list?apiKey=SECRET"))
    assert str(out.flow.ingest_error).startswith("ZeroDivisionError")
    assert out.flow.url == "https://api.workflowmax.com/job.api/list"  # the query (keys) dropped
    assert out.flow.status == 200 and out.flow.outcome == "ok" and out.flow.request_headers == "[]"


def test_timestamps_and_sizes_when_nothing_was_captured() -> None:
    f = Ingest(CATALOG)(record(request_body=None, ended_at=None)).flow
    assert f.request.format == "none" and f.request.size is None and f.duration_ms is None
    assert time.time() > f.started_at


def test_the_typed_row_is_the_flows_table(tmp_path: Path) -> None:
    """A field without a column, a column without a field, or a type that differs fails here."""
    from typing import get_type_hints

    from inspector.store.database import FLOW_COLUMNS, open_db

    assert sorted(COLUMNS) == sorted(c for c in FLOW_COLUMNS if c != "id")  # the insert names its columns
    hints = {**get_type_hints(FlowRow)}
    for side in SIDES:
        hints |= {f"{side}_{name}": t for name, t in get_type_hints(BodyColumns).items()}
    for column, kind in FLOW_COLUMNS.items():
        if column != "id":
            assert kind in typing.get_args(hints[column]) or hints[column] is kind, column
    with open_db(tmp_path / "flows.db") as db:  # the table the migrations really make, not the list
        assert sorted(c.name for c in db.table("flows").columns) == sorted(["id", *COLUMNS])


def test_ingest_fills_every_column_and_drops_nothing_a_record_carries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every FlowRecord field has a column of its own or a named home elsewhere; every column
    of the row is filled by some exchange (the user's mark and comment aside)."""
    from dataclasses import fields

    elsewhere = {
        "request_body": "the bodies table",
        "response_body": "the bodies table",
        "content_decoded": "how the bodies are read",
        "token": "the token_* columns",
        "original_request_body": "the bodies table (request-original)",
        "original_response_body": "the bodies table (response-original)",
    }
    assert {f.name for f in fields(FlowRecord)} - set(COLUMNS) == set(elsewhere)
    ingest = Ingest(CATALOG)
    token = jwt({"exp": 1, "client_id": "C", "sub": "U", "scope": ["a"]})
    rows = [
        ingest(
            record(response_http_version="HTTP/2.0", source="proxy", injected="xpm-error", paused="request resumed")
        ).flow,
        ingest(
            record(
                url="https://api.xero.com/practicemanager/3.0/job.api/get/J1?detailed=true",
                method="GET",
                replay_of=7,
                request_headers=(("Authorization", f"Bearer {token}"), ("Content-Encoding", "gzip")),
                request_body=b"\x1f\x8b broken",
                status=429,
                response_headers=(
                    ("Retry-After", "30"),
                    ("X-Rate-Limit-Problem", "day"),
                    ("X-DayLimit-Remaining", "0"),
                    ("X-AppMinLimit-Remaining", "9"),
                    ("Content-Encoding", "gzip"),
                ),
                response_body=b"\x1f\x8b broken",
            )
        ).flow,
        ingest(
            record(
                url="https://api.xero.com/api.xro/2.0/Invoices",
                request_headers=(("Content-Type", "application/json"),),
                request_body=b"{}",
                status=400,
                response_headers=(("Content-Type", "application/json"),),
                response_body=json.dumps(
                    {
                        "Type": "ValidationException",
                        "Message": "A validation exception occurred",
                        "Elements": [{"ValidationErrors": [{"Message": "Email address must be valid."}]}],
                    }
                ).encode(),
            )
        ).flow,
    ]
    monkeypatch.setattr(ingest, "_ingest", lambda rec: 1 / 0)
    rows.append(ingest(record(status=None, response_headers=None, response_body=None, error="refused")).flow)
    filled = {c for row in rows for c, v in as_dict(row).items() if v is not None}
    assert set(COLUMNS) - filled == {"comment"}
    assert all(row.marked == 0 for row in rows)
    assert rows[0].response_http_version == "HTTP/2.0" and rows[0].http_version == "HTTP/1.1"
