"""Words for people: counts that agree with their nouns."""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 flow', '2 flows', '1,204 flows' (``words`` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"
