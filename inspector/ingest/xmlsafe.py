"""Parsing untrusted XML: entities, DTD loading, network access and huge trees off, always.

Bodies come from apps under development and from the network; an XXE or an entity
bomb must never be resolved. lxml parsers are not thread-safe, so each thread gets its own.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

_local = threading.local()


def parser(blankless: bool = False) -> etree.XMLParser:
    """This thread's parser; ``blankless`` drops whitespace between elements (to re-indent)."""
    name = "blankless" if blankless else "parser"
    p: etree.XMLParser | None = getattr(_local, name, None)
    if p is None:
        p = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            collect_ids=False,
            remove_blank_text=blankless,
        )
        setattr(_local, name, p)
    return p


# Xero's .NET serializer labels answers utf-16 and sends them as UTF-8 (a real 400 ApiException
# recorded by the xeroizer client begins <?xml version="1.0" encoding="utf-16"?> with no BOM and
# no NUL byte). libxml2 believes the label and calls the document malformed; in Xero's answers
# the bytes decide. A request so labelled stays malformed: a .NET reader refuses a utf-16 label
# without a byte order mark, so Xero would not read it either.
_UTF16_LABEL = re.compile(rb"""\A(?:\xef\xbb\xbf)?\s{0,64}<\?xml[^>]{0,200}?encoding=(["'])utf-16\1""", re.IGNORECASE)


def _relabel(data: bytes) -> bytes:
    """A document labelled utf-16 whose bytes are not UTF-16, labelled utf-8 (same length: the
    line and column of every finding stay where they were)."""
    m = _UTF16_LABEL.match(data)
    if m is None or data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:200]:
        return data
    quote = m.group(1)
    return data[: m.end() - 8] + quote + b"utf-8" + quote + b" " + data[m.end() :]


def parse(data: bytes, blankless: bool = False, lenient_label: bool = False) -> etree._Element:
    """The root element; raises ``etree.XMLSyntaxError`` for anything not well-formed.
    ``lenient_label``: a utf-16 label on bytes that are not UTF-16 is ignored (see above)."""
    return etree.fromstring(_relabel(data) if lenient_label else data, parser(blankless))


def try_parse(data: bytes | None, lenient_label: bool = False) -> etree._Element | None:
    if not data:
        return None
    try:
        return parse(data, lenient_label=lenient_label)
    except (etree.XMLSyntaxError, ValueError):
        return None


def text(el: etree._Element | None, path: str) -> str | None:
    """Stripped text of the first element at ``path`` below ``el``; None when absent or empty."""
    if el is None:
        return None
    found = el.findtext(path)
    if found is None:
        return None
    return found.strip() or None
