"""Clean predictions, candidates for verifiers and answers (final selection: `select`).

Shared by the reference interpreter and the batched executor: the text-side of a particle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from s3dsl.compiler.ir import VerifierSpec
from s3dsl.compiler.ops.select import choose  # noqa: F401  (select's semantics; re-exported)
from s3dsl.runtime.model import Tokenizer
from s3dsl.verifiers.base import Candidate, Verifier

Extract = Callable[[str], "str | None"]


def clean_prediction(
    gen_tokens: torch.Tensor,
    commit_logp: torch.Tensor,
    clean_tok: torch.Tensor | None,
    clean_logp: torch.Tensor | None,
    mask_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fill every still-masked position with the argmax: (tokens, log-probs, filled) per row."""
    filled = gen_tokens == mask_id
    if clean_tok is None or clean_logp is None:
        return gen_tokens, commit_logp, filled
    tokens = torch.where(filled, clean_tok, gen_tokens)
    logps = torch.where(filled, clean_logp, commit_logp)
    return tokens, logps, filled


def encode_prompt(problem, tokenizer: Tokenizer) -> list[int]:
    """A problem's prompt as ids; a character the model cannot read is the user's error."""
    try:
        # a checkpoint's tokenizer renders the prompt through its chat template (hub_tokenizer.py)
        return getattr(tokenizer, "encode_prompt", tokenizer.encode)(problem.prompt)
    except (ValueError, KeyError) as err:
        from s3dsl.errors import S3DSLError

        raise S3DSLError(f"problem {problem.id}: the model's tokenizer cannot encode the prompt "
                         f"({err})", None, "check the data file against the model") from None


def completion_text(tokens: Sequence[int], tokenizer: Tokenizer) -> tuple[str, int]:
    """The text up to the first end-of-sequence token, and how many tokens that is."""
    tokens = list(tokens)
    try:
        cut = tokens.index(tokenizer.eos_id)
    except ValueError:
        cut = len(tokens)
    return tokenizer.decode(tokens[:cut]), cut


def candidates(
    prompts: Sequence[str],
    tokens: torch.Tensor,
    logps: torch.Tensor,
    filled: torch.Tensor,
    tokenizer: Tokenizer,
) -> list[Candidate]:
    """One candidate per row. Identical rows (same prompt, tokens, log-prob bits and fills: in a
    search, most children of a particle) are decoded once and share one `Candidate` object, so
    `run_verifier` scores them once too."""
    rows = tokens.shape[0]
    if rows == 0:
        return []
    # a row's key: (prompt, its tokens, log-prob and fill bytes), so rows merge only where the
    # verifier reads the same numbers
    if logps.dtype not in (torch.float32, torch.float64):
        logps = logps.float()
    tok_np, lp_np, fill_np = (
        np.ascontiguousarray((t if t.device.type == "cpu" else t.cpu()).numpy())
        for t in (tokens, logps, filled))
    tok_rows, lp_rows, fill_rows = tok_np.tolist(), lp_np.tolist(), fill_np.tolist()
    where: dict[tuple, Candidate] = {}
    out = []
    for r, key in enumerate(zip(prompts, _row_bytes(tok_np), _row_bytes(lp_np),
                                _row_bytes(fill_np))):
        cand = where.get(key)
        if cand is None:
            text, cut = completion_text(tok_rows[r], tokenizer)
            cand = where[key] = Candidate(key[0], text, tuple(lp_rows[r][:cut]),
                                          tuple(fill_rows[r][:cut]))
        out.append(cand)
    return out


def _row_bytes(a: np.ndarray) -> list[bytes]:
    """Each row of a C-contiguous 2-D array as one bytes object, cut in C (a view of each row
    as one opaque item), not by slicing in a Python loop."""
    width = a.itemsize * a.shape[1]
    if not width:
        return [b""] * a.shape[0]
    return a.view(np.dtype((np.void, width))).reshape(-1).tolist()


def answers_of(cands: Sequence[Candidate], extract: Extract) -> list[str | None]:
    """The extracted answer of each candidate, extracting each distinct completion once."""
    memo: dict[str, str | None] = {}
    return [memo[c.completion] if c.completion in memo
            else memo.setdefault(c.completion, extract(c.completion)) for c in cands]


Match = Callable[["str | None", str], bool]


def build_verifier(
    spec: VerifierSpec, extract: Extract | None = None, match: Match | None = None
) -> Verifier:
    """A VerifierSpec made real: one built-in, or their weighted sum. The oracle gets the task's
    own extraction and matching (a sudoku has more than one right grid)."""
    from s3dsl.verifiers import WeightedSum, get_verifier

    def make(builtin: str, options: dict) -> Verifier:
        if builtin.replace("_", "-").lower() == "oracle":
            options = {"extract": extract, "match": match, **options}
        return get_verifier(builtin, **options)

    if len(spec.terms) == 1 and spec.terms[0][0] == 1.0:
        weight, builtin, options = spec.terms[0]
        return make(builtin, dict(options))
    return WeightedSum([(w, make(b, dict(o))) for w, b, o in spec.terms])


ScoreFn = Callable[[Verifier, list[Candidate], "list | None"], Sequence[float]]


def _in_place(verifier: Verifier, cands: list[Candidate], gold: list | None) -> Sequence[float]:
    return verifier.score(cands, gold)


def run_verifier(verifier: Verifier, cands: list[Candidate], gold: Sequence[str],
                 score: ScoreFn | None = None) -> torch.Tensor:
    """Scores of `cands`; a verifier scores each candidate on its own (the `Verifier` contract),
    so candidates that are one object (identical rows, see `candidates`) with the same gold are
    scored once. `score` runs the verifier on those (default: in place; the overlap pass sends
    them to a process pool)."""
    golds = list(gold) if verifier.needs_gold else [None] * len(cands)
    where: dict[tuple[int, str | None], int] = {}
    slot = [where.setdefault((id(c), g), len(where)) for c, g in zip(cands, golds)]
    picked = list(where)  # first occurrences, in order
    by_id = {id(c): c for c in cands}
    values = (score or _in_place)(verifier, [by_id[i] for i, _ in picked],
                                  [g for _, g in picked] if verifier.needs_gold else None)
    scores = torch.tensor(values, dtype=torch.float64)
    return scores if len(picked) == len(cands) else scores[torch.tensor(slot, dtype=torch.long)]


@dataclass(frozen=True)
class ParticleOutcome:
    completion: str
    answer: str | None
    nll: float
    score: float
    tokens: list[int] = field(default_factory=list)  # the generated region, as decoded
    logw: float = 0.0  # the particle's SMC log-weight at the end (0 after a resample)
