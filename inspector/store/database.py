"""The store: a plain SQLite file (WAL) that any tool can open.

``flows`` is the listing (no body bytes), ``bodies`` holds decoded bodies with full-text
search, ``findings`` what validation and the rules found, ``tenants`` names organisations,
``recorders`` keeps each recorder's counters.
The schema is versioned by ``PRAGMA user_version``; migrations are explicit functions,
applied in order, each in the same transaction as the version bump.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from inspector.ingest import row as flow_row
from inspector.ingest.findings import SCHEMA_RULES
from inspector.ingest.pipeline import Ingested
from inspector.store.query import failed_sql, failure_sql, install

# PRAGMA application_id marks the file as ours ("XINS"), so a stranger's database is refused.
APPLICATION_ID = 0x58494E53
BUSY_TIMEOUT_MS = 10_000
INSERT_CHUNK = 500

Migration = Callable[[Database], None]


class StoreError(Exception):
    """A database that cannot be used; the message is one line for the user."""

    @property
    def transient(self) -> bool:
        """Locked or busy: it may work in a moment (another writer holds the lock)."""
        return isinstance(self.__cause__, sqlite3.OperationalError) and "locked" in str(self.__cause__)


def _side_columns(side: str) -> dict[str, type]:
    return {
        f"{side}_content_type": str,
        f"{side}_format": str,
        f"{side}_size": int,
        f"{side}_raw_size": int,
        f"{side}_truncated": int,
        f"{side}_decode_error": str,
    }


# The flows table as version 1 created it; later versions add columns at the end.
_V1_FLOW_COLUMNS: dict[str, type] = {
    "id": int,
    "source": str,
    "replay_of": int,
    "started_at": float,
    "ended_at": float,
    "duration_ms": float,
    "client_addr": str,
    "server_addr": str,
    "method": str,
    "url": str,
    "scheme": str,
    "host": str,
    "port": int,
    "path": str,
    "query": str,
    "http_version": str,
    "tls": int,
    "status": int,
    "reason": str,
    "error": str,
    "family": str,
    "resource": str,
    "operation": str,
    "endpoint": str,
    "path_params": str,
    "tenant_id": str,
    "correlation_id": str,
    "rl_day_remaining": int,
    "rl_minute_remaining": int,
    "rl_app_minute_remaining": int,
    "retry_after": int,
    "rate_limit_problem": str,
    "api_status": str,
    "api_error": str,
    "api_error_kind": str,
    "api_error_details": str,
    "outcome": str,
    "token_exp": int,
    "token_scopes": str,
    "token_client_id": str,
    "token_user_id": str,
    "redactions": int,
    "ingest_error": str,
    **_side_columns("request"),
    **_side_columns("response"),
    # Headers last: the listing never needs them.
    "request_headers": str,
    "response_headers": str,
}
FLOW_COLUMNS: dict[str, type] = {
    **_V1_FLOW_COLUMNS,
    "errors": int,
    "warnings": int,
    "marked": int,
    "comment": str,
    "response_http_version": str,
    "injected": str,
    "paused": str,
}
FINDING_COLUMNS: dict[str, type] = {
    "id": int,
    "flow_id": int,
    "side": str,
    "rule": str,
    "severity": str,
    "line": int,
    "column": int,
    "xpath": str,
    "message": str,
    "schema": str,
    "hint": str,
}


def _v1_initial(db: Database) -> None:
    flows = db.table("flows")
    flows.create(_V1_FLOW_COLUMNS, pk="id", not_null={"started_at", "method", "url", "outcome"})
    for columns in (
        ["started_at"],
        ["family", "started_at"],
        ["status", "started_at"],
        ["tenant_id", "started_at"],
        ["outcome", "started_at"],
        ["replay_of"],
    ):
        flows.create_index(columns)
    bodies = db.table("bodies")
    bodies.create(
        {"id": int, "flow_id": int, "side": str, "text": str, "data": bytes},
        pk="id",
        not_null={"flow_id", "side"},
        foreign_keys=[("flow_id", "flows", "id")],
    )
    bodies.create_index(["flow_id", "side"], unique=True)
    # Full-text search over decoded text bodies, kept in step by triggers.
    bodies.enable_fts(["text"], fts_version="FTS5", create_triggers=True)
    db.table("tenants").create(
        {
            "id": str,
            "name": str,
            "type": str,
            "connection_id": str,
            "created_at": str,
            "updated_at": str,
            "seen_at": float,
        },
        pk="id",
    )
    db.table("recorders").create(
        {
            "id": str,
            "pid": int,
            "listen": str,
            "mode": str,
            "redirect": str,
            "started_at": float,
            "updated_at": float,
            "stopped_at": float,
            "recorded": int,
            "dropped": int,
            "errors": int,
            "queue_depth": int,
        },
        pk="id",
    )


def _v2_findings(db: Database) -> None:
    """Validation: a findings table, and counts on flows so the listing can show and filter them."""
    db.execute("ALTER TABLE flows ADD COLUMN errors INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE flows ADD COLUMN warnings INTEGER NOT NULL DEFAULT 0")
    findings = db.table("findings")
    findings.create(
        FINDING_COLUMNS,
        pk="id",
        not_null={"flow_id", "side", "rule", "severity", "message"},
        foreign_keys=[("flow_id", "flows", "id")],
    )
    findings.create_index(["flow_id"])
    findings.create_index(["rule", "flow_id"])
    db.table("flows").create_index(["errors", "started_at"])


def _v3_marks(db: Database) -> None:
    """The browser: marks and comments on flows, and a floor under new flow ids.

    Ids are handed out from max(id); once the newest flows are deleted their ids would come
    back and a replay or a comment could point at a different call. ``meta`` keeps the
    highest id ever deleted so ids are never reused.
    """
    db.execute("ALTER TABLE flows ADD COLUMN marked INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE flows ADD COLUMN comment TEXT")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER)")
    db.execute("CREATE INDEX idx_flows_marked ON flows (marked) WHERE marked")


# Times as UTC text, for people and tools that do not read Unix seconds.
_UTC = "strftime('%Y-%m-%d %H:%M:%f', {}, 'unixepoch')"


def _v4_views(db: Database) -> None:
    """Views any SQLite tool (Datasette first) can show as they are: what failed, what broke
    a schema, how the rate limits ran down. Derived data only, so they never need migrating."""
    rules = ", ".join(f"'{r}'" for r in sorted(SCHEMA_RULES))
    db.execute(
        "CREATE VIEW failed_calls AS SELECT f.id, "
        + _UTC.format("f.started_at")
        + " AS started_utc, f.method, f.family, f.endpoint, f.url, f.status, f.outcome, f.api_error, "
        "f.error AS transport_error, f.errors, f.warnings, f.tenant_id, t.name AS tenant_name, f.correlation_id, "
        "f.source, f.replay_of, (SELECT count(*) FROM flows r WHERE r.replay_of = f.id) AS replays "
        "FROM flows f LEFT JOIN tenants t ON t.id = f.tenant_id WHERE f.outcome != 'ok' ORDER BY f.id"
    )
    db.execute(
        "CREATE VIEW schema_violations AS SELECT fi.flow_id, "
        + _UTC.format("f.started_at")
        + ' AS started_utc, f.method, f.endpoint, fi.side, fi.severity, fi.rule, fi.line, fi."column", '
        "fi.xpath, fi.message, fi.schema, fi.hint, f.url FROM findings fi JOIN flows f ON f.id = fi.flow_id "
        f"WHERE fi.rule IN ({rules}) ORDER BY fi.flow_id, fi.id"
    )
    db.execute(
        "CREATE VIEW rate_limits AS SELECT f.id, "
        + _UTC.format("f.started_at")
        + " AS started_utc, f.tenant_id, t.name AS tenant_name, f.family, f.endpoint, f.status, "
        "f.rl_day_remaining AS day_remaining, f.rl_minute_remaining AS minute_remaining, "
        "f.rl_app_minute_remaining AS app_minute_remaining, f.retry_after, f.rate_limit_problem AS problem "
        "FROM flows f LEFT JOIN tenants t ON t.id = f.tenant_id "
        "WHERE f.status = 429 OR f.rate_limit_problem IS NOT NULL OR f.rl_day_remaining IS NOT NULL "
        "OR f.rl_minute_remaining IS NOT NULL OR f.rl_app_minute_remaining IS NOT NULL ORDER BY f.id"
    )
    db.execute(
        "CREATE VIEW endpoint_summary AS SELECT family, method, endpoint, count(*) AS calls, "
        "sum(outcome != 'ok') AS failed, sum(errors) AS errors, sum(warnings) AS warnings, "
        "round(avg(duration_ms), 1) AS avg_ms, "
        + _UTC.format("max(started_at)")
        + " AS last_utc FROM flows GROUP BY family, method, endpoint ORDER BY failed DESC, calls DESC"
    )


def _v5_status_by_id(db: Database) -> None:
    """The browser lists flows in id order: "~c 429" reads its newest page by walking an index
    on status (whose entries end in the rowid) backwards, instead of sorting every 429 by id
    (1 ms instead of 220 on a million flows). Nothing needed status ordered by time."""
    db.execute("DROP INDEX IF EXISTS idx_flows_status_started_at")
    db.execute("CREATE INDEX idx_flows_status ON flows (status)")


def _v6_failed_means_failed(db: Database) -> None:
    """One definition of a failed call (``xero_facts.failure``) in the views too: a 200 from a retired
    endpoint is failed, and ``failed_calls`` says why each call failed."""
    db.execute("DROP VIEW IF EXISTS failed_calls")
    db.execute(
        "CREATE VIEW failed_calls AS SELECT f.id, "
        + _UTC.format("f.started_at")
        + f" AS started_utc, f.method, f.family, f.endpoint, f.url, f.status, {failure_sql('f')} AS failure, "
        "f.outcome, f.api_error, f.error AS transport_error, f.errors, f.warnings, f.tenant_id, t.name AS tenant_name, "
        "f.correlation_id, f.source, f.replay_of, (SELECT count(*) FROM flows r WHERE r.replay_of = f.id) AS replays "
        f"FROM flows f LEFT JOIN tenants t ON t.id = f.tenant_id WHERE {failed_sql('f')} ORDER BY f.id"
    )
    db.execute("DROP VIEW IF EXISTS endpoint_summary")
    db.execute(
        "CREATE VIEW endpoint_summary AS SELECT family, method, endpoint, count(*) AS calls, "
        f"sum({failed_sql()}) AS failed, sum(errors) AS errors, sum(warnings) AS warnings, "
        "round(avg(duration_ms), 1) AS avg_ms, "
        + _UTC.format("max(started_at)")
        + " AS last_utc FROM flows GROUP BY family, method, endpoint ORDER BY failed DESC, calls DESC"
    )


def _v7_response_http_version(db: Database) -> None:
    """The answer's HTTP version, which may differ from the request's (HTTP/2 from the app,
    HTTP/1.1 from Xero through the proxy): captured all along, now kept."""
    db.execute("ALTER TABLE flows ADD COLUMN response_http_version TEXT")


def _v8_injected(db: Database) -> None:
    """Faults on purpose (proxy --fault): which answers xero-inspector made, so that nothing
    mistakes them for Xero's."""
    db.execute("ALTER TABLE flows ADD COLUMN injected TEXT")


def _v9_controls(db: Database) -> None:
    """What the browser tells a running proxy (store/controls.py): the fault rules set in it."""
    db.table("controls").create({"key": str, "value": str, "updated_at": float}, pk="key")


def _v10_pauses(db: Database) -> None:
    """Breakpoints (proxy --break): the calls a proxy holds for the browser (store/pauses.py),
    and on each flow what happened while it was held."""
    db.execute("ALTER TABLE flows ADD COLUMN paused TEXT")
    db.table("pauses").create(
        {
            "id": int,
            "proxy_pid": int,
            "side": str,  # request | response: which half is held
            "state": str,  # paused, then resume or kill (the browser's answer)
            "created_at": float,
            "deadline": float,  # resumed unchanged after this
            "timeout_s": float,
            "held": int,  # the browser opened it in the editor (the deadline moved once)
            "method": str,
            "url": str,
            "headers": str,  # JSON [[name, value]], the held half's, secrets redacted
            "body": bytes,
            "status": int,  # response side: the answer's status
            "edit_method": str,  # the browser's edits; NULL: unchanged
            "edit_url": str,
            "edit_headers": str,
            "edit_body": bytes,
        },
        pk="id",
    )


MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial,
    _v2_findings,
    _v3_marks,
    _v4_views,
    _v5_status_by_id,
    _v6_failed_means_failed,
    _v7_response_http_version,
    _v8_injected,
    _v9_controls,
    _v10_pauses,
)
VIEWS = ("failed_calls", "schema_violations", "rate_limits", "endpoint_summary")
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the file to the newest schema; returns the version it ends at.

    BEGIN IMMEDIATE takes the write lock before the version is read, so two processes
    opening a new file at once cannot both migrate it.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        if version > len(migrations):
            raise StoreError(_newer(version, len(migrations)))
        for number in range(version, len(migrations)):
            migrations[number](db)
            db.execute(f"PRAGMA user_version = {number + 1}")
        db.execute("COMMIT")
    except BaseException:
        db.conn.rollback()
        raise
    return len(migrations)


def _create_private(path: Path) -> None:
    """Create the file owner-only before SQLite opens it; SQLite gives -wal and -shm
    the same mode as the database file."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def lenient_text(data: bytes) -> str:
    """TEXT as str even when it is not UTF-8 (a file another tool wrote, or damaged): the stray
    bytes are kept as surrogates, which every output shows as \\xNN, instead of the read failing."""
    return data.decode("utf-8", "surrogateescape")


def open_db(
    path: str | Path,
    *,
    create: bool = True,
    migrations: Sequence[Migration] = MIGRATIONS,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Database:
    """The one way to open the file for writing: created (0600) and migrated if needed, a
    stranger's or a newer file refused with one line (StoreError)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise StoreError(f"{path}: no such database")
        _check_folder(path)
        _create_private(path)
    try:
        # Not bound to the opening thread: the browser's edits run in workers, under its lock.
        conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, check_same_thread=False)
        conn.text_factory = lenient_text
        db = Database(conn)
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        app_id = _refuse_a_stranger(db, path)
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across a process crash
        if app_id == 0:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        migrate(db, migrations)
        return db
    except sqlite3.DatabaseError as e:
        raise _store_error(path, e) from e


def open_for_reading(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """The one way to open the file for reading: read-only, rows as ``sqlite3.Row``, able to run
    every filter (regex ones need REGEXP), usable from any thread. A missing, stranger's or newer
    file is refused with one line (StoreError); an older one is migrated first, through a write
    connection, since every reader expects today's columns."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such database")
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a database file")
    for attempt in range(2):
        try:
            conn = sqlite3.connect(
                f"file:{path.resolve()}?mode=ro", uri=True, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
            conn.text_factory = lenient_text
            _refuse_a_stranger(Database(conn), path)  # closes it first
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as e:
            raise _store_error(path, e) from e
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(_newer(version, SCHEMA_VERSION))
        if version == SCHEMA_VERSION:
            break
        conn.close()
        if attempt:
            raise StoreError(f"{path}: could not be brought up to schema v{SCHEMA_VERSION}")
        open_db(path, create=False, busy_timeout_ms=busy_timeout_ms).close()
    conn.row_factory = sqlite3.Row
    install(conn)
    return conn


def check_path(path: str | Path, migrations: Sequence[Migration] = MIGRATIONS) -> None:
    """Refuse now what recording into ``path`` would refuse later, creating and changing nothing:
    a folder that is missing or not writable, a file that is not ours or is from a newer
    xero-inspector. A proxy checks this at start and creates the file only when it records."""
    path = Path(path)
    if not path.exists():
        _check_folder(path)
        return
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a database file")
    try:
        with closing(sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
            _refuse_a_stranger(Database(conn), path)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as e:
        raise _store_error(path, e) from e
    if version > len(migrations):
        raise StoreError(_newer(version, len(migrations)))


def _check_folder(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise StoreError(f"{path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: cannot create it, directory {folder} is not writable")


def _refuse_a_stranger(db: Database, path: Path) -> int:
    """The file's application id (0 for a new, empty file); a file that is someone else's raises."""
    app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and db.table_names()):
        db.conn.close()
        raise StoreError(f"{path}: not a xero-inspector database")
    return app_id


def _newer(version: int, known: int) -> str:
    return f"database schema v{version} is newer than this xero-inspector knows (v{known}); upgrade xero-inspector"


def _store_error(path: Path, e: sqlite3.DatabaseError) -> StoreError:
    if "file is not a database" in str(e):
        return StoreError(f"{path}: not a xero-inspector database (not SQLite at all)")
    return StoreError(f"{path}: {e}")


# The next flow id: past every id in use and every id ever deleted (see _v3_marks).
_NEXT_ID = (
    "SELECT max(coalesce((SELECT max(id) FROM flows), 0), "
    "coalesce((SELECT value FROM meta WHERE key = 'deleted_max_id'), 0)) + 1"
)
_INSERT_FLOW = f"INSERT INTO flows (id, {', '.join(flow_row.COLUMNS)}) VALUES (?{', ?' * len(flow_row.COLUMNS)})"
_INSERT_BODY = "INSERT INTO bodies (flow_id, side, text, data) VALUES (?, ?, ?, ?)"
_FINDING_FIELDS = [c for c in FINDING_COLUMNS if c not in ("id", "flow_id")]
_INSERT_FINDING = (
    f"INSERT INTO findings (flow_id, {', '.join(_FINDING_FIELDS)}) VALUES (?{', ?' * len(_FINDING_FIELDS)})"
)


def insert(
    db: Database, batch: Sequence[Ingested], seen_at: float, recorder: dict[str, Any] | None = None
) -> list[int]:
    """Insert flows, their bodies, findings and any tenants they named in one transaction; the flow ids.

    BEGIN IMMEDIATE takes the write lock first, so the ids handed out here from max(id)
    cannot collide with another writer's (a second proxy on the same file): one
    executemany per table instead of a statement per flow. ``recorder`` is the recorder's row
    counting this batch, saved in the same transaction: a writer killed right after the
    commit leaves a row that is still true, for the next writer to go on from.
    """
    with write_transaction(db):
        ids: list[int] = []
        for i in range(0, len(batch), INSERT_CHUNK):  # bounded parameter lists for a big import
            ids += insert_rows(db, batch[i : i + INSERT_CHUNK], seen_at)
        if recorder is not None:
            db.table("recorders").upsert(recorder, pk="id")
        return ids


@contextmanager
def write_transaction(db: Database) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (Ctrl+C included)."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise


def insert_rows(db: Database, batch: Sequence[Ingested], seen_at: float) -> list[int]:
    """``insert`` inside the caller's write transaction (an import is one transaction of many batches)."""
    conn = db.conn
    first = int(conn.execute(_NEXT_ID).fetchone()[0])
    ids = list(range(first, first + len(batch)))
    conn.executemany(
        _INSERT_FLOW,
        [(fid, *flow_row.values(item.flow)) for fid, item in zip(ids, batch, strict=True)],
    )
    conn.executemany(
        _INSERT_BODY,
        [(fid, b["side"], b["text"], b["data"]) for fid, item in zip(ids, batch, strict=True) for b in item.bodies],
    )
    insert_findings(conn, [(fid, f) for fid, item in zip(ids, batch, strict=True) for f in item.findings])
    tenants = [{**t, "seen_at": seen_at} for item in batch for t in item.tenants]
    if tenants:
        db.table("tenants").upsert_all(tenants, pk="id")
    return ids


def insert_findings(conn: sqlite3.Connection, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """(flow id, finding row) pairs, inside the caller's transaction."""
    conn.executemany(_INSERT_FINDING, [(fid, *(f.get(c) for c in _FINDING_FIELDS)) for fid, f in rows])


def tenant_names(conn: sqlite3.Connection | Database) -> dict[str, str | None]:
    """Every organisation the file names: id -> name (None when Xero gave none)."""
    return {r[0]: r[1] for r in conn.execute("SELECT id, name FROM tenants")}


def save_recorder(db: Database, row: dict[str, Any]) -> None:
    with db.atomic():
        db.table("recorders").upsert(row, pk="id")


def recorded_by(db: Database, recorder_id: str) -> int | None:
    """How many flows a recorder's row says it stored; None for a recorder not seen yet."""
    row = db.execute("SELECT recorded FROM recorders WHERE id = ?", [recorder_id]).fetchone()
    return None if row is None else int(row[0] or 0)
