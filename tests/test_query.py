"""The filter language on a real store of ingested flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.validate import Validator
from inspector.store.database import insert, open_db
from inspector.store.query import FilterError, compile_filter, install
from tests.test_ingest import record

XPM = "https://api.xero.com/practicemanager/3.0/"


@pytest.fixture
def db(tmp_path: Path):
    ingest = Ingest(Catalog.load(), validator=Validator())
    recs = [
        record(),  # 1: XPM job add, ERROR in 200
        record(
            method="GET",
            url=XPM + "job.api/list",
            request_body=None,
            response_headers=(("Content-Type", "text/xml"),),
            response_body=b"<Response><Status>OK</Status></Response>",
        ),
        record(url=XPM + "job.api/add", request_body=b"<Job><ClientId>1</ClientId></Job>"),  # 3: typo
        record(
            method="GET",
            url="https://api.xero.com/api.xro/2.0/Invoices",
            request_body=None,
            status=429,
            response_headers=(("Retry-After", "5"),),
            response_body=b"",
        ),
        record(
            method="GET",
            url=XPM + "job.api/list",
            request_body=None,
            status=None,
            response_headers=None,
            response_body=None,
            error="Connection refused",
            source="replay",
            replay_of=2,
        ),
    ]
    database = open_db(tmp_path / "q.db")
    insert(database, [ingest(r) for r in recs], 0)
    install(database.conn)
    yield database
    database.close()


def ids(db, expr: str) -> list[int]:
    w = compile_filter(expr)
    return [r[0] for r in db.execute(f"SELECT id FROM flows WHERE {w.sql} ORDER BY id", w.params)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("", [1, 2, 3, 4, 5]),
        ("~m POST", [1, 3]),
        ("~api xpm", [1, 2, 3, 5]),
        ("~api xpm & ~c 200", [1, 2, 3]),
        ("~api xpm ~c 200", [1, 2, 3]),
        ("!~api xpm", [4]),
        ("~c 429 | ~e", [4, 5]),
        ("~rl", [4]),
        ("~replay", [5]),
        ("~q", [5]),
        ("~err", [1, 3]),
        ("~v", [1, 3, 4]),
        ("~v unknown-element", [3]),
        ("~v xsd", [1, 3]),
        ("~res job.api ~op add", [1, 3]),
        ("~u job.api/list", [2, 5]),
        ("job.api/li", [2, 5]),
        ("~u 'Invoices$'", [4]),
        ("~bq ClientId", [3]),
        ('~bs "Invalid client"', [1, 3]),
        ('~bs "Invalid client" & ~bq ClientId', [3]),
        ("~tenant T1", [1, 2, 3, 4, 5]),
        ("~h xero-correlation", [1, 3]),
        ("(~c 429 | ~m POST) & !~v", []),
    ],
)
def test_filters(db, expr: str, expected: list[int]) -> None:
    assert ids(db, expr) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("~x", "unknown filter ~x"),
        ("~c", "~c needs a value"),
        ("~c abc", "status code"),
        ("(~m GET", "never closed"),
        ("~m GET )", "unexpected ')'"),
        ("~u '('", "bad regular expression"),
        ("& ~m GET", "unexpected '&'"),
    ],
)
def test_bad_filters_say_why(expr: str, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_filter(expr)
