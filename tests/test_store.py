from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from sqlite_utils import Database

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.row import as_dict
from inspector.store import database as store
from inspector.store.database import APPLICATION_ID, SCHEMA_VERSION, StoreError, insert, open_db
from tests.test_ingest import record


def test_a_new_file_gets_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        assert store.schema_version(db) == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {"flows", "bodies", "bodies_fts", "tenants", "recorders"} <= set(db.table_names())
        indexed = {tuple(i.columns) for i in db.table("flows").indexes}
        assert {
            ("started_at",),
            ("family", "started_at"),
            ("status",),
            ("tenant_id", "started_at"),
        } <= indexed


def test_file_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        insert(db, [Ingest(Catalog.load())(record())], 0)
        for p in tmp_path.glob("flows.db*"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_reopening_is_a_no_op_and_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        insert(db, [Ingest(Catalog.load())(record())], 0)
    with open_db(path) as db:
        assert db.table("flows").count == 1 and store.schema_version(db) == SCHEMA_VERSION


def test_migrations_apply_in_order_and_each_bumps_the_version(tmp_path: Path) -> None:
    seen: list[str] = []

    def next_a(db: Database) -> None:
        seen.append("a")
        db.table("flows").add_column("note", str)

    def next_b(db: Database) -> None:
        seen.append("b")
        db.execute("create index flows_note on flows (note)")

    path = tmp_path / "flows.db"
    with open_db(path) as db:
        insert(db, [Ingest(Catalog.load())(record())], 0)
    with open_db(path, migrations=(*store.MIGRATIONS, next_a, next_b)) as db:
        assert seen == ["a", "b"] and store.schema_version(db) == SCHEMA_VERSION + 2
        assert "note" in db.table("flows").columns_dict and db.table("flows").count == 1


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    def v2(db: Database) -> None:
        db.table("flows").add_column("half_done", str)
        raise RuntimeError("boom")

    path = tmp_path / "flows.db"
    open_db(path).close()
    with pytest.raises(RuntimeError, match="boom"):
        open_db(path, migrations=(*store.MIGRATIONS, v2))
    with open_db(path) as db:
        assert store.schema_version(db) == SCHEMA_VERSION and "half_done" not in db.table("flows").columns_dict


def test_a_v1_file_with_flows_gains_findings_and_zero_counts(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    v1_row = {c: v for c, v in as_dict(Ingest(Catalog.load())(record()).flow).items() if c in store._V1_FLOW_COLUMNS}
    with open_db(path, migrations=store.MIGRATIONS[:1]) as db:
        db.table("flows").insert({"id": 1, **v1_row})
    with open_db(path) as db:
        assert store.schema_version(db) == SCHEMA_VERSION == 10
        flow = next(db.query("select errors, warnings, marked, comment from flows"))
        assert flow == {"errors": 0, "warnings": 0, "marked": 0, "comment": None} and db.table("findings").count == 0
        # v5: the newest page of a status filter walks an index in id order, with no sort
        plan = " ".join(
            r["detail"]
            for r in db.query("EXPLAIN QUERY PLAN SELECT id FROM flows WHERE status = 429 ORDER BY id DESC LIMIT 100")
        )
        assert "idx_flows_status" in plan and "TEMP B-TREE" not in plan


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match=r"schema v99 is newer than this xero-inspector knows"):
        open_db(path)


def test_a_database_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("create table customers (id integer)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a xero-inspector database"):
        open_db(path)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        open_db(garbage)


def test_missing_file_or_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        open_db(tmp_path / "absent.db", create=False)
    with pytest.raises(StoreError, match="does not exist"):
        open_db(tmp_path / "nope" / "flows.db")


def test_check_path_refuses_what_open_would_and_creates_nothing(tmp_path: Path) -> None:
    store.check_path(tmp_path / "new.db")  # fine, and not created
    with pytest.raises(StoreError, match="does not exist"):
        store.check_path(tmp_path / "nope" / "flows.db")
    with pytest.raises(StoreError, match="is a folder"):
        store.check_path(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database" * 100)
    with pytest.raises(StoreError, match="not SQLite at all"):
        store.check_path(tmp_path / "notes.txt")
    with open_db(tmp_path / "newer.db") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema v99 is newer"):
        store.check_path(tmp_path / "newer.db")
    with open_db(tmp_path / "old.db", migrations=store.MIGRATIONS[:2]):
        pass
    store.check_path(tmp_path / "old.db")  # checked, not migrated: that waits until it is used
    with open_db(tmp_path / "old.db", create=False, migrations=store.MIGRATIONS[:2]) as db:
        assert store.schema_version(db) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.db", "notes.txt", "old.db"]


def test_insert_stores_bodies_searchable_and_tenants(tmp_path: Path) -> None:
    import json

    conn_body = json.dumps(
        [{"id": "c", "tenantId": "t9", "tenantName": "Nine Ltd", "tenantType": "ORGANISATION"}]
    ).encode()
    items = [
        Ingest(Catalog.load())(record()),
        Ingest(Catalog.load())(
            record(
                method="GET",
                url="https://api.xero.com/connections",
                request_body=b"",
                response_headers=(("Content-Type", "application/json"),),
                response_body=conn_body,
            )
        ),
    ]
    with open_db(tmp_path / "f.db") as db:
        ids = insert(db, items, 123.0)
        assert ids == [1, 2]
        hits = list(
            db.query(
                "select b.flow_id from bodies_fts f join bodies b on b.id = f.rowid where bodies_fts match 'identifier'"
            )
        )
        assert hits == [{"flow_id": 1}]
        assert list(db.query("select id, name, seen_at from tenants")) == [
            {"id": "t9", "name": "Nine Ltd", "seen_at": 123.0}
        ]
