"""The command line: a thin click group; each command calls into a module.

Errors a user can fix print one line and exit 2; nothing prints a traceback at them.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from inspector import __version__
from inspector.utils import files
from inspector.utils.text import safe

if TYPE_CHECKING:  # imported where used, so `xero-inspector --help` starts fast
    from inspector.ingest.catalog import Catalog
    from inspector.ingest.validate import Validator

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DB = "flows.db"
DEFAULT_CONFDIR = "~/.mitmproxy"


class UserError(click.ClickException):
    """One line, exit 2: the same as a usage error, because the fix is in what was typed."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"xero-inspector: error: {safe(self.format_message())}", err=True)


def user_errors(fn: F) -> F:
    """Turn the errors a user can fix into one line each."""
    from inspector.commands.validate_files import TargetError
    from inspector.ingest.catalog import CatalogError
    from inspector.ingest.validate import SchemaLoadError
    from inspector.store.database import StoreError
    from inspector.store.query import FilterError, stopped

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            raise UserError(os_error(e)) from e
        except (StoreError, CatalogError, FilterError, SchemaLoadError, TargetError) as e:
            raise UserError(str(e)) from e
        except sqlite3.OperationalError as e:
            if (why := stopped(e)) is None:
                raise
            raise UserError(str(why)) from e

    return wrapper  # type: ignore[return-value]


def os_error(e: OSError) -> str:
    """'job.xml: no such file', not "[Errno 2] No such file or directory: 'job.xml'"."""
    if e.filename is None:
        return str(e)
    if isinstance(e, FileNotFoundError):
        return f"{e.filename}: no such file"
    return f"{e.filename}: {(e.strerror or str(e)).lower()}"


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


def check_exposure(host: str, allow_remote: bool, reach: str = "use this proxy and read your traffic") -> bool:
    """Loopback unless asked: a proxy others can reach lets them use it and read the traffic (a
    web page or an MCP server, read the recording). True when it will listen beyond loopback."""
    from inspector.proxy.spawn import is_loopback

    if is_loopback(host):
        return False
    if not allow_remote:
        raise UserError(
            f"refusing to listen on {host}: anyone who can reach it could {reach}; "
            "pass --allow-remote if that is what you want"
        )
    return True


class Cli(click.Group):
    """Usage errors as one line too (click prints usage, a hint and the error on three)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they are defined: record, browse, check, replay

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:  # bare `xero-inspector`: the usage, as help
            click.echo(e.ctx.get_help())
            sys.exit(2)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "xero-inspector"
            click.echo(f"xero-inspector: error: {safe(e.format_message())} (see `{where} --help`)", err=True)
            sys.exit(2)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort as e:
            if isinstance(e.__cause__, KeyboardInterrupt):  # Ctrl+C: the shell's convention
                click.echo("xero-inspector: interrupted", err=True)
                sys.exit(130)
            click.echo("aborted", err=True)
            sys.exit(1)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xero-inspector")
def main() -> None:
    """A debugging proxy and request inspector for Xero's XML APIs.

    Record what your app sends to Xero and what Xero answers (Practice Manager and
    WorkflowMax v3, the Customer API 1.0, Accounting 2.0) into a SQLite file.
    """


def _db_option(help_text: str, default: str = DEFAULT_DB) -> Callable[[F], F]:
    return click.option("--db", default=default, show_default=True, type=click.Path(dir_okay=False), help=help_text)


# A report or checklist written to a file instead of stdout (0600, by rename: utils.files).
_output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here instead of stdout."
)


def _with_options(fn: F, options: list[Callable[[Any], Any]]) -> F:
    for option in reversed(options):  # click lists options in the order they are applied, last first
        fn = option(fn)
    return fn


def _recording_options(fn: F) -> F:
    """What `proxy` and `up` share: where to listen, what to record into, and how."""
    options: list[Callable[[Any], Any]] = [
        click.option("--listen", default="127.0.0.1:8080", show_default=True, help="Address the proxy listens on."),
        click.option(
            "--allow-remote",
            is_flag=True,
            help="Allow --listen on an address other than loopback (anyone who can reach it can use the proxy).",
        ),
        _db_option("SQLite file to record into."),
        click.option(
            "--redirect",
            default="",
            metavar="URL",
            help="Send intercepted Xero requests here (a sandbox, the mock); the record keeps the Xero URL.",
        ),
        click.option(
            "--upstream-ca",
            type=click.Path(exists=True, dir_okay=False),
            help="Trust this CA for the upstream (the mock's mock-xero-ca.pem).",
        ),
        click.option("--confdir", default=DEFAULT_CONFDIR, show_default=True, help="Where mitmproxy keeps its CA."),
        click.option("--keep-secrets", is_flag=True, help="Store tokens and keys as they are (default: fingerprints)."),
        click.option(
            "--catalog",
            "catalogs",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="Extra endpoint catalog (TOML); repeatable.",
        ),
        click.option(
            "--fault",
            "faults",
            multiple=True,
            metavar="RULE",
            help="Make Xero fail on purpose: 'KIND [OPTIONS] [FILTER] [times N | every N | p=X]'; repeatable "
            "(e.g. --fault 'rate-limit ~res job.api times 1'). See the README's 'Make Xero fail on purpose'.",
        ),
        click.option(
            "--faults",
            "faults_file",
            type=click.Path(exists=True, dir_okay=False),
            help='A TOML file of fault rules: faults = ["...", ...].',
        ),
        click.option(
            "--break",
            "breaks",
            multiple=True,
            metavar="EXPR",
            help="Hold matching Xero calls for the browser to edit, resume or kill: '[response|both] FILTER'; "
            "repeatable (e.g. --break '~api xpm & ~m POST'). See the README's 'Stop a call and change it'.",
        ),
        click.option(
            "--break-timeout",
            default=60,
            show_default=True,
            type=click.IntRange(1, 3600),
            metavar="S",
            help="Seconds a held call waits for the browser before it goes on unchanged.",
        ),
    ]
    return _with_options(fn, options)


@main.command(short_help="Run the recording proxy.")
@_recording_options
@click.option(
    "--mode", default="regular", show_default=True, help="mitmproxy mode: regular, or reverse:https://api.xero.com."
)
@click.option("--ssl-insecure", is_flag=True, help="Do not verify the upstream's certificate.")
@click.option("--no-validate", is_flag=True, help="Record without checking bodies against the schemas.")
@click.option(
    "--hosts", multiple=True, metavar="REGEX", help="Extra hosts to treat as Xero (a company gateway); repeatable."
)
@click.option("-q", "--quiet", is_flag=True, help="No line per recorded exchange.")
@click.option("-v", "--verbose", is_flag=True, help="Show mitmproxy's own connection log too.")
@click.option("--parent-pid", type=int, hidden=True, help="Stop when this process is no longer the parent (demo, up).")
@user_errors
def proxy(
    listen: str,
    allow_remote: bool,
    db: str,
    mode: str,
    redirect: str,
    upstream_ca: str | None,
    confdir: str,
    ssl_insecure: bool,
    keep_secrets: bool,
    no_validate: bool,
    catalogs: tuple[str, ...],
    hosts: tuple[str, ...],
    faults: tuple[str, ...],
    faults_file: str | None,
    breaks: tuple[str, ...],
    break_timeout: int,
    quiet: bool,
    verbose: bool,
    parent_pid: int | None,
) -> None:
    """Run the recording proxy.

    Every exchange with a Xero host is recorded into --db; other hosts are tunnelled
    untouched. Point your app at it with HTTPS_PROXY and trust the CA (see `ca`).

    Example: xero-inspector proxy --db flows.db
    """
    from inspector.proxy import run as proxy_mod
    from inspector.proxy.spawn import check_port

    host, port = parse_listen(listen, 8080)
    # A broken catalog or a database that is not ours is refused by the addons' configure
    # (one line, exit 2), the same check mitmdump users get; only the port is checked here,
    # because mitmproxy reports a taken port over several lines (PortInUse is one line).
    check_exposure(host, allow_remote)
    check_port(host, port)
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
        validate=not no_validate,
        catalogs=catalogs,
        hosts=hosts,
        flow_log=not quiet,
        faults=faults,
        faults_file=faults_file or "",
        breaks=breaks,
        break_timeout=break_timeout,
        verbose=verbose,
        parent_pid=parent_pid,
    )
    sys.exit(proxy_mod.run(settings))


@main.command(short_help="Where the CA is, and how to make clients trust it.")
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
    from inspector.proxy.ca import ensure_ca, instructions

    click.echo(str(ensure_ca(confdir)) if path_only else instructions(confdir, proxy_url))


@main.command(short_help="Run the mock Xero over TLS on loopback.")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="Address the mock listens on.")
@click.option("--minute-limit", default=60, show_default=True, help="Calls per minute per tenant before 429.")
@click.option("--day-limit", default=5000, show_default=True, help="Calls per day per tenant before 429.")
@click.option(
    "--app-minute-limit", default=10_000, show_default=True, help="Calls per minute per app, all tenants, before 429."
)
@click.option("--token-lifetime", default=1800, show_default=True, help="Seconds an access token lives.")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False),
    help="Where to write its CA and certificate (default: a temporary folder).",
)
@user_errors
def mock(
    listen: str, minute_limit: int, day_limit: int, app_minute_limit: int, token_lifetime: int, cert_dir: str | None
) -> None:
    """Run the mock Xero: XPM 3.0, Customer API 1.0 and Accounting 2.0 over TLS on loopback.

    Example: xero-inspector mock --listen 127.0.0.1:8443
    """
    from inspector.proxy.spawn import check_port
    from inspector.samples.mock_xero import DEFAULT_SCOPES, MockConfig, MockXero

    host, port = parse_listen(listen, 8443)
    check_port(host, port, "another mock")  # PortInUse is an OSError: one line, naming --listen
    config = MockConfig(
        minute_limit=minute_limit, day_limit=day_limit, app_minute_limit=app_minute_limit, token_lifetime=token_lifetime
    )
    server = MockXero(host, port, config, cert_dir)
    c = config
    token = server.app.tokens.issue(DEFAULT_SCOPES)  # so a replay or a curl can start at once
    token_note = "  access token    (below; valid for the token lifetime)"
    if cert_dir:
        token_file = Path(cert_dir) / "access-token"
        files.write(token_file, token + "\n")
        token_note = f"  access token    in {token_file} (valid for the token lifetime)"
    lines = [
        f"mock Xero on {server.url}  (TLS; its CA: {server.ca_path})",
        f"  OAuth2 client   client_id={c.client_id} client_secret={c.client_secret}",
        f"  Customer API    apiKey={c.partner_key} xeroKey={next(iter(c.customer_keys))}",
        f"  WorkflowMax v1  apiKey={c.legacy_api_key} accountKey={c.legacy_account_key}",
        f"  limits          {minute_limit}/minute and {day_limit}/day per tenant, {app_minute_limit}/minute per app;"
        f" tokens live {token_lifetime}s",
    ]
    lines += [f"  tenant          {t.id}  {t.name} ({t.type})" for t in c.tenants]
    lines += [token_note] + ([] if cert_dir else [f"  {token}"])
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


@main.command(short_help="See it all: mock Xero, proxy, traffic, browser.")
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
    """See it all with no Xero account: mock Xero, the proxy, scripted traffic, a summary, then the browser.

    Example: xero-inspector demo --headless
    """
    from rich.console import Console

    from inspector.commands import demo as demo_mod

    console = Console()
    try:
        code = demo_mod.run(Path(db), confdir, port, console)
    except demo_mod.DemoError as e:
        raise UserError(f"demo failed: {e}") from e
    if not headless:
        _browse(db)
    console.print(f"Findings:    xero-inspector report --db {db}", soft_wrap=True)
    console.print(f"Explore it:  sqlite-utils tables {db} --counts", soft_wrap=True)
    console.print(
        f'             sqlite-utils {db} "select id, method, url, status, outcome, api_error from flows" --table',
        soft_wrap=True,
    )
    sys.exit(code)


@main.command(short_help="Run an app with Xero failing on purpose; say how it coped.")
@click.option("--app", "app", required=True, metavar="CMD", help="The app's command line, as you run it.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="RULE",
    help="A fault rule, as proxy --fault; repeatable (default: a 429, a 401, a 503 and a Practice Manager error, "
    "once each).",
)
@_db_option("SQLite file the run records into (kept: browse it after).", default="chaos.db")
@click.option("--redirect", default="", metavar="URL", help="Send the app's Xero calls here (the mock, a sandbox).")
@click.option(
    "--upstream-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Trust this CA for the upstream (the mock's mock-xero-ca.pem).",
)
@click.option("--confdir", default=DEFAULT_CONFDIR, show_default=True, help="Where mitmproxy keeps its CA.")
@click.option("--junit", type=click.Path(dir_okay=False), metavar="FILE", help="Also write the verdicts as JUnit XML.")
@click.option("--timeout", default=300, show_default=True, type=click.IntRange(1), help="Seconds the app may run.")
@user_errors
def chaos(
    app: str,
    faults: tuple[str, ...],
    db: str,
    redirect: str,
    upstream_ca: str | None,
    confdir: str,
    junit: str | None,
    timeout: int,
) -> None:
    """Run an app through the proxy with Xero failing on purpose, then say for each injected fault
    whether the app coped as Xero asks: waited out Retry-After, refreshed an expired token, tried
    again after a 503, and did not resend a request Xero rejected. Exits 1 when it did not.

    The app gets the proxy and its CA in HTTPS_PROXY, SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
    NODE_EXTRA_CA_CERTS and CURL_CA_BUNDLE, so it needs no change.

    Example: xero-inspector chaos --app 'python sync.py' --junit chaos.xml
    """
    from rich.console import Console

    from inspector.commands import chaos as chaos_mod

    proxy_args = ["--redirect", redirect] if redirect else []
    proxy_args += ["--upstream-ca", upstream_ca] if upstream_ca else []
    try:
        result = chaos_mod.run(app, faults, Path(db), confdir, proxy_args, timeout)
    except chaos_mod.ChaosError as e:
        raise UserError(str(e)) from e
    chaos_mod.render(result, Console())
    if junit:
        chaos_mod.write_junit(result, junit)
        click.echo(f"JUnit written to {junit}", err=True)
    if not result.verdicts:
        click.echo("no fault fired: the app made no call a rule matched (see --fault)", err=True)
        sys.exit(1)
    sys.exit(1 if result.failed else 0)


def _browse(db: str, **kw: Any) -> None:
    """Run the terminal browser on a store (migrated first: a file that is not ours fails here)."""
    from inspector.tui.app import InspectorApp

    InspectorApp(db, **kw).run()


def _replay_target_options(fn: F) -> F:
    """Where the browser's replays (r, e) go, and with what token."""
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--to", metavar="URL", help="Replays go to this origin (a sandbox, the mock); path and query kept."
        ),
        click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Also trust this CA for replays."),
        click.option(
            "--token", metavar="T", help="Access token for replays (default: $XERO_ACCESS_TOKEN; else asked)."
        ),
        _allow_plain_http_option,
    ]
    return _with_options(fn, options)


_allow_plain_http_option = click.option(
    "--allow-plain-http",
    is_flag=True,
    help="Replay to an http:// target other than loopback (the token travels in clear; warned).",
)


def _replay_settings(
    to: str | None, ca: str | None, token: str | None, catalogs: tuple[str, ...] = (), allow_plain_http: bool = False
) -> Any:
    from inspector.commands.replay import Options
    from inspector.tui.replaying import ReplaySettings

    options = Options(token=token or Options.env_token(), to=to or None, ca=ca, allow_plain_http=allow_plain_http)
    return ReplaySettings(options, catalogs)


@main.command(short_help="Browse a recording in the terminal, live.")
@_db_option("SQLite file to browse.")
@_replay_target_options
@user_errors
def tui(db: str, to: str | None, ca: str | None, token: str | None, allow_plain_http: bool) -> None:
    """Browse a recording in the terminal: the flow list, filters, bodies and findings, live.

    Opens read-mostly while a proxy records into the same file; new flows appear as they
    are recorded (F follows them). Press ? inside for the keys and the filter language.

    Example: xero-inspector tui --db flows.db
    """
    _browse(db, replay=_replay_settings(to, ca, token, allow_plain_http=allow_plain_http))


_WEB_REACH = "read the recording and replay calls with your token"


@main.command(short_help="The proxy and the browser together.")
@_recording_options
@click.option("--token", metavar="T", help="Access token for replays (default: $XERO_ACCESS_TOKEN; else asked).")
@click.option("--web", is_flag=True, help="The browser as a web page (on --web-listen) instead of in this terminal.")
@click.option(
    "--web-listen", default="127.0.0.1:8081", show_default=True, metavar="HOST:PORT", help="Where --web serves it."
)
@user_errors
def up(
    listen: str,
    allow_remote: bool,
    db: str,
    redirect: str,
    upstream_ca: str | None,
    confdir: str,
    keep_secrets: bool,
    catalogs: tuple[str, ...],
    faults: tuple[str, ...],
    faults_file: str | None,
    breaks: tuple[str, ...],
    break_timeout: int,
    token: str | None,
    web: bool,
    web_listen: str,
) -> None:
    """The proxy (in its own process) and the browser together; quitting the browser stops the proxy.

    If a proxy is already recording into --db, the browser attaches to it and leaves it running.
    The proxy's log goes to DB.proxy.log. Replays from the browser go where the proxy
    sends traffic (--redirect, trusting --upstream-ca).

    With --web the browser is a web page instead (see `web`); Ctrl+C stops both.

    Example: xero-inspector up --db flows.db
    """
    from inspector.proxy import spawn
    from inspector.tui.app import InspectorApp
    from inspector.tui.up import up as run_up

    host, port = parse_listen(listen, 8080)
    # Before the proxy starts: a taken port is one line, not a proxy started and stopped.
    web_host, web_port = _web_address(web_listen, allow_remote, "--web-listen") if web else ("", 0)
    if check_exposure(host, allow_remote):  # the proxy's own warning goes to its log file
        click.echo(f"warning: {spawn.exposure_warning(host)}", err=True)
    args = ["--confdir", confdir] + (["--allow-remote"] if allow_remote else [])
    args += ["--redirect", redirect] if redirect else []
    args += ["--upstream-ca", upstream_ca] if upstream_ca else []
    for rule in faults:
        args += ["--fault", rule]
    args += ["--faults", faults_file] if faults_file else []
    for rule in breaks:
        args += ["--break", rule]
    args += ["--break-timeout", str(break_timeout)]
    args += ["--keep-secrets"] if keep_secrets else []
    for c in catalogs:
        args += ["--catalog", c]

    def browse(proc: Any, log: str) -> None:
        if web:
            _serve_web(db, web_host, web_port, _tui_args(redirect, upstream_ca, False, catalogs), token)
            return
        settings = _replay_settings(redirect, upstream_ca, token, catalogs)
        InspectorApp(db, proxy=proc, proxy_log=log, replay=settings).run()  # up has opened and migrated the file

    try:
        run_up(db, host, port, args, browse, lambda line: click.echo(safe(line), err=True))
    except spawn.SpawnError as e:
        raise UserError(str(e)) from e


def _tui_args(to: str | None, ca: str | None, allow_plain_http: bool, catalogs: tuple[str, ...] = ()) -> list[str]:
    """The replay settings, as `tui` takes them on its command line (the token goes by environment)."""
    args = ["--to", to] if to else []
    args += ["--ca", str(Path(ca).resolve())] if ca else []
    args += ["--allow-plain-http"] if allow_plain_http else []
    for c in catalogs:
        args += ["--catalog", str(Path(c).resolve())]
    return args


def _web_address(listen: str, allow_remote: bool, option: str) -> tuple[str, int]:
    """Where the page is served: loopback unless asked, and free (one line naming ``option`` if not)."""
    from inspector.proxy import spawn

    host, port = parse_listen(listen, 8081)
    check_exposure(host, allow_remote, _WEB_REACH)
    try:
        spawn.check_port(host, port, "another page")
    except spawn.PortInUse as e:
        raise UserError(str(e).replace("--listen", option)) from e
    return host, port


def _check_db(db: str) -> None:
    """A missing or foreign file: one line before serving, not a dead page or a failed first call."""
    from contextlib import closing

    from inspector.store.database import open_for_reading

    with closing(open_for_reading(db)):
        pass


def _serve_web(db: str, host: str, port: int, tui_args: list[str], token: str | None) -> None:
    from inspector.tui import web as web_mod

    click.echo(f"Serving {safe(db)} at {web_mod.url(host, port)} (Ctrl+C stops)", err=True)
    web_mod.serve(str(Path(db).resolve()), host, port, tui_args, token)


@main.command(short_help="The browser as a web page on loopback.")
@_db_option("SQLite file to browse.")
@click.option("--listen", default="127.0.0.1:8081", show_default=True, metavar="HOST:PORT", help="Where to serve it.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow --listen beyond loopback (anyone who reaches it reads the recording and can replay with your token).",
)
@_replay_target_options
@user_errors
def web(
    db: str, listen: str, allow_remote: bool, to: str | None, ca: str | None, token: str | None, allow_plain_http: bool
) -> None:
    """The terminal browser as a web page (textual-serve): open the address in a browser.

    Each page runs its own browser on the file, live, with the same keys. Copying to the
    clipboard depends on the web browser allowing it; the text is shown either way.

    Example: xero-inspector web --db flows.db
    """
    host, port = _web_address(listen, allow_remote, "--listen")
    _check_db(db)
    _serve_web(db, host, port, _tui_args(to, ca, allow_plain_http), token)


def _catalog_option(fn: F) -> F:
    return click.option(
        "--catalog",
        "catalogs",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Extra endpoint catalog (TOML) with your own endpoints or XSDs; repeatable.",
    )(fn)


def _load_catalog(catalogs: tuple[str, ...]) -> tuple[Catalog, Validator]:
    """The catalog and a validator whose user schemas compiled (a broken XSD fails here)."""
    from inspector.ingest.catalog import Catalog
    from inspector.ingest.validate import Validator

    catalog = Catalog.load(catalogs)
    return catalog, Validator.for_catalog(catalog)


def _fail_on_option(default: str, help_text: str) -> Callable[[F], F]:
    return click.option(
        "--fail-on",
        type=click.Choice(["error", "warning", "never"]),
        default=default,
        show_default=True,
        help=help_text,
    )


@main.command(short_help="Check XML files against an endpoint's schema.")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--endpoint",
    "-e",
    required=True,
    metavar='"METHOD URL"',
    help="The call the body belongs to; the catalog picks its schema.",
)
@click.option("--response", is_flag=True, help="The files are answers from that endpoint, not request bodies.")
@_fail_on_option(
    "warning",
    "Exit 1 on findings of this severity or worse. A warning is data Xero silently drops (a misspelt element).",
)
@_catalog_option
@user_errors
def validate(files: tuple[str, ...], endpoint: str, response: bool, fail_on: str, catalogs: tuple[str, ...]) -> None:
    """Check XML bodies against the schema of an endpoint; - reads stdin.

    Prints findings like a compiler (file:line:col: error[rule] message). Exits 0 when
    clean, 1 when any finding is a warning or an error (--fail-on), 2 on usage errors.

    Example: xero-inspector validate job.xml --endpoint "POST https://api.xero.com/practicemanager/3.0/job.api/add"
    """
    from inspector.commands.validate_files import check_file, format_finding, target
    from inspector.ingest.findings import counts, fails
    from inspector.utils.text import plural

    catalog, validator = _load_catalog(catalogs)
    t = target(catalog, endpoint, response)
    errors = warnings = 0
    for name in files:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        found = check_file(validator, t, data)
        for f in found:
            click.echo(safe(format_finding("<stdin>" if name == "-" else name, f), lines=True))
        e, w = counts(found)
        errors, warnings = errors + e, warnings + w
    click.echo(
        f"{plural(len(files), 'file')} checked against {t.describe()}: "
        f"{plural(errors, 'error')}, {plural(warnings, 'warning')}",
        err=True,
    )
    sys.exit(1 if fails(fail_on, errors, warnings) else 0)


@main.command(short_help="Failed calls and findings, for people and CI.")
@_db_option("SQLite file to report on.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json", "junit", "html"]),
    default="text",
    show_default=True,
    help="text for a terminal, markdown for a pull request, json for scripts, junit for CI, html for a browser.",
)
@click.option("--filter", "filter_expr", metavar="EXPR", help="Only flows matching this filter (~api xpm & ~c 200).")
@_fail_on_option("error", "Exit 1 on findings of this severity or worse; a failed call counts as an error.")
@_output_option
@user_errors
def report(db: str, fmt: str, filter_expr: str | None, fail_on: str, output: str | None) -> None:
    """The report: failed calls (~failed) and findings, grouped by endpoint, with the worst examples.

    JUnit makes each recorded call a test case, so a CI job shows failing calls as failed tests.

    Example: xero-inspector report --db flows.db --format junit -o xero-calls.xml
    """
    from contextlib import closing

    from inspector.commands import report as report_mod
    from inspector.store.database import open_for_reading
    from inspector.store.report import build

    with closing(open_for_reading(db)) as database:
        r = build(database, db, filter_expr)
        renderer = report_mod.RENDERERS[fmt]
        text = renderer(r, database, fail_on) if fmt == "junit" else renderer(r, database)
    if output:
        files.write(output, text)
        click.echo(safe(f"{output}: {report_mod.summary(r)}"), err=True)
    else:
        click.echo(text, nl=False)
    sys.exit(1 if r.failed(fail_on) else 0)


@main.command(short_help="What recorded WorkflowMax v1 calls must change on v3.")
@_db_option("SQLite file with the recorded v1 (api.workflowmax.com) traffic.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="text for a terminal, markdown for an issue or a pull request, json for scripts.",
)
@_output_option
@_catalog_option
@user_errors
def migrate(db: str, fmt: str, output: str | None, catalogs: tuple[str, ...]) -> None:
    """The v1 to v3 migration checklist, per endpoint the app calls: its URL on Practice Manager 3.0
    and WorkflowMax 3.0, OAuth 2.0 and xero-tenant-id in place of apiKey and accountKey, and each
    recorded request body checked against both v3 schemas (WorkflowMax: ClientID to ClientUUID…).

    Exits 0 (a checklist is not a verdict). Try a migrated call with
    replay --as-v3 xpm|wfm --token T --tenant ID --to URL.

    Example: xero-inspector migrate --db flows.db --format markdown -o MIGRATION.md
    """
    from inspector.commands import migrate as migrate_mod

    catalog, validator = _load_catalog(catalogs)
    plan = migrate_mod.build(db, catalog, validator)
    text = migrate_mod.RENDERERS[fmt](plan)
    if output:
        files.write(output, text)
        click.echo(safe(f"{output}: {migrate_mod.summary(plan)}"), err=True)
    else:
        click.echo(text, nl=False)


@main.command(short_help="Check stored bodies again after a schema change.")
@_db_option("SQLite file to re-check.")
@_catalog_option
@user_errors
def revalidate(db: str, catalogs: tuple[str, ...]) -> None:
    """Re-run every stored body through the current catalog and schemas (after you edit an XSD).

    Example: xero-inspector revalidate --db flows.db --catalog my-endpoints.toml
    """
    from rich.progress import Progress

    from inspector.commands.revalidate import revalidate as run
    from inspector.store.database import open_db
    from inspector.utils.text import plural

    catalog, validator = _load_catalog(catalogs)
    with open_db(db, create=False) as database:
        total = database.table("flows").count
        with Progress(transient=True) as progress:
            task = progress.add_task("revalidating", total=total)
            result = run(database, catalog, validator, lambda n: progress.advance(task, n))
    click.echo(
        f"{plural(result.flows, 'flow')} revalidated: {plural(result.errors, 'error')}, "
        f"{plural(result.warnings, 'warning')}; {plural(result.changed, 'flow')} changed"
    )


@main.command("import", short_help="Import a HAR or mitmproxy flow file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_db_option("SQLite file to import into (created if missing).")
@click.option("--keep-secrets", is_flag=True, help="Store tokens and keys as they are (default: fingerprints).")
@click.option("--no-validate", is_flag=True, help="Import without checking bodies against the schemas.")
@click.option(
    "--hosts", multiple=True, metavar="REGEX", help="Extra hosts to treat as Xero (a company gateway); repeatable."
)
@_catalog_option
@user_errors
def import_(
    file: str, db: str, keep_secrets: bool, no_validate: bool, hosts: tuple[str, ...], catalogs: tuple[str, ...]
) -> None:
    """Import a HAR file (browser devtools, Charles, Proxyman, Fiddler, HTTP Toolkit) or a
    mitmproxy flow file (mitmdump -w, .mitm) and check every Xero call in it.

    Each exchange is classified, redacted and validated as if the proxy had recorded it;
    calls to other hosts are skipped and counted. A malformed file is refused whole:
    nothing is imported.

    Example: xero-inspector import session.har --db flows.db
    """
    from rich.console import Console
    from rich.progress import Progress

    from inspector.commands.importer import ImportFileError, run_import

    catalog, validator = _load_catalog(catalogs)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"importing {Path(file).name}", total=None)
        try:
            result = run_import(
                db,
                file,
                catalog,
                None if no_validate else validator,
                keep_secrets=keep_secrets,
                hosts=hosts,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except ImportFileError as e:
            raise UserError(f"{e}; nothing was imported") from e
        except re.error as e:
            raise click.BadParameter(f"not a regular expression: {e}", param_hint="--hosts") from e
    click.echo(safe(result.summary(), lines=True))


@main.command(short_help="Write flows as HAR, curl or mitmproxy flows.")
@click.argument("ids", nargs=-1, type=int)
@_db_option("SQLite file to export from.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["har", "curl", "mitm"]),
    default="har",
    show_default=True,
    help="HAR 1.2 (Chrome DevTools, Charles…), curl commands, or a mitmproxy flow file.",
)
@click.option("--filter", "filter_expr", metavar="EXPR", help="Only flows matching this filter (~api xpm & ~c 400).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--keep-secrets", is_flag=True, help="Export tokens and keys as stored (default: redacted).")
@user_errors
def export(
    ids: tuple[int, ...], db: str, fmt: str, filter_expr: str | None, output: str | None, keep_secrets: bool
) -> None:
    """Write recorded flows (all, the IDs given, or those matching --filter) for other tools.

    Secrets leave redacted; curl names each as a shell variable (${XERO_ACCESS_TOKEN}).

    Example: xero-inspector export --format curl --filter "~failed" -o failed.sh

    (or --format har -o calls.har for browsers and other proxies; --format mitm -o calls.mitm,
    then mitmproxy -r calls.mitm)
    """
    from inspector.commands.export import export_flows

    if fmt == "mitm" and not output and sys.stdout.isatty():
        raise UserError("a mitmproxy flow file is binary: give -o FILE (or redirect stdout)")
    n = export_flows(db, fmt, ids, filter_expr, output, keep_secrets)
    click.echo(f"{n} flow(s) exported as {fmt}" + (f" to {output}" if output else ""), err=True)


@main.command(short_help="The endpoint catalog and its schemas.")
@click.option("--family", help="Only this API family (xpm-3.0, accounting-2.0, ...).")
@click.option("--schemas-only", is_flag=True, help="Only endpoints whose request body has a schema.")
@_catalog_option
@user_errors
def endpoints(family: str | None, schemas_only: bool, catalogs: tuple[str, ...]) -> None:
    """The catalog as a table: family, method, path and the schemas its bodies are checked against.

    Example: xero-inspector endpoints --family xpm-3.0
    """
    from inspector.commands.endpoints import NoEndpoints, listing
    from inspector.ingest.catalog import Catalog
    from inspector.ingest.validate import SchemaCache, preload

    catalog = Catalog.load(catalogs)
    preload(catalog, SchemaCache())  # a user XSD listed here must also compile: one line if not
    try:
        found = listing(catalog, family, schemas_only)
    except NoEndpoints as e:
        raise UserError(str(e)) from e
    rows = [("FAMILY", "METHOD", "PATH", "REQUEST SCHEMA", "RESPONSE SCHEMA")]
    rows += [(r.family, r.method, r.path, r.request_schema, r.response_schema) for r in found]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4])


@main.command(short_help="Send recorded calls again and compare.")
@click.argument("ids", nargs=-1, type=int)
@_db_option("SQLite file the flows are in (and the replays go to).")
@click.option(
    "--failed",
    is_flag=True,
    help="Every failed call (~failed): HTTP >= 400, Xero errors in 200s, 429s, transport errors, retired endpoints.",
)
@click.option("--filter", "filter_expr", metavar="EXPR", help="Flows matching this filter (with --failed: and).")
@click.option("--since", metavar="WHEN", help="With --failed/--filter: only flows since 30m, 2h, 1d or an ISO time.")
@click.option("--to", metavar="URL", help="Send to this origin instead (a sandbox, the mock); path and query kept.")
@click.option("--token", metavar="T", help="Access token for the replays (default: $XERO_ACCESS_TOKEN).")
@click.option("--tenant", metavar="ID", help="Send to this organisation (the xero-tenant-id header).")
@click.option(
    "--secret", "secrets", multiple=True, metavar="NAME=VALUE", help="Fill a redacted key (apiKey, X-Api-Key…)."
)
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Also trust this CA (besides SSL_CERT_FILE…).")
@click.option("--keep-idempotency-key", is_flag=True, help="Send the recorded Idempotency-Key, not a fresh one.")
@click.option(
    "--as-v3",
    type=click.Choice(["xpm", "wfm"]),
    help="Send WorkflowMax v1 calls to their v3 URL (Practice Manager or WorkflowMax) with --token and --tenant.",
)
@_allow_plain_http_option
@click.option("--yes", is_flag=True, help="Replay POST/PUT/DELETE too: they create or change data.")
@click.option("--keep-secrets", is_flag=True, help="Store the replays' tokens and keys as they are.")
@_catalog_option
@user_errors
def replay(
    ids: tuple[int, ...],
    db: str,
    failed: bool,
    filter_expr: str | None,
    since: str | None,
    to: str | None,
    token: str | None,
    tenant: str | None,
    secrets: tuple[str, ...],
    ca: str | None,
    keep_idempotency_key: bool,
    as_v3: str | None,
    allow_plain_http: bool,
    yes: bool,
    keep_secrets: bool,
    catalogs: tuple[str, ...],
) -> None:
    """Send recorded calls again and record the answers, linked to the originals.

    Each answer is classified and validated like captured traffic. Writes (POST, PUT,
    DELETE) change a real organisation: they are refused unless --yes. Exits 1 when any
    replay still fails, 2 when nothing could be sent. With --as-v3, WorkflowMax v1 calls go to
    their v3 URL with a Bearer token and xero-tenant-id instead of apiKey and accountKey; the
    body is sent as recorded, and the answer is checked against the v3 schemas.

    Example: xero-inspector replay --failed --since 1h --to https://127.0.0.1:8443 --ca mock-xero-ca.pem
    """
    from inspector.commands import replay as rp
    from inspector.commands.replay_batch import run_replay

    if bool(ids) == bool(failed or filter_expr):
        raise click.UsageError("give flow IDs, or --failed / --filter (not both)")
    if since and ids:
        raise click.UsageError("--since goes with --failed or --filter")
    token = token or rp.Options.env_token()
    if as_v3 and not (token and tenant):
        raise UserError(
            "--as-v3 sends an OAuth 2.0 call: give --token (or set XERO_ACCESS_TOKEN) and --tenant "
            "(the organisation's tenantId from GET https://api.xero.com/connections)"
        )
    catalog, validator = _load_catalog(catalogs)
    try:
        opts = rp.Options(
            token=token,
            tenant=tenant,
            to=to,
            secrets=rp.parse_secrets(secrets),
            keep_idempotency_key=keep_idempotency_key,
            ca=ca,
            allow_plain_http=allow_plain_http,
            as_v3=as_v3,
        )
        code = run_replay(db, ids, failed, filter_expr, since, opts, yes, keep_secrets, catalog, validator)
    except rp.ReplayError as e:
        raise UserError(str(e)) from e
    sys.exit(code)


@main.command(short_help="Compare two recorded exchanges.")
@click.argument("a", type=int)
@click.argument("b", type=int, required=False)
@_db_option("SQLite file the flows are in.")
@click.option("--unified", is_flag=True, help="Bodies as a unified diff (for a pipe, a CI log, an issue).")
@click.option("--full", is_flag=True, help="Every body line, not only the changes and their context.")
@user_errors
def diff(a: int, b: int | None, db: str, unified: bool, full: bool) -> None:
    """Compare two recorded exchanges: status, headers, bodies (XML canonicalised) and findings.

    With one ID, compares it with its newest replay. Exits 0 when they are the same
    (headers that change on every call aside), 1 when they differ.

    Example: xero-inspector diff 12 80
    """
    from rich.console import Console

    from inspector.commands.diff import compare, render
    from inspector.commands.diff import unified as unified_text
    from inspector.store.database import open_for_reading
    from inspector.store.flows import load

    conn = open_for_reading(db)
    try:
        first = load(conn, a)
        if first is None:
            raise UserError(f"no flow {a} in {db}")
        if b is None:
            if not first.replays:
                raise UserError(f"flow {a} has no replays; give a second ID")
            b = first.replays[-1]
        second = load(conn, b)
        if second is None:
            raise UserError(f"no flow {b} in {db}")
    finally:
        conn.close()
    d = compare(first, second)
    if unified:
        click.echo(unified_text(d))
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 160  # side by side needs room; a pipe has no width to keep to
        console.print(render(d, full))
    sys.exit(0 if d.same else 1)


@main.command(short_help="The recording for a coding agent (MCP server).")
@_db_option("SQLite file the tools read (and replays record into).")
@click.option("--http", "http", is_flag=True, help="Streamable HTTP on --listen instead of stdio.")
@click.option("--listen", default="127.0.0.1:8765", show_default=True, metavar="HOST:PORT", help="For --http.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow --listen beyond loopback (anyone who reaches it reads the recording and can replay).",
)
@click.option("--allow-writes", is_flag=True, help="Let replay send POST/PUT/DELETE (each call still needs confirm).")
@click.option("--keep-secrets", is_flag=True, help="Return tokens and keys as the recording holds them.")
@click.option("--to", metavar="URL", help="Replays go to this origin (a sandbox, the mock); path and query kept.")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Also trust this CA for replays.")
@click.option("--token", metavar="T", help="Access token for replays (default: $XERO_ACCESS_TOKEN).")
@click.option("--tenant", metavar="ID", help="Replays go to this organisation (the xero-tenant-id header).")
@_catalog_option
@user_errors
def mcp(
    db: str,
    http: bool,
    listen: str,
    allow_remote: bool,
    allow_writes: bool,
    keep_secrets: bool,
    to: str | None,
    ca: str | None,
    token: str | None,
    tenant: str | None,
    catalogs: tuple[str, ...],
) -> None:
    """An MCP server over a recording, for a coding agent: list_flows, get_flow,
    findings_summary, validate, endpoints, diff and replay, answering compact JSON.

    Speaks stdio (the agent starts it); --http serves streamable HTTP at /mcp on loopback.
    Secrets stay redacted unless --keep-secrets. replay sends GETs; writes need --allow-writes
    and confirm=true in the call.

    Example: xero-inspector mcp --db flows.db
    """
    from inspector.agent.server import serve
    from inspector.agent.tools import Settings, Tools

    address = parse_listen(listen, 8765) if http else None
    if address:
        check_exposure(address[0], allow_remote, "read the recording and replay calls")
    _check_db(db)
    catalog, validator = _load_catalog(catalogs)  # a broken user schema: one line now, too
    settings = Settings(Path(db), keep_secrets, allow_writes, token, tenant, to, ca)
    if address:
        click.echo(f"MCP over streamable HTTP at http://{address[0]}:{address[1]}/mcp (Ctrl+C stops)", err=True)
    serve(Tools(settings, catalog, validator), address)
