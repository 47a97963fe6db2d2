"""s3dsl inside lm-evaluation-harness: a tiny local generation task (a YAML and a JSONL written
here, read through --include_path), the shipped arith model, nothing downloaded."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from s3dsl.errors import S3DSLError

pytest.importorskip("lm_eval")

from s3dsl.integrations.lmeval import (  # noqa: E402
    S3DSLLM,
    answer_extractor,
    cut_at_stops,
    prompt_id,
)

ANSWERS = {"2+3": 5, "4*2": 8, "9-5": 4, "1+7": 8, "3*3": 9, "8-1": 7}
QUESTIONS = list(ANSWERS)
STRATEGY = Path(__file__).resolve().parent.parent / "strategies"

TASK_YAML = """task: tiny_arith
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {cache}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}="
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
filter_list:
  - name: hash
    filter:
      - function: regex
        regex_pattern: "#(-?\\\\d+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lm-eval-task")
    data = path / "docs.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": str(a)}) + "\n"
                            for q, a in ANSWERS.items()))
    (path / "tiny_arith.yaml").write_text(TASK_YAML.format(data=data, cache=path / "cache"))
    return path


def test_registered_with_lm_eval_and_declared_as_an_entry_point():
    from importlib.metadata import entry_points

    from lm_eval.api.registry import get_model, model_registry

    assert get_model("s3dsl") is S3DSLLM and "hf" in model_registry  # built-ins kept
    (point,) = [e for e in entry_points(group="lm_eval.models") if e.name == "s3dsl"]
    assert point.load() is S3DSLLM


def test_stop_sequences_and_repeated_prompts():
    assert cut_at_stops("7*4=28#28\nQuestion", ["\n", "Question"]) == "7*4=28#28"
    assert cut_at_stops("abc", []) == "abc"
    lm = S3DSLLM(strategy="single", model="tiny-random")
    a, b = lm._problem("1+1="), lm._problem("1+1=")
    assert a.id != b.id and a.id.split("-")[0] == b.id.split("-")[0]  # repeats differ


def test_simple_evaluate_matches_s3dsl_and_reports_forwards(task_dir, tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from s3dsl.compiler.passes import plan
    from s3dsl.models.registry import load_model
    from s3dsl.session import compile_file, execute
    from s3dsl.tasks.base import Problem
    from s3dsl.tasks.registry import get_task

    stats = tmp_path / "stats.jsonl"
    out = lm_eval.simple_evaluate(
        model="s3dsl",
        model_args=f"strategy=single,model=arith,verifier=arith-heuristic,extractor=hash,"
        f"stats={stats}",
        tasks=["tiny_arith"],
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        device="cpu",
    )
    accuracy = out["results"]["tiny_arith"]["exact_match,hash"]
    info = out["config"]["s3dsl"]

    # the same prompts through s3dsl directly (single is deterministic: ids do not matter)
    arith = get_task("arith")
    program = compile_file(STRATEGY / "single.yaml", None, 16, "arith-heuristic")
    problems = [Problem(id=q, prompt=q + "=", answer=str(ANSWERS[q])) for q in QUESTIONS]
    results, _ = execute(plan(program, 2), load_model("arith"), problems, arith.extract_answer,
                         arith.is_correct)
    assert accuracy == pytest.approx(sum(r.correct for r in results) / len(results))
    assert accuracy > 0.5  # the shipped model does one-operator sums well
    assert info["requests"] == len(QUESTIONS)
    assert info["forwards"] == sum(r.nfe for r in results) > 0
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert sorted(line["doc_id"] for line in lines) == list(range(len(QUESTIONS)))
    assert sum(line["forwards"] for line in lines) == info["forwards"]


def _lm_eval_command() -> str:
    """The `lm_eval` script of this environment: with the `.pth` s3dsl installs, it knows
    `--model s3dsl` (a stale install without it fails here, on purpose: reinstall s3dsl)."""
    script = Path(sys.executable).with_name("lm_eval")
    if not script.exists():
        pytest.skip("no lm_eval script next to this interpreter")
    site = Path(sysconfig.get_paths()["purelib"])
    assert (site / "s3dsl_lm_eval.pth").exists(), (
        f"s3dsl_lm_eval.pth is not in {site}: reinstall s3dsl (pip install -e .)")
    return str(script)


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_lm_eval_registry_knows_s3dsl_lazily():
    """Importing lm-eval's models adds `s3dsl` as a placeholder; nothing of s3dsl's model code
    (nor torch) is imported until the model is asked for."""
    _lm_eval_command()
    probe = ("import sys, lm_eval.models, lm_eval.api.registry as r; "
             "print('s3dsl' in r.model_registry, 'hf' in r.model_registry, "
             "'s3dsl.integrations.lmeval' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=_offline_env(), timeout=120, check=True)
    assert out.stdout.split() == ["True", "True", "False", "False"]


def test_plain_lm_eval_command_runs_s3_end_to_end(task_dir, tmp_path):
    """`lm_eval --model s3dsl ...`, lm-eval's own command, as a user types it: the metric lm-eval
    computes equals s3dsl's own accuracy on the same prompts and seed, and the forwards and
    search statistics are logged and written into the results."""
    stats = tmp_path / "stats.jsonl"
    command = [
        _lm_eval_command(), "--model", "s3dsl", "--model_args",
        "strategy=s3,model=arith,verifier=arith-heuristic,extractor=hash,particles=2,"
        f"candidates=2,threads=1,stats={stats}", "--tasks", "tiny_arith",
        "--include_path", str(task_dir), "--output_path", str(tmp_path / "out"),
        "--device", "cpu"]
    run = subprocess.run(command, capture_output=True, text=True, env=_offline_env(),
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "tiny_arith" in run.stdout and "exact_match" in run.stdout
    assert "s3dsl s3 on 6 requests" in run.stderr  # the forwards log line
    (results_file,) = glob.glob(str(tmp_path / "out" / "**" / "results_*.json"), recursive=True)
    results = json.loads(Path(results_file).read_text())
    accuracy = results["results"]["tiny_arith"]["exact_match,hash"]
    info = results["config"]["s3dsl"]
    assert info["requests"] == 6 and info["forwards"] > 0 and info["resamples_per_request"] > 0
    assert info["params"] == {"particles": "2", "candidates": "2"}
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert sum(line["forwards"] for line in lines) == info["forwards"]

    # s3dsl's own run of the same plan on the same prompts, with the ids the model gives them
    from s3dsl.compiler.passes import plan
    from s3dsl.models.registry import load_model
    from s3dsl.session import compile_file, execute
    from s3dsl.tasks.base import Problem
    from s3dsl.tasks.registry import get_task

    arith = get_task("arith")
    program = compile_file(STRATEGY / "s3.yaml", {"particles": "2", "candidates": "2"}, 16,
                           "arith-heuristic")
    problems = [Problem(id=prompt_id(q + "="), prompt=q + "=", answer=str(ANSWERS[q]))
                for q in QUESTIONS]
    direct, _ = execute(plan(program, 2), load_model("arith"), problems,
                        answer_extractor("hash"), arith.is_correct, 0)
    assert accuracy == pytest.approx(sum(r.correct for r in direct) / len(direct))
    assert info["forwards"] == sum(r.nfe for r in direct)


def test_chat_template_comes_from_the_checkpoint(tmp_path):
    transformers = pytest.importorskip("transformers")
    import torch

    from s3dsl.dsl.errors import S3DSLError

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi", "user", "assistant", ":"]
    (tmp_path / "vocab.txt").write_text("\n".join(words))
    tok = transformers.BertTokenizer(vocab=str(tmp_path / "vocab.txt"))
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant:{% endif %}")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = S3DSLLM(strategy="single", model=f"hf:{tmp_path}")
    chat = [{"role": "user", "content": "hi"}]
    assert lm.apply_chat_template(chat) == "user: hi\nassistant:"
    assert lm.chat_template(True) == tok.chat_template and lm.chat_template(False) is None
    with pytest.raises(S3DSLError, match="has no chat template"):
        S3DSLLM(strategy="single", model="tiny-random").apply_chat_template(chat)
    with pytest.raises(S3DSLError):  # checkpoint options are for real checkpoints
        S3DSLLM(strategy="single", model="tiny-random", system="be brief")


# --- log-likelihood requests: the Monte-Carlo ELBO ------------------------------------------
MC_QUESTIONS = {"2+3": 5, "4*2": 8, "9-5": 4, "1+7": 8, "3*3": 9, "8-1": 7, "6+2": 8, "5*1": 5}
MC_TASK_YAML = """task: tiny_arith_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
  cache_dir: {cache}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}="
doc_to_choice: choices
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


class _Request:
    def __init__(self, *args):
        self.args = args


def _mc_doc(question: str, answer: int, i: int) -> dict:
    """Four full completions (the arith model writes `q=a#a`), the gold one at place i % 4."""
    wrong = [answer + d for d in (1, -1, 2)]
    values = wrong[: i % 4] + [answer] + wrong[i % 4:]
    return {"question": question, "choices": [f"{question}={v}#{v}" for v in values],
            "label": i % 4}


@pytest.fixture(scope="module")
def arith_lm():
    return S3DSLLM(strategy="single", model="arith", mc_samples=16, mc_batch=16)


def test_elbo_of_one_token_is_its_exact_log_probability(arith_lm):
    """With one continuation token the bound is exact: the token masked, weight 1."""
    import torch

    from s3dsl.integrations.lmeval_likelihood import ElboScorer, request_generator

    model = arith_lm.lm
    context, token = model.tokenizer.encode("4*2=8#"), model.tokenizer.encode("8")
    row = torch.tensor([[*context, model.mask_id]])
    exact = torch.log_softmax(model.forward(row, torch.ones_like(row, dtype=torch.bool), 1)
                              .float()[0, -1], dim=-1)[token[0]].item()
    estimate = ElboScorer(model, 5, 2, 0).elbo(context, token, request_generator(0, "x"))
    assert estimate == pytest.approx(exact, abs=1e-5)


def test_guided_elbo_of_one_token_combines_both_forwards(arith_lm):
    """mc_cfg (LLaDA's cfg): u + (cfg + 1)(c - u), u with the context masked; two rows a sample."""
    import torch

    from s3dsl.integrations.lmeval_likelihood import ElboScorer, request_generator

    model = arith_lm.lm
    context, token = model.tokenizer.encode("4*2=8#"), model.tokenizer.encode("8")
    rows = torch.tensor([[*context, model.mask_id], [model.mask_id] * (len(context) + 1)])
    c, u = model.forward(rows, torch.ones_like(rows, dtype=torch.bool), 1).float()[:, -1]
    exact = torch.log_softmax(u + 1.5 * (c - u), dim=-1)[token[0]].item()
    scorer = ElboScorer(model, 3, 2, 0, cfg=0.5)
    assert scorer.elbo(context, token, request_generator(0, "x")) == pytest.approx(exact, abs=1e-5)
    assert scorer.forwards == 6


def test_elbo_estimate_converges_to_the_enumerated_bound(arith_lm):
    """Two tokens: the bound is 1/2 (log p(a|_b) + log p(b|a_)) + 1/2 (log p(a|__) + log p(b|__))
    (half the samples mask one token, weight 2, half mask both); many samples approach it."""
    import torch

    from s3dsl.integrations.lmeval_likelihood import ElboScorer, request_generator

    model = arith_lm.lm
    context, (a, b) = model.tokenizer.encode("4*2=8"), model.tokenizer.encode("#8")
    mask = model.mask_id

    def logp(answer: list[int], at: int, token: int) -> float:
        row = torch.tensor([[*context, *answer]])
        logits = model.forward(row, torch.ones_like(row, dtype=torch.bool), 2).float()
        return torch.log_softmax(logits[0, len(context) + at], dim=-1)[token].item()

    exact = 0.5 * (logp([mask, b], 0, a) + logp([a, mask], 1, b)) + 0.5 * (
        logp([mask, mask], 0, a) + logp([mask, mask], 1, b))
    scorer = ElboScorer(model, 2000, 500, 0)
    estimate = scorer.elbo(context, [a, b], request_generator(0, "y"))
    assert scorer.forwards == 2000
    spread = abs(logp([mask, b], 0, a) - logp([a, mask], 1, b))  # the one random choice
    assert estimate == pytest.approx(exact, abs=max(4 * spread / 2000 ** 0.5, 1e-4))


def test_likelihoods_are_deterministic_and_free_of_order(arith_lm):
    requests = [_Request(q + "=", f"{q}={a}#{a}") for q, a in MC_QUESTIONS.items()]
    forward = arith_lm.loglikelihood(requests)
    backward = arith_lm.loglikelihood(requests[::-1])[::-1]
    assert forward == backward and all(greedy is False for _, greedy in forward)
    other_seed = S3DSLLM(strategy="single", model="arith", mc_samples=16, seed=1)
    assert other_seed.loglikelihood(requests[:1]) != forward[:1]  # the seed is used
    with pytest.raises(S3DSLError, match="cannot encode"):
        arith_lm.loglikelihood([_Request("2+3=", " five")])  # no letters in its vocabulary


def test_rolling_windows_cover_the_text_once_within_the_model_length():
    from s3dsl.integrations.lmeval_likelihood import rolling_windows

    ids = list(range(21))
    windows = list(rolling_windows(ids, 8))
    assert [t for _, t in windows for t in t] == ids
    assert windows[0] == ([], ids[:8])
    for context, piece in windows[1:]:
        assert len(context) + len(piece) == 8 and context == ids[piece[0] - len(context):piece[0]]
    assert list(rolling_windows(ids, None)) == [([], ids)] and list(rolling_windows([], 8)) == []


def test_rolling_loglikelihood_is_the_elbo_of_the_text(arith_lm):
    from s3dsl.integrations.lmeval_likelihood import ElboScorer, request_generator

    text = "4*2=8#8"
    (value,) = arith_lm.loglikelihood_rolling([_Request(text)])
    scorer = ElboScorer(arith_lm.lm, 16, 16, 0)
    ids = arith_lm.lm.tokenizer.encode(text)
    assert value == pytest.approx(scorer.elbo([], ids, request_generator(0, "", text)))


def test_greedy_check_matches_s3dsl_single_decoding():
    """`greedy_check=true`: True exactly for what one-token-a-step greedy decoding writes (s3dsl's
    own `single` with steps = block = gen_length), False for a one-token change of it."""
    from s3dsl.compiler.passes import plan
    from s3dsl.session import compile_file, execute
    from s3dsl.tasks.base import Problem

    lm = S3DSLLM(strategy="single", model="arith", mc_samples=2, greedy_check=True)
    tok = lm.lm.tokenizer
    program = compile_file(STRATEGY / "single.yaml", {"block_length": "7", "steps": "7"}, 7,
                           "arith-heuristic")
    problems = [Problem(id=q, prompt=q + "=", answer="") for q in MC_QUESTIONS]
    results, _ = execute(plan(program, 0), lm.lm, problems, lambda t: t, lambda a, b: False)
    written = [(p.prompt, r.completion) for p, r in zip(problems, results)
               if len(tok.encode(r.completion)) == 7]  # no end-of-text inside: all 7 positions
    assert written
    for prompt, completion in written:
        changed = completion[:-1] + ("1" if completion[-1] != "1" else "2")
        (_, same), (_, other) = lm.loglikelihood([_Request(prompt, completion),
                                                  _Request(prompt, changed)])
        assert same is True and other is False


def test_multiple_choice_task_through_lm_eval(tmp_path):
    import lm_eval
    from lm_eval.tasks import TaskManager

    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps(_mc_doc(q, a, i)) + "\n"
                            for i, (q, a) in enumerate(MC_QUESTIONS.items())))
    (tmp_path / "tiny_arith_mc.yaml").write_text(
        MC_TASK_YAML.format(data=data, cache=tmp_path / "cache"))
    out = lm_eval.simple_evaluate(
        model="s3dsl", model_args="strategy=single,model=arith,mc_samples=32",
        tasks=["tiny_arith_mc"], device="cpu",
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False))
    info = out["config"]["s3dsl"]
    assert info["likelihood_requests"] == 4 * len(MC_QUESTIONS)
    assert info["likelihood_forwards"] == 32 * 4 * len(MC_QUESTIONS) and info["mc_samples"] == 32
    assert out["results"]["tiny_arith_mc"]["acc,none"] >= 0.75  # chance is 0.25


def test_likelihood_on_a_dream_checkpoint_reads_shifted_logits(tmp_path):
    """Dream's logits at position i predict token i+1: the one-token bound must be read one
    position early. Also lm-eval's space convention with a word-level tokenizer."""
    import torch

    from s3dsl.integrations.lmeval_likelihood import encode_pair
    from s3dsl.models.tiny_official import write_checkpoint

    lm = S3DSLLM(strategy="single", model=str(write_checkpoint(tmp_path / "dream", "dream")),
                 chat=False, mc_samples=3)
    model, tok = lm.lm, lm.lm.tokenizer
    assert model.shifted_logits
    context, continuation = encode_pair(tok, "You are a ", "w20")
    assert (context, continuation) == (tok.encode("You are a"), tok.encode("w20"))
    row = torch.tensor([[*context, model.mask_id]])
    logits = model.forward(row, torch.ones_like(row, dtype=torch.bool), 1).float()
    exact = torch.log_softmax(logits[0, -2], dim=-1)[continuation[0]].item()
    ((value, greedy),) = lm.loglikelihood([_Request("You are a ", "w20")])
    assert value == pytest.approx(exact, abs=1e-4) and greedy is False


def test_the_pth_hook_does_not_import_s3dsl_at_interpreter_start(tmp_path):
    """The hook must not put the installed `s3dsl` in `sys.modules`: a source tree run from its
    own folder (another checkout, the mutation harness's copy) must import itself."""
    _lm_eval_command()
    shadow = tmp_path / "s3dsl"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("WHERE = 'shadow'\n")
    probe = ("import sys; started = 's3dsl' in sys.modules; import s3dsl; "
             "print(started, getattr(s3dsl, 'WHERE', 'installed'), "
             "'_s3dsl_lmeval_autoload' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env=_offline_env(), timeout=60, check=True)
    assert out.stdout.split() == ["False", "shadow", "True"]
