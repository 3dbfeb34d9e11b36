"""Words for people: counts that agree with their nouns."""

from __future__ import annotations

import re


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 flow', '2 flows', '1,204 flows' (``words`` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


# What a terminal must never be handed from traffic or a file: C0 and C1 controls (ESC starts
# every escape sequence; U+009B is a one-character CSI), DEL, the bidi embeddings, overrides
# and isolates that reorder what is shown (Trojan Source), the line and paragraph separators,
# lone surrogates (the undecodable bytes of a body read with surrogateescape) and the two
# noncharacters XML refuses.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_UNSAFE_KEEP_LINES = re.compile(_UNSAFE.pattern.replace("\x00-\x1f", "\x00-\x08\x0b-\x1f"))


def _picture(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c < 0x20:
        return chr(0x2400 + c)  # ␀ … ␛ … ␟: the Control Pictures block
    if c == 0x7F:
        return "\u2421"  # ␡
    if 0xDC80 <= c <= 0xDCFF:
        return f"\\x{c - 0xDC00:02x}"  # a byte that was not UTF-8, as Python writes it
    if c <= 0xFF:
        return f"\\x{c:02x}"
    return f"\\u{c:04x}"


def safe(text: str, lines: bool = False) -> str:
    """Untrusted text (anything from traffic or a file) made fit for a terminal.

    Controls become visible pictures (ESC is ``␛``), C1 controls, bidi overrides and
    undecodable bytes become ``\\x9b``/``\\u202e``/``\\xff``; nothing else changes, so what was
    sent can still be read. ``lines`` keeps newlines and tabs (a body shown as lines).
    Markup is a separate matter: pass the result to Text, never to a markup parser unescaped.
    """
    return (_UNSAFE_KEEP_LINES if lines else _UNSAFE).sub(_picture, text)


def has_unsafe(text: str, lines: bool = False) -> bool:
    """Whether ``text`` holds anything ``safe`` would change."""
    return (_UNSAFE_KEEP_LINES if lines else _UNSAFE).search(text) is not None


def json_safe(text: str) -> str:
    """JSON written with ensure_ascii=False, with what a terminal would act on written as
    \\u escapes. json.dumps has escaped every control inside strings already, and what is left
    (C1, bidi, separators) only occurs inside strings, so the JSON means the same."""
    return _UNSAFE_KEEP_LINES.sub(_json_escape, text)  # json.dumps escapes newlines in strings itself


def _json_escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    # A stray byte (a surrogate) has no JSON form that strict readers accept: U+FFFD stands in.
    return "\\ufffd" if 0xD800 <= c <= 0xDFFF else f"\\u{c:04x}"
