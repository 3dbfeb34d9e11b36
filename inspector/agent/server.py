"""`xero-inspector mcp`: the tools of ``tools.Tools`` served over MCP with the official SDK.

stdio by default (the agent starts the server itself); streamable HTTP on loopback with --http.
Each tool answers compact JSON; a ``ToolFailure`` becomes the SDK's tool error, so the agent
reads one line (``isError``) and the server goes on serving.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations

from inspector.agent.tools import BODY_CHARS, ToolFailure, Tools
from inspector.utils.text import json_safe

INSTRUCTIONS = """\
A recording of the HTTP calls an app made to Xero's APIs (Practice Manager and WorkflowMax 3.0,
WorkflowMax v1, the Customer API 1.0, Accounting 2.0), each checked against the schema of its
endpoint. Start with list_flows(filter="~failed") or findings_summary(); read one call with
get_flow; check a corrected body with validate before replay. Filters: ~failed, ~c 400,
~api xpm, ~m POST, ~u job.api, ~bq TEXT (request body), ~finding RULE, joined by & | ! and ().
Secrets in headers and forms are fingerprints (sha256:…), never the values."""

READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


def _answer(value: Any) -> str:
    # Compact, and what a terminal would act on (C1, bidi) written as \\u escapes: traffic is hostile.
    return json_safe(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _run(call: Callable[..., Any], *args: Any) -> str:
    try:
        return _answer(call(*args))
    except ToolFailure as e:
        raise ToolError(str(e)) from e


def build(tools: Tools, host: str = "127.0.0.1", port: int = 8000) -> FastMCP:
    server = FastMCP("xero-inspector", instructions=INSTRUCTIONS, host=host, port=port, log_level="WARNING")

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def list_flows(filter: str = "", limit: int = 50, before_id: int | None = None) -> str:
        """The recorded calls matching a filter, newest first, as the browser lists them (time,
        organisation, API, method, call, status, outcome, error and warning counts). Page back with
        before_id=next_before_id; limit is at most 200."""
        return _run(tools.list_flows, filter, limit, before_id)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def get_flow(id: int, bodies: bool = True, body_offset: int = 0, body_limit: int = BODY_CHARS) -> str:
        """One call whole: URL, headers (secrets redacted), bodies, findings with line, column, xpath
        and hint, the Xero error inside the answer, the organisation and the rate limits left. Bodies
        come 20,000 characters at a time; ask again with body_offset=next_offset for the rest."""
        return _run(tools.get_flow, id, bodies, body_offset, body_limit)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def findings_summary(filter: str = "") -> str:
        """The report: failed calls and schema findings grouped by endpoint and rule, with the
        newest examples; the same JSON as `xero-inspector report --format json`."""
        return _run(tools.findings_summary, filter)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def validate(body: str, endpoint: str, response: bool = False) -> str:
        """Check an XML body against the schema of the endpoint it is for, given as the call is made
        ("POST https://api.xero.com/practicemanager/3.0/job.api/add"), or against the answer's schema
        with response=true. Use it on a corrected body before replaying it."""
        return _run(tools.validate, body, endpoint, response)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def endpoints(family: str = "") -> str:
        """The endpoint catalog: family, method, path and the schemas its bodies are checked
        against; family narrows it (xpm-3.0, wfm-3.0, accounting-2.0, network-1.0…)."""
        return _run(tools.endpoints, family)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    def diff(a: int, b: int | None = None) -> str:
        """Compare two recorded calls: status, headers that matter, bodies (XML canonicalised, as a
        unified diff) and the findings gone or new. Without b, flow a against its newest replay."""
        return _run(tools.diff, a, b)

    @server.tool(
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=True),
        structured_output=False,
    )
    def replay(
        id: int,
        token: str | None = None,
        to: str | None = None,
        edits: dict[str, Any] | None = None,
        confirm: bool = False,
    ) -> str:
        """Send a recorded call again, optionally edited (edits: {"body": "<xml…>", "headers": {"Name":
        "value" or null}, "url": "…"}), with token (else the server's) to Xero, or to= the server's
        --to or a loopback origin, then record the answer and say whether it is fixed. POST, PUT and
        DELETE change a real organisation: refused unless the server has --allow-writes, and then
        only with confirm=true."""
        return _run(tools.replay, id, token, to, edits, confirm)

    return server


def serve(tools: Tools, http: tuple[str, int] | None = None) -> None:
    if http is None:
        # The SDK reads stdin on a worker thread that only end of file stops, so Ctrl+C in a
        # terminal would wait for Ctrl+D: leave at once instead. Nothing is left half-done (a
        # replay's record is one SQLite transaction).
        signal.signal(signal.SIGINT, _leave)
        build(tools).run("stdio")
    else:
        build(tools, *http).run("streamable-http")


def _leave(signum: int, frame: object) -> None:
    sys.stderr.write("xero-inspector: interrupted\n")
    os._exit(128 + signum)
