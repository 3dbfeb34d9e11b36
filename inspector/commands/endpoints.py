"""`xero-inspector endpoints`: the catalog as rows, for the table the CLI prints and the agent's tool."""

from __future__ import annotations

from dataclasses import dataclass

from inspector.ingest.catalog import Catalog


class NoEndpoints(ValueError):
    """A family the catalog does not have (or one with nothing to show); the message lists the families."""


@dataclass(frozen=True, slots=True)
class EndpointRow:
    family: str
    method: str
    path: str
    request_schema: str  # "-" where the request body has none
    response_schema: str


def listing(catalog: Catalog, family: str | None = None, schemas_only: bool = False) -> list[EndpointRow]:
    """Every endpoint by family, path and method; ``schemas_only`` keeps those whose request has a schema."""
    rows = []
    for ep in sorted(catalog.endpoints, key=lambda e: (e.family, e.path.lower(), e.method)):
        if (family and ep.family != family) or (schemas_only and ep.request is None):
            continue
        fam = catalog.families[ep.family]
        response = fam.response.label if fam.response else "-"
        rows.append(EndpointRow(ep.family, ep.method, ep.path, ep.request.describe() if ep.request else "-", response))
    if not rows:
        raise NoEndpoints(f"no endpoints for family {family!r}; families: {', '.join(sorted(catalog.families))}")
    return rows
