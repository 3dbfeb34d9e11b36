"""The catalog: which Xero API family, resource and operation a request belongs to.

The knowledge lives in ``endpoints.toml`` (data, not code); users extend or override it
with their own files. Classification is host + path (+ method): the family comes from the
host and the longest matching base path, the endpoint from the segments after the base.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

UNKNOWN_FAMILY = "unknown"

_FAMILY_KEYS = {"id", "title", "hosts", "bases", "body", "auth", "tenant", "retired", "response"}
_RESOURCE_KEYS = {"families", "name", "endpoints"}
_ENDPOINT_KEYS = {"method", "path", "operation"}
_SCHEMA_KEYS = {"families", "file", "requests"}
_REQUEST_KEYS = {"method", "path", "roots"}
# Built-in XSDs live in inspector/schemas/<family>/; a user catalog's paths are relative to it.
BUILTIN_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
_PARAM_RE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class BodySchema:
    """The XSD a body is checked against, and the root elements it may have.

    ``roots`` maps each allowed root element to a named complex type in ``file`` (one
    root such as <Job> has a different shape per endpoint); an empty mapping means the
    file's own global element declarations decide, as in any ordinary XSD.
    """

    file: Path
    label: str  # what findings and tables show: "xpm-3.0/requests.xsd"
    roots: tuple[tuple[str, str], ...] = ()

    @property
    def root_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.roots)

    def describe(self) -> str:
        if not self.roots:
            return self.label
        return f"{self.label} " + " | ".join(f"<{r}> {t}".rstrip() for r, t in self.roots)


@dataclass(frozen=True, slots=True)
class Family:
    id: str
    title: str
    hosts: tuple[str, ...]
    bases: tuple[str, ...]
    body: str = "xml"
    auth: str = "bearer"
    tenant: str = "header"  # header | query:<param> | none
    retired: bool = False
    response: BodySchema | None = None  # the XSD of this family's XML answers

    @property
    def tenant_param(self) -> str | None:
        """The query parameter that names the organisation (Customer API, legacy WFM)."""
        if not self.tenant.startswith("query:"):
            return None
        return self.tenant.partition(":")[2] or None


@dataclass(frozen=True, slots=True)
class Endpoint:
    family: str
    method: str
    path: str
    resource: str
    operation: str
    segments: tuple[str | None, ...] = field(repr=False)  # None marks a {param}
    params: tuple[str, ...] = field(repr=False)
    request: BodySchema | None = None  # the XSD of the request body, when it has one

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        values: dict[str, str] = {}
        names = iter(self.params)
        for want, got in zip(self.segments, segments, strict=True):
            if want is None:
                values[next(names)] = unquote(got)
            elif want != got.lower():
                return None
        return values

    @property
    def literal_count(self) -> int:
        return sum(s is not None for s in self.segments)


@dataclass(frozen=True, slots=True)
class Classification:
    family: str  # UNKNOWN_FAMILY when no family's host and base match
    resource: str | None = None
    operation: str | None = None  # None: a path the catalog does not know
    endpoint: str | None = None  # the matched pattern, e.g. "job.api/get/{number}"
    params: dict[str, str] = field(default_factory=dict)
    request_schema: BodySchema | None = None
    response_schema: BodySchema | None = None


class Catalog:
    def __init__(self, families: Iterable[Family], endpoints: Iterable[Endpoint]) -> None:
        self.families: dict[str, Family] = {f.id: f for f in families}
        self.endpoints: list[Endpoint] = list(endpoints)
        # (family, method) -> endpoints, most literal segments first so that
        # job.api/tasks wins over job.api/{anything}.
        self._index: dict[tuple[str, str], list[Endpoint]] = {}
        self._by_family: dict[str, list[Endpoint]] = {}
        for ep in sorted(self.endpoints, key=lambda e: -e.literal_count):
            self._index.setdefault((ep.family, ep.method), []).append(ep)
            self._by_family.setdefault(ep.family, []).append(ep)
        self._by_host: dict[str, list[tuple[str, Family]]] = {}
        self._all_bases: list[tuple[str, Family]] = []
        for fam in self.families.values():
            for base in fam.bases:
                entry = (_norm_base(base), fam)
                self._all_bases.append(entry)
                for host in fam.hosts:
                    self._by_host.setdefault(host.lower(), []).append(entry)
        for entries in (*self._by_host.values(), self._all_bases):
            entries.sort(key=lambda e: -len(e[0]))

    @classmethod
    def load(cls, extra: Sequence[str | Path] = ()) -> Catalog:
        """The built-in catalog, then each user file in order (later wins)."""
        builtin = resources.files(__package__).joinpath("endpoints.toml").read_text("utf-8")
        families: dict[str, dict[str, Any]] = {}
        endpoints: dict[tuple[str, str, str], Endpoint] = {}
        _merge(_Source("endpoints.toml (built in)", BUILTIN_SCHEMAS, True), tomllib.loads(builtin), families, endpoints)
        for path in extra:
            try:
                data = tomllib.loads(Path(path).read_text("utf-8"))
            except OSError as e:
                raise CatalogError(f"{path}: cannot read catalog: {e.strerror or e}") from e
            except tomllib.TOMLDecodeError as e:
                raise CatalogError(f"{path}: not valid TOML: {e}") from e
            _merge(_Source(str(path), Path(path).resolve().parent, False), data, families, endpoints)
        fams = [_family(name, spec) for name, spec in families.items()]
        return cls(fams, endpoints.values())

    def hosts(self) -> list[str]:
        return sorted({h.lower() for f in self.families.values() for h in f.hosts})

    def family(self, family_id: str) -> Family | None:
        return self.families.get(family_id)

    def classify(self, method: str, host: str, path: str) -> Classification:
        """Family, resource, operation and path parameters of one request.

        ``host`` is the host the app asked for; a host outside the catalog (a company
        gateway added with --hosts) is classified by its path alone.
        """
        path = path.split("?", 1)[0] or "/"
        lpath = path.lower()
        bases = self._by_host.get(host.lower().rstrip("."))
        if bases is None:
            # A root base ("/") only means something on its own host.
            bases = [(b, f) for b, f in self._all_bases if b != "/"]
        for base, fam in bases:
            if base == "/" or lpath == base or lpath.startswith(base + "/"):
                rest = path[len(base) :] if base != "/" else path
                segments = [s for s in rest.split("/") if s]
                return self._match(fam, method.upper(), segments)
        return Classification(UNKNOWN_FAMILY)

    def _match(self, fam: Family, method: str, segments: list[str]) -> Classification:
        for ep in self._index.get((fam.id, method), ()):
            params = ep.match(segments)
            if params is not None:
                return Classification(fam.id, ep.resource, ep.operation, ep.path, params, ep.request, fam.response)
        # Known path, other method (GET on an add): the resource is still worth knowing.
        for ep in self._by_family.get(fam.id, ()):
            if ep.match(segments) is not None:
                return Classification(fam.id, ep.resource, None, None, {}, None, fam.response)
        return Classification(fam.id, segments[0] if segments else None, response_schema=fam.response)


def _norm_base(base: str) -> str:
    return "/" + base.strip("/").lower()


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    base: Path  # where the file's XSD paths are relative to
    builtin: bool

    def schema(self, where: str, file: Any, roots: tuple[tuple[str, str], ...] = ()) -> BodySchema:
        if not isinstance(file, str) or not file:
            raise CatalogError(f"{where}: 'file' must be the path of an XSD")
        path = (self.base / file).resolve()
        if not path.is_file():
            raise CatalogError(f"{where}: schema {file!r} not found (looked in {path})")
        return BodySchema(path, file if self.builtin else str(path), roots)


def _merge(
    src: _Source,
    data: dict[str, Any],
    families: dict[str, dict[str, Any]],
    endpoints: dict[tuple[str, str, str], Endpoint],
) -> None:
    source = src.name
    unknown = set(data) - {"family", "resource", "schema"}
    if unknown:
        raise CatalogError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; use [[family]], [[resource]] or [[schema]]"
        )
    for i, spec in enumerate(_tables(source, data, "family"), 1):
        where = f"{source}: [[family]] #{i}"
        _check_keys(where, spec, _FAMILY_KEYS, required={"id"})
        if "response" in spec:
            spec = {**spec, "response": src.schema(f"{where} ({spec['id']}) response", spec["response"])}
        merged = {**families.get(spec["id"], {}), **spec}
        for key in ("hosts", "bases"):
            if key not in merged:
                raise CatalogError(f"{where} ({spec['id']}): missing {key!r}")
            _check_str_list(f"{where} ({spec['id']})", key, merged[key])
        families[spec["id"]] = merged
    for i, spec in enumerate(_tables(source, data, "resource"), 1):
        where = f"{source}: [[resource]] #{i}"
        _check_keys(where, spec, _RESOURCE_KEYS, required=_RESOURCE_KEYS)
        _check_str_list(where, "families", spec["families"])
        for fam in spec["families"]:
            if fam not in families:
                raise CatalogError(f"{where} ({spec['name']}): unknown family {fam!r}")
        for j, ep in enumerate(spec["endpoints"], 1):
            ewhere = f"{where} ({spec['name']}) endpoint #{j}"
            if not isinstance(ep, dict):
                raise CatalogError(f"{ewhere}: expected a table {{ method, path, operation }}")
            _check_keys(ewhere, ep, _ENDPOINT_KEYS, required=_ENDPOINT_KEYS)
            for fam in spec["families"]:
                endpoint = _endpoint(ewhere, fam, spec["name"], ep)
                ekey = (fam, endpoint.method, endpoint.path.lower())
                old = endpoints.get(ekey)
                if old is not None and old.request is not None:  # redefining an endpoint keeps its schema
                    endpoint = dataclasses.replace(endpoint, request=old.request)
                endpoints[ekey] = endpoint
    for i, spec in enumerate(_tables(source, data, "schema"), 1):
        _merge_schema(src, f"{source}: [[schema]] #{i}", spec, families, endpoints)


def _merge_schema(
    src: _Source,
    where: str,
    spec: dict[str, Any],
    families: dict[str, dict[str, Any]],
    endpoints: dict[tuple[str, str, str], Endpoint],
) -> None:
    _check_keys(where, spec, _SCHEMA_KEYS, required=_SCHEMA_KEYS)
    _check_str_list(where, "families", spec["families"])
    for fam in spec["families"]:
        if fam not in families:
            raise CatalogError(f"{where}: unknown family {fam!r}")
    if not isinstance(spec["requests"], list):
        raise CatalogError(f"{where}: 'requests' must be a list of {{ method, path, roots }}")
    for j, req in enumerate(spec["requests"], 1):
        rwhere = f"{where} request #{j}"
        if not isinstance(req, dict):
            raise CatalogError(f"{rwhere}: expected a table {{ method, path, roots }}")
        _check_keys(rwhere, req, _REQUEST_KEYS, required={"method", "path"})
        body = src.schema(rwhere, spec["file"], _roots(rwhere, req.get("roots", [])))
        for fam in spec["families"]:
            key = (fam, str(req["method"]).upper(), str(req["path"]).strip("/").lower())
            if key not in endpoints:
                raise CatalogError(
                    f"{rwhere}: {fam} has no endpoint {key[1]} {req['path']}; declare it under [[resource]] first"
                )
            endpoints[key] = dataclasses.replace(endpoints[key], request=body)


def _roots(where: str, value: Any) -> tuple[tuple[str, str], ...]:
    """roots = ["Invoices", "Invoice"] (the XSD's own elements) or { Job = "JobAdd" } (root -> type)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple((v, "") for v in value)
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return tuple(value.items())
    raise CatalogError(f"{where}: 'roots' must be a list of element names or a table {{ Root = \"TypeName\" }}")


def _tables(source: str, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise CatalogError(f"{source}: {key!r} must be an array of tables ([[{key}]])")
    return tables


def _check_keys(where: str, spec: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(spec)
    if missing:
        raise CatalogError(f"{where}: missing {sorted(missing)}")


def _check_str_list(where: str, key: str, value: Any) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{where}: {key!r} must be a non-empty list of strings")


def _family(family_id: str, spec: dict[str, Any]) -> Family:
    return Family(
        id=family_id,
        title=str(spec.get("title", family_id)),
        hosts=tuple(h.lower() for h in spec["hosts"]),
        bases=tuple(spec["bases"]),
        body=str(spec.get("body", "xml")),
        auth=str(spec.get("auth", "bearer")),
        tenant=str(spec.get("tenant", "header")),
        retired=bool(spec.get("retired", False)),
        response=spec.get("response"),
    )


def _endpoint(where: str, family: str, resource: str, spec: dict[str, Any]) -> Endpoint:
    method = str(spec["method"]).upper()
    if method not in _METHODS:
        raise CatalogError(f"{where}: method {spec['method']!r} is not an HTTP method")
    path = str(spec["path"]).strip("/")
    segments: list[str | None] = []
    params: list[str] = []
    for seg in (s for s in path.split("/") if s):
        m = _PARAM_RE.match(seg)
        if m:
            segments.append(None)
            params.append(m.group(1))
        elif "{" in seg or "}" in seg:
            raise CatalogError(f"{where}: path segment {seg!r} must be a literal or a whole {{name}}")
        else:
            segments.append(seg.lower())
    return Endpoint(family, method, path, resource, str(spec["operation"]), tuple(segments), tuple(params))
