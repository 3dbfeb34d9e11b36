"""Fault rules: ``KIND [OPTIONS] [FILTER] [times N | every N | p=X]``, and the answer each makes.

    rate-limit [minute|day|appminute] [retry=S]   429, Retry-After, X-Rate-Limit-Problem, remaining-headers
    token-expired                                 401 TokenExpired problem, WWW-Authenticate
    wrong-tenant                                  403 AuthenticationUnsuccessful problem
    xpm-error ["DESCRIPTION"]                     200 with <Status>ERROR</Status>
    unavailable                                   503
    delay MS                                      Xero's own answer, MS milliseconds late
    drop                                          the connection closed, no answer

The shapes are the mock Xero's (samples/mock_xero), which follow shared/XERO.md: one place
says what Xero sends, whether the mock or a fault rule sends it.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from inspector.ingest.row import FlowRow
from inspector.samples.mock_xero import xpm
from inspector.samples.mock_xero.auth import Allowance, MockConfig, token_expired
from inspector.samples.mock_xero.wire import MockResponse, problem, unauthorized
from inspector.store.query import FilterError, Where, compile_filter

KINDS = ("rate-limit", "token-expired", "wrong-tenant", "xpm-error", "unavailable", "delay", "drop")
_RETRY = {"minute": 60, "appminute": 60, "day": 3600}  # Retry-After's default, in seconds
MAX_DELAY_MS = 600_000

_HEAD_RE = re.compile(r"\s*(?P<kind>[a-z-]{1,20})(?=\s|$)")
_COUNT_RE = re.compile(r"\s(?:times\s+(?P<times>\d{1,9})|every\s+(?P<every>\d{1,9})|p=(?P<p>[0-9.]{1,12}))\s*$")
_PROBLEM_RE = re.compile(r"\s+(?P<problem>minute|day|appminute)(?=\s|$)")
_RETRY_RE = re.compile(r"\s+retry=(?P<retry>\d{1,9})(?=\s|$)")
_DELAY_RE = re.compile(r"\s+(?P<ms>\d{1,9})\s*(?P<unit>ms|s)?(?=\s|$)")
_TEXT_RE = re.compile(r"""\s+(?:"(?P<dq>[^"]{0,500})"|'(?P<sq>[^']{0,500})')""")


class FaultError(ValueError):
    """A rule that does not parse; the message is one line that names the rule."""


@dataclass
class FaultRule:
    kind: str
    filter: str = ""
    where: Where = field(default_factory=lambda: compile_filter(""))
    problem: str = "minute"
    retry_after: int = 60
    delay_ms: int = 0
    description: str = "An error was injected by xero-inspector"
    times: int | None = None  # the first N matches only
    every: int | None = None  # every Nth match
    p: float | None = None  # each match with this probability
    matched: int = 0
    fired: int = 0

    def fires(self, draw: float | None = None) -> bool:
        """Count one match, and say whether the fault happens on it."""
        self.matched += 1
        if self.times is not None:
            hit = self.fired < self.times
        elif self.every is not None:
            hit = self.matched % self.every == 0
        elif self.p is not None:
            hit = (random.random() if draw is None else draw) < self.p
        else:
            hit = True
        self.fired += hit
        return hit

    def describe(self) -> str:
        """The rule as it could be typed again, every option spelt out."""
        options = {
            "rate-limit": f" {self.problem} retry={self.retry_after}",
            "delay": f" {self.delay_ms}",
            "xpm-error": f" {self.description!r}",
        }.get(self.kind, "")
        count = (
            f" times {self.times}"
            if self.times is not None
            else f" every {self.every}"
            if self.every is not None
            else f" p={self.p:g}"
            if self.p is not None
            else ""
        )
        return f"{self.kind}{options} {self.filter}".rstrip() + count


def parse(text: str) -> FaultRule:
    """One rule as typed on the command line or written in a faults file."""
    if len(text) > 2000:
        raise FaultError("fault rule: longer than 2000 characters")
    head = _HEAD_RE.match(text)
    if head is None or head.group("kind") not in KINDS:
        raise FaultError(f"fault rule {text!r}: starts with one of {', '.join(KINDS)}")
    rule = FaultRule(head.group("kind"))
    rest = text[head.end() :]
    if rule.kind == "rate-limit":
        if m := _PROBLEM_RE.match(rest):
            rule.problem, rest = m.group("problem"), rest[m.end() :]
        rule.retry_after = _RETRY[rule.problem]
        if m := _RETRY_RE.match(rest):
            rule.retry_after, rest = int(m.group("retry")), rest[m.end() :]
    elif rule.kind == "delay":
        m = _DELAY_RE.match(rest)
        if m is None:
            raise FaultError(f"fault rule {text!r}: delay takes milliseconds (delay 500, delay 2s)")
        rule.delay_ms = int(m.group("ms")) * (1000 if m.group("unit") == "s" else 1)
        if rule.delay_ms > MAX_DELAY_MS:
            raise FaultError(f"fault rule {text!r}: a delay is at most {MAX_DELAY_MS // 1000} s")
        rest = rest[m.end() :]
    elif rule.kind == "xpm-error" and (m := _TEXT_RE.match(rest)):
        rule.description, rest = m.group("dq") or m.group("sq") or "", rest[m.end() :]
    count = _COUNT_RE.search(" " + rest)
    if count is not None:
        rest = (" " + rest)[: count.start()]
        _count(rule, count, text)
    rule.filter = rest.strip()
    try:
        rule.where = compile_filter(rule.filter)
    except FilterError as e:
        raise FaultError(f"fault rule {text!r}: {e}") from e
    return rule


def _count(rule: FaultRule, m: re.Match[str], text: str) -> None:
    if m.group("times") is not None:
        rule.times = int(m.group("times"))
    elif m.group("every") is not None:
        rule.every = int(m.group("every"))
        if rule.every < 1:
            raise FaultError(f"fault rule {text!r}: every takes 1 or more")
    else:
        try:
            rule.p = float(m.group("p"))
        except ValueError:
            rule.p = -1.0
        if not 0.0 <= rule.p <= 1.0:
            raise FaultError(f"fault rule {text!r}: p= takes a probability from 0 to 1")


def load_file(path: str | Path) -> list[FaultRule]:
    """A TOML file: ``faults = ["rate-limit ~res job.api times 1", ...]``."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise FaultError(f"{path}: {e}") from e
    rules = data.get("faults")
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise FaultError(f'{path}: expected faults = ["KIND FILTER ...", ...]')
    return [parse(r) for r in rules]


def answer(rule: FaultRule, row: FlowRow) -> MockResponse:
    """What Xero would have sent for this fault (every kind but delay and drop, which send none)."""
    if rule.kind == "rate-limit":
        resp = MockResponse(429, b"", _allowance(rule).headers())
    elif rule.kind == "token-expired":
        resp = unauthorized(token_expired(row.token_exp if row.token_exp is not None else int(time.time()) - 60))
    elif rule.kind == "wrong-tenant":
        resp = problem(403, "Forbidden", "AuthenticationUnsuccessful")
    elif rule.kind == "xpm-error":
        resp = xpm.error_response(xpm.api_method(row.method, row.path or ""), rule.description)
    else:  # unavailable
        resp = MockResponse(503, b"Service Unavailable", [("Content-Type", "text/plain")])
    return resp.with_headers([("Xero-Correlation-Id", str(uuid.uuid4()))])


def _allowance(rule: FaultRule) -> Allowance:
    """The remaining-headers of a limit just run out: the named one at 0, the others not."""
    c = MockConfig()
    return Allowance(
        allowed=False,
        minute_remaining=0 if rule.problem == "minute" else c.minute_limit - 1,
        day_remaining=0 if rule.problem == "day" else c.day_limit - 1,
        app_minute_remaining=0 if rule.problem == "appminute" else c.app_minute_limit - 1,
        retry_after=rule.retry_after,
        problem=rule.problem,
    )
