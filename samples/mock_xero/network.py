"""The Customer API 1.0 (Xero Network API) in the mock: contacts and invoices (XERO.md §6).

Keys travel in the query string: apiKey (the partner) and xeroKey (the customer, which
names the organisation). A bad apiKey got an HTML redirect to a login page, not XML;
errors otherwise use the <Response><Errors>… form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .auth import MockConfig
from .wire import MockRequest, MockResponse, child_text, el, new_id, parse_xml, utc_now, xml

LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Login | Xero Accounting Software</title></head>"
    b'<body><p>Object moved to <a href="https://login.xero.com/">here</a>.</p></body></html>'
)
VALIDATION = "Xero.API.Library.Exceptions.ValidationException"
NOT_FOUND = "Xero.API.Library.Exceptions.ObjectDoesNotExistException"
_CONTACT_FIELDS = ("ContactID", "ContactNumber", "Name", "EmailAddress")


@dataclass
class NetworkState:
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def seeded(cls) -> NetworkState:
        s = cls()
        cid = "a1b2c3d4-0000-4000-8000-00000000c001"
        s.contacts[cid] = {
            "ContactID": cid,
            "ContactNumber": "C001",
            "Name": "Marine Systems",
            "EmailAddress": "ap@marine.example",
        }
        return s


class NetworkError(Exception):
    def __init__(self, http_status: int, status: str, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status, self.exception_type, self.message = http_status, status, exception_type, message


def check_keys(req: MockRequest, config: MockConfig) -> MockResponse | str:
    """The organisation the customer key names, or the answer to a bad key."""
    if req.scheme != "https":
        return MockResponse(403, b"HTTPS is required", [("Content-Type", "text/plain")])
    if req.param("apiKey") != config.partner_key:
        return MockResponse(
            302, LOGIN_PAGE, [("Content-Type", "text/html; charset=utf-8"), ("Location", "https://login.xero.com/")]
        )
    org = config.customer_keys.get(req.param("xeroKey") or "")
    if org is None:
        return _errors(
            NetworkError(
                401,
                "Unauthorized",
                "Xero.API.Library.Exceptions.UnauthorisedException",
                "The customer key is not valid",
            )
        )
    return org


def handle(req: MockRequest, state: NetworkState, segments: list[str], provider: str) -> MockResponse:
    call = (req.method, segments[0].lower() if segments else "")
    try:
        if call == ("GET", "contacts"):
            payload = el("Contacts", *[_contact_el(c) for c in state.contacts.values()])
        elif call == ("GET", "contact"):
            payload = _contact_el(_find_contact(req, state))
        elif call in (("PUT", "contact"), ("POST", "contact")):
            payload = _contact_el(_save_contact(req, state, create=req.method == "PUT"))
        elif call == ("GET", "invoices"):
            payload = el("Invoices", *[_invoice_el(i) for i in state.invoices.values()])
        elif call == ("GET", "invoice"):
            payload = _invoice_el(_find_invoice(req, state))
        elif call == ("PUT", "invoice"):
            payload = _invoice_el(_create_invoice(req, state))
        elif call == ("GET", "accounts"):
            payload = el("Accounts", el("Account", el("Code", "200"), el("Name", "Sales"), el("Type", "REVENUE")))
        elif call == ("GET", "tracking"):
            payload = el("Tracking")
        else:
            return MockResponse(404, b"Not Found", [("Content-Type", "text/plain")])
    except NetworkError as e:
        return _errors(e)
    return xml(
        el(
            "Response",
            el("ID", new_id()),
            el("Status", "OK"),
            el("ProviderName", provider),
            el("DateTimeUTC", utc_now()),
            payload,
        )
    )


def _errors(e: NetworkError) -> MockResponse:
    error = el(
        "Error",
        el("DateTime", utc_now()),
        el("Description", e.message),
        el("Exception", el("ExceptionType", e.exception_type), el("Message", e.message)),
    )
    return xml(
        el("Response", el("Errors", error), el("ID", new_id()), el("Status", e.status), el("DateTimeUTC", utc_now())),
        e.http_status,
    )


def _find_contact(req: MockRequest, s: NetworkState) -> dict[str, Any]:
    cid, number = req.param("contactID"), req.param("contactNumber")
    for c in s.contacts.values():
        if (cid and c["ContactID"] == cid) or (number and c.get("ContactNumber") == number):
            return c
    raise NetworkError(500, "InternalServerError", NOT_FOUND, "The contact does not exist")


def _find_invoice(req: MockRequest, s: NetworkState) -> dict[str, Any]:
    iid, number = req.param("invoiceID"), req.param("invoiceNumber")
    for i in s.invoices.values():
        if (iid and i["InvoiceID"] == iid) or (number and i["InvoiceNumber"] == number):
            return i
    raise NetworkError(500, "InternalServerError", NOT_FOUND, "The invoice does not exist")


def _body(req: MockRequest, root: str) -> etree._Element:
    doc = parse_xml(req.body)
    if doc is None or doc.tag != root:
        raise NetworkError(400, "BadRequest", VALIDATION, f"The request body must be a <{root}> document")
    return doc


def _save_contact(req: MockRequest, s: NetworkState, create: bool) -> dict[str, Any]:
    doc = _body(req, "Contact")
    values = {k: v for k in _CONTACT_FIELDS if (v := child_text(doc, k)) is not None}
    if create:
        if not values.get("Name"):
            raise NetworkError(400, "BadRequest", VALIDATION, "A contact name must be specified")
        values["ContactID"] = new_id()
        s.contacts[values["ContactID"]] = values
        return values
    existing = s.contacts.get(values.get("ContactID", "")) or next(
        (
            c
            for c in s.contacts.values()
            if c.get("ContactNumber") and c["ContactNumber"] == values.get("ContactNumber")
        ),
        None,
    )
    if existing is None:
        raise NetworkError(500, "InternalServerError", NOT_FOUND, "The contact does not exist")
    existing.update(values)
    return existing


def _create_invoice(req: MockRequest, s: NetworkState) -> dict[str, Any]:
    doc = _body(req, "Invoice")
    kind = child_text(doc, "InvoiceType")
    if kind not in ("ACCREC", "ACCPAY"):
        raise NetworkError(400, "BadRequest", VALIDATION, "InvoiceType must be ACCREC or ACCPAY")
    name = child_text(doc, "Contact/Name")
    if not name:
        raise NetworkError(400, "BadRequest", VALIDATION, "A contact name must be specified")
    for required in ("InvoiceDate", "InvoiceNumber"):
        if not child_text(doc, required):
            raise NetworkError(400, "BadRequest", VALIDATION, f"{required} must be specified")
    lines = list(doc.iterfind("LineItems/LineItem"))
    if not lines:
        raise NetworkError(400, "BadRequest", VALIDATION, "One or more line items must be specified")
    items = []
    for li in lines:
        for required in ("Description", "UnitAmount", "TaxAmount", "LineAmount", "AccountCode"):
            if child_text(li, required) is None:
                raise NetworkError(400, "BadRequest", VALIDATION, f"{required} must be specified for each line item")
        items.append(
            {
                k: child_text(li, k)
                for k in ("Description", "Quantity", "UnitAmount", "TaxAmount", "LineAmount", "AccountCode")
            }
        )
    invoice: dict[str, Any] = {
        "InvoiceID": new_id(),
        "InvoiceType": kind,
        "InvoiceNumber": child_text(doc, "InvoiceNumber"),
        "InvoiceDate": child_text(doc, "InvoiceDate"),
        "DueDate": child_text(doc, "DueDate"),
        "Reference": child_text(doc, "Reference"),
        "Contact": {"Name": name, "EmailAddress": child_text(doc, "Contact/EmailAddress")},
        "LineItems": items,
        "Total": child_text(doc, "Total"),
    }
    s.invoices[invoice["InvoiceID"]] = invoice
    return invoice


def _contact_el(c: dict[str, Any]) -> etree._Element:
    return el("Contact", *[el(k, c.get(k)) for k in _CONTACT_FIELDS])


def _invoice_el(i: dict[str, Any]) -> etree._Element:
    return el(
        "Invoice",
        el("InvoiceID", i["InvoiceID"]),
        el("InvoiceType", i["InvoiceType"]),
        el("Contact", el("Name", i["Contact"]["Name"]), el("EmailAddress", i["Contact"].get("EmailAddress"))),
        el("InvoiceDate", i["InvoiceDate"]),
        el("DueDate", i.get("DueDate")),
        el("InvoiceNumber", i["InvoiceNumber"]),
        el("Reference", i.get("Reference")),
        el("Total", i.get("Total")),
        el(
            "LineItems", *[el("LineItem", *[el(k, v) for k, v in li.items() if v is not None]) for li in i["LineItems"]]
        ),
    )
