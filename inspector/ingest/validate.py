"""Validation of one XML body against the schema of its endpoint.

Untrusted XML is parsed by the hardened parser in ``xmlsafe`` (no entities, no DTD loading,
no network, no huge trees); a DOCTYPE is reported, never followed. Each XSD is compiled once
and cached. libxml2 stops checking an element's children at the first one it did not
expect, so after an unexpected element the document is validated again without it, until
nothing new turns up: a typo (``<ClientId>``) must not hide the missing ``<ClientID>`` or a
bad date after it.
"""

from __future__ import annotations

import copy
import difflib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from inspector.ingest import xmlsafe
from inspector.ingest.catalog import BUILTIN_SCHEMAS, BodySchema, Catalog
from inspector.ingest.findings import Finding

XSD_NS = "http://www.w3.org/2001/XMLSchema"
_XS = f"{{{XSD_NS}}}"
MAX_REVALIDATIONS = 25  # bodies with more unexpected elements than this report the first ones
MAX_FINDINGS = 200  # per body: a 5 MB list with one mistake per record stays readable

_ELEMENT_RE = re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: ")
_EXPECTED_RE = re.compile(r"Expected is(?: one of)? \( ([^)]*) \)")
_FACET_RE = re.compile(r"^\[facet '[^']+'\] ")
_PATTERN_RE = re.compile(r"The value ('.*') is not accepted by the pattern '.*'$")
_ENUM_RE = re.compile(r"The value ('.*') is not an element of the set \{(.*)\}$")
_LENGTH_RE = re.compile(r"The value has a length of '0'; this underruns the allowed minimum length of '1'$")
_POSITION_RE = re.compile(r", line \d+, column \d+$")


class SchemaLoadError(ValueError):
    """An XSD that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class _Child:
    type: str | None
    required: bool


@dataclass(slots=True)
class CompiledSchema:
    """One XSD (plus the root -> type mapping of its endpoint), compiled, with what the
    messages need: the content model of each type and the documentation of simple types."""

    xsd: etree.XMLSchema
    label: str
    roots: dict[str, str | None]  # allowed root -> its type (None: an anonymous type)
    types: dict[str, dict[str, _Child]]
    names: frozenset[str]  # every element name the file declares anywhere
    docs: dict[str, str]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def label_for(self, root: str) -> str:
        t = self.roots.get(root)
        return f"{self.label}#{t}" if t else self.label

    def declared_type(self, path: list[str]) -> str | None:
        """The type of the element at ``path`` (tag names from the root), when the XSD says."""
        if not path or path[0] not in self.roots:
            return None
        current = self.roots[path[0]]
        for tag in path[1:]:
            child = self.types.get(current or "", {}).get(tag)
            if child is None:
                return None
            current = child.type
        return current


class SchemaCache:
    """Compiled schemas by (file, roots); thread-safe, compiled on first use."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[Path, tuple[tuple[str, str], ...]], CompiledSchema] = {}
        self._lock = threading.Lock()

    def get(self, schema: BodySchema) -> CompiledSchema:
        key = (schema.file, schema.roots)
        found = self._compiled.get(key)
        if found is None:
            with self._lock:
                found = self._compiled.get(key) or _compile(schema)
                self._compiled[key] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._compiled.clear()


def preload(catalog: Catalog, cache: SchemaCache, builtin: bool = False) -> int:
    """Compile the catalog's schemas now, so a broken user XSD fails at start-up with its
    name, not on the first request that needs it; built-in ones only when asked (tests)."""
    schemas = {ep.request for ep in catalog.endpoints if ep.request is not None}
    schemas |= {f.response for f in catalog.families.values() if f.response is not None}
    done = 0
    for schema in schemas:
        if builtin or not schema.file.is_relative_to(BUILTIN_SCHEMAS):
            cache.get(schema)
            done += 1
    return done


def _compile(schema: BodySchema) -> CompiledSchema:
    # Our own and the user's XSD files are trusted input, but nothing is fetched from the network.
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    try:
        doc = etree.parse(str(schema.file), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as e:
        raise SchemaLoadError(f"{schema.label}: cannot read schema: {e}") from e
    types, names, docs, global_types = _model(doc)
    typed = [(root, t) for root, t in schema.roots if t]
    try:
        if typed:
            # One root (<Job>) takes a different type per endpoint: declare it in a wrapper
            # schema that includes the file, so the file itself holds only named types.
            elements = "".join(f'<xs:element name="{r}" type="{t}"/>' for r, t in typed)
            wrapper = (
                f'<xs:schema xmlns:xs="{XSD_NS}"><xs:include schemaLocation="{schema.file.as_uri()}"/>'
                f"{elements}</xs:schema>"
            )
            xsd = etree.XMLSchema(etree.fromstring(wrapper, parser))
        else:
            xsd = etree.XMLSchema(doc)
    except etree.XMLSchemaParseError as e:
        raise SchemaLoadError(f"{schema.label}: not a usable XSD: {e}") from e
    if typed:
        missing = [t for _, t in typed if t not in types and t not in docs]
        if missing:
            raise SchemaLoadError(f"{schema.label}: no type named {', '.join(missing)}")
        roots: dict[str, str | None] = dict(typed)
    else:
        wanted = schema.root_names or tuple(global_types)
        roots = {r: global_types.get(r) for r in wanted}
    return CompiledSchema(xsd, schema.label, roots, types, frozenset(names), docs)


def _model(doc: etree._Element) -> tuple[dict[str, dict[str, _Child]], set[str], dict[str, str], dict[str, str]]:
    """Content models of named complex types (and anonymous ones of global elements, keyed
    '#Name'), every element name, simple type docs, and global element -> type."""
    types: dict[str, dict[str, _Child]] = {}
    docs: dict[str, str] = {}
    global_types: dict[str, str] = {}
    for node in doc:
        if not isinstance(node.tag, str):
            continue
        name = node.get("name")
        if node.tag == _XS + "complexType" and name:
            types[name] = _children(node)
        elif node.tag == _XS + "simpleType" and name:
            text = node.findtext(f"{_XS}annotation/{_XS}documentation")
            if text:
                docs[name] = " ".join(text.split())
        elif node.tag == _XS + "element" and name:
            anonymous = node.find(_XS + "complexType")
            if anonymous is not None:
                types["#" + name] = _children(anonymous)
                global_types[name] = "#" + name
            else:
                global_types[name] = node.get("type", "")
    names = {e.get("name", "") for e in doc.iter(_XS + "element")} - {""}
    return types, names, docs, global_types


def _children(complex_type: etree._Element) -> dict[str, _Child]:
    out: dict[str, _Child] = {}
    for e in complex_type.iter(_XS + "element"):
        name = e.get("name")
        if name:
            # Inside a choice nothing is required on its own.
            in_choice = any(a.tag == _XS + "choice" for a in e.iterancestors())
            required = e.get("minOccurs", "1") != "0" and not in_choice
            out[name] = _Child(e.get("type"), required)
    return out


@dataclass(slots=True)
class Checked:
    """A parsed body (root None when it does not parse) and what was found in it."""

    root: etree._Element | None
    findings: list[Finding]


def parse(xml: bytes, side: str) -> Checked:
    """Parse with the hardened parser; not well-formed or carrying a DOCTYPE becomes a finding."""
    try:
        root = xmlsafe.parse(xml, lenient_label=side == "response")
    except etree.XMLSyntaxError as e:
        line, column = e.position if e.position else (None, None)
        message = _POSITION_RE.sub("", e.msg or str(e))
        return Checked(None, [Finding.of(side, "not-well-formed", message, line=line, column=column)])
    except ValueError as e:  # lxml refuses some inputs outright (e.g. a NUL byte)
        return Checked(None, [Finding.of(side, "not-well-formed", str(e))])
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        what = "an external DTD" if docinfo.system_url else "a DOCTYPE"
        entities = sum(1 for n in root.iter(etree.Entity))
        detail = f"{what} ({docinfo.system_url})" if docinfo.system_url else what
        if entities:
            detail += f" and {entities} entity reference(s)"
        message = f"the body declares {detail}; nothing was loaded or expanded (XXE and entity bombs are refused)"
        return Checked(root, [Finding.of(side, "xml-dtd", message, line=1, column=1)])
    return Checked(root, [])


class Validator:
    """Checks XML bodies against the schemas the catalog gives their endpoint."""

    def __init__(self, cache: SchemaCache | None = None) -> None:
        self.cache = cache or SchemaCache()

    @classmethod
    def for_catalog(cls, catalog: Catalog) -> Validator:
        """A validator whose user schemas have compiled (a broken XSD fails here, by name)."""
        cache = SchemaCache()
        preload(catalog, cache)
        return cls(cache)

    def check(self, xml: bytes, schema: BodySchema | None, side: str) -> Checked:
        checked = parse(xml, side)
        if checked.root is None or checked.findings or schema is None:
            return checked
        compiled = self.cache.get(schema)
        root = checked.root
        if root.tag not in compiled.roots:
            expected = " or ".join(f"<{r}>" for r in compiled.roots) or "(none declared)"
            message = f"<{root.tag}> is not a body this endpoint takes; expected {expected}"
            finding = Finding.of(
                side,
                "wrong-root",
                message,
                line=root.sourceline,
                column=_column(xml, root),
                xpath=f"/{root.tag}",
                schema=compiled.label,
            )
            checked.findings.append(finding)
            return checked
        checked.findings.extend(_Run(compiled, root, xml, side).findings())
        return checked


class _Run:
    """One validation of one document, with the re-validation loop for unexpected elements."""

    def __init__(self, compiled: CompiledSchema, root: etree._Element, xml: bytes, side: str) -> None:
        self.compiled = compiled
        self.root = root
        self.xml = xml
        self.side = side
        self.schema = compiled.label_for(root.tag)
        self.seen: set[tuple[str, str | None, str]] = set()
        self.out: list[Finding] = []

    def findings(self) -> list[Finding]:
        work = self.root
        origin: dict[Any, etree._Element] | None = None  # copy's element -> original element
        for _ in range(MAX_REVALIDATIONS):
            with self.compiled.lock:  # the error log is shared: copy it before anyone validates again
                ok = self.compiled.xsd.validate(work)
                entries = [(e.line, e.path, e.message) for e in self.compiled.xsd.error_log]
            if ok:
                break
            unexpected = []
            for line, path, message in entries:
                el = _at(work, path)
                orig = origin.get(el, el) if origin is not None and el is not None else el
                if self._add(orig, line, message) and el is not None and el is not work:
                    unexpected.append(el)
            if not unexpected or len(self.out) >= MAX_FINDINGS:
                break
            if origin is None:
                # Validate a copy without the unexpected elements; map it back for lines and paths.
                work = copy.deepcopy(self.root)
                origin = dict(zip(work.iter(), self.root.iter(), strict=True))
                back = {v: k for k, v in origin.items()}
                unexpected = [back[e] for e in unexpected]
            for el in unexpected:
                parent = el.getparent()
                if parent is not None:
                    parent.remove(el)
        return self.out[:MAX_FINDINGS]

    def _add(self, el: etree._Element | None, line: int, message: str) -> bool:
        """Record one libxml2 error; True when it is an unexpected element to take out."""
        m = _ELEMENT_RE.match(message)
        tag = m.group(1) if m else None
        attribute = m.group(2) if m else None
        rest = message[m.end() :] if m else message
        rest = rest.rstrip(".")
        xpath = self.root.getroottree().getpath(el) if el is not None else None
        tags = _tags(xpath)
        rule, hint, is_unexpected = "xsd", None, False
        if "This element is not expected" in rest and tag:
            expected = _expected(rest)
            is_unexpected = True
            if el is not None and _repeated(el):
                rule = "duplicate-element"
                text = f"<{tag}> appears more than once here"
            elif tag not in self.compiled.names:
                rule = "unknown-element"
                text = f"<{tag}> is not an element Xero knows here"
                if expected:
                    text += f"; expected one of: {', '.join(expected)}"
                guess = _guess(tag, expected or sorted(self.compiled.names))
                hint = f"Did you mean <{guess}>? Xero drops <{tag}> silently." if guess else None
            else:
                # A known element out of place: taking it out would only make the next one look
                # misplaced too (in a sequence), so validation of this parent stops here.
                is_unexpected = False
                text = f"<{tag}> is not allowed at this place"
                if expected:
                    text += f"; expected one of: {', '.join(expected)}"
        elif "Missing child element" in rest and tag:
            missing = self._missing(el, tags)
            if missing:
                text = f"<{tag}> is missing required {', '.join(f'<{n}>' for n in missing)}"
            else:
                text = f"<{tag}> is missing a required element; expected one of: {', '.join(_expected(rest))}"
        else:
            subject = f"<{tag}> attribute '{attribute}'" if attribute else f"<{tag}>" if tag else "body"
            declared = self.compiled.declared_type(tags)
            text = f"{subject}: {_readable(rest, declared)}"
            if declared and declared in self.compiled.docs and not attribute:
                hint = self.compiled.docs[declared]
        key = (rule, xpath, text)
        if key in self.seen:
            return is_unexpected
        self.seen.add(key)
        kw: dict[str, Any] = {"schema": self.schema, "xpath": xpath}
        if hint:
            kw["hint"] = hint
        self.out.append(
            Finding.of(
                self.side,
                rule,
                text,
                line=el.sourceline if el is not None and el.sourceline else line or None,
                column=_column(self.xml, el) if el is not None else None,
                **kw,
            )
        )
        return is_unexpected

    def _missing(self, el: etree._Element | None, tags: list[str]) -> list[str]:
        declared = self.compiled.declared_type(tags)
        model = self.compiled.types.get(declared or "")
        if el is None or not model:
            return []
        present = {c.tag for c in el if isinstance(c.tag, str)}
        return [name for name, child in model.items() if child.required and name not in present]


def _readable(message: str, type_name: str | None) -> str:
    """libxml2's facet messages, said the way a person would."""
    message = _FACET_RE.sub("", message)
    of = f" {type_name}" if type_name else ""
    if m := _PATTERN_RE.match(message):
        return f"{m.group(1)} is not a valid{of} value"
    if m := _ENUM_RE.match(message):
        return f"{m.group(1)} is not one of {m.group(2).replace(chr(39), '')}"
    if _LENGTH_RE.match(message):
        return "must not be empty"
    return message


def _at(tree_root: etree._Element, path: str | None) -> etree._Element | None:
    if not path:
        return None
    try:
        found = tree_root.getroottree().xpath(path)
    except etree.XPathError:
        return None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], etree._Element) else None


def _tags(xpath: str | None) -> list[str]:
    return [re.sub(r"\[\d+\]$", "", s) for s in (xpath or "").split("/") if s]


def _expected(message: str) -> list[str]:
    m = _EXPECTED_RE.search(message)
    return [n.strip() for n in m.group(1).split(",")] if m else []


def _repeated(el: etree._Element) -> bool:
    return any(s.tag == el.tag for s in el.itersiblings(preceding=True))


def _guess(tag: str, candidates: list[str]) -> str | None:
    for c in candidates:
        if c.lower() == tag.lower():
            return c
    close = difflib.get_close_matches(tag, candidates, n=1, cutoff=0.75)
    return close[0] if close else None


def _column(xml: bytes, el: etree._Element) -> int | None:
    """1-based column of the element's start tag (libxml2 gives lines only)."""
    line_no = el.sourceline
    if not line_no or not isinstance(el.tag, str):
        return None
    lines = xml.split(b"\n", line_no)
    if len(lines) < line_no:
        return None
    line = lines[line_no - 1]
    # The n-th <tag on this line, n = elements with the same tag before it on the same line.
    nth = sum(1 for e in el.getroottree().iter(el.tag) if e.sourceline == line_no and e is not el and _before(e, el))
    pattern = re.compile(rb"<" + re.escape(el.tag.encode()) + rb"(?=[\s/>])")
    matches = list(pattern.finditer(line))
    if nth >= len(matches):
        return None
    prefix = line[: matches[nth].start()].decode("utf-8", "replace").lstrip("\ufeff")
    return len(prefix) + 1


def _before(a: etree._Element, b: etree._Element) -> bool:
    for e in b.itersiblings(preceding=True):
        if e is a or any(d is a for d in e.iter()):
            return True
    parent = b.getparent()
    return parent is not None and (parent is a or _before(a, parent))
