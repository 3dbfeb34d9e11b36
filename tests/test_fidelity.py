"""The fidelity audit stays true: every element a real client sent in a body Xero accepted (the
rows of samples/fidelity/*.csv, each with its source) is one our schema allows where it was sent.

The schema is read as the document it is: from the endpoint's root type, each step of the row's
path must be an element that type declares, and the type of that element is the next step's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from lxml import etree

from inspector.ingest.catalog import Catalog

FIDELITY = Path(__file__).resolve().parent.parent / "samples" / "fidelity"
XS = {"xs": "http://www.w3.org/2001/XMLSchema"}
CATALOG = Catalog.load()


def _rows(pattern: str = "*-requests.csv") -> list[dict[str, str]]:
    return [row for path in sorted(FIDELITY.glob(pattern)) for row in csv.DictReader(path.open(encoding="utf-8"))]


ACCOUNTING = etree.parse(str(Path(__file__).resolve().parent.parent / "inspector/schemas/accounting-2.0/requests.xsd"))


def declares(xsd: etree._ElementTree, type_name: str, child: str) -> str | None:
    """The type of ``child`` as the complex type ``type_name`` declares it, or None if it does not."""
    found = xsd.xpath("//xs:complexType[@name=$t]//xs:element[@name=$c]", namespaces=XS, t=type_name, c=child)
    return str(found[0].get("type", "")) if found else None


def _allowed(row: dict[str, str], base: str) -> None:
    """The row's element path is one the schema of its endpoint allows, step by step."""
    assert row["source"].strip(), "every row names where it was seen"
    method, path = row["endpoint"].split(" ", 1)
    c = CATALOG.classify(method, "api.xero.com", base + path.replace("{", "").replace("}", ""))
    assert c.request_schema is not None, row["endpoint"]
    xsd = etree.parse(str(c.request_schema.file))
    root, *steps = row["element"].strip("/").split("/")
    type_name: str | None = dict(c.request_schema.roots).get(root)
    assert type_name, f"{root} is not a root the catalog takes for {row['endpoint']}"
    for step in steps:
        if type_name == "Record":
            break  # an open record (xs:any inside): whatever it holds is allowed
        if step.startswith("@"):  # an attribute: the last step
            found = xsd.xpath(
                "//xs:complexType[@name=$t]//xs:attribute[@name=$a]", namespaces=XS, t=type_name, a=step[1:]
            )
            assert found, f"{row['element']}: {step} is not allowed ({row['source']})"
            break
        type_name = declares(xsd, type_name, step)
        assert type_name is not None, f"{row['element']}: {step} is not allowed ({row['source']})"
    assert row["verdict"].startswith("allowed")


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['endpoint']} {r['element']}")
def test_every_element_xero_accepted_is_allowed(row: dict[str, str]) -> None:
    _allowed(row, "/practicemanager/3.0/")


@pytest.mark.parametrize("row", _rows("xpm-3.1-spec-fields.csv"), ids=lambda r: f"{r['endpoint']} {r['element']}")
def test_every_field_of_the_practice_manager_spec_is_allowed_in_3_0(row: dict[str, str]) -> None:
    """Practice Manager against Xero's v3.1 OpenAPI spec (JSON, the same entities): every property
    of every request body, under the name 3.0's XML gives it, is allowed at the 3.0 endpoint."""
    assert row["source"].startswith("xero-practicemanager-v3-1.yaml")
    _allowed(row, "/practicemanager/3.0/")


@pytest.mark.parametrize("row", _rows("*-spec-examples.csv"), ids=lambda r: f"{r['endpoint']} {r['element']}")
def test_every_element_of_the_specs_request_examples_is_allowed(row: dict[str, str]) -> None:
    """Accounting 2.0: every element of the request examples in Xero's OpenAPI spec, written as
    XML, nested objects included (a payment's whole Invoice, a bank account's Name)."""
    assert row["source"].startswith("xero_accounting.yaml v16.1.0 paths.")
    _allowed(row, "/api.xro/2.0/")


@pytest.mark.parametrize("row", _rows("*-spec.csv"), ids=lambda r: f"{r['type']}.{r['element']}")
def test_every_field_of_the_official_spec_is_allowed(row: dict[str, str]) -> None:
    """Accounting 2.0 against Xero's OpenAPI spec (XeroAPI/Xero-OpenAPI, xero_accounting.yaml):
    every property of an entity is an element its type allows, and one the spec does not require
    is never required when creating."""
    assert row["source"].startswith("xero_accounting.yaml#/components/schemas/")
    optional = row["verdict"].startswith("optional")
    for type_name in (row["type"],) if optional else (row["type"], row["type"] + "Create"):
        found = ACCOUNTING.xpath(
            "//xs:complexType[@name=$t]//xs:element[@name=$e]", namespaces=XS, t=type_name, e=row["element"]
        )
        if optional:
            assert found and found[0].get("minOccurs") == "0", f"{type_name}.{row['element']} is required"
        elif ACCOUNTING.xpath("//xs:complexType[@name=$t]", namespaces=XS, t=type_name):
            assert found, f"{type_name} does not allow {row['element']} ({row['source']})"
            if "required by the spec" in row["verdict"] and not type_name.endswith("Create"):
                create = ACCOUNTING.xpath("//xs:complexType[@name=$t]", namespaces=XS, t=type_name + "Create")
                where = type_name + "Create" if create else type_name
                declared = ACCOUNTING.xpath(
                    "//xs:complexType[@name=$t]//xs:element[@name=$e]", namespaces=XS, t=where, e=row["element"]
                )
                assert declared and declared[0].get("minOccurs", "1") != "0", f"{where}.{row['element']} is optional"


def test_the_audit_has_rows() -> None:
    assert len(_rows()) >= 50 and len(_rows("*-spec.csv")) >= 250 and len(_rows("xpm-3.1-spec-fields.csv")) >= 280


def test_every_real_answer_was_judged_right() -> None:
    """Answers Xero really sent, recorded by public clients (samples/fidelity/*-answers.csv: each run
    through ingest as the proxy would): xpm_ruby's Practice Manager cassettes, xeroizer's Accounting
    and Customer API responses. No answer Xero gave as a success carries an error, every refusal is
    found, and every finding named is one of our rules at its severity."""
    from inspector.ingest.findings import RULES
    from inspector.ingest.xero_facts import OUTCOMES

    rows = _rows("*-answers.csv")
    assert len(rows) >= 59 + 231
    for row in rows:
        assert row["source"].startswith(("xpm_ruby:", "xeroizer:")) and row["verdict"].startswith("right"), row
        assert row["outcome"] in OUTCOMES
        named = [f.split(":") for f in row["findings"].split()] if row["findings"] != "-" else []
        for _side, rule, severity in named:
            assert rule in RULES and severity in ("error", "warning"), row
        errors = [rule for _, rule, severity in named if severity == "error"]
        refused = row.get("xero_status") == "ERROR" or int(row["http_status"]) >= 300
        if refused:  # a failed call, whatever its status said; an error inside a 200 named as such
            assert row["outcome"] != "ok", row
            assert row.get("xero_status") != "ERROR" or "xpm-error" in errors, row
        else:
            assert row["outcome"] == "ok" and errors == [], row
    assert sum(r.get("xero_status") == "OK" for r in rows) == 40


def test_a_document_labelled_utf16_but_sent_as_utf8_is_read() -> None:
    """Xero's ApiException as xeroizer recorded it: labelled utf-16, sent as UTF-8. It is the
    validation error it says, not a malformed document."""
    from inspector.ingest.pipeline import Ingest
    from inspector.ingest.validate import Validator
    from tests.test_ingest import record

    body = (
        b'<?xml version="1.0" encoding="utf-16"?>\n<ApiException xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b"<ErrorNumber>10</ErrorNumber><Type>ValidationException</Type><Message>A validation exception occurred</Message>"
        b'<Elements><DataContractBase xsi:type="Invoice"><ValidationErrors><ValidationError>'
        b"<Message>Email address must be valid.</Message></ValidationError></ValidationErrors></DataContractBase></Elements>"
        b"</ApiException>"
    )
    rec = record(
        method="PUT",
        url="https://api.xero.com/api.xro/2.0/Invoices",
        status=400,
        response_headers=(("Content-Type", "text/xml; charset=utf-8"),),
        response_body=body,
    )
    rules = {f["rule"] for f in Ingest(CATALOG)(rec).findings}
    assert "validation-error" in rules and "not-well-formed" not in rules
    # A request so labelled stays malformed: a .NET reader refuses utf-16 without a byte order mark.
    sent = record(request_body=b'<?xml version="1.0" encoding="utf-16"?><Job><Name>Caf\xc3\xa9</Name></Job>')
    checking = Ingest(CATALOG, validator=Validator.for_catalog(CATALOG))
    assert "not-well-formed" in {f["rule"] for f in checking(sent).findings}
    assert "not-well-formed" not in {f["rule"] for f in checking(rec).findings}
