"""Property-based tests (hypothesis): the filter parser and the sniff/parse/validate path take
anything a user types or a peer sends and answer with a result or a clear error, never a crash."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspector.samples.traffic import Traffic

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.validate import SchemaCache, Validator
from inspector.store.database import insert, open_db
from inspector.store.query import FILTERS, FilterError, Where, compile_filter
from tests.test_ingest import record

pytestmark = pytest.mark.hardening

CATALOG = Catalog.load()
VALIDATOR = Validator(SchemaCache())
SCHEMAS = sorted(
    {ep.request for ep in CATALOG.endpoints if ep.request is not None}
    | {f.response for f in CATALOG.families.values() if f.response is not None},
    key=lambda s: s.label + str(s.roots),
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """A real store of 13 kinds of exchange (statuses, errors, findings, bodies, NULLs)."""
    path = tmp_path_factory.mktemp("props") / "flows.db"
    ingest = Ingest(CATALOG, validator=VALIDATOR)
    with open_db(path) as db:
        insert(db, [ingest(r) for r in Traffic(start=1_790_000_000.0, step=0.1).records(13 * 8)], 1_790_000_100.0)
    from inspector.store.database import (
        open_for_reading as connect,  # every reader's: with the REGEXP function regexes use
    )

    conn = connect(path)
    yield conn
    conn.close()


def count(conn: sqlite3.Connection, where: Where, sql: str | None = None) -> int:
    return int(conn.execute(f"SELECT count(*) FROM flows WHERE {sql or where.sql}", where.params).fetchone()[0])


@PROPERTY
@given(st.text(max_size=60))
def test_any_typed_filter_compiles_or_says_why(store: sqlite3.Connection, text: str) -> None:
    try:
        where = compile_filter(text)
    except FilterError as e:
        assert str(e) and "\n" not in str(e)
        return
    # What compiles runs on a real store, in both of its forms.
    count(store, where)
    count(store, where, where.row)


WORDS = st.sampled_from(["400", "429", "200", "xpm", "accounting", "job.api", "ClientId", "POST", "Demo", "x_%"])
LEAF = st.one_of(
    st.builds(lambda f, w: f"{f} {w}", st.sampled_from([f for f in FILTERS if f not in ("~v",)]), WORDS),
    st.sampled_from(["~v", "~v xsd", "~err", "~rl", "~q", "~s", "~e", "~marked", "~all"]),
    WORDS,
)
EXPRS = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} & {b}", inner, inner),
        st.builds(lambda a, b: f"{a} | {b}", inner, inner),
        st.builds(lambda a: f"!{a}", inner),
        st.builds(lambda a: f"({a})", inner),
    ),
    max_leaves=6,
)


@PROPERTY
@given(EXPRS, EXPRS)
def test_filters_combine_like_sets(store: sqlite3.Connection, a: str, b: str) -> None:
    total = count(store, compile_filter(""))
    try:
        wa, wb = compile_filter(a), compile_filter(b)
    except FilterError:  # a value the filter refuses (~c xpm): said in one line, checked above
        return
    na, nb = count(store, wa), count(store, wb)
    assert count(store, compile_filter(f"({a}) & ({b})")) <= min(na, nb)
    assert count(store, compile_filter(f"({a}) | ({b})")) >= max(na, nb)
    # Every flow is in a filter or in its negation, never both: a missing status or tenant
    # does not fall through both (SQL's NULL would).
    assert na + count(store, compile_filter(f"!({a})")) == total
    # The one-row form agrees with the list form.
    assert count(store, wa, wa.row) == na


XMLISH = st.one_of(
    st.binary(max_size=400),
    st.text(
        alphabet=st.sampled_from(list("<>/=\"' ?!-[]&;#xXmlDOCTYPEENTITYSYSTEMabc123\n\t\u00e9\u4e2d")), max_size=200
    ).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda tag, inner, enc: f'<?xml version="1.0" encoding="{enc}"?><{tag}>{inner}</{tag}>'.encode(
            "utf-8", "surrogatepass"
        ),
        st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True),
        st.text(max_size=80),
        st.sampled_from(["UTF-8", "UTF-16", "ISO-8859-1", "latin1", "bogus", "ascii"]),
    ),
)


@PROPERTY
@given(XMLISH, st.sampled_from(SCHEMAS), st.sampled_from(["request", "response"]))
def test_any_body_is_checked_without_crashing(body: bytes, schema: object, side: str) -> None:
    checked = VALIDATOR.check(body, schema, side)  # type: ignore[arg-type]
    for f in checked.findings:
        assert f.rule and f.message and f.severity in ("error", "warning", "info")
        assert f.line is None or f.line >= 0


@PROPERTY
@given(XMLISH, XMLISH, st.sampled_from([None, "gzip", "br", "deflate", "zstd", "identity, gzip", "x-bogus"]))
def test_any_exchange_ingests_to_a_row(request_body: bytes, response_body: bytes, encoding: str | None) -> None:
    headers = (("Content-Type", "text/xml"), *((("Content-Encoding", encoding),) if encoding else ()))
    rec = dataclasses.replace(
        record(), request_body=request_body, response_body=response_body, response_headers=headers
    )
    item = Ingest(CATALOG, validator=VALIDATOR)(rec)
    assert item.flow.outcome in ("ok", "api-error", "http-error", "rate-limited", "transport-error")
    assert not item.flow.ingest_error, item.flow.ingest_error


def test_the_store_fixture_has_nulls_to_fall_through(store: sqlite3.Connection, tmp_path: Path) -> None:
    """The negation property above only means something if some flows have no status."""
    assert count(store, compile_filter("~q")) > 0 and count(store, compile_filter("~tenant Demo")) > 0
