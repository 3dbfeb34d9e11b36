"""The rules beyond the schemas, through the real ingest (facts are read before redaction)."""

from __future__ import annotations

import json

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.validate import Validator
from tests.test_ingest import TOKEN, record
from tests.test_xero_facts import jwt

CATALOG = Catalog.load()
OK = b"<Response><Status>OK</Status><Jobs/></Response>"


def findings(rec, known: dict[str, str] | None = None) -> dict[str, list[dict]]:
    ingest = Ingest(CATALOG, validator=Validator())
    ingest.known_tenants.update(known or {})
    out: dict[str, list[dict]] = {}
    for f in ingest(rec).findings:
        out.setdefault(f["rule"], []).append(f)
    return out


def plain(**kw):
    """A clean XPM read; each test changes one thing."""
    base = dict(
        method="GET",
        url="https://api.xero.com/practicemanager/3.0/job.api/list",
        request_body=None,
        response_headers=(("Content-Type", "text/xml"),),
        response_body=OK,
    )
    return record(**{**base, **kw})


def test_a_clean_call_has_no_findings() -> None:
    assert findings(plain()) == {}


def test_retired_v1_names_the_v3_urls_without_the_keys() -> None:
    (f,) = findings(plain(url="https://api.workflowmax.com/job.api/list?apiKey=K1&accountKey=A1&from=20240101"))[
        "retired-endpoint"
    ]
    assert "https://api.xero.com/practicemanager/3.0/job.api/list?from=20240101" in f["message"]
    assert "https://api.xero.com/workflowmax/3.0/job.api/list" in f["message"] and "K1" not in f["message"]


def test_plain_http_to_a_xero_host() -> None:
    assert "plain-http" in findings(plain(url="http://api.xero.com/practicemanager/3.0/job.api/list"))


def test_missing_tenant_only_where_the_api_needs_one() -> None:
    headers = (("Authorization", f"Bearer {TOKEN}"),)
    assert "missing-tenant" in findings(plain(request_headers=headers))
    connections = plain(url="https://api.xero.com/connections", request_headers=headers, response_body=b"[]")
    assert "missing-tenant" not in findings(connections)


def test_expired_token_from_the_jwt_and_from_a_401() -> None:
    old = jwt({"exp": 1699990000})
    (f,) = findings(plain(request_headers=(("Authorization", f"Bearer {old}"), ("xero-tenant-id", "T1"))))[
        "token-expired"
    ]
    assert "10000 s before this request" in f["message"] and old not in json.dumps(f)
    assert f["severity"] == "error"
    # Within the gateway's clock skew Xero answers all the same (a token 155 s past its exp was
    # answered 200 OK, xpm_ruby job/current.yml): late, not refused, so a warning.
    headers = (("Authorization", f"Bearer {jwt({'exp': 1700000000 - 155})}"), ("xero-tenant-id", "T1"))
    (late,) = findings(plain(request_headers=headers))["token-expired"]
    assert late["severity"] == "warning" and "Xero still accepted it" in late["message"]
    (refused,) = findings(plain(request_headers=headers, status=401, response_body=b""))["token-expired"]
    assert refused["severity"] == "error"
    problem = b'{"Type":null,"Title":"Unauthorized","Status":401,"Detail":"TokenExpired: token expired at 04/29/2020"}'
    resp = plain(status=401, response_headers=(("Content-Type", "application/json"),), response_body=problem)
    assert "TokenExpired" in findings(resp)["token-expired"][0]["message"]


def test_403_names_the_connected_organisations() -> None:
    problem = b'{"Type":null,"Title":"Forbidden","Status":403,"Detail":"AuthenticationUnsuccessful"}'
    resp = plain(status=403, response_headers=(("Content-Type", "application/json"),), response_body=problem)
    (f,) = findings(resp, {"8f1d": "Demo Practice Ltd"})["auth-unsuccessful"]
    assert "tenant T1 is not among" in f["message"] and "Demo Practice Ltd (8f1d)" in f["message"]
    (f,) = findings(resp, {"T1": "Demo Practice Ltd"})["auth-unsuccessful"]
    assert "is connected, but not for this token" in f["message"]


def test_429_and_a_low_minute_limit() -> None:
    limited = plain(
        status=429,
        response_headers=(("Retry-After", "37"), ("X-Rate-Limit-Problem", "minute")),
        response_body=b"",
    )
    (f,) = findings(limited)["rate-limited"]
    assert "minute limit (60 calls per minute" in f["message"] and "retry after 37 s" in f["message"]
    low = plain(response_headers=(("Content-Type", "text/xml"), ("X-MinLimit-Remaining", "3")))
    (f,) = findings(low)["rate-limit-low"]
    assert f["severity"] == "warning" and "3 of 60" in f["message"]


def test_xml_sent_as_a_form_and_secrets_in_a_query() -> None:
    body = b"<Job><Name>A</Name><ClientID>1</ClientID><StartDate>20240101</StartDate><DueDate>20240102</DueDate></Job>"
    headers = (
        ("Authorization", f"Bearer {TOKEN}"),
        ("xero-tenant-id", "T1"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    )
    got = findings(record(request_headers=headers, request_body=body, response_body=OK, response_headers=()))
    assert set(got) == {"content-type"}
    leak = plain(url="https://api.xero.com/api.xro/2.0/Invoices?access_token=abc", response_body=b"")
    (f,) = findings(leak)["secret-in-query"]
    assert "access_token" in f["message"] and "abc" not in f["message"]
    network = plain(url="https://network.xero.com/api.xro/1.0/contacts?apiKey=P&xeroKey=C", response_body=b"")
    assert "secret-in-query" not in findings(network)


def test_each_failed_element_of_a_batch_is_tied_to_its_index() -> None:
    body = b"<Contacts><Contact><Name>A</Name></Contact><Contact><Name>B</Name></Contact></Contacts>"
    answer = (
        b"<Response><Status>OK</Status><Contacts><Contact><Name>A</Name></Contact>"
        b"<Contact><Name>B</Name><ValidationErrors><ValidationError><Message>Email address must be valid."
        b"</Message></ValidationError></ValidationErrors></Contact></Contacts></Response>"
    )
    rec = record(
        method="POST",
        url="https://api.xero.com/api.xro/2.0/Contacts?summarizeErrors=false",
        request_body=body,
        response_body=answer,
        response_headers=(),
    )
    (f,) = findings(rec)["validation-error"]
    assert f["message"] == "Contact #2 of the batch (request /Contacts/Contact[2]): Email address must be valid."
    assert f["xpath"] == "/Response/Contacts/Contact[2]/ValidationErrors/ValidationError/Message"


def test_hostile_xml_is_a_finding_and_never_expanded() -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE Job [<!ENTITY x SYSTEM "file:///etc/passwd">]><Job><Name>&x;</Name></Job>'
    (f,) = findings(record(request_body=xxe, response_body=OK, response_headers=()))["xml-dtd"]
    assert "1 entity reference" in f["message"]
    bomb = b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Job><Name>&b;</Name></Job>'
    assert "xml-dtd" in findings(record(request_body=bomb, response_body=OK))
    deep = b"<a>" * 300 + b"</a>" * 300
    assert findings(record(request_body=deep, response_body=OK))["not-well-formed"][0]["line"] == 1
