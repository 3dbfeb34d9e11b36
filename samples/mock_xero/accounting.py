"""Accounting 2.0 in the mock: Invoices and Contacts, in XML or JSON.

Request bodies may be the plural wrapper (<Invoices><Invoice>…) or a bare <Invoice>, raw or
in an `xml=` form field (old clients). Validation failures answer 400 ApiException listing
every element of the batch with its ValidationErrors; with summarizeErrors=false the
answer is 200 and each element carries its own status (XERO.md §4.3, §7).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from .wire import MockRequest, MockResponse, as_json, child_text, el, new_id, parse_xml, utc_now, xml

XSI = "http://www.w3.org/2001/XMLSchema-instance"
INVOICE_TYPES = ("ACCREC", "ACCPAY")
INVOICE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
CONTACT_STATUSES = ("ACTIVE", "ARCHIVED", "GDPRREQUEST")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_INVOICE_FIELDS = (
    "InvoiceID",
    "Type",
    "InvoiceNumber",
    "Reference",
    "Date",
    "DueDate",
    "Status",
    "LineAmountTypes",
    "CurrencyCode",
)
_LINE_FIELDS = ("Description", "Quantity", "UnitAmount", "AccountCode", "TaxType", "LineAmount")
_CONTACT_FIELDS = ("ContactID", "Name", "FirstName", "LastName", "EmailAddress", "ContactStatus", "AccountNumber")


# The other documents the request schemas cover, kept as sent (XML only): the mock checks the
# root and answers the envelope Xero sends, each record with its new ID, as Invoices are answered.
OTHERS = {
    "items": "Item",
    "payments": "Payment",
    "creditnotes": "CreditNote",
    "banktransactions": "BankTransaction",
    "manualjournals": "ManualJournal",
    "purchaseorders": "PurchaseOrder",
    "quotes": "Quote",
}


@dataclass
class AccountingState:
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    others: dict[str, dict[str, etree._Element]] = field(default_factory=dict)  # kind -> id -> record

    @classmethod
    def seeded(cls) -> AccountingState:
        s = cls()
        cid = "5b96e86b-418e-48e8-8949-308c14aec278"
        s.contacts[cid] = {
            "ContactID": cid,
            "Name": "ABC Furniture",
            "EmailAddress": "info@abfl.example",
            "ContactStatus": "ACTIVE",
        }
        iid = "243216c5-369e-4056-ac67-05388f86dc81"
        s.invoices[iid] = _totals(
            {
                "InvoiceID": iid,
                "Type": "ACCREC",
                "InvoiceNumber": "INV-0001",
                "Contact": {"ContactID": cid, "Name": "ABC Furniture"},
                "Date": "2024-05-01",
                "DueDate": "2024-05-31",
                "Status": "AUTHORISED",
                "LineAmountTypes": "Exclusive",
                "LineItems": [{"Description": "Desk", "Quantity": "2", "UnitAmount": "250.00", "AccountCode": "200"}],
            }
        )
        return s


def _not_found() -> MockResponse:
    return MockResponse(404, b"The resource you're looking for cannot be found", [("Content-Type", "text/plain")])


def handle(req: MockRequest, state: AccountingState, segments: list[str], provider: str) -> MockResponse:
    resource = segments[0].lower() if segments else ""
    kind = {"invoices": "Invoice", "contacts": "Contact"}.get(resource)
    if kind is None:
        if resource in OTHERS and not req.wants_json:
            return _other(req, state, segments, provider)
        return _not_found()
    store = state.invoices if kind == "Invoice" else state.contacts
    ident = segments[1] if len(segments) > 1 else None
    if req.method == "GET":
        if ident is None:
            return _answer(req, kind, list(store.values()), provider)
        found = store.get(ident) or next((v for v in store.values() if v.get("InvoiceNumber") == ident), None)
        if found is None:
            return _not_found()
        return _answer(req, kind, [found], provider)
    if req.method not in ("PUT", "POST"):
        return MockResponse(405, b"Method Not Allowed", [("Content-Type", "text/plain")])
    elements = _elements(req, kind)
    if elements is None:
        return _exception(req, kind, [], f"The request body is not a valid {kind} document")
    if ident is not None:
        for e in elements:
            e[f"{kind}ID"] = ident
    errors = [_validate(state, kind, e) for e in elements]
    summarize = (req.param("summarizeErrors") or "true").lower() != "false"
    if summarize and any(errors):
        return _exception(req, kind, list(zip(elements, errors, strict=True)), "A validation exception occurred")
    saved = []
    for e, errs in zip(elements, errors, strict=True):
        if errs:
            saved.append({**e, "_status": "ERROR", "_errors": errs})
        else:
            saved.append({**_save(state, kind, e), "_status": "OK"})
    return _answer(req, kind, saved, provider)


# --- reading requests -----------------------------------------------------------------------


def _elements(req: MockRequest, kind: str) -> list[dict[str, Any]] | None:
    ctype = (req.header("content-type") or "").lower()
    if "json" in ctype or req.body.lstrip()[:1] in (b"{", b"["):
        try:
            doc = json.loads(req.body)
        except ValueError:
            return None
        items = doc.get(f"{kind}s", [doc]) if isinstance(doc, dict) else doc
        return [dict(i) for i in items if isinstance(i, dict)]
    root = parse_xml(req.body)
    if root is None:
        return None
    if root.tag == f"{kind}s":
        nodes = list(root.iterfind(kind))
    elif root.tag == kind:
        nodes = [root]
    else:
        return None
    return [_invoice_from_xml(n) if kind == "Invoice" else _contact_from_xml(n) for n in nodes]


def _invoice_from_xml(n: etree._Element) -> dict[str, Any]:
    inv: dict[str, Any] = {k: v for k in _INVOICE_FIELDS if (v := child_text(n, k)) is not None}
    contact = n.find("Contact")
    if contact is not None:
        inv["Contact"] = _contact_from_xml(contact)
    inv["LineItems"] = [
        {k: v for k in _LINE_FIELDS if (v := child_text(li, k)) is not None} for li in n.iterfind("LineItems/LineItem")
    ]
    return inv


def _contact_from_xml(n: etree._Element) -> dict[str, Any]:
    return {k: v for k in _CONTACT_FIELDS if (v := child_text(n, k)) is not None}


# --- validation and saving ----------------------------------------------------------------------
# "A Contact must be specified…" and "Email address must be valid." are Xero's texts; the
# other messages are the mock's wording.


def _validate(state: AccountingState, kind: str, e: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if kind == "Contact":
        return _validate_contact(state, e)
    existing = state.invoices.get(str(e.get("InvoiceID")))
    if existing is None and e.get("Type") not in INVOICE_TYPES:
        errors.append("Invoice Type must be ACCREC or ACCPAY")
    contact = e.get("Contact") or {}
    if existing is None and not (contact.get("ContactID") or contact.get("Name")):
        errors.append("A Contact must be specified for this type of transaction")
    if contact.get("ContactID") and contact["ContactID"] not in state.contacts:
        errors.append("The contact could not be found")
    if contact.get("EmailAddress") and not _EMAIL_RE.match(str(contact["EmailAddress"])):
        errors.append("Email address must be valid.")
    if e.get("Status") and e["Status"] not in INVOICE_STATUSES:
        errors.append(f"Status must be one of {', '.join(INVOICE_STATUSES)}")
    if e.get("LineAmountTypes") and e["LineAmountTypes"] not in LINE_AMOUNT_TYPES:
        errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax")
    for li in e.get("LineItems") or ():
        if not li.get("Description"):
            errors.append("The Description field is mandatory for each Line Item.")
        for key in ("Quantity", "UnitAmount"):
            if li.get(key) is not None and _decimal(li[key]) is None:
                errors.append(f"{key} must be a number")
    return errors


def _validate_contact(state: AccountingState, e: dict[str, Any]) -> list[str]:
    errors = []
    existing = state.contacts.get(str(e.get("ContactID")))
    name = e.get("Name")
    if existing is None and not name:
        errors.append("The contact name must be specified")
    if name and any(c["Name"] == name and c is not existing for c in state.contacts.values()):
        errors.append(
            f"The contact name {name} is already assigned to another contact. "
            "The contact name must be unique across all active contacts."
        )
    if e.get("EmailAddress") and not _EMAIL_RE.match(str(e["EmailAddress"])):
        errors.append("Email address must be valid.")
    if e.get("ContactStatus") and e["ContactStatus"] not in CONTACT_STATUSES:
        errors.append(f"ContactStatus must be one of {', '.join(CONTACT_STATUSES)}")
    return errors


def _save(state: AccountingState, kind: str, e: dict[str, Any]) -> dict[str, Any]:
    if kind == "Contact":
        cid = str(e.get("ContactID") or new_id())
        contact = {**state.contacts.get(cid, {"ContactStatus": "ACTIVE"}), **e, "ContactID": cid}
        state.contacts[cid] = contact
        return contact
    iid = str(e.get("InvoiceID") or new_id())
    inv = {**state.invoices.get(iid, {"Status": "DRAFT", "LineAmountTypes": "Exclusive"}), **e, "InvoiceID": iid}
    contact = inv.get("Contact") or {}
    if not contact.get("ContactID"):
        match = next((c for c in state.contacts.values() if c["Name"] == contact.get("Name")), None)
        if match is None:
            match = _save(state, "Contact", {"Name": contact.get("Name"), "EmailAddress": contact.get("EmailAddress")})
        inv["Contact"] = {"ContactID": match["ContactID"], "Name": match["Name"]}
    if not inv.get("InvoiceNumber") and inv.get("Type") == "ACCREC":
        inv["InvoiceNumber"] = f"INV-{len(state.invoices) + 1:04d}"
    state.invoices[iid] = _totals(inv)
    return inv


def _decimal(v: Any) -> Decimal | None:
    try:
        return Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None


def _totals(inv: dict[str, Any]) -> dict[str, Any]:
    sub = Decimal(0)
    for li in inv.get("LineItems") or ():
        amount = (_decimal(li.get("Quantity", "1")) or Decimal(1)) * (_decimal(li.get("UnitAmount", "0")) or Decimal(0))
        li["LineAmount"] = f"{amount:.2f}"
        sub += amount
    kind = inv.get("LineAmountTypes", "Exclusive")
    tax = Decimal(0) if kind == "NoTax" else (sub * Decimal("0.15") if kind == "Exclusive" else sub * 3 / 23)
    total = sub + tax if kind == "Exclusive" else sub
    inv.update(SubTotal=f"{(total - tax):.2f}", TotalTax=f"{tax:.2f}", Total=f"{total:.2f}", UpdatedDateUTC=utc_now())
    return inv


# --- answers ------------------------------------------------------------------------------------


def _public(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if not k.startswith("_")}


def _answer(req: MockRequest, kind: str, items: list[dict[str, Any]], provider: str) -> MockResponse:
    if req.wants_json:
        out = []
        for i in items:
            doc = _public(i)
            if "_status" in i:
                doc["StatusAttributeString"] = i["_status"]
                doc["ValidationErrors"] = [{"Message": m} for m in i.get("_errors", [])]
            out.append(doc)
        return as_json(
            {"Id": new_id(), "Status": "OK", "ProviderName": provider, "DateTimeUTC": utc_now(), f"{kind}s": out}
        )
    return _envelope(kind, [_to_xml(kind, i) for i in items], provider)


def _exception(
    req: MockRequest, kind: str, failed: list[tuple[dict[str, Any], list[str]]], message: str
) -> MockResponse:
    if req.wants_json:
        elements = [{**_public(e), "ValidationErrors": [{"Message": m} for m in errs]} for e, errs in failed]
        doc = {"ErrorNumber": 10, "Type": "ValidationException", "Message": message, "Elements": elements}
        return as_json(doc, 400)
    root = etree.Element("ApiException", nsmap={"xsi": XSI})
    root.extend([el("ErrorNumber", 10), el("Type", "ValidationException"), el("Message", message)])
    elements_el = el("Elements")
    for e, errs in failed:
        node = _to_xml(kind, {**e, "_errors": errs})
        node.tag = "DataContractBase"
        node.set(f"{{{XSI}}}type", kind)
        elements_el.append(node)
    root.append(elements_el)
    return xml(root, 400)


def _to_xml(kind: str, e: dict[str, Any]) -> etree._Element:
    node = el(kind)
    if e.get("_errors"):
        node.append(el("ValidationErrors", *[el("ValidationError", el("Message", m)) for m in e["_errors"]]))
    if "_status" in e:
        node.set("status", e["_status"])
    for key, value in _public(e).items():
        if key == "Contact" and isinstance(value, dict):
            node.append(el("Contact", *[el(k, v) for k, v in value.items() if v is not None]))
        elif key == "LineItems" and isinstance(value, list):
            node.append(el("LineItems", *[el("LineItem", *[el(k, v) for k, v in li.items()]) for li in value]))
        elif not isinstance(value, dict | list):
            node.append(el(key, value))
    return node


def _other(req: MockRequest, state: AccountingState, segments: list[str], provider: str) -> MockResponse:
    kind = OTHERS[segments[0].lower()]
    ident = segments[1] if len(segments) > 1 else None
    if len(segments) == 3 and kind == "CreditNote" and segments[2].lower() == "allocations":
        kind, ident = "Allocation", None  # PUT CreditNotes/{id}/Allocations answers <Allocations>
    store = state.others.setdefault(kind, {})
    if req.method == "GET":
        found = list(store.values()) if ident is None else [store[ident]] if ident in store else None
        if found is None:
            return _not_found()
        return _envelope(kind, found, provider)
    if req.method not in ("PUT", "POST"):
        return MockResponse(405, b"Method Not Allowed", [("Content-Type", "text/plain")])
    root = parse_xml(req.body)
    nodes: list[etree._Element] = []
    if root is not None and root.tag == f"{kind}s":
        nodes = list(root.iterfind(kind))
    elif root is not None and root.tag == kind:
        nodes = [root]
    if not nodes:
        return _exception(req, "Invoice", [], f"The request body is not a valid {kind} document")
    for node in nodes:
        key = f"{kind}ID"
        if ident is not None and node.find(key) is None:
            node.insert(0, el(key, ident))
        if node.find(key) is None:
            node.insert(0, el(key, new_id()))
        store[child_text(node, key) or ""] = node
    return _envelope(kind, nodes, provider)


def _envelope(kind: str, nodes: list[etree._Element], provider: str) -> MockResponse:
    return xml(
        el(
            "Response",
            el("Id", new_id()),
            el("Status", "OK"),
            el("ProviderName", provider),
            el("DateTimeUTC", utc_now()),
            el(f"{kind}s", *nodes),
        )
    )
