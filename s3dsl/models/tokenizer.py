"""Character-level tokenizer shared by the built-in models.

Ids: 0 = PAD, 1 = MASK, 2 = EOS, then one id per character. A completion is the text up to the
first EOS; during training the generated region is the target followed by EOS up to its end.
"""

from __future__ import annotations

SPECIALS = ("<pad>", "<mask>", "<eos>")
DEFAULT_CHARS = "0123456789+-*=#;."
MASK_TEXT = "?"  # how a still-masked position is shown (not a vocabulary character)


class CharTokenizer:
    """One token per character; unknown characters are an error, not silently dropped."""

    pad_id = 0
    mask_id = 1
    eos_id = 2

    def __init__(self, chars: str = DEFAULT_CHARS):
        if len(set(chars)) != len(chars) or MASK_TEXT in chars:
            raise ValueError("tokenizer characters must be distinct and must not contain '?'")
        self.chars = chars
        self._to_id = {ch: i + len(SPECIALS) for i, ch in enumerate(chars)}
        # id -> text: PAD shows as nothing, MASK as '?', EOS ends the text (see decode)
        self._text = ["", MASK_TEXT, ""] + list(chars)
        self._by_id = dict(enumerate(self._text))  # (numpy and Python ints hash alike)

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._to_id[ch] for ch in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the tokenizer") from None

    def decode(self, ids: list[int]) -> str:
        """Text up to the first EOS; PAD is skipped, MASK shows as '?'; an id outside the
        vocabulary shows as nothing. (A search decodes every candidate at every step: one
        dict lookup per id, no per-id conversion or bounds test.)"""
        ids = list(ids)
        if ids and type(ids[0]) is not int:  # tensor or numpy elements
            ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        text = self._by_id
        return "".join([text.get(i, "") for i in ids])
