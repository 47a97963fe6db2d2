"""Host work off the hot path: decoding and scoring once per distinct row, answers as ids."""

from __future__ import annotations

import torch

from s3dsl.models.tokenizer import CharTokenizer
from s3dsl.runtime.population import Population
from s3dsl.runtime.scoring import answers_of, candidates, completion_text, run_verifier
from s3dsl.verifiers import get_verifier
from s3dsl.verifiers.base import Candidate


def plain_candidates(prompts, tokens, logps, filled, tok) -> list[Candidate]:
    """The definition: one candidate per row, decoded row by row."""
    out = []
    for prompt, t, lp, fill in zip(prompts, tokens.tolist(), logps.tolist(), filled.tolist()):
        text, cut = completion_text(t, tok)
        out.append(Candidate(prompt, text, tuple(lp[:cut]), tuple(fill[:cut])))
    return out


def rows_with_repeats():
    tok = CharTokenizer("0123456789+-*=#;.")
    torch.manual_seed(0)
    base = torch.randint(3, len(tok), (4, 9))
    base[1, 5] = tok.eos_id
    logps = -torch.rand(4, 9)
    filled = torch.rand(4, 9) > 0.5
    pick = torch.tensor([0, 1, 0, 2, 3, 1, 0, 0])
    prompts = ["1+1=", "1+1=", "1+1=", "1+1=", "2*3=", "1+1=", "2*3=", "1+1="]
    tokens, lp, fill = base[pick].clone(), logps[pick].clone(), filled[pick].clone()
    lp[7, 0] = lp[7, 0] - 1.0  # same tokens as row 0, another log-prob: a different candidate
    return tok, prompts, tokens, lp, fill


def test_candidates_equal_the_row_by_row_definition_and_share_identical_rows():
    tok, prompts, tokens, lp, fill = rows_with_repeats()
    got = candidates(prompts, tokens, lp, fill, tok)
    assert got == plain_candidates(prompts, tokens, lp, fill, tok)
    assert got[0] is got[2]  # same prompt, tokens, log-probs and fills: one object
    assert got[0] is not got[6]  # same rows, another prompt
    assert got[0] is not got[7]  # same tokens, another log-prob
    assert len({id(c) for c in got}) == 6


def test_float64_log_probs_that_float32_cannot_tell_apart_stay_two_candidates():
    """Rows merge on the exact bits the verifier reads, in the log-probs' own dtype."""
    tok, prompts, tokens, lp, fill = rows_with_repeats()
    lp = lp.double()
    lp[2, 0] = lp[0, 0] + 1e-12  # the same float32, another float64
    got = candidates(prompts, tokens, lp, fill, tok)
    assert got == plain_candidates(prompts, tokens, lp, fill, tok)
    assert got[0] is not got[2] and got[0].token_logprobs != got[2].token_logprobs


def test_run_verifier_scores_each_distinct_candidate_once_with_the_same_result():
    tok, prompts, tokens, lp, fill = rows_with_repeats()
    shared = candidates(prompts, tokens, lp, fill, tok)
    seen: list[int] = []

    class Counting:
        name, needs_gold = "counting", True

        def score(self, cands, gold=None):
            seen.append(len(cands))
            return [sum(c.token_logprobs) + len(g) for c, g in zip(cands, gold)]

    gold = ["2", "2", "2", "2", "6", "2", "6", "2"]
    got = run_verifier(Counting(), shared, gold)
    want = torch.tensor([sum(c.token_logprobs) + len(g) for c, g in zip(shared, gold)],
                        dtype=torch.float64)
    assert torch.equal(got, want) and seen == [6]
    heuristic = get_verifier("arith-heuristic")
    plain = plain_candidates(prompts, tokens, lp, fill, tok)
    assert torch.equal(run_verifier(heuristic, shared, gold), run_verifier(heuristic, plain, gold))


def test_answers_extracted_once_per_completion():
    calls: list[str] = []

    def extract(text):
        calls.append(text)
        return text[:1] or None

    cands = [Candidate("p", t, (), ()) for t in ("12", "3", "12", "", "3")]
    assert answers_of(cands, extract) == ["1", "3", "1", None, "3"]
    assert calls == ["12", "3", ""]


def test_population_answers_travel_as_ids_through_gather():
    pop = Population.initial(torch.zeros(3, 5, dtype=torch.long), torch.arange(3), 2)
    assert pop.answers == [None, None, None]
    pop.answers = ["7", None, "7"]
    moved = pop.gather(torch.tensor([2, 2, 1, 0]))
    assert moved.answers == ["7", "7", None, "7"]
    assert moved.answer_id.tolist() == [1, 1, 0, 1]


def test_a_run_decodes_each_final_particle_once(monkeypatch, tiny_model):
    """`select` reads the particles' outcomes and the results reuse them (no stage between)."""
    from s3dsl.compiler.build import build
    from s3dsl.compiler.passes import plan
    from s3dsl.dsl.loader import parse_strategy
    from s3dsl.runtime import executor
    from s3dsl.session import execute
    from s3dsl.tasks.registry import get_task

    decoded: list[int] = []

    def counting(tokens, tok):
        decoded.append(1)
        return completion_text(tokens, tok)

    monkeypatch.setattr(executor, "completion_text", counting)
    program = build(parse_strategy("name: bo3\ndecode:\n  block_length: 8\n  steps: 8\n"
                                   "program:\n  init: expand(3)\n  step: denoise\n"
                                   "  final: select(by=vote)\n"), gen_length=8)
    arith = get_task("arith")
    results, _ = execute(plan(program, 3), tiny_model, arith.problems("test", 2),
                         arith.extract_answer, arith.is_correct)
    assert len(results) == 2 and len(decoded) == 2 * 3


def test_shape_constants_are_made_once_per_shape_with_the_definitions_values():
    from s3dsl.compiler.ops.expand import children

    cpu = torch.device("cpu")
    first, again, other = children(6, 4, 3, cpu), children(6, 4, 3, cpu), children(6, 2, 3, cpu)
    assert all(a is b for a, b in zip(first, again))  # one tensor op each, once per process
    index, child, group = other
    assert index.tolist() == [r for r in range(6) for _ in range(2)]
    assert child.tolist() == [0, 1] * 6 and group.tolist() == [r % 3 for r in index.tolist()]
