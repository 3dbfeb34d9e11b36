from __future__ import annotations

import re

from inspector.ingest.redact import Redactor, fingerprint

FP = re.compile(r"redacted:sha256:[0-9a-f]{8}")


def test_fingerprint_is_stable_and_distinguishes() -> None:
    assert fingerprint("token-a") == fingerprint("token-a")
    assert fingerprint("token-a") != fingerprint("token-b")
    assert FP.fullmatch(fingerprint("token-a"))


def test_authorization_keeps_its_scheme() -> None:
    r = Redactor()
    assert r.header("Authorization", "Bearer eyJ.abc.def") == f"Bearer {fingerprint('eyJ.abc.def')}"
    assert r.header("authorization", "Basic dXNlcjpwYXNz") == f"Basic {fingerprint('dXNlcjpwYXNz')}"
    assert r.header("Proxy-Authorization", "opaque") == fingerprint("opaque")
    assert r.count == 3


def test_cookies_keep_names_and_attributes() -> None:
    r = Redactor()
    assert r.header("Cookie", "a=1; session=xyz") == f"a={fingerprint('1')}; session={fingerprint('xyz')}"
    out = r.header("Set-Cookie", "session=xyz; Path=/; HttpOnly; Secure")
    assert out == f"session={fingerprint('xyz')}; Path=/; HttpOnly; Secure"


def test_other_headers_untouched_and_order_kept() -> None:
    headers = (("Host", "api.xero.com"), ("Authorization", "Bearer t"), ("xero-tenant-id", "T"), ("Cookie", "c=1"))
    out = Redactor().headers(headers)
    assert [k for k, _ in out] == [k for k, _ in headers]
    assert out[0] == ("Host", "api.xero.com") and out[2] == ("xero-tenant-id", "T")


def test_query_keys_redacted_everything_else_byte_for_byte() -> None:
    url = "https://network.xero.com/api.xro/1.0/invoices?modifiedSince=2024-01-01&apiKey=PARTNER%2BKEY&xeroKey=CUST&x=a+b%20c#frag"
    out = Redactor().url(url)
    assert out == (
        "https://network.xero.com/api.xro/1.0/invoices?modifiedSince=2024-01-01"
        f"&apiKey={fingerprint('PARTNER+KEY')}&xeroKey={fingerprint('CUST')}&x=a+b%20c#frag"
    )
    assert (
        Redactor().url("https://api.workflowmax.com/job.api/list?APIKEY=k&AccountKey=a").count("redacted:sha256:") == 2
    )


def test_code_is_a_secret_only_on_identity() -> None:
    assert "redacted" in Redactor().form("grant_type=authorization_code&code=abc123", identity=True)
    assert Redactor().form("where=Code%3D%3D%22200%22&code=200") == "where=Code%3D%3D%22200%22&code=200"


def test_identity_form_body() -> None:
    body = "grant_type=refresh_token&refresh_token=RT-1&client_id=CID&client_secret=SEC"
    out = Redactor().form(body, identity=True)
    assert "RT-1" not in out and "SEC" not in out and "client_id=CID" in out
    assert out.startswith("grant_type=refresh_token&refresh_token=redacted:sha256:")


def test_json_layout_is_untouched() -> None:
    text = '{\n  "access_token" : "eyJ.a.b",\n  "expires_in": 1800,\n  "refresh_token":"r\\"t",\n  "scope": "openid"\n}'
    out = Redactor().json(text)
    assert out == text.replace("eyJ.a.b", fingerprint("eyJ.a.b")).replace('r\\"t', fingerprint('r\\"t'))


def test_keep_secrets() -> None:
    r = Redactor(keep_secrets=True)
    assert r.header("Authorization", "Bearer t") == "Bearer t"
    assert r.url("https://x/?apiKey=k") == "https://x/?apiKey=k"
    assert r.json('{"access_token": "t"}') == '{"access_token": "t"}'
    assert r.count == 0


def test_already_redacted_values_are_not_fingerprinted_twice() -> None:
    once = Redactor().header("Authorization", "Bearer secret")
    assert Redactor().header("Authorization", once) == once
