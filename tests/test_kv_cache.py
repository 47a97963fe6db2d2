"""The block KV caches (`prefix-cache`, `dual-cache`, issue 11 item 1): approximate plan passes.

Where the approximation vanishes they must give the exact plan's tokens: a cache refreshed at
every forward, and (on a prompt-isolated model) a block that is the whole answer. Elsewhere they
must compute fewer positions per forward, read cache rows that belong to each particle's own
lineage after expand / resample, and be refused before a run where a model cannot do them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from s3dsl.catalog import resolve_strategy
from s3dsl.compiler.passes import plan
from s3dsl.errors import S3DSLError
from s3dsl.models.config import ModelConfig
from s3dsl.models.registry import load_model
from s3dsl.models.transformer import MaskPredictor
from s3dsl.resume import approximations
from s3dsl.runtime import kv_cache
from s3dsl.runtime.executor import BatchedExecutor
from s3dsl.runtime.population import Population
from s3dsl.session import compile_file, execute
from s3dsl.tasks.base import Problem
from s3dsl.tasks.registry import get_task

ARITH = get_task("arith")
KINDS = ("prefix-cache", "dual-cache")


def every_forward(lowered):
    """The same plan with each cache refreshed at every forward: no approximation left."""
    return lowered.map_nodes(
        "forward", lambda s, n: n.replace(refresh="every forward") if n.get("kv") else n
    )


def tokens(model, strategy, sets, problems, enable=(), disable=(), rewrite=None,
           verifier="confidence", gen=16):
    program = compile_file(resolve_strategy(strategy), sets, gen, verifier)
    the_plan = plan(program, 2, disable, enable=enable)
    if rewrite is not None:
        the_plan.lowered = rewrite(the_plan.lowered)
    results, counters = execute(the_plan, model, problems, ARITH.extract_answer,
                                ARITH.is_correct, 0, 8)
    return [[p.tokens for p in r.particles] for r in results], counters, the_plan


# -- the span forward itself ------------------------------------------------------------------

@pytest.mark.parametrize("kv_heads", [4, 2])
def test_span_forward_against_its_own_keys_equals_the_full_forward(kv_heads):
    """Cached keys/values computed from the same tokens: the span's logits are exact."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, d_model=32, n_layers=2, n_heads=4, d_ff=48, max_len=64,
                      n_kv_heads=kv_heads, chars="")
    module = MaskPredictor(cfg).eval()
    ids = torch.randint(0, 30, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[0, :4] = False  # left padding
    keep: list = []
    with torch.no_grad():
        full = module(ids, mask, None, keep)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        context = [(k.clone(), v.clone()) for k, v in keep]
        for k, v in context:  # what the span recomputes must not be read from the cache
            k[:, :, 8:14] = float("nan")
            v[:, :, 8:14] = float("nan")
        span = module.forward_span(ids[:, 8:14], positions[:, 8:14], mask[:, None, None, :],
                                   lambda i: context[i], 8)
    torch.testing.assert_close(span, full[:, 8:14], atol=1e-5, rtol=1e-5)


def _one_chunk(rows, length, run):
    return [run(slice(0, rows))]


@pytest.mark.parametrize("kind", ["prefix", "dual"])
@pytest.mark.parametrize("layout", ["llada", "dream", "arith"])
def test_a_span_over_unchanged_tokens_equals_the_refresh(official, layout, kind):
    """Through the executor's cache: refresh rows, then run the span path on the same tokens;
    the window's log-probs and the clean prediction must be the refresh's (Dream's shifted
    logits, LLaDA's full-sequence rows and arith's prompt-cached rows)."""
    model = load_model("arith") if layout == "arith" else official[layout]
    texts = ["1+2=", "3*4-5="] if layout == "arith" else TEXTS
    program = compile_file(resolve_strategy("single"), SMALL, 16, "confidence")
    the_plan = plan(program, 2, enable=(f"{kind}-cache",))
    executor = BatchedExecutor(program, model, ARITH.extract_answer, 0, the_plan.flags,
                               ARITH.is_correct, the_plan.lowered)
    executor.begin([Problem(id=str(i), prompt=t, answer="") for i, t in enumerate(texts)])
    kv, ids = executor.block_kv, executor.pop.tokens
    owners = torch.arange(len(texts))
    none = torch.full_like(owners, -1)
    refreshed = kv.forward(ids, owners, none, none, 4, 8, _one_chunk)
    rows = kv.last_rows.clone()
    span = kv.forward(ids, owners, rows, rows, 4, 8, _one_chunk)
    assert torch.equal(kv.last_rows, rows)  # no refresh: the same block
    torch.testing.assert_close(span.window_logp, refreshed.window_logp, atol=2e-4, rtol=1e-4)
    assert torch.equal(span.clean_tok, refreshed.clean_tok)
    assert executor.counters.kv_refreshes == len(texts)


# -- exact where the approximation vanishes ---------------------------------------------------

@pytest.fixture(scope="module")
def official(tmp_path_factory):
    from s3dsl.models.checkpoint import load_checkpoint
    from s3dsl.models.tiny_official import write_checkpoint

    root = tmp_path_factory.mktemp("kv_official")
    return {layout: load_checkpoint(write_checkpoint(root / layout, layout, 0), chat=False)
            for layout in ("llada", "dream")}


TEXTS = ["hello world", "a b c d e"]
SMALL = {"gen_length": "16", "steps": "8", "block_length": "4"}


@pytest.mark.parametrize("layout", ["llada", "dream"])
@pytest.mark.parametrize("kind", KINDS)
def test_refreshed_every_forward_equals_exact_on_official_layouts(official, layout, kind):
    problems = [Problem(id=str(i), prompt=t, answer="") for i, t in enumerate(TEXTS)]
    exact, *_ = tokens(official[layout], "single", SMALL, problems)
    cached, counters, _ = tokens(official[layout], "single", SMALL, problems, (kind,),
                                 rewrite=every_forward)
    assert cached == exact
    assert counters.kv_refreshes == counters.forward_rows


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("disable", [(), ("prompt-cache",)])
def test_s3_exact_when_refreshed_every_forward_or_the_block_is_the_answer(kind, disable):
    """On a prompt-isolated model, a block that is the whole answer leaves nothing stale: the
    prompt's keys/values do not depend on the answer. Without the prompt cache this runs the
    span forward against cached prompt keys/values; with it, a refresh every time."""
    model = load_model("tiny-random")
    problems = ARITH.problems("test", 2)
    sets = {"gen_length": "16", "steps": "8", "particles": "2", "candidates": "2"}
    exact, *_ = tokens(model, "s3", sets, problems, disable=disable)
    refreshed, *_ = tokens(model, "s3", sets, problems, (kind,), disable, every_forward)
    assert refreshed == exact
    whole = {**sets, "block_length": "16"}
    exact_whole, *_ = tokens(model, "s3", whole, problems, disable=disable)
    cached, counters, _ = tokens(model, "s3", whole, problems, (kind,), disable)
    assert cached == exact_whole
    assert counters.kv_refreshes < counters.forward_rows or not disable


# -- fewer positions, counted right ------------------------------------------------------------

def test_dual_cache_computes_fewer_positions_per_forward_on_tiny_llada(official):
    problems = [Problem(id="0", prompt="hello world", answer="")]
    sets = {**SMALL, "particles": "2", "candidates": "2"}
    _, exact, exact_plan = tokens(official["llada"], "s3", sets, problems)
    _, dual, dual_plan = tokens(official["llada"], "s3", sets, problems, ("dual-cache",))
    per_forward = dual.positions / dual.forward_rows
    assert per_forward < exact.positions / exact.forward_rows
    assert dual_plan.cost.positions_per_forward < exact_plan.cost.positions_per_forward == 16
    assert approximations(dual_plan) == {"approximate": ["dual-cache"]}


@pytest.mark.parametrize("kind", KINDS)
def test_predicted_positions_equal_measured_at_temperature_zero(kind):
    """The cost model reads positions per forward off the plan: exact when the run is."""
    model = load_model("arith")
    problems = ARITH.problems("test", 2)
    _, counters, the_plan = tokens(model, "s3", {"temperature": "0"}, problems, (kind,),
                                   verifier=ARITH.default_verifier, gen=ARITH.gen_length)
    assert the_plan.cost.positions * len(problems) == counters.positions
    assert the_plan.cost.positions_per_forward < ARITH.gen_length


# -- per particle: shared after expand, gathered on resample ------------------------------------

def _lineage_ok(executor, mask_id) -> bool:
    """Every particle reads a cache row built from its own lineage: the tokens the row was
    refreshed from agree with the particle's wherever they were committed."""
    kv = executor.block_kv
    src = kv.src[executor.pop.kv_row]
    committed = src != mask_id
    return bool((executor.pop.tokens[committed] == src[committed]).all())


def _run_s3_with_check(monkeypatch=None):
    model = load_model("tiny-random")
    program = compile_file(resolve_strategy("s3"), {"gen_length": "16"}, 16, "confidence")
    the_plan = plan(program, 2, enable=("dual-cache",))
    executor = BatchedExecutor(program, model, ARITH.extract_answer, 0, the_plan.flags,
                               ARITH.is_correct, the_plan.lowered)
    checks: list[bool] = []
    stored: list[bool] = []

    def observe(ctx, backend):
        kv = backend.block_kv
        if not kv.capacity:
            return
        checks.append(_lineage_ok(backend, model.mask_id))
        # the stored keys of one particle's row are those of a forward of its source tokens
        row = int(backend.pop.kv_row[-1])
        keep: list = []
        owner = torch.tensor([backend.pop.rows // backend.n - 1])
        model.forward_answer_keep(backend.prompts, owner, kv.src[row : row + 1, -16:], keep)
        stored.append(torch.allclose(keep[0][0][0].permute(1, 0, 2), kv.k[0][:, row], atol=1e-6))

    executor.observer = observe
    executor.run(ARITH.problems("test", 3), 8)
    return checks, stored, executor


def test_particles_read_their_own_lineage_cache_after_expand_and_resample():
    checks, stored, executor = _run_s3_with_check()
    assert checks and all(checks) and all(stored)
    distinct = torch.unique(executor.block_kv.src[executor.pop.kv_row], dim=0)
    assert len(distinct) > 3  # the particles differ, so a wrong gather would show


def test_the_lineage_check_catches_a_wrong_gather(monkeypatch):
    real = Population.gather

    def rolled(self, index):  # a planted bug: cache rows gathered one particle off
        out = real(self, index)
        out.kv_row = out.kv_row.roll(1)
        return out

    monkeypatch.setattr(Population, "gather", rolled)
    checks, _, _ = _run_s3_with_check()
    assert not all(checks)


def test_cached_runs_do_not_depend_on_batch_or_chunk_size():
    """Cache rows are per particle: splitting problems into batches or rows into chunks
    changes nothing."""
    model = load_model("tiny-random")
    program = compile_file(resolve_strategy("s3"), {"gen_length": "16"}, 16, "confidence")
    problems = ARITH.problems("test", 3)
    runs = []
    for chunk, batch in ((None, 8), (3, 8), (None, 1)):
        the_plan = plan(program, 2, chunk_rows=chunk, enable=("dual-cache",))
        results, _ = execute(the_plan, model, problems, ARITH.extract_answer, ARITH.is_correct,
                             0, batch)
        runs.append([[p.tokens for p in r.particles] for r in results])
    assert runs[0] == runs[1] == runs[2]


# -- refused before a run ----------------------------------------------------------------------

def test_a_model_without_span_forwards_is_refused(toy_model):
    program = compile_file(resolve_strategy("single"), {"gen_length": "8"}, 8, "confidence")
    with pytest.raises(S3DSLError, match="cannot keep per-layer keys/values"):
        kv_cache.check_model(plan(program, 2, enable=("dual-cache",)), toy_model)
    kv_cache.check_model(plan(program, 2), toy_model)  # no cache asked for: fine


def test_conflicting_passes_are_refused_at_compile_time():
    program = compile_file(resolve_strategy("single"), {"gen_length": "8"}, 8, "confidence")
    with pytest.raises(S3DSLError, match="static steps"):
        plan(program, 3, enable=("dual-cache",))
    with pytest.raises(S3DSLError, match="already on"):
        plan(program, 2, enable=("dual-cache", "prefix-cache"))
    proc = subprocess.run([sys.executable, "-m", "s3dsl", "compile", "single", "--model",
                           "tiny-random", "--opt-level", "3", "--enable-pass", "dual-cache"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "--disable-pass static-steps" in proc.stderr
