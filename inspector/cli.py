"""The command line: a thin click group; each command calls into a module.

Errors a user can fix print one line and exit 2; nothing prints a traceback at them.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DB = "flows.db"
DEFAULT_CONFDIR = "~/.mitmproxy"


class UserError(click.ClickException):
    """One line, exit 2: the same as a usage error, because the fix is in what was typed."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"xero-inspector: error: {self.format_message()}", err=True)


def user_errors(fn: F) -> F:
    """Turn the errors a user can fix into one line each."""
    from .catalog import CatalogError
    from .store import StoreError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (StoreError, CatalogError, OSError) as e:
            raise UserError(str(e)) from e

    return wrapper  # type: ignore[return-value]


def parse_listen(value: str, default_port: int) -> tuple[str, int]:
    """'127.0.0.1:8080', ':8080', '8080', '[::1]:8080' or a bare host."""
    m = re.fullmatch(r"(\d+)|\[([0-9a-fA-F:.]+)\](?::(\d+))?|([^:\[\]]*)(?::(\d+))?", value.strip())
    if not m:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    if m.group(1):
        host, port = "127.0.0.1", m.group(1)
    else:
        host = m.group(2) or m.group(4) or "127.0.0.1"
        port = m.group(3) or m.group(5) or str(default_port)
    if not 0 < int(port) < 65536:
        raise click.BadParameter(f"port {port} is out of range")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Cli(click.Group):
    """Usage errors as one line too (click prints usage, a hint and the error on three)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "xero-inspector"
            click.echo(f"xero-inspector: error: {e.format_message()} (see `{where} --help`)", err=True)
            sys.exit(2)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xero-inspector")
def main() -> None:
    """A debugging proxy and request inspector for Xero's XML APIs.

    Record what your app sends to Xero and what Xero answers (Practice Manager and
    WorkflowMax v3, the Customer API 1.0, Accounting 2.0) into a SQLite file.
    """


@main.command()
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="Address the proxy listens on.")
@click.option(
    "--db", default=DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False), help="SQLite file to record into."
)
@click.option(
    "--mode", default="regular", show_default=True, help="mitmproxy mode: regular, or reverse:https://api.xero.com."
)
@click.option(
    "--redirect",
    default="",
    metavar="URL",
    help="Send intercepted Xero requests here (a sandbox, the mock); the record keeps the Xero URL.",
)
@click.option(
    "--upstream-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Trust this CA for the upstream (the mock's mock-xero-ca.pem).",
)
@click.option("--confdir", default=DEFAULT_CONFDIR, show_default=True, help="Where mitmproxy keeps its CA.")
@click.option("--ssl-insecure", is_flag=True, help="Do not verify the upstream's certificate.")
@click.option("--keep-secrets", is_flag=True, help="Store tokens and keys as they are (default: fingerprints).")
@click.option(
    "--catalog",
    "catalogs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Extra endpoint catalog (TOML); repeatable.",
)
@click.option(
    "--hosts", multiple=True, metavar="REGEX", help="Extra hosts to treat as Xero (a company gateway); repeatable."
)
@click.option("-q", "--quiet", is_flag=True, help="No line per recorded exchange.")
@click.option("-v", "--verbose", is_flag=True, help="Show mitmproxy's own connection log too.")
@user_errors
def proxy(
    listen: str,
    db: str,
    mode: str,
    redirect: str,
    upstream_ca: str | None,
    confdir: str,
    ssl_insecure: bool,
    keep_secrets: bool,
    catalogs: tuple[str, ...],
    hosts: tuple[str, ...],
    quiet: bool,
    verbose: bool,
) -> None:
    """Run the recording proxy.

    Every exchange with a Xero host is recorded into --db; other hosts are tunnelled
    untouched. Point your app at it with HTTPS_PROXY and trust the CA (see `ca`).

    Example: xero-inspector proxy --db flows.db
    """
    from . import proxy as proxy_mod

    host, port = parse_listen(listen, 8080)
    # A broken catalog or a database that is not ours is refused by the addons' configure
    # (one line, exit 2), the same check mitmdump users get; only the port is checked here,
    # because mitmproxy reports a taken port over several lines.
    try:
        proxy_mod.check_port(host, port)
    except proxy_mod.PortInUse as e:
        raise UserError(str(e)) from e
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: anyone who can reach it can use this proxy and see your traffic", err=True
        )
    settings = proxy_mod.ProxySettings(
        listen_host=host,
        listen_port=port,
        db=db,
        mode=mode,
        redirect=redirect,
        upstream_ca=upstream_ca,
        confdir=confdir,
        ssl_insecure=ssl_insecure,
        keep_secrets=keep_secrets,
        catalogs=catalogs,
        hosts=hosts,
        flow_log=not quiet,
        verbose=verbose,
    )
    sys.exit(proxy_mod.run(settings))


@main.command()
@click.option("--confdir", default=DEFAULT_CONFDIR, show_default=True, help="Where mitmproxy keeps its CA.")
@click.option(
    "--proxy",
    "proxy_url",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The proxy's URL, for the examples.",
)
@click.option("--path", "path_only", is_flag=True, help="Print only the CA certificate's path.")
@user_errors
def ca(confdir: str, proxy_url: str, path_only: bool) -> None:
    """Where the CA certificate is, and how to make curl, requests, httpx, the SDKs and the OS trust it.

    Creates the CA (and a bundle of public roots + the CA) if they do not exist yet.

    Example: xero-inspector ca
    """
    from .ca import ensure_ca, instructions

    click.echo(str(ensure_ca(confdir)) if path_only else instructions(confdir, proxy_url))


@main.command()
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="Address the mock listens on.")
@click.option("--minute-limit", default=60, show_default=True, help="Calls per minute per tenant before 429.")
@click.option("--day-limit", default=5000, show_default=True, help="Calls per day per tenant before 429.")
@click.option("--token-lifetime", default=1800, show_default=True, help="Seconds an access token lives.")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False),
    help="Where to write its CA and certificate (default: a temporary folder).",
)
@user_errors
def mock(listen: str, minute_limit: int, day_limit: int, token_lifetime: int, cert_dir: str | None) -> None:
    """Run the mock Xero: XPM 3.0, Customer API 1.0 and Accounting 2.0 over TLS on loopback.

    Example: xero-inspector mock --listen 127.0.0.1:8443
    """
    from .samples.mock_xero import MockConfig, MockXero

    host, port = parse_listen(listen, 8443)
    config = MockConfig(minute_limit=minute_limit, day_limit=day_limit, token_lifetime=token_lifetime)
    server = MockXero(host, port, config, cert_dir)
    c = config
    lines = [
        f"mock Xero on {server.url}  (TLS; its CA: {server.ca_path})",
        f"  OAuth2 client   client_id={c.client_id} client_secret={c.client_secret}",
        f"  Customer API    apiKey={c.partner_key} xeroKey={next(iter(c.customer_keys))}",
        f"  WorkflowMax v1  apiKey={c.legacy_api_key} accountKey={c.legacy_account_key}",
        f"  limits          {minute_limit}/minute and {day_limit}/day per tenant; tokens live {token_lifetime}s",
    ]
    lines += [f"  tenant          {t.id}  {t.name} ({t.type})" for t in c.tenants]
    lines += [
        "Record through the proxy with:",
        f"  xero-inspector proxy --redirect {server.url} --upstream-ca {server.ca_path}",
        "Ctrl+C stops it.",
    ]
    click.echo("\n".join(lines))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command()
@click.option("--headless", is_flag=True, help="Print the summary and exit, without the terminal browser.")
@click.option(
    "--db",
    default="xero-demo.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Database the demo records into (recreated).",
)
@click.option("--confdir", default=DEFAULT_CONFDIR, show_default=True, help="Where mitmproxy keeps its CA.")
@click.option("--port", type=int, help="Port for the proxy (default: a free one).")
@user_errors
def demo(headless: bool, db: str, confdir: str, port: int | None) -> None:
    """See it all with no Xero account: mock Xero, the proxy, scripted traffic, a summary.

    Example: xero-inspector demo --headless
    """
    from rich.console import Console

    from . import demo as demo_mod

    console = Console()
    try:
        code = demo_mod.run(Path(db), confdir, port, console)
    except demo_mod.DemoError as e:
        raise UserError(f"demo failed: {e}") from e
    console.print(f"Explore it:  sqlite-utils tables {db} --counts", soft_wrap=True)
    console.print(
        f'             sqlite-utils {db} "select id, method, url, status, outcome, api_error from flows" --table',
        soft_wrap=True,
    )
    sys.exit(code)
