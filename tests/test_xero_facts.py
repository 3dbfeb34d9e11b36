from __future__ import annotations

import base64
import json

import pytest

from inspector.ingest import xero_facts, xmlsafe
from inspector.ingest.redact import fingerprint


def jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{part}.c2ln"


def xml_verdict(text: str) -> xero_facts.BodyVerdict:
    return xero_facts.read_xml_answer(xmlsafe.try_parse(text.encode()))


def test_rate_limit_headers_any_case() -> None:
    h = (
        ("X-DayLimit-Remaining", "4990"),
        ("x-minlimit-remaining", "3"),
        ("X-AppMinLimit-Remaining", "9990"),
        ("Retry-After", "42"),
        ("X-Rate-Limit-Problem", "minute"),
    )
    assert xero_facts.rate_limits(h) == xero_facts.RateLimits(4990, 3, 9990, 42, "minute")
    assert xero_facts.rate_limits((("x-minlimit-remaining", "lots"),)).minute_remaining is None


def test_token_facts_from_a_bearer_jwt() -> None:
    t = xero_facts.token_facts(
        "Bearer "
        + jwt(
            {
                "exp": 1700001800,
                "nbf": 1700000000,
                "client_id": "CID",
                "xero_userid": "U1",
                "scope": ["practicemanager", "offline_access"],
            }
        )
    )
    assert t == xero_facts.TokenFacts(1700001800, 1700000000, ("practicemanager", "offline_access"), "CID", "U1")
    assert xero_facts.token_facts("Bearer " + jwt({"scope": "a b"})).scopes == ("a", "b")  # type: ignore[union-attr]
    for not_a_jwt in (None, "", "Basic abc", "Bearer opaque-token", "Bearer a.%%%.c", "Bearer " + jwt([1])):  # type: ignore[arg-type]
        assert xero_facts.token_facts(not_a_jwt) is None


def test_tenant_from_header_or_from_the_key_that_names_it() -> None:
    assert xero_facts.tenant_id((("Xero-Tenant-Id", " T1 "),), "", None) == "T1"
    assert xero_facts.tenant_id((), "apiKey=P&xeroKey=CUSTOMER", "xeroKey") == fingerprint("CUSTOMER")
    assert xero_facts.tenant_id((), "xeroKey=redacted:sha256:00000000", "xeroKey") == "redacted:sha256:00000000"
    assert xero_facts.tenant_id((), "apiKey=P", "xeroKey") is None


def test_xpm_error_in_a_200() -> None:
    v = xml_verdict(
        '<Response api-method="Delete"><Status>ERROR</Status><ErrorDescription>Invalid job identifier</ErrorDescription></Response>'
    )
    assert v.api_status == "ERROR" and v.error == xero_facts.ApiError("xpm-status", "Invalid job identifier")
    ok = xml_verdict('<Response api-method="List"><Status>OK</Status><Jobs/></Response>')
    assert (ok.api_status, ok.error) == ("OK", None)


def test_accounting_api_exception_ties_each_error_to_its_batch_index() -> None:
    v = xml_verdict(
        '<ApiException xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ErrorNumber>10</ErrorNumber>'
        "<Type>ValidationException</Type><Message>A validation exception occurred</Message><Elements>"
        '<DataContractBase xsi:type="Invoice"><Type>ACCREC</Type></DataContractBase>'
        '<DataContractBase xsi:type="Invoice"><ValidationErrors><ValidationError><Message>Email address must be valid.</Message>'
        "</ValidationError></ValidationErrors></DataContractBase></Elements></ApiException>"
    )
    assert v.error is not None and v.error.kind == "api-exception"
    assert v.error.message == "A validation exception occurred: Email address must be valid."
    assert v.error.details == [{"index": 1, "element": "Invoice", "message": "Email address must be valid."}]


def test_summarize_errors_false_batch_in_xml_and_json() -> None:
    v = xml_verdict(
        "<Response><Status>OK</Status><Invoices><Invoice><InvoiceID>a</InvoiceID></Invoice>"
        "<Invoice><ValidationErrors><ValidationError><Message>Bad</Message></ValidationError></ValidationErrors></Invoice>"
        "</Invoices></Response>"
    )
    assert v.error is not None and v.error.kind == "validation"
    assert v.error.message == "1 of 2 elements failed validation: Bad" and v.error.details[0]["index"] == 1
    j = xero_facts.read_json_answer(
        json.dumps(
            {"Status": "OK", "Invoices": [{"ValidationErrors": []}, {"ValidationErrors": [{"Message": "Bad"}]}]}
        ).encode()
    )
    assert j.error is not None and j.error.message == "1 of 2 elements failed validation: Bad"


def test_network_errors_form() -> None:
    v = xml_verdict(
        "<Response><Errors><Error><Description>Gone</Description><Exception><ExceptionType>"
        "Xero.API.Library.Exceptions.ObjectDoesNotExistException</ExceptionType><Message>No such invoice</Message>"
        "</Exception></Error></Errors><ID>x</ID><Status>InternalServerError</Status></Response>"
    )
    assert v.api_status == "InternalServerError"
    assert v.error is not None and (v.error.kind, v.error.message) == ("network", "No such invoice")
    assert v.error.details[0]["type"].endswith("ObjectDoesNotExistException")


@pytest.mark.parametrize(
    ("doc", "kind", "message"),
    [
        (
            {"Type": None, "Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful"},
            "problem",
            "Forbidden: AuthenticationUnsuccessful",
        ),
        (
            {"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired: token expired at 04/29/2020 09:22:02"},
            "problem",
            "Unauthorized: TokenExpired: token expired at 04/29/2020 09:22:02",
        ),
        (
            {
                "ErrorNumber": 10,
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Elements": [{"ValidationErrors": [{"Message": "Email address must be valid."}]}],
            },
            "api-exception",
            "A validation exception occurred: Email address must be valid.",
        ),
        ({"error": "invalid_grant"}, "oauth", "invalid_grant"),
        ({"error": "invalid_client", "error_description": "bad secret"}, "oauth", "invalid_client: bad secret"),
    ],
)
def test_json_error_shapes(doc: dict, kind: str, message: str) -> None:
    v = xero_facts.read_json_answer(json.dumps(doc).encode())
    assert v.error is not None and (v.error.kind, v.error.message) == (kind, message)


def test_html_instead_of_an_api_answer() -> None:
    v = xero_facts.read_html_answer(b"<html><head><title>Login | Xero</title></head></html>")
    assert v.error == xero_facts.ApiError("html", "an HTML page instead of an API answer: Login | Xero")


def test_not_well_formed_xml_is_no_verdict() -> None:
    assert xero_facts.read_xml_answer(xmlsafe.try_parse(b"<Response><Status>ERROR")) == xero_facts.BodyVerdict()


@pytest.mark.parametrize(
    ("status", "error", "api_error", "outcome"),
    [
        (200, None, None, "ok"),
        (200, None, xero_facts.ApiError("xpm-status", "x"), "api-error"),
        (302, None, xero_facts.ApiError("html", "x"), "api-error"),
        (400, None, xero_facts.ApiError("api-exception", "x"), "http-error"),
        (403, None, None, "http-error"),
        (429, None, None, "rate-limited"),
        (None, "Connection refused", None, "transport-error"),
    ],
)
def test_outcome(status: int | None, error: str | None, api_error: xero_facts.ApiError | None, outcome: str) -> None:
    assert xero_facts.outcome(status, error, api_error) == outcome


def test_connections_fill_tenants() -> None:
    body = json.dumps(
        [
            {
                "id": "c1",
                "tenantId": "t1",
                "tenantType": "ORGANISATION",
                "tenantName": "Demo",
                "createdDateUtc": "2024",
                "updatedDateUtc": "2025",
            },
            {"nope": 1},
        ]
    ).encode()
    assert xero_facts.connections(body) == [
        {
            "id": "t1",
            "name": "Demo",
            "type": "ORGANISATION",
            "connection_id": "c1",
            "created_at": "2024",
            "updated_at": "2025",
        }
    ]
    assert xero_facts.connections(b"not json") == [] and xero_facts.connections(b'{"a": 1}') == []


def test_xml_is_parsed_without_entities_or_dtds(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><Response><Status>&x;</Status></Response>'
    root = xmlsafe.try_parse(xxe.encode())
    assert root is None or "TOP-SECRET" not in (root.findtext("Status") or "")
