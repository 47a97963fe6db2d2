"""Verifiers: orderings on hand-built clean predictions, registry lookups and weighted sums."""

from __future__ import annotations

import math

import pytest

from s3dsl.dsl.errors import S3DSLError
from s3dsl.verifiers import (
    VERIFIERS,
    ArithHeuristic,
    Candidate,
    Confidence,
    Oracle,
    SudokuConstraints,
    WeightedSum,
    get_verifier,
)

PROMPT = "23+7*4-5="
GOOD = "7*4=28;23+28=51;51-5=46#46"


def cand(prompt: str, completion: str, logprob: float = -0.1, n: int | None = None) -> Candidate:
    n = len(completion) if n is None else n
    return Candidate(prompt, completion, (logprob,) * n, (False,) * n)


def arith(completion: str, prompt: str = PROMPT, **kw: float) -> float:
    return ArithHeuristic(**kw).score([cand(prompt, completion, n=30)])[0]


# ---------------------------------------------------------------- arith-heuristic


def test_arith_correct_chain_scores_near_max() -> None:
    v = ArithHeuristic()
    s, a, c, n = v.signals(cand(PROMPT, GOOD))
    assert (s, a, n) == (1.0, 1.0, 1.0)
    assert c == pytest.approx(math.exp(-0.1))
    assert v.max_score == 4.0
    assert v.score([cand(PROMPT, GOOD, logprob=0.0)]) == [4.0]


def test_arith_ordering_correct_wrong_garbage() -> None:
    correct = arith(GOOD)
    one_wrong = arith("7*4=27;23+27=50;50-5=45#45")
    wrong_last = arith("7*4=28;23+28=51;51-5=47#47")
    garbage = arith("x9#;;3=q")
    assert correct > one_wrong > garbage
    assert correct > wrong_last > garbage
    assert arith("") < garbage


def test_arith_partial_and_malformed() -> None:
    correct = arith(GOOD)
    no_hash = arith("7*4=28;23+28=51;51-5=46")
    incomplete = arith("7*4=28#28")
    answer_mismatch = arith("7*4=28;23+28=51;51-5=46#4")
    double_hash = arith(GOOD + "#46")
    for partial in (no_hash, incomplete, answer_mismatch, double_hash):
        assert arith("") < partial < correct
    assert arith("7*4=28;23+28=51;51-5=46#") < correct


def test_arith_chain_must_connect_to_prompt() -> None:
    unrelated = arith("1+1=2;2+1=3;3+1=4#4")  # correct equations, not from the prompt
    assert unrelated < arith("7*4=27;23+27=50;50-5=45#45")
    s, a, _, _ = ArithHeuristic().signals(cand(PROMPT, "1+1=2;2+1=3;3+1=4#4"))
    assert s == 1.0 and a < 0.5


def test_arith_repetition_is_degenerate() -> None:
    v = ArithHeuristic()
    repeated = "7*4=28;7*4=28;7*4=28;23+28=51;51-5=46#46"
    assert v.signals(cand(PROMPT, repeated))[3] < 1.0
    assert arith(repeated) < arith(GOOD)
    assert v.signals(cand(PROMPT, "28;28;28;28;28;28;28;28"))[3] < 0.5
    assert v.signals(cand(PROMPT, ""))[3] == 0.0
    # a gold chain may legitimately repeat a step: `8*1=8` twice, each from fresh operands
    s, a, _, n = v.signals(cand("8*1*1+63=", "8*1=8;8*1=8;8+63=71#71"))
    assert (s, a, n) == (1.0, 1.0, 1.0)
    assert v.signals(cand("8*1*1+63=", "8*1=8;8*1=8;8*1=8;8+63=71#71"))[3] < 1.0


def test_arith_confidence_signal_orders() -> None:
    sure = ArithHeuristic().score([cand(PROMPT, GOOD, logprob=-0.01)])[0]
    unsure = ArithHeuristic().score([cand(PROMPT, GOOD, logprob=-3.0)])[0]
    assert sure > unsure


def test_arith_weights_and_range() -> None:
    assert arith(GOOD, structure=0, arithmetic=1, confidence=0, nondegenerate=0) == 1.0
    assert 0.0 <= arith("zzz") <= 4.0
    with pytest.raises(ValueError):
        ArithHeuristic(structure=-1.0)


def test_arith_prompt_forms() -> None:
    v = ArithHeuristic(confidence=0)
    assert v.score([cand("Compute: 2*3=", "2*3=6#6")]) == [3.5]
    assert v.score([cand("-3+4=", "-3+4=1#1")]) == [3.5]
    assert v.score([cand("5=", "#5")]) == [3.5]
    assert v.score([cand("8/2+1=", "8/2=4;4+1=5#5")]) == [3.5]


def test_arith_never_raises_on_junk() -> None:
    v = ArithHeuristic()
    junk = ["#", ";;;", "=#=", "9" * 200 + "*" + "9" * 200 + "=1#1", "1/0=0#0", "\n\t#-", "a+b=c#d"]
    scores = v.score([cand(PROMPT, j) for j in junk])
    assert all(math.isfinite(x) and 0.0 <= x <= 4.0 for x in scores)


# ---------------------------------------------------------------- sudoku-constraints

SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
PUZZLE = "".join(ch if i % 3 == 0 else "." for i, ch in enumerate(SOLUTION)) + "="


def sudoku(completion: str, prompt: str = PUZZLE) -> float:
    return SudokuConstraints().score([cand(prompt, completion)])[0]


def test_sudoku_valid_grid_scores_one() -> None:
    assert sudoku(SOLUTION) == 1.0


def test_sudoku_swapped_pair_and_givens() -> None:
    swapped = SOLUTION[0:1] + SOLUTION[4] + SOLUTION[2:4] + SOLUTION[1] + SOLUTION[5:]
    assert sudoku(swapped, prompt="." * 81 + "=") < 1.0  # constraints alone drop
    given_overwritten = "9" + SOLUTION[1:]
    assert sudoku(given_overwritten) < 1.0
    # the same overwrite in a free cell (index 1) breaks constraints only
    assert sudoku(SOLUTION[0] + "9" + SOLUTION[2:]) > sudoku(given_overwritten) - 0.05
    # all givens overwritten by a valid grid (digits relabelled) scores much lower
    relabelled = SOLUTION.translate(str.maketrans("123456789", "234567891"))
    assert sudoku(relabelled, prompt="." * 81 + "=") == 1.0
    assert sudoku(relabelled) < 0.1


def test_sudoku_partial_progress_counts() -> None:
    holes = SOLUTION[:40] + "0" * 41
    assert 0.0 < sudoku(holes) < sudoku(SOLUTION)
    assert sudoku("1" * 81) < sudoku(holes)


@pytest.mark.parametrize("bad", ["", "abc", SOLUTION[:80], SOLUTION + "12345", "." * 81, "x" * 500])
def test_sudoku_malformed_scores_low_never_raises(bad: str) -> None:
    s = sudoku(bad)
    assert 0.0 <= s < 1.0


# ---------------------------------------------------------------- confidence, oracle


def test_confidence_mean_logprob() -> None:
    v = Confidence()
    c1 = Candidate("p", "ab", (-0.5, -1.5), (False, True))
    c2 = Candidate("p", "ab", (-0.1, -0.1), (False, False))
    empty = Candidate("p", "", (), ())
    inf = Candidate("p", "a", (float("-inf"), float("nan")), (False, False))
    s = v.score([c1, c2, empty, inf])
    assert s[0] == pytest.approx(-1.0) and s[1] == pytest.approx(-0.1)
    assert all(math.isfinite(x) for x in s)
    assert s[2] < s[3] < s[0] < s[1]


def test_oracle_default_and_custom_extractor() -> None:
    o = Oracle()
    assert o.needs_gold
    cs = [cand(PROMPT, GOOD), cand(PROMPT, "7*4=28#28"), cand(PROMPT, " 46 "), cand(PROMPT, "")]
    assert o.score(cs, gold=["46"] * 4) == [1.0, 0.0, 1.0, 0.0]
    never = Oracle(extract=lambda text: None)
    assert never.score(cs, gold=["46"] * 4) == [0.0] * 4
    with pytest.raises(ValueError):
        o.score(cs)


# ---------------------------------------------------------------- registry, weighted sums


def test_registry_names_are_normalized() -> None:
    assert set(VERIFIERS) == {"arith-heuristic", "sudoku-constraints", "confidence", "oracle",
                              "math-heuristic"}
    assert isinstance(get_verifier("Arith_Heuristic"), ArithHeuristic)
    assert isinstance(get_verifier("sudoku_constraints"), SudokuConstraints)
    assert get_verifier("arith-heuristic", structure=0.0, confidence=1).weights[:3] == (
        0.0,
        2.0,
        1.0,
    )
    for name, (factory, description) in VERIFIERS.items():
        v = get_verifier(name)
        assert v.name == name and callable(factory) and description


def test_registry_unknown_name_hint() -> None:
    with pytest.raises(S3DSLError) as e:
        get_verifier("arith-heuristc")
    assert "did you mean 'arith-heuristic'" in str(e.value)
    with pytest.raises(S3DSLError) as e:
        get_verifier("zzz")
    assert "expected one of" in str(e.value)


def test_registry_unknown_or_bad_option() -> None:
    with pytest.raises(S3DSLError) as e:
        get_verifier("arith-heuristic", structur=1.0)
    assert "structure" in str(e.value) and "nondegenerate" in str(e.value)
    with pytest.raises(S3DSLError) as e:
        get_verifier("confidence", beta=1.0)
    assert "no options" in str(e.value)
    with pytest.raises(S3DSLError):
        get_verifier("arith-heuristic", structure=-2.0)
    with pytest.raises(S3DSLError):
        get_verifier("arith-heuristic", structure="high")


def test_weighted_sum() -> None:
    h, c = get_verifier("arith-heuristic"), get_verifier("confidence")
    ws = WeightedSum([(1.0, h), (0.5, c)])
    assert ws.name == "arith-heuristic + 0.5 * confidence" and not ws.needs_gold
    cs = [cand(PROMPT, GOOD), cand(PROMPT, "x", logprob=-2.0)]
    expected = [a + 0.5 * b for a, b in zip(h.score(cs), c.score(cs), strict=True)]
    assert ws.score(cs) == pytest.approx(expected)
    with_oracle = WeightedSum([(1.0, h), (10.0, Oracle())])
    assert with_oracle.needs_gold
    assert with_oracle.score(cs, gold=["46", "46"])[0] == pytest.approx(h.score(cs)[0] + 10.0)
    nested = WeightedSum([(2.0, ws)])
    assert nested.score(cs) == pytest.approx([2 * x for x in expected])
    with pytest.raises(ValueError):
        WeightedSum([])


# ---------------------------------------------------------------- robustness

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(alphabet="0123456789+-*/=;#. x\n", max_size=120)


@settings(max_examples=200, deadline=None)
@given(prompt=_TEXT, completion=_TEXT)
def test_verifiers_total_and_in_range(prompt: str, completion: str) -> None:
    c = cand(prompt, completion)
    assert 0.0 <= ArithHeuristic().score([c])[0] <= 4.0
    assert 0.0 <= SudokuConstraints().score([c])[0] <= 1.0
    assert math.isfinite(Confidence().score([c])[0])


def test_spaced_decoding_is_tolerated() -> None:
    assert arith(" 7 * 4 = 28 ; 23 + 28 = 51 ; 51 - 5 = 46 # 46") == arith(GOOD)
    assert sudoku(" ".join(SOLUTION)) == 1.0
