"""The Breaks addon: hold Xero calls that match a breakpoint until someone lets them go.

A held call waits in its own hook (mitmproxy runs each flow's hooks as a task of their own,
so nothing else waits with it). It is written into the recording (store/pauses.py), where the
browser lists it and answers: resume, with the edits made in the request editor, or kill. A
call nobody answers goes on unchanged after ``inspector_break_timeout`` seconds (the browser's
editor moves that once). What happened, and the body as it was before an edit, goes into the
call's record.

Secrets never reach the file: the held copy is redacted as a stored flow is, and the real
values are put back into whatever the browser sends, by their fingerprints.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http

from inspector.ingest.redact import FINGERPRINT_RE, Redactor
from inspector.proxy import capture
from inspector.proxy.break_rules import BreakError, BreakRule, parse
from inspector.proxy.live_filter import LiveFilter, RuleSet
from inspector.proxy.poller import FilePoller
from inspector.proxy.xero_scope import XeroScope
from inspector.store import controls, pauses
from inspector.store.pauses import Decision, Edit, Held
from inspector.utils.first_traceback import FirstTraceback
from inspector.utils.text import safe

log = logging.getLogger(__name__)

ANSWER_POLL_S = 0.2  # how often a proxy holding calls looks for the browser's answer
MAX_TIMEOUT_S = 3600
TIMED_OUT = "timeout"  # a Decision state of our own: nobody answered in time
GONE = "gone"  # the row went (the file was replaced, the proxy is stopping)


class _Remembering(Redactor):
    """Redacts like the store does, and remembers which secret each fingerprint stands for."""

    def __init__(self, keep_secrets: bool) -> None:
        super().__init__(keep_secrets)
        self.secrets: dict[str, str] = {}

    def _fp(self, value: str) -> str:
        out = super()._fp(value)
        if out != value:
            self.secrets[out] = value
        return out

    def restore(self, text: str) -> str:
        return FINGERPRINT_RE.sub(lambda m: self.secrets.get(m.group(0), m.group(0)), text)

    def restore_bytes(self, data: bytes) -> bytes:
        if not self.secrets:
            return data
        return self.restore(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


class Breaks:
    """Holds Xero calls that match ``inspector_break`` (or the browser's breakpoints)."""

    def __init__(self, scope: XeroScope) -> None:
        self.scope = scope
        self.active: RuleSet[BreakRule] = RuleSet()
        self._live = LiveFilter(scope)
        self._first = FirstTraceback()
        self._waiting: dict[int, asyncio.Future[Decision]] = {}
        self._deadlines: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller = FilePoller("breaks-poller", self._read, self._interval, self._tick)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "inspector_break",
            Sequence[str],
            [],
            "Breakpoints, each '[response|both] FILTER': matching Xero calls wait for the browser.",
        )
        loader.add_option("inspector_break_timeout", int, 60, "Seconds a held call waits before it goes on unchanged.")

    def configure(self, updated: set[str]) -> None:
        if "inspector_break_timeout" in updated:
            timeout = ctx.options.inspector_break_timeout
            if not 1 <= timeout <= MAX_TIMEOUT_S:
                why = f"inspector_break_timeout: {timeout} is not between 1 and {MAX_TIMEOUT_S}"
                raise exceptions.OptionsError(why)
        if "inspector_break" not in updated:
            return
        try:
            rules = [parse(text) for text in ctx.options.inspector_break]
        except BreakError as e:
            raise exceptions.OptionsError(f"inspector_break: {e}") from e
        for rule in rules:
            log.info("breakpoint: %s", safe(rule.describe()))
        self.active = self.active.with_options(rules)

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()
        db = getattr(ctx.options, "inspector_db", "")
        if db:
            self._poller.start(Path(db))

    def done(self) -> None:
        for pause_id in list(self._waiting):  # stopping: nothing stays held
            self._settle(pause_id, Decision(GONE, 0.0, Edit()))
        self._poller.stop()
        self._live.close()

    # -- what the poller thread does -------------------------------------------------------

    def _interval(self) -> float:
        return ANSWER_POLL_S if self._deadlines else controls.POLL_S

    def _read(self, conn: sqlite3.Connection) -> None:
        self.take(controls.breaks(conn))
        ids = list(self._deadlines)
        if not ids:
            return
        rows = pauses.decisions(conn, ids)
        for pause_id in ids:
            decision = rows.get(pause_id)
            if decision is None:
                self._settle(pause_id, Decision(GONE, 0.0, Edit()))
            elif decision.state != pauses.PAUSED:
                self._settle(pause_id, decision)
            else:
                self._deadlines[pause_id] = decision.deadline

    def _tick(self) -> None:
        """Deadlines are kept here too, so a file that cannot be read never holds a call longer."""
        now = time.time()
        for pause_id, deadline in list(self._deadlines.items()):
            if now >= deadline:
                self._settle(pause_id, Decision(TIMED_OUT, deadline, Edit()))

    def _settle(self, pause_id: int, decision: Decision) -> None:
        self._deadlines.pop(pause_id, None)
        fut, loop = self._waiting.get(pause_id), self._loop
        if fut is not None and loop is not None:
            loop.call_soon_threadsafe(_set_result, fut, decision)

    def take(self, texts: list[str]) -> None:
        """The browser's rules, when they changed."""
        if (changed := self.active.with_browser(texts, parse, "breakpoints")) is not None:
            self.active = changed

    # -- hooks -------------------------------------------------------------------------------

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is None and self._holds(flow, "request"):
            await self._pause(flow, "request")

    async def response(self, flow: http.HTTPFlow) -> None:
        # An answer a fault rule made is ours, not Xero's: nothing to hold it for.
        ours = flow.metadata.get(capture.INJECTED) not in (None, "delay")
        if not ours and self._holds(flow, "response"):
            await self._pause(flow, "response")

    def _holds(self, flow: http.HTTPFlow, side: str) -> bool:
        active = self.active
        if not any(r.holds(side) for r in active.rules):
            return False
        if not self.scope.hosts.matches(urlsplit(capture.asked_url(flow)).hostname or ""):
            return False
        if not getattr(ctx.options, "inspector_db", ""):
            return False
        try:
            hits, _ = self._live.matches(flow, active.wheres, active.needs_body)
        except Exception as e:  # a breakpoint must never break the traffic
            log.error("breakpoints not applied to %s: %s", capture.where(flow), e, exc_info=self._first(e))
            return False
        return any(hit and rule.holds(side) for rule, hit in zip(active.rules, hits, strict=True))

    async def _pause(self, flow: http.HTTPFlow, side: str) -> None:
        db, timeout = ctx.options.inspector_db, float(ctx.options.inspector_break_timeout)
        redactor = _Remembering(ctx.options.inspector_keep_secrets)
        held = self._held(flow, side, redactor, timeout)
        try:
            pause_id = await asyncio.to_thread(pauses.hold, db, held, os.getpid())
        except Exception as e:  # the call goes on untouched rather than wait for nobody
            log.error("breakpoint: %s could not be held: %s", capture.where(flow), e, exc_info=self._first(e))
            return
        started = time.monotonic()
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting[pause_id] = fut
        self._deadlines[pause_id] = time.time() + timeout
        self._poller.wake()
        log.info("paused at a breakpoint: %s %s (resumes unchanged in %.0f s)", side, capture.where(flow), timeout)
        try:
            # The editor may move the deadline once, a whole timeout on; past that, go on regardless.
            decision = await asyncio.wait_for(fut, 2 * timeout + 5)
        except TimeoutError:
            decision = Decision(TIMED_OUT, 0.0, Edit())
        finally:
            self._waiting.pop(pause_id, None)
            self._deadlines.pop(pause_id, None)
        try:
            await asyncio.to_thread(pauses.release, db, [pause_id])
        except Exception as e:
            log.warning("breakpoint: the held copy of %s stays in the file: %s", capture.where(flow), e)
        try:
            what = self._apply(flow, side, held, decision, redactor)
        except Exception as e:  # the call still goes on, as far as it was changed
            log.error("breakpoint: edits to %s not applied: %s", capture.where(flow), e, exc_info=self._first(e))
            what = f"resumed; the edits could not be applied ({type(e).__name__})"
        said = f"{side} {what} after {time.monotonic() - started:.1f} s"
        flow.metadata.setdefault(capture.PAUSED, []).append(said)
        log.info("breakpoint: %s %s", capture.where(flow), said)

    def _held(self, flow: http.HTTPFlow, side: str, redactor: _Remembering, timeout: float) -> Held:
        req, url = flow.request, capture.asked_url(flow)
        parts = urlsplit(url)
        identity = self.scope.catalog.classify(req.method, parts.hostname or "", parts.path).family == "identity"
        part: http.Message = req if side == "request" else _response(flow)
        headers = redactor.headers(capture.header_pairs(part.headers.fields))
        body = part.get_content(strict=False)
        if body is not None:
            body = _redact_body(redactor, body, part.headers.get("content-type", ""), identity)
        status = flow.response.status_code if side == "response" and flow.response is not None else None
        return Held(side, req.method, redactor.url(url, identity), headers, body, status, timeout)

    def _apply(self, flow: http.HTTPFlow, side: str, held: Held, d: Decision, redactor: _Remembering) -> str:
        """Carry out the browser's answer; what happened, in a few words for the record."""
        if d.state == pauses.KILL:
            flow.kill()
            return "killed"
        if d.state == TIMED_OUT:
            return "resumed unchanged at the timeout"
        if d.state != pauses.RESUME:
            return "resumed unchanged (the proxy stopped or the file went)"
        e, changed = d.edit, []
        part: http.Message = flow.request if side == "request" else _response(flow)
        if side == "request" and e.method and e.method.upper() != held.method:
            flow.request.method = e.method.upper()
            changed.append("method")
        if side == "request" and e.url and e.url != held.url:
            flow.request.url = redactor.restore(e.url)
            changed.append("URL")
        if e.headers is not None and tuple(e.headers) != held.headers:
            part.headers = http.Headers([(_wire(k), _wire(redactor.restore(v))) for k, v in e.headers])
            changed.append("headers")
        if e.body is not None and e.body != (held.body or b""):
            key = capture.ORIGINAL_REQUEST if side == "request" else capture.ORIGINAL_RESPONSE
            flow.metadata[key] = part.raw_content
            part.content = redactor.restore_bytes(e.body)
            changed.append("body")
        if side == "request" and {"URL", "headers"} & set(changed):
            capture.snapshot_request(flow)  # the record shows what went to Xero, not the app's first try
        return f"edited ({', '.join(changed)})" if changed else "resumed"


def _set_result(fut: asyncio.Future[Decision], decision: Decision) -> None:
    if not fut.done():
        fut.set_result(decision)


def _response(flow: http.HTTPFlow) -> http.Response:
    assert flow.response is not None  # the response hook runs with one
    return flow.response


def _wire(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _redact_body(redactor: Redactor, body: bytes, content_type: str, identity: bool) -> bytes:
    """Form and JSON bodies carry credentials (the token endpoint's); XML ones do not."""
    ct = content_type.lower()
    if "x-www-form-urlencoded" not in ct and "json" not in ct:
        return body
    text = body.decode("utf-8", "surrogateescape")
    out = redactor.json(text, identity) if "json" in ct else redactor.form(text, identity)
    return out.encode("utf-8", "surrogateescape")
