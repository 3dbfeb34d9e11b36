"""Scripted traffic that looks like a real integration, sent through the proxy to 'Xero'.

The client is an ordinary httpx client aimed at the real Xero URLs, with the proxy in
HTTPS_PROXY's place and the proxy's CA trusted: exactly how a user's app is set up.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import httpx

from inspector.store import pauses
from inspector.store.database import open_db, open_for_reading
from inspector.store.pauses import Edit, Paused

from .mock_xero import TENANTS, MockXero

XPM = "https://api.xero.com/practicemanager/3.0"
# The demo's proxy runs with this fault rule: one staff lookup gets a 429 that Xero never sent.
FAULT = "rate-limit retry=1 ~u staff.api/get times 1"
# And with this breakpoint: the job the script adds with a misspelt element is held, and the script,
# in the browser's place, corrects it and lets it go (in the browser: Enter on the held call, Ctrl+S).
BREAK = "~m POST & ~u job.api/add & ~hq X-Demo-Step"
ACCOUNTING = "https://api.xero.com/api.xro/2.0"
NETWORK = "https://networktest.xero.com/api.xro/1.0"
LEGACY = "https://api.workflowmax.com"
PRACTICE, ORGANISATION = TENANTS[0].id, TENANTS[1].id

Say = Callable[[str], None]


class DemoTraffic:
    def __init__(self, proxy_url: str, ca_file: Path, mock: MockXero, db: Path, say: Say = print) -> None:
        self.db = db
        context = ssl.create_default_context(cafile=str(ca_file))
        self.http = httpx.Client(proxy=proxy_url, verify=context, timeout=20, trust_env=False)
        self.mock = mock
        self.config = mock.app.config
        self.say = say
        self.token = ""

    def call(self, label: str, method: str, url: str, **kw: object) -> httpx.Response:
        resp = self.http.request(method, url, **kw)  # type: ignore[arg-type]
        note = ""
        if b"<Status>ERROR</Status>" in resp.content:
            note = "  (an error inside HTTP 200)"
        self.say(f"  {resp.status_code}  {label}{note}")
        return resp

    def xpm_headers(self, tenant: str = PRACTICE, token: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token or self.token}",
            "xero-tenant-id": tenant,
            "Content-Type": "text/xml; charset=utf-8",
        }

    def run(self) -> None:
        for step in (
            self.sign_in,
            self.practice_manager,
            self.xpm_mistakes,
            self.legacy,
            self.customer_api,
            self.accounting,
            self.token_and_tenant_mistakes,
            self.breakpoint,
            self.fault_on_purpose,
            self.rate_limit_burst,
            self.dead_upstream,
        ):
            self.say(step.__doc__ or step.__name__)
            step()
        self.http.close()

    def sign_in(self) -> None:
        """Sign in: a client-credentials token, then which organisations it reaches"""
        c = self.config
        resp = self.call(
            "POST identity.xero.com/connect/token",
            "POST",
            "https://identity.xero.com/connect/token",
            data={"grant_type": "client_credentials"},
            auth=(c.client_id, c.client_secret),
        )
        self.token = resp.json()["access_token"]
        self.call(
            "GET /connections",
            "GET",
            "https://api.xero.com/connections",
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def practice_manager(self) -> None:
        """Practice Manager 3.0: clients, a job, its state, a timesheet"""
        h = self.xpm_headers()
        self.call("GET client.api/list", "GET", f"{XPM}/client.api/list", headers=h)
        added = self.call(
            "POST client.api/add",
            "POST",
            f"{XPM}/client.api/add",
            headers=h,
            content="<Client><Name>Harbour Dental Ltd</Name><Email>office@harbour.example</Email></Client>",
        )
        client_id = _between(added.text, "<ID>", "</ID>")
        start, due = date.today(), date.today() + timedelta(days=30)
        job = self.call(
            "POST job.api/add",
            "POST",
            f"{XPM}/job.api/add",
            headers=h,
            content=(
                f"<Job><Name>Quarterly GST return</Name><Description>Q3 filing</Description><ClientID>{client_id}</ClientID>"
                f"<StartDate>{start:%Y%m%d}</StartDate><DueDate>{due:%Y%m%d}</DueDate></Job>"
            ),
        )
        number = _between(job.text, "<ID>", "</ID>")
        self.call(
            "PUT job.api/state",
            "PUT",
            f"{XPM}/job.api/state",
            headers=h,
            content=f"<Job><ID>{number}</ID><State>INPROGRESS</State></Job>",
        )
        got = self.call(f"GET job.api/get/{number}", "GET", f"{XPM}/job.api/get/{number}", headers=h)
        task = _between(got.text.split("<Tasks>", 1)[1], "<ID>", "</ID>")
        self.call(
            "POST time.api/add",
            "POST",
            f"{XPM}/time.api/add",
            headers=h,
            content=(
                f"<Timesheet><Job>{number}</Job><Task>{task}</Task><Staff>859230</Staff>"
                f"<Date>{start:%Y%m%d}</Date><Start>09:00</Start><End>10:30</End><Note>Prepared GST workpapers</Note></Timesheet>"
            ),
        )
        self.call("GET staff.api/list", "GET", f"{XPM}/staff.api/list", headers=h)
        self.call(
            "GET job.api/list?from&to",
            "GET",
            f"{XPM}/job.api/list",
            headers=h,
            params={"from": f"{start - timedelta(days=365):%Y%m%d}", "to": f"{due:%Y%m%d}"},
        )

    def xpm_mistakes(self) -> None:
        """Practice Manager mistakes: Xero answers 200 and hides the error in the body"""
        h = self.xpm_headers()
        self.call(
            "POST job.api/add with an unknown client",
            "POST",
            f"{XPM}/job.api/add",
            headers=h,
            content=(
                "<Job><Name>Payroll setup</Name><ClientID>11111111</ClientID>"
                "<StartDate>20240801</StartDate><DueDate>20240831</DueDate></Job>"
            ),
        )
        self.call(
            "POST job.api/add with <ClientId> (a typo)",
            "POST",
            f"{XPM}/job.api/add",
            headers=h,
            content=(
                "<Job><Name>Payroll setup</Name><ClientId>24097642</ClientId>"
                "<StartDate>20240801</StartDate><DueDate>20240831</DueDate></Job>"
            ),
        )
        self.call(
            "POST client.api/add with no name",
            "POST",
            f"{XPM}/client.api/add",
            headers=h,
            content="<Client><Name></Name><Email>x@example.com</Email></Client>",
        )
        self.call(
            "PUT job.api/state DONE",
            "PUT",
            f"{XPM}/job.api/state",
            headers=h,
            content="<Job><ID>J000001</ID><State>DONE</State></Job>",
        )

    def legacy(self) -> None:
        """An app still on WorkflowMax v1, keys in the URL (retired in 2020): a read and two writes"""
        c = self.config
        keys = {"apiKey": c.legacy_api_key, "accountKey": c.legacy_account_key}
        self.call("GET api.workflowmax.com/job.api/current", "GET", f"{LEGACY}/job.api/current", params=keys)
        start = date.today()
        self.call(
            "POST api.workflowmax.com/job.api/add (integer ClientID)",
            "POST",
            f"{LEGACY}/job.api/add",
            params=keys,
            content=(
                "<Job><Name>Fit-out quote</Name><ClientID>24097642</ClientID>"
                f"<StartDate>{start:%Y%m%d}</StartDate><DueDate>{start + timedelta(days=14):%Y%m%d}</DueDate></Job>"
            ),
        )
        self.call(
            "PUT api.workflowmax.com/job.api/assign (add id)",
            "PUT",
            f"{LEGACY}/job.api/assign",
            params=keys,
            content='<Job><ID>J000001</ID><add id="859231"/></Job>',
        )

    def customer_api(self) -> None:
        """Customer API 1.0: contacts, and an invoice posted with a lying content type"""
        c = self.config
        keys = {"apiKey": c.partner_key, "xeroKey": next(iter(c.customer_keys))}
        self.call("GET /api.xro/1.0/contacts", "GET", f"{NETWORK}/contacts", params=keys)
        invoice = (
            "<Invoice><InvoiceType>ACCREC</InvoiceType><Contact><Name>Marine Systems</Name></Contact>"
            f"<InvoiceDate>{date.today():%Y-%m-%d}T00:00:00</InvoiceDate><InvoiceNumber>NW-1001</InvoiceNumber>"
            "<LineItems><LineItem><Description>Hull survey</Description><Quantity>1</Quantity><UnitAmount>450.00</UnitAmount>"
            "<TaxAmount>67.50</TaxAmount><LineAmount>450.00</LineAmount><AccountCode>200</AccountCode></LineItem></LineItems></Invoice>"
        )
        self.call(
            "PUT /api.xro/1.0/invoice (XML sent as a form)",
            "PUT",
            f"{NETWORK}/invoice",
            params=keys,
            content=invoice,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def accounting(self) -> None:
        """Accounting 2.0 in XML: both wrapper forms, an xml= form field, a validation error, JSON"""
        h = {**self.xpm_headers(ORGANISATION), "Content-Type": "application/xml"}

        def once(headers: dict[str, str]) -> dict[str, str]:
            """A key per write: the same key again would get the first call's answer back."""
            return {**headers, "Idempotency-Key": str(uuid.uuid4())}

        line = "<LineItems><LineItem><Description>Consulting</Description><Quantity>3</Quantity><UnitAmount>120.00</UnitAmount><AccountCode>200</AccountCode></LineItem></LineItems>"
        self.call(
            "PUT Invoices (plural wrapper)",
            "PUT",
            f"{ACCOUNTING}/Invoices",
            headers=once(h),
            content=(
                f"<Invoices><Invoice><Type>ACCREC</Type><Contact><Name>ABC Furniture</Name></Contact>{line}</Invoice></Invoices>"
            ),
        )
        self.call(
            "POST Invoices (bare <Invoice>)",
            "POST",
            f"{ACCOUNTING}/Invoices",
            headers=once(h),
            content=(f"<Invoice><Type>ACCPAY</Type><Contact><Name>Office Supplies Co</Name></Contact>{line}</Invoice>"),
        )
        form = {**h, "Content-Type": "application/x-www-form-urlencoded"}
        self.call(
            "POST Invoices as xml= form field (old clients)",
            "POST",
            f"{ACCOUNTING}/Invoices",
            headers=once(form),
            data={
                "xml": f"<Invoices><Invoice><Type>ACCREC</Type><Contact><Name>ABC Furniture</Name></Contact>{line}</Invoice></Invoices>"
            },
        )
        self.call(
            "PUT Contacts with a bad email (400)",
            "PUT",
            f"{ACCOUNTING}/Contacts",
            headers=once(h),
            content=(
                "<Contacts><Contact><Name>Good Contact Ltd</Name><EmailAddress>ok@good.example</EmailAddress></Contact>"
                "<Contact><Name>Bad Email Ltd</Name><EmailAddress>not-an-email</EmailAddress></Contact></Contacts>"
            ),
        )
        self.call("GET Invoices as JSON", "GET", f"{ACCOUNTING}/Invoices", headers={**h, "Accept": "application/json"})

    def token_and_tenant_mistakes(self) -> None:
        """Token and tenant mistakes: an expired token (401), a wrong tenant (403)"""
        self.call(
            "GET client.api/list with an expired token",
            "GET",
            f"{XPM}/client.api/list",
            headers=self.xpm_headers(token=self.mock.app.expired_token()),
        )
        self.call(
            "GET client.api/list for a tenant not connected",
            "GET",
            f"{XPM}/client.api/list",
            headers=self.xpm_headers(tenant=str(uuid.uuid4())),
        )

    def breakpoint(self) -> None:
        """A breakpoint (proxy --break): a misspelt job held, corrected, let go"""
        headers = {**self.xpm_headers(), "X-Demo-Step": "breakpoint"}
        body = "<Job><Nmae>Year-end accounts</Nmae><ClientID>24097642</ClientID><StartDate>20240701</StartDate>"
        body += "<DueDate>20240930</DueDate></Job>"
        with ThreadPoolExecutor(1) as app:  # the app waits at the breakpoint on its own thread
            sent = app.submit(self.http.post, f"{XPM}/job.api/add", headers=headers, content=body)
            held = self._held()
            fixed = (held.body or b"").replace(b"Nmae>", b"Name>")
            with closing(open_db(self.db, create=False)) as db:
                pauses.resume(db.conn, held.id, Edit(held.method, held.url, held.headers, fixed))
            self.say("  held POST job.api/add: <Nmae> corrected to <Name> at the breakpoint")
            resp = sent.result()
        self.say(f"  {resp.status_code}  POST job.api/add, as corrected")

    def _held(self) -> Paused:
        """The held call, as the browser lists it (within a few seconds: the proxy writes it at once)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.db.exists():
                with closing(open_for_reading(self.db)) as conn:
                    if held := pauses.paused(conn):
                        return held[0]
            time.sleep(0.05)
        raise RuntimeError("the breakpoint never held the call")

    def fault_on_purpose(self) -> None:
        """Xero failing on purpose (proxy --fault): a 429 the proxy made, honoured, then Xero's answer"""
        url = f"{XPM}/staff.api/get/859230"
        first = self.call(f"GET staff.api/get, rule '{FAULT}'", "GET", url, headers=self.xpm_headers())
        time.sleep(float(first.headers.get("Retry-After", "1")))  # what an app that survives a 429 does
        self.call("GET staff.api/get again, after Retry-After", "GET", url, headers=self.xpm_headers())

    def rate_limit_burst(self) -> None:
        """A polling loop that runs into the 60 calls/minute limit (429)"""
        h = self.xpm_headers()
        statuses = []
        for _ in range(self.config.minute_limit + 10):
            statuses.append(self.http.get(f"{XPM}/job.api/current", headers=h).status_code)
            if statuses[-3:] == [429, 429, 429]:
                break
        self.say(f"  {statuses.count(200)} x 200 then {statuses.count(429)} x 429  GET job.api/current (polling)")

    def dead_upstream(self) -> None:
        """Xero unreachable: the upstream goes away, the proxy answers 502"""
        self.mock.stop()
        self.call(
            "GET job.api/current with nobody at the other end",
            "GET",
            f"{XPM}/job.api/current",
            headers=self.xpm_headers(),
        )


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]
