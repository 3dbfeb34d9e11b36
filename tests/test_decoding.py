from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from inspector.ingest.decoding import DecodeError, decode_content, form_field, sniff, zstd

XML = b"<Job><Name>Audit</Name><ClientID>24097642</ClientID></Job>"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", lambda d: gzip.compress(d)),
        ("x-gzip", lambda d: gzip.compress(d)),
        ("deflate", lambda d: zlib.compress(d)),
        ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send it
        ("br", lambda d: brotli.compress(d)),
        ("zstd", lambda d: zstd.compress(d)),
        ("identity", lambda d: d),
        (None, lambda d: d),
    ],
)
def test_decode_each_encoding(encoding: str | None, encode) -> None:
    out = decode_content(encode(XML), encoding)
    assert (out.data, out.truncated) == (XML, False)


def test_stacked_encodings_are_undone_last_first() -> None:
    raw = brotli.compress(gzip.compress(XML))
    assert decode_content(raw, "gzip, br").data == XML


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_compression_bomb_is_cut_at_the_limit(encoding: str) -> None:
    big = b"<a>" + b"A" * 20_000_000 + b"</a>"
    raw = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstd.compress,
    }[encoding](big)
    assert len(raw) < 100_000
    out = decode_content(raw, encoding, limit=1_000_000)
    assert out.truncated and len(out.data) == 1_000_000 and out.data.startswith(b"<a>AAAA")


def test_plain_body_over_the_limit_is_cut() -> None:
    out = decode_content(b"x" * 100, None, limit=10)
    assert (out.data, out.truncated) == (b"x" * 10, True)


def test_broken_or_unknown_encoding_is_a_clear_error() -> None:
    with pytest.raises(DecodeError, match="gzip body could not be decoded"):
        decode_content(b"not gzip at all", "gzip")
    with pytest.raises(DecodeError, match="unknown content-encoding 'compress'"):
        decode_content(XML, "compress")


@pytest.mark.parametrize(
    ("body", "content_type", "fmt"),
    [
        (XML, "text/xml", "xml"),
        (XML, "application/x-www-form-urlencoded", "xml"),  # XPM clients lie about it
        (b"\xef\xbb\xbf" + XML, None, "xml"),  # UTF-8 BOM
        (b"\r\n\t  " + XML, None, "xml"),  # leading whitespace, CRLF
        (b'<?xml version="1.0"?>\r\n' + XML, None, "xml"),
        ("\ufeff<Job/>".encode("utf-16-le"), None, "xml"),
        (b"<!-- note -->" + XML, None, "xml"),
        (b"<!DOCTYPE html><html><title>Login</title></html>", "text/html", "html"),
        (b"<html><body>hi</body></html>", None, "html"),
        (b'{"Invoices": []}', "application/json", "json"),
        (b'[{"tenantId": "x"}]', None, "json"),
        (b"grant_type=client_credentials&scope=openid", None, "form"),
        (b"", "text/xml", "empty"),
        (b"   ", None, "empty"),
        (b"%PDF-1.7\x00\x01\x02\xff\xfe", "application/pdf", "binary"),
        (b"plain words", "text/plain", "text"),
        (b"{not json", None, "text"),
    ],
)
def test_sniff(body: bytes, content_type: str | None, fmt: str) -> None:
    assert sniff(body, content_type).format == fmt


def test_sniff_none_is_not_captured() -> None:
    assert sniff(None).format == "none"


def test_xml_form_field_is_found_and_extracted() -> None:
    body = b"xml=%3CInvoices%3E%3CInvoice%3E%3CType%3EACCREC%3C%2FType%3E%3C%2FInvoice%3E%3C%2FInvoices%3E&summarizeErrors=false"
    s = sniff(body, "application/x-www-form-urlencoded")
    assert s.format == "form-xml"
    assert s.xml == b"<Invoices><Invoice><Type>ACCREC</Type></Invoice></Invoices>"


def test_raw_xml_in_a_form_field() -> None:
    assert sniff(b"xml=<Invoice>\n  <Type>ACCPAY</Type>\n</Invoice>").format == "form-xml"


def test_form_field() -> None:
    assert form_field(b"a=1&b=x+y&c=%3D", b"b") == b"x y"
    assert form_field(b"a=1", b"zz") is None


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_cut_short_stream_is_an_error_not_a_silent_half(encoding: str) -> None:
    whole = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstd.compress,
    }[encoding](XML * 200)
    with pytest.raises(DecodeError, match="ends before its compressed stream does"):
        decode_content(whole[: len(whole) // 2], encoding)


def test_multi_member_gzip() -> None:
    assert decode_content(gzip.compress(b"<a>") + gzip.compress(b"</a>"), "gzip").data == b"<a></a>"


def test_zstd_frames_one_after_another_are_one_body() -> None:
    assert decode_content(zstd.compress(b"<a>") + zstd.compress(b"</a>"), "zstd").data == b"<a></a>"
    with pytest.raises(DecodeError):
        decode_content(zstd.compress(b"<a>") + b"not zstd", "zstd")


def test_a_zstd_bomb_stops_at_the_cap() -> None:
    bomb = zstd.compress(b"\0" * 50_000_000)  # about 1.5 KB
    decoded = decode_content(bomb, "zstd", limit=1_000_000)
    assert decoded.truncated and len(decoded.data) == 1_000_000
