from __future__ import annotations

from pathlib import Path

import pytest

from inspector.ingest.catalog import Catalog, CatalogError

CATALOG = Catalog.load()


@pytest.mark.parametrize(
    ("method", "host", "path", "expected"),
    [
        ("POST", "api.xero.com", "/practicemanager/3.0/job.api/add", ("xpm-3.0", "job.api", "add")),
        ("GET", "api.xero.com", "/practicemanager/3.0/job.api/tasks", ("xpm-3.0", "job.api", "tasks")),
        (
            "PUT",
            "api.xero.com",
            "/practicemanager/3.0/job.api/task/123/complete",
            ("xpm-3.0", "job.api", "complete-task"),
        ),
        (
            "GET",
            "API.XERO.COM",
            "/workflowmax/3.0/client.api/get/0f1e2d3c-1111-2222-3333-444455556666",
            ("wfm-3.0", "client.api", "get"),
        ),
        (
            "POST",
            "api.xero.com",
            "/practicemanager/3.0/client.api/addrelationship",
            ("xpm-3.0", "client.api", "add-relationship"),
        ),
        ("GET", "api.workflowmax.com", "/job.api/current", ("wfm-legacy", "job.api", "current")),
        ("GET", "api.workflowmax.com", "/v3/job.api/current", ("wfm-legacy", "job.api", "current")),
        ("PUT", "network.xero.com", "/api.xro/1.0/invoice", ("network-1.0", "invoice", "create")),
        ("GET", "networktest.xero.com", "/api.xro/1.0/contacts", ("network-1.0", "contact", "list")),
        ("PUT", "api.xero.com", "/api.xro/2.0/Invoices", ("accounting-2.0", "Invoices", "create")),
        ("POST", "api.xero.com", "/api.xro/2.0/invoices", ("accounting-2.0", "Invoices", "create-or-update")),
        (
            "GET",
            "api.xero.com",
            "/api.xro/2.0/Invoices/243216c5-369e-4056-ac67-05388f86dc81",
            ("accounting-2.0", "Invoices", "get"),
        ),
        ("GET", "api.xero.com", "/payroll.xro/1.0/Employees", ("payroll-au-1.0", "Employees", "list")),
        ("POST", "identity.xero.com", "/connect/token", ("identity", "token", "token")),
        ("GET", "login.xero.com", "/identity/connect/authorize", ("identity", "authorize", "authorize")),
        ("GET", "api.xero.com", "/connections", ("connections", "connections", "list")),
        ("DELETE", "api.xero.com", "/connections/0b1c1d2e", ("connections", "connections", "delete")),
    ],
)
def test_classify(method: str, host: str, path: str, expected: tuple[str, str, str]) -> None:
    c = CATALOG.classify(method, host, path)
    assert (c.family, c.resource, c.operation) == expected


def test_path_parameters_are_named() -> None:
    c = CATALOG.classify("GET", "api.xero.com", "/practicemanager/3.0/job.api/get/J000031")
    assert (c.endpoint, c.params) == ("job.api/get/{number}", {"number": "J000031"})


def test_unknown_paths_keep_the_family() -> None:
    c = CATALOG.classify("GET", "api.xero.com", "/practicemanager/3.0/widget.api/spin")
    assert (c.family, c.resource, c.operation) == ("xpm-3.0", "widget.api", None)
    c = CATALOG.classify("GET", "api.xero.com", "/projects.xro/2.0/projects")
    assert (c.family, c.operation) == ("projects-2.0", None)


def test_known_path_with_another_method_keeps_the_resource() -> None:
    c = CATALOG.classify("GET", "api.xero.com", "/practicemanager/3.0/job.api/add")
    assert (c.family, c.resource, c.operation) == ("xpm-3.0", "job.api", None)


def test_unknown_prefix_on_a_xero_host() -> None:
    assert CATALOG.classify("GET", "api.xero.com", "/nothing/here").family == "unknown"


def test_a_gateway_host_is_classified_by_path_but_never_by_a_root_base() -> None:
    assert CATALOG.classify("GET", "gw.corp", "/api.xro/2.0/Contacts").family == "accounting-2.0"
    assert CATALOG.classify("POST", "gw.corp", "/connect/token").family == "unknown"


def test_every_catalog_endpoint_classifies_back_to_itself() -> None:
    for ep in CATALOG.endpoints:
        fam = CATALOG.families[ep.family]
        base = fam.bases[0].rstrip("/")
        path = "/".join("X1" if seg is None else seg for seg in ep.segments)
        c = CATALOG.classify(ep.method, fam.hosts[0], f"{base}/{path}" if path else base or "/")
        assert (c.family, c.endpoint, c.operation) == (ep.family, ep.path, ep.operation), ep


def test_user_catalog_adds_and_overrides(tmp_path: Path) -> None:
    extra = tmp_path / "my.toml"
    extra.write_text(
        """
[[family]]
id = "xpm-3.0"
hosts = ["api.xero.com", "xpm.gateway.example"]

[[family]]
id = "inhouse-1.0"
hosts = ["erp.example"]
bases = ["/xero-bridge"]

[[resource]]
families = ["xpm-3.0"]
name = "job.api"
endpoints = [
  { method = "POST", path = "job.api/add", operation = "create-job" },
  { method = "GET", path = "job.api/widgets", operation = "widgets" },
]

[[resource]]
families = ["inhouse-1.0"]
name = "sync"
endpoints = [{ method = "POST", path = "sync/{batch}", operation = "push" }]
"""
    )
    cat = Catalog.load([extra])
    assert cat.classify("POST", "api.xero.com", "/practicemanager/3.0/job.api/add").operation == "create-job"
    assert cat.classify("GET", "api.xero.com", "/practicemanager/3.0/job.api/widgets").operation == "widgets"
    assert cat.classify("GET", "xpm.gateway.example", "/practicemanager/3.0/job.api/current").family == "xpm-3.0"
    c = cat.classify("POST", "erp.example", "/xero-bridge/sync/42")
    assert (c.family, c.resource, c.operation, c.params) == ("inhouse-1.0", "sync", "push", {"batch": "42"})
    assert "erp.example" in cat.hosts()
    assert cat.families["xpm-3.0"].title == "Practice Manager 3.0"  # fields not given are kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[family]]\nid = 'x'\nhosts = ['a']\nbases = ['/']\ncolour = 'red'",
            r"\[\[family\]\] #1: unknown key\(s\) \['colour'\]",
        ),
        ("[[family]]\nid = 'x'\nbases = ['/']", r"\(x\): missing 'hosts'"),
        ("[[resource]]\nfamilies = ['nope']\nname = 'r'\nendpoints = []", r"unknown family 'nope'"),
        (
            "[[resource]]\nfamilies = ['xpm-3.0']\nname = 'r'\nendpoints = [{ method = 'FETCH', path = 'a', operation = 'b' }]",
            "is not an HTTP method",
        ),
        (
            "[[resource]]\nfamilies = ['xpm-3.0']\nname = 'r'\nendpoints = [{ method = 'GET', path = 'a{b}', operation = 'b' }]",
            "must be a literal",
        ),
        (
            "[[resource]]\nfamilies = ['xpm-3.0']\nname = 'r'\nendpoints = [{ method = 'GET', path = 'a' }]",
            r"missing \['operation'\]",
        ),
        ("endpoints = 1", "unknown top-level key"),
        ("[[family]\n", "not valid TOML"),
    ],
)
def test_a_bad_user_catalog_names_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(CatalogError, match=message) as err:
        Catalog.load([bad])
    assert str(err.value).startswith(str(bad))
    assert "\n" not in str(err.value).strip() or "TOML" in str(err.value)


def test_missing_user_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read catalog"):
        Catalog.load([tmp_path / "absent.toml"])
