"""The fidelity audit stays true: every element a real client sent in a body Xero accepted (the
rows of samples/fidelity/*.csv, each with its source) is one our schema allows where it was sent.

The schema is read as the document it is: from the endpoint's root type, each step of the row's
path must be an element that type declares, and the type of that element is the next step's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from lxml import etree

from inspector.catalog import Catalog

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


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['endpoint']} {r['element']}")
def test_every_element_xero_accepted_is_allowed(row: dict[str, str]) -> None:
    assert row["source"].strip(), "every row names where it was seen"
    method, path = row["endpoint"].split(" ", 1)
    c = CATALOG.classify(method, "api.xero.com", "/practicemanager/3.0/" + path.replace("{id}", "1"))
    assert c.request_schema is not None, row["endpoint"]
    xsd = etree.parse(str(c.request_schema.file))
    root, *steps = row["element"].strip("/").split("/")
    type_name: str | None = dict(c.request_schema.roots).get(root)
    assert type_name, f"{root} is not a root the catalog takes for {row['endpoint']}"
    for step in steps:
        type_name = declares(xsd, type_name, step)
        assert type_name is not None, f"{row['element']}: {step} is not allowed ({row['source']})"
    assert row["verdict"].startswith("allowed")


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


def test_the_audit_has_rows() -> None:
    assert len(_rows()) >= 50 and len(_rows("*-spec.csv")) >= 250
