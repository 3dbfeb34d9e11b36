"""Traffic crafted to hurt whoever inspects it: a HAR a colleague might send.

Every field a person is shown carries terminal escapes (window title, clipboard write, clear
screen), a C1 CSI, a bidi override and console markup: the URL and its query, the method, header
names and values, the reason phrase, a transport error, the organisation's name, Xero's error
text, a body (as sent and inside a finding's message) and a comment.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.helpers import ROOT

TITLE = "PWNED-TITLE"
# OSC 0 sets the window title, OSC 52 writes the clipboard, CSI 2J clears the screen; U+009B is a
# one-byte CSI some terminals honour; U+202E reverses what follows; [bold] is console markup.
PAYLOAD = f"\x1b]0;{TITLE}\x07\x1b]52;c;cHduZWQ=\x07\x1b[2J\u009b31m\u202e[bold red]fake[/]\x07"
XML_PAYLOAD = "\u009b31m\u202e[bold red]fake[/]"  # what XML 1.0 lets through (no C0 controls)
TENANT = "5f1c2e9a-7b3d-4e8f-9a1b-2c3d4e5f6a7b"
# What must never reach a terminal: ESC itself, any C1 control in UTF-8, and bidi overrides.
FORBIDDEN = [b"\x1b", *(bytes([0xC2, b]) for b in range(0x80, 0xA0)), "\u202e".encode(), b"\x07"]


def leaks(data: bytes) -> list[bytes]:
    return [f for f in FORBIDDEN if f in data]


def _entry(
    method: str, url: str, status: int, reason: str, headers: list[tuple[str, str]], body: str
) -> dict[str, Any]:
    return {
        "startedDateTime": "2026-11-30T10:00:00.000Z",
        "time": 12,
        "request": {
            "method": method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "xero-tenant-id", "value": TENANT}, *({"name": n, "value": v} for n, v in headers)],
        },
        "response": {
            "status": status,
            "statusText": reason,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Content-Type", "value": "text/xml; charset=utf-8"}],
            "content": {"mimeType": "text/xml", "text": body},
        },
    }


def har() -> dict[str, Any]:
    xpm = "https://api.xero.com/practicemanager/3.0"
    connections = json.dumps([{"id": "c1", "tenantId": TENANT, "tenantType": "PRACTICEMANAGER", "tenantName": PAYLOAD}])
    entries = [
        _entry("GET", "https://api.xero.com/connections", 200, "OK", [], connections),
        _entry(
            "GET",
            f"{xpm}/job.api/list?detailed=true&x={quote(PAYLOAD)}&raw={PAYLOAD}",
            200,
            f"OK {PAYLOAD}",
            [(f"X-Evil{PAYLOAD}", PAYLOAD), ("Authorization", "Bearer not-a-jwt")],
            f"<Response><Status>ERROR</Status><ErrorDescription>{XML_PAYLOAD}</ErrorDescription></Response>",
        ),
        _entry(
            "POST",
            f"{xpm}/client.api/add",
            200,
            "OK",
            [("Content-Type", "application/xml")],
            f"<Response><Status>OK</Status><Client><Name>{XML_PAYLOAD}</Name></Client></Response>",
        ),
        _entry("GET", f"{xpm}/staff.api/list", 200, PAYLOAD, [], f"not xml {PAYLOAD}\nline two {PAYLOAD}"),
    ]
    # A body whose element holds the payload: the schema's message about it quotes it.
    entries[2]["request"]["postData"] = {
        "mimeType": "application/xml",
        "text": f"<Client><Name>{XML_PAYLOAD}</Name><Bogus>{XML_PAYLOAD}</Bogus></Client>",
    }
    entries.append({**_entry("GET", f"{xpm}/job.api/get/J1", 0, "", [], ""), "_error": f"refused {PAYLOAD}"})
    return {"log": {"version": "1.2", "creator": {"name": "hostile", "version": "1"}, "entries": entries}}


def recording(folder: Path) -> Path:
    """The crafted HAR imported the way a user would, plus a comment; the database's path."""
    src, db = folder / "hostile.har", folder / "hostile.db"
    src.write_text(json.dumps(har()))
    done = subprocess.run(
        [sys.executable, "-m", "inspector", "import", str(src), "--db", str(db)], capture_output=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE flows SET comment = ?", (f"note {PAYLOAD}",))
    return db
