"""The exact prompt cache's storage: every layer's prompt keys/values, and a preallocated context
buffer that answer forwards attend to.

An answer forward needs, per layer, the keys/values of its row's prompt followed by its own
answer's. Gathering the prompt part per row and concatenating the answer part, in every layer of
every forward, copies the prompt twice per layer and allocates a fresh [rows, heads, Lp + G, hd]
tensor per layer. Here one buffer per (layer slot) is allocated when a batch's shape first needs
it and reused: the prompt part is filled by one gather for all layers when the rows -> prompts
map changes (not every layer of every forward), and each layer writes only its answer
keys/values into [Lp, Lp + G) before attending, so no stale answer part can be read. Fewer rows
whose map is the start of the buffer's (dedup merged more rows this step: one problem's rows
are all its prompt) use the buffer as it is. (On an accelerator the map is not compared, which
would sync with the host: the prompt part is refilled every forward, one gather for all layers.
Inside `torch.compile` nothing is kept.)

When the whole buffer for every layer would exceed `MAX_BUFFER_BYTES`, a single layer slot is
kept and refilled per layer (no allocation, one gather per layer, still no concatenation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

KeyValues = tuple[torch.Tensor, torch.Tensor]  # [B, heads, L, head_dim] each

MAX_BUFFER_BYTES = 512 << 20  # above this, one layer slot refilled per layer
MEMOS_KEPT = 4  # row counts whose rotary tables and mask a buffer keeps (the oldest goes first)


@dataclass
class ContextBuffer:
    """Keys (even slots) and values (odd slots) [2 * slots, capacity, kv_heads, Lp + G, hd];
    `filled[s]` names what slot s's prompt part holds: (rows version, layer) or None."""

    data: torch.Tensor
    gen: int
    slots: int
    filled: list[tuple[int, int] | None]
    rows: torch.Tensor | None = None  # the rows the prompt parts were filled for
    version: int = 0  # bumped whenever `rows` changes
    memos: dict[int, dict] = field(default_factory=dict)  # per row count b: what depends on
    # rows[:b] alone; reset with `rows`

    @property
    def capacity(self) -> int:
        return self.data.shape[1]


@dataclass(frozen=True)
class Layout:
    """One answer forward's view of the cache for its rows: `context(layer)` gives that layer's
    (keys, values) [B, kv_heads, Lp + G, hd] with the rows' prompt part filled in, and `memo`
    keeps what the forward derives from the rows alone (positions, rotary tables, mask), for
    every later forward over the same rows (or over the same first B rows of the buffer's)."""

    context: Callable[[int], KeyValues]
    memo: dict


@dataclass
class PromptCache:
    """Per-layer keys/values of a batch of left-padded prompts (see `encode_prompt`).

    `kv[i]` are views into `stacked` [2 * layers, P, kv_heads, Lp, hd]; `padded` is False when
    no prompt has padding (then an answer forward needs no attention mask at all)."""

    kv: list[KeyValues]
    mask: torch.Tensor  # [P, Lp] bool, False = padding
    lengths: torch.Tensor  # [P] real prompt lengths
    stacked: torch.Tensor | None = None
    padded: bool = True
    _buffer: ContextBuffer | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.mask.shape[0]

    @classmethod
    def of(cls, kv: list[KeyValues], mask: torch.Tensor) -> PromptCache:
        stacked = torch.stack([t for pair in kv for t in pair])
        views = [(stacked[2 * i], stacked[2 * i + 1]) for i in range(len(kv))]
        return cls(views, mask, mask.sum(-1), stacked, padded=not bool(mask.all()))

    def answer_mask(self, rows: torch.Tensor, gen: int) -> torch.Tensor | None:
        """[B, 1, 1, Lp + G] bool: a row attends to its prompt's real positions and the answer;
        None where no prompt is padded (every position is attended to)."""
        if not self.padded:
            return None
        answer = torch.ones(len(rows), gen, dtype=torch.bool, device=self.mask.device)
        return torch.cat([self.mask[rows], answer], 1)[:, None, None, :]

    def layout(self, rows: torch.Tensor, gen: int) -> Layout:
        """The context buffers for answer rows continuing prompts `rows` (see `Layout`); the
        caller writes a layer's answer part before reading it, and asks for the layers in order,
        each after the previous one is used (with one slot, asking for a layer refills it)."""
        stacked = self._stack()
        layers, b = stacked.shape[0] // 2, rows.shape[0]
        if torch.compiler.is_compiling():  # a captured step: functional, nothing kept
            data = stacked.new_empty((2 * layers, b, *stacked.shape[2:3], stacked.shape[3] + gen,
                                      stacked.shape[4]))
            data[:, :, :, : stacked.shape[3]] = stacked[:, rows]
            return Layout(lambda i: (data[2 * i], data[2 * i + 1]), {})
        buf = self._ensure(b, gen)
        if not self._same_rows(buf, rows):
            buf.rows, buf.version, buf.memos = rows.clone(), buf.version + 1, {}
        if buf.slots == layers and buf.filled[0] != (buf.version, 0):
            held = buf.rows
            buf.data[:, : held.shape[0], :, : stacked.shape[3]] = stacked[:, held]
            buf.filled = [(buf.version, i) for i in range(layers)]
        memo = buf.memos.get(b)
        if memo is None:
            if len(buf.memos) >= MEMOS_KEPT:  # (each holds rotary tables of its rows)
                del buf.memos[next(iter(buf.memos))]
            memo = buf.memos[b] = {}
        return Layout(lambda i: self._layer(buf, i, b), memo)

    @staticmethod
    def _same_rows(buf: ContextBuffer, rows: torch.Tensor) -> bool:
        """Whether `rows` are the first rows the buffer was filled for (all of them, or fewer).
        Comparing contents is a host sync on an accelerator, which the static steps must not
        have: there the prompt part is refilled every forward (still one gather for all layers,
        no per-layer `cat`)."""
        if buf.rows is None or rows.device.type != "cpu" or rows.shape[0] > buf.rows.shape[0]:
            return False
        return torch.equal(buf.rows[: rows.shape[0]], rows)

    def _layer(self, buf: ContextBuffer, layer: int, b: int) -> KeyValues:
        slot = layer % buf.slots
        if buf.filled[slot] != (buf.version, layer):  # only with one slot: refill per layer
            held, lp = buf.rows, self.kv[layer][0].shape[2]
            assert held is not None  # (all rows held: a later call may take more of them)
            buf.data[2 * slot, : held.shape[0], :, :lp] = self.kv[layer][0][held]
            buf.data[2 * slot + 1, : held.shape[0], :, :lp] = self.kv[layer][1][held]
            buf.filled[slot] = (buf.version, layer)
        return buf.data[2 * slot, :b], buf.data[2 * slot + 1, :b]

    def _stack(self) -> torch.Tensor:
        if self.stacked is None:  # a cache built without `of`
            self.stacked = torch.stack([t for pair in self.kv for t in pair])
        return self.stacked

    def _ensure(self, rows: int, gen: int) -> ContextBuffer:
        buf = self._buffer
        if buf is not None and buf.gen == gen and buf.capacity >= rows:
            return buf
        stacked = self._stack()
        two_layers, _, heads, lp, hd = stacked.shape
        capacity = max(rows, buf.capacity if buf is not None and buf.gen == gen else 0)
        per_slot = 2 * capacity * heads * (lp + gen) * hd * stacked.element_size()
        slots = two_layers // 2 if per_slot * two_layers // 2 <= MAX_BUFFER_BYTES else 1
        with torch.inference_mode(False):  # writable under and outside inference mode alike
            data = stacked.new_empty((2 * slots, capacity, heads, lp + gen, hd))
        self._buffer = ContextBuffer(data, gen, slots, [None] * slots)
        return self._buffer
