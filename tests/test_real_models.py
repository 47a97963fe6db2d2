"""Official LLaDA / Dream checkpoints loaded natively: golden parity with the official code.

The fixtures in tests/fixtures/golden were recorded by benchmarks/golden_parity.py, which ran the
official modeling code and samplers (transformers 4.x) on tiny checkpoints rebuilt here from the
same seed (s3dsl/models/tiny_official.py). Here they load natively on the installed transformers,
with no remote code: logits must agree in float32, every recorded sampler setting must give the
official tokens, and a left-padded batch must give the tokens of its rows run alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.models.checkpoint import load_checkpoint
from s3dsl.models.tiny_official import write_checkpoint
from s3dsl.runtime.scoring import encode_prompt
from s3dsl.session import compile_file, execute
from s3dsl.tasks.base import Problem

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
LAYOUTS = ("llada", "dream")
_MODELS: dict = {}


def golden(layout: str) -> dict:
    return json.loads((GOLDEN / f"{layout}.json").read_text())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("official")
    return {name: write_checkpoint(root / name, name, golden(name)["seed"]) for name in LAYOUTS}


def model_of(checkpoints, layout: str, chat: bool = False):
    key = (str(checkpoints[layout]), chat)
    if key not in _MODELS:
        _MODELS[key] = load_checkpoint(checkpoints[layout], chat=chat)
    return _MODELS[key]


def overrides(layout: str, options: dict) -> dict[str, str]:
    """An official sampler's keyword arguments as `--set` overrides of llada.yaml / dream.yaml."""
    if layout == "llada":
        return {k: str(v).lower() for k, v in options.items()}
    out = {"gen_length": str(options["max_new_tokens"])}
    out.update({k: str(v) for k, v in options.items() if k != "max_new_tokens" and v is not None})
    return out


def decode_tokens(model, strategy: str, sets: dict, texts, opt_level: int = 2, batch: int = 8):
    from s3dsl.catalog import resolve_strategy

    program = compile_file(resolve_strategy(strategy), sets, 32, "confidence")
    problems = [Problem(id=str(i), prompt=t, answer="") for i, t in enumerate(texts)]
    results, _ = execute(plan(program, opt_level), model, problems, lambda t: t,
                         lambda a, b: False, 0, batch)
    return [r.particles[0].tokens for r in results]


# -- the checkpoints load natively and agree with the official forward pass ---------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_official_logits_match(checkpoints, layout):
    want = load_file(str(GOLDEN / f"{layout}.safetensors"))
    logits = model_of(checkpoints, layout).forward(want["canvas"], None)
    close = {"atol": 2e-4, "rtol": 1e-5}
    if layout == "llada":  # 126k columns: a fixed subset, plus every row's max and logsumexp
        torch.testing.assert_close(logits[..., want["columns"]], want["logits"], **close)
        torch.testing.assert_close(logits.max(-1).values, want["row_max"], **close)
        torch.testing.assert_close(logits.logsumexp(-1), want["row_logsumexp"], **close)
    else:
        torch.testing.assert_close(logits, want["logits"], **close)


class AllLogits:
    """The model without `forward_last`: every forward computes every position's logits."""

    def __init__(self, inner):
        self.inner, self.asked = inner, []

    def __getattr__(self, name):
        if name == "forward_last":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def forward(self, ids, attention_mask, gen_length=None):
        self.asked.append(ids.shape[1])
        return self.inner.forward(ids, attention_mask, gen_length)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_of_the_last_positions_only(checkpoints, layout):
    """`forward_last` gives `forward`'s logits of the last positions (to round-off: the output
    layer's matmul has other rows, and its last bits may depend on their number); the runtime
    asks for the answer's (and, for Dream's shifted logits, the one before it), and the tokens
    are those of a model that computes every position's logits."""
    model = model_of(checkpoints, layout)
    ids = torch.randint(0, 2000, (3, 40))
    full = model.forward(ids, None, 16)
    for last in (1, 16, 17, 40):
        torch.testing.assert_close(model.forward_last(ids, None, 16, last), full[:, -last:],
                                   rtol=1e-5, atol=1e-5)
    assert torch.equal(model.forward_last(ids, None, 16, None), full)
    asked = []
    forward_last = model.forward_last

    def spy(ids, attention_mask, gen_length, last):
        asked.append((ids.shape[1], gen_length, last))
        return forward_last(ids, attention_mask, gen_length, last)

    texts, sets = ["What is 2+3?", "Name a colour."], {"gen_length": "16", "steps": "8"}
    everything = AllLogits(model)
    want = decode_tokens(everything, "single", sets, texts, opt_level=1)
    model.forward_last = spy
    try:
        got = decode_tokens(model, "single", sets, texts, opt_level=1)
    finally:
        del model.forward_last
    assert got == want and everything.asked and asked
    shift = int(model.shifted_logits)
    assert {(gen, last) for _, gen, last in asked} == {(16, 16 + shift)}


def test_guidance_keeps_the_answer_logits_with_or_without_forward_last(checkpoints):
    """Classifier-free guidance asks its model for the last positions only where it can, and
    slices them from every position's logits where it cannot: the same guided logits."""
    from s3dsl.runtime.adapters.guidance import with_guidance

    model = model_of(checkpoints, "llada")
    ids = torch.randint(0, 2000, (2, 30))
    full = with_guidance(model, 1.5).forward(ids, None, 12)
    for inner in (model, AllLogits(model)):
        guided = with_guidance(inner, 1.5)
        torch.testing.assert_close(guided.forward_last(ids, None, 12, 12), full[:, -12:],
                                   rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_checkpoint_facts_come_from_the_checkpoint(checkpoints, layout):
    model = load_checkpoint(checkpoints[layout])
    facts = {"llada": (126336, 126081, 126348, False), "dream": (2000, 2001, 2003, True)}[layout]
    assert (model.mask_id, model.eos_id, model.eot_id, model.shifted_logits) == facts
    assert model.tokenizer.chat  # the checkpoint has a chat template: on by default
    assert load_checkpoint(checkpoints[layout], mask_id=7).mask_id == 7


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prompt_ids_equal_what_the_official_code_was_fed(checkpoints, layout):
    want = golden(layout)
    for style in ("plain", "chat"):
        tok = model_of(checkpoints, layout, chat=style == "chat").tokenizer
        got = [encode_prompt(Problem("x", t, ""), tok) for t in want["texts"]]
        assert got == want["prompts"][style]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_chat_template_equals_apply_chat_template(checkpoints, layout):
    """What the runtime conditions on is apply_chat_template(..., add_generation_prompt=True),
    with the tokenizer loaded independently (Dream's config names a remote-code class)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(checkpoints[layout]), local_files_only=True)
    for system in (None, "Be brief ."):
        model = load_checkpoint(checkpoints[layout], system=system)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": "w5 w6 w7"})
        want = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        want = tok.encode(want, add_special_tokens=False)
        got = encode_prompt(Problem("x", "w5 w6 w7", ""), model.tokenizer)
        assert got == want and got != model.tokenizer.encode("w5 w6 w7")
        assert got[-1] == {"llada": 126347, "dream": 2002}[layout] or got[-2] == 2002


# -- the official samplers, token for token -----------------------------------------------------

def _runs(layout: str) -> list[tuple[str, int]]:
    return [(layout, i) for i, r in enumerate(golden(layout)["runs"]) if r["prompts"] != "padded"]


@pytest.mark.parametrize("layout,index", _runs("llada") + _runs("dream"))
def test_official_sampler_tokens(checkpoints, layout, index):
    g = golden(layout)
    run = g["runs"][index]
    model = model_of(checkpoints, layout, chat=run["prompts"] == "chat")
    options = dict(run.get("effective", run["options"]))
    if layout == "dream":
        options["max_new_tokens"] = run["options"]["max_new_tokens"]
    sets = overrides(layout, options)
    first = index == _runs(layout)[0][1]  # all prompts at opt levels 0, 2, 3; then one, at 2
    levels = (0, 2, 3) if first else (0, 2) if "cfg_scale" in options else (2,)
    for level in levels:
        texts = g["texts"] if first else g["texts"][:1]
        got = decode_tokens(model, layout, sets, texts, level)
        assert got == run["tokens"][: len(texts)], f"{layout} {run['options']} opt level {level}"


def test_dream_padded_batch_matches_the_official_padded_batch(checkpoints):
    run = next(r for r in golden("dream")["runs"] if r["prompts"] == "padded")
    model = model_of(checkpoints, "dream")
    sets = overrides("dream", {**run["effective"], "max_new_tokens": 32})
    assert decode_tokens(model, "dream", sets, run["texts"]) == run["tokens"]
    alone = [decode_tokens(model, "dream", sets, [t], batch=1)[0] for t in run["texts"]]
    assert alone == run["tokens"]


def test_llada_padded_batch_equals_rows_alone(checkpoints):
    """The official LLaDA code does not shift positions under left padding; the native model
    does, so a problem decodes the same in any batch."""
    model = model_of(checkpoints, "llada")
    texts = ["w10 w11 w12", "w901 w17 w1200 w30 w31 w3 w44 w45", "w7 w8 w9 w100 w5"]
    sets = {"steps": "8", "gen_length": "16", "block_length": "8"}
    batched = decode_tokens(model, "llada", sets, texts)
    assert batched == [decode_tokens(model, "llada", sets, [t], batch=1)[0] for t in texts]


# -- options with no token-exact official counterpart: reference and executor agree ------------

@pytest.mark.parametrize("sets", [
    {"alg": "origin", "temperature": "0.7"},
    {"alg": "entropy", "alg_temp": "0.5", "temperature": "0.5", "top_p": "0.9"},
])
def test_sampled_dream_options_agree_across_opt_levels(checkpoints, sets):
    model = model_of(checkpoints, "dream")
    sets = {"gen_length": "16", "steps": "8", **sets}
    texts = golden("dream")["texts"][:2]
    ref = decode_tokens(model, "dream", sets, texts, 0)
    assert ref == decode_tokens(model, "dream", sets, texts, 2)
    assert all(2000 not in row for row in ref)  # everything committed


def test_bfloat16_loads_and_decodes(checkpoints):
    model = load_checkpoint(checkpoints["dream"], dtype=torch.bfloat16)
    assert next(model.module.parameters()).dtype == torch.bfloat16
    out = decode_tokens(model, "dream", {"gen_length": "8", "steps": "4", "alg": "maskgit_plus"},
                        ["w1 w2"])
    assert len(out[0]) == 8 and 2000 not in out[0]


def test_unsupported_variant_is_refused(tmp_path, checkpoints):
    import shutil

    d = tmp_path / "variant"
    shutil.copytree(checkpoints["llada"], d)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "alibi": True}))
    with pytest.raises(S3DSLError, match="alibi"):
        load_checkpoint(d)


# -- the command line ---------------------------------------------------------------------------

def test_cli_single_gives_the_official_tokens(checkpoints, tmp_path):
    """The issue's done-when: `s3dsl run single --model DIR --no-chat --data F.jsonl`, and the
    same with --chat, give LLaDA generate()'s tokens; no --trust-remote-code anywhere."""
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    g = golden("llada")
    data = tmp_path / "F.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "prompt": t, "answer": "1"}) + "\n"
                            for i, t in enumerate(g["texts"])))
    for flag, style in (("--no-chat", "plain"), ("--chat", "chat")):
        out = tmp_path / f"{style}.json"
        r = CliRunner().invoke(app, [
            "run", "single", "--model", str(checkpoints["llada"]), flag, "--data", str(data),
            "--set", "gen_length=32", "--set", "steps=16", "--json", str(out), "--no-db"])
        assert r.exit_code == 0, r.output
        want = next(x for x in g["runs"] if x["prompts"] == style)["tokens"]
        got = [p["particle_tokens"][0] for p in json.loads(out.read_text())["per_problem"]]
        assert got == want


@pytest.mark.parametrize("name,options,message", [
    ("arith", {"chat": True}, "apply to real checkpoints"),
    ("arith", {"mask_id": 3}, "apply to real checkpoints"),
    ("arith", {"device": "cuda:x"}, "expected cpu, cuda or cuda:N"),
    ("arith", {"dtype": "fp8"}, "--dtype fp8"),
    ("hf:{dream}", {}, "--model DIR"),  # transformers cannot read Dream without its own code
])
def test_model_option_errors_are_user_errors(checkpoints, name, options, message):
    """Each is an S3DSLError (the CLI prints one line, exit 2), never an internal error."""
    from s3dsl.cli.app import load_any_model

    device = options.pop("device", "cpu")
    with pytest.raises(S3DSLError, match=message.replace("(", r"\(")):
        load_any_model(name.format(dream=checkpoints["dream"]), device, **options)


def test_cli_prints_a_model_option_error_on_one_line():
    r = subprocess.run([sys.executable, "-m", "s3dsl", "run", "single", "--task", "arith",
                        "--model", "arith", "--chat", "--no-db"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "apply to real checkpoints" in r.stderr
    assert "Traceback" not in r.stderr


def test_broken_remote_code_is_a_user_error(checkpoints, tmp_path):
    """A hub model whose own code fails on this transformers (as LLaDA's and Dream's do on 5.x)
    is reported as the checkpoint's problem, not as a bug in s3dsl."""
    import shutil

    from s3dsl.cli.app import load_any_model

    d = tmp_path / "broken"
    shutil.copytree(checkpoints["dream"], d)
    (d / "configuration_broken.py").write_text(
        "from transformers import PretrainedConfig\n\n\n"
        "class BrokenConfig(PretrainedConfig):\n    model_type = 'brokenlm'\n")
    (d / "modeling_broken.py").write_text(
        "from transformers import PreTrainedModel\n\n"
        "from .configuration_broken import BrokenConfig\n\n\n"
        "class BrokenModel(PreTrainedModel):\n    config_class = BrokenConfig\n\n"
        "    def __init__(self, config):\n        raise KeyError('default')\n")
    (d / "config.json").write_text(json.dumps({"model_type": "brokenlm", "auto_map": {
        "AutoConfig": "configuration_broken.BrokenConfig",
        "AutoModel": "modeling_broken.BrokenModel"}}))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {**json.loads((d / "tokenizer_config.json").read_text()),
         "tokenizer_class": "PreTrainedTokenizerFast"}))
    with pytest.raises(S3DSLError, match="fails on transformers .*KeyError"):
        load_any_model(f"hf:{d}", "cpu", trust_remote_code=True)


def test_compile_estimates_an_8b_checkpoint_from_its_config_alone(checkpoints, tmp_path):
    """`s3dsl compile --model DIR` reads shapes, not weights: LLaDA-8B's config gives 8.0B
    parameters in bf16 without a single shard on disk."""
    import shutil

    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    d = tmp_path / "llada-8b-shaped"
    d.mkdir()
    config = json.loads((checkpoints["llada"] / "config.json").read_text())
    config.update(d_model=4096, n_layers=32, n_heads=32, n_kv_heads=32, mlp_hidden_size=12288)
    (d / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(checkpoints["llada"] / name, d / name)
    r = CliRunner().invoke(app, ["compile", "single", "--task", "arith", "--model", str(d)])
    assert r.exit_code == 0, r.output
    assert "8,015,581,184 params, vocab 126464" in r.output
    mb = float(r.output.split("):")[-1].split("MB")[0].replace(",", ""))
    assert 8_015_581_184 * 2 / 2**20 < mb < 8_015_581_184 * 4 / 2**20  # bf16 weights + chunks


@pytest.mark.parametrize("remove,message", [
    ("model-00002-of-00002.safetensors", "shards listed in .* are missing"),
    ("tokenizer.json", "has no tokenizer"),
])
def test_incomplete_checkpoint_is_a_user_error(checkpoints, tmp_path, remove, message):
    import shutil

    d = tmp_path / "incomplete"
    shutil.copytree(checkpoints["dream"], d)
    (d / remove).unlink()
    with pytest.raises(S3DSLError, match=message):
        load_checkpoint(d)
