"""The CA: where mitmproxy's certificate authority is, and how to make each client trust it.

We share mitmproxy's CA (``~/.mitmproxy`` by default): a machine that already trusts it for
mitmproxy trusts it for us, and ``mitmdump -s addons/xero_inspector.py`` uses the same one.
"""

from __future__ import annotations

from pathlib import Path

from inspector.utils import files

CONF_BASENAME = "mitmproxy"
KEY_SIZE = 2048
BUNDLE_NAME = "xero-inspector-ca-bundle.pem"


def confdir_path(confdir: str | Path) -> Path:
    return Path(confdir).expanduser().resolve()


def ca_cert_path(confdir: str | Path) -> Path:
    return confdir_path(confdir) / f"{CONF_BASENAME}-ca-cert.pem"


def ensure_ca(confdir: str | Path) -> Path:
    """Create the CA if it does not exist yet (its key owner-only); the certificate's path."""
    from mitmproxy.certs import CertStore

    CertStore.from_store(confdir_path(confdir), CONF_BASENAME, KEY_SIZE)
    return ca_cert_path(confdir)


def write_bundle(cert: Path) -> Path:
    """The public roots plus our CA, for settings that *replace* a client's trust store.

    Non-Xero hosts are tunnelled untouched and present their real certificates, so a client
    told to trust only our CA (REQUESTS_CA_BUNDLE=mitmproxy-ca-cert.pem) would break on them.
    """
    import certifi

    bundle = cert.parent / BUNDLE_NAME
    roots = Path(certifi.where()).read_text("ascii")
    # Public certificates only, readable by the clients of other users that must trust them.
    text = roots.rstrip("\n") + "\n\n# xero-inspector (mitmproxy) CA\n" + cert.read_text("ascii")
    files.write(bundle, text, files.PUBLIC)
    return bundle


def instructions(confdir: str | Path, proxy_url: str = "http://127.0.0.1:8080") -> str:
    cert = ensure_ca(confdir)
    bundle = write_bundle(cert)
    cer = cert.with_suffix(".cer")
    return f"""\
CA certificate (public; its private key beside it is readable by you only):
  {cert}
Bundle: the public roots plus this CA. Use it wherever a setting REPLACES the trust store,
so hosts other than Xero's (tunnelled untouched, with their real certificates) still verify:
  {bundle}

Send your app through the proxy:
  export HTTPS_PROXY={proxy_url} HTTP_PROXY={proxy_url}

curl
  curl --proxy {proxy_url} --cacert {bundle} \\
    https://api.xero.com/connections -H "Authorization: Bearer $XERO_ACCESS_TOKEN"
  (or: export CURL_CA_BUNDLE={bundle})
requests, pyxero
  export REQUESTS_CA_BUNDLE={bundle}
httpx
  export SSL_CERT_FILE={bundle}
  (or in code: httpx.Client(proxy="{proxy_url}", verify=ssl.create_default_context(cafile="{bundle}")))
xero-python (official SDK; set both on its Configuration)
  configuration = Configuration(oauth2_token=OAuth2Token(client_id=..., client_secret=...))
  configuration.ssl_ca_cert = "{bundle}"
  configuration.proxy = "{proxy_url}"
Node.js
  export NODE_EXTRA_CA_CERTS={cert}
The operating system (browsers and most runtimes follow it)
  Debian, Ubuntu:  sudo cp {cert} /usr/local/share/ca-certificates/xero-inspector.crt && sudo update-ca-certificates
  Fedora, RHEL:    sudo cp {cert} /etc/pki/ca-trust/source/anchors/xero-inspector.pem && sudo update-ca-trust
  macOS:           sudo security add-trusted-cert -d -p ssl -r trustRoot -k /Library/Keychains/System.keychain {cert}
  Windows:         certutil -addstore root {cer}
Java
  keytool -importcert -cacerts -alias xero-inspector -file {cert}
"""
