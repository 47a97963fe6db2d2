"""Task packs (GSM8K, MATH-500, ARC-Challenge from the user's files) and the math-heuristic
verifier, on small hand-made files in tests/fixtures (nothing downloaded)."""

from __future__ import annotations

import json
import string
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from s3dsl.cli.app import app
from s3dsl.dsl.errors import S3DSLError
from s3dsl.tasks.packs import load_task_file
from s3dsl.verifiers import get_verifier
from s3dsl.verifiers.base import Candidate
from s3dsl.verifiers.math_heuristic import arithmetic_consistency, evaluate, text_signals

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K, MATH500, ARC = (FIXTURES / f"{n}_sample.jsonl" for n in ("gsm8k", "math500",
                                                                   "arc_challenge"))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- reading and detecting -------------------------------------------------------------------
def test_packs_are_detected_from_fields_and_read_gold_answers():
    gsm, math, arc = (load_task_file(p) for p in (GSM8K, MATH500, ARC))
    assert (gsm.pack.name, math.pack.name, arc.pack.name) == ("gsm8k", "math500",
                                                              "arc_challenge")
    assert [p.answer for p in gsm.problems()] == ["7", "60", "2400"]  # `#### 2,400`
    assert [p.answer for p in math.problems()] == ["\\frac{3}{4}", "(3,2)", "56"]
    assert [p.answer for p in arc.problems()] == ["B", "C"]  # labels 1-4 shown as letters
    first = math.problems()[0]
    assert first.id == "test/prealgebra/1.json" and first.meta == {"subject": "Prealgebra",
                                                                     "level": 1}
    assert first.prompt.startswith("What is $\\frac{1}{2} + \\frac{1}{4}$?\n")
    assert "\\boxed{}" in first.prompt and "\\boxed{}" in gsm.problems()[0].prompt
    assert "C. 100 C" in arc.problems()[1].prompt
    assert gsm.default_verifier == math.default_verifier == "math-heuristic"
    with pytest.raises(S3DSLError, match="task 'gsm8k' needs --model"):
        _ = gsm.default_model
    assert math.gen_length == 512
    assert math.problems("train", 1) == math.problems()[:1]  # a file is one split


def test_named_pack_checks_fields_and_reports_the_line(tmp_path):
    with pytest.raises(S3DSLError, match=r"gsm8k_sample.jsonl:1: missing field 'problem'"):
        load_task_file(GSM8K, "math500")
    bad = write_jsonl(tmp_path / "g.jsonl", [rows(GSM8K)[0], {"question": "q", "answer": "7"}])
    with pytest.raises(S3DSLError, match=r"g.jsonl:2: 'answer' has no '#### N'"):
        load_task_file(bad, "gsm8k")
    arc = rows(ARC)[0] | {"answerKey": "E"}
    with pytest.raises(S3DSLError, match=r"a.jsonl:1: answerKey 'E' is not a choice label"):
        load_task_file(write_jsonl(tmp_path / "a.jsonl", [arc]))
    with pytest.raises(S3DSLError, match="cannot tell which task"):
        load_task_file(write_jsonl(tmp_path / "u.jsonl", [{"text": "hi"}]))
    with pytest.raises(S3DSLError, match="unknown task pack 'math50'") as err:
        load_task_file(MATH500, "math50")
    assert "math500" in (err.value.hint or "")
    dup = write_jsonl(tmp_path / "d.jsonl", [rows(ARC)[0], rows(ARC)[0]])
    with pytest.raises(S3DSLError, match="d.jsonl:2: duplicate id 'Mercury_1'"):
        load_task_file(dup)


def test_plain_prompt_answer_lines_stay_the_data_task(tmp_path):
    from s3dsl.tasks.data import DataTask

    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "1+1=", "answer": "2"}])
    assert isinstance(load_task_file(path), DataTask)
    assert isinstance(load_task_file(path, "arith"), DataTask)  # as before: --data wins


def test_parquet_and_saved_datasets_give_the_same_problems(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    datasets = pytest.importorskip("datasets")
    expected = load_task_file(MATH500).problems()
    pq.write_table(pa.Table.from_pylist(rows(MATH500)), tmp_path / "m.parquet")
    assert load_task_file(tmp_path / "m.parquet").problems() == expected
    split = datasets.DatasetDict({"test": datasets.Dataset.from_list(rows(MATH500)),
                                  "train": datasets.Dataset.from_list(rows(MATH500)[:1])})
    split.save_to_disk(str(tmp_path / "saved"))
    task = load_task_file(tmp_path / "saved")
    assert task.problems("test") == expected and task.problems("train") == expected[:1]
    with pytest.raises(S3DSLError, match="no split 'validation'"):
        task.problems("validation")


# --- extraction and scoring ------------------------------------------------------------------
def test_extraction_and_scoring_per_pack():
    pytest.importorskip("math_verify")
    gsm, math, arc = (load_task_file(p) for p in (GSM8K, MATH500, ARC))
    assert gsm.extract_answer("3 + 4 = 7 apples. The answer is $7.") == "7"
    assert gsm.extract_answer("so \\boxed{2,400}") == "2400"
    assert gsm.is_correct("2400.00", "2400") and not gsm.is_correct("240", "2400")
    assert math.extract_answer("x \\boxed{1} then \\boxed{\\dfrac{3}{4}}") == "\\dfrac{3}{4}"
    assert math.extract_answer("The answer is $0.75$.") == "$0.75$"
    assert math.is_correct("0.75", "\\frac{3}{4}") and math.is_correct("$0.75$", "\\frac{3}{4}")
    assert math.is_correct("\\left( 3, 2 \\right)", "(3,2)")
    assert not math.is_correct("(2,3)", "(3,2)") and not math.is_correct(None, "56")
    assert arc.extract_answer("B looks odd. The answer is (C).") == "C"
    assert arc.is_correct("c", "C") and not arc.is_correct("B", "C")


# --- the math-heuristic verifier --------------------------------------------------------------
def cand(text: str, logprob: float = -0.1) -> Candidate:
    return Candidate("q", text, (logprob,) * max(len(text), 1), (False,) * max(len(text), 1))


def test_math_heuristic_signals():
    good = "3 + 4 = 7 and 7 \\times 2 = 14. The answer is \\boxed{14}."
    assert text_signals(good, 0.5) == (1.0, 1.0, 1.0)
    assert text_signals("3 + 4 = 8, so 8 * 2 = 16. The answer is 16", 0.5)[1] == 0.5
    assert text_signals("no numbers here", 0.5)[:2] == (0.0, 0.5)
    assert text_signals("x \\boxed{14", 0.5)[0] == 0.5  # unclosed box
    assert text_signals("   ", 0.5) == (0.0, 0.0, 0.0)
    assert text_signals("go on " * 30, 0.5)[2] < 0.1  # a loop
    assert arithmetic_consistency("10/3 = 3.33, 1,200 * 2 = 2,400, (2+3)*4 = 20") == (3, 3)
    assert arithmetic_consistency("__import__('os') = 1, 2 = 2") == (0, 0)  # parsed, not run
    v = get_verifier("math-heuristic")
    right, wrong, empty = v.score([cand(good), cand(good.replace("= 14", "= 15")), cand("")])
    assert right > wrong > empty == 0.0
    assert v.max_score == 3.0 and right == pytest.approx(3.0 - 0.5 * (1 - 0.9048374), abs=1e-6)
    only = get_verifier("math_heuristic", structure=0, arithmetic=1, confidence=0,
                        nondegenerate=0)
    assert only.score([cand(good), cand("3 + 4 = 8")]) == [1.0, 0.0]
    with pytest.raises(S3DSLError, match="has no option 'struct'"):
        get_verifier("math-heuristic", struct=1)
    with pytest.raises(S3DSLError, match="must be a finite number >= 0"):
        get_verifier("math-heuristic", arithmetic=-1)


_ATOM = st.integers(0, 999).map(str)
_EXPR = st.recursive(_ATOM, lambda inner: st.tuples(inner, st.sampled_from("+-*/"), inner).map(
    lambda t: f"({t[0]} {t[1]} {t[2]})"), max_leaves=6)


def _reference(text: str) -> Fraction:
    """Python's own arithmetic over Fractions on a fully parenthesized expression."""
    ops = {"+": Fraction.__add__, "-": Fraction.__sub__, "*": Fraction.__mul__,
           "/": Fraction.__truediv__}
    stack: list = [[]]
    for tok in text.replace("(", " ( ").replace(")", " ) ").split():
        if tok == "(":
            stack.append([])
        elif tok == ")":
            a, op, b = stack.pop()
            stack[-1].append(ops[op](a, b))
        elif tok in ops:
            stack[-1].append(tok)
        else:
            stack[-1].append(Fraction(int(tok)))
    return stack[0][0]


@settings(max_examples=60, deadline=None)
@given(_EXPR)
def test_parser_matches_exact_arithmetic(expr):
    try:
        expected = _reference(expr)
    except ZeroDivisionError:
        with pytest.raises((ValueError, ZeroDivisionError)):
            evaluate(expr)
        return
    assert evaluate(expr) == expected


# --- end to end --------------------------------------------------------------------------------
class ScriptedModel:
    """A `MaskedLM` that writes one fixed text whatever the prompt: its completion, and so the
    pack's extraction and math-verify scoring, is known in advance."""

    name = "scripted"
    shifted_logits = False

    def __init__(self, text: str):
        from s3dsl.models.tokenizer import CharTokenizer

        chars = "".join(sorted(set(string.printable) - set(string.whitespace) - {"?"})) + " \n"
        self.tokenizer = CharTokenizer(chars)
        self.mask_id, self.vocab_size = self.tokenizer.mask_id, len(self.tokenizer)
        self.ids = self.tokenizer.encode(text) + [self.tokenizer.eos_id]

    def forward(self, ids, attention_mask, gen_length=None):
        import torch

        batch, length = ids.shape
        logits = torch.zeros(batch, length, self.vocab_size)
        gen = gen_length or length
        for j in range(gen):
            logits[:, length - gen + j, self.ids[min(j, len(self.ids) - 1)]] = 20.0
        return logits

    def num_parameters(self) -> int:
        return 0

    @property
    def device(self):
        import torch

        return torch.device("cpu")


def test_s3_with_math_heuristic_scores_an_equivalent_answer_correct():
    pytest.importorskip("math_verify")
    from s3dsl.compiler.passes import plan
    from s3dsl.session import compile_file, execute

    task = load_task_file(MATH500)
    problems = [p for p in task.problems() if p.answer == "\\frac{3}{4}"]
    problems = [p.__class__(id=p.id, prompt="1/2+1/4=", answer=p.answer) for p in problems]
    program = compile_file(Path("strategies/s3.yaml"), {"particles": "2", "candidates": "2",
                           "steps": "4"}, 32, task.default_verifier)
    assert program.verifiers["v"].describe() == "math-heuristic"
    model = ScriptedModel("3/4 = 0.75 so \\boxed{0.75}")
    results, _ = execute(plan(program, 2), model, problems, task.extract_answer,
                         task.is_correct, batch_size=2)
    assert results[0].completion == "3/4 = 0.75 so \\boxed{0.75}"
    assert results[0].prediction == "0.75" and results[0].correct
    assert results[0].score == pytest.approx(3.0, abs=1e-6)  # all four signals at their best


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A random-weight BERT masked LM whose WordPiece vocabulary covers printable ASCII (so any
    benchmark text encodes), saved as a local checkpoint folder."""
    transformers = pytest.importorskip("transformers")
    import torch

    path = tmp_path_factory.mktemp("tiny-bert-ascii")
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (path / "vocab.txt").write_text("\n".join(specials + chars + ["##" + c for c in chars]))
    tok = transformers.BertTokenizer(vocab=str(path / "vocab.txt"))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=512)
    transformers.BertForMaskedLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_cli_runs_s3_on_a_math500_file_end_to_end(tiny_bert, tmp_path):
    pytest.importorskip("math_verify")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [
        "run", "s3", "--model", f"hf:{tiny_bert}", "--data", str(MATH500), "--set",
        "gen_length=16", "--set", "steps=4", "--set", "particles=2", "--set", "candidates=2",
        "--no-db", "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "s3 on math500:math500_sample" in result.output
    data = json.loads(out.read_text())
    assert data["task"] == "math500:math500_sample" and data["n_problems"] == 3
    assert data["nfe_total"] > 0
    scores = [p["score"] for p in data["per_problem"]]
    assert all(0.0 <= s <= 3.0 for s in scores)  # math-heuristic's range
    assert [p["answer"] for p in data["per_problem"]] == ["\\frac{3}{4}", "(3,2)", "56"]


def test_cli_errors_for_packs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "s3", "--task", "math500", "--no-db",
                                 "--model", "tiny-random"])
    assert isinstance(result.exception, S3DSLError)
    assert "reads your data file" in str(result.exception)
    result = runner.invoke(app, ["run", "s3", "--data", str(GSM8K), "--no-db"])
    assert isinstance(result.exception, S3DSLError)
    assert "needs --model" in str(result.exception)
    from s3dsl.tasks.packs import packs
    from s3dsl.tasks.registry import PACKS

    assert set(PACKS) == set(packs())
    assert "LLaDA-8B-Instruct" in (result.exception.hint or "")
    listing = runner.invoke(app, ["list", "models"])
    assert listing.exit_code == 0 and "~/models/LLaDA-8B-Instruct" in listing.output
    tasks = runner.invoke(app, ["list", "tasks"])
    assert all(name in tasks.output for name in ("gsm8k", "math500", "arc_challenge"))
