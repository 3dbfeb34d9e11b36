"""The XeroScope addon: which hosts are Xero's, and so the only ones TLS-intercepted."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mitmproxy import ctx, exceptions

from inspector.ingest.catalog import Catalog, CatalogError
from inspector.ingest.scope import HostScope
from inspector.ingest.validate import SchemaCache, SchemaLoadError, preload


class XeroScope:
    """The Xero hosts (catalog + ``inspector_hosts``); only those are TLS-intercepted.

    Everything else is tunnelled untouched through mitmproxy's ``allow_hosts``, unless the
    user set ``allow_hosts``/``ignore_hosts`` themselves or turned ``inspector_only_xero`` off.
    """

    def __init__(self) -> None:
        self.catalog = Catalog.load()
        self.hosts = HostScope(self.catalog.hosts())
        self._loaded: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # (catalogs, hosts) behind the above
        self._allow_set: list[str] | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "inspector_hosts", Sequence[str], [], "Extra host regexes to treat as Xero (a company gateway)."
        )
        loader.add_option(
            "inspector_catalog",
            Sequence[str],
            [],
            "Extra endpoint catalogs (TOML) that extend or override the built-in one.",
        )
        loader.add_option(
            "inspector_only_xero",
            bool,
            True,
            "Intercept TLS only for Xero hosts and tunnel all other hosts untouched (sets allow_hosts).",
        )

    def configure(self, updated: set[str]) -> None:
        wanted = (tuple(ctx.options.inspector_catalog), tuple(ctx.options.inspector_hosts))
        # mitmproxy names every option at start-up: reload only what differs from __init__'s.
        if {"inspector_catalog", "inspector_hosts"} & updated and wanted != self._loaded:
            try:
                catalog = Catalog.load(wanted[0])
                # Compiled here only so a broken user XSD stops the proxy at start-up, named;
                # the writer process compiles its own.
                preload(catalog, SchemaCache())
                hosts = HostScope(catalog.hosts(), wanted[1])
            except (CatalogError, SchemaLoadError) as e:
                raise exceptions.OptionsError(str(e)) from e
            except re.error as e:
                raise exceptions.OptionsError(f"inspector_hosts: bad regex {e.pattern!r}: {e}") from e
            self.catalog, self.hosts, self._loaded = catalog, hosts, wanted
        # The first configure applies the scope whatever it names: addons added directly (not
        # as a script) only hear about the options that change.
        scope_keys = {"inspector_only_xero", "inspector_catalog", "inspector_hosts", "allow_hosts", "ignore_hosts"}
        if self._allow_set is None or scope_keys & updated:
            self._apply_allow_hosts()

    def _apply_allow_hosts(self) -> None:
        current = list(ctx.options.allow_hosts)
        if (current and current != self._allow_set) or ctx.options.ignore_hosts:
            return  # the user chose their own interception scope: leave it alone
        want = self.hosts.allow_hosts() if ctx.options.inspector_only_xero else []
        self._allow_set = want
        if current != want:
            ctx.options.update(allow_hosts=want)
