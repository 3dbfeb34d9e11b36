"""What of a stored flow may leave the machine, for every export format (HAR, curl, mitmproxy).

Secrets are fingerprinted on the way out, whatever the store kept, unless the user asks to keep
them; what only the store read from a token (its expiry, scopes) travels as plain claims.
"""

from __future__ import annotations

import json
from dataclasses import replace

from inspector.ingest.redact import Redactor
from inspector.store.flows import StoredFlow


def outgoing(flow: StoredFlow, keep_secrets: bool = False) -> StoredFlow:
    """The flow as it may leave the machine: secrets fingerprinted (a no-op on a redacted store)."""
    if keep_secrets:
        return flow
    redactor = Redactor()
    row = flow.row
    identity = row["family"] == "identity"
    new_row = dict(row, url=redactor.url(str(row["url"]), identity))
    bodies = {}
    for side in ("request", "response"):
        headers = flow.headers(side)
        if headers is not None:
            new_row[f"{side}_headers"] = json.dumps(redactor.headers(tuple(headers)))
        body = flow.body(side)
        fmt = row[f"{side}_format"]
        if isinstance(body, str) and fmt in ("form", "form-xml"):
            body = redactor.form(body, identity)
        elif isinstance(body, str) and fmt == "json":
            body = redactor.json(body, identity)
        bodies[side] = body
    if not redactor.count:
        return flow
    return replace(flow, row=new_row, request_body=bodies["request"], response_body=bodies["response"])


def token_claims(row: dict[str, object]) -> dict[str, object] | None:
    """What the store read from the Bearer token before redacting it; an import judges the
    call on these, as the token itself does not travel."""
    if row["token_exp"] is None and not row["token_scopes"] and not row["token_client_id"]:
        return None
    scopes = str(row["token_scopes"] or "").split()
    return {
        "exp": row["token_exp"],
        "scopes": scopes,
        "clientId": row["token_client_id"],
        "userId": row["token_user_id"],
    }
