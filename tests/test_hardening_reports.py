"""Hardening: a report survives any byte. Whatever a stored URL, reason, Xero error, transport
error or finding holds (controls, C1, bidi overrides, markup, invalid UTF-8), every format renders,
stays valid in its own syntax, and hands a terminal nothing it would obey."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from inspector.commands import report
from inspector.store.database import open_for_reading
from inspector.store.report import build
from tests.hostile import leaks, recording

pytestmark = pytest.mark.hardening

# Text as a HAR or a hostile upstream can deliver it, and bytes that were never UTF-8.
anything = st.one_of(
    st.text(),
    st.text(st.sampled_from("\x00\x07\x1b\x7f\x85\x9b\u202e\u2066\ufffe\uffff[]<>&'\"|`*_/\\\n\r\t")),
    st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("reports")
    path = folder / "any.db"
    shutil.copy(recording(folder), path)
    yield path


def store(path: Path, url: str, reason: str, xero: str, error: str, message: str) -> None:
    """The strings as the file holds them: as UTF-8 where they can be, the stray bytes as they are."""
    raw = [s.encode("utf-8", "surrogateescape") for s in (url, reason, xero, error, message)]
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE flows SET url = CAST(? AS TEXT), reason = CAST(? AS TEXT), api_error = CAST(? AS TEXT) "
            "WHERE id = 2",
            raw[:3],
        )
        conn.execute("UPDATE flows SET error = CAST(? AS TEXT) WHERE id = 5", raw[3:4])
        conn.execute("UPDATE findings SET message = CAST(? AS TEXT), xpath = CAST(? AS TEXT)", (raw[4], raw[0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=anything, reason=anything, xero=anything, error=anything, message=anything)
def test_every_format_renders_any_stored_text(
    db: Path, url: str, reason: str, xero: str, error: str, message: str
) -> None:
    store(db, "https://api.xero.com/practicemanager/3.0/job.api/list?" + url, reason, xero, error, message)
    with closing(open_for_reading(db)) as database:
        r = build(database, str(db))
        out = {
            fmt: render(r, database, "error") if fmt == "junit" else render(r, database)
            for fmt, render in report.RENDERERS.items()
        }
    for fmt, text in out.items():
        data = text.encode("utf-8")  # no stray surrogate is left to fail here
        assert leaks(data) == [], fmt
    json.loads(out["json"])
    etree.fromstring(out["junit"].encode("utf-8"))  # well-formed XML 1.0
    assert r.failed_calls >= 2 and out["junit"].count("<failure") >= 2
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in xero):  # JSON carries the value itself
        parsed = json.loads(out["json"])
        assert [c["detail"] for f in parsed["failures"] for c in f["examples"] if c["flow_id"] == 2] == [xero]
