"""The filter language, compiled to SQL over ``flows``: mitmproxy's, plus Xero predicates.

    ~m GET          method              ~u job.api      URL (also a bare word)
    ~d api.xero     host                ~c 400          status code
    ~h / ~hq / ~hs  header text (either side / request / response)
    ~b / ~bq / ~bs  body text, full-text search (either / request / response)
    ~t xml          content type        ~q ~s ~e        no response / has a response / transport error
    ~api xpm        family              ~res job.api    resource          ~op add   operation
    ~tenant NAME|ID organisation        ~v [RULE]       has findings (of a rule)
    ~err            an error answer: HTTP 4xx/5xx, or a Xero error inside a 2xx (not 429s)
    ~failed         every failed call: ~err, 429s, transport errors, retired endpoints
    ~rl             rate limited        ~replay         a replay
    ~marked         marked              ~comment TEXT   has a comment (containing TEXT)
    ~injected       shaped by a fault rule (proxy --fault), not by Xero
    ~paused         held at a breakpoint (proxy --break)
    !  &  |  ( )    not, and (also by juxtaposition), or, grouping

Patterns are case-insensitive; with regex characters in them they are regular expressions
(mitmproxy's rule), otherwise substring matches that SQLite can serve from its indexes.

A regular expression runs with a time limit on every value it is matched against (the
``regex`` module's timeout; it also lets go of the GIL while it matches, so a browser stays
responsive while a worker matches): ``(a+)+$`` against a long URL stops the query with
"filter stopped after 2 s: simplify it" instead of running for ever.
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import regex

from inspector.ingest.findings import RULES
from inspector.ingest.xero_facts import FAILING_RULES

_REGEX_CHARS = set("^$*+?{}[]\\|()")
_TOKEN_RE = re.compile(
    r"""\s*(?:(?P<op>[()!&|])|(?P<filter>~[a-z]+)|"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<word>[^\s()!&|"'][^\s()!&|]*))"""
)


REGEX_BUDGET_S = 2.0  # for one value: a URL, a header block, a body of a few MB takes milliseconds
STOPPED = f"filter stopped after {REGEX_BUDGET_S:g} s: simplify it"


class FilterError(ValueError):
    """A filter that does not parse, or one that ran past its budget; the message says why."""


def stopped(e: sqlite3.OperationalError) -> FilterError | None:
    """The error to show for a query that failed because a regular expression ran out of time.

    REGEXP is the only function we give SQLite, and it raises only on a timeout; SQLite reports
    any exception from it as this one error."""
    return FilterError(STOPPED) if "user-defined function raised exception" in str(e) else None


@dataclass(frozen=True, slots=True)
class Where:
    sql: str
    params: tuple[object, ...] = ()
    # The same condition, with the same parameters, written to test one known row cheaply:
    # a body search as ``id IN (every match)`` costs its whole match list, whichever row asks.
    row_sql: str | None = None

    @property
    def row(self) -> str:
        return self.row_sql or self.sql


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # op | filter | word
    text: str
    pos: int


def _regex(pattern: str) -> regex.Pattern[str]:
    # V0: the syntax and behaviour of Python's re, which the filter language documents.
    # A pattern like "[[" compiles with a FutureWarning: it would print a second line on the CLI.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return regex.compile(pattern, regex.IGNORECASE | regex.V0)


def install(conn: sqlite3.Connection) -> None:
    """Give a connection the REGEXP function that regex patterns compile to."""
    cache: dict[str, regex.Pattern[str]] = {}

    def regexp(pattern: str, value: object) -> bool:
        if value is None:
            return False
        rx = cache.get(pattern)
        if rx is None:
            rx = cache[pattern] = _regex(pattern)
        # TimeoutError past the budget: SQLite stops the query (see ``stopped``).
        return rx.search(str(value), timeout=REGEX_BUDGET_S, concurrent=True) is not None

    conn.create_function("regexp", 2, regexp, deterministic=True)


def compile_filter(expr: str | None) -> Where:
    """SQL for ``WHERE`` over the ``flows`` table; an empty filter matches everything."""
    if not expr or not expr.strip():
        return Where("1")
    parser = _Parser(_tokens(expr), expr)
    where = parser.parse()
    return where


def _tokens(expr: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if m is None or m.end() == pos:
            rest = expr[pos:].lstrip()
            if rest == "":
                break
            at = len(expr) - len(rest) + 1
            if rest[0] in "\"'":
                raise FilterError(f"bad filter at column {at}: the quote {rest[0]} opened there is never closed")
            raise FilterError(f"bad filter at column {at}: cannot read {rest[:10]!r}")
        start = m.start(m.lastgroup) if m.lastgroup else pos
        if m.group("op"):
            out.append(_Token("op", m.group("op"), start))
        elif m.group("filter"):
            out.append(_Token("filter", m.group("filter"), start))
        else:
            quoted = m.group("dq") if m.group("dq") is not None else m.group("sq")
            text = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else m.group("word")
            out.append(_Token("word", text, start))
        pos = m.end()
    return out


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _match(columns: tuple[str, ...], pattern: str) -> Where:
    if _REGEX_CHARS & set(pattern):
        try:
            _regex(pattern)
        except regex.error as e:
            raise FilterError(f"bad regular expression {pattern!r}: {e}") from e
        return Where("(" + " OR ".join(f"regexp(?, {c})" for c in columns) + ")", (pattern,) * len(columns))
    return Where("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")", (_like(pattern),) * len(columns))


def _body(side: str | None, pattern: str) -> Where:
    side_sql = " AND side = ?" if side else ""
    side_params: tuple[object, ...] = (side,) if side else ()
    if _REGEX_CHARS & set(pattern):
        inner = _match(("text",), pattern)
        return Where(f"id IN (SELECT flow_id FROM bodies WHERE {inner.sql}{side_sql})", (*inner.params, *side_params))
    # Full-text search: a phrase query over the FTS5 index the store keeps in step.
    phrase = '"' + pattern.replace('"', '""') + '"'
    matches = "rowid IN (SELECT rowid FROM bodies_fts WHERE bodies_fts MATCH ?)"
    return Where(
        f"id IN (SELECT flow_id FROM bodies WHERE {matches}{side_sql})",
        (phrase, *side_params),
        f"EXISTS (SELECT 1 FROM bodies WHERE bodies.{matches} AND bodies.flow_id = flows.id{side_sql})",
    )


def _status(value: str) -> Where:
    if not value.isdigit():
        raise FilterError(f"~c takes a status code, not {value!r}")
    return Where("status = ?", (int(value),))


def _tenant(value: str) -> Where:
    return Where(
        "(tenant_id = ? OR tenant_id IN (SELECT id FROM tenants WHERE name LIKE ? ESCAPE '\\'))", (value, _like(value))
    )


def _findings(rule: str | None) -> Where:
    if rule is None:
        return Where("(errors > 0 OR warnings > 0)")
    return Where("EXISTS (SELECT 1 FROM findings WHERE findings.flow_id = flows.id AND findings.rule = ?)", (rule,))


_FAILING_RULES = ", ".join(f"'{r}'" for r in sorted(FAILING_RULES))


def failure_sql(table: str = "flows") -> str:
    """SQL for why a call failed (``xero_facts.failure``: its outcome when not ok, else the failing
    rule it broke), NULL when it did not; ``table`` names the ``flows`` row."""
    return (
        f"coalesce(nullif({table}.outcome, 'ok'), (SELECT min(findings.rule) FROM findings "
        f"WHERE findings.flow_id = {table}.id AND findings.rule IN ({_FAILING_RULES})))"
    )


# An answer a fault rule made (proxy --fault) is not Xero's; a delayed one still is.
INJECTED_ANSWER = "(injected IS NOT NULL AND injected != 'delay')"


def failed_sql(table: str = "flows") -> str:
    """SQL true for a failed call (the same definition, written so an index can serve it)."""
    return (
        f"({table}.outcome != 'ok' OR EXISTS (SELECT 1 FROM findings "
        f"WHERE findings.flow_id = {table}.id AND findings.rule IN ({_FAILING_RULES})))"
    )


_WITH_ARG: dict[str, Callable[[str], Where]] = {
    "~m": lambda v: _match(("method",), v),
    "~u": lambda v: _match(("url",), v),
    "~d": lambda v: _match(("host",), v),
    "~c": _status,
    "~h": lambda v: _match(("request_headers", "response_headers"), v),
    "~hq": lambda v: _match(("request_headers",), v),
    "~hs": lambda v: _match(("response_headers",), v),
    "~t": lambda v: _match(("request_content_type", "response_content_type"), v),
    "~b": lambda v: _body(None, v),
    "~bq": lambda v: _body("request", v),
    "~bs": lambda v: _body("response", v),
    "~api": lambda v: Where("(family = ? OR family LIKE ? ESCAPE '\\')", (v, v.replace("_", "\\_") + "-%")),
    "~res": lambda v: Where("resource LIKE ? ESCAPE '\\'", (v.replace("_", "\\_").replace("%", "\\%"),)),
    "~op": lambda v: Where("operation = ?", (v,)),
    "~tenant": _tenant,
    "~comment": lambda v: _match(("comment",), v),
}
_NO_ARG: dict[str, Where] = {
    "~q": Where("status IS NULL"),
    "~s": Where("status IS NOT NULL"),
    "~e": Where("error IS NOT NULL"),
    "~err": Where("(outcome IN ('api-error', 'http-error') OR api_error IS NOT NULL)"),
    "~failed": Where(failed_sql()),
    "~rl": Where("outcome = 'rate-limited'"),
    "~replay": Where("(source = 'replay' OR replay_of IS NOT NULL)"),
    "~marked": Where("marked"),
    "~injected": Where("injected IS NOT NULL"),
    "~paused": Where("paused IS NOT NULL"),
    "~all": Where("1"),
}
FILTERS = sorted([*_WITH_ARG, *_NO_ARG, "~v"])

# The filter language as a user reads it (the browser's ? help): (what to type, what it finds).
HELP: tuple[tuple[str, str], ...] = (
    ("~failed", "every failed call: HTTP 4xx/5xx, a Xero error in"),
    ("", "a 200, a 429, no answer, a retired API (WFM v1)"),
    ("~err", "Xero answered with an error: 4xx/5xx (not 429),"),
    ("", "or <Status>ERROR</Status> inside a 200"),
    ("~rl", "rate limited (429)"),
    ("~e", "no answer at all (a transport error)"),
    ("~v [RULE]", "has findings, or findings of one rule (~v xsd)"),
    ("~api xpm", "API family: xpm, wfm, network, accounting…"),
    ("~res job.api", "resource"),
    ("~op add", "operation"),
    ("~tenant NAME|ID", "organisation, by name or id"),
    ("~m POST", "method"),
    ("~u job.api", "URL; a bare word does the same"),
    ("~d api.xero", "host"),
    ("~c 400", "status code"),
    ("~b TEXT", "body text, either side (~bq request, ~bs answer)"),
    ("~h TEXT", "headers, either side (~hq request, ~hs answer)"),
    ("~t xml", "content type"),
    ("~q  ~s", "not answered yet; answered"),
    ("~replay", "a replay (r, e, or xero-inspector replay)"),
    ("~marked", "flows you marked (m)"),
    ("~injected  ~paused", "a fault rule's answer; held at a breakpoint"),
    ("~comment TEXT", "has a comment (containing TEXT)"),
    ("~all", "everything"),
    ("!  &  |  ( )", "not, and (a space does too), or, grouping"),
)
HELP_NOTES = (
    'Case does not matter. Quote a pattern with spaces: ~b "Invalid client". '
    "A pattern with any of ^ $ * + ? { } [ ] \\ | ( ) in it is a regular expression; "
    "any other matches anywhere in the text."
)


class _Parser:
    def __init__(self, tokens: list[_Token], expr: str) -> None:
        self.tokens = tokens
        self.expr = expr
        self.i = 0

    def parse(self) -> Where:
        where = self._or()
        if self.i < len(self.tokens):
            tok = self.tokens[self.i]
            raise FilterError(f"bad filter at column {tok.pos + 1}: unexpected {tok.text!r}")
        return where

    def _peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> _Token:
        tok = self._peek()
        if tok is None:
            raise FilterError(f"bad filter: {self.expr!r} ends too early")
        self.i += 1
        return tok

    def _or(self) -> Where:
        parts = [self._and()]
        while (tok := self._peek()) is not None and tok.text == "|" and tok.kind == "op":
            self.i += 1
            parts.append(self._and())
        return _join(" OR ", parts)

    def _and(self) -> Where:
        parts = [self._unary()]
        while (tok := self._peek()) is not None and not (tok.kind == "op" and tok.text in "|)"):
            if tok.kind == "op" and tok.text == "&":
                self.i += 1
            parts.append(self._unary())
        return _join(" AND ", parts)

    def _unary(self) -> Where:
        tok = self._take()
        if tok.kind == "op" and tok.text == "!":
            inner = self._unary()
            # IFNULL: a flow with no status (no tenant, ...) is outside ~c 400, so inside !~c 400;
            # SQL's NULL would leave it out of both.
            return Where(
                f"NOT IFNULL({inner.sql}, 0)", inner.params, inner.row_sql and f"NOT IFNULL({inner.row_sql}, 0)"
            )
        if tok.kind == "op" and tok.text == "(":
            inner = self._or()
            close = self._peek()
            if close is None or close.text != ")":
                raise FilterError(f"bad filter at column {tok.pos + 1}: '(' is never closed")
            self.i += 1
            return Where(f"({inner.sql})", inner.params, inner.row_sql and f"({inner.row_sql})")
        if tok.kind == "op":
            raise FilterError(f"bad filter at column {tok.pos + 1}: unexpected {tok.text!r}")
        if tok.kind == "word":
            return _match(("url",), tok.text)
        return self._filter(tok)

    def _filter(self, tok: _Token) -> Where:
        name = tok.text
        if name in _NO_ARG:
            return _NO_ARG[name]
        if name == "~v":  # the rule is optional: take the next word only if it names a rule
            nxt = self._peek()
            if nxt is not None and nxt.kind == "word" and nxt.text in RULES:
                self.i += 1
                return _findings(nxt.text)
            return _findings(None)
        if name in _WITH_ARG:
            arg = self._peek()
            if arg is None or arg.kind != "word":
                raise FilterError(f"bad filter at column {tok.pos + 1}: {name} needs a value")
            self.i += 1
            return _WITH_ARG[name](arg.text)
        raise FilterError(f"bad filter at column {tok.pos + 1}: unknown filter {name}; known: {' '.join(FILTERS)}")


def _join(op: str, parts: list[Where]) -> Where:
    if len(parts) == 1:
        return parts[0]
    row = "(" + op.join(p.row for p in parts) + ")" if any(p.row_sql for p in parts) else None
    return Where("(" + op.join(p.sql for p in parts) + ")", tuple(x for p in parts for x in p.params), row)
