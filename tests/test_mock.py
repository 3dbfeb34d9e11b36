"""The mock Xero's behaviour, called directly (no network) and once over its real TLS socket."""

from __future__ import annotations

import json
import ssl
from urllib.parse import urlsplit

import httpx
import pytest
from inspector.samples.mock_xero import TENANTS, MockApp, MockConfig, MockXero
from inspector.samples.mock_xero.auth import RateLimiter, TokenError
from inspector.samples.mock_xero.wire import MockRequest

from inspector.commands.validate_files import check_file, target
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import Validator
from tests.test_samples import BODIES, CATALOG, VALIDATOR
from tests.test_samples import CASES as SAMPLE_CASES

PRACTICE, ORG = TENANTS[0].id, TENANTS[1].id
AGENCY = next(t.id for t in TENANTS if t.type == "WORKFLOWMAX")


def call(app: MockApp, method: str, path: str, body: bytes = b"", query: str = "", **headers: str):
    hdrs = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return app.handle(MockRequest(method, path, query, hdrs, body))


@pytest.fixture(scope="module")
def app() -> MockApp:
    return MockApp()


@pytest.fixture(scope="module")
def token(app: MockApp) -> str:
    return app.tokens.issue(["practicemanager", "accounting.transactions"])


def test_token_endpoint_and_connections(app: MockApp) -> None:
    c = app.config
    resp = call(
        app,
        "POST",
        "/connect/token",
        f"grant_type=client_credentials&client_id={c.client_id}&client_secret={c.client_secret}".encode(),
    )
    doc = json.loads(resp.body)
    assert resp.status == 200 and doc["expires_in"] == 1800 and doc["token_type"] == "Bearer"
    claims = app.tokens.verify(doc["access_token"])
    assert claims["exp"] - claims["nbf"] == 1800 and claims["iss"] == "https://identity.xero.com"
    conns = json.loads(call(app, "GET", "/connections", authorization=f"Bearer {doc['access_token']}").body)
    assert [c["tenantName"] for c in conns] == [t.name for t in TENANTS]
    bad = call(app, "POST", "/connect/token", b"grant_type=client_credentials&client_id=x&client_secret=y")
    assert bad.status == 400 and json.loads(bad.body) == {"error": "invalid_client"}


def test_refresh_tokens_rotate(app: MockApp) -> None:
    c = app.config
    first = json.loads(
        call(
            app,
            "POST",
            "/connect/token",
            f"grant_type=authorization_code&code=abc&client_id={c.client_id}&client_secret={c.client_secret}".encode(),
        ).body
    )
    second = call(
        app,
        "POST",
        "/connect/token",
        f"grant_type=refresh_token&refresh_token={first['refresh_token']}&client_id={c.client_id}&client_secret={c.client_secret}".encode(),
    )
    assert second.status == 200
    reused = call(
        app,
        "POST",
        "/connect/token",
        f"grant_type=refresh_token&refresh_token={first['refresh_token']}&client_id={c.client_id}&client_secret={c.client_secret}".encode(),
    )
    assert json.loads(reused.body) == {"error": "invalid_grant"}


def test_tokens_expire_and_forgeries_fail(app: MockApp) -> None:
    with pytest.raises(TokenError, match=r"TokenExpired: token expired at \d\d/\d\d/\d{4}"):
        app.tokens.verify(app.expired_token())
    head, body, _ = app.tokens.issue(["x"]).split(".")
    with pytest.raises(TokenError, match="AuthenticationUnsuccessful"):
        app.tokens.verify(f"{head}.{body}.AAAA")


def test_gateway_answers(app: MockApp, token: str) -> None:
    path = "/practicemanager/3.0/client.api/list"
    expired = call(app, "GET", path, authorization=f"Bearer {app.expired_token()}", xero_tenant_id=PRACTICE)
    assert expired.status == 401 and json.loads(expired.body)["Detail"].startswith("TokenExpired")
    assert ("WWW-Authenticate", 'Bearer error="invalid_token"') in expired.headers
    wrong = call(app, "GET", path, authorization=f"Bearer {token}", xero_tenant_id=ORG)  # not a practice
    assert wrong.status == 403 and json.loads(wrong.body)["Detail"] == "AuthenticationUnsuccessful"
    ok = call(app, "GET", path, authorization=f"Bearer {token}", xero_tenant_id=PRACTICE)
    names = [k for k, _ in ok.headers]
    assert ok.status == 200 and {
        "X-MinLimit-Remaining",
        "X-DayLimit-Remaining",
        "X-AppMinLimit-Remaining",
        "Xero-Correlation-Id",
    } <= set(names)


@pytest.mark.parametrize(
    ("method", "op", "body", "error"),
    [
        (
            "POST",
            "job.api/add",
            b"<Job><Name>J</Name><ClientID>1</ClientID><StartDate>20240101</StartDate><DueDate>20240102</DueDate></Job>",
            "Invalid client identifier",
        ),
        (
            "POST",
            "job.api/add",
            b"<Job><Name>J</Name><StartDate>20240101</StartDate><DueDate>20240102</DueDate></Job>",
            "Message not in expected format. The following required element was missing - /Job/ClientID",
        ),
        ("POST", "job.api/add", b"<Job><Name>J</Name", "Message not in expected format"),
        ("PUT", "job.api/state", b"<Job><ID>J000001</ID><State>FINISHED</State></Job>", "Invalid state code"),
        ("PUT", "job.api/state", b"<Job><ID>J999999</ID><State>COMPLETED</State></Job>", "Invalid job identifier"),
        ("POST", "client.api/add", b"<Client><Name/></Client>", "The client name is required"),
        (
            "POST",
            "staff.api/add",
            b"<Staff><ID>5</ID><Name>X</Name></Staff>",
            "Invalid staff identifier for add request",
        ),
    ],
)
def test_xpm_errors_come_back_as_200(app: MockApp, token: str, method: str, op: str, body: bytes, error: str) -> None:
    resp = call(
        app, method, f"/practicemanager/3.0/{op}", body, authorization=f"Bearer {token}", xero_tenant_id=PRACTICE
    )
    assert resp.status == 200
    assert (
        b"<Status>ERROR</Status>" in resp.body and f"<ErrorDescription>{error}</ErrorDescription>".encode() in resp.body
    )


def test_xpm_writes_change_state(app: MockApp, token: str) -> None:
    h = {"authorization": f"Bearer {token}", "xero_tenant_id": PRACTICE}
    added = call(
        app,
        "POST",
        "/practicemanager/3.0/job.api/add",
        b"<Job><Name>New</Name><ClientID>24097643</ClientID><StartDate>20240101</StartDate><DueDate>20240301</DueDate></Job>",
        **h,
    )
    assert b'api-method="Add"' in added.body and b"<State>Planned</State>" in added.body
    number = added.body.split(b"<ID>")[1].split(b"</ID>")[0].decode()
    call(
        app,
        "PUT",
        "/practicemanager/3.0/job.api/state",
        f"<Job><ID>{number}</ID><State>COMPLETED</State></Job>".encode(),
        **h,
    )
    assert b"<State>Completed</State>" in call(app, "GET", f"/practicemanager/3.0/job.api/get/{number}", **h).body
    staff = call(app, "POST", "/practicemanager/3.0/staff.api/add", b"<Staff><Name>Ana</Name></Staff>", **h)
    assert b'api-method="Get"' in staff.body  # as Xero answers a staff add


def test_xpm_takes_the_shapes_xero_accepted() -> None:
    """Job update with <ClientID> and job assign with the manager and partner elements, as recorded
    from Xero by the xpm_ruby client (samples/fidelity/); the answers pass our own response schema."""
    app = MockApp()  # its own: this changes the seeded job others read
    token = app.tokens.issue(["practicemanager"])

    catalog = Catalog.load()
    validator = Validator.for_catalog(catalog)
    h = {"authorization": f"Bearer {token}", "xero_tenant_id": PRACTICE}
    bodies = BODIES / "xpm-3.0"
    for op, body in (
        ("job.api/update", b"<Job><ID>J000001</ID><ClientID>24097643</ClientID></Job>"),
        ("job.api/assign", (bodies / "job-assign.manager-partner.valid.xml").read_bytes()),
        ("job.api/assign", b'<Job><ID>J000001</ID><add-partner id="859231"/><remove id="859230"/></Job>'),
        ("client.api/contact/15412877", (bodies / "contact-update.client-ref.valid.xml").read_bytes()),
    ):
        body = body.replace(b"J000032", b"J000001").replace(b"25655881", b"24097642")  # the mock's own ids
        resp = call(app, "PUT", f"/practicemanager/3.0/{op}", body, **h)
        assert b"<Status>OK</Status>" in resp.body, resp.body
        answer = target(catalog, f"PUT https://api.xero.com/practicemanager/3.0/{op}", response=True)
        assert [f for f in check_file(validator, answer, resp.body) if f.severity != "info"] == []
    job = call(app, "GET", "/practicemanager/3.0/job.api/get/J000001", **h).body
    assert b"<Client><ID>24097643</ID>" in job and b"<Manager><ID>859230</ID>" in job
    assert b"<Partner><ID>859231</ID>" in job and b"<Assigned/>" in job
    contact = call(app, "GET", "/practicemanager/3.0/client.api/contact/15412877", **h).body
    assert b"<Name>Mereana Walker</Name>" in contact and b"<IsPrimary>Yes</IsPrimary>" in contact
    refused = call(app, "PUT", "/practicemanager/3.0/job.api/assign", b'<Job><ID>J000001</ID><add id="1"/></Job>', **h)
    assert b"<ErrorDescription>Invalid staff identifier for add request</ErrorDescription>" in refused.body


def test_workflowmax_names_records_by_uuid() -> None:
    """WorkflowMax 3.0 in the mock: the Practice Manager calls with UUIDs in place of integer ids
    (<ClientUUID>, <TaskUUID>, <StaffUUID>, <add uuid/>); each answer carries <UUID> and passes the
    wfm-3.0 response schema; an integer ClientID is refused as Xero refuses a missing element."""
    app = MockApp()
    token = app.tokens.issue(["workflowmax"])
    agency = AGENCY
    catalog = Catalog.load()
    validator = Validator.for_catalog(catalog)
    h = {"authorization": f"Bearer {token}", "xero_tenant_id": agency}
    base = "/workflowmax/3.0"

    def ok(method: str, op: str, body: bytes = b"") -> bytes:
        resp = call(app, method, f"{base}/{op}", body, **h)
        assert resp.status == 200 and b"<Status>OK</Status>" in resp.body, resp.body
        answer = target(catalog, f"{method} https://api.xero.com{base}/{op.split('?')[0]}", response=True)
        assert [f for f in check_file(validator, answer, resp.body) if f.severity != "info"] == []
        return resp.body

    clients = ok("GET", "client.api/list")
    client = clients.split(b"<UUID>")[1].split(b"</UUID>")[0].decode()
    assert b"<ID>" not in clients.split(b"<Contacts")[0]
    staff = ok("GET", "staff.api/list").split(b"<UUID>")[1].split(b"</UUID>")[0].decode()
    job_add = (
        f"<Job><Name>Brand refresh</Name><ClientUUID>{client}</ClientUUID>"
        "<StartDate>20240801</StartDate><DueDate>20240930</DueDate></Job>"
    ).encode()
    assert [
        f for f in check_file(validator, target(catalog, f"POST https://api.xero.com{base}/job.api/add"), job_add)
    ] == []
    job = ok("POST", "job.api/add", job_add)
    number = job.split(b"<ID>")[1].split(b"</ID>")[0].decode()
    task = job.split(b"<Tasks><Task><UUID>")[1].split(b"</UUID>")[0].decode()
    ok("PUT", "job.api/assign", f'<Job><ID>{number}</ID><add uuid="{staff}"/></Job>'.encode())
    time_add = (
        f"<Timesheet><Job>{number}</Job><TaskUUID>{task}</TaskUUID><StaffUUID>{staff}</StaffUUID>"
        "<Date>20240805</Date><Minutes>90</Minutes></Timesheet>"
    ).encode()
    assert f"<StaffUUID>{staff}" in time_add.decode()
    ok("POST", "time.api/add", time_add)
    assert f"<Staff><UUID>{staff}</UUID>".encode() in ok("GET", f"job.api/get/{number}")
    refused = call(
        app,
        "POST",
        f"{base}/job.api/add",
        b"<Job><Name>x</Name><ClientID>24097642</ClientID><StartDate>20240801</StartDate><DueDate>20240930</DueDate></Job>",
        **h,
    )
    assert b"missing - /Job/ClientUUID" in refused.body
    practice = call(app, "GET", f"{base}/client.api/list", authorization=f"Bearer {token}", xero_tenant_id=PRACTICE)
    assert practice.status == 403  # a Practice Manager tenant is not a WorkflowMax one


def test_accounting_both_wrappers_and_the_api_exception(app: MockApp, token: str) -> None:
    h = {"authorization": f"Bearer {token}", "xero_tenant_id": ORG}
    line = b"<LineItems><LineItem><Description>d</Description><Quantity>1</Quantity><UnitAmount>10</UnitAmount></LineItem></LineItems>"
    plural = call(
        app,
        "PUT",
        "/api.xro/2.0/Invoices",
        b"<Invoices><Invoice><Type>ACCREC</Type><Contact><Name>A</Name></Contact>" + line + b"</Invoice></Invoices>",
        **h,
    )
    bare = call(
        app,
        "POST",
        "/api.xro/2.0/Invoices",
        b"<Invoice><Type>ACCPAY</Type><Contact><Name>B</Name></Contact>" + line + b"</Invoice>",
        **h,
    )
    assert plural.status == bare.status == 200 and b"<Total>11.50</Total>" in plural.body
    batch = call(
        app,
        "PUT",
        "/api.xro/2.0/Invoices",
        b"<Invoices><Invoice><Type>ACCREC</Type><Contact><Name>A</Name></Contact></Invoice><Invoice><Contact><Name>A</Name></Contact></Invoice></Invoices>",
        **h,
    )
    assert batch.status == 400 and batch.body.count(b"<DataContractBase") == 2
    assert b"Invoice Type must be ACCREC or ACCPAY" in batch.body
    partial = call(
        app,
        "PUT",
        "/api.xro/2.0/Contacts",
        b'{"Contacts": [{"Name": "Fine Ltd"}, {"Name": "Bad", "EmailAddress": "nope"}]}',
        query="summarizeErrors=false",
        accept="application/json",
        content_type="application/json",
        **h,
    )
    doc = json.loads(partial.body)
    assert partial.status == 200 and [c["StatusAttributeString"] for c in doc["Contacts"]] == ["OK", "ERROR"]
    assert doc["Contacts"][1]["ValidationErrors"] == [{"Message": "Email address must be valid."}]


def test_customer_api_keys(app: MockApp) -> None:
    c = app.config
    bad = call(app, "GET", "/api.xro/1.0/contacts", query="apiKey=wrong&xeroKey=x")
    assert bad.status == 302 and b"<title>Login" in bad.body
    plain = app.handle(MockRequest("GET", "/api.xro/1.0/contacts", f"apiKey={c.partner_key}", {}, b"", scheme="http"))
    assert plain.status == 403
    missing = call(
        app,
        "GET",
        "/api.xro/1.0/invoice",
        query=f"apiKey={c.partner_key}&xeroKey={next(iter(c.customer_keys))}&invoiceNumber=NOPE",
    )
    assert b"<Errors>" in missing.body and b"ObjectDoesNotExistException" in missing.body


def test_rate_limiter_windows() -> None:
    now = [1000.0]
    limiter = RateLimiter(MockConfig(minute_limit=2, day_limit=3), clock=lambda: now[0])
    assert [limiter.hit("t").allowed for _ in range(3)] == [True, True, False]
    refused = limiter.hit("t")
    assert (refused.problem, refused.retry_after, refused.minute_remaining) == ("minute", 60, 0)
    assert limiter.hit("other").allowed  # limits are per tenant
    now[0] += 61
    assert limiter.hit("t").allowed
    day = limiter.hit("t")
    assert not day.allowed and day.problem == "day" and day.retry_after > 80_000


def test_over_real_tls() -> None:
    with MockXero() as m, httpx.Client(verify=ssl.create_default_context(cafile=str(m.ca_path))) as http:
        resp = http.get(f"{m.url}/connections")
        assert resp.status_code == 401 and resp.json()["Title"] == "Unauthorized"
        assert m.app.exchanges[-1].status == 401


def _sample_request(app: MockApp, family: str, case: dict, body: bytes) -> MockRequest:
    method, url = case["endpoint"].split(" ", 1)
    parts = urlsplit(url)
    token = app.tokens.issue(["practicemanager", "workflowmax", "accounting.transactions", "accounting.contacts"])
    tenant = {"xpm-3.0": PRACTICE, "wfm-3.0": AGENCY, "accounting-2.0": ORG}.get(family)
    headers = {"authorization": f"Bearer {token}", "content-type": "text/xml; charset=utf-8"}
    query = parts.query
    if tenant:
        headers["xero-tenant-id"] = tenant
    else:  # the Customer API: keys in the query string
        keys = {"apiKey": app.config.partner_key, "xeroKey": next(iter(app.config.customer_keys))}
        query = "&".join(f"{k}={v}" for k, v in keys.items())
    if body.startswith(b"xml="):
        headers["content-type"] = "application/x-www-form-urlencoded"
    return MockRequest(method, parts.path, query, headers, body, scheme="https")


VALID_REQUESTS = [
    (family, case) for family, case in SAMPLE_CASES if ".valid." in case["file"] and not case.get("response")
]


@pytest.mark.parametrize(
    ("family", "case"), VALID_REQUESTS, ids=[f"{f}/{c['file']} {c['endpoint'].split()[0]}" for f, c in VALID_REQUESTS]
)
def test_the_mock_takes_every_valid_request_sample(family: str, case: dict) -> None:
    """Each body written from the real shapes is one the mock takes as Xero does: an OK status (not
    an ERROR inside HTTP 200, not a 400), and an answer that passes our own response schema."""
    app = MockApp()  # each its own: a sample may delete the record the next one names
    body = (BODIES / family / case["file"]).read_bytes()
    resp = app.handle(_sample_request(app, family, case, body))
    assert resp.status == 200, resp.body[:300]
    if family in ("xpm-3.0", "wfm-3.0"):
        assert b"<Status>OK</Status>" in resp.body, resp.body[:300]
    answer = target(CATALOG, case["endpoint"], response=True)
    assert [f for f in check_file(VALIDATOR, answer, resp.body) if f.severity != "info"] == []
