"""Small, cached text helpers shared by the verifiers (they run on every candidate every step)."""

from __future__ import annotations

NGRAM = 12


def repeated_ngram_share(text: str, n: int = NGRAM) -> float:
    """Share of the character n-grams of `text` that already occurred earlier in it.

    Legitimate short chains rarely repeat 12 characters; loops such as `28;28;28;28` or a
    duplicated equation do, so this is a cheap stand-in for "long repeated substrings".
    """
    total = len(text) - n + 1
    if total <= 1:
        return 0.0
    seen: set[str] = set()
    repeats = 0
    for i in range(total):
        gram = text[i : i + n]
        if gram in seen:
            repeats += 1
        else:
            seen.add(gram)
    return repeats / total


def answer_after_hash(completion: str) -> str | None:
    """Default answer extraction: the text after the last `#`, else the whole stripped text."""
    text = completion.strip()
    if "#" in text:
        text = text.rsplit("#", 1)[1].strip()
    return text or None
