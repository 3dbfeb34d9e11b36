"""Practice Manager 3.0 and WorkflowMax 3.0 in the mock: client, job, time and staff.

The two APIs share their shapes; WorkflowMax 3.0 names records by UUID where Practice
Manager uses integers (XERO.md §1): <ClientUUID> for <ClientID>, <UUID> for <ID>,
<TaskUUID>/<StaffUUID> in a timesheet, <add uuid=""/>. A job keeps its number in both.

Errors come back as HTTP 200 with <Status>ERROR</Status>, as Xero does (XERO.md §4.1).
Error texts seen on the real API are used verbatim; the few the mock needs beyond those
("... is required" for a missing date, the from/to message) are its own wording.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from .wire import MockRequest, MockResponse, child_text, el, parse_xml, xml

STATES = {
    "PLANNED": "Planned",
    "INPROGRESS": "In Progress",
    "ONHOLD": "On Hold",
    "COMPLETED": "Completed",
    "CANCELLED": "Cancelled",
}
NOT_EXPECTED = "Message not in expected format"


class XpmError(Exception):
    """An application error: answered as 200 + <Status>ERROR</Status>."""


# The mock's WorkflowMax UUIDs carry the record's number in their last group, so one state
# serves both APIs. (Real UUIDs are random; nothing outside the mock may rely on this.)
_UUID_PREFIX = "0f3a5c2e-7b1d-4e2a-9c11-"


@dataclass(frozen=True)
class Naming:
    """How an API names a client, contact, staff member, task or time entry."""

    uuids: bool = False

    @property
    def tag(self) -> str:
        return "UUID" if self.uuids else "ID"

    @property
    def attr(self) -> str:
        return "uuid" if self.uuids else "id"

    def field(self, name: str) -> str:
        """ClientID -> ClientUUID, Task -> TaskUUID (WorkflowMax); unchanged for Practice Manager."""
        if not self.uuids:
            return name
        return (name[:-2] if name.endswith("ID") else name) + "UUID"

    def show(self, number: int) -> str | int:
        return f"{_UUID_PREFIX}{number:012d}" if self.uuids else number

    def read(self, text: str | None) -> int | None:
        if text is None:
            return None
        if self.uuids:
            text = text.strip().lower()
            return _int(text[len(_UUID_PREFIX) :]) if text.startswith(_UUID_PREFIX) else None
        return _int(text)


PRACTICE_MANAGER, WORKFLOWMAX = Naming(), Naming(uuids=True)


@dataclass
class XpmState:
    clients: dict[int, dict[str, Any]] = field(default_factory=dict)
    staff: dict[int, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    times: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(24097700))
    job_numbers: itertools.count = field(default_factory=lambda: itertools.count(2))
    naming: Naming = PRACTICE_MANAGER

    @classmethod
    def seeded(cls, naming: Naming = PRACTICE_MANAGER) -> XpmState:
        s = cls(naming=naming)
        s.clients[24097642] = {
            "ID": 24097642,
            "Name": "Acme Plumbing Ltd",
            "Email": "accounts@acme.example",
            "Phone": "09 555 0100",
        }
        s.clients[24097643] = {
            "ID": 24097643,
            "Name": "Brightside Cafe",
            "Email": "hello@brightside.example",
            "Phone": "04 555 0199",
        }
        s.contacts[15412877] = {"ID": 15412877, "Client": 24097642, "Name": "Mereana Walker", "IsPrimary": "Yes"}
        s.staff[859230] = {"ID": 859230, "Name": "Jo Bloggs", "Email": "jo@practice.example", "Phone": "", "Mobile": ""}
        s.staff[859231] = {
            "ID": 859231,
            "Name": "Sam Smith",
            "Email": "sam@practice.example",
            "Phone": "",
            "Mobile": "",
        }
        s.jobs["J000001"] = {
            "ID": "J000001",
            "Name": "Annual accounts 2024",
            "Description": "Year-end accounts and tax return",
            "ClientID": 24097642,
            "State": "Planned",
            "StartDate": datetime(2024, 4, 1),
            "DueDate": datetime(2024, 6, 30),
            "Assigned": [859230],
            "Tasks": [{"ID": 66180001, "Name": "Prepare accounts"}],
        }
        s.times[24097690] = {
            "ID": 24097690,
            "Job": "J000001",
            "Task": 66180001,
            "Staff": 859230,
            "Date": datetime(2024, 8, 5),
            "Minutes": 60,
            "Note": "Bank reconciliations",
        }
        return s


def handle(req: MockRequest, state: XpmState, segments: list[str]) -> MockResponse:
    """``segments``: the path after the base, e.g. ["job.api", "get", "J000001"]."""
    resource, method, rest = segments[0], segments[1] if len(segments) > 1 else "", segments[2:]
    route = ROUTES.get((req.method, resource, method))
    if route is None:
        return MockResponse(404, b"Not Found", [("Content-Type", "text/plain")])
    api_method, fn = route
    try:
        payload = fn(req, state, rest)
    except XpmError as e:
        return error_response(api_method, str(e))
    return xml(el("Response", el("Status", "OK"), *payload, attrib={"api-method": api_method}))


def error_response(api_method: str, description: str) -> MockResponse:
    """HTTP 200 all the same: the body says ERROR."""
    return xml(
        el("Response", el("Status", "ERROR"), el("ErrorDescription", description), attrib={"api-method": api_method})
    )


# --- request helpers ----------------------------------------------------------------------------


def _body(req: MockRequest, root: str) -> etree._Element:
    doc = parse_xml(req.body)
    if doc is None:
        raise XpmError(NOT_EXPECTED)
    if doc.tag != root:
        raise XpmError(f"{NOT_EXPECTED}. The following required element was missing - /{root}")
    return doc


def _required(doc: etree._Element, name: str) -> str:
    value = child_text(doc, name)
    if value is None:
        raise XpmError(f"{NOT_EXPECTED}. The following required element was missing - /{doc.tag}/{name}")
    return value


def _job_named(s: XpmState, doc: etree._Element) -> dict[str, Any]:
    job = s.jobs.get((child_text(doc, "ID") or "").upper())
    if job is None:
        raise XpmError("Invalid job identifier")
    return job


def _date(value: str, name: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise XpmError(f"{NOT_EXPECTED}. {name} must be a date as yyyymmdd") from None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _iso(d: datetime | None) -> str | None:
    return d.strftime("%Y-%m-%dT%H:%M:%S") if d else None


# --- rendering ------------------------------------------------------------------------------


def _client_el(s: XpmState, c: dict[str, Any]) -> etree._Element:
    return el(
        "Client",
        el(s.naming.tag, s.naming.show(c["ID"])),
        el("Name", c["Name"]),
        el("Email", c.get("Email")),
        el("Phone", c.get("Phone")),
        el("Address", c.get("Address")),
        el("City", c.get("City")),
        el("PostCode", c.get("PostCode")),
        el("Country", c.get("Country")),
        el("IsProspect", "No"),
        el("IsArchived", "Yes" if c.get("Archived") else "No"),
        el("Contacts"),
    )


def _ref(s: XpmState, tag: str, number: int, name: str) -> etree._Element:
    return el(tag, el(s.naming.tag, s.naming.show(number)), el("Name", name))


def _job_el(s: XpmState, j: dict[str, Any]) -> etree._Element:
    client = s.clients[j["ClientID"]]
    return el(
        "Job",
        el("ID", j["ID"]),
        el("Name", j["Name"]),
        el("Description", j.get("Description")),
        _ref(s, "Client", client["ID"], client["Name"]),
        el("ClientOrderNumber", j.get("ClientOrderNumber")),
        el("State", j["State"]),
        el("StartDate", _iso(j["StartDate"])),
        el("DueDate", _iso(j["DueDate"])),
        *[_ref(s, role, j[role], s.staff[j[role]]["Name"]) for role in ("Manager", "Partner") if j.get(role)],
        el("Assigned", *[_ref(s, "Staff", sid, s.staff[sid]["Name"]) for sid in j["Assigned"]]),
        el("Tasks", *[_ref(s, "Task", t["ID"], t["Name"]) for t in j["Tasks"]]),
        el("Milestones"),
        el("Notes"),
    )


def _staff_el(s: XpmState, st: dict[str, Any]) -> etree._Element:
    return el(
        "Staff",
        el(s.naming.tag, s.naming.show(st["ID"])),
        *(el(k, st.get(k)) for k in ("Name", "Email", "Phone", "Mobile", "Address", "PayrollCode")),
    )


def _time_el(s: XpmState, t: dict[str, Any]) -> etree._Element:
    job = s.jobs[t["Job"]]
    task = next(x for x in job["Tasks"] if x["ID"] == t["Task"])
    return el(
        "Time",
        el(s.naming.tag, s.naming.show(t["ID"])),
        el("Job", el("ID", job["ID"]), el("Name", job["Name"])),
        _ref(s, "Task", task["ID"], task["Name"]),
        _ref(s, "Staff", t["Staff"], s.staff[t["Staff"]]["Name"]),
        el("Date", _iso(t["Date"])),
        el("Minutes", t["Minutes"]),
        el("Note", t.get("Note")),
        el("Billable", "true"),
    )


# --- clients ------------------------------------------------------------------------------


def client_list(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    return [el("Clients", *[_client_el(s, c) for c in s.clients.values()])]


def _in_path(s: XpmState, table: dict[int, dict[str, Any]], rest: list[str], what: str) -> dict[str, Any]:
    """The record the path's last segment names (client.api/get/{id}), or Xero's error for it."""
    found = table.get(s.naming.read(rest[0]) if rest else None)  # type: ignore[arg-type]
    if found is None:
        raise XpmError(f"Invalid {what} identifier")
    return found


def client_get(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    return [_client_el(s, _in_path(s, s.clients, rest, "client"))]


def client_add(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Client")
    name = child_text(doc, "Name")
    if not name:
        raise XpmError("The client name is required")
    cid = next(s.ids)
    s.clients[cid] = {
        "ID": cid,
        "Name": name,
        **{k: child_text(doc, k) for k in ("Email", "Phone", "Address", "City", "PostCode", "Country")},
    }
    return [_client_el(s, s.clients[cid])]


def client_update(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Client")
    client = s.clients.get(s.naming.read(child_text(doc, s.naming.tag)))  # type: ignore[arg-type]
    if client is None:
        raise XpmError("Invalid client identifier")
    name = child_text(doc, "Name")
    if not name:
        raise XpmError("The client name is required")
    client.update(
        {
            "Name": name,
            **{k: v for k in ("Email", "Phone", "Address", "City", "PostCode", "Country") if (v := child_text(doc, k))},
        }
    )
    return [_client_el(s, client)]


_CONTACT_FIELDS = ("Name", "Mobile", "Email", "Phone", "Position", "Salutation", "Addressee", "IsPrimary")


def _contact_el(s: XpmState, c: dict[str, Any]) -> etree._Element:
    # Every field, empty ones included, in the order Xero answers (xpm_ruby contact/update.yml).
    return el(
        "Contact",
        el(s.naming.tag, s.naming.show(c["ID"])),
        *(el(k, c.get(k, "No" if k == "IsPrimary" else "")) for k in _CONTACT_FIELDS),
    )


def contact_get(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    return [_contact_el(s, _in_path(s, s.contacts, rest, "contact"))]


def contact_update(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    """PUT client.api/contact/{id}: <Contact> with the fields to change; Xero also accepts the
    contact's <Client><ID/></Client> in it (xpm_ruby contact/update.yml)."""
    contact = _in_path(s, s.contacts, rest, "contact")
    doc = _body(req, "Contact")
    client = doc.find("Client")
    if client is not None and s.naming.read(child_text(client, s.naming.tag)) not in s.clients:
        raise XpmError("Invalid client identifier")
    contact.update({k: v for k in _CONTACT_FIELDS if (v := child_text(doc, k)) is not None})
    return [_contact_el(s, contact)]


# --- jobs -------------------------------------------------------------------------------------


def job_list(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    start, end = req.param("from"), req.param("to")
    if not start or not end:
        raise XpmError("The from and to parameters are required (yyyymmdd)")
    lo, hi = _date(start, "from"), _date(end, "to")
    jobs = [j for j in s.jobs.values() if j["StartDate"] <= hi and j["DueDate"] >= lo]
    return [el("Jobs", *[_job_el(s, j) for j in jobs])]


def job_current(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    jobs = [j for j in s.jobs.values() if j["State"] not in ("Completed", "Cancelled")]
    return [el("Jobs", *[_job_el(s, j) for j in jobs])]


def job_get(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    job = s.jobs.get(rest[0].upper() if rest else "")
    if job is None:
        raise XpmError("Invalid job identifier")
    return [_job_el(s, job)]


def job_add(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Job")
    name = _required(doc, "Name")
    client_id = s.naming.read(_required(doc, s.naming.field("ClientID")))
    start = _date(_required(doc, "StartDate"), "StartDate")
    due = _date(_required(doc, "DueDate"), "DueDate")
    if client_id not in s.clients:
        raise XpmError("Invalid client identifier")
    number = f"J{next(s.job_numbers):06d}"
    s.jobs[number] = {
        "ID": number,
        "Name": name,
        "Description": child_text(doc, "Description"),
        "ClientID": client_id,
        "ClientOrderNumber": child_text(doc, "ClientNumber"),
        "State": "Planned",
        "StartDate": start,
        "DueDate": due,
        "Assigned": [],
        "Tasks": [{"ID": next(s.ids), "Name": "General"}],
    }
    return [_job_el(s, s.jobs[number])]


def job_update(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Job")
    job = _job_named(s, doc)
    for key in ("Name", "Description"):
        if (value := child_text(doc, key)) is not None:
            job[key] = value
    for key in ("StartDate", "DueDate"):
        if (value := child_text(doc, key)) is not None:
            job[key] = _date(value, key)
    if (client := child_text(doc, s.naming.field("ClientID"))) is not None:  # xpm_ruby job/update.yml
        if s.naming.read(client) not in s.clients:
            raise XpmError("Invalid client identifier")
        job["ClientID"] = s.naming.read(client)
    return [_job_el(s, job)]


def job_assign(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    """Staff on or off the job (add/remove), its manager and partner (add-manager, remove-manager,
    add-partner, remove-partner), in document order, as recorded from Xero (xpm_ruby job/assign*)."""
    doc = _body(req, "Job")
    job = _job_named(s, doc)
    for change in doc:
        if not isinstance(change.tag, str) or change.tag == "ID":
            continue
        what, _, role = change.tag.partition("-")
        staff = s.naming.read(change.get(s.naming.attr))
        if what == "add" and staff not in s.staff:
            raise XpmError("Invalid staff identifier for add request")
        if role in ("manager", "partner"):
            job[role.capitalize()] = staff if what == "add" else None
        elif what == "add" and staff not in job["Assigned"]:
            job["Assigned"].append(staff)
        elif what == "remove" and staff in job["Assigned"]:
            job["Assigned"].remove(staff)
    return [_job_el(s, job)]


def job_state(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Job")
    job = _job_named(s, doc)
    code = (child_text(doc, "State") or "").upper()
    if code not in STATES:
        raise XpmError("Invalid state code")
    job["State"] = STATES[code]
    # The envelope alone, <Response api-method="State"><Status>OK</Status></Response>, as Xero
    # answered it (xpm_ruby job/state/success.yml).
    return []


# --- time ----------------------------------------------------------------------------------------


def _timesheet(doc: etree._Element, s: XpmState, t: dict[str, Any]) -> None:
    job = s.jobs.get((_required(doc, "Job")).upper())
    if job is None:
        raise XpmError("Invalid job identifier")
    task = s.naming.read(_required(doc, s.naming.field("Task")))
    if task not in {x["ID"] for x in job["Tasks"]}:
        raise XpmError("Invalid task identifier")
    staff = s.naming.read(_required(doc, s.naming.field("Staff")))
    if staff not in s.staff:
        raise XpmError("Invalid staff identifier")
    minutes = _int(child_text(doc, "Minutes"))
    start, end = child_text(doc, "Start"), child_text(doc, "End")
    if minutes is None and start and end:
        try:
            t0, t1 = datetime.strptime(start, "%H:%M"), datetime.strptime(end, "%H:%M")
        except ValueError:
            raise XpmError(f"{NOT_EXPECTED}. Start and End must be times as HH:MM") from None
        minutes = int((t1 - t0).total_seconds() // 60)
    if minutes is None or minutes <= 0:
        raise XpmError(f"{NOT_EXPECTED}. The following required element was missing - /Timesheet/Minutes")
    t.update(
        Job=job["ID"],
        Task=task,
        Staff=staff,
        Date=_date(_required(doc, "Date"), "Date"),
        Minutes=minutes,
        Note=child_text(doc, "Note"),
    )


def time_add(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Timesheet")
    t: dict[str, Any] = {"ID": next(s.ids)}
    _timesheet(doc, s, t)
    s.times[t["ID"]] = t
    return [_time_el(s, t)]


def time_update(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Timesheet")
    t = s.times.get(s.naming.read(child_text(doc, s.naming.tag)))  # type: ignore[arg-type]
    if t is None:
        raise XpmError("Invalid time identifier")
    _timesheet(doc, s, t)
    return [_time_el(s, t)]


def time_list(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    start, end = req.param("from"), req.param("to")
    if not start or not end:
        raise XpmError("The from and to parameters are required (yyyymmdd)")
    lo, hi = _date(start, "from"), _date(end, "to")
    return [el("Times", *[_time_el(s, t) for t in s.times.values() if lo <= t["Date"] <= hi])]


def time_job(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    number = rest[0].upper() if rest else ""
    if number not in s.jobs:
        raise XpmError("Invalid job identifier")
    return [el("Times", *[_time_el(s, t) for t in s.times.values() if t["Job"] == number])]


def time_get(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    return [_time_el(s, _in_path(s, s.times, rest, "time"))]


# --- staff -----------------------------------------------------------------------------------------


def staff_list(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    return [el("StaffList", *[_staff_el(s, st) for st in s.staff.values()])]


def staff_get(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    return [_staff_el(s, _in_path(s, s.staff, rest, "staff"))]


def staff_add(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Staff")
    if child_text(doc, s.naming.tag) is not None:
        raise XpmError("Invalid staff identifier for add request")
    name = _required(doc, "Name")
    sid = next(s.ids)
    s.staff[sid] = {
        "ID": sid,
        "Name": name,
        **{k: child_text(doc, k) for k in ("Email", "Phone", "Mobile", "Address", "PayrollCode")},
    }
    return [_staff_el(s, s.staff[sid])]


def staff_update(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Staff")
    st = s.staff.get(s.naming.read(child_text(doc, s.naming.tag)))  # type: ignore[arg-type]
    if st is None:
        raise XpmError("Invalid staff identifier")
    st.update(
        {
            k: v
            for k in ("Name", "Email", "Phone", "Mobile", "Address", "PayrollCode")
            if (v := child_text(doc, k)) is not None
        }
    )
    return [_staff_el(s, st)]


def contact_add(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    """POST client.api/contact: <Contact><Client><ID/></Client><Name/>…</Contact> (xpm_ruby contact/add.yml)."""
    doc = _body(req, "Contact")
    client = doc.find("Client")
    owner = s.naming.read(child_text(client, s.naming.tag)) if client is not None else None
    if owner not in s.clients:
        raise XpmError("Invalid client identifier")
    name = _required(doc, "Name")
    cid = next(s.ids)
    s.contacts[cid] = {"ID": cid, "Client": owner, "Name": name}
    s.contacts[cid].update({k: v for k in _CONTACT_FIELDS[1:] if (v := child_text(doc, k)) is not None})
    return [_contact_el(s, s.contacts[cid])]


def contact_delete(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    """DELETE client.api/contact/{id} answers the contact it removed (xpm_ruby contact/delete.yml)."""
    contact = _in_path(s, s.contacts, rest, "contact")
    del s.contacts[contact["ID"]]
    return [_contact_el(s, contact)]


def job_applytemplate(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    """The job with the template's tasks added (xpm_ruby job/applytemplate.yml answers the job)."""
    doc = _body(req, "Job")
    job = _job_named(s, doc)
    _required(doc, s.naming.field("TemplateID"))
    job["Tasks"].append({"ID": next(s.ids), "Name": "From template"})
    return [_job_el(s, job)]


def job_delete(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    """<Response api-method="Delete"><Status>OK</Status></Response>, nothing more (xpm_ruby job/delete.yml)."""
    del s.jobs[_job_named(s, _body(req, "Job"))["ID"]]
    return []


def staff_delete(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
    doc = _body(req, "Staff")
    if s.staff.pop(s.naming.read(child_text(doc, s.naming.tag)), None) is None:  # type: ignore[arg-type]
        raise XpmError("Invalid staff identifier")
    return []


# The writes the mock takes without keeping what they change: the body's root is checked as
# Xero checks it, and the answer is the envelope Xero sends for that call with the record as
# sent (an add gets an identifier). (method, resource, method segment) -> (api-method, root, add?).
ACCEPTED: dict[tuple[str, str, str], tuple[str, str, bool]] = {
    ("PUT", "client.api", "archive"): ("Archive", "Client", False),
    ("POST", "client.api", "delete"): ("Delete", "Client", False),
    ("POST", "client.api", "addrelationship"): ("AddRelationship", "Relationship", True),
    ("POST", "client.api", "updaterelationship"): ("UpdateRelationship", "Relationship", False),
    ("PUT", "client.api", "updaterelationship"): ("UpdateRelationship", "Relationship", False),  # v3.1 spec's method
    ("POST", "client.api", "deleterelationship"): ("DeleteRelationship", "Relationship", False),
    ("POST", "clientgroup.api", "add"): ("Add", "Group", True),
    ("PUT", "clientgroup.api", "members"): ("Members", "Group", False),
    ("POST", "clientgroup.api", "delete"): ("Delete", "Group", False),
    ("POST", "job.api", "task"): ("Task", "Task", True),
    ("PUT", "job.api", "task"): ("Task", "Task", False),
    ("PUT", "job.api", "reordertasks"): ("ReorderTasks", "Job", False),
    ("POST", "job.api", "note"): ("Note", "Note", True),
    ("POST", "job.api", "cost"): ("Cost", "Cost", True),
    ("PUT", "job.api", "cost"): ("Cost", "Cost", False),
    ("POST", "staff.api", "enable"): ("Enable", "Staff", False),
    ("POST", "staff.api", "disable"): ("Disable", "Staff", False),
    ("POST", "staff.api", "forgottenpassword"): ("ForgottenPassword", "Staff", False),
    ("POST", "lead.api", "add"): ("Add", "Lead", True),
    ("POST", "cost.api", "add"): ("Add", "Cost", True),
    ("PUT", "cost.api", "update"): ("Update", "Cost", False),
    ("POST", "cost.api", "delete"): ("Delete", "Cost", False),
    ("POST", "supplier.api", "add"): ("Add", "Supplier", True),
    ("PUT", "supplier.api", "update"): ("Update", "Supplier", False),
    ("PUT", "supplier.api", "archive"): ("Archive", "Supplier", False),
    ("POST", "supplier.api", "delete"): ("Delete", "Supplier", False),
    ("POST", "purchaseorder.api", "add"): ("Add", "PurchaseOrder", True),
    ("POST", "purchaseorder.api", "adddraft"): ("AddDraft", "PurchaseOrder", True),
}


def _accepted(root: str, add: bool, delete: bool) -> Any:
    def handler(req: MockRequest, s: XpmState, rest: list[str]) -> list[etree._Element]:
        doc = _body(req, root)
        if root == "Lead":  # Xero's own text for a lead without one (XERO.md §4.1)
            _required(doc, s.naming.field("ClientID"))
        if delete:
            return []  # as job.api/delete and staff.api/delete answer
        if add and doc.find(s.naming.tag) is None:
            doc.insert(0, el(s.naming.tag, s.naming.show(next(s.ids))))
        return [doc]

    return handler


# (HTTP method, resource, method segment) -> (api-method attribute, handler).
# staff.api/add really answers api-method="Get" (XERO.md §5).
ROUTES = {
    ("GET", "client.api", "list"): ("List", client_list),
    ("GET", "client.api", "get"): ("Get", client_get),
    ("POST", "client.api", "add"): ("Add", client_add),
    ("PUT", "client.api", "update"): ("Update", client_update),
    ("GET", "client.api", "contact"): ("Contact", contact_get),
    ("PUT", "client.api", "contact"): ("Contact", contact_update),
    ("GET", "job.api", "current"): ("Current", job_current),
    ("GET", "job.api", "list"): ("List", job_list),
    ("GET", "job.api", "get"): ("Get", job_get),
    ("POST", "job.api", "add"): ("Add", job_add),
    ("PUT", "job.api", "update"): ("Update", job_update),
    ("PUT", "job.api", "state"): ("State", job_state),
    ("PUT", "job.api", "assign"): ("Assign", job_assign),
    ("GET", "time.api", "list"): ("List", time_list),
    ("GET", "time.api", "job"): ("Job", time_job),
    ("GET", "time.api", "get"): ("Get", time_get),
    ("POST", "time.api", "add"): ("Add", time_add),
    ("PUT", "time.api", "update"): ("Update", time_update),
    ("GET", "staff.api", "list"): ("List", staff_list),
    ("GET", "staff.api", "get"): ("Get", staff_get),
    ("POST", "staff.api", "add"): ("Get", staff_add),
    ("PUT", "staff.api", "update"): ("Update", staff_update),
    ("POST", "client.api", "contact"): ("Contact", contact_add),
    ("DELETE", "client.api", "contact"): ("Contact", contact_delete),
    ("POST", "job.api", "applytemplate"): ("ApplyTemplate", job_applytemplate),
    ("POST", "job.api", "delete"): ("Delete", job_delete),
    ("POST", "staff.api", "delete"): ("Delete", staff_delete),
    **{
        key: (api_method, _accepted(root, add, api_method.startswith("Delete")))
        for key, (api_method, root, add) in ACCEPTED.items()
    },
}


def api_method(http_method: str, path: str) -> str:
    """The api-method attribute Xero puts on the <Response> to this call (a fault rule's xpm-error
    answers with it too): ``POST .../job.api/add`` -> "Add"."""
    segments = [s for s in path.split("/") if s]
    for i, resource in enumerate(segments):
        if resource.endswith(".api"):
            method = segments[i + 1] if i + 1 < len(segments) else ""
            route = ROUTES.get((http_method, resource, method))
            return route[0] if route else method[:1].upper() + method[1:]
    return ""
