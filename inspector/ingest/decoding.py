"""Bodies: undo content-encoding within a bound, and sniff what a body really is.

Content types lie on the Xero wire (XERO.md §2): XPM clients send XML as
``application/x-www-form-urlencoded``, old Accounting clients post ``xml=<Invoices>…``.
So the body decides: ``sniff`` looks at the decoded bytes, not at the header.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

import brotli

try:
    from compression import zstd  # Python 3.14+
except ImportError:  # the same module from PyPI, for 3.11-3.13 (what mitmproxy 12 uses too)
    from backports import zstd

BodyFormat = Literal["empty", "xml", "form-xml", "json", "form", "html", "text", "binary", "none"]
XML_FORMATS = frozenset({"xml", "form-xml"})

# Stored bodies are cut here; the raw size is kept, and the cut is marked.
DEFAULT_MAX_BODY = 16 * 1024 * 1024
# Compressed input is fed in pieces and decoding stops once the cap is passed, so a
# compression bomb costs at most the cap plus what one piece expands to (deflate: ~1000:1
# at most); zstd caps its own output. Brotli 1.1 (pinned by mitmproxy 11) cannot cap its output and a few
# bytes can name megabytes, so it gets small pieces; Brotli >= 1.2 caps its own output.
_PIECE = 4096
_BROTLI_PIECE = 256

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WS = b" \t\r\n"
_FORM_KEY_RE = re.compile(rb"^[A-Za-z0-9_.%+\-\[\]]+=")
_HTML_ROOTS = (b"<!doctype html", b"<html", b"<head", b"<body")


class DecodeError(ValueError):
    """A body whose content-encoding could not be undone."""


@dataclass(frozen=True, slots=True)
class Decoded:
    data: bytes
    truncated: bool  # cut at the size cap


def decode_content(raw: bytes, content_encoding: str | None, limit: int = DEFAULT_MAX_BODY) -> Decoded:
    """Undo ``Content-Encoding`` (gzip, deflate, br, zstd; stacked ones too), never past ``limit``."""
    data = raw
    truncated = False
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    # Codings are listed in the order they were applied: undo the last first.
    for coding in reversed(codings):
        if coding in ("identity", "none"):
            continue
        try:
            data, cut = _DECODERS[coding](data, limit)
        except KeyError:
            raise DecodeError(f"unknown content-encoding {coding!r}") from None
        except (zlib.error, brotli.error, zstd.ZstdError, EOFError, OSError) as e:
            raise DecodeError(f"{coding} body could not be decoded: {e}") from e
        truncated = truncated or cut
    if len(data) > limit:
        data, truncated = data[:limit], True
    return Decoded(data, truncated)


def _feed(
    name: str,
    process: Callable[[bytes], bytes],
    finished: Callable[[], bool],
    data: bytes,
    limit: int,
    piece: int = _PIECE,
) -> tuple[bytes, bool]:
    out = bytearray()
    for i in range(0, len(data), piece):
        out += process(data[i : i + piece])
        if len(out) > limit:
            return bytes(out[:limit]), True
    if not finished():
        raise DecodeError(f"{name} body ends before its compressed stream does (cut short?)")
    return bytes(out), False


def _zlib(name: str, wbits: int, data: bytes, limit: int) -> tuple[bytes, bool]:
    d = zlib.decompressobj(wbits)
    out, cut = _feed(name, d.decompress, lambda: d.eof, data, limit)
    rest = d.unused_data
    if not cut and name == "gzip" and rest.startswith(b"\x1f\x8b"):  # a multi-member gzip file
        more, cut = _zlib(name, wbits, rest, limit - len(out))
        out += more
    return out, cut


def _gzip(data: bytes, limit: int) -> tuple[bytes, bool]:
    return _zlib("gzip", 16 + zlib.MAX_WBITS, data, limit)


def _deflate(data: bytes, limit: int) -> tuple[bytes, bool]:
    # "deflate" is zlib-wrapped by the RFC, raw deflate in the wild: accept both.
    try:
        return _zlib("deflate", zlib.MAX_WBITS, data, limit)
    except zlib.error:
        return _zlib("deflate", -zlib.MAX_WBITS, data, limit)


def _brotli(data: bytes, limit: int) -> tuple[bytes, bool]:
    d = brotli.Decompressor()
    if not hasattr(d, "can_accept_more_data"):
        return _feed("br", d.process, d.is_finished, data, limit, _BROTLI_PIECE)
    out = bytearray(d.process(data, output_buffer_limit=limit + 1))
    while len(out) <= limit and not d.is_finished() and not d.can_accept_more_data():
        out += d.process(b"", output_buffer_limit=limit + 1 - len(out))
    if len(out) > limit:
        return bytes(out[:limit]), True
    if not d.is_finished():
        raise DecodeError("br body ends before its compressed stream does (cut short?)")
    return bytes(out), False


def _zstd(data: bytes, limit: int) -> tuple[bytes, bool]:
    # A zstd body may be several frames one after another (RFC 8878 §3.1): each gets its own
    # decompressor, and the output cap applies to them all.
    out = bytearray()
    rest = data
    while True:
        d = zstd.ZstdDecompressor()
        out += d.decompress(rest, max_length=limit + 1 - len(out))
        while len(out) <= limit and not d.eof and not d.needs_input:
            out += d.decompress(b"", max_length=limit + 1 - len(out))
        if len(out) > limit:
            return bytes(out[:limit]), True
        if not d.eof:
            raise DecodeError("zstd body ends before its compressed stream does (cut short?)")
        rest = d.unused_data
        if not rest:
            return bytes(out), False


_DECODERS = {"gzip": _gzip, "x-gzip": _gzip, "deflate": _deflate, "br": _brotli, "zstd": _zstd}


@dataclass(frozen=True, slots=True)
class Sniffed:
    format: BodyFormat
    xml: bytes | None = None  # the XML document to validate (the `xml=` field's value for form-xml)


def sniff(data: bytes | None, content_type: str | None = None) -> Sniffed:
    """What a decoded body is, whatever its content type claims."""
    if data is None:
        return Sniffed("none")
    head = _strip_bom_and_space(data[:4096])
    if not head:
        return Sniffed("empty")
    lower = head[:64].lower()
    if head[:1] == b"<":
        if lower.startswith(_HTML_ROOTS) or (lower.startswith(b"<?xml") and b"<html" in head[:512].lower()):
            return Sniffed("html")
        if _looks_like_markup(head):
            return Sniffed("xml", data)
    if head[:1] in (b"{", b"[") and _is_json(data, content_type):
        return Sniffed("json")
    if _FORM_KEY_RE.match(head) and not _is_binary(head):
        xml = form_field(data, b"xml")
        if xml is not None and sniff(xml).format == "xml":
            return Sniffed("form-xml", xml)
        return Sniffed("form")
    return Sniffed("binary" if _is_binary(head) else "text")


def _strip_bom_and_space(data: bytes) -> bytes:
    if data.startswith(_UTF8_BOM):
        data = data[3:]
    elif data[:2] in _UTF16_BOMS:
        # UTF-16 XML: look at it as UTF-8 so the checks below can see the markup.
        encoding = "utf-16-le" if data[:2] == b"\xff\xfe" else "utf-16-be"
        data = data[2:].decode(encoding, "replace").encode("utf-8", "replace")
    return data.lstrip(_WS)


def _looks_like_markup(head: bytes) -> bool:
    second = head[1:2]
    return second in (b"?", b"!", b"_") or second.isalpha()


def _is_json(data: bytes, content_type: str | None) -> bool:
    if content_type and "json" in content_type.lower():
        return True
    if len(data) > 1_000_000:  # a big body starting with { is JSON for all practical purposes
        return True
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _is_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the end of the sample is still text.
        return e.start < len(head) - 4
    return False


def form_field(data: bytes, name: bytes) -> bytes | None:
    """The decoded value of one field of an urlencoded form, or None."""
    for part in data.split(b"&"):
        key, sep, value = part.partition(b"=")
        if sep and unquote_to_bytes(key.replace(b"+", b" ")).strip() == name:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def as_text(data: bytes) -> str | None:
    """The body as text when it is exactly UTF-8 (so text.encode() gives the bytes back)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
